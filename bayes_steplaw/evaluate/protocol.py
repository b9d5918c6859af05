"""The protocol of a method the held-out evaluation scores, and what a fold gives it.

A **method** has a ``name`` and ``fit(train, context) -> predictor``; a **predictor** has
``predict(settings) -> MethodPrediction`` (see :mod:`bayes_steplaw.evaluate.methods` for the
built-in ones and an example). :class:`FoldContext` is what a fold passes besides its
training runs; :class:`MethodPrediction` what a predictor returns, checked by
:meth:`MethodPrediction.checked` before it is scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .._validate import DEFAULT_TOL
from .metrics import DEFAULT_MASSES

BOUNDS = ("lr_lower", "lr_upper", "batch_tokens_lower", "batch_tokens_upper")
"""Keys of one interval of a :class:`MethodPrediction`."""


@dataclass(frozen=True, eq=False)
class FoldContext:
    """What a method may use to fit one fold besides its training runs.

    ``sweeps`` is the *whole* table, there only so that a model compiled once on it can be
    refitted with weights (:meth:`weights`): a method must not learn from the runs of
    ``test`` settings. ``seed`` is the fold's own seed (derived from the evaluation's seed,
    the fold and the method's name).
    """

    split: str
    fold: str
    sweeps: pd.DataFrame
    fingerprint: str
    train: frozenset
    test: tuple[str, ...]
    groups: tuple[str, ...]
    seed: int = 0
    chains: int = 2
    draws: int = 500
    tune: int = 500
    cores: int = 1
    tol: float = DEFAULT_TOL
    masses: tuple[float, ...] = DEFAULT_MASSES

    def weights(self, runs: pd.DataFrame) -> np.ndarray:
        """1 for each run of a training setting, 0 for a held-out one."""
        return runs["setting"].isin(self.train).to_numpy(float)

    def sampler(self) -> dict[str, Any]:
        """Sampler settings of a fold's NUTS fit (one process per fold: ``cores`` threads)."""
        return {
            "chains": self.chains,
            "draws": self.draws,
            "tune": self.tune,
            "seed": self.seed,
            "progressbar": False,
            "sampler_kwargs": {"cores": self.cores},
        }


@dataclass
class MethodPrediction:
    """A method's prediction for the held-out settings of a fold (one entry per setting).

    Parameters
    ----------
    lr, batch_tokens : array, shape (settings,)
        The method's choice; NaN where it gives none (a law without a learning rate).
    intervals : dict, optional
        ``{mass: {"lr_lower", "lr_upper", "batch_tokens_lower", "batch_tokens_upper"}}``,
        arrays of shape (settings,). Missing masses are taken from ``draws`` (equal-tailed).
    draws : array, shape (settings, samples, 2), optional
        Predictive draws of (ln lr, ln batch tokens), for the log score.
    uses_loss : bool
        The method read ``best_loss`` (the held-out setting's best observed loss).
    note : str
        What the intervals (or the choice) are about, for the report.
    """

    lr: np.ndarray
    batch_tokens: np.ndarray
    intervals: dict = field(default_factory=dict)
    draws: np.ndarray | None = None
    uses_loss: bool = False
    note: str = ""

    def checked(self, n: int, masses: tuple[float, ...], who: str) -> MethodPrediction:
        """This prediction with arrays of ``n`` settings and intervals at every mass it can
        give, else a ValueError naming the method and the field."""
        lr = np.asarray(self.lr, dtype=float).reshape(-1)
        bs = np.asarray(self.batch_tokens, dtype=float).reshape(-1)
        for name, arr in (("lr", lr), ("batch_tokens", bs)):
            if arr.shape != (n,):
                raise ValueError(f"method {who!r}: {name} has {arr.size} values for {n} settings")
        draws = None if self.draws is None else np.asarray(self.draws, dtype=float)
        if draws is not None and (draws.ndim != 3 or draws.shape[0] != n or draws.shape[2] != 2):
            raise ValueError(
                f"method {who!r}: draws must have shape ({n}, samples, 2) (ln lr, ln batch "
                f"tokens); got {draws.shape}"
            )
        intervals = {}
        for mass in masses:
            given = self.intervals.get(mass)
            if given is None and draws is not None:
                given = intervals_from_draws(draws, mass)
            if given is None:
                continue
            missing = [k for k in BOUNDS if k not in given]
            if missing:
                raise ValueError(f"method {who!r}: interval at {mass:g} lacks {missing}")
            intervals[mass] = {k: np.asarray(given[k], dtype=float).reshape(n) for k in BOUNDS}
        return MethodPrediction(lr, bs, intervals, draws, bool(self.uses_loss), str(self.note))


def intervals_from_draws(draws: np.ndarray, mass: float) -> dict[str, np.ndarray]:
    """Equal-tailed interval bounds (lr, batch tokens) at ``mass`` from log draws."""
    q = [(1 - mass) / 2, (1 + mass) / 2]
    lo, hi = np.exp(np.quantile(draws, q, axis=1))  # each (settings, 2)
    return {
        "lr_lower": lo[:, 0],
        "lr_upper": hi[:, 0],
        "batch_tokens_lower": lo[:, 1],
        "batch_tokens_upper": hi[:, 1],
    }


@runtime_checkable
class Predictor(Protocol):
    """What :meth:`Method.fit` returns."""

    def predict(self, settings: pd.DataFrame) -> MethodPrediction:
        """Predict the held-out settings (one row each)."""
        ...


@runtime_checkable
class Method(Protocol):
    """A method the evaluation scores: a ``name`` and ``fit``."""

    name: str

    def fit(self, train: pd.DataFrame, context: FoldContext) -> Predictor:
        """Fit on the training runs of one fold."""
        ...
