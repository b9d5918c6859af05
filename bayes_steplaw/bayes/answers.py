"""Every answer of the loss posterior, as a reduction of the same posterior draws.

For a new setting of a group, each posterior draw is one loss surface (:mod:`.surface`): its
optimum ``(m_lr, m_bs)``, best loss ``L*``, shape, noise and divergence edge
(:class:`Surface`). Every answer reduces those draws:

* the optimum: per draw, the argmin of the expected loss, which is ``(m_lr, m_bs)``;
* the best run a grid sweep finds: per draw, a grid of √2 lr steps and 2x batch steps with a
  random phase around the optimum, each run's reported loss drawn (run noise, divergence),
  the best alive run taken (:func:`sweep_best`);
* the loss a run reports, its probability of diverging, L*;
* the expected loss of a run, ``E[L*·(1 + e)]`` with ``e = q`` when the run does not
  diverge and ``e = 0.5`` when it does (a diverged run ends above 1.5 x its setting's best:
  the rule that defines divergence); the recommendation is its argmin over the free ones of
  lr and batch (:func:`decide`), and the batch cost its increase at a fixed batch;
* the plateau probability: per draw, the event that a run's expected loss is within ``tol``
  of ``L*`` (``reference="optimum"``) or that its reported loss is within ``tol`` of the
  best run of a sweep of the same setting (``reference="sweep"``), averaged.

Each answer draws its randomness (a new group's offsets, a new setting's scatter, run noise)
from one seeded stream, so two answers with one seed share the same surfaces, and the noise
of a block of points depends on the seed and the block alone. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .surface import (
    DIVERGED_RATIO,
    evaluate,
    linear,
    mix_noise,
    noise_draws,
    run_noise,
    sigmoid,
)

SWEEP_GRID = (2**0.5, 2.0, 11, 7)
"""A simulated sweep: lr step, batch step, number of lr and of batch values (the released
sweeps' steps; a window of their grids around the optimum)."""
DIVERGED_EXCESS = DIVERGED_RATIO - 1
"""Relative excess loss counted for a run that diverges (the least one reports)."""
REFERENCES = ("optimum", "sweep")
"""What a plateau probability's tolerance is relative to."""
DECISION_STEPS = (math.log(2) / 4, math.log(2) / 2)
"""Grid steps (ln lr, ln batch) of the decision's search before Nelder-Mead refines it."""
DECISION_HALF_WIDTHS = (1.5, 2.0)
"""Least half-widths (ln lr, ln batch) of that grid around the median optimum."""
_CELLS = 1 << 22  # (points x draws) evaluated at once by the searches
_CACHE_CELLS = 1 << 15  # (points x draws) worked at once by Surface.run: 256 kB arrays, in L2


def check_sweep_grid(grid: Any) -> tuple[float, float, int, int]:
    """A sweep grid: two steps (ratios > 1) and two counts (1 to 101)."""
    try:
        lr_step, bs_step, n_lr, n_bs = grid
    except (TypeError, ValueError):
        raise ValueError(
            f"sweep_grid must be (lr step, batch step, number of lr values, number of batch "
            f"values), e.g. {SWEEP_GRID}; got {grid!r}"
        ) from None
    for name, step in (("lr step", lr_step), ("batch step", bs_step)):
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            raise ValueError(f"sweep_grid's {name} must be a ratio > 1; got {step!r}")
        if not (math.isfinite(step) and 1 < step < 100):
            raise ValueError(f"sweep_grid's {name} must be a ratio between 1 and 100; got {step}")
    for name, n in (("number of lr values", n_lr), ("number of batch values", n_bs)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 101:
            raise ValueError(f"sweep_grid's {name} must be an integer from 1 to 101; got {n!r}")
    return float(lr_step), float(bs_step), int(n_lr), int(n_bs)


@dataclass
class Surface:
    """The loss surfaces of new settings of one group: one per posterior draw.

    ``coef`` holds the per-draw coefficients of :func:`.surface.evaluate` (the draw axis
    last); ``log_n0``, ``log_d0`` centre ln N and ln D; ``seed`` seeds the noise of each block
    of points (with the block's first index), so repeated summaries see the same draws.
    """

    coef: dict
    log_n0: float
    log_d0: float
    seed: int
    group: str

    @property
    def n_samples(self) -> int:
        """Posterior draws."""
        return len(self.coef["nu"])

    @property
    def noise(self) -> dict:
        """The run-noise parameters (:func:`.surface.run_logpdf`), per draw."""
        return {
            k: self.coef[k]
            for k in ("nu", "nu_far", "spike_w", "spike_mean", "spike_sd")
            if k in self.coef
        }

    def centred(self, N: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centred ln N and ln D as columns (points, 1)."""
        return (np.log(N) - self.log_n0)[:, None], (np.log(D) - self.log_d0)[:, None]

    def rng(self, tag: int, start: int) -> np.random.Generator:
        """The random stream of one block of points for one purpose (``tag``)."""
        return np.random.default_rng([self.seed, tag, start])

    def at(self, N, D, log_lr, log_bs) -> dict:
        """Location, noise scale, divergence log-odds, L* and q of runs: (points, samples)."""
        u, v = self.centred(N, D)
        return evaluate(self.coef, u, v, np.reshape(log_lr, (len(N), -1)),
                        np.reshape(log_bs, (len(N), -1)))  # fmt: skip

    def optimum(self, N, D) -> tuple[np.ndarray, np.ndarray]:
        """ln lr and ln batch of each draw's optimum, (points, samples)."""
        u, v = self.centred(N, D)
        return linear(self.coef["m_lr"], u, v), linear(self.coef["m_bs"], u, v)

    def reported(self, out: dict, rng: np.random.Generator) -> np.ndarray:
        """The loss each run reports, given that it does not diverge (run noise drawn)."""
        return self._add_noise(out, run_noise(out["q"], self.noise, rng, out["loc"].shape))

    def run(
        self, N, D, log_lr, log_bs, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The loss each run reports (run noise from ``rng``, as :meth:`reported`; ``None``:
        its expected loss, ``loc``) and its probability of diverging: two arrays (points,
        samples), the numbers of :meth:`at`, :meth:`reported` and ``sigmoid`` exactly.

        The random numbers are drawn for every run first, in :meth:`reported`'s order; the
        rest is worked out a few points at a time, so that the dozens of (points, samples)
        intermediates stay in cache (1.6x faster than whole blocks of points).
        """
        n, s = len(N), self.n_samples
        log_lr, log_bs = np.reshape(log_lr, (n, -1)), np.reshape(log_bs, (n, -1))
        if rng is not None and "spike_w" not in self.noise:  # its t draws need every q first
            at = self.at(N, D, log_lr, log_bs)
            return self.reported(at, rng), sigmoid(at["logit"])
        u, v = self.centred(N, D)
        draws = None if rng is None else noise_draws(self.noise, rng, (n, s))
        # the t draws become the losses in place, row by row
        loss = np.empty((n, s)) if draws is None else draws["t"]
        p_diverge = np.empty((n, s))
        step = max(1, _CACHE_CELLS // s)
        for start in range(0, n, step):
            rows = slice(start, start + step)
            at = evaluate(self.coef, u[rows], v[rows], log_lr[rows], log_bs[rows])
            p_diverge[rows] = sigmoid(at["logit"])
            if draws is None:
                loss[rows] = at["loc"]
            else:
                noise = mix_noise(at["q"], self.noise, {k: a[rows] for k, a in draws.items()})
                self._add_noise(at, noise, loss[rows])
        return loss, p_diverge

    @staticmethod
    def _add_noise(out: dict, noise: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
        """``loc + scale·noise`` (in ``into``, by default ``noise``), ``loc`` where that is
        infinite."""
        into = noise if into is None else into
        with np.errstate(invalid="ignore"):  # inf − inf where loc is infinite: replaced
            np.multiply(out["scale"], noise, out=into)
            into += out["loc"]
        inf = np.isinf(out["loc"])
        if inf.any():
            np.copyto(into, out["loc"], where=inf)
        return into

    @staticmethod
    def expected(out: dict) -> np.ndarray:
        """Per draw, the expected loss of each run, a diverged run counted at 1.5·L*, and so
        is a run whose loss would pass it: the data call such a run diverged (``diverged``
        of the loss model), so the surface says nothing of its loss beyond that. Without the
        cap a new family's draws of steep walls (exponential in the distance from the
        optimum) made the expected loss at 7B / 1.4T 1e11 times L* and the decision flee to
        a corner (lr 7.9e-5 against an optimum of 5.7e-4)."""
        return out["loss_star"] * (1 + Surface.excess(out))

    @staticmethod
    def excess(out: dict) -> np.ndarray:
        """Per draw, the expected relative excess of each run over L*: q, capped at the
        excess a diverged run counts, and that excess with the run's P(diverge)."""
        p = sigmoid(out["logit"])
        with np.errstate(invalid="ignore"):
            alive = np.where(p < 1, np.minimum(out["q"], DIVERGED_EXCESS), 0.0)
        return (1 - p) * alive + p * DIVERGED_EXCESS


def sweep_best(surface: Surface, N: np.ndarray, D: np.ndarray, grid: tuple, start: int = 0):
    """Per point and draw, the best run of a simulated grid sweep: its ln lr, ln batch and
    reported loss, arrays (points, samples); NaN where every run of the sweep diverged.

    The grid has the sweep's steps and a uniformly random phase against each draw's optimum
    (the sweep's grid is fixed, the optimum is not); each run's loss is drawn with run noise,
    and the run diverges with its probability (then it does not count).
    """
    lr_step, bs_step, n_lr, n_bs = grid
    kx = (np.arange(n_lr) - (n_lr - 1) / 2) * math.log(lr_step)
    ky = (np.arange(n_bs) - (n_bs - 1) / 2) * math.log(bs_step)
    kx, ky = (a.ravel()[:, None] for a in np.meshgrid(kx, ky, indexing="ij"))
    m_lr, m_bs = surface.optimum(N, D)
    out = {k: np.empty(m_lr.shape) for k in ("log_lr", "log_bs", "loss")}
    for i in range(len(N)):  # one point at a time: (runs, samples) arrays
        rng = surface.rng(3, start + i)
        x = m_lr[i] + kx + rng.uniform(-0.5, 0.5, m_lr.shape[1]) * math.log(lr_step)
        y = m_bs[i] + ky + rng.uniform(-0.5, 0.5, m_lr.shape[1]) * math.log(bs_step)
        runs = len(kx)
        at = surface.at(np.repeat(N[i], runs), np.repeat(D[i], runs), x, y)
        loss = surface.reported(at, rng)
        dead = rng.random(loss.shape) < sigmoid(at["logit"])
        loss = np.where(dead | np.isnan(loss), np.inf, loss)
        pick = np.argmin(loss, axis=0)
        cols = np.arange(loss.shape[1])
        best = loss[pick, cols]
        none = ~np.isfinite(best)
        out["log_lr"][i] = np.where(none, np.nan, x[pick, cols])
        out["log_bs"][i] = np.where(none, np.nan, y[pick, cols])
        out["loss"][i] = np.where(none, np.nan, best)
    return out


def search_axis(centre: np.ndarray, step: float, half_width: float) -> np.ndarray:
    """A grid of ``step`` over the draws' spread around their median, at least
    ``half_width`` either side."""
    lo, mid, hi = np.quantile(centre, [0.005, 0.5, 0.995])
    lo, hi = min(lo, mid - half_width), max(hi, mid + half_width)
    n = math.ceil((hi - lo) / step) + 1
    return lo + step * np.arange(n)


def expected_loss(surface: Surface, N: float, D: float, log_lr, log_bs) -> np.ndarray:
    """Posterior expected loss of runs at one setting (the mean over draws of
    :meth:`Surface.expected`), for flat arrays of ln lr and ln batch."""
    log_lr, log_bs = np.broadcast_arrays(np.ravel(log_lr), np.ravel(log_bs))
    out = np.empty(len(log_lr))
    block = max(1, _CELLS // surface.n_samples)
    for s in range(0, len(log_lr), block):
        sl = slice(s, s + block)
        n = len(log_lr[sl])
        at = surface.at(np.full(n, N), np.full(n, D), log_lr[sl, None], log_bs[sl, None])
        out[sl] = Surface.expected(at).mean(axis=1)
    return out


def decide(
    surface: Surface, N: float, D: float, log_lr: float | None, log_bs: float | None
) -> tuple[float, float, float]:
    """The Bayes decision at one setting: (ln lr, ln batch, expected loss) of least expected
    loss over the free ones of lr and batch (``None``: free).

    A grid of 1/4 octave in lr and 1/2 in batch over the posterior of the optimum is searched
    first; Nelder-Mead then refines from its best point (the expected loss is smooth) to
    1e-3 in ln lr and ln batch.
    """
    from scipy.optimize import minimize

    m_lr, m_bs = surface.optimum(np.array([N]), np.array([D]))
    free = [log_lr is None, log_bs is None]
    if not any(free):
        return log_lr, log_bs, float(expected_loss(surface, N, D, log_lr, log_bs)[0])
    axes = [
        search_axis(m_lr[0], DECISION_STEPS[0], DECISION_HALF_WIDTHS[0])
        if free[0]
        else np.array([log_lr]),
        search_axis(m_bs[0], DECISION_STEPS[1], DECISION_HALF_WIDTHS[1])
        if free[1]
        else np.array([log_bs]),
    ]
    xx, yy = (a.ravel() for a in np.meshgrid(*axes, indexing="ij"))
    values = expected_loss(surface, N, D, xx, yy)
    if not np.isfinite(values).any():
        raise ValueError(
            f"the expected loss at N = {N:g}, D = {D:g} is not finite anywhere the search "
            "looks (the law overflows this far from the data); give N and D nearer the data"
        )
    # refined from the grid's local minima (at most three, best first; the least finite value
    # is always one): far from the data a never-seen group's expected loss can have two
    # basins, where one start found the worse
    grid = np.where(np.isnan(values), np.inf, values).reshape(len(axes[0]), len(axes[1]))
    padded = np.pad(grid, 1, constant_values=np.inf)
    centre = padded[1:-1, 1:-1]
    local = ((centre <= padded[:-2, 1:-1]) & (centre <= padded[2:, 1:-1])
             & (centre <= padded[1:-1, :-2]) & (centre <= padded[1:-1, 2:]))  # fmt: skip
    order = [k for k in np.argsort(grid, axis=None) if local.flat[k] and np.isfinite(grid.flat[k])]
    best, best_value = None, np.inf
    for k in order[:3]:
        start = np.array([xx[k], yy[k]])

        def objective(z, start=start):
            point = start.copy()
            point[np.array(free)] = z
            return float(expected_loss(surface, N, D, point[0], point[1])[0])

        found = minimize(objective, start[np.array(free)], method="Nelder-Mead",
                         options={"xatol": 1e-3, "fatol": 1e-9})  # fmt: skip
        point, value = start.copy(), float(values[k])
        if found.fun <= value:
            point[np.array(free)], value = found.x, float(found.fun)
        if value < best_value:
            best, best_value = point, value
    return float(best[0]), float(best[1]), best_value


PLATEAU_ABOUT = {
    "optimum": "P(the run does not diverge and its expected loss is within {tol:.2%} of L*, "
    "the best loss of its setting)",
    "sweep": "P(the loss the run reports is within {tol:.2%} of the best loss a grid sweep of "
    "its setting reports)",
}
"""What each plateau probability is the probability of."""

_REC_COLUMNS = (
    "lr", "batch_tokens", "batch_sequences", "expected_loss", "expected_excess", "cost",
    "plateau_probability", "p_diverge", "lr_median_optimum", "batch_tokens_median_optimum",
    "best_lr", "best_batch_tokens",
)  # fmt: skip


@dataclass
class Recommendation:
    """The Bayes decision at each setting: the (lr, batch) of least expected loss.

    Attribute access gives each column of :meth:`to_dataframe` with the inputs' shape (a
    float for one setting): ``lr``, ``batch_tokens``, ``batch_sequences``,
    ``expected_loss`` (a diverged run counted at 1.5·L*), ``expected_excess`` (the same,
    relative to L*), ``cost`` (its increase over the best free choice: 0 unless lr or batch
    is fixed), ``plateau_probability`` (``reference="optimum"``), ``p_diverge``, the median
    optimum and the best free choice (``best_lr``, ``best_batch_tokens``).
    """

    N: np.ndarray
    D: np.ndarray
    shape: tuple[int, ...]
    group: str
    tol: float
    seq_len: int
    fixed: tuple[str, ...]
    table: pd.DataFrame
    extra: dict

    def __getattr__(self, name: str):
        if name in _REC_COLUMNS:
            frame = self.to_dataframe()
            values = frame[name].to_numpy(float).reshape(self.shape)
            return float(values) if values.ndim == 0 else values
        raise AttributeError(name)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per setting: N, D, group, fixed, every answer column, extrapolation."""
        frame = self.table.assign(batch_sequences=self.table["batch_tokens"] / self.seq_len)
        front = pd.DataFrame({"N": self.N, "D": self.D, "group": self.group,
                              "fixed": ",".join(self.fixed) or "none"})  # fmt: skip
        return pd.concat(
            [front, frame[list(_REC_COLUMNS)], pd.DataFrame(self.extra)], axis=1
        ).assign(tol=self.tol, seq_len=self.seq_len)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields: plain numbers for one setting, lists for several."""
        frame = self.to_dataframe()
        one = len(frame) == 1
        out = {c: (frame[c].iloc[0] if one else frame[c].tolist()) for c in frame.columns}
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in out.items()}

    def __repr__(self) -> str:
        d = self.to_dict()
        if len(self.table) == 1:
            return (
                f"Recommendation(N={d['N']:.4g}, D={d['D']:.4g}, group={self.group!r}, "
                f"lr={d['lr']:.4g}, batch_tokens={d['batch_tokens']:.4g}, "
                f"batch_sequences={d['batch_sequences']:.4g}, "
                f"expected_excess={d['expected_excess']:.4g}, "
                f"plateau_probability={d['plateau_probability']:.3f}, "
                f"p_diverge={d['p_diverge']:.3g}, fixed={d['fixed']!r})"
            )
        return f"<Recommendation for {len(self.table)} settings; group {self.group!r}>"
