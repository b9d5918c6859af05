"""The loss of a run over the whole (lr, batch) grid, written once: best loss, surface, divergence.

With ``u``, ``v`` the centred ln N and ln D of a setting and ``x = ln lr − m_lr``,
``y = ln B − m_bs`` a run's offsets from the setting's optimum (the hierarchical Step Law's),

    L*(N, D)   = E·e^{r_g/f} + (A·e^{−a·u} + B·e^{−b·v})^c               (the best loss)
    q(x, y)    = a_lr(y)·x'²·φ(κ_lr·x') + a_bs·y²·φ(κ_bs·y)           (relative excess loss)
    x'         = x₀·e^{ρ·sign(x₀)},  x₀ = x − s·y − t·y²                (lr off the valley floor)
    a_lr(y)    = e^{ln a_lr + λ·y}
    φ(z)       = 2(eᶻ − 1 − z)/z²          (φ(0) = 1: a quadratic near the optimum)
    loss       = L*·(1 + q) + L*·(σ0 + σ1·q)·ε                       (a run that did not diverge)
    ε          ~ StudentT(ν), or with probability w(q) an upward spike ~ Normal(μs, σs)
    P(diverge) = logistic((x − τ(y)) / w),  τ(y) = τ0 + τ1·y + τ2·y²

``φ`` bends each quadratic into an exponential wall on one side (κ > 0: the high-lr or the
large-batch side rises exponentially, the other side flattens to linear) while keeping the
curvature at the optimum; ``ρ`` (``asym_lr``) gives that curvature e^{2ρ} above the optimum and
e^{−2ρ} below (a sweep's profile near its best lr is a lopsided V, which a curvature equal on
both sides meets only by moving the minimum off it). The valley floor ``x₀ = 0`` is the best
lr of each batch size, and it bends (``t``) because the lr a batch tolerates grows with the
batch below a critical size and stops growing above it. Every shape parameter (``ln a_lr``,
``ln a_bs``, ``s``, ``t``, ``κ_lr``, ``κ_bs``, ``λ``, ``ρ``) is linear (or quadratic) in ``u``
and ``v`` plus an offset per family. The best loss takes the group's offset ``r_g / f`` on its
floor E (``f = E / L*`` at the centre; the floor moves by r_g·L0); w(q) goes from 0 at the
optimum to w far from it (:func:`run_logpdf`).

Every function takes the array module ``xp`` (numpy, or ``pytensor.tensor`` inside the PyMC
model), so the model's likelihood and the posterior's predictive evaluate the same
expressions. Also here: the model's priors (:data:`LOSS_PRIORS`), the divergence rule
(:func:`mark_diverged`) and the numpy-only helpers of the predictive and the checks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .design import Design

SHAPES = ("log_a_lr", "log_a_bs", "tilt", "bend", "skew_lr", "skew_bs", "lr_batch", "asym_lr")
"""Shape parameters of the surface, in the order of :func:`excess`'s ``shape`` mapping."""

SURFACES = {
    "bowl": ("log_a_lr", "log_a_bs", "tilt"),
    "skew": ("log_a_lr", "log_a_bs", "tilt", "skew_lr", "skew_bs"),
    "full": SHAPES[:7],
    "asym": SHAPES,
}
"""Which shape parameters each surface variant estimates (the others are 0)."""

BEST_LAWS = ("product", "chinchilla", "chinchilla-power")
"""``"product"``: L* = E + K·N^-a·D^-b; ``"chinchilla"``: L* = E + A·N^-a + B·D^-b;
``"chinchilla-power"``: L* = E + (A·N^-a + B·D^-b)^c."""

_SMALL = 1e-3  # |z| below which φ uses its series (the closed form cancels there)

LOSS_PRIORS: dict[str, tuple] = {
    "star_L0": ("LogNormal", float(np.log(2.5)), 0.5),
    "star_floor": ("Beta", 4.0, 3.0),
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
    "shape_asym_lr": ("Normal", 0.0, 0.5),
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
    "spike_w": ("Beta", 1.0, 3.0),
    "spike_mean": ("LogNormal", float(np.log(3.0)), 1.0),
    "spike_sd": ("LogNormal", float(np.log(3.0)), 1.0),
}
"""Priors of the loss model's own parameters (ln units; curvatures in relative loss per
squared ln unit; ``div_*`` in ln lr relative to the optimum)."""


def _logaddexp(a, b):
    """ln(eᵃ + eᵇ) by numpy's own steps, the larger plus log1p(e^(smaller − larger)), as
    whole-array operations: they vectorise where ``np.logaddexp`` runs scalar code (3x
    faster; equal to it within two ulps of the larger argument)."""
    if np.ndim(a) + np.ndim(b) == 0:
        return np.logaddexp(a, b)
    larger = np.maximum(a, b)
    out = np.minimum(a, b)
    with np.errstate(invalid="ignore"):  # inf − inf, answered below
        out -= larger
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += larger
    with np.errstate(over="ignore"):  # a sum past the largest float is inf, not NaN
        suspect = math.isnan(out.sum())
    if suspect:  # NaN, or equal infinities (inf − inf): the ufunc's answer there, quietly
        bad = np.isnan(out)
        a, b = np.broadcast_arrays(a, b)
        with np.errstate(invalid="ignore"):  # a NaN argument gives NaN, as it should
            out[bad] = np.logaddexp(a[bad], b[bad])
    return out


class _Predictive:
    """numpy as the formulas' ``xp`` on the predictive's path, :func:`_logaddexp` for its
    ``logaddexp``. Elsewhere (the fits' starting points among them) numpy's own ufunc
    stays, so that nothing there moves by an ulp."""

    logaddexp = staticmethod(_logaddexp)

    def __getattr__(self, name: str):
        return getattr(np, name)


_PREDICTIVE = _Predictive()


def phi(z, xp=np):
    """φ(z) = 2(eᶻ − 1 − z)/z², continued by its series 1 + z/3 + z²/12 near 0.

    Both branches are evaluated (as ``where`` does in a gradient graph), so the closed form
    sees a safe ``z`` where the series is used: no 0/0 to poison a gradient.
    """
    if xp is np and np.ndim(z) > 0 and np.size(z) > 0:
        # no gradient here: the closed form everywhere, then the series where |z| is small,
        # looked for only when some z² comes near (the least z² is one cheap pass): the same
        # values as both branches in full, at under half the work
        square = np.multiply(z, z)
        out = np.expm1(z)
        out -= z
        out *= 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out /= square
        if np.fmin.reduce(square, axis=None) < 2 * _SMALL**2:  # fmin: NaNs skipped
            small = np.abs(z) < _SMALL
            out[small] = _phi_series(z[small])
        return out
    small = xp.abs(z) < _SMALL
    safe = xp.where(small, _SMALL, z)
    closed = 2.0 * (xp.expm1(safe) - safe) / (safe * safe)
    return xp.where(small, _phi_series(z), closed)


def _phi_series(z):
    """φ's series near 0, 1 + z/3 + z²/12 (its error there is below the closed form's)."""
    return 1.0 + z / 3.0 + z * z / 12.0


def excess(x, y, shape: dict, xp=np):
    """Relative excess loss q(x, y) >= 0 of a run, 0 only at the optimum (x = y = 0).

    ``shape`` maps each name of :data:`SHAPES` to an array broadcasting with ``x`` and ``y``
    (a missing name counts as 0, except the two log curvatures, which are required).
    """
    tilt, bend = shape.get("tilt", 0.0), shape.get("bend", 0.0)
    xv = x - tilt * y - bend * y * y
    a_lr = xp.exp(shape["log_a_lr"] + shape.get("lr_batch", 0.0) * y)
    a_bs = xp.exp(shape["log_a_bs"])
    if "asym_lr" in shape:
        # each side of the optimum its own curvature, e^{±2ρ}·a_lr: the minimum stays at
        # x' = 0 and q stays smooth to first order (a kink in the curvature only)
        xv = xv * xp.exp(shape["asym_lr"] * xp.sign(xv))
    q_lr = a_lr * xv * xv * phi(shape.get("skew_lr", 0.0) * xv, xp)
    q_bs = a_bs * y * y * phi(shape.get("skew_bs", 0.0) * y, xp)
    return q_lr + q_bs


def best_loss(u, v, law: dict, xp=np):
    """L*(N, D) = E + (A·e^{−a·u} + B·e^{−b·v})^c; ``law`` holds ``E`` (with the group's
    offset applied), ``log_A``, ``a``, ``log_B``, ``b`` and ``c``, broadcasting with u, v;
    or, for the product form, ``E``, ``log_K``, ``a``, ``b``: L* = E + K·e^{−a·u − b·v}.

    A lab's tilt (``tilt_N``, ``tilt_D`` about its centre ``u0``, ``v0``, where present)
    multiplies L* by exp(tilt_N·(u − u0) + tilt_D·(v − v0)).
    """
    if "log_K" in law:
        star = law["E"] + xp.exp(law["log_K"] - law["a"] * u - law["b"] * v)
    else:
        terms = xp.logaddexp(law["log_A"] - law["a"] * u, law["log_B"] - law["b"] * v)
        star = law["E"] + xp.exp(law["c"] * terms)
    if "tilt_N" in law:
        star = star * xp.exp(law["tilt_N"] * (u - law["u0"]) + law["tilt_D"] * (v - law["v0"]))
    return star


def mean_scale(q, loss_star, sigma0, sigma1):
    """Location and noise scale of a run's loss: L*(1 + q), L*(σ0 + σ1·q)."""
    return loss_star * (1.0 + q), loss_star * (sigma0 + sigma1 * q)


NU_SCALE = 0.01  # relative excess over which the run noise changes from the plateau's to the far
NOISES = ("spikes", "hetero-tails")
"""Run-noise forms (:func:`run_logpdf`)."""


def run_nu(q, nu, nu_far=None, xp=np):
    """Degrees of freedom of a run's noise under ``"hetero-tails"``: ν at the optimum, ν_far
    away from it, ``ν_far + (ν − ν_far)·exp(−q / 0.01)`` (``nu_far=None``: ν everywhere)."""
    if nu_far is None:
        return nu
    return nu_far + (nu - nu_far) * xp.exp(-q / NU_SCALE)


SPIKE_FLOOR = 1e-12  # a run at the exact optimum (q = 0): ln w finite, its gradient too


def spike_share(q, noise: dict, xp=np):
    """Probability that a run's loss carries an upward spike: 0 at the optimum, ``spike_w``
    far from it, ``spike_w·(1 − exp(−q / 0.01))`` (kept above 1e-12, so that the log density
    and its gradient stay finite at q = 0, e.g. a chain that starts at a setting's best run)."""
    return noise["spike_w"] * -xp.expm1(-q / NU_SCALE) + SPIKE_FLOOR


def _t_logpdf(z, nu, xp):
    if xp is np:
        from scipy.special import gammaln
    else:
        gammaln = xp.gammaln
    return (
        gammaln((nu + 1.0) / 2.0) - gammaln(nu / 2.0) - 0.5 * xp.log(nu * np.pi)
        - (nu + 1.0) / 2.0 * xp.log1p(z * z / nu)
    )  # fmt: skip


def run_logpdf(loss, loc, scale, q, noise: dict, xp=np):
    """ln density of the loss a run reports, given that it does not diverge.

    ``noise`` holds ``nu`` and either ``spike_w``, ``spike_mean`` and ``spike_sd``
    (``"spikes"``: a Student-t of ν degrees of freedom around ``loc``, and with probability
    :func:`spike_share` an upward spike instead, normal with mean ``spike_mean`` and sd
    ``spike_sd`` scales above ``loc``) or ``nu_far`` (``"hetero-tails"``: a Student-t whose
    degrees of freedom go from ν at the optimum to ν_far, :func:`run_nu`). Runs far from the
    optimum scatter upward more than downward (an unstable run ends high, never far below its
    expected loss): the spikes keep that side heavy without lending the far runs' tails to
    their lower side, where they would let a far run win a simulated sweep. The density is
    smooth in every parameter (NUTS needs it so).
    """
    z = (loss - loc) / scale
    if "spike_w" in noise:
        w = spike_share(q, noise, xp)
        k = noise["spike_sd"]
        spike = -0.5 * ((z - noise["spike_mean"]) / k) ** 2 - xp.log(k) - 0.5 * np.log(2 * np.pi)
        with np.errstate(divide="ignore") if xp is np else contextlib.nullcontext():
            mixed = xp.logaddexp(xp.log1p(-w) + _t_logpdf(z, noise["nu"], xp), xp.log(w) + spike)
        return mixed - xp.log(scale)
    nu = run_nu(q, noise["nu"], noise.get("nu_far"), xp)
    return _t_logpdf(z, nu, xp) - xp.log(scale)


def run_noise(q, noise: dict, rng: np.random.Generator, shape) -> np.ndarray:
    """Draws of a run's noise in units of its scale (numpy), by the same law as
    :func:`run_logpdf`."""
    return mix_noise(q, noise, noise_draws(noise, rng, shape, q))


def noise_draws(noise: dict, rng: np.random.Generator, shape, q=None) -> dict:
    """The random numbers of :func:`run_noise`, in its order: Student-t draws, and under
    ``"spikes"`` uniforms and normals (there ``q`` is not needed, so the draws of a block of
    runs can be made before its excess loss, which is then worked out a few rows at a time)."""
    if "spike_w" in noise:
        return {
            "t": rng.standard_t(np.broadcast_to(noise["nu"], shape)),
            "uniform": rng.random(shape),
            "normal": rng.standard_normal(shape),
        }
    nu = run_nu(q, noise["nu"], noise.get("nu_far"))
    return {"t": rng.standard_t(np.broadcast_to(nu, shape))}


def mix_noise(q, noise: dict, draws: dict) -> np.ndarray:
    """A run's noise from its :func:`noise_draws` (or rows of them): the Student-t draw, or
    where a spike falls its spike. Overwrites ``draws["normal"]``."""
    if "spike_w" not in noise:
        return draws["t"]
    spiked = draws["uniform"] < spike_share(q, noise)
    spike = np.multiply(draws["normal"], noise["spike_sd"], out=draws["normal"])
    spike += noise["spike_mean"]
    return np.where(spiked, spike, draws["t"])


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
    """ln(1 / (1 + e^{−z})), stable for large |z|: −logaddexp(0, −z) (:func:`_logaddexp`)."""
    z = np.asarray(z)
    if z.ndim == 0:
        return -np.logaddexp(0.0, -z)
    out = _logaddexp(0.0, -z)
    return np.negative(out, out=out)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^{−z}), without overflow warnings."""
    out = log_sigmoid(z)
    return np.exp(out, out=out) if isinstance(out, np.ndarray) else np.exp(out)


def run_log_likelihood(diverged, loss, pred: dict, noise: dict) -> np.ndarray:
    """Log-likelihood of each run: ln P(diverged) for a diverged run, ln P(not diverged) plus
    the log density of its loss otherwise (``pred``: ``logit``, ``loc``, ``scale``, ``q`` of
    :func:`evaluate`, with draws down the first axis; ``noise`` as in :func:`run_logpdf`)."""
    logit = pred["logit"]
    density = run_logpdf(loss, pred["loc"], pred["scale"], pred["q"], noise)
    return np.where(diverged, -np.logaddexp(0.0, -logit), -np.logaddexp(0.0, logit) + density)


def linear_terms(u, v) -> np.ndarray | None:
    """The terms (1, u, v, v², u·v) of settings in a column (u, v of shape (points, 1)), a
    (points, 5) array for :func:`linear`; ``None`` for other shapes."""
    if np.ndim(u) == 2 and np.shape(u)[1] == 1 and np.shape(v) == np.shape(u):
        return np.hstack([np.ones_like(u), u, v, v * v, u * v])
    return None


def linear(coef, u, v, terms: np.ndarray | None = None):
    """``coef[0] + coef[1]·u + coef[2]·v`` (+ ``coef[3]·v² + coef[4]·u·v`` for five
    coefficients): a parameter of a setting from its centred ln N and ln D.

    For settings in a column (u, v of shape (points, 1)) and per-draw coefficients (an array
    (terms, draws)) this is one product, (points, terms) x (terms, draws), by einsum: a BLAS
    call would spread this small product over threads that other work already holds.
    ``terms``: :func:`linear_terms` of (u, v), made once for many coefficients."""
    if isinstance(coef, np.ndarray) and coef.ndim == 2:
        terms = linear_terms(u, v) if terms is None else terms
        if terms is not None:
            return np.einsum("pt,ts->ps", terms[:, : len(coef)], coef)
    out = coef[0] + coef[1] * u + coef[2] * v
    if len(coef) == 5:
        out = out + coef[3] * v * v + coef[4] * u * v
    return out


def fitted_box(meta: Mapping) -> tuple[float, float, float, float]:
    """(u_lo, u_hi, v_lo, v_hi): the fitted settings' range of centred ln N and ln D, beyond
    which :func:`evaluate` holds the surface's shape (``surface_box``)."""
    (n_lo, n_hi), (d_lo, d_hi) = meta["N_range"], meta["D_range"]
    n0, d0 = meta["log_n0"], meta["log_d0"]
    return (math.log(n_lo) - n0, math.log(n_hi) - n0, math.log(d_lo) - d0, math.log(d_hi) - d0)


def evaluate(coef: dict, u, v, log_lr, log_bs) -> dict:
    """Location, noise scale, divergence log-odds and best loss of runs, from coefficients.

    ``coef`` holds arrays that broadcast against ``u``, ``v``, ``log_lr``, ``log_bs``: the
    triples (intercept, ln N slope, ln D slope) ``m_lr``, ``m_bs``, ``tau0`` and
    ``shape_<name>`` for each estimated shape parameter; ``star`` (the best-loss law's
    parameters, :func:`best_loss`), ``star_scale`` (the multiplicative setting effect of L*,
    or the per-setting L* itself when ``star`` is None), ``tau1``, ``tau2``, ``width``,
    ``sigma0``, ``sigma1``; optionally ``surface_box``, (u_lo, u_hi, v_lo, v_hi) of the fitted
    data, outside which the shape parameters are held at the box's edge. Returns ``loc``,
    ``scale``, ``logit``, ``loss_star`` and ``q``.
    """
    terms = linear_terms(u, v)
    x = log_lr - linear(coef["m_lr"], u, v, terms)
    y = log_bs - linear(coef["m_bs"], u, v, terms)
    us, vs, held = u, v, terms
    if coef.get("surface_box") is not None:
        # beyond the fitted data the shape is held at its edge (its terms in u, v, v², u·v
        # are measured only over the data; a v² term carried 1.5 decades out made the lr
        # walls differ 180-fold at 7B / 1.4T), while the optimum and L* follow their laws
        lo_u, hi_u, lo_v, hi_v = coef["surface_box"]
        us, vs = np.clip(u, lo_u, hi_u), np.clip(v, lo_v, hi_v)
        held = linear_terms(us, vs)
    shape = {k[6:]: linear(c, us, vs, held) for k, c in coef.items() if k.startswith("shape_")}
    with np.errstate(over="ignore", invalid="ignore"):
        # far beyond a wall the exponential overflows: the excess loss is +inf there, as meant
        q = excess(x, y, shape)
    star = coef["star_scale"]
    if coef.get("star") is not None:
        star = best_loss(u, v, coef["star"], _PREDICTIVE) * star
    with np.errstate(over="ignore", invalid="ignore"):
        loc, scale = mean_scale(q, star, coef["sigma0"], coef["sigma1"])
    div = {"tau0": linear(coef["tau0"], u, v, terms), "tau1": coef["tau1"], "tau2": coef["tau2"]}
    logit = divergence_logit(x, y, div | {"width": coef["width"]})
    return {"loc": loc, "scale": scale, "logit": logit, "loss_star": star, "q": q}
