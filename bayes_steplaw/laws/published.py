"""The published laws: the Step Law's Table 2 and the rows of its Table 1, each written once.

See :mod:`bayes_steplaw.laws` for the conventions and the table of laws.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from .law import PAPER_TABLE2, PublishedLaw

# --------------------------------------------------------------------------- the formulas


def _steplaw_lr(x: Mapping[str, np.ndarray]) -> np.ndarray:
    t = PAPER_TABLE2
    return t["lr_coef"] * x["N"] ** t["alpha"] * x["D"] ** t["beta"]


def _steplaw_batch(x: Mapping[str, np.ndarray]) -> np.ndarray:
    t = PAPER_TABLE2
    return t["bs_coef"] * x["D"] ** t["gamma"]


_KAPLAN = {"lr_a": 0.003239, "lr_b": -0.0001395, "B_star": 2e8, "alpha_B": 0.21}
_KAPLAN_N_MAX = math.exp(-_KAPLAN["lr_a"] / _KAPLAN["lr_b"])  # ~1.21e10, where the rule hits 0


def _kaplan_lr(x: Mapping[str, np.ndarray]) -> np.ndarray:
    lr = _KAPLAN["lr_a"] + _KAPLAN["lr_b"] * np.log(x["N"])
    if np.any(lr <= 0):
        warnings.warn(
            f"the OpenAI (Kaplan et al. 2020) learning-rate rule is not positive for "
            f"N >= {_KAPLAN_N_MAX:.3g} (Kaplan et al.: it 'breaks down for N > 10^10'); NaN "
            f"returned there",
            RuntimeWarning,
            stacklevel=3,
        )
    return np.where(lr > 0, lr, np.nan)


def _kaplan_batch(x: Mapping[str, np.ndarray]) -> np.ndarray:
    return _KAPLAN["B_star"] * x["loss"] ** (-1.0 / _KAPLAN["alpha_B"])


_BJORCK_PRINTED = {"C": 1.3192e-5, "alpha": 0.23, "beta": 0.32}


def _bjorck_lr_as_printed(x: Mapping[str, np.ndarray]) -> np.ndarray:
    c = _BJORCK_PRINTED
    return c["C"] * x["N"] ** -c["alpha"] * x["D"] ** -c["beta"]


_DEEPSEEK = {"lr_coef": 0.3118, "lr_exp": -0.1250, "bs_coef": 0.2920, "bs_exp": 0.3271}


def _deepseek_lr(x: Mapping[str, np.ndarray]) -> np.ndarray:
    return _DEEPSEEK["lr_coef"] * x["C"] ** _DEEPSEEK["lr_exp"]


def _deepseek_batch(x: Mapping[str, np.ndarray]) -> np.ndarray:
    return _DEEPSEEK["bs_coef"] * x["C"] ** _DEEPSEEK["bs_exp"]


_PORIAN = {"lr_coef": 3.7, "lr_exp": -0.36, "bs_coef": 0.7576, "bs_exp": 0.703}


def _porian_lr(x: Mapping[str, np.ndarray]) -> np.ndarray:
    return _PORIAN["lr_coef"] * x["N"] ** _PORIAN["lr_exp"]


def _porian_batch(x: Mapping[str, np.ndarray]) -> np.ndarray:
    return _PORIAN["bs_coef"] * x["N"] ** _PORIAN["bs_exp"]


_MINICPM = {"bs_coef": 1.21e9, "bs_exp": 6.24}


def _minicpm_batch(x: Mapping[str, np.ndarray]) -> np.ndarray:
    return _MINICPM["bs_coef"] / x["loss"] ** _MINICPM["bs_exp"]


# --------------------------------------------------------------------------- the laws

STEP_LAW = PublishedLaw(
    name="steplaw",
    label="Step Law (Li et al. 2025)",
    source=(
        "Li, Zheng, Hu, Wang, Zhang, Wang, Xuyang, Fan, Zhou, Zhang, Jiang (2025), Predictable "
        "Scale: Part I - Optimal Hyperparameter Scaling Law in Large Language Model "
        "Pretraining, arXiv:2503.04715, Table 2 / Eq. (1)"
    ),
    lr_formula="lr = 1.79 · N^-0.713 · D^0.307",
    batch_formula="batch = 0.58 · D^0.571",
    batch_unit="tokens",
    needs=("N", "D"),
    lr_needs=("N", "D"),
    batch_needs=("D",),
    constants=PAPER_TABLE2,
    paper_relative_error=0.94e-3,
    lr_function=_steplaw_lr,
    batch_function=_steplaw_batch,
    note=(
        "Constants as printed in Table 2 (PAPER_TABLE2); they are the means of the published "
        "1000 bootstrap OLS fits of ln lr on (ln N, ln D) and ln batch on ln D "
        "(1004_fitted_lr_bs_scaling_model_parameters.csv), with 1.79 the truncation of "
        "exp(mean intercept) = 1.7973; the upstream tool (fit_tool.py pred-opt-lr-bs) uses the "
        "unrounded means, so it differs from this law by up to ~3% in lr (rounding of the "
        "printed constants). Batch in tokens: section 1.1 defines B as the optimal batch size "
        "in tokens, and the repository's fit converts bs (sequences) to tokens with bs * "
        "seq_len before fitting. N is non-embedding parameters, D training tokens."
    ),
)

_OPENAI = PublishedLaw(
    name="openai",
    label="OpenAI (Kaplan et al. 2020)",
    source=(
        "Kaplan, McCandlish, Henighan, Brown, Chess, Child, Gray, Radford, Wu, Amodei (2020), "
        "Scaling Laws for Neural Language Models, arXiv:2001.08361, Eq. (D.1) and Eq. (5.3)"
    ),
    lr_formula="lr = 0.003239 - 0.0001395 · ln N",
    batch_formula="batch = 2e8 · L^(-1/0.21) = 2e8 · L^-4.76190",
    batch_unit="tokens",
    needs=("N", "loss"),
    lr_needs=("N",),
    batch_needs=("loss",),
    constants=_KAPLAN,
    paper_relative_error=9.51e-3,
    lr_function=_kaplan_lr,
    batch_function=_kaplan_batch,
    note=(
        "lr: Kaplan et al. Appendix D.6, Eq. (D.1), 'LR(N) ~ 0.003239 + -0.0001395 log(N)', a "
        "rule of thumb used for most of their runs, N non-embedding parameters. log is read as "
        "natural: Kaplan et al. add that the formula 'breaks down for N > 10^10', and the "
        "natural-log line reaches zero at N = exp(0.003239/0.0001395) = 1.21e10, whereas a "
        "base-10 line would stay positive up to N ~ 1e23 (and give ~6x larger rates at 1e9); the "
        "Step Law repository also uses np.log throughout. Where the rule is not positive "
        "(N >= 1.21e10) lr is NaN, with a RuntimeWarning. Batch: Kaplan et al. section 5.1, "
        "Eq. (5.3), critical batch size B_crit(L) ~ B*/L^(1/alpha_B), B* ~ 2e8 tokens, "
        "alpha_B ~ 0.21 (Table 5: B* = 2.1e8 tokens). Table 1 prints 2e18 * L^-4.76190: the "
        "exponent is -1/0.21, but 2e18 is a typo for 2e8 (2e18 would give ~2.5e16 tokens per "
        "step at L = 2.5), so 2e8 is used. B_crit is Kaplan's time/compute trade-off batch, "
        "which Table 1 uses as this law's batch size. It needs the loss: Kaplan's L is the "
        "WebText2 test loss (nats, GPT-2 BPE); the evaluation passes the Step Law setting's "
        "best observed smoothed training loss (65,536-token vocabulary), so the loss scales "
        "differ - a reading, not a replication."
    ),
)

_MICROSOFT = PublishedLaw(
    name="microsoft",
    label="Microsoft (Bjorck et al. 2024)",
    source=(
        "Bjorck, Benhaim, Chaudhary, Wei, Song (2024), Scaling Optimal LR Across Token "
        "Horizons, arXiv:2409.19913 (ICLR 2025)"
    ),
    lr_formula="lr = 1.3192e-5 · N^-0.23 · D^-0.32  (constant as printed in Table 1)",
    batch_formula=None,
    batch_unit=None,
    needs=("N", "D"),
    constants=_BJORCK_PRINTED,
    paper_relative_error=9.25e-3,
    lr_function=_bjorck_lr_as_printed,
    evaluable=False,
    not_evaluable_reason=(
        "the coefficient printed in the Step Law's Table 1 (1.3192e-5) gives peak learning "
        "rates of ~1e-10 at the released settings, about six orders of magnitude below the "
        "swept grid (2^-12 .. 2^-5.5), which contradicts Table 1's own 9.25 per-mille error "
        "for this law; Bjorck et al.'s own fitted constant could not be retrieved"
    ),
    note=(
        "Form LR*(N, D) = C N^-alpha D^-beta (the Step Law's section 2 quotes it from Bjorck "
        "et al.), exponents alpha = 0.23, beta = 0.32 as printed in Table 1; Bjorck et al. fit "
        "at a fixed batch, so the law gives no batch size (Table 1: '-'). The coefficient is "
        "garbled: the text layer reads '1.3192e5', the LaTeX '1.3192e^{-5}'. It is read here "
        "as 1.3192 x 10^-5 (e-notation); the other readings do not rescue it: 1.3192 * e^-5 "
        "(8.9e-3, as SmallDoge's scaling_law.py reads it) still gives lr ~ 1e-7, and 1.3192e5 "
        "gives lr ~ 0.3-1. A coefficient near 1.4e2 would give ~1e-3, so Table 1's coefficient "
        "is likely in other units or mis-transcribed, and Bjorck et al.'s paper text was not "
        "in the reference corpora. (A third-party script in the public code index uses "
        "1.55e-3 (N/1e9)^-0.23 (D/1e9)^-0.32, ~138 N^-0.23 D^-0.32, citing no source; it is "
        "not used.) Not evaluable; force=True evaluates the formula as printed."
    ),
)

_DEEPSEEK_LAW = PublishedLaw(
    name="deepseek",
    label="DeepSeek (DeepSeek-AI et al. 2024)",
    source=(
        "DeepSeek-AI (Bi, Chen, Chen, et al.) (2024), DeepSeek LLM: Scaling Open-Source "
        "Language Models with Longtermism, arXiv:2401.02954, section 3.1, Eq. (1)"
    ),
    lr_formula="lr = 0.3118 · C^-0.1250,  C = M·D (default M = 6N)",
    batch_formula="batch = 0.2920 · C^0.3271,  C = M·D (default M = 6N)",
    batch_unit="tokens",
    needs=("N", "D"),
    uses_compute=True,
    constants=_DEEPSEEK,
    paper_relative_error=9.26e-3,
    lr_function=_deepseek_lr,
    batch_function=_deepseek_batch,
    note=(
        "DeepSeek LLM Eq. (1): eta_opt = 0.3118 C^-0.1250, B_opt = 0.2920 C^0.3271, fitted on "
        "1e17-2e19 FLOPs, with C = M D the compute in FLOPs, M the non-embedding FLOPs per token "
        "(attention included) and B in tokens. Table 1 prints the learning-rate coefficient as "
        "0.3188; DeepSeek LLM's Eq. (1) reads 0.3118 (as every transcription of it in the "
        "reference corpora does; one set of lecture notes records the same 0.3188/0.3118 "
        "discrepancy between slides), so 0.3118 is used. C defaults to 6 N D (the Step Law's "
        "'compute budget in FLOPs' with the usual 6ND); the Step Law repository instead "
        "computes C = M D with M = 6 (4h + 3ffnh + 2 seq_len) numl h "
        "(steplaw_flops_per_token), which is 10-30% larger than 6N for the released dense "
        "models (about 1.5-3% lower lr, 3-9% larger batch); pass flops_per_token=M to use it "
        "(the MoE sweep file has an M column, the active FLOPs per token)."
    ),
)

_PORIAN_LAW = PublishedLaw(
    name="porian",
    label="Porian et al. 2024",
    source=(
        "Porian, Wortsman, Jitsev, Schmidt, Carmon (2024), Resolving Discrepancies in "
        "Compute-Optimal Scaling of Language Models, arXiv:2406.19146 (NeurIPS 2024)"
    ),
    lr_formula="lr = 3.7 · N^-0.36",
    batch_formula="batch = 0.7576 · N^0.703",
    batch_unit="tokens",
    needs=("N",),
    constants=_PORIAN,
    paper_relative_error=3.71e-3,
    lr_function=_porian_lr,
    batch_function=_porian_batch,
    note=(
        "Constants as printed in Table 1 (Porian et al.'s own text was not in the reference "
        "corpora). The Step Law's section 2 notes that Porian et al. 'only considered model "
        "size, setting final learning rates at 0.1% of peak values', so the law has no D. "
        "Batch read as tokens: at N = 1e8 the formula gives 3.2e5, i.e. 156 sequences of 2048 "
        "tokens, whereas as a count of sequences it would mean 6.6e8 tokens per step; at the "
        "Step Law's 1B/100B test point the token reading gives lr 2.1e-3 and 1.6M tokens, next "
        "to the Step Law's 1.6e-3 and 1.1M, consistent with Table 1's 3.71 per mille (second "
        "best). Porian et al. trace part of the Kaplan/Chinchilla discrepancy to the output "
        "(head) layer's cost, so their parameter count is not necessarily the non-embedding N "
        "passed here (the head, 65,536 x d_model, is 13-29% of N for the released dense "
        "models); N is passed unchanged."
    ),
)

_MINICPM_LAW = PublishedLaw(
    name="minicpm",
    label="MiniCPM (Hu et al. 2024)",
    source=(
        "Hu, Tu, Han, He, Cui, Long, Zheng, Fang, Huang, Zhao, et al. (2024), MiniCPM: "
        "Unveiling the Potential of Small Language Models with Scalable Training Strategies, "
        "arXiv:2404.06395, section 3.2"
    ),
    lr_formula=None,
    batch_formula="batch = 1.21e9 / L^6.24",
    batch_unit="tokens",
    needs=("loss",),
    constants=_MINICPM,
    paper_relative_error=None,
    batch_function=_minicpm_batch,
    note=(
        "MiniCPM section 3.2: 'bs = 1.21 x 10^9 / L^6.24' with L the C4 loss, fitted on "
        "0.009B-0.17B models. Table 1 prints 2e18/L^6.24; 2e18 is not MiniCPM's coefficient "
        "(apparently carried over from the OpenAI row, itself a typo) and would give ~1e16 "
        "tokens per step, so 1.21e9 is used. Batch in tokens: MiniCPM-2.4B was trained with a "
        "batch of 3.93 million (Table 2: '4M'), and at its C4 loss (~2.45) the formula gives "
        "4.5e6. No learning-rate law: MiniCPM uses Tensor Programs (muP) scaling with a fixed "
        "base learning rate of 0.01 at every size (section 3.3), which does not transfer to a "
        "standard parameterisation; Table 1 gives '-'. The law is a function of the loss, "
        "which MiniCPM itself calls a chicken-and-egg problem (Appendix A.2): the evaluation "
        "passes the setting's best observed smoothed training loss, not a C4 loss. MiniCPM's "
        "optimum minimises tokens to reach a loss on a fixed number of GPUs, not loss at fixed "
        "D."
    ),
)

_MEITUAN = PublishedLaw(
    name="meituan",
    label="MeiTuan (Wang et al. 2024)",
    source=(
        "Wang, Chen, Li, He, Zhang, Wang (2024), Scaling Laws Across Model Architectures: A "
        "Comparative Analysis of Dense and MoE Models in Large Language Models, "
        "arXiv:2410.05661 (EMNLP 2024)"
    ),
    lr_formula="lr = lambda · L^-alpha  (constants not published)",
    batch_formula="batch = lambda_B · L^(-1/alpha_B)  (constants not published)",
    batch_unit=None,
    needs=("loss",),
    evaluable=False,
    not_evaluable_reason=(
        "its constants (lambda, alpha, lambda_B, alpha_B) are not given in the Step Law's "
        "Table 1, and no fitted values were found in the retrievable text of or about Wang et "
        "al. (2024), which give only the functional forms; no numbers are invented here"
    ),
    note=(
        "Table 1 gives only the forms lambda L^-alpha (lr) and lambda_B L^(-alpha_B^-1) "
        "(batch, Kaplan's critical-batch form), both functions of the loss, fitted separately "
        "for dense and MoE models (Wang et al. find MoE models take smaller batches and larger "
        "learning rates at the same loss); summaries of the paper write the batch law as "
        "lambda_B / L^alpha_B. The batch unit is not stated in the material found (None). Not "
        "evaluable."
    ),
)

LAWS: dict[str, PublishedLaw] = {
    law.name: law
    for law in (STEP_LAW, _OPENAI, _MICROSOFT, _DEEPSEEK_LAW, _PORIAN_LAW, _MINICPM_LAW, _MEITUAN)
}
"""The published laws by key: ``steplaw``, ``openai``, ``microsoft``, ``deepseek``, ``porian``,
``minicpm``, ``meituan`` (the Step Law's Table 2 and the rows of its Table 1)."""

_ALIASES = {
    "step": "steplaw",
    "step_law": "steplaw",
    "li": "steplaw",
    "kaplan": "openai",
    "bjorck": "microsoft",
    "deepseek-llm": "deepseek",
    "hu": "minicpm",
    "wang": "meituan",
}


def get_law(name: str | PublishedLaw) -> PublishedLaw:
    """Look up a published law by key (case-insensitive; a few author aliases accepted).

    Parameters
    ----------
    name : str or PublishedLaw
        A key of :data:`LAWS` (``"steplaw"``, ``"openai"``, ``"microsoft"``, ``"deepseek"``,
        ``"porian"``, ``"minicpm"``, ``"meituan"``) or an alias such as ``"kaplan"`` or
        ``"bjorck"``; a :class:`PublishedLaw` is returned as is.

    Returns
    -------
    PublishedLaw

    Raises
    ------
    ValueError
        Unknown name; the message lists the known laws.
    """
    if isinstance(name, PublishedLaw):
        return name
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return LAWS[key]
    except KeyError:
        known = ", ".join(f"{k!r} ({v.label})" for k, v in LAWS.items())
        raise ValueError(f"unknown law {name!r}; the known laws are {known}") from None


def evaluable_laws() -> dict[str, PublishedLaw]:
    """The laws that can be evaluated (``evaluable`` True), by key.

    Returns
    -------
    dict
        A new dict, in the order of :data:`LAWS`.
    """
    return {k: v for k, v in LAWS.items() if v.evaluable}


def laws_table() -> pd.DataFrame:
    """A table describing every published law (one row per law, no values computed).

    Returns
    -------
    pandas.DataFrame
        Indexed by key; columns ``label, source, lr_formula, batch_formula, batch_unit,
        needs, evaluable, not_evaluable_reason, paper_relative_error, note``.
    """
    import pandas as pd

    rows = []
    for law in LAWS.values():
        d = law.to_dict()
        d.pop("constants")
        d["needs"] = ", ".join(law.needs)
        rows.append(d)
    return pd.DataFrame(rows).set_index("name")


def _check_registry() -> None:  # pragma: no cover - import-time consistency
    for key, law in LAWS.items():
        if not isinstance(law.name, str) or key != law.name:
            raise RuntimeError(f"law registry key {key!r} != name {law.name!r}")
        if law.paper_relative_error is not None and not (
            isinstance(law.paper_relative_error, numbers.Real) and 0 < law.paper_relative_error < 1
        ):
            raise RuntimeError(f"{key}: paper_relative_error must be a fraction")


_check_registry()
