"""The loss-landscape model: the bowl around each optimum, and the plateau it implies.

For every run within ``window`` relative loss of its setting's best (default 3%),

    loss ~ StudentT(ν, L*[s]·(1 + q(x, y)), L*[s]·(σ0 + σ1·q(x, y)))
    x = ln lr − m_lr[s],   y = ln B − m_bs[s]
    q(x, y) = a·k(x)·x² + b·y² + 2h·x·y,   k(x) = k for x > 0 (the high-lr side), 1 otherwise
    h = ρ·sqrt(a·b·min(1, k)),   ρ ∈ (−1, 1)

where ``m_lr`` and ``m_bs`` are the setting optima of the hierarchical Step Law (shared
exponents, group offsets, setting effects: :func:`bayes_steplaw.model.law_means`), ``L*`` is the
setting's best (noise-free) loss, ``a`` and ``b`` the curvatures along ln lr and ln B, ``h`` the
cross term (negative: a diagonal valley, larger batches want larger lr) and ``k`` the asymmetry
(k > 1: loss rises faster above the optimal lr than below it). The bound on ``h`` keeps both
halves of ``q`` positive definite, so every slice of the bowl is convex. The noise scale grows
with ``q`` because a quadratic describes the bottom of a bowl better than its rim; the
Student-t keeps an odd diverged run from bending the bowl.

Curvature (``curvature=``):

* ``"shared"``   one (a, b) for every setting;
* ``"ND"``       ln a and ln b linear in centred ln N and ln D;
* ``"group"``    ln a and ln b offset per level of the first group column (e.g. family);
* ``"ND+group"`` both.

ρ, k, ν and the noise are shared. Priors (relative-loss units per squared natural-log unit):

    L*[s] = min loss[s]·(1 + 0.01·z),  z ~ Normal(0, 1)
    ln a, ln b ~ Normal(ln 0.01, 1.5)        slopes ~ Normal(0, 0.5)
    group offsets ~ ZeroSumNormal(0.5)        ρ ~ Uniform(−1, 1)
    ln k ~ Normal(0, 1)       σ0 ~ HalfNormal(0.01)     σ1 ~ HalfNormal(0.5)     ν ~ Gamma(2, 0.1)

with the law's priors as in :mod:`bayes_steplaw.model`.

:class:`LandscapePosterior` answers questions about a new run from the fitted draws with numpy
alone: :meth:`~LandscapePosterior.plateau_probability`,
:meth:`~LandscapePosterior.relative_loss`, :meth:`~LandscapePosterior.plateau_region` and
:meth:`~LandscapePosterior.recommend`. PyMC is imported only to build the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .model import Design, build_design, level_dims
from .posterior import StepLawPosterior
from .sweeps import relative_loss as _observed_relative_loss

__all__ = [
    "CURVATURES",
    "LANDSCAPE_PRIORS",
    "ExcessLoss",
    "LandscapePosterior",
    "PlateauRegion",
    "Recommendation",
    "build_landscape",
    "compare_curvatures",
    "landscape_runs",
]

CURVATURES = ("shared", "ND", "group", "ND+group")
DEFAULT_CURVATURE = "ND"  # PSIS-LOO winner on the released data (model card)
DEFAULT_WINDOW = 0.03
LOSS_STAR_SD = 0.01  # prior sd of L* relative to the observed minimum
LANDSCAPE_PRIORS = {
    "loss_star": ("Normal", "observed minimum", f"{LOSS_STAR_SD:g} x observed minimum"),
    "curv_lr": ("Normal", float(np.log(0.01)), 1.5),
    "curv_bs": ("Normal", float(np.log(0.01)), 1.5),
    "curv_slopes": ("Normal", 0.0, 0.5),
    "curv_group": ("ZeroSumNormal", 0.5),
    "rho": ("Uniform", -1.0, 1.0),
    "log_asymmetry": ("Normal", 0.0, 1.0),
    "sigma_loss": ("HalfNormal", 0.01),
    "sigma_loss_q": ("HalfNormal", 0.5),
    "nu": ("Gamma", 2.0, 0.1),
}
_BIG = 1.0e3  # ln-lr stand-in for ±infinity in interval counting (any real ln lr is far inside)
_CELLS = 1 << 22  # points x samples evaluated at once


# --------------------------------------------------------------------------- the PyMC model


def landscape_runs(sweeps: pd.DataFrame, window: float = DEFAULT_WINDOW) -> pd.DataFrame:
    """Runs within ``window`` relative loss of their setting's best, with ``rel_loss``.

    Unlike the plateau filter (strict ``<``), the window is inclusive, so a window equal to a
    run's relative loss keeps it.
    """
    if not (isinstance(window, (int, float)) and math.isfinite(window) and window > 0):
        raise ValueError(f"window must be a positive relative loss (e.g. 0.03); got {window!r}")
    rel = _observed_relative_loss(sweeps)
    out = sweeps.assign(rel_loss=rel)
    return out[rel.to_numpy() <= window].reset_index(drop=True)


def _curvature_column(design: Design, curvature: str) -> str | None:
    """Group column whose levels get curvature offsets (the first one), or None."""
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be one of {CURVATURES}; got {curvature!r}")
    if "group" not in curvature:
        return None
    levels = design.hierarchy.levels
    if not levels or len(levels[0].labels) < 2:
        raise ValueError(
            f"curvature={curvature!r} needs at least two levels of the first group column; "
            f"the data have {list(levels[0].labels) if levels else []}"
        )
    return levels[0].column


def _log_curvature(pm, pt, which: str, design: Design, curvature: str, column: str | None):
    """Per-setting ln curvature along ``which`` (``lr`` or ``bs``)."""
    name = f"curv_{which}"
    out = pm.Normal(name, *LANDSCAPE_PRIORS[name][1:]) * pt.ones(len(design.settings))
    if "ND" in curvature:
        sd = LANDSCAPE_PRIORS["curv_slopes"][2]
        out = out + pm.Normal(f"{name}_N", 0.0, sd) * design.log_n
        out = out + pm.Normal(f"{name}_D", 0.0, sd) * design.log_d
    if column is not None:
        dim = f"level_{column}"
        offsets = pm.ZeroSumNormal(f"{name}_{column}", LANDSCAPE_PRIORS["curv_group"][1], dims=dim)
        padded = pt.concatenate([offsets, pt.zeros(1)])  # index -1 (no level) picks the zero
        out = out + padded[design.setting_levels[:, 0]]
    return out


def build_landscape(
    sweeps: pd.DataFrame,
    groups: tuple[str, ...] | list[str] = ("family", "variant"),
    *,
    batch_depends_on_N: bool = False,
    window: float = DEFAULT_WINDOW,
    curvature: str = DEFAULT_CURVATURE,
    run_weights: bool = False,
):
    """The PyMC landscape model of a sweep table (what ``fit(..., model="landscape")`` samples).

    Parameters
    ----------
    sweeps : DataFrame
        Sweep table in the package schema.
    groups : sequence of str
        Group columns of the law's offsets, outermost first.
    batch_depends_on_N : bool
        Add δ·(ln N − ln N0) to the batch law.
    window : float
        Runs within this relative loss of their setting's minimum enter the likelihood.
    curvature : {"shared", "ND", "group", "ND+group"}
        How the bowl's curvature varies between settings (module docstring).
    run_weights : bool
        Multiply each run's log-likelihood by the data variable ``run_weight`` (all ones
        here; a ``pm.Potential`` replaces the observed variable). A compiled model can then
        leave settings out (weight 0) by changing data, without recompiling: the
        leave-one-setting-out benchmark does this.

    Returns
    -------
    model : pymc.Model
    design : Design
        ``design.runs`` are the runs in the likelihood.
    extra : dict
        Metadata of the fit: ``window``, ``curvature``, ``curvature_column``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from .model import law_means

    runs = landscape_runs(sweeps, window)
    design = build_design(runs, groups)
    column = _curvature_column(design, curvature)
    loss = runs["loss"].to_numpy(float)
    loss_min = runs.groupby("setting")["loss"].min().reindex(design.settings).to_numpy(float)
    rs = design.run_setting
    coords = {"setting": design.settings, "run": np.arange(len(runs))}
    coords.update(level_dims(design.hierarchy))
    with pm.Model(coords=coords) as model:
        # centred: each setting's runs pin its optimum down (see law_means)
        m_lr, m_bs = law_means(pm, pt, design, batch_depends_on_N, centered=True)
        z_star = pm.Normal("z_loss_star", 0.0, 1.0, dims="setting")
        loss_star = pm.Deterministic(
            "loss_star", loss_min * (1.0 + LOSS_STAR_SD * z_star), dims="setting"
        )
        log_a = _log_curvature(pm, pt, "lr", design, curvature, column)
        log_b = _log_curvature(pm, pt, "bs", design, curvature, column)
        rho = pm.Uniform("rho", *LANDSCAPE_PRIORS["rho"][1:])
        log_k = pm.Normal("log_asymmetry", *LANDSCAPE_PRIORS["log_asymmetry"][1:])
        pm.Deterministic("asymmetry", pt.exp(log_k))
        sigma0 = pm.HalfNormal("sigma_loss", LANDSCAPE_PRIORS["sigma_loss"][1])
        sigma1 = pm.HalfNormal("sigma_loss_q", LANDSCAPE_PRIORS["sigma_loss_q"][1])
        nu = pm.Gamma("nu", *LANDSCAPE_PRIORS["nu"][1:])
        a, b = pt.exp(log_a)[rs], pt.exp(log_b)[rs]
        k = pt.exp(log_k)
        h = rho * pt.sqrt(a * b * pt.minimum(1.0, k))
        x = design.log_lr - m_lr[rs]
        y = design.log_bs - m_bs[rs]
        q = pt.switch(x > 0, a * k, a) * x**2 + b * y**2 + 2.0 * h * x * y
        star = loss_star[rs]
        mu, sd = star * (1.0 + q), star * (sigma0 + sigma1 * q)
        if run_weights:
            w = pm.Data("run_weight", np.ones(len(runs)), dims="run")
            logp = pm.logp(pm.StudentT.dist(nu=nu, mu=mu, sigma=sd), loss)
            pm.Potential("loss_weighted", (w * logp).sum())
        else:
            pm.StudentT("loss", nu=nu, mu=mu, sigma=sd, observed=loss, dims="run")
    extra = {
        "window": float(window),
        "curvature": curvature,
        "curvature_column": column,
        # the bowl's asymmetry moves every setting's optimum (and so the law's intercept) at
        # once; a low-rank mass matrix follows that direction, a diagonal one crawls along it
        "nutpie_kwargs": {"low_rank_modified_mass_matrix": True},
    }
    return model, design, extra


# --------------------------------------------------------------------------- numpy geometry


def _quadratic(x, y, a, b, h, k) -> np.ndarray:
    """q(x, y) with the asymmetric lr curvature; all arguments broadcast."""
    return np.where(x > 0, a * k, a) * x * x + b * y * y + 2.0 * h * x * y


def _lr_intervals(y, t, a, b, h, k) -> tuple[np.ndarray, np.ndarray]:
    """For each batch offset ``y`` and draw, the x-interval where q(x, y) <= t.

    Each slice of q at fixed y is convex in x (both halves positive definite, q is C1 at
    x = 0), so its sublevel set is an interval. When 0 is inside, the ends are the outer roots
    of the left (x <= 0) and right (x >= 0) quadratics; otherwise the whole interval lies on the
    side where q falls away from x = 0 (sign of −h·y) and both ends come from that side.
    Empty intervals are returned as (+_BIG, +_BIG), the whole line (t = +inf) as ±_BIG.
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
    lo = np.where(empty, _BIG, np.where(everything, -_BIG, lo))
    hi = np.where(empty, _BIG, np.where(everything, _BIG, hi))
    return np.clip(lo, -_BIG, _BIG), np.clip(hi, -_BIG, _BIG)


def _count_inside(lo: np.ndarray, hi: np.ndarray, row: np.ndarray, value: np.ndarray):
    """How many of row ``row[p]``'s intervals [lo, hi] contain ``value[p]``.

    Rows are sorted and stacked with an offset larger than their range, so one flat
    ``searchsorted`` answers every point: #(lo <= v) − #(hi < v) (a non-empty interval with
    hi < v also has lo < v; empty ones sit at +_BIG and are counted by neither).
    """
    n_rows, n = lo.shape
    offset = 4.0 * _BIG * np.arange(n_rows)[:, None]
    lo_flat = (np.sort(lo, axis=1) + offset).ravel()
    hi_flat = (np.sort(hi, axis=1) + offset).ravel()
    key = value + 4.0 * _BIG * row
    base = row * n
    below_lo = np.searchsorted(lo_flat, key, side="right") - base
    below_hi = np.searchsorted(hi_flat, key, side="left") - base
    return below_lo - below_hi


def _lr_batch_arrays(lr, batch_tokens) -> tuple[np.ndarray, np.ndarray]:
    """Checked, broadcast arrays of learning rates and batch sizes (tokens)."""
    lr_arr = _positive_array(lr, "lr")
    bs_arr = _positive_array(batch_tokens, "batch_tokens")
    try:
        return np.broadcast_arrays(lr_arr, bs_arr)
    except ValueError as exc:
        raise ValueError(f"lr and batch_tokens must broadcast together: {exc}") from None


def _positive_array(value, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be positive and finite; got {value!r}") from None
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        raise ValueError(f"{name} must be positive and finite; got {arr[bad].ravel()[:5].tolist()}")
    return arr


def _scalar(value, name: str) -> float:
    arr = _positive_array(value, name)
    if arr.size != 1:
        raise ValueError(f"{name} must be a single value (one setting); got shape {arr.shape}")
    return float(arr.reshape(()))


def _check_tol(tol) -> float:
    if not (isinstance(tol, (int, float, np.floating)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive relative loss (e.g. 0.0025); got {tol!r}")
    return float(tol)


def _check_prob(prob) -> float:
    if not (isinstance(prob, (int, float, np.floating)) and 0 < prob < 1):
        raise ValueError(f"prob must be between 0 and 1; got {prob!r}")
    return float(prob)


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
        """Shape of the (broadcast) lr and batch inputs."""
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

    def interval(self, prob: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed ``prob`` interval: (lower, upper)."""
        prob = _check_prob(prob)
        lo, hi = np.quantile(self.draws, [(1 - prob) / 2, (1 + prob) / 2], axis=-1)
        return lo, hi

    def prob_within(self, tol: float = 0.0025) -> np.ndarray:
        """Fraction of draws with relative loss <= ``tol``."""
        return (self.draws <= _check_tol(tol)).mean(axis=-1)

    def to_dataframe(self, prob: float = 0.9, tol: float = 0.0025) -> pd.DataFrame:
        """One row per setting: lr, batch, mean, median, interval and P(<= tol)."""
        lo, hi = self.interval(prob)
        return pd.DataFrame(
            {
                "lr": self.lr.ravel(),
                "batch_tokens": self.batch_tokens.ravel(),
                "mean": self.mean().ravel(),
                "median": self.median().ravel(),
                "lower": lo.ravel(),
                "upper": hi.ravel(),
                f"prob_within_{tol:g}": self.prob_within(tol).ravel(),
            }
        )


@dataclass
class PlateauRegion:
    """The (lr, batch) settings whose plateau probability is at least ``prob``.

    ``probability[i, j]`` is the plateau probability at ``batch_tokens[i]``, ``lr[j]``;
    ``bounds`` gives, per batch size, the smallest and largest grid lr inside the region
    (NaN where none is).
    """

    N: float
    D: float
    group: str
    tol: float
    prob: float
    lr: np.ndarray
    batch_tokens: np.ndarray
    probability: np.ndarray
    bounds: pd.DataFrame = field(repr=False)

    @property
    def inside(self) -> np.ndarray:
        """Boolean grid: plateau probability >= ``prob``."""
        return self.probability >= self.prob

    @property
    def empty(self) -> bool:
        """Whether no grid point reaches ``prob``."""
        return not self.inside.any()


@dataclass
class Recommendation:
    """The Bayes decision for one setting: the (lr, batch) of least expected relative loss."""

    N: float
    D: float
    group: str
    lr: float
    batch_tokens: float
    batch_sequences: float
    fixed_batch: bool
    expected_relative_loss: float
    plateau_probability: float
    tol: float
    lr_median_optimum: float
    batch_tokens_median_optimum: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {k: (bool(v) if isinstance(v, bool) else v) for k, v in self.__dict__.items()}


# --------------------------------------------------------------------------- the posterior


class LandscapePosterior(StepLawPosterior):
    """Posterior of the loss-landscape model.

    Besides everything a :class:`StepLawPosterior` does (``predict`` gives the optimum's
    location as in the optimum model), it answers where a new run lands on the bowl. All
    methods take one setting ``(N, D)`` and a ``group`` (``"dense"``, ``"moe/1in8"``, ...,
    ``"new"``); the optimum's location includes the law's uncertainty and the setting-level
    scatter (``kind="run"`` of :meth:`predict`), and the bowl's shape its posterior
    uncertainty. Pure numpy: nothing here imports PyMC.
    """

    # ------------------------------------------------------------------ per-draw geometry

    def _gate(self, allow_unconverged: bool) -> None:
        if not self.converged and not allow_unconverged:
            from .diagnostics import ConvergenceError

            raise ConvergenceError(
                "this posterior failed its convergence checks ("
                + "; ".join(self.diagnostics["problems"])
                + "); pass allow_unconverged=True to use it anyway"
            )

    def _curvature_offset(self, which: str, group: str, rng: np.random.Generator) -> np.ndarray:
        column = self.metadata.get("curvature_column")
        if column is None:
            return np.zeros(self.n_samples)
        k = self.hierarchy.resolve(group)[0]  # the curvature column is the first level
        if k >= 0:
            return self.flat(f"curv_{which}_{column}")[:, k]
        if k == -2:  # a new family: an offset from the same population as the seen ones
            return LANDSCAPE_PRIORS["curv_group"][1] * rng.standard_normal(self.n_samples)
        return np.zeros(self.n_samples)

    def _log_curvature(self, which, x, y, group, rng) -> np.ndarray:
        out = self.flat(f"curv_{which}").copy()
        if "ND" in self.metadata.get("curvature", "shared"):
            out = out + self.flat(f"curv_{which}_N") * x + self.flat(f"curv_{which}_D") * y
        return out + self._curvature_offset(which, group, rng)

    def bowl(self, N, D, group: str = "dense", seed: int = 0) -> dict[str, np.ndarray]:
        """Per-draw geometry at one setting.

        Returns
        -------
        dict of ndarray, each of shape (samples,)
            ``m_lr``, ``m_bs``: ln optimum (lr, batch tokens) of a new run at (N, D), setting
            scatter included; ``a``, ``b``: curvature along ln lr and ln B (relative loss per
            squared ln unit); ``h``: cross term; ``k``: high-lr asymmetry; ``sigma0``,
            ``sigma1``, ``nu``: run noise ``(sigma0 + sigma1·q)·t_nu``.
        """
        N, D = _scalar(N, "N"), _scalar(D, "D")
        rng = np.random.default_rng(seed)
        coef_lr, coef_bs = self.law_coefficients(group, "run", seed)
        x = math.log(N) - self.metadata["log_n0"]
        y = math.log(D) - self.metadata["log_d0"]
        a = np.exp(self._log_curvature("lr", x, y, group, rng))
        b = np.exp(self._log_curvature("bs", x, y, group, rng))
        k = self.flat("asymmetry")
        h = self.flat("rho") * np.sqrt(a * b * np.minimum(1.0, k))
        return {
            "m_lr": coef_lr[0] + coef_lr[1] * x + coef_lr[2] * y,
            "m_bs": coef_bs[0] + coef_bs[1] * x + coef_bs[2] * y,
            "a": a,
            "b": b,
            "h": h,
            "k": k,
            "sigma0": self.flat("sigma_loss"),
            "sigma1": self.flat("sigma_loss_q"),
            "nu": self.flat("nu"),
        }

    def _thresholds(self, g: dict, tol: float, predictive: bool, seed: int) -> np.ndarray:
        """Per-draw bound on q for the event 'relative loss <= tol'.

        Without noise the event is q <= tol. With run noise ε ~ t_ν (one draw of ε per
        posterior draw: a Monte Carlo sample of the predictive), it is
        q·(1 + σ1·ε) + σ0·ε <= tol, i.e. q <= (tol − σ0·ε) / (1 + σ1·ε) when 1 + σ1·ε > 0,
        and always true otherwise (so large a negative ε that any run beats the tolerance).
        """
        if not predictive:
            return np.full(self.n_samples, tol)
        rng = np.random.default_rng([seed, 1])
        eps = rng.standard_t(g["nu"])
        scale = 1.0 + g["sigma1"] * eps
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (tol - g["sigma0"] * eps) / scale
        return np.where(scale > 0, t, np.inf)

    # ------------------------------------------------------------------ public API

    def plateau_probability(
        self,
        N,
        D,
        lr,
        batch_tokens,
        tol: float = 0.0025,
        group: str = "dense",
        predictive: bool = False,
        *,
        seed: int = 0,
        allow_unconverged: bool = False,
    ):
        """Posterior probability that a new run at (lr, batch) finishes on the plateau.

        The event measured: the run's final smoothed loss is at most ``(1 + tol)·L*``, where
        ``L*`` is the best loss attainable at this setting (the bottom of its bowl, without
        run noise). With ``predictive=False`` this is P(q(x, y) <= tol): the run's *expected*
        loss lies within ``tol`` of the best, integrating the uncertainty of where the optimum
        is (law and setting scatter) and of the bowl's shape. With ``predictive=True`` the
        run's own noise ``(σ0 + σ1·q)·t_ν`` is added, so the event is about the loss the run
        will actually report (Monte Carlo: one noise draw per posterior draw).

        Note that the paper's relative loss is measured against the *observed* minimum of a
        sweep, which lies below ``L*`` by the luck of the best of many noisy runs; the event
        here does not depend on how many other runs one makes.

        Parameters
        ----------
        N, D : float
            One setting: non-embedding parameters and training tokens.
        lr, batch_tokens : float or array-like
            Peak learning rate and batch size in tokens; broadcast together.
        tol : float
            Relative-loss tolerance (0.0025 = the paper's 0.25% plateau).
        group : str
            Group name (see :attr:`groups_seen`) or ``"new"``.
        predictive : bool
            Include run-to-run loss noise.
        seed : int
            Seed of the setting-scatter (and noise) draws.
        allow_unconverged : bool
            Use a posterior that failed its convergence gate.

        Returns
        -------
        float or ndarray
            Probability with the broadcast shape of ``lr`` and ``batch_tokens``.
        """
        self._gate(allow_unconverged)
        tol = _check_tol(tol)
        lr_arr, bs_arr = _lr_batch_arrays(lr, batch_tokens)
        g = self.bowl(N, D, group, seed)
        t = self._thresholds(g, tol, predictive, seed)
        log_bs, row = np.unique(np.log(bs_arr).ravel(), return_inverse=True)
        log_lr = np.log(lr_arr).ravel()
        counts = np.empty(log_lr.size, dtype=np.int64)
        # blocks of distinct batch sizes keep (batches x samples) arrays bounded
        per_block = max(1, _CELLS // self.n_samples)
        order = np.argsort(row, kind="stable")
        starts = np.searchsorted(row[order], np.arange(0, len(log_bs) + per_block, per_block))
        for i, first in enumerate(range(0, len(log_bs), per_block)):
            sel = order[starts[i] : starts[i + 1]]
            y = log_bs[first : first + per_block, None] - g["m_bs"]
            lo, hi = _lr_intervals(y, t, g["a"], g["b"], g["h"], g["k"])
            # intervals in ln lr itself: shift by each draw's optimum
            counts[sel] = _count_inside(
                lo + g["m_lr"], hi + g["m_lr"], row[sel] - first, log_lr[sel]
            )
        prob = (counts / self.n_samples).reshape(lr_arr.shape)
        return float(prob) if prob.ndim == 0 else prob

    def relative_loss(
        self,
        N,
        D,
        lr,
        batch_tokens,
        group: str = "dense",
        predictive: bool = False,
        *,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> ExcessLoss:
        """Draws of the relative excess loss ``loss / L* − 1`` of a new run at (lr, batch).

        Without ``predictive`` the draws are q(x, y), the run's expected excess; with it, one
        noise draw ``(σ0 + σ1·q)·t_ν`` per (setting, draw) is added. Memory: one float per
        setting and posterior draw.
        """
        self._gate(allow_unconverged)
        lr_arr, bs_arr = _lr_batch_arrays(lr, batch_tokens)
        g = self.bowl(N, D, group, seed)
        x = np.log(lr_arr)[..., None] - g["m_lr"]
        y = np.log(bs_arr)[..., None] - g["m_bs"]
        q = _quadratic(x, y, g["a"], g["b"], g["h"], g["k"])
        if predictive:
            rng = np.random.default_rng([seed, 2])
            q = q + (g["sigma0"] + g["sigma1"] * q) * rng.standard_t(g["nu"], size=q.shape)
        return ExcessLoss(q, lr_arr, bs_arr, predictive)

    def plateau_region(
        self,
        N,
        D,
        tol: float = 0.0025,
        prob: float = 0.9,
        group: str = "dense",
        *,
        lr=None,
        batch_tokens=None,
        n_grid: int = 121,
        predictive: bool = False,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> PlateauRegion:
        """The settings whose plateau probability is at least ``prob``.

        Parameters
        ----------
        lr, batch_tokens : array-like, optional
            Grid axes; default ``n_grid`` log-spaced values covering the posterior median
            optimum ×/÷ e^2.5 in lr and e^3 in batch.
        Other parameters as in :meth:`plateau_probability`.

        Returns
        -------
        PlateauRegion
            The probability grid, the region mask and the lr bounds per batch size.
        """
        self._gate(allow_unconverged)
        prob = _check_prob(prob)
        g = self.bowl(N, D, group, seed)
        if lr is None:
            centre = np.median(g["m_lr"])
            lr = np.exp(np.linspace(centre - 2.5, centre + 2.5, n_grid))
        if batch_tokens is None:
            centre = np.median(g["m_bs"])
            batch_tokens = np.exp(np.linspace(centre - 3.0, centre + 3.0, n_grid))
        lr = np.sort(_positive_array(lr, "lr").ravel())
        batch_tokens = np.sort(_positive_array(batch_tokens, "batch_tokens").ravel())
        p = self.plateau_probability(
            N, D, lr[None, :], batch_tokens[:, None], tol, group, predictive,
            seed=seed, allow_unconverged=True,
        )  # fmt: skip
        inside = p >= prob
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
            float(N), float(D), group, float(tol), prob, lr, batch_tokens, p, bounds
        )

    def expected_relative_loss(
        self, N, D, lr, batch_tokens, group: str = "dense", *, seed: int = 0
    ) -> np.ndarray:
        """Posterior expected q at (lr, batch): the loss the Bayes decision minimises."""
        return self.relative_loss(
            N, D, lr, batch_tokens, group, seed=seed, allow_unconverged=True
        ).mean()

    def recommend(
        self,
        N,
        D,
        batch_tokens=None,
        group: str = "dense",
        tol: float = 0.0025,
        seq_len: int = 2048,
        *,
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
        batch_tokens : float, optional
            Fix the batch size (e.g. set by hardware) and choose the best lr for it.
        tol : float
            Tolerance of the reported plateau probability.
        seq_len : int
            Sequence length, to express the batch in sequences.
        """
        from scipy.optimize import minimize

        self._gate(allow_unconverged)
        tol = _check_tol(tol)
        if not (isinstance(seq_len, (int, np.integer)) and seq_len > 0):
            raise ValueError(f"seq_len must be a positive integer; got {seq_len!r}")
        fixed = batch_tokens is not None
        g = self.bowl(N, D, group, seed)
        a, b, h, k = g["a"], g["b"], g["h"], g["k"]

        def risk(lr_log: float, bs_log: float) -> tuple[float, np.ndarray]:
            x = lr_log - g["m_lr"]
            y = bs_log - g["m_bs"]
            a_eff = np.where(x > 0, a * k, a)
            q = a_eff * x * x + b * y * y + 2 * h * x * y
            grad = np.array([np.mean(2 * a_eff * x + 2 * h * y), np.mean(2 * b * y + 2 * h * x)])
            return float(q.mean()), grad

        lr0 = float(np.median(g["m_lr"]))
        if fixed:
            bs_log = math.log(_scalar(batch_tokens, "batch_tokens"))

            def objective(v):
                value, grad = risk(v[0], bs_log)
                return value, grad[:1]

            # start where the cross term moves the optimum for this batch: x = −h·y / a
            slope = float(np.median(-h / a))
            res = minimize(objective, [lr0 + slope * (bs_log - np.median(g["m_bs"]))], jac=True)
            best_lr, best_bs = float(res.x[0]), bs_log
        else:
            res = minimize(lambda v: risk(v[0], v[1]), [lr0, float(np.median(g["m_bs"]))], jac=True)
            best_lr, best_bs = float(res.x[0]), float(res.x[1])
        value = risk(best_lr, best_bs)[0]
        p = self.plateau_probability(
            N, D, math.exp(best_lr), math.exp(best_bs), tol, group,
            seed=seed, allow_unconverged=True,
        )  # fmt: skip
        return Recommendation(
            N=float(N),
            D=float(D),
            group=group,
            lr=math.exp(best_lr),
            batch_tokens=math.exp(best_bs),
            batch_sequences=math.exp(best_bs) / seq_len,
            fixed_batch=fixed,
            expected_relative_loss=value,
            plateau_probability=p,
            tol=tol,
            lr_median_optimum=math.exp(lr0),
            batch_tokens_median_optimum=float(np.exp(np.median(g["m_bs"]))),
        )

    def save(self, path):
        """Write the posterior as :meth:`StepLawPosterior.save` does, without ``u`` and ``v``.

        The setting effects are ``m_lr``/``m_bs`` minus the law, restated by variables the file
        keeps and used by no method: leaving them out keeps the shipped file at a few MB.
        """
        drop = [v for v in ("u", "v") if v in self.posterior]
        slim = {**self.groups, "posterior": self.posterior.drop_vars(drop)}
        return StepLawPosterior(slim, self.metadata).save(path)

    # ------------------------------------------------------------------ fit checks

    def _setting_geometry(self, design: Design) -> dict[str, np.ndarray]:
        """Per-draw, per-setting optima and curvatures of the fitted settings."""
        settings = [str(s) for s in self.posterior["setting"].values]
        if design.settings != settings:
            raise ValueError(
                "the sweep table's settings are not those of the fit; pass the table the "
                "posterior was fitted on"
            )
        m_lr, m_bs = self.flat("m_lr"), self.flat("m_bs")
        curv = {}
        column = self.metadata.get("curvature_column")
        for which in ("lr", "bs"):
            lc = np.repeat(self.flat(f"curv_{which}")[:, None], len(settings), axis=1)
            if "ND" in self.metadata["curvature"]:
                lc = lc + self.flat(f"curv_{which}_N")[:, None] * design.log_n
                lc = lc + self.flat(f"curv_{which}_D")[:, None] * design.log_d
            if column is not None:
                off = self.flat(f"curv_{which}_{column}")
                off = np.concatenate([off, np.zeros((self.n_samples, 1))], 1)
                lc = lc + off[:, design.setting_levels[:, 0]]
            curv[which] = np.exp(lc)
        return {"m_lr": m_lr, "m_bs": m_bs, "a": curv["lr"], "b": curv["bs"]}

    def run_design(self, sweeps: pd.DataFrame, window: float | None = None) -> Design:
        """The design of the runs this posterior was fitted on (same window, groups, centre);
        a wider ``window`` adds runs the fit did not see, on the same settings."""
        runs = landscape_runs(sweeps, window or self.metadata["window"])
        return build_design(
            runs, self.metadata["groups"], self.metadata["log_n0"], self.metadata["log_d0"]
        )

    def run_predictions(
        self, sweeps: pd.DataFrame, window: float | None = None
    ) -> dict[str, np.ndarray]:
        """Per-draw mean and noise of every fitted run: ``q``, ``mu``, ``scale`` (samples, runs),
        and the ``design``; ``window`` as in :meth:`run_design`."""
        design = self.run_design(sweeps, window)
        geo = self._setting_geometry(design)
        rs = design.run_setting
        x = design.log_lr - geo["m_lr"][:, rs]
        y = design.log_bs - geo["m_bs"][:, rs]
        a, b = geo["a"][:, rs], geo["b"][:, rs]
        k = self.flat("asymmetry")[:, None]
        h = self.flat("rho")[:, None] * np.sqrt(a * b * np.minimum(1.0, k))
        q = _quadratic(x, y, a, b, h, k)
        star = self.flat("loss_star")[:, rs]
        scale = star * (self.flat("sigma_loss")[:, None] + self.flat("sigma_loss_q")[:, None] * q)
        return {"q": q, "mu": star * (1 + q), "scale": scale, "loss_star": star, "design": design}

    def log_likelihood(self, sweeps: pd.DataFrame) -> np.ndarray:
        """Pointwise log-likelihood of the fitted runs, shape (chain, draw, run).

        Computed from the posterior draws with numpy (the fit keeps no per-run arrays), for
        PSIS-LOO; ``sweeps`` must be the table the posterior was fitted on.
        """
        from scipy.special import gammaln

        pred = self.run_predictions(sweeps)
        loss = pred["design"].runs["loss"].to_numpy(float)
        nu = self.flat("nu")[:, None]
        z = (loss - pred["mu"]) / pred["scale"]
        ll = (
            gammaln((nu + 1) / 2)
            - gammaln(nu / 2)
            - 0.5 * np.log(nu * np.pi)
            - np.log(pred["scale"])
            - (nu + 1) / 2 * np.log1p(z * z / nu)
        )
        sizes = self.posterior.sizes
        return ll.reshape(sizes["chain"], sizes["draw"], -1)

    def loo(self, sweeps: pd.DataFrame):
        """PSIS-LOO (ArviZ ``ELPDData``) of the fit on its own sweep table."""
        import xarray as xr

        from .diagnostics import _import_arviz

        az = _import_arviz()
        ll = xr.Dataset({"loss": (("chain", "draw", "run"), self.log_likelihood(sweeps))})
        idata = az.InferenceData(posterior=self.posterior, log_likelihood=ll)
        return az.loo(idata, pointwise=True)

    # ------------------------------------------------------------------ summaries

    def curvature_summary(self, group: str = "dense", prob: float = 0.9, tol: float = 0.0025):
        """Bowl shape at the data's centre (N0, D0) for a group, with the plateau widths.

        Rows: curvatures ``a`` (ln lr) and ``b`` (ln B), ``rho``, ``asymmetry``, and the
        plateau's half-widths at ``tol`` as factors on lr (below: e^sqrt(tol/a); above:
        e^sqrt(tol/(a·k))) and on batch (e^sqrt(tol/b)) at the other coordinate's optimum.
        """
        prob = _check_prob(prob)
        g = self.bowl(math.exp(self.metadata["log_n0"]), math.exp(self.metadata["log_d0"]), group)
        rows = {
            "a (ln lr curvature)": g["a"],
            "b (ln batch curvature)": g["b"],
            "rho (cross correlation)": self.flat("rho"),
            "asymmetry k (high-lr / low-lr)": g["k"],
            f"lr factor below optimum at tol {tol:g}": np.exp(np.sqrt(tol / g["a"])),
            f"lr factor above optimum at tol {tol:g}": np.exp(np.sqrt(tol / (g["a"] * g["k"]))),
            f"batch factor either side at tol {tol:g}": np.exp(np.sqrt(tol / g["b"])),
        }
        q = [(1 - prob) / 2, 0.5, (1 + prob) / 2]
        out = pd.DataFrame(
            {name: np.quantile(v, q) for name, v in rows.items()},
            index=["lower", "median", "upper"],
        ).T
        out.index.name = f"{group} at N0, D0"
        return out

    def card_sections(self) -> list[str]:
        """Model-card sections: landscape priors, curvature summary, PSIS-LOO comparison.

        The comparison is read from ``metadata["loo"]``; when absent (a fresh fit), it is
        computed by refitting the other curvature variants on the released data with the same
        sampler settings (minutes).
        """
        from .modelcard import _table

        m = self.metadata
        if "loo" not in m:
            from .sweeps import load_sweeps

            sampler = m["sampler"]
            table, _ = compare_curvatures(
                load_sweeps("all"),
                groups=m["groups"],
                fitted={m["curvature"]: self},
                window=m["window"],
                batch_depends_on_N=m["batch_depends_on_N"],
                chains=sampler["chains"],
                draws=sampler["draws"],
                tune=sampler["tune"],
                target_accept=sampler["target_accept"],
                seed=m["seed"],
                progressbar=False,
            )
            m["loo"] = _loo_records(table)
        loo = pd.DataFrame(m["loo"]).set_index("curvature")
        priors = "\n".join(
            f"- `{k}` ~ {spec[0]}({', '.join(map(_fmt_param, spec[1:]))})"
            for k, spec in LANDSCAPE_PRIORS.items()
        )
        groups = [g for g in self.groups_seen if "/" not in g]
        if "group" not in m["curvature"]:
            groups = groups[:1]  # the bowl is the same for every group
        curv = []
        for g in groups:
            if len(groups) > 1:
                curv += [f"### {g}", ""]
            curv += [_table(self.curvature_summary(g)), ""]
        if "ND" in m["curvature"]:
            slopes = self.summary().loc[[f"curv_{w}_{v}" for w in ("lr", "bs") for v in "ND"]]
            curv += [
                "Curvature slopes: d ln a / d ln N, d ln a / d ln D (lr) and the same for b "
                "(batch); negative means a flatter bowl, a wider plateau, at larger scale.",
                "",
                _table(slopes[["mean", "sd", "lower", "upper", "r_hat", "ess_bulk"]]),
                "",
            ]
            corners = []
            for n_, d_ in ((2e8, 4e9), (1e9, 1e11), (7e9, 1.4e12)):
                g = self.bowl(n_, d_, groups[0])
                corners.append(
                    {
                        "N": f"{n_:.3g}",
                        "D": f"{d_:.3g}",
                        "a": float(np.median(g["a"])),
                        "b": float(np.median(g["b"])),
                        "lr ÷ (below)": float(np.median(np.exp(np.sqrt(0.0025 / g["a"])))),
                        "lr × (above)": float(
                            np.median(np.exp(np.sqrt(0.0025 / (g["a"] * g["k"]))))
                        ),
                        "batch ×/÷": float(np.median(np.exp(np.sqrt(0.0025 / g["b"])))),
                    }
                )
            curv += [
                "Plateau half-widths at tol 0.25% (posterior medians; the last row extrapolates):",
                "",
                _table(pd.DataFrame(corners).set_index("N")),
                "",
            ]
        return [
            "## Landscape model",
            "",
            f"Runs within {m['window']:.1%} of their setting's minimum loss "
            f"({m['n_runs']} runs); loss ~ StudentT(ν, L*(1+q), L*(σ0+σ1·q)) with q the "
            f"asymmetric quadratic bowl in (ln lr, ln B) around the setting optimum of the "
            f"hierarchical law (see `bayes_steplaw.landscape`). Curvature variant: "
            f"**{m['curvature']}**.",
            "",
            "Landscape priors (curvatures in relative loss per squared natural-log unit):",
            "",
            priors,
            "",
            "## Curvature (posterior median and 90% interval at N0, D0)",
            "",
            *curv,
            "",
            "## PSIS-LOO comparison of curvature variants",
            "",
            _table(loo),
            "",
            "elpd_loo: expected log predictive density of the runs (higher is better); "
            "elpd_diff/dse: difference from the best and its standard error; p_loo: effective "
            "parameters; pareto_k_high: runs with Pareto k > 0.7; converged: whether that "
            "variant's fit passed the gate (the others had 1-3 divergent transitions; their "
            "elpd is indicative).",
        ]


# --------------------------------------------------------------------------- model comparison


def _fmt_param(p) -> str:
    return p if isinstance(p, str) else f"{p:.4g}"


def _loo_records(table: pd.DataFrame) -> list[dict]:
    cols = [
        "rank", "elpd_loo", "p_loo", "elpd_diff", "se", "dse", "weight", "pareto_k_high",
        "converged",
    ]  # fmt: skip
    out = table.reset_index().rename(columns={"index": "curvature"})
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
        for rec in out[["curvature", *[c for c in cols if c in out]]].to_dict("records")
    ]


def compare_curvatures(
    sweeps: pd.DataFrame,
    curvatures: tuple[str, ...] | list[str] = CURVATURES,
    *,
    groups: tuple[str, ...] | list[str] = ("family", "variant"),
    fitted: dict[str, LandscapePosterior] | None = None,
    **fit_kwargs,
) -> tuple[pd.DataFrame, dict[str, LandscapePosterior]]:
    """Fit the curvature variants and rank them by PSIS-LOO (``arviz.compare``).

    Parameters
    ----------
    sweeps : DataFrame
        One sweep table; every variant sees the same runs (same ``window``).
    curvatures : sequence of str
        Variants to compare (:data:`CURVATURES`).
    fitted : dict, optional
        Posteriors already fitted on ``sweeps``, by variant, reused instead of refitted.
    **fit_kwargs
        Passed to :func:`bayes_steplaw.fit` (window, sampler settings, ...).

    Returns
    -------
    table : DataFrame
        ``arviz.compare`` output indexed by variant, plus ``pareto_k_high`` (runs with k > 0.7).
    posteriors : dict
        The fitted posteriors by variant.
    """
    import warnings

    from .diagnostics import _import_arviz
    from .model import fit

    az = _import_arviz()
    posts = dict(fitted or {})
    loos = {}
    for name in curvatures:
        if name not in posts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unconverged variants are reported in the table
                posts[name] = fit(
                    sweeps, model="landscape", groups=groups, curvature=name, **fit_kwargs
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pareto-k warnings are counted in the table
            loos[name] = posts[name].loo(sweeps)
    table = az.compare(loos)
    table["pareto_k_high"] = [int((loos[n].pareto_k.values > 0.7).sum()) for n in table.index]
    table["converged"] = [posts[n].converged for n in table.index]
    table.index.name = "curvature"
    return table, posts


def observed_plateau(sweeps: pd.DataFrame, tol: float = 0.0025) -> pd.Series:
    """Whether each run finished within ``tol`` of its setting's observed minimum."""
    return _observed_relative_loss(sweeps) <= tol
