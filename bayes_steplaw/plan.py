"""Plan the next sweep: K (lr, batch) runs at a new scale that most likely include a good one.

The loss posterior gives, per draw, the loss surface of a new setting
(:meth:`bayes_steplaw.LossPosterior.surface`); a run at (lr, batch) then has relative excess
loss ``e`` (``q`` if it does not diverge, 0.5 if it does: the expected loss of
:mod:`bayes_steplaw.bayes.answers`, relative to L*). Of K runs, the one that counts is the
best: the plan minimises the posterior expectation of min over the K runs of e, greedily (each
step adds the grid point of largest expected improvement over the runs chosen so far). The
first point is the single best guess; the next ones hedge where the posterior puts the optimum
if the first guess is wrong, which is what a sweep is for. Single-run exchanges then refine the
greedy set (a swap is kept when it lowers the objective), and the result is listed in greedy
order.

Candidates lie on a grid of powers of the steps (``lr_step ** i``, ``batch_step ** j`` tokens):
with the default √2 and 2 the lr grid is the released data's ``2^(-k/2)`` and batches are
powers of two tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ._validate import (
    DEFAULT_TOL,
    broadcast,
    check_count,
    check_seq_len,
    check_tol,
    scalar,
)
from .api import PosteriorLike, check_group, resolve_posterior
from .bayes.answers import Surface

MAX_CELLS = 20_000_000
"""Largest (candidates x posterior draws) array a plan evaluates (160 MB of float64; a few
temporaries of that size are alive at once)."""

SPAN_SD = 3.5  # the grid covers the posterior of the optimum to this many sd either side


@dataclass
class SweepPlan:
    """K planned runs at one setting, in the order the greedy search chose them.

    ``points`` has one row per run: ``lr``, ``batch_tokens``, ``batch_sequences``,
    ``expected_relative_loss`` of that run alone (E[e]), ``plateau_probability`` of that run
    alone (P(it does not diverge and q <= tol)), and, cumulatively over the runs so far,
    ``expected_best_relative_loss`` (E[min e]) and ``prob_any_within_tol`` (P(min e <= tol)).
    """

    N: float
    D: float
    group: str
    tol: float
    seq_len: int
    lr_step: float
    batch_step: float
    points: pd.DataFrame
    n_candidates: int

    @property
    def expected_best_relative_loss(self) -> float:
        """Posterior expected relative loss of the best of the K runs."""
        return float(self.points["expected_best_relative_loss"].iloc[-1])

    @property
    def prob_within_tol(self) -> float:
        """Posterior probability that at least one of the K runs lands within ``tol``."""
        return float(self.points["prob_any_within_tol"].iloc[-1])

    def to_dataframe(self) -> pd.DataFrame:
        """The points with the setting's N, D and group in front."""
        front = pd.DataFrame(
            {"run": np.arange(1, len(self.points) + 1), "N": self.N, "D": self.D,
             "group": self.group},
        )  # fmt: skip
        return pd.concat([front, self.points.reset_index(drop=True)], axis=1)


def _axis(log_values: np.ndarray, step: float, name: str, limit: int) -> np.ndarray:
    """Powers of ``step`` covering the draws' spread of a log optimum; refused (naming
    ``name``) before anything is allocated when more than ``limit`` values would be needed."""
    if isinstance(step, bool) or not (
        isinstance(step, (int, float)) and math.isfinite(step) and 1 < step <= 1e3
    ):
        raise ValueError(f"{name} must be a grid ratio between 1 and 1000 (e.g. 1.414 or 2); "
                         f"got {step!r}")  # fmt: skip
    centre = float(np.median(log_values))
    log_step = math.log(step)
    half = SPAN_SD * float(np.std(log_values)) + 2 * log_step
    lo, hi = math.floor((centre - half) / log_step), math.ceil((centre + half) / log_step)
    if hi - lo + 1 > limit:
        raise ValueError(
            f"{name}={step!r} makes {hi - lo + 1:.3g} grid values over the posterior of the "
            f"optimum (at most {limit} are evaluated); use a larger {name}"
        )
    return np.arange(lo, hi + 1) * log_step


def excess_draws(surface: Surface, N: float, D: float, log_lr, log_bs) -> np.ndarray:
    """Per candidate run and draw, the relative excess loss ``e`` (q, or 0.5 if it
    diverges, weighted by its probability; :meth:`Surface.excess`): (candidates, draws)."""
    n = len(log_lr)
    at = surface.at(np.full(n, N), np.full(n, D), np.reshape(log_lr, (n, 1)),
                    np.reshape(log_bs, (n, 1)))  # fmt: skip
    return Surface.excess(at)


def _greedy(q: np.ndarray, runs: int) -> list[int]:
    """Candidates added one at a time, each of largest expected improvement of E[min q]."""
    best = np.full(q.shape[1], np.inf)
    chosen: list[int] = []
    for _ in range(runs):
        score = np.minimum(best, q).mean(axis=1)
        score[chosen] = np.inf
        pick = int(np.argmin(score))
        chosen.append(pick)
        best = np.minimum(best, q[pick])
    return chosen


def _exchange(q: np.ndarray, chosen: list[int], rounds: int = 20) -> list[int]:
    """Swap single runs for better candidates until no swap lowers E[min q].

    Greedy choices are made before the later runs exist; once they do, an early run can be
    worth moving (the first run sits at the single best guess, which the others may cover).
    Each accepted swap lowers the objective, so this stops.
    """
    chosen = list(chosen)
    current = q[chosen].min(axis=0).mean()
    for _ in range(rounds):
        improved = False
        for pos in range(len(chosen)):
            others = chosen[:pos] + chosen[pos + 1 :]
            base = q[others].min(axis=0) if others else np.full(q.shape[1], np.inf)
            score = np.minimum(base, q).mean(axis=1)
            score[others] = np.inf
            pick = int(np.argmin(score))
            if score[pick] < current * (1 - 1e-9):
                chosen[pos], current, improved = pick, score[pick], True
        if not improved:
            break
    return chosen


def _order(q: np.ndarray, chosen: list[int]) -> list[int]:
    """The chosen runs in greedy order: the best single run first, then the best addition."""
    return [chosen[i] for i in _greedy(q[chosen], len(chosen))]


def grid_size(n_lr: int, n_bs: int, n_samples: int) -> int:
    """Cells of the (candidates x draws) array a plan evaluates."""
    return n_lr * n_bs * n_samples


def expected_best(q: np.ndarray, chosen: list[int]) -> float:
    """E[min over the chosen candidates' q], q of shape (candidates, draws)."""
    return float(q[chosen].min(axis=0).mean())


def plan_sweep(
    N: ArrayLike,
    D: ArrayLike,
    runs: int = 4,
    *,
    group: str = "dense",
    lr_step: float = 2**0.5,
    batch_step: float = 2.0,
    tol: float = DEFAULT_TOL,
    seq_len: int | None = None,
    posterior: PosteriorLike = None,
    seed: int = 0,
    allow_unconverged: bool = False,
) -> SweepPlan:
    """K (lr, batch) runs at (N, D) chosen to minimise the expected best relative loss.

    Parameters
    ----------
    N, D : float
        The new setting: non-embedding parameters and training tokens.
    runs : int
        K, the number of runs the sweep can afford.
    group : str
        Group name, as in :func:`bayes_steplaw.predict`.
    lr_step, batch_step : float
        Grid ratios of the candidate runs (default √2 in lr, 2 in batch).
    tol : float
        Tolerance of the reported plateau probabilities.
    seq_len : int, optional
        Sequence length, to express batches in sequences (default: the fit's).
    posterior : path or LossPosterior, optional
        Default: the shipped loss posterior.
    seed : int
        Seed of the setting-scatter draws.
    allow_unconverged : bool
        Plan from a posterior that failed its convergence gate.

    Returns
    -------
    SweepPlan
        ``.points`` (one row per run, in the order chosen), ``.expected_best_relative_loss``,
        ``.prob_within_tol``, ``.to_dataframe()``.

    Raises
    ------
    ValueError
        A grid ratio <= 1, ``runs`` larger than the grid, or a grid too large to evaluate
        (naming ``lr_step`` / ``batch_step``).
    """
    N, D = scalar(N, "N"), scalar(D, "D")
    runs = check_count(runs, "runs")
    tol = check_tol(tol)
    post = resolve_posterior(posterior)
    seq_len = check_seq_len(post.seq_len if seq_len is None else seq_len)
    group = check_group(post, group)
    post.gate(allow_unconverged)
    surface = post.surface(group, seed=seed)
    m_lr, m_bs = (m[0] for m in surface.optimum(np.array([N]), np.array([D])))
    limit = MAX_CELLS // post.n_samples
    lr_axis = _axis(m_lr, lr_step, "lr_step", limit)
    bs_axis = _axis(m_bs, batch_step, "batch_step", limit // len(lr_axis))
    ll, bb = (a.ravel() for a in np.meshgrid(lr_axis, bs_axis, indexing="ij"))
    if runs > len(ll):
        raise ValueError(f"runs ({runs}) exceeds the {len(ll)} candidates of the grid")
    q = excess_draws(surface, N, D, ll, bb)  # (candidates, draws)
    chosen = _order(q, _exchange(q, _greedy(q, runs)))
    rows = []
    best = np.full(q.shape[1], np.inf)
    for pick in chosen:
        best = np.minimum(best, q[pick])
        rows.append(
            {
                "lr": math.exp(ll[pick]),
                "batch_tokens": math.exp(bb[pick]),
                "batch_sequences": math.exp(bb[pick]) / seq_len,
                "expected_relative_loss": float(q[pick].mean()),
                "plateau_probability": float((q[pick] <= tol).mean()),
                "expected_best_relative_loss": float(best.mean()),
                "prob_any_within_tol": float((best <= tol).mean()),
            }
        )
    return SweepPlan(
        N, D, group, tol, seq_len, float(lr_step), float(batch_step), pd.DataFrame(rows), len(ll)
    )


def evaluate_points(
    N: float,
    D: float,
    lr: ArrayLike,
    batch_tokens: ArrayLike,
    *,
    group: str = "dense",
    tol: float = DEFAULT_TOL,
    posterior: PosteriorLike = None,
    seed: int = 0,
    allow_unconverged: bool = False,
) -> dict[str, float]:
    """Expected best relative loss and P(best <= tol) of any K runs (e.g. a hand-made sweep).

    The same posterior quantities :func:`plan_sweep` optimises, for comparing plans.
    """
    tol = check_tol(tol)
    post = resolve_posterior(posterior)
    post.gate(allow_unconverged)
    surface = post.surface(check_group(post, group), seed=seed)
    (lr, bs), _ = broadcast({"lr": lr, "batch_tokens": batch_tokens})
    q = excess_draws(surface, scalar(N, "N"), scalar(D, "D"), np.log(lr.ravel()),
                     np.log(bs.ravel()))  # fmt: skip
    best = q.min(axis=0)
    return {
        "expected_best_relative_loss": float(best.mean()),
        "prob_any_within_tol": float((best <= tol).mean()),
    }
