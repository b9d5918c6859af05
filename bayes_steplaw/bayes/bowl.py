"""The loss bowl around an optimum: its geometry, written once, and the answers built on it.

With ``x = ln lr − m_lr`` and ``y = ln B − m_bs`` the offsets from a setting's optimum,

    q(x, y) = a·k(x)·x² + b·y² + 2h·x·y,   k(x) = k for x > 0 (the high-lr side), 1 otherwise
    h = ρ·sqrt(a·b·min(1, k))

is the relative excess loss (``loss / L* − 1``) of a run; the bound on ``h`` keeps both halves
of ``q`` positive definite, so every slice of the bowl is convex. A run's loss is
``L*·(1 + q)`` plus Student-t noise of scale ``L*·(σ0 + σ1·q)``.

The functions take an array module ``xp`` (numpy, or ``pytensor.tensor`` inside the PyMC
model), so the model's likelihood, the posterior's checks and its decisions evaluate the same
expressions. The rest is numpy: sublevel sets of ``q`` for plateau probabilities, and the
result types of the landscape posterior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._validate import DEFAULT_PROB, DEFAULT_TOL, check_prob, check_tol

BIG = 1.0e3  # ln-lr stand-in for ±infinity in interval counting (any real ln lr is far inside)


# --------------------------------------------------------------------------- the bowl, once


def cross_term(a, b, k, rho, xp=np):
    """h = ρ·sqrt(a·b·min(1, k)): the largest cross term both halves of the bowl allow."""
    return rho * xp.sqrt(a * b * xp.minimum(1.0, k))


def quadratic(x, y, a, b, h, k, xp=np):
    """q(x, y) with the asymmetric lr curvature; all arguments broadcast."""
    return xp.where(x > 0, a * k, a) * x * x + b * y * y + 2.0 * h * x * y


def quadratic_gradient(x, y, a, b, h, k) -> tuple[np.ndarray, np.ndarray]:
    """(∂q/∂x, ∂q/∂y); q is C1 at x = 0, so this is its gradient everywhere."""
    return 2.0 * np.where(x > 0, a * k, a) * x + 2.0 * h * y, 2.0 * b * y + 2.0 * h * x


def loss_mean_scale(q, loss_star, sigma0, sigma1):
    """Mean and noise scale of a run's loss at excess ``q``: L*(1 + q), L*(σ0 + σ1·q)."""
    return loss_star * (1.0 + q), loss_star * (sigma0 + sigma1 * q)


def log_likelihood(loss, q, loss_star, sigma0, sigma1, nu) -> np.ndarray:
    """Student-t log density of observed losses (numpy; the model's own likelihood)."""
    from scipy import stats

    mu, scale = loss_mean_scale(q, loss_star, sigma0, sigma1)
    return stats.t.logpdf(loss, nu, loc=mu, scale=scale)


# --------------------------------------------------------------------------- sublevel sets


def lr_intervals(y, t, a, b, h, k) -> tuple[np.ndarray, np.ndarray]:
    """For each batch offset ``y`` and draw, the x-interval where q(x, y) <= t.

    Each slice of q at fixed y is convex in x (both halves positive definite, q is C1 at
    x = 0), so its sublevel set is an interval. When 0 is inside, the ends are the outer roots
    of the left (x <= 0) and right (x >= 0) quadratics; otherwise the whole interval lies on the
    side where q falls away from x = 0 (sign of −h·y) and both ends come from that side.
    Empty intervals are returned as (+BIG, +BIG), the whole line (t = +inf) as ±BIG.
    """
    hy = h * y
    c0 = b * y * y - t
    ak = a * k
    with np.errstate(invalid="ignore"):
        disc_r = hy * hy - ak * c0
        disc_l = hy * hy - a * c0
        sq_r = np.sqrt(np.maximum(disc_r, 0.0))
        sq_l = np.sqrt(np.maximum(disc_l, 0.0))
        inside0 = c0 <= 0
        right = hy < 0
        lo = np.where(inside0 | ~right, (-hy - sq_l) / a, (-hy - sq_r) / ak)
        hi = np.where(inside0 | right, (-hy + sq_r) / ak, (-hy + sq_l) / a)
        empty = ~inside0 & np.where(right, disc_r < 0, disc_l < 0)
        everything = np.isposinf(t) & np.ones_like(lo, dtype=bool)
    lo = np.where(empty, BIG, np.where(everything, -BIG, lo))
    hi = np.where(empty, BIG, np.where(everything, BIG, hi))
    return np.clip(lo, -BIG, BIG), np.clip(hi, -BIG, BIG)


def count_inside(lo: np.ndarray, hi: np.ndarray, row: np.ndarray, value: np.ndarray):
    """How many of row ``row[p]``'s intervals [lo, hi] contain ``value[p]``.

    Rows are sorted and stacked with an offset larger than their range, so one flat
    ``searchsorted`` answers every point: #(lo <= v) − #(hi < v) (a non-empty interval with
    hi < v also has lo < v; empty ones sit at +BIG and are counted by neither).
    """
    n_rows, n = lo.shape
    offset = 4.0 * BIG * np.arange(n_rows)[:, None]
    lo_flat = (np.sort(lo, axis=1) + offset).ravel()
    hi_flat = (np.sort(hi, axis=1) + offset).ravel()
    key = value + 4.0 * BIG * row
    base = row * n
    below_lo = np.searchsorted(lo_flat, key, side="right") - base
    below_hi = np.searchsorted(hi_flat, key, side="left") - base
    return below_lo - below_hi


# --------------------------------------------------------------------------- result types


@dataclass
class ExcessLoss:
    """Draws of the relative excess loss ``loss / L* − 1`` of a new run at a set of settings.

    ``draws`` has shape ``shape + (samples,)``; the helpers reduce the last axis.
    """

    draws: np.ndarray
    lr: np.ndarray
    batch_tokens: np.ndarray
    predictive: bool

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the (broadcast) inputs."""
        return self.draws.shape[:-1]

    def mean(self) -> np.ndarray:
        """Posterior (predictive) expected relative loss."""
        return self.draws.mean(axis=-1)

    def median(self) -> np.ndarray:
        """Posterior (predictive) median relative loss."""
        return np.median(self.draws, axis=-1)

    def quantile(self, q) -> np.ndarray:
        """Quantiles, with the quantile axis first (as :func:`numpy.quantile`)."""
        return np.quantile(self.draws, q, axis=-1)

    def interval(self, prob: float = DEFAULT_PROB) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed ``prob`` interval: (lower, upper)."""
        prob = check_prob(prob)
        lo, hi = np.quantile(self.draws, [(1 - prob) / 2, (1 + prob) / 2], axis=-1)
        return lo, hi

    def prob_within(self, tol: float = DEFAULT_TOL) -> np.ndarray:
        """Fraction of draws with relative loss <= ``tol``."""
        return (self.draws <= check_tol(tol)).mean(axis=-1)

    def to_dataframe(self, prob: float = DEFAULT_PROB, tol: float = DEFAULT_TOL) -> pd.DataFrame:
        """One row per input: lr, batch, mean, median, interval and P(<= tol)."""
        lo, hi = self.interval(prob)
        return pd.DataFrame(
            {
                "lr": np.broadcast_to(self.lr, self.shape).ravel(),
                "batch_tokens": np.broadcast_to(self.batch_tokens, self.shape).ravel(),
                "mean": self.mean().ravel(),
                "median": self.median().ravel(),
                "lower": lo.ravel(),
                "upper": hi.ravel(),
                f"prob_within_{tol:g}": self.prob_within(tol).ravel(),
            }
        )


@dataclass
class PlateauRegion:
    """The (lr, batch) settings whose plateau probability is at least ``min_prob``.

    ``probability[i, j]`` is the plateau probability at ``batch_tokens[i]``, ``lr[j]``;
    ``bounds`` gives, per batch size, the smallest and largest grid lr inside the region
    (NaN where none is).
    """

    N: float
    D: float
    group: str
    tol: float
    min_prob: float
    lr: np.ndarray
    batch_tokens: np.ndarray
    probability: np.ndarray
    bounds: pd.DataFrame = field(repr=False)

    @property
    def prob(self) -> float:
        """Old name of :attr:`min_prob`."""
        return self.min_prob

    @property
    def inside(self) -> np.ndarray:
        """Boolean grid: plateau probability >= ``min_prob``."""
        return self.probability >= self.min_prob

    @property
    def empty(self) -> bool:
        """Whether no grid point reaches ``min_prob``."""
        return not self.inside.any()


_REC_FIELDS = (
    "N", "D", "lr", "batch_tokens", "batch_sequences", "expected_relative_loss",
    "plateau_probability", "lr_median_optimum", "batch_tokens_median_optimum",
)  # fmt: skip


@dataclass
class Recommendation:
    """The Bayes decision: the (lr, batch) of least expected relative loss, per setting.

    Numeric fields have the broadcast shape of the inputs (numpy scalars for one setting).
    """

    N: Any
    D: Any
    group: str
    lr: Any
    batch_tokens: Any
    batch_sequences: Any
    fixed_batch: bool
    expected_relative_loss: Any
    plateau_probability: Any
    tol: float
    lr_median_optimum: Any
    batch_tokens_median_optimum: Any

    def to_dataframe(self) -> pd.DataFrame:
        """One row per setting."""
        frame = pd.DataFrame({k: np.ravel(getattr(self, k)) for k in _REC_FIELDS})
        frame.insert(2, "group", self.group)
        return frame.assign(fixed_batch=self.fixed_batch, tol=self.tol)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (lists for several settings)."""

        def plain(v):
            v = np.asarray(v)
            return v.item() if v.ndim == 0 else v.tolist()

        out = {k: plain(getattr(self, k)) if k in _REC_FIELDS else v for k, v in vars(self).items()}
        return out | {"fixed_batch": bool(self.fixed_batch)}
