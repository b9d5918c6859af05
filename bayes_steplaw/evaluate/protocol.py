"""The protocol of a method the held-out evaluation scores, its tasks, and what a fold gives it.

A **method** has a ``name`` and ``fit(train, context) -> predictor``. A **predictor** does
what it can of the evaluation's tasks (:data:`TASKS`), each through one method of its own:

========== ====================================== =============================================
task       predictor method                       what it returns
========== ====================================== =============================================
choice     ``choose(settings, grid)``, else the   the (lr, batch) to train each held-out
           ``lr``, ``batch_tokens`` of ``predict`` setting with
interval   ``predict(settings)``                  :class:`MethodPrediction`: intervals (or
                                                  draws) of the best run's lr and batch
loss       ``predict_runs(runs)``                 :class:`RunForecast`: the loss of every run
divergence ``predict_runs(runs)``                 the same: each run's probability to diverge
plateau    ``plateau_probability(runs, tol)``     ``{"p_plateau", "p_sweep"}`` per run
========== ====================================== =============================================

A task a predictor has no method for (or whose result lacks the field) is skipped for it: NaN
in its columns, never an error. :class:`FoldContext` is what a fold passes besides its training
runs; :meth:`MethodPrediction.checked` and :meth:`RunForecast.checked` check what a predictor
returns before it is scored.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .._validate import DEFAULT_TOL
from ..bayes.surface import DIVERGED_RATIO
from .metrics import DEFAULT_MASSES

TASKS = ("choice", "interval", "loss", "divergence", "plateau")
"""What the evaluation scores (module docstring), in report order."""

TASK_ABOUT = {
    "choice": "relative loss (‰) of the grid run nearest to the method's choice of lr and batch",
    "interval": "coverage and width of the method's intervals for the held-out sweep's best run "
    "(lr, batch), and their log score",
    "loss": "the loss of every held-out run: R², RMSE, coverage of the predictive intervals, "
    "log score, error of the predicted best loss",
    "divergence": "Brier score of the probability that each held-out run diverges",
    "plateau": "reliability and Brier score of the plateau probabilities of every held-out run",
}
"""Each task in words."""

PREDICTOR_METHODS = {
    "choice": ("choose", "predict"),
    "interval": ("predict",),
    "loss": ("predict_runs",),
    "divergence": ("predict_runs",),
    "plateau": ("plateau_probability",),
}
"""The predictor methods that serve each task, the first one found being used."""

BOUNDS = ("lr_lower", "lr_upper", "batch_tokens_lower", "batch_tokens_upper")
"""Keys of one interval of a :class:`MethodPrediction`."""


def check_tasks(tasks: Any) -> tuple[str, ...]:
    """Task names (a list, or a comma-separated string; None: every task), in report order."""
    if tasks is None:
        return TASKS
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    tasks = list(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; the tasks are {list(TASKS)}")
    if not tasks:
        raise ValueError(f"no task to evaluate; the tasks are {list(TASKS)}")
    return tuple(t for t in TASKS if t in tasks)


def capabilities(predictor: Any) -> set[str]:
    """The tasks a predictor has a method for."""
    return {
        task
        for task, names in PREDICTOR_METHODS.items()
        if any(callable(getattr(predictor, n, None)) for n in names)
    }


@dataclass(frozen=True, eq=False)
class FoldContext:
    """What a method may use to fit one fold besides its training runs.

    ``sweeps`` is the *whole* table, there only so that a model compiled once on it can be
    refitted with weights (:meth:`weights`): a method must not learn from the runs of
    ``test`` settings. ``seed`` is the fold's own seed (derived from the evaluation's seed,
    the fold and the method's name). ``tasks`` are the tasks asked for (a predictor may skip
    work no task needs); ``diverged`` the ratio to its setting's lowest loss above which a run
    counts as diverged; ``k`` the number of the held-out group's settings that train a
    ``transfer`` fold.
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
    tasks: tuple[str, ...] = TASKS
    diverged: float = DIVERGED_RATIO
    k: int | None = None

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
    lr_median, batch_tokens_median : array, shape (settings,), optional
        The median of the distribution the intervals describe (the bias of ``transfer`` is
        measured from it); default: the median of ``draws``, else the choice.
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
    lr_median: np.ndarray | None = None
    batch_tokens_median: np.ndarray | None = None

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
        medians = []
        given_medians = (("lr_median", self.lr_median, lr),
                         ("batch_tokens_median", self.batch_tokens_median, bs))  # fmt: skip
        for i, (name, given, choice) in enumerate(given_medians):
            if given is not None:
                value = np.asarray(given, dtype=float).reshape(-1)
                if value.shape != (n,):
                    raise ValueError(
                        f"method {who!r}: {name} has {value.size} values for {n} settings"
                    )
            elif draws is not None:
                with warnings.catch_warnings():  # a setting without finite draws: NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    value = np.exp(np.nanmedian(draws[..., i], axis=1))
            else:
                value = choice
            medians.append(value)
        return MethodPrediction(lr, bs, intervals, draws, bool(self.uses_loss), str(self.note),
                                medians[0], medians[1])  # fmt: skip


def intervals_from_draws(draws: np.ndarray, mass: float) -> dict[str, np.ndarray]:
    """Equal-tailed interval bounds (lr, batch tokens) at ``mass`` from log draws (draws that
    are not finite, a simulated sweep whose every run diverged, left out)."""
    q = [(1 - mass) / 2, (1 + mass) / 2]
    with warnings.catch_warnings():  # a setting without finite draws: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.exp(np.nanquantile(draws, q, axis=1))  # each (settings, 2)
    return {
        "lr_lower": lo[:, 0],
        "lr_upper": hi[:, 0],
        "batch_tokens_lower": lo[:, 1],
        "batch_tokens_upper": hi[:, 1],
    }


@dataclass
class RunForecast:
    """A method's forecast of every held-out run of a fold (arrays in the order of the runs
    :meth:`predict_runs` was given; mappings by setting id).

    Parameters
    ----------
    median : array, shape (runs,), optional
        Predictive median of the loss each run reports, given that it does not diverge.
    intervals : dict, optional
        ``{mass: (lower, upper)}``: predictive intervals of the same, arrays (runs,).
    log_density : array, shape (runs,), optional
        ln predictive density of each run's observed loss (read for the runs that did not
        diverge only).
    p_diverge : array, shape (runs,), optional
        Probability that each run diverges (the divergence task).
    sweep_best : mapping, optional
        Per held-out setting, the predicted lowest loss a sweep over its runs reports.
    loss_star : mapping, optional
        Per held-out setting, the method's best loss L* (the bottom of its surface).
    note : str
        What the forecast is about, for the report.
    """

    median: np.ndarray | None = None
    intervals: dict = field(default_factory=dict)
    log_density: np.ndarray | None = None
    p_diverge: np.ndarray | None = None
    sweep_best: Mapping[str, float] | None = None
    loss_star: Mapping[str, float] | None = None
    note: str = ""

    def checked(self, n: int, masses: tuple[float, ...], who: str) -> RunForecast:
        """This forecast with arrays of ``n`` runs (intervals at the masses asked for only),
        else a ValueError naming the method and the field."""

        def runs_array(name, value):
            if value is None:
                return None
            arr = np.asarray(value, dtype=float).reshape(-1)
            if arr.shape != (n,):
                raise ValueError(f"method {who!r}: {name} has {arr.size} values for {n} runs")
            return arr

        intervals = {}
        for mass in masses:
            given = self.intervals.get(mass)
            if given is None:
                continue
            if len(given) != 2:
                raise ValueError(f"method {who!r}: loss interval at {mass:g} is not (lower, upper)")
            intervals[mass] = (runs_array(f"lower at {mass:g}", given[0]),
                               runs_array(f"upper at {mass:g}", given[1]))  # fmt: skip
        per_setting = {}
        for name in ("sweep_best", "loss_star"):
            value = getattr(self, name)
            per_setting[name] = None if value is None else {
                str(k): float(v) for k, v in dict(value).items()}  # fmt: skip
        return RunForecast(
            runs_array("median", self.median), intervals,
            runs_array("log_density", self.log_density), runs_array("p_diverge", self.p_diverge),
            per_setting["sweep_best"], per_setting["loss_star"], str(self.note),
        )  # fmt: skip


@runtime_checkable
class Predictor(Protocol):
    """What :meth:`Method.fit` returns: here the ``predict`` of the choice and interval
    tasks; ``choose``, ``predict_runs`` and ``plateau_probability`` are optional alike (module
    docstring)."""

    def predict(self, settings: pd.DataFrame) -> MethodPrediction:
        """Predict the held-out settings (one row each)."""
        ...


@runtime_checkable
class Method(Protocol):
    """A method the evaluation scores: a ``name`` and ``fit``."""

    name: str

    def fit(self, train: pd.DataFrame, context: FoldContext) -> Any:
        """Fit on the training runs of one fold; returns a predictor."""
        ...
