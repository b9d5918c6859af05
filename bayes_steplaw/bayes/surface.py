"""The loss of a run over the whole (lr, batch) grid, written once: best loss, surface, divergence.

With ``u``, ``v`` the centred ln N and ln D of a setting and ``x = ln lr − m_lr``,
``y = ln B − m_bs`` a run's offsets from the setting's optimum (the hierarchical Step Law's),

    L*(N, D)   = E·e^{r_g/f} + (A·e^{−a·u} + B·e^{−b·v})^c               (the best loss)
    q(x, y)    = a_lr(y)·x'²·φ(κ_lr·x') + a_bs·y²·φ(κ_bs·y)           (relative excess loss)
    x'         = x − s·y − t·y²                                         (lr off the valley floor)
    a_lr(y)    = e^{ln a_lr + λ·y}
    φ(z)       = 2(eᶻ − 1 − z)/z²          (φ(0) = 1: a quadratic near the optimum)
    loss       ~ StudentT(ν(q), L*·(1 + q), L*·(σ0 + σ1·q))            (a run that did not diverge)
    P(diverge) = logistic((x − τ(y)) / w),  τ(y) = τ0 + τ1·y + τ2·y²

``φ`` bends each quadratic into an exponential wall on one side (κ > 0: the high-lr or the
large-batch side rises exponentially, the other side flattens to linear) while keeping the
curvature at the optimum; the valley floor ``x' = 0`` is the best lr of each batch size, and it
bends (``t``) because the lr a batch tolerates grows with the batch below a critical size and
stops growing above it. Every shape parameter (``ln a_lr``, ``ln a_bs``, ``s``, ``t``, ``κ_lr``,
``κ_bs``, ``λ``) is linear (or quadratic) in ``u`` and ``v`` plus an offset per family. The
best loss takes the group's offset ``r_g / f`` on its floor E (``f = E / L*`` at the centre;
``bayes_steplaw.bayes.loss.star_offsets``); ν(q) goes from ν at the optimum to ν_far away
from it (:func:`run_nu`).

Every function takes the array module ``xp`` (numpy, or ``pytensor.tensor`` inside the PyMC
model), so the model's likelihood and the posterior's predictive evaluate the same
expressions. Also here: the model's priors (:data:`LOSS_PRIORS`), the divergence rule
(:func:`mark_diverged`), the numpy-only helpers of the predictive and the checks, and its
result types (:class:`LossPrediction`, :class:`BestLoss`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._validate import DEFAULT_PROB, check_prob
from .design import Design
from .posterior import sorted_quantile

SHAPES = ("log_a_lr", "log_a_bs", "tilt", "bend", "skew_lr", "skew_bs", "lr_batch")
"""Shape parameters of the surface, in the order of :func:`excess`'s ``shape`` mapping."""

SURFACES = {
    "bowl": ("log_a_lr", "log_a_bs", "tilt"),
    "skew": ("log_a_lr", "log_a_bs", "tilt", "skew_lr", "skew_bs"),
    "full": SHAPES,
}
"""Which shape parameters each surface variant estimates (the others are 0)."""

BEST_LAWS = ("chinchilla", "chinchilla-power")
"""``"chinchilla"``: L* = E + A·N^-a + B·D^-b (c = 1); ``"chinchilla-power"``: c estimated."""

_SMALL = 1e-3  # |z| below which φ uses its series (the closed form cancels there)

LOSS_PRIORS: dict[str, tuple] = {
    "star_L0": ("LogNormal", float(np.log(2.5)), 0.5),
    "star_floor": ("Beta", 2.0, 2.0),
    "star_slope_N": ("LogNormal", float(np.log(0.05)), 1.0),
    "star_slope_D": ("LogNormal", float(np.log(0.05)), 1.0),
    "star_mix": ("Beta", 2.0, 2.0),
    "star_c": ("LogNormal", 0.0, 0.6),
    "sigma_star_group": ("Gamma", 2.0, 20.0),
    "sigma_setting_star": ("HalfNormal", 0.02),
    "shape_log_a_lr": ("Normal", float(np.log(0.005)), 1.5),
    "shape_log_a_bs": ("Normal", float(np.log(0.005)), 1.5),
    "shape_tilt": ("Normal", 0.3, 0.5),
    "shape_bend": ("Normal", 0.0, 0.3),
    "shape_skew_lr": ("Normal", 0.0, 1.0),
    "shape_skew_bs": ("Normal", 0.0, 1.0),
    "shape_lr_batch": ("Normal", 0.0, 0.5),
    "shape_slopes": ("Normal", 0.0, 0.5),
    "shape_group": ("ZeroSumNormal", 0.5),
    "div_tau0": ("Normal", 2.0, 1.0),
    "div_tau0_slopes": ("Normal", 0.0, 0.5),
    "div_tau1": ("Normal", 0.0, 0.5),
    "div_tau2": ("Normal", 0.0, 0.3),
    "div_width": ("HalfNormal", 0.3),
    "sigma_run": ("HalfNormal", 0.01),
    "sigma_run_q": ("HalfNormal", 0.5),
    "nu": ("Gamma", 2.0, 0.1),
    "nu_far": ("Gamma", 2.0, 0.1),
}
"""Priors of the loss model's own parameters (ln units; curvatures in relative loss per
squared ln unit; ``div_*`` in ln lr relative to the optimum)."""


def phi(z, xp=np):
    """φ(z) = 2(eᶻ − 1 − z)/z², continued by its series 1 + z/3 + z²/12 near 0.

    Both branches are evaluated (as ``where`` does in a gradient graph), so the closed form
    sees a safe ``z`` where the series is used: no 0/0 to poison a gradient.
    """
    small = xp.abs(z) < _SMALL
    safe = xp.where(small, _SMALL, z)
    closed = 2.0 * (xp.expm1(safe) - safe) / (safe * safe)
    return xp.where(small, 1.0 + z / 3.0 + z * z / 12.0, closed)


def excess(x, y, shape: dict, xp=np):
    """Relative excess loss q(x, y) >= 0 of a run, 0 only at the optimum (x = y = 0).

    ``shape`` maps each name of :data:`SHAPES` to an array broadcasting with ``x`` and ``y``
    (a missing name counts as 0, except the two log curvatures, which are required).
    """
    tilt, bend = shape.get("tilt", 0.0), shape.get("bend", 0.0)
    xv = x - tilt * y - bend * y * y
    a_lr = xp.exp(shape["log_a_lr"] + shape.get("lr_batch", 0.0) * y)
    a_bs = xp.exp(shape["log_a_bs"])
    q_lr = a_lr * xv * xv * phi(shape.get("skew_lr", 0.0) * xv, xp)
    q_bs = a_bs * y * y * phi(shape.get("skew_bs", 0.0) * y, xp)
    return q_lr + q_bs


def best_loss(u, v, law: dict, xp=np):
    """L*(N, D) = E + (A·e^{−a·u} + B·e^{−b·v})^c; ``law`` holds ``E`` (with the group's
    offset applied), ``log_A``, ``a``, ``log_B``, ``b`` and ``c``, broadcasting with u, v."""
    terms = xp.logaddexp(law["log_A"] - law["a"] * u, law["log_B"] - law["b"] * v)
    return law["E"] + xp.exp(law["c"] * terms)


def mean_scale(q, loss_star, sigma0, sigma1):
    """Location and noise scale of a run's loss: L*(1 + q), L*(σ0 + σ1·q)."""
    return loss_star * (1.0 + q), loss_star * (sigma0 + sigma1 * q)


NU_SCALE = 0.01  # relative excess over which the run noise's tails go from ν to ν_far


def run_nu(q, nu, nu_far=None, xp=np):
    """Degrees of freedom of a run's noise: ν at the optimum, ν_far away from it,
    ``ν_far + (ν − ν_far)·exp(−q / 0.01)`` (``nu_far=None``: ν everywhere). Runs near the
    divergence edge that spiked scatter with heavy tails; those on the plateau do not, and one
    ν for both would give the plateau's runs the edge's tails (and a sweep's best run a lower
    predicted loss than it reports)."""
    if nu_far is None:
        return nu
    return nu_far + (nu - nu_far) * xp.exp(-q / NU_SCALE)


def divergence_logit(x, y, div: dict):
    """Log-odds that a run diverges: (x − τ0 − τ1·y − τ2·y²) / w (``div``: tau0, tau1, tau2,
    width). The threshold is in ln lr relative to the setting's optimum, so it follows the
    optimum across N and D (``tau0`` may carry N and D slopes of its own)."""
    tau = div["tau0"] + div["tau1"] * y + div["tau2"] * y * y
    return (x - tau) / div["width"]


# --------------------------------------------------------------------------- numpy only


def shape_column(design: Design) -> str | None:
    """The group column whose levels get surface-shape offsets: the first, if it has two."""
    levels = design.hierarchy.levels
    return levels[0].column if levels and len(levels[0].labels) >= 2 else None


DIVERGED_RATIO = 1.5
"""A run diverged when its loss exceeds this multiple of its setting's lowest loss."""


def mark_diverged(sweeps: pd.DataFrame, ratio: float = DIVERGED_RATIO) -> pd.DataFrame:
    """The sweep table with a boolean ``diverged`` column: loss > ``ratio`` x setting minimum."""
    ratio = check_ratio(ratio)
    best = sweeps.groupby("setting")["loss"].transform("min").to_numpy(float)
    return sweeps.assign(diverged=sweeps["loss"].to_numpy(float) > ratio * best)


def check_ratio(ratio) -> float:
    """A divergence ratio: a finite number > 1."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio):
        raise ValueError(f"diverged must be a number > 1 (e.g. 1.5); got {ratio!r}")
    if ratio <= 1:
        raise ValueError(f"diverged must be > 1: a ratio to the setting's lowest loss; got {ratio}")
    return float(ratio)


def log_sigmoid(z: np.ndarray) -> np.ndarray:
    """ln(1 / (1 + e^{−z})), stable for large |z|."""
    return -np.logaddexp(0.0, -z)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^{−z}), without overflow warnings."""
    return np.exp(log_sigmoid(z))


def run_log_likelihood(diverged, loss, pred: dict, nu) -> np.ndarray:
    """Log-likelihood of each run: ln P(diverged) for a diverged run, ln P(not diverged) plus
    the Student-t log density of its loss otherwise (``pred``: ``logit``, ``loc``, ``scale``
    of :func:`evaluate`, with draws down the first axis)."""
    logit = pred["logit"]
    alive = -np.logaddexp(0.0, logit) + student_t_logpdf(loss, pred["loc"], pred["scale"], nu)
    return np.where(diverged, -np.logaddexp(0.0, -logit), alive)


def student_t_logpdf(value, loc, scale, nu) -> np.ndarray:
    """Student-t log density (numpy; the likelihood of a run that did not diverge)."""
    from scipy.special import gammaln

    z = (value - loc) / scale
    return (
        gammaln((nu + 1.0) / 2.0)
        - gammaln(nu / 2.0)
        - 0.5 * np.log(nu * np.pi)
        - np.log(scale)
        - (nu + 1.0) / 2.0 * np.log1p(z * z / nu)
    )


def linear(coef, u, v):
    """``coef[0] + coef[1]·u + coef[2]·v`` (+ ``coef[3]·v² + coef[4]·u·v`` for five
    coefficients): a parameter of a setting from its centred ln N and ln D."""
    out = coef[0] + coef[1] * u + coef[2] * v
    if len(coef) == 5:
        out = out + coef[3] * v * v + coef[4] * u * v
    return out


def evaluate(coef: dict, u, v, log_lr, log_bs) -> dict:
    """Location, noise scale, divergence log-odds and best loss of runs, from coefficients.

    ``coef`` holds arrays that broadcast against ``u``, ``v``, ``log_lr``, ``log_bs``: the
    triples (intercept, ln N slope, ln D slope) ``m_lr``, ``m_bs``, ``tau0`` and
    ``shape_<name>`` for each estimated shape parameter; ``star`` (the best-loss law's
    parameters, :func:`best_loss`), ``star_scale`` (the multiplicative setting effect of L*,
    or the per-setting L* itself when ``star`` is None), ``tau1``, ``tau2``, ``width``,
    ``sigma0``, ``sigma1``. Returns ``loc``, ``scale``, ``logit``, ``loss_star`` and ``q``.
    """
    x = log_lr - linear(coef["m_lr"], u, v)
    y = log_bs - linear(coef["m_bs"], u, v)
    shape = {k[6:]: linear(c, u, v) for k, c in coef.items() if k.startswith("shape_")}
    with np.errstate(over="ignore", invalid="ignore"):
        # far beyond a wall the exponential overflows: the excess loss is +inf there, as meant
        q = excess(x, y, shape)
    star = coef["star_scale"]
    if coef.get("star") is not None:
        star = best_loss(u, v, coef["star"]) * star
    with np.errstate(over="ignore", invalid="ignore"):
        loc, scale = mean_scale(q, star, coef["sigma0"], coef["sigma1"])
    div = {"tau0": linear(coef["tau0"], u, v), "tau1": coef["tau1"], "tau2": coef["tau2"]}
    logit = divergence_logit(x, y, div | {"width": coef["width"]})
    return {"loc": loc, "scale": scale, "logit": logit, "loss_star": star, "q": q}


def batch_cost_table(
    coef: dict, u: float, v: float, fixed: np.ndarray, prob: float
) -> pd.DataFrame:
    """What each batch in ``fixed`` costs in loss at one setting (``coef`` as in
    :func:`evaluate`, one setting's centred ``u``, ``v``); see ``LossPosterior.batch_cost``.

    Expected losses are evaluated on lr steps of 1/8 octave (±5 octaves) and batch steps of
    1/4 octave (±6 octaves) around the posterior median optimum, plus the fixed batches.
    """
    lr0 = float(np.median(linear(coef["m_lr"], u, v)))
    bs0 = float(np.median(linear(coef["m_bs"], u, v)))
    lr_grid = lr0 + np.log(2) / 8 * np.arange(-40, 41)
    free = bs0 + np.log(2) / 4 * np.arange(-24, 25)
    bs_grid = np.concatenate([free, np.log(fixed)])
    # one batch at a time: the whole (batch x lr x draw) grid would take gigabytes
    mean = np.stack(
        [evaluate(coef, u, v, lr_grid[:, None], b)["loc"].mean(axis=-1) for b in bs_grid]
    )
    best = np.unravel_index(np.argmin(mean), mean.shape)  # the fixed batches compete too

    def at(j: int, k: int) -> dict:
        return evaluate(coef, u, v, lr_grid[k], bs_grid[j])

    best_draws = at(*best)["loc"]
    rows = []
    for i, b in enumerate(fixed):
        j = len(free) + i
        k = int(np.argmin(mean[j]))
        point = at(j, k)
        diff = point["loc"] - best_draws
        lo, hi = np.quantile(diff, [(1 - prob) / 2, (1 + prob) / 2])
        rows.append({
            "batch_tokens": b, "lr": math.exp(lr_grid[k]), "loss_mean": mean[j, k],
            "best_lr": math.exp(lr_grid[best[1]]), "best_batch_tokens": math.exp(bs_grid[best[0]]),
            "best_loss_mean": mean[best], "cost_mean": diff.mean(), "cost_lower": lo,
            "cost_upper": hi, "p_diverge": float(sigmoid(point["logit"]).mean()),
        })  # fmt: skip
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- result types

KINDS = ("run", "mean")
"""What a :meth:`LossPosterior.predict_loss` interval is about (see :func:`describe_loss`)."""
_CHUNK = 256  # points per block when reducing (point x sample) draws


def describe_loss(kind: str) -> str:
    """What a loss interval of ``kind`` is about, in words."""
    return {
        "run": "the smoothed final loss a new run will report, given that it does not diverge "
        "(run noise, a new setting's scatter and the fit's uncertainty included)",
        "mean": "the expected final loss of a run (a new setting's scatter and the fit's "
        "uncertainty; no run noise)",
        "best": "the best loss L*(N, D) of a new setting: the bottom of its loss surface "
        "(a new setting's scatter and the law's uncertainty)",
        "law": "the best-loss law L*(N, D) itself (its uncertainty only)",
    }[kind]


@dataclass
class LossPrediction:
    """Posterior-predictive loss of runs at (N, D, lr, batch); draws are made block-wise.

    ``coef`` holds per-draw coefficients (:func:`bayes_steplaw.bayes.surface.evaluate`); the
    points are flat arrays of the broadcast inputs, of shape :attr:`shape` once reduced.
    """

    N: np.ndarray
    D: np.ndarray
    lr: np.ndarray
    batch_tokens: np.ndarray
    shape: tuple[int, ...]
    group: str
    kind: str
    seed: int
    coef: dict
    u: np.ndarray
    v: np.ndarray
    N_decades_outside: np.ndarray = field(repr=False)
    D_decades_outside: np.ndarray = field(repr=False)

    @property
    def n_samples(self) -> int:
        """Posterior samples per point."""
        return len(self.coef["nu"])

    def _block(self, sl: slice) -> dict:
        col = lambda a: a[sl, None]  # noqa: E731  (points down, draws across)
        return evaluate(
            self.coef,
            col(self.u),
            col(self.v),
            col(np.log(self.lr)),
            col(np.log(self.batch_tokens)),
        )

    def _draws(self, sl: slice, out: dict) -> np.ndarray:
        if self.kind == "mean":
            return out["loc"]
        rng = np.random.default_rng([self.seed, 7, sl.start or 0])
        nu = run_nu(out["q"], self.coef["nu"], self.coef.get("nu_far"))
        noise = rng.standard_t(np.broadcast_to(nu, out["loc"].shape))
        loc = out["loc"]
        with np.errstate(invalid="ignore"):
            return np.where(np.isinf(loc), loc, loc + out["scale"] * noise)

    def _reduce(self, quantiles: tuple[float, ...], p_div: bool = False) -> list[np.ndarray]:
        parts: list[list[np.ndarray]] = [[] for _ in range(len(quantiles) + p_div)]
        for start in range(0, len(self.u), _CHUNK):
            sl = slice(start, start + _CHUNK)
            out = self._block(sl)
            ordered = np.sort(self._draws(sl, out), axis=1)
            for i, q in enumerate(quantiles):
                parts[i].append(sorted_quantile(ordered, q))
            if p_div:
                parts[-1].append(sigmoid(out["logit"]).mean(axis=1))
        return [np.concatenate(p).reshape(self.shape) for p in parts]

    def median(self) -> np.ndarray:
        """Posterior-predictive median loss, with the broadcast shape of the inputs."""
        return self._reduce((0.5,))[0][()]

    def interval(self, prob: float = DEFAULT_PROB) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed ``prob`` predictive interval: (lower, upper)."""
        prob = check_prob(prob)
        lo, hi = self._reduce(((1 - prob) / 2, (1 + prob) / 2))
        return lo[()], hi[()]

    def p_diverge(self) -> np.ndarray:
        """Posterior probability that a run at each point diverges."""
        return self._reduce((), p_div=True)[0][()]

    @property
    def draws(self) -> np.ndarray:
        """All draws, shape ``shape + (samples,)`` (memory: one float per point and draw)."""
        sl = slice(0, len(self.u))
        return self._draws(sl, self._block(sl)).reshape(*self.shape, self.n_samples)

    def log_density(self, loss) -> np.ndarray:
        """ln of the predictive density of an observed loss at each point (``kind="run"``):
        the mixture over posterior draws of the Student-t run-noise densities."""
        loss = np.broadcast_to(np.asarray(loss, dtype=float), self.shape).ravel()
        out = []
        for start in range(0, len(self.u), _CHUNK):
            sl = slice(start, start + _CHUNK)
            b = self._block(sl)
            nu = run_nu(b["q"], self.coef["nu"], self.coef.get("nu_far"))
            lp = student_t_logpdf(loss[sl, None], b["loc"], b["scale"], nu)
            out.append(np.logaddexp.reduce(lp, axis=1) - np.log(self.n_samples))
        return np.concatenate(out).reshape(self.shape)[()]

    def describe(self, prob: float = DEFAULT_PROB) -> str:
        """One sentence saying what the intervals are about."""
        return (
            f"posterior median and {prob:.0%} interval of {describe_loss(self.kind)}; "
            f"group {self.group!r}"
        )

    def to_dataframe(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """One row per point: inputs, ``loss_median``, ``loss_lower``, ``loss_upper``,
        ``p_diverge`` and how far N and D lie outside the fitted data (decades)."""
        prob = check_prob(prob)
        med, lo, hi, p = self._reduce((0.5, (1 - prob) / 2, (1 + prob) / 2), p_div=True)
        return pd.DataFrame(
            {
                "N": self.N,
                "D": self.D,
                "lr": self.lr,
                "batch_tokens": self.batch_tokens,
                "group": self.group,
                "kind": self.kind,
                "loss_median": med.ravel(),
                "loss_lower": lo.ravel(),
                "loss_upper": hi.ravel(),
                "p_diverge": p.ravel(),
                "N_decades_outside": self.N_decades_outside,
                "D_decades_outside": self.D_decades_outside,
            }
        )


@dataclass
class BestLoss:
    """Draws of the best loss L*(N, D) of a setting, shape ``shape + (samples,)``."""

    N: np.ndarray
    D: np.ndarray
    group: str
    kind: str
    draws: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the (broadcast) inputs."""
        return self.draws.shape[:-1]

    def median(self) -> np.ndarray:
        """Posterior median of L*."""
        return np.median(self.draws, axis=-1)[()]

    def mean(self) -> np.ndarray:
        """Posterior mean of L*."""
        return self.draws.mean(axis=-1)[()]

    def interval(self, prob: float = DEFAULT_PROB) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed ``prob`` interval: (lower, upper)."""
        prob = check_prob(prob)
        lo, hi = np.quantile(self.draws, [(1 - prob) / 2, (1 + prob) / 2], axis=-1)
        return lo[()], hi[()]

    def describe(self, prob: float = DEFAULT_PROB) -> str:
        """One sentence saying what the interval is about."""
        return f"posterior median and {prob:.0%} interval of {describe_loss(self.kind)}"

    def to_dataframe(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """One row per (N, D): ``best_loss_median``, ``best_loss_lower``, ``best_loss_upper``."""
        lo, hi = self.interval(prob)
        return pd.DataFrame(
            {
                "N": np.broadcast_to(self.N, self.shape).ravel(),
                "D": np.broadcast_to(self.D, self.shape).ravel(),
                "group": self.group,
                "kind": self.kind,
                "best_loss_median": np.ravel(self.median()),
                "best_loss_lower": np.ravel(lo),
                "best_loss_upper": np.ravel(hi),
            }
        )
