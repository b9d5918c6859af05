"""Published optimal-hyperparameter laws, each written once, with its source and units.

The Step Law paper (Li et al. 2025, "Predictable Scale: Part I", arXiv:2503.04715) compares
its own law (its Table 2) with six earlier laws (its Table 1). This module writes each of them
once, as a :class:`PublishedLaw`: source, formula, units, the inputs it needs, the readings
chosen where Table 1 is ambiguous or garbled, and a vectorised evaluation.

Conventions, for every law:

* ``N`` is the number of non-embedding parameters and ``D`` the number of training tokens (the
  Step Law's notation, its section 1.1). ``loss`` is a cross-entropy loss in nats; the
  evaluation of the released sweeps passes each setting's best observed smoothed training loss.
* :meth:`PublishedLaw.lr` gives the peak learning rate and :meth:`PublishedLaw.batch_tokens`
  the batch size **in tokens**, whatever unit the law itself uses (:attr:`PublishedLaw.batch_unit`
  says which; sequences are multiplied by ``seq_len``). A law that gives no learning rate (or
  no batch size) returns ``None``.
* ``log`` is the natural logarithm throughout (see the OpenAI law's note).
* Compute is ``C = M * D`` FLOPs with ``M`` the non-embedding training FLOPs per token, as in
  DeepSeek LLM; ``M`` defaults to ``6 N`` (so ``C = 6 N D``) unless ``flops_per_token`` is
  given (:func:`steplaw_flops_per_token` computes the Step Law repository's ``M``).

The laws, with the constants as implemented ([...] is what the Step Law's Table 1 prints
where it differs; ``C = M D`` is compute in FLOPs, ``L`` the loss):

=========  ===================  =========================  =======================  =======  ====
key        source (arXiv)       peak learning rate         batch size (tokens)      needs    eval
=========  ===================  =========================  =======================  =======  ====
steplaw    Li 2503.04715        1.79 N^-0.713 D^0.307      0.58 D^0.571             N, D     yes
openai     Kaplan 2001.08361    0.003239 - 0.0001395 ln N  2e8 L^-4.7619 [2e18]     N, loss  yes
microsoft  Bjorck 2409.19913    1.3192e-5 N^-0.23 D^-0.32  (none)                   N, D     no
deepseek   DeepSeek 2401.02954  0.3118 C^-0.125 [0.3188]   0.2920 C^0.3271          N, D     yes
porian     Porian 2406.19146    3.7 N^-0.36                0.7576 N^0.703           N        yes
minicpm    Hu 2404.06395        (none)                     1.21e9 L^-6.24 [2e18]    loss     yes
meituan    Wang 2410.05661      lambda L^-alpha            lambda_B L^(-1/alpha_B)  loss     no
=========  ===================  =========================  =======================  =======  ====

Two laws are not evaluable (:attr:`PublishedLaw.evaluable` is False, and evaluating them raises
:class:`LawNotEvaluableError`): MeiTuan's because no fitted constants were published in Table 1
or found in the original paper's retrievable text, Microsoft's because the constant Table 1
prints gives learning rates some six orders of magnitude below the swept grid, which
contradicts Table 1's own 9.25 per-mille error for that law, and Bjorck et al.'s own constant
could not be retrieved. Each law's :attr:`~PublishedLaw.note` records the readings chosen and
where they were found.

This module imports only NumPy at import time (pandas inside :meth:`PublishedLaw.predict` and
:func:`laws_table`), never PyMC, ArviZ or xarray, and nothing else from this package, so that
any module may import it.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_SEQ_LEN",
    "INPUTS",
    "LAWS",
    "PAPER_TABLE2",
    "STEP_LAW",
    "LawNotEvaluableError",
    "PublishedLaw",
    "evaluable_laws",
    "get_law",
    "laws_table",
    "steplaw_flops_per_token",
]

PAPER_TABLE2: dict[str, float] = {
    "lr_coef": 1.79,
    "alpha": -0.713,
    "beta": 0.307,
    "bs_coef": 0.58,
    "gamma": 0.571,
}
"""The Step Law's constants as printed in the paper's Table 2:
``lr = lr_coef N^alpha D^beta`` and ``bs = bs_coef D^gamma`` (tokens). The published bootstrap
ensemble's exp(mean ``lr_intercept``) is 1.7973, which the paper prints as 1.79 (truncated);
the other four are the ensemble means rounded."""

DEFAULT_SEQ_LEN = 2048
"""Sequence length (tokens) of the released sweeps, the default of ``seq_len``."""

INPUTS = ("N", "D", "loss")
"""The inputs a law may need (:attr:`PublishedLaw.needs` is a subset)."""

_BATCH_UNITS = ("tokens", "sequences")

Kernel = Callable[[Mapping[str, np.ndarray]], np.ndarray]
"""A law's formula: a mapping of broadcast float arrays (``N``, ``D``, ``loss`` when given,
``C`` = compute in FLOPs) to an array in the law's own unit."""


class LawNotEvaluableError(ValueError):
    """The law cannot be evaluated: its constants were not published, or are unusable."""


# --------------------------------------------------------------------------- validation


def _positive(value: Any, name: str) -> np.ndarray:
    """``value`` as a float array of positive finite numbers, else a ValueError naming it."""
    try:
        raw = np.asarray(value)
        if raw.dtype == bool:
            raise TypeError("boolean")
        arr = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}") from None
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        if arr.ndim == 0:
            raise ValueError(f"{name} must be positive and finite; got {value!r}")
        first = arr.ravel()[np.flatnonzero(bad.ravel())[0]]
        raise ValueError(
            f"{name} must be positive and finite; {int(bad.sum())} of {arr.size} values are "
            f"not (e.g. {first!r})"
        )
    return arr


def _broadcast(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays broadcast to one shape, or a ValueError naming the shapes."""
    try:
        out = np.broadcast_arrays(*arrays.values())
    except ValueError:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
        raise ValueError(
            f"{', '.join(arrays)} cannot be broadcast together; shapes {shapes}"
        ) from None
    return dict(zip(arrays, out))


def steplaw_flops_per_token(
    h: Any, ffnh: Any, numl: Any, seq_len: Any = DEFAULT_SEQ_LEN
) -> np.ndarray:
    """Non-embedding training FLOPs per token ``M`` of a dense Step Law model.

    The Step Law repository (``code/fit_tool.py``, ``query_optimal_lr_bs_data``) computes
    ``M = 6 (4 h + 3 ffnh + 2 seq_len) numl h`` and ``C = M D`` for the DeepSeek comparison
    (DeepSeek LLM's compute, which counts attention FLOPs, rather than ``6 N D``). It
    reproduces the paper's Table 3 (e.g. ``h=1280, ffnh=12264, numl=8`` gives 2.83e9).

    Parameters
    ----------
    h, ffnh, numl : float or array_like
        Model width ``d_model``, feed-forward hidden size and number of layers (the columns
        ``h``, ``ffnh``, ``numl`` of the released dense sweeps).
    seq_len : float or array_like
        Sequence length in tokens.

    Returns
    -------
    numpy.ndarray
        ``M`` in FLOPs per token, broadcast over the inputs; pass it as ``flops_per_token``.
    """
    x = _broadcast(
        {
            "h": _positive(h, "h"),
            "ffnh": _positive(ffnh, "ffnh"),
            "numl": _positive(numl, "numl"),
            "seq_len": _positive(seq_len, "seq_len"),
        }
    )
    return 6.0 * (4.0 * x["h"] + 3.0 * x["ffnh"] + 2.0 * x["seq_len"]) * x["numl"] * x["h"]


# --------------------------------------------------------------------------- the law


@dataclass(frozen=True, repr=False)
class PublishedLaw:
    """One published law for the optimal peak learning rate and/or batch size.

    Parameters
    ----------
    name : str
        Short key, e.g. ``"steplaw"`` (the key of :data:`LAWS`).
    label : str
        Display name, e.g. ``"OpenAI (Kaplan et al. 2020)"``.
    source : str
        Citation with arXiv id.
    lr_formula, batch_formula : str or None
        Human-readable formulas as implemented (``None``: the law gives no learning rate /
        batch size). ``log``/``ln`` is natural.
    batch_unit : str or None
        What the batch formula's own number means: ``"tokens"`` or ``"sequences"`` (``None``
        when the law gives no batch size or its unit is unknown).
    needs : tuple of str
        Inputs the law's formulas use, a subset of :data:`INPUTS`.
    note : str
        Readings chosen where the Step Law's Table 1 is ambiguous, where they were found, and
        caveats.
    lr_needs, batch_needs : tuple of str, optional
        Inputs of each formula separately (default: ``needs``); a missing ``loss`` is an error
        only for a formula that needs it.
    uses_compute : bool
        The formulas use compute ``C`` (= ``flops_per_token * D``, default ``6 N D``).
    evaluable : bool
        False where the law cannot be evaluated (see ``not_evaluable_reason``).
    not_evaluable_reason : str or None
        Why, where ``evaluable`` is False.
    constants : mapping
        The constants as implemented (read-only).
    paper_relative_error : float or None
        The law's relative loss error as the Step Law's Table 1 reports it (a fraction:
        9.51 per mille is 0.00951), ``None`` where Table 1 gives none.
    lr_function, batch_function : callable or None
        The formulas: each maps ``{"N", "D", "loss" (when given), "C"}`` (broadcast float
        arrays) to an array in the law's own unit; ``None`` where there is no formula or no
        constants.

    Notes
    -----
    Instances are immutable; the published ones are in :data:`LAWS`.
    """

    name: str
    label: str
    source: str
    lr_formula: str | None
    batch_formula: str | None
    batch_unit: str | None
    needs: tuple[str, ...]
    note: str
    lr_needs: tuple[str, ...] | None = None
    batch_needs: tuple[str, ...] | None = None
    uses_compute: bool = False
    evaluable: bool = True
    not_evaluable_reason: str | None = None
    constants: Mapping[str, float] = field(default_factory=dict, compare=False)
    paper_relative_error: float | None = None
    lr_function: Kernel | None = field(default=None, compare=False)
    batch_function: Kernel | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        needs = tuple(self.needs)
        bad = [x for x in needs if x not in INPUTS]
        if bad:
            raise ValueError(f"needs must be a subset of {INPUTS}; got {needs}")
        object.__setattr__(self, "needs", needs)
        for attr, formula in (("lr_needs", self.lr_formula), ("batch_needs", self.batch_formula)):
            part = getattr(self, attr)
            part = () if formula is None else needs if part is None else tuple(part)
            if not set(part) <= set(needs):
                raise ValueError(f"{attr} {part} must be a subset of needs {needs}")
            object.__setattr__(self, attr, part)
        if self.batch_unit is not None and self.batch_unit not in _BATCH_UNITS:
            raise ValueError(
                f"batch_unit must be one of {_BATCH_UNITS} or None; got {self.batch_unit!r}"
            )
        if self.batch_function is not None and self.batch_unit is None:
            raise ValueError("a law with a batch formula must say its batch_unit")
        for formula, fn, what in (
            (self.lr_formula, self.lr_function, "lr"),
            (self.batch_formula, self.batch_function, "batch"),
        ):
            if formula is None and fn is not None:
                raise ValueError(f"{what}_function given without {what}_formula")
            if self.evaluable and formula is not None and fn is None:
                raise ValueError(f"an evaluable law needs a {what}_function for its {what}_formula")
        if not self.evaluable and not self.not_evaluable_reason:
            raise ValueError("a law that is not evaluable must give not_evaluable_reason")
        object.__setattr__(self, "constants", MappingProxyType(dict(self.constants)))

    def __repr__(self) -> str:
        unit = f" [{self.batch_unit}]" if self.batch_unit else ""
        flag = "" if self.evaluable else "; not evaluable"
        return (
            f"PublishedLaw({self.name!r}: {self.lr_formula or 'no lr'}; "
            f"{self.batch_formula or 'no batch'}{unit}{flag})"
        )

    # ----------------------------------------------------------------- evaluation

    def _inputs(
        self, N: Any, D: Any, loss: Any, flops_per_token: Any, seq_len: Any = None
    ) -> dict[str, np.ndarray]:
        """Validated inputs broadcast to one shape, with compute ``C`` added."""
        arrays = {"N": _positive(N, "N"), "D": _positive(D, "D")}
        if loss is not None:
            arrays["loss"] = _positive(loss, "loss")
        if flops_per_token is not None:
            arrays["flops_per_token"] = _positive(flops_per_token, "flops_per_token")
        if seq_len is not None:
            arrays["seq_len"] = _positive(seq_len, "seq_len")
        x = _broadcast(arrays)
        m = x.pop("flops_per_token", None)
        x["C"] = (6.0 * x["N"] if m is None else m) * x["D"]
        return x

    def _check(
        self, part: str, x: Mapping[str, np.ndarray], force: bool, fn: Kernel | None
    ) -> None:
        """Raise if the law cannot be evaluated, or the part needs a missing loss."""
        if not self.evaluable and not (force and fn is not None):
            hint = "" if fn is None else " (pass force=True to evaluate the formula as printed)"
            raise LawNotEvaluableError(
                f"the {self.label} law is not evaluable: {self.not_evaluable_reason}{hint}"
            )
        if "loss" in getattr(self, f"{part}_needs") and "loss" not in x:
            what = "learning rate" if part == "lr" else "batch size"
            raise ValueError(
                f"the {self.label} law needs loss: its {what} is a function of the loss L; pass "
                f"loss=... (e.g. the setting's best observed smoothed loss)"
            )

    def lr(
        self,
        N: Any,
        D: Any,
        *,
        loss: Any = None,
        flops_per_token: Any = None,
        force: bool = False,
    ) -> np.ndarray | None:
        """The law's optimal peak learning rate.

        Parameters
        ----------
        N : float or array_like
            Non-embedding parameters (positive, finite).
        D : float or array_like
            Training tokens (positive, finite).
        loss : float or array_like, optional
            Cross-entropy loss in nats; required by laws whose learning rate is a function of
            the loss (``"loss" in lr_needs``).
        flops_per_token : float or array_like, optional
            Non-embedding training FLOPs per token ``M`` for laws of compute ``C = M D``
            (DeepSeek); default ``6 N``. Ignored by the other laws (but still checked).
        force : bool
            Evaluate a law flagged not evaluable where it has a formula (Microsoft's, with the
            constant as printed). A law without constants (MeiTuan) still raises.

        Returns
        -------
        numpy.ndarray or None
            The learning rate, of the broadcast shape of the inputs (0-d for scalars);
            ``None`` when the law gives no learning rate. NaN where the formula is not
            positive (the OpenAI rule for ``N`` above about 1.2e10).

        Raises
        ------
        ValueError
            An input is not positive and finite (the message names it), the inputs cannot be
            broadcast, or the law needs ``loss`` and none was given.
        LawNotEvaluableError
            The law is not evaluable (see :attr:`not_evaluable_reason`).
        """
        x = self._inputs(N, D, loss, flops_per_token)
        if self.lr_formula is None:
            return None
        self._check("lr", x, force, self.lr_function)
        assert self.lr_function is not None
        return np.asarray(self.lr_function(x), dtype=float)

    def batch_tokens(
        self,
        N: Any,
        D: Any,
        *,
        loss: Any = None,
        seq_len: Any = DEFAULT_SEQ_LEN,
        flops_per_token: Any = None,
        force: bool = False,
    ) -> np.ndarray | None:
        """The law's optimal batch size, in tokens.

        Parameters
        ----------
        N, D, loss, flops_per_token, force
            As in :meth:`lr`; ``loss`` is required when ``"loss" in batch_needs``.
        seq_len : float or array_like
            Sequence length in tokens; converts a law whose batch is in sequences
            (``batch_unit == "sequences"``) to tokens. Checked, and otherwise unused, for laws
            in tokens.

        Returns
        -------
        numpy.ndarray or None
            Batch size in tokens, of the broadcast shape of the inputs (0-d for scalars);
            ``None`` when the law gives no batch size.

        Raises
        ------
        ValueError
            As in :meth:`lr`.
        LawNotEvaluableError
            The law is not evaluable.
        """
        x = self._inputs(N, D, loss, flops_per_token, seq_len)
        if self.batch_formula is None:
            return None
        self._check("batch", x, force, self.batch_function)
        assert self.batch_function is not None
        native = np.asarray(self.batch_function(x), dtype=float)
        return native * x["seq_len"] if self.batch_unit == "sequences" else native

    def predict(
        self,
        N: Any,
        D: Any,
        *,
        loss: Any = None,
        seq_len: Any = DEFAULT_SEQ_LEN,
        flops_per_token: Any = None,
        force: bool = False,
    ) -> pd.DataFrame:
        """The law's predictions as a table, one row per broadcast point.

        Parameters
        ----------
        N, D, loss, seq_len, flops_per_token, force
            As in :meth:`lr` and :meth:`batch_tokens`. A ``loss`` needed by either formula is
            required.

        Returns
        -------
        pandas.DataFrame
            Columns ``N, D, lr, batch_tokens, batch_sequences`` (``batch_tokens / seq_len``),
            one row per point of the broadcast inputs in C order; ``lr`` or the batch columns
            are NaN where the law gives no learning rate or batch size.

        Raises
        ------
        ValueError
            As in :meth:`lr`.
        LawNotEvaluableError
            The law is not evaluable.
        """
        import pandas as pd

        x = self._inputs(N, D, loss, flops_per_token, seq_len)
        nan = np.full(x["N"].shape, np.nan)
        lr = self.lr(N, D, loss=loss, flops_per_token=flops_per_token, force=force)
        bs = self.batch_tokens(
            N, D, loss=loss, seq_len=seq_len, flops_per_token=flops_per_token, force=force
        )
        lr = nan if lr is None else np.broadcast_to(lr, nan.shape)
        bs = nan if bs is None else np.broadcast_to(bs, nan.shape)
        return pd.DataFrame(
            {
                "N": x["N"].ravel(),
                "D": x["D"].ravel(),
                "lr": np.ravel(lr),
                "batch_tokens": np.ravel(bs),
                "batch_sequences": np.ravel(bs / x["seq_len"]),
            },
            columns=["N", "D", "lr", "batch_tokens", "batch_sequences"],
        )

    def to_dict(self) -> dict[str, Any]:
        """The law's description (no formulas as callables), e.g. for a report.

        Returns
        -------
        dict
            ``name, label, source, lr_formula, batch_formula, batch_unit, needs, evaluable,
            not_evaluable_reason, paper_relative_error, constants, note``.
        """
        return {
            "name": self.name,
            "label": self.label,
            "source": self.source,
            "lr_formula": self.lr_formula,
            "batch_formula": self.batch_formula,
            "batch_unit": self.batch_unit,
            "needs": self.needs,
            "evaluable": self.evaluable,
            "not_evaluable_reason": self.not_evaluable_reason,
            "paper_relative_error": self.paper_relative_error,
            "constants": dict(self.constants),
            "note": self.note,
        }


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
