"""The loss bowl around an optimum: its geometry, written once, and the answers built on it.

With ``x = ln lr − m_lr`` and ``y = ln B − m_bs`` the offsets from a setting's optimum,

    q(x, y) = a·k(x)·x² + b·y² + 2h·x·y,   k(x) = k for x > 0 (the high-lr side), 1 otherwise
    h = ρ·sqrt(a·b·min(1, k))

is the relative excess loss (``loss / L* − 1``) of a run; the bound on ``h`` keeps both halves
of ``q`` positive definite, so every slice of the bowl is convex. A run's loss is
``L*·(1 + q)`` plus Student-t noise of scale ``L*·(σ0 + σ1·q)``.

The functions take an array module ``xp`` (numpy, or ``pytensor.tensor`` inside the PyMC
model), so the model's likelihood, the posterior's checks and its decisions evaluate the same
expressions. The rest is numpy: sublevel sets of ``q`` for plateau probabilities, the best
run of a simulated grid sweep, and the Bayes decision. The answers a posterior gives from them
are in :mod:`bayes_steplaw.bayes.answers`.
"""

from __future__ import annotations

import math

import numpy as np

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


def predictive_thresholds(g: dict, tol, predictive: bool, seed: int) -> np.ndarray:
    """Per-draw bound on q for the event 'relative loss <= tol' (``g``: per-draw geometry;
    ``tol`` a number or one per draw).

    Without noise the event is q <= tol. With run noise ε ~ t_ν (one draw of ε per
    posterior draw: a Monte Carlo sample of the predictive), it is
    q·(1 + σ1·ε) + σ0·ε <= tol, i.e. q <= (tol − σ0·ε) / (1 + σ1·ε) when 1 + σ1·ε > 0,
    and always true otherwise (so large a negative ε that any run beats the tolerance).
    """
    if not predictive:
        return np.broadcast_to(np.asarray(tol, dtype=float), len(g["a"])).copy()
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


SWEEP_GRID = (2**0.5, 2.0, 11, 7)
"""The grid of a simulated sweep: lr and batch steps (ratios), and the number of lr and batch
values, centred on the optimum (a window of the released sweeps' grids around it)."""


def sweep_best_excess(g: dict, seed: int, grid: tuple = SWEEP_GRID) -> np.ndarray:
    """Per draw, the relative excess loss ``loss / L* − 1`` of the best run of a grid sweep.

    The sweep's grid has a uniformly random phase against the optimum (the grid is fixed, the
    optimum is not); each run's excess is ``q + (σ0 + σ1·q)·t_ν``. The best run lies below
    ``L*`` when noise favours it: that is why the best run of a sweep, not ``L*``, is what a
    user's relative loss is measured against.
    """
    lr_step, bs_step, n_lr, n_bs = grid
    rng = np.random.default_rng([seed, 3])
    n = len(g["a"])
    dx, dy = math.log(lr_step), math.log(bs_step)
    x = (np.arange(n_lr) - (n_lr - 1) / 2 + rng.uniform(-0.5, 0.5, (n, 1))) * dx
    y = (np.arange(n_bs) - (n_bs - 1) / 2 + rng.uniform(-0.5, 0.5, (n, 1))) * dy
    a, b, h, k = (g[name][:, None, None] for name in "abhk")
    q = quadratic(x[:, :, None], y[:, None, :], a, b, h, k)
    eps = rng.standard_t(g["nu"][:, None, None], size=q.shape)
    excess = q + (g["sigma0"][:, None, None] + g["sigma1"][:, None, None] * q) * eps
    return excess.reshape(n, -1).min(axis=1)


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
