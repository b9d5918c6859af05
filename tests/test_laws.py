"""The published optimal-hyperparameter laws: formulas, units, readings and argument checks.

Expected values are the published formulas evaluated here by hand with the literal constants
of the original papers (or of the Step Law's Tables 1-2), not values taken from the module.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shared_data import shared_data_dir

from bayes_steplaw import laws
from bayes_steplaw.laws import (
    LAWS,
    PAPER_TABLE2,
    STEP_LAW,
    LawNotEvaluableError,
    PublishedLaw,
    get_law,
    steplaw_flops_per_token,
)

LAWS_PY = Path(laws.__file__)
KEYS = ("steplaw", "openai", "microsoft", "deepseek", "porian", "minicpm", "meituan")
EVALUABLE = ("steplaw", "openai", "deepseek", "porian", "minicpm")
WITH_BATCH = ("steplaw", "openai", "deepseek", "porian", "minicpm")

# (N, D) of some released dense settings (the paper's Table 4)
SETTINGS = [(2.15e8, 4.0e9), (2.15e8, 1.0e11), (4.29e8, 8.0e9), (5.37e8, 2.84e10), (1.07e9, 1.0e11)]


# --------------------------------------------------------------------------- registry


def test_registry_has_the_seven_laws_once():
    assert tuple(LAWS) == KEYS
    assert STEP_LAW is LAWS["steplaw"]
    for key in KEYS:
        assert get_law(key) is LAWS[key]
        assert LAWS[key].name == key
    assert get_law("Kaplan") is LAWS["openai"]
    assert get_law(" BJORCK ") is LAWS["microsoft"]
    assert tuple(laws.evaluable_laws()) == EVALUABLE


def test_unknown_law_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown law 'chinchilla'") as info:
        get_law("chinchilla")
    for key in KEYS:
        assert repr(key) in str(info.value)


@pytest.mark.parametrize("key", KEYS)
def test_each_law_is_described(key):
    law = LAWS[key]
    assert re.search(r"arXiv:\d{4}\.\d{5}", law.source)
    assert law.batch_unit in ("tokens", "sequences", None)
    assert set(law.needs) <= {"N", "D", "loss"}
    assert set(law.lr_needs) | set(law.batch_needs) <= set(law.needs)
    assert law.label and len(law.note) > 100
    if law.lr_formula is None:
        assert law.lr_function is None
    if law.batch_formula is None:
        assert law.batch_unit is None
    assert law.evaluable == (key in EVALUABLE)
    assert law.evaluable == (law.not_evaluable_reason is None)
    d = law.to_dict()
    assert d["name"] == key and not any(callable(v) for v in d.values())


def test_laws_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        STEP_LAW.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        STEP_LAW.constants["lr_coef"] = 2.0  # type: ignore[index]


def test_laws_table_describes_every_law():
    table = laws.laws_table()
    assert list(table.index) == list(KEYS)
    assert not table.loc["microsoft", "evaluable"]
    assert table.loc["steplaw", "evaluable"]
    assert table.loc["openai", "needs"] == "N, loss"


def test_paper_relative_errors_are_table1s():
    # Table 1 of the Step Law paper, per mille
    printed = {"openai": 9.51, "microsoft": 9.25, "deepseek": 9.26, "porian": 3.71}
    printed["steplaw"] = 0.94
    for key, per_mille in printed.items():
        assert LAWS[key].paper_relative_error == pytest.approx(per_mille / 1000)
    assert LAWS["minicpm"].paper_relative_error is None
    assert LAWS["meituan"].paper_relative_error is None


# --------------------------------------------------------------------------- Step Law


def test_paper_table2_constants():
    assert PAPER_TABLE2 == {
        "lr_coef": 1.79,
        "alpha": -0.713,
        "beta": 0.307,
        "bs_coef": 0.58,
        "gamma": 0.571,
    }
    assert dict(STEP_LAW.constants) == PAPER_TABLE2


def test_paper_table2_same_as_bootstrap_module():
    from bayes_steplaw import bootstrap

    assert dict(bootstrap.PAPER_TABLE2) == PAPER_TABLE2


def test_step_law_by_hand():
    N, D = 1e9, 1e11
    assert STEP_LAW.lr(N, D) == pytest.approx(1.79 * N**-0.713 * D**0.307, rel=1e-12)
    assert STEP_LAW.lr(N, D) == pytest.approx(1.6325e-3, rel=1e-4)
    assert STEP_LAW.batch_tokens(N, D) == pytest.approx(0.58 * D**0.571, rel=1e-12)
    assert STEP_LAW.batch_tokens(N, D) == pytest.approx(1.1077e6, rel=1e-4)
    # the batch depends on D only
    assert STEP_LAW.batch_tokens(7e9, D) == STEP_LAW.batch_tokens(N, D)


def _printed_precision(table2: dict[str, float]) -> dict[str, float]:
    """The ensemble's constants as the paper prints them (lr_coef truncated, Table 2)."""
    return {
        "lr_coef": math.floor(table2["lr_coef"] * 100) / 100,
        "alpha": round(table2["alpha"], 3),
        "beta": round(table2["beta"], 3),
        "bs_coef": round(table2["bs_coef"], 2),
        "gamma": round(table2["gamma"], 3),
    }


def test_step_law_is_the_published_ensemble_at_printed_precision():
    from bayes_steplaw import BootstrapOLS

    table2 = BootstrapOLS.from_published(shared_data_dir()).table2()
    assert _printed_precision(table2) == PAPER_TABLE2


def test_step_law_is_the_released_csv_mean_at_printed_precision():
    pd = pytest.importorskip("pandas")
    coef = pd.read_csv(shared_data_dir() / "1004_fitted_lr_bs_scaling_model_parameters.csv")
    m = coef.mean()
    table2 = {
        "lr_coef": math.exp(m["lr_intercept"]),
        "alpha": m["lr_coefN"],
        "beta": m["lr_coefD"],
        "bs_coef": math.exp(m["bs_intercept"]),
        "gamma": m["bs_coefD"],
    }
    assert _printed_precision(table2) == PAPER_TABLE2
    # the upstream tool's example (README: pred-opt-lr-bs 7e9 1.4e12 2048) uses the unrounded
    # means; the printed law agrees to within the rounding of its printed constants
    N, D = 7e9, 1.4e12
    lr_up = math.exp(m["lr_intercept"] + m["lr_coefN"] * math.log(N) + m["lr_coefD"] * math.log(D))
    bs_up = math.exp(m["bs_intercept"] + m["bs_coefD"] * math.log(D))
    assert f"{lr_up:.3e}" == "9.347e-04"
    lr_tol = math.log(1.80 / 1.79) + 5e-4 * (math.log(N) + math.log(D))
    bs_tol = math.log(0.585 / 0.58) + 5e-4 * math.log(D)
    assert abs(math.log(STEP_LAW.lr(N, D) / lr_up)) < lr_tol
    assert abs(math.log(STEP_LAW.batch_tokens(N, D) / bs_up)) < bs_tol


# --------------------------------------------------------------------------- the other laws


def test_openai_kaplan_natural_log():
    law = LAWS["openai"]
    assert law.lr(1e9, 1e11) == pytest.approx(0.003239 - 0.0001395 * math.log(1e9), rel=1e-12)
    assert law.lr(1e9, 1e11) == pytest.approx(3.4810e-4, rel=1e-4)
    # Kaplan et al.: the rule "breaks down for N > 10^10"; the natural-log line crosses 0 there
    assert law.lr(1.2e10, 1e11) > 0
    with pytest.warns(RuntimeWarning, match="breaks down"):
        out = law.lr(np.array([1e9, 1.3e10]), 1e11)
    assert out[0] > 0 and np.isnan(out[1])
    # critical batch size, Kaplan Eq. (5.3): B* = 2e8 tokens, alpha_B = 0.21
    assert law.batch_tokens(1e9, 1e11, loss=2.5) == pytest.approx(2e8 * 2.5 ** (-1 / 0.21))
    assert law.batch_tokens(1e9, 1e11, loss=2.5) == pytest.approx(2.5473e6, rel=1e-4)
    assert law.batch_tokens(5e8, 1e10, loss=2.5) == law.batch_tokens(1e9, 1e11, loss=2.5)


def test_deepseek_compute_is_6ND_or_M_times_D():
    law = LAWS["deepseek"]
    N, D = 1e9, 1e11
    C = 6 * N * D
    assert law.lr(N, D) == pytest.approx(0.3118 * C**-0.1250, rel=1e-12)
    assert law.lr(N, D) == pytest.approx(7.8815e-4, rel=1e-4)
    assert law.batch_tokens(N, D) == pytest.approx(0.2920 * C**0.3271, rel=1e-12)
    assert law.batch_tokens(N, D) == pytest.approx(1.8277e6, rel=1e-4)
    M = 7.5e9
    assert law.lr(N, D, flops_per_token=M) == pytest.approx(0.3118 * (M * D) ** -0.125)
    assert law.batch_tokens(N, D, flops_per_token=M) == pytest.approx(0.2920 * (M * D) ** 0.3271)


def test_steplaw_flops_per_token_reproduces_the_papers_table3():
    # Step Law Table 3 (M: non-embedding FLOPs/token): h, ffnh, numl -> M as printed
    assert steplaw_flops_per_token(1280, 12264, 8) == pytest.approx(2.83e9, rel=2e-3)
    assert steplaw_flops_per_token(1280, 6280, 14) == pytest.approx(3.02e9, rel=2e-3)
    assert steplaw_flops_per_token(2048, 1504, 14) == pytest.approx(2.89e9, rel=2e-3)
    assert steplaw_flops_per_token(1280, 12264, 8, seq_len=4096) > 2.83e9


def test_porian_depends_on_N_only():
    law = LAWS["porian"]
    assert law.lr(1e9, 1e11) == pytest.approx(3.7 * 1e9**-0.36, rel=1e-12)
    assert law.lr(1e9, 1e11) == pytest.approx(2.1291e-3, rel=1e-4)
    assert law.batch_tokens(1e9, 1e11) == pytest.approx(0.7576 * 1e9**0.703, rel=1e-12)
    assert law.batch_tokens(1e9, 1e11) == pytest.approx(1.6086e6, rel=1e-4)
    assert law.lr(1e9, 4e9) == law.lr(1e9, 1e11)
    assert law.batch_unit == "tokens"


def test_minicpm_batch_from_loss_and_no_lr():
    law = LAWS["minicpm"]
    assert law.lr(1e9, 1e11, loss=2.45) is None
    assert law.batch_tokens(1e9, 1e11, loss=2.45) == pytest.approx(1.21e9 / 2.45**6.24)
    assert law.batch_tokens(1e9, 1e11, loss=2.45) == pytest.approx(4.5122e6, rel=1e-4)
    # MiniCPM-2.4B trained with a batch of 3.93M tokens: the token reading is the right scale
    assert 1 < law.batch_tokens(2.4e9, 1.1e12, loss=2.45) / 3.93e6 < 1.5
    table = law.predict([1e9, 2e9], 1e11, loss=2.45)
    assert table["lr"].isna().all() and table["batch_tokens"].notna().all()


def test_microsoft_is_not_evaluable_and_why():
    law = LAWS["microsoft"]
    assert law.batch_tokens(1e9, 1e11) is None
    with pytest.raises(LawNotEvaluableError, match="not evaluable"):
        law.lr(1e9, 1e11)
    with pytest.raises(LawNotEvaluableError):
        law.predict(1e9, 1e11)
    assert issubclass(LawNotEvaluableError, ValueError)
    # as printed in Table 1, 1.3192e-5 N^-0.23 D^-0.32: far below the swept grid 2^-12..2^-5.5
    for N, D in SETTINGS:
        printed = law.lr(N, D, force=True)
        assert printed == pytest.approx(1.3192e-5 * N**-0.23 * D**-0.32, rel=1e-12)
        assert printed < 2.0**-12 / 1e5


def test_meituan_has_no_constants():
    law = LAWS["meituan"]
    assert law.needs == ("loss",)
    for force in (False, True):
        with pytest.raises(LawNotEvaluableError, match="constants"):
            law.lr(1e9, 1e11, loss=2.5, force=force)
        with pytest.raises(LawNotEvaluableError, match="constants"):
            law.batch_tokens(1e9, 1e11, loss=2.5, force=force)


# --------------------------------------------------------------------------- units and shapes


@pytest.mark.parametrize("key", WITH_BATCH)
def test_sequences_are_tokens_over_seq_len(key):
    law = LAWS[key]
    N, D, loss = np.array([2.15e8, 1.07e9]), np.array([4e9, 1e11]), 2.3
    tokens = law.batch_tokens(N, D, loss=loss)
    for seq_len in (1024, 2048, 4096):
        # every published batch law is in tokens: seq_len only converts to sequences
        np.testing.assert_allclose(law.batch_tokens(N, D, loss=loss, seq_len=seq_len), tokens)
        table = law.predict(N, D, loss=loss, seq_len=seq_len)
        np.testing.assert_allclose(table["batch_tokens"], tokens)
        np.testing.assert_allclose(table["batch_sequences"], tokens / seq_len)


def test_a_law_in_sequences_scales_with_seq_len():
    law = PublishedLaw(
        name="toy",
        label="toy law",
        source="nobody, arXiv:0000.00000",
        lr_formula=None,
        batch_formula="batch = 100 sequences",
        batch_unit="sequences",
        needs=(),
        note="a test law",
        batch_function=lambda x: np.full(x["N"].shape, 100.0),
    )
    assert law.batch_tokens(1e9, 1e11, seq_len=2048) == pytest.approx(204800)
    assert law.batch_tokens(1e9, 1e11, seq_len=4096) == pytest.approx(409600)
    table = law.predict([1e9, 2e9], 1e11, seq_len=4096)
    np.testing.assert_allclose(table["batch_sequences"], [100, 100])
    np.testing.assert_allclose(table["batch_tokens"], [409600, 409600])


def test_broadcasting_and_predict_layout():
    N = np.array([[2.15e8], [4.29e8], [1.07e9]])
    D = np.array([4e9, 2e10, 5e10, 1e11])
    lr = STEP_LAW.lr(N, D)
    assert isinstance(lr, np.ndarray) and lr.shape == (3, 4)
    assert lr[2, 1] == pytest.approx(1.79 * 1.07e9**-0.713 * 2e10**0.307)
    scalar = STEP_LAW.lr(1e9, 1e11)
    assert isinstance(scalar, np.ndarray) and scalar.shape == ()
    assert STEP_LAW.batch_tokens(N, D).shape == (3, 4)
    # a law of N only still returns the broadcast shape
    assert LAWS["porian"].lr(N, D).shape == (3, 4)
    assert LAWS["minicpm"].batch_tokens(1e9, D, loss=[[2.2], [2.5]]).shape == (2, 4)
    table = STEP_LAW.predict(N, D)
    assert list(table.columns) == ["N", "D", "lr", "batch_tokens", "batch_sequences"]
    assert len(table) == 12
    np.testing.assert_allclose(table["lr"], lr.ravel())
    np.testing.assert_allclose(table["N"], np.broadcast_to(N, (3, 4)).ravel())


# --------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "abc", True, [1e9, -1]])
@pytest.mark.parametrize("arg", ["N", "D", "loss", "seq_len"])
def test_bad_inputs_name_the_argument(arg, bad):
    kwargs = {"N": 1e9, "D": 1e11, "loss": 2.5, "seq_len": 2048}
    kwargs[arg] = bad
    law = LAWS["minicpm"]
    N, D = kwargs.pop("N"), kwargs.pop("D")
    with pytest.raises(ValueError, match=rf"^{arg} must be"):
        law.batch_tokens(N, D, **kwargs)
    if arg != "seq_len":
        kwargs.pop("seq_len")
        with pytest.raises(ValueError, match=rf"^{arg} must be"):
            STEP_LAW.lr(N, D, **kwargs)


def test_missing_loss_is_an_error_only_where_needed():
    with pytest.raises(ValueError, match="needs loss"):
        LAWS["minicpm"].batch_tokens(1e9, 1e11)
    with pytest.raises(ValueError, match="needs loss"):
        LAWS["openai"].batch_tokens(1e9, 1e11)
    with pytest.raises(ValueError, match="needs loss"):
        LAWS["openai"].predict(1e9, 1e11)
    assert LAWS["openai"].lr(1e9, 1e11) > 0  # Kaplan's learning rate needs N only
    assert LAWS["minicpm"].lr(1e9, 1e11) is None


def test_inputs_that_do_not_broadcast():
    with pytest.raises(ValueError, match="cannot be broadcast"):
        STEP_LAW.lr([1e9, 2e9], [1e10, 2e10, 3e10])


def test_inconsistent_law_definitions_are_refused():
    base = {
        "name": "bad",
        "label": "bad",
        "source": "arXiv:0000.00000",
        "lr_formula": "lr = 1",
        "batch_formula": None,
        "batch_unit": None,
        "note": "",
        "lr_function": lambda x: x["N"] * 0 + 1,
    }
    with pytest.raises(ValueError, match="needs"):
        PublishedLaw(**base, needs=("T",))
    with pytest.raises(ValueError, match="batch_unit"):
        PublishedLaw(**{**base, "batch_unit": "steps"}, needs=("N",))
    with pytest.raises(ValueError, match="lr_function"):
        PublishedLaw(**{**base, "lr_function": None}, needs=("N",))
    with pytest.raises(ValueError, match="not_evaluable_reason"):
        PublishedLaw(**base, needs=("N",), evaluable=False)


# --------------------------------------------------------------------------- imports


def test_module_imports_numpy_only():
    """laws.py needs numpy and the package's argument checks (numpy only), nothing heavier."""
    relative = set()
    for path in LAWS_PY.parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        relative |= {
            (n.level, n.module) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level
        }
    assert relative <= {(2, "_validate"), (1, "law"), (1, "published")}
    code = (
        "import sys, types\n"
        # the package's __init__ (the public API) imports pandas: load the two modules alone
        "pkg = types.ModuleType('bayes_steplaw')\n"
        f"pkg.__path__ = [{str(LAWS_PY.parent.parent)!r}]\n"
        "sys.modules['bayes_steplaw'] = pkg\n"
        "from bayes_steplaw.laws import STEP_LAW\n"
        "assert STEP_LAW.lr(1e9, 1e11) > 0\n"
        "heavy = {'pandas', 'pymc', 'xarray', 'arviz'} & {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
