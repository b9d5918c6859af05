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

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .._validate import (
    DEFAULT_PROB,
    DEFAULT_SEQ_LEN,
    DEFAULT_TOL,
    broadcast,
    check_count,
    check_prob,
    check_seq_len,
    check_tol,
    legacy_positional,
    positive_array,
    renamed,
)

BIG = 1.0e3  # ln-lr stand-in for ±infinity in interval counting (any real ln lr is far inside)
CELLS = 1 << 22  # (batch sizes x draws) evaluated at once


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


def predictive_thresholds(g: dict, tol: float, predictive: bool, seed: int) -> np.ndarray:
    """Per-draw bound on q for the event 'relative loss <= tol' (``g``: per-draw geometry).

    Without noise the event is q <= tol. With run noise ε ~ t_ν (one draw of ε per
    posterior draw: a Monte Carlo sample of the predictive), it is
    q·(1 + σ1·ε) + σ0·ε <= tol, i.e. q <= (tol − σ0·ε) / (1 + σ1·ε) when 1 + σ1·ε > 0,
    and always true otherwise (so large a negative ε that any run beats the tolerance).
    """
    if not predictive:
        return np.full(len(g["a"]), tol)
    rng = np.random.default_rng([seed, 1])
    eps = rng.standard_t(g["nu"])
    scale = 1.0 + g["sigma1"] * eps
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (tol - g["sigma0"] * eps) / scale
    return np.where(scale > 0, t, np.inf)


def plateau_counts(g: dict, t: np.ndarray, log_lr: np.ndarray, log_bs: np.ndarray):
    """Per point (ln lr, ln batch), the number of draws whose sublevel set {q <= t} holds it."""
    n_samples = len(g["a"])
    levels, row = np.unique(log_bs, return_inverse=True)
    row = row.ravel()
    counts = np.empty(log_lr.size, dtype=np.int64)
    # blocks of distinct batch sizes keep (batches x samples) arrays bounded
    per_block = max(1, CELLS // n_samples)
    order = np.argsort(row, kind="stable")
    starts = np.searchsorted(row[order], np.arange(0, len(levels) + per_block, per_block))
    for i, first in enumerate(range(0, len(levels), per_block)):
        sel = order[starts[i] : starts[i + 1]]
        y = levels[first : first + per_block, None] - g["m_bs"]
        lo, hi = lr_intervals(y, t, g["a"], g["b"], g["h"], g["k"])
        # intervals in ln lr itself: shift by each draw's optimum
        lo, hi = lo + g["m_lr"], hi + g["m_lr"]
        counts[sel] = count_inside(lo, hi, row[sel] - first, log_lr[sel])
    return counts


def bayes_decision(g: dict, batch: float | None) -> tuple[float, ...]:
    """(lr, batch, E[q], median optimum lr, median optimum batch) of least expected q.

    E[q] over the draws of ``g`` is convex (a mixture of convex bowls), so a quasi-Newton
    search from the posterior median optimum finds its minimum; ``batch`` fixes the batch.
    """
    from scipy.optimize import minimize

    a, b, h, k = g["a"], g["b"], g["h"], g["k"]

    def risk(lr_log: float, bs_log: float) -> tuple[float, np.ndarray]:
        x, y = lr_log - g["m_lr"], bs_log - g["m_bs"]
        dx, dy = quadratic_gradient(x, y, a, b, h, k)
        return float(quadratic(x, y, a, b, h, k).mean()), np.array([dx.mean(), dy.mean()])

    lr0, bs0 = float(np.median(g["m_lr"])), float(np.median(g["m_bs"]))
    if batch is not None:
        bs_log = math.log(batch)

        def objective(v):
            value, grad = risk(v[0], bs_log)
            return value, grad[:1]

        # start where the cross term moves the optimum for this batch: x = −h·y / a
        slope = float(np.median(-h / a))
        res = minimize(objective, [lr0 + slope * (bs_log - bs0)], jac=True)
        best_lr, best_bs = float(res.x[0]), bs_log
    else:
        res = minimize(lambda v: risk(v[0], v[1]), [lr0, bs0], jac=True)
        best_lr, best_bs = float(res.x[0]), float(res.x[1])
    value = risk(best_lr, best_bs)[0]
    return math.exp(best_lr), math.exp(best_bs), value, math.exp(lr0), math.exp(bs0)


def plateau_half_widths(g: dict, tol: float, short: bool = False) -> dict:
    """Plateau half-widths at ``tol`` as factors on lr and batch, per draw (callables of tol)."""
    names = (
        ("lr ÷ (below)", "lr × (above)", "batch ×/÷")
        if short
        else (
            f"lr factor below optimum at tol {tol:g}",
            f"lr factor above optimum at tol {tol:g}",
            f"batch factor either side at tol {tol:g}",
        )
    )
    return {
        names[0]: lambda t: np.exp(np.sqrt(t / g["a"])),
        names[1]: lambda t: np.exp(np.sqrt(t / (g["a"] * g["k"]))),
        names[2]: lambda t: np.exp(np.sqrt(t / g["b"])),
    }


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


# --------------------------------------------------------------------------- the answers


class PlateauAnswers:
    """Where a new run lands on the bowl, for any posterior with a per-draw :meth:`bowl`.

    Mixed into a posterior class that provides ``bowl(N, D, group, seed)`` (per-draw geometry
    at one setting: ``m_lr, m_bs, a, b, h, k, sigma0, sigma1, nu``), ``gate`` and
    ``n_samples``. Every method takes ``(N, D[, lr, batch_tokens])`` broadcast together and a
    keyword ``group`` (``"dense"``, ``"moe/1in8"``, ..., ``"new"``).
    """

    def _settings(self, named: dict) -> tuple[tuple[np.ndarray, ...], tuple, list]:
        """Broadcast ``named`` (N and D first), flatten, and group the points by setting.

        Returns the flat arrays, the broadcast shape and ``[(index, N, D), ...]`` per distinct
        (N, D) (one geometry per setting keeps memory at one float per point and draw).
        """
        arrays, shape = broadcast(named)
        flat = tuple(a.ravel() for a in arrays)
        pairs, inverse = np.unique(np.stack(flat[:2], axis=1), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        return flat, shape, [(np.flatnonzero(inverse == i), n, d) for i, (n, d) in enumerate(pairs)]

    # ------------------------------------------------------------------ public API

    def plateau_probability(
        self,
        N: ArrayLike,
        D: ArrayLike,
        lr: ArrayLike,
        batch_tokens: ArrayLike,
        *args,
        tol: float | None = None,
        group: str | None = None,
        predictive: bool | None = None,
        seed: int = 0,
        allow_unconverged: bool = False,
    ):
        """Posterior probability that a new run at (lr, batch) finishes on the plateau.

        The event: the run's final smoothed loss is at most ``(1 + tol)·L*``, where ``L*`` is
        the best loss attainable at this setting (the bottom of its bowl, without run noise).
        With ``predictive=False`` this is P(q(x, y) <= tol): the run's *expected* loss lies
        within ``tol`` of the best, integrating the uncertainty of where the optimum is (law
        and setting scatter) and of the bowl's shape. With ``predictive=True`` the run's own
        noise ``(σ0 + σ1·q)·t_ν`` is added, so the event is about the loss the run will
        actually report (Monte Carlo: one noise draw per posterior draw).

        The paper's relative loss is measured against the *observed* minimum of a sweep,
        which lies below ``L*`` by the luck of the best of many noisy runs; the event here
        does not depend on how many other runs one makes.

        Parameters
        ----------
        N, D, lr, batch_tokens : float or array-like
            Settings (non-embedding parameters, training tokens) and runs (peak learning
            rate, batch size in tokens); all four broadcast together.
        tol : float
            Relative-loss tolerance (default :data:`DEFAULT_TOL`, the paper's 0.25%).
        group : str
            Group name (see :attr:`groups_seen`) or ``"new"``; default ``"dense"``.
        predictive : bool
            Include run-to-run loss noise (default False).
        seed : int
            Seed of the setting-scatter (and noise) draws.
        allow_unconverged : bool
            Use a posterior that failed its convergence gate.

        Returns
        -------
        numpy.ndarray or numpy.float64
            Probability with the broadcast shape of the inputs (a scalar for scalars).
        """
        opts = legacy_positional(
            "plateau_probability", args, {"tol": tol, "group": group, "predictive": predictive},
            {"tol": DEFAULT_TOL, "group": "dense", "predictive": False},
        )  # fmt: skip
        tol, group, predictive = check_tol(opts["tol"]), opts["group"], bool(opts["predictive"])
        self.gate(allow_unconverged)
        (_, _, lr_flat, bs_flat), shape, settings = self._settings(
            {"N": N, "D": D, "lr": lr, "batch_tokens": batch_tokens}
        )
        counts = np.empty(lr_flat.size, dtype=np.int64)
        for index, n_, d_ in settings:
            g = self.bowl(n_, d_, group, seed)
            t = predictive_thresholds(g, tol, predictive, seed)
            counts[index] = plateau_counts(g, t, np.log(lr_flat[index]), np.log(bs_flat[index]))
        return (counts / self.n_samples).reshape(shape)[()]

    def relative_loss(
        self,
        N: ArrayLike,
        D: ArrayLike,
        lr: ArrayLike,
        batch_tokens: ArrayLike,
        *args,
        group: str | None = None,
        predictive: bool | None = None,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> ExcessLoss:
        """Draws of the relative excess loss ``loss / L* − 1`` of a new run at (lr, batch).

        Without ``predictive`` the draws are q(x, y), the run's expected excess; with it, one
        noise draw ``(σ0 + σ1·q)·t_ν`` per (input, draw) is added. All four inputs broadcast;
        memory: one float per input and posterior draw.
        """
        opts = legacy_positional(
            "relative_loss", args, {"group": group, "predictive": predictive},
            {"group": "dense", "predictive": False},
        )  # fmt: skip
        group, predictive = opts["group"], bool(opts["predictive"])
        self.gate(allow_unconverged)
        (_, _, lr_flat, bs_flat), shape, settings = self._settings(
            {"N": N, "D": D, "lr": lr, "batch_tokens": batch_tokens}
        )
        q = np.empty((lr_flat.size, self.n_samples))
        for index, n_, d_ in settings:
            g = self.bowl(n_, d_, group, seed)
            x = np.log(lr_flat[index])[:, None] - g["m_lr"]
            y = np.log(bs_flat[index])[:, None] - g["m_bs"]
            q[index] = quadratic(x, y, g["a"], g["b"], g["h"], g["k"])
            if predictive:
                rng = np.random.default_rng([seed, 2])
                noise = rng.standard_t(g["nu"], size=(index.size, self.n_samples))
                q[index] += (g["sigma0"] + g["sigma1"] * q[index]) * noise
        lr_b, bs_b = (a.reshape(shape) for a in (lr_flat, bs_flat))
        return ExcessLoss(q.reshape(*shape, self.n_samples), lr_b, bs_b, predictive)

    def plateau_region(
        self,
        N: ArrayLike,
        D: ArrayLike,
        *args,
        tol: float | None = None,
        min_prob: float | None = None,
        group: str | None = None,
        lr=None,
        batch_tokens=None,
        n_grid: int = 121,
        predictive: bool = False,
        seed: int = 0,
        allow_unconverged: bool = False,
        prob: float | None = None,
    ) -> PlateauRegion:
        """The (lr, batch) settings at one (N, D) whose plateau probability is >= ``min_prob``.

        Parameters
        ----------
        N, D : float
            One setting (a region is a grid per setting).
        tol : float
            Relative-loss tolerance of the plateau (default :data:`DEFAULT_TOL`).
        min_prob : float
            Probability threshold of the region (default 0.9). (``prob=`` is its old name.)
        lr, batch_tokens : array-like, optional
            Grid axes; default ``n_grid`` log-spaced values covering the posterior median
            optimum ×/÷ e^2.5 in lr and e^3 in batch.
        Other parameters as in :meth:`plateau_probability`.
        """
        if prob is not None:
            min_prob = renamed("plateau_region", "prob", "min_prob", prob)
        opts = legacy_positional(
            "plateau_region", args, {"tol": tol, "min_prob": min_prob, "group": group},
            {"tol": DEFAULT_TOL, "min_prob": DEFAULT_PROB, "group": "dense"},
        )  # fmt: skip
        tol, group = check_tol(opts["tol"]), opts["group"]
        min_prob = check_prob(opts["min_prob"], "prob" if prob is not None else "min_prob")
        check_count(n_grid, "n_grid", minimum=2)
        self.gate(allow_unconverged)
        g = self.bowl(N, D, group, seed)
        if lr is None:
            centre = np.median(g["m_lr"])
            lr = np.exp(np.linspace(centre - 2.5, centre + 2.5, n_grid))
        if batch_tokens is None:
            centre = np.median(g["m_bs"])
            batch_tokens = np.exp(np.linspace(centre - 3.0, centre + 3.0, n_grid))
        lr = np.sort(positive_array(lr, "lr").ravel())
        batch_tokens = np.sort(positive_array(batch_tokens, "batch_tokens").ravel())
        p = self.plateau_probability(
            N, D, lr[None, :], batch_tokens[:, None], tol=tol, group=group,
            predictive=predictive, seed=seed, allow_unconverged=True,
        )  # fmt: skip
        inside = p >= min_prob
        lr_grid = np.broadcast_to(lr, p.shape)
        bounds = pd.DataFrame(
            {
                "batch_tokens": batch_tokens,
                "lr_min": np.where(inside, lr_grid, np.inf).min(axis=1),
                "lr_max": np.where(inside, lr_grid, -np.inf).max(axis=1),
                "max_probability": p.max(axis=1),
            }
        )
        bounds.loc[~inside.any(axis=1), ["lr_min", "lr_max"]] = np.nan
        return PlateauRegion(
            float(N), float(D), group, float(tol), min_prob, lr, batch_tokens, p, bounds
        )

    def expected_relative_loss(
        self,
        N: ArrayLike,
        D: ArrayLike,
        lr: ArrayLike,
        batch_tokens: ArrayLike,
        *args,
        group: str | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """Posterior expected q at (lr, batch): the loss the Bayes decision minimises."""
        group = legacy_positional(
            "expected_relative_loss", args, {"group": group}, {"group": "dense"}
        )["group"]
        return self.relative_loss(
            N, D, lr, batch_tokens, group=group, seed=seed, allow_unconverged=True
        ).mean()

    def recommend(
        self,
        N: ArrayLike,
        D: ArrayLike,
        *args,
        batch_tokens: ArrayLike | None = None,
        group: str | None = None,
        tol: float | None = None,
        seq_len: int | None = None,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> Recommendation:
        """The (lr, batch) of least posterior expected relative loss (the Bayes decision).

        E[q] is convex (a mixture of convex bowls), so a quasi-Newton search from the
        posterior median optimum finds its minimum. The asymmetry moves the decision off the
        median optimum: where the high-lr side is steeper, the risk of overshooting costs
        more than undershooting, and the decision shades lr down.

        Parameters
        ----------
        N, D : float or array-like
            Settings; broadcast together (and with ``batch_tokens``).
        batch_tokens : float or array-like, optional
            Fix the batch size (e.g. set by hardware) and choose the best lr for it.
        tol : float
            Tolerance of the reported plateau probability.
        seq_len : int
            Sequence length, to express the batch in sequences.
        """
        opts = legacy_positional(
            "recommend", args,
            {"batch_tokens": batch_tokens, "group": group, "tol": tol, "seq_len": seq_len},
            {"group": "dense", "tol": DEFAULT_TOL, "seq_len": DEFAULT_SEQ_LEN},
        )  # fmt: skip
        batch_tokens, group = opts["batch_tokens"], opts["group"]
        tol, seq_len = check_tol(opts["tol"]), check_seq_len(opts["seq_len"])
        self.gate(allow_unconverged)
        fixed = batch_tokens is not None
        named = {"N": N, "D": D} | ({"batch_tokens": batch_tokens} if fixed else {})
        arrays, shape = broadcast(named)
        points = np.stack([a.ravel() for a in arrays], axis=1)
        rows = np.array(
            [
                bayes_decision(self.bowl(p[0], p[1], group, seed), p[2] if fixed else None)
                for p in points
            ]
        )
        lr, bs, risk, m_lr, m_bs = (rows[:, i].reshape(shape) for i in range(5))
        p = self.plateau_probability(
            arrays[0], arrays[1], lr, bs, tol=tol, group=group, seed=seed, allow_unconverged=True
        )
        return Recommendation(
            N=arrays[0][()], D=arrays[1][()], group=group, lr=lr[()], batch_tokens=bs[()],
            batch_sequences=(bs / seq_len)[()], fixed_batch=fixed,
            expected_relative_loss=risk[()], plateau_probability=p, tol=tol,
            lr_median_optimum=m_lr[()], batch_tokens_median_optimum=m_bs[()],
        )  # fmt: skip
