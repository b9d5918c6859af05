"""The type of a published law: its source, formula, units, inputs, and vectorised evaluation.

The laws themselves are in :mod:`bayes_steplaw.laws.published`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validate import DEFAULT_SEQ_LEN, broadcast

if TYPE_CHECKING:
    import pandas as pd


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


INPUTS = ("N", "D", "loss")
"""The inputs a law may need (:attr:`PublishedLaw.needs` is a subset)."""

_BATCH_UNITS = ("tokens", "sequences")

Kernel = Callable[[Mapping[str, np.ndarray]], np.ndarray]
"""A law's formula: a mapping of broadcast float arrays (``N``, ``D``, ``loss`` when given,
``C`` = compute in FLOPs) to an array in the law's own unit."""


class LawNotEvaluableError(ValueError):
    """The law cannot be evaluated: its constants were not published, or are unusable."""


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
    (h, ffnh, numl, seq_len), _ = broadcast(
        {"h": h, "ffnh": ffnh, "numl": numl, "seq_len": seq_len}
    )
    return 6.0 * (4.0 * h + 3.0 * ffnh + 2.0 * seq_len) * numl * h


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
        named = {"N": N, "D": D, "loss": loss, "flops_per_token": flops_per_token}
        named = {k: v for k, v in (named | {"seq_len": seq_len}).items() if v is not None}
        x = dict(zip(named, broadcast(named)[0]))
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
