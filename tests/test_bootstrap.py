"""The bootstrap-OLS mode: exact reproduction of the published ensemble, and refits."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_steplaw
from bayes_steplaw import SweepValidationError, load_sweeps
from bayes_steplaw.bootstrap import (
    COEFFICIENT_COLUMNS,
    PREDICT_COLUMNS,
    BootstrapOLS,
    DegenerateResampleWarning,
    bootstrap_ols,
    reproduction_table,
    resample_indices,
)
from bayes_steplaw.datasets.registry import fetch

PUBLISHED = "1004_fitted_lr_bs_scaling_model_parameters.csv"


@pytest.fixture(scope="module")
def published() -> BootstrapOLS:
    return BootstrapOLS.from_published()


@pytest.fixture(scope="module")
def parameter_df() -> pd.DataFrame:
    """The published ensemble read the way the upstream tool reads it."""
    return pd.read_csv(fetch(PUBLISHED))


@pytest.fixture(scope="module")
def dense() -> pd.DataFrame:
    return load_sweeps("dense")


@pytest.fixture(scope="module")
def dense_refit(dense) -> BootstrapOLS:
    return BootstrapOLS.fit(dense, threshold=0.0025, n_boot=300, seed=1)


def upstream_text(parameter_df: pd.DataFrame, N: float, D: float, seq_len: int) -> str:
    """What ``fit_tool.py pred-opt-lr-bs N D seq_len`` prints, rebuilt with pandas.

    The steps follow the upstream tool: pandas means of the coefficient columns, the
    mean-coefficient linear model applied to a one-row frame of (ln N, ln D) as
    ``LinearRegression.predict`` does (``X @ coef + intercept``), ``exp``, ``lr`` formatted
    ``%.3e``, ``bs_in_sample = bs / seq_len`` and ``print(df.to_csv(sep=" ", index=False))``.
    """
    exp_df = pd.DataFrame([{"N": float(N), "D": float(D), "seq_len": int(seq_len)}])
    inputs = exp_df.copy()
    inputs["logN"] = np.log(inputs["N"])
    inputs["logD"] = np.log(inputs["D"])
    lr_coef = np.array([parameter_df["lr_coefN"].mean(), parameter_df["lr_coefD"].mean()])
    bs_coef = np.array([parameter_df["bs_coefD"].mean()])
    loglr = inputs[["logN", "logD"]].to_numpy() @ lr_coef + parameter_df["lr_intercept"].mean()
    logbs = inputs[["logD"]].to_numpy() @ bs_coef + parameter_df["bs_intercept"].mean()
    out = inputs.copy()
    out["lr"] = np.exp(pd.Series(loglr))
    out["bs"] = np.exp(pd.Series(logbs))
    exp_df["lr"] = out["lr"].to_numpy()
    exp_df["bs"] = out["bs"].to_numpy()
    exp_df["lr"] = exp_df["lr"].apply(lambda x: f"{x:.3e}")
    exp_df["bs_in_sample"] = exp_df.eval("bs/seq_len")
    show_df = exp_df[["N", "D", "seq_len", "lr", "bs", "bs_in_sample"]]
    buf = io.StringIO()
    with redirect_stdout(buf):
        print(show_df.to_csv(sep=" ", index=False))
    return buf.getvalue()


# --------------------------------------------------------------------------- published ensemble


def test_published_coefficients_are_the_file(published, parameter_df):
    coef = published.coefficients
    assert list(coef.columns) == list(COEFFICIENT_COLUMNS)
    assert coef.shape == (1000, 5)
    np.testing.assert_array_equal(coef.to_numpy(), parameter_df.to_numpy())
    assert published.n_boot == 1000 and published.n_failed == 0 and published.n_kept is None


def test_upstream_line_for_the_papers_example(published, parameter_df):
    text = published.upstream_line(7e9, 1.4e12, 2048)
    assert text == upstream_text(parameter_df, 7e9, 1.4e12, 2048)
    header, values = text.split(os.linesep)[:2]
    assert header == "N D seq_len lr bs bs_in_sample"
    assert values.split(" ")[:4] == ["7000000000.0", "1400000000000.0", "2048", "9.347e-04"]
    assert text.endswith(os.linesep + "\n")


@pytest.mark.slow
def test_upstream_line_equals_pandas_over_random_inputs(published, parameter_df):
    rng = np.random.default_rng(20250305)
    cases = [
        (10 ** rng.uniform(5, 14), 10 ** rng.uniform(7, 17), int(rng.integers(1, 1 << 16)))
        for _ in range(300)
    ]
    cases += [(1e8, 1e10, 1), (7e9, 2e16, 4096), (3.3, 1e-3, 7), (1e15, 1e20, 131072)]
    for N, D, seq_len in cases:
        assert published.upstream_line(N, D, seq_len) == upstream_text(parameter_df, N, D, seq_len)


def test_upstream_line_needs_no_pandas(parameter_df):
    """The module imports pandas only where it returns a DataFrame: with pandas unimportable
    (and the package ``__init__``, which imports pandas, bypassed) the raw line still works."""
    package_dir = Path(bayes_steplaw.__file__).parent
    code = (
        "import sys, types\n"
        "sys.modules['pandas'] = None\n"
        "pkg = types.ModuleType('bayes_steplaw')\n"
        f"pkg.__path__ = [{str(package_dir)!r}]\n"
        "sys.modules['bayes_steplaw'] = pkg\n"
        "from bayes_steplaw.bootstrap import BootstrapOLS\n"
        "sys.stdout.write(BootstrapOLS.from_published().upstream_line(7e9, 1.4e12, 2048))\n"
        "assert 'pandas' not in sys.modules or sys.modules['pandas'] is None\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == upstream_text(parameter_df, 7e9, 1.4e12, 2048)


def test_table2_constants_round_to_the_paper(published, parameter_df):
    t = published.table2()
    # exp(mean lr_intercept) = 1.797...: the paper prints 1.79, i.e. truncated, not rounded
    assert 1.79 <= t["lr_coef"] < 1.80
    assert round(t["alpha"], 3) == -0.713
    assert round(t["beta"], 3) == 0.307
    assert round(t["bs_coef"], 2) == 0.58
    assert round(t["gamma"], 3) == 0.571
    means = parameter_df.mean()
    assert t["lr_coef"] == pytest.approx(np.exp(means["lr_intercept"]), rel=1e-14)
    assert t["gamma"] == pytest.approx(means["bs_coefD"], rel=1e-14)


def test_published_predict(published, parameter_df):
    table = published.predict(7e9, 1.4e12, seq_len=2048, prob=0.9)
    assert list(table.columns) == list(PREDICT_COLUMNS) and len(table) == 1
    row = table.iloc[0]
    assert f"{row['lr']:.3e}" == "9.347e-04"
    # intervals: percentiles of every resample's prediction, computed here from the file
    c = parameter_df
    log_lr = c["lr_intercept"] + c["lr_coefN"] * np.log(7e9) + c["lr_coefD"] * np.log(1.4e12)
    log_bs = c["bs_intercept"] + c["bs_coefD"] * np.log(1.4e12)
    lo, hi = np.exp(np.quantile(log_lr, [0.05, 0.95]))
    assert (row["lr_lower"], row["lr_upper"]) == pytest.approx((lo, hi), rel=1e-12)
    lo, hi = np.exp(np.quantile(log_bs, [0.05, 0.95]))
    assert (row["batch_tokens_lower"], row["batch_tokens_upper"]) == pytest.approx(
        (lo, hi), rel=1e-12
    )
    for key in ("lr", "batch_tokens", "batch_sequences"):
        assert row[f"{key}_lower"] < row[key] < row[f"{key}_upper"]
    for suffix in ("", "_lower", "_upper"):
        assert row[f"batch_sequences{suffix}"] == pytest.approx(
            row[f"batch_tokens{suffix}"] / 2048, rel=1e-15
        )


def test_predict_broadcasts_and_matches_single_points(published):
    Ns = np.array([1e8, 1e9, 7e9])
    table = published.predict(Ns, 1e11, seq_len=[1024, 2048, 4096], prob=0.8)
    assert len(table) == 3
    np.testing.assert_array_equal(table["N"], Ns)
    for i, N in enumerate(Ns):
        one = published.predict(N, 1e11, seq_len=table["seq_len"][i], prob=0.8).iloc[0]
        np.testing.assert_allclose(table.iloc[i].to_numpy(float), one.to_numpy(float), rtol=1e-14)
    assert published.predict(np.full((2, 3), 1e9), 1e11).shape[0] == 6
    assert table["seq_len"].dtype.kind == "i"
    assert published.predict(1e9, 1e11, seq_len=1000.5)["seq_len"][0] == 1000.5


# --------------------------------------------------------------------------- refit


def test_refit_on_released_dense_keeps_129_runs(dense_refit):
    assert dense_refit.n_kept == 129  # measured in SOURCE.md
    assert dense_refit.indices.shape == (300, 129)
    assert dense_refit.coefficients.shape == (300, 5)
    assert dense_refit.n_failed == 0


def test_refit_differs_from_the_published_law(published, dense_refit):
    table = reproduction_table(published, dense_refit)
    assert list(table.columns) == [
        "paper_table2",
        "published_ensemble_mean",
        "refit_released_dense",
    ]
    assert list(table.index) == ["lr_coef", "alpha", "beta", "bs_coef", "gamma"]
    assert table.loc["alpha", "paper_table2"] == -0.713
    np.testing.assert_allclose(
        table["published_ensemble_mean"], table["paper_table2"], rtol=0.01, atol=0.005
    )
    assert round(table.loc["beta", "refit_released_dense"], 3) != 0.307


def test_vectorised_fit_equals_per_resample_lstsq(dense_refit):
    kept = dense_refit.kept
    lnN, lnD = np.log(kept["N"].to_numpy(float)), np.log(kept["D"].to_numpy(float))
    y_lr = np.log(kept["lr"].to_numpy(float))
    y_bs = np.log(kept["batch_tokens"].to_numpy(float))
    expected = []
    for idx in dense_refit.indices:
        X_lr = np.column_stack([np.ones(idx.size), lnN[idx], lnD[idx]])
        X_bs = np.column_stack([np.ones(idx.size), lnD[idx]])
        b_lr = np.linalg.lstsq(X_lr, y_lr[idx], rcond=None)[0]
        b_bs = np.linalg.lstsq(X_bs, y_bs[idx], rcond=None)[0]
        expected.append([*b_lr, *b_bs])
    np.testing.assert_allclose(dense_refit.coefficients.to_numpy(), expected, rtol=1e-10)


def test_resample_indices_are_seeded():
    a = resample_indices(50, 20, seed=3)
    assert a.shape == (20, 50) and a.min() >= 0 and a.max() < 50
    np.testing.assert_array_equal(a, resample_indices(50, 20, seed=3))
    assert not np.array_equal(a, resample_indices(50, 20, seed=4))


TRUE = {"c": np.log(1.79), "alpha": -0.713, "beta": 0.307, "d": np.log(0.58), "gamma": 0.571}


def simulate_sweeps(seed: int) -> pd.DataFrame:
    """Sweeps from a known law: per (N, D) setting an lr x batch grid around the true optimum,
    loss a bowl in (ln lr, ln batch) with small noise; each grid is shifted at random so that it
    is not centred on the optimum."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in (1e8, 2.5e8, 6e8, 1.5e9, 4e9):
        for D in (5e9, 2e10, 8e10, 3e11):
            ln_lr = TRUE["c"] + TRUE["alpha"] * np.log(N) + TRUE["beta"] * np.log(D)
            ln_bs = TRUE["d"] + TRUE["gamma"] * np.log(D)
            lr_offsets = np.arange(-1.2, 1.21, 0.2) + rng.uniform(-0.1, 0.1)
            bs_offsets = np.arange(-1.2, 1.21, 0.3) + rng.uniform(-0.15, 0.15)
            floor = 2.0 + 50 * N**-0.3
            for a in lr_offsets:
                for b in bs_offsets:
                    bowl = 1 + 0.01 * a**2 + 0.005 * b**2 + rng.normal(0, 2e-4)
                    rows.append(
                        {
                            "N": N,
                            "D": D,
                            "lr": np.exp(ln_lr + a),
                            "batch_tokens": np.exp(ln_bs + b),
                            "loss": floor * bowl,
                            "setting": f"N={N:g} D={D:g}",
                        }
                    )
    return pd.DataFrame(rows)


def test_refit_recovers_a_known_law():
    model = BootstrapOLS.fit(simulate_sweeps(7), n_boot=500, seed=7)
    m = model.mean_coefficients()
    assert m["lr_coefN"] == pytest.approx(TRUE["alpha"], abs=0.02)
    assert m["lr_coefD"] == pytest.approx(TRUE["beta"], abs=0.02)
    assert m["bs_coefD"] == pytest.approx(TRUE["gamma"], abs=0.02)
    coef = model.coefficients
    truth = [TRUE["c"], TRUE["alpha"], TRUE["beta"], TRUE["d"], TRUE["gamma"]]
    lo, hi = coef.quantile(0.05).to_numpy(), coef.quantile(0.95).to_numpy()
    assert ((lo <= truth) & (truth <= hi)).all()
    N, D = 5e8, 4e10
    row = model.predict(N, D, prob=0.9).iloc[0]
    lr_true = np.exp(TRUE["c"] + TRUE["alpha"] * np.log(N) + TRUE["beta"] * np.log(D))
    bs_true = np.exp(TRUE["d"] + TRUE["gamma"] * np.log(D))
    assert row["lr_lower"] <= lr_true <= row["lr_upper"]
    assert row["batch_tokens_lower"] <= bs_true <= row["batch_tokens_upper"]
    assert row["lr"] == pytest.approx(lr_true, rel=0.05)


# --------------------------------------------------------------------------- degenerate designs


def test_one_model_size_is_a_clear_error():
    sweeps = simulate_sweeps(0)
    one_n = sweeps[sweeps["N"] == 6e8]
    with pytest.raises(ValueError, match="same N"):
        BootstrapOLS.fit(one_n, n_boot=50)


def test_singular_resamples_are_nan_rows_and_reported():
    # three settings with one kept run each: most resamples draw at most two distinct settings
    rows = [
        {"N": N, "D": D, "lr": lr, "batch_tokens": bs, "loss": 2.0, "setting": s}
        for N, D, lr, bs, s in [
            (1e8, 1e10, 1e-3, 1e5, "a"),
            (1e9, 2e10, 5e-4, 2e5, "b"),
            (4e8, 8e10, 6e-4, 4e5, "c"),
        ]
    ]
    with pytest.warns(DegenerateResampleWarning, match="singular"):
        model = BootstrapOLS.fit(pd.DataFrame(rows), n_boot=200, seed=0)
    coef = model.coefficients.to_numpy()
    assert 0 < model.n_failed < 200
    np.testing.assert_array_equal(np.isnan(coef).all(axis=1), model.failed)
    assert not np.isnan(coef[~model.failed]).any()
    table = model.predict(5e8, 3e10)
    assert np.isfinite(table.to_numpy(float)).all()


def test_bootstrap_ols_flags_a_constant_covariate():
    X = np.column_stack([np.log([1e8, 1e8, 1e9, 1e9]), np.log([1e10, 2e10, 3e10, 5e10])])
    y = np.array([0.1, 0.2, 0.3, 0.5])
    coef = bootstrap_ols(X, y, np.array([[0, 1, 1, 0], [0, 1, 2, 3]]))
    assert np.isnan(coef[0]).all() and np.isfinite(coef[1]).all()
    np.testing.assert_allclose(
        coef[1], np.linalg.lstsq(np.column_stack([np.ones(4), X]), y, rcond=None)[0], rtol=1e-10
    )


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [0, -1.0, np.nan, np.inf, "abc", None])
@pytest.mark.parametrize("name", ["N", "D", "seq_len"])
def test_predict_rejects_bad_inputs(published, name, bad):
    args = {"N": 7e9, "D": 1.4e12, "seq_len": 2048, name: bad}
    with pytest.raises(ValueError, match=name):
        published.predict(args["N"], args["D"], seq_len=args["seq_len"])
    with pytest.raises(ValueError, match=name):
        published.upstream_line(args["N"], args["D"], args["seq_len"])


def test_bad_arrays_prob_and_seq_len(published):
    with pytest.raises(ValueError, match="N must be positive"):
        published.predict([1e9, -1e9], 1e11)
    with pytest.raises(ValueError, match="broadcast"):
        published.predict([1e9, 2e9], [1e11, 2e11, 3e11])
    for prob in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="prob"):
            published.predict(1e9, 1e11, prob=prob)
    with pytest.raises(ValueError, match="seq_len must be a positive integer"):
        published.upstream_line(7e9, 1.4e12, 2048.5)
    with pytest.raises(ValueError, match="single number"):
        published.upstream_line([7e9, 8e9], 1.4e12, 2048)


def test_fit_rejects_bad_tables():
    sweeps = simulate_sweeps(0)
    with pytest.raises(SweepValidationError, match="'batch_tokens'"):
        BootstrapOLS.fit(sweeps.drop(columns="batch_tokens"))
    with pytest.raises(SweepValidationError, match="'setting'"):
        BootstrapOLS.fit(sweeps.drop(columns="setting"))
    broken = sweeps.copy()
    broken.loc[3, "lr"] = -1e-3
    broken.loc[5, "N"] = np.nan
    with pytest.raises(SweepValidationError) as info:
        BootstrapOLS.fit(broken)
    assert "column 'lr'" in str(info.value) and "rows 3" in str(info.value)
    assert "column 'N'" in str(info.value)
    with pytest.raises(ValueError, match="n_boot"):
        BootstrapOLS.fit(sweeps, n_boot=0)
    with pytest.raises(ValueError, match="threshold"):
        BootstrapOLS.fit(sweeps, threshold=0)
    with pytest.raises(TypeError, match="DataFrame"):
        BootstrapOLS.fit(sweeps.to_numpy())


def test_constructor_validates_coefficients():
    with pytest.raises(ValueError, match="shape"):
        BootstrapOLS(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="lr_coefD"):
        BootstrapOLS(pd.DataFrame(np.zeros((2, 4)), columns=[*COEFFICIENT_COLUMNS[:2], "x", "y"]))
    with pytest.raises(ValueError, match="finite"):
        BootstrapOLS(np.array([[1.0, np.nan, 0.1, 0.2, 0.5]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = BootstrapOLS(np.array([[0.0, -0.7, 0.3, -0.5, 0.57]] * 2))
    assert model.table2()["alpha"] == -0.7
