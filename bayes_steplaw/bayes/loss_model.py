"""The loss model: the final loss of every run over (N, D, lr, batch, group), as one PyMC graph.

Every run of every setting enters, diverged ones too. A run *diverged* when its final loss
exceeds ``diverged`` (default 1.5) times its setting's lowest loss: on the released data every
other run lies within 1.21x of its setting's best and every diverged one above 1.72x (181 dense
runs, most between 6 and 7, all at lr >= 5.5e-3), so any ratio in between draws the same
line. Divergence is a Bernoulli outcome, the loss of a run that did not diverge a Student-t
around ``L*[s]·(1 + q)``, with the geometry of :mod:`bayes_steplaw.bayes.surface`. The runs'
offsets from their setting's optimum are measured from ``m_lr``, ``m_bs``, the setting optima of the
hierarchical Step Law (:func:`bayes_steplaw.bayes.law.law_means`, centred), so the optimum model and
this one tell one story;
``ln L*[s] ~ Normal(ln L*(N, D, group), σ_setting_star)`` with a Chinchilla-type law whose
floor E has partially pooled group offsets (every group column); the surface's shape
parameters are quadratic in centred ln N and ln D with an offset per level of the first group
column (the family). Priors: :data:`LOSS_PRIORS` and the law's
(:data:`bayes_steplaw.bayes.law.PRIORS`). :class:`LossPosterior` predicts with numpy alone;
PyMC is imported only to build.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from .._validate import check_choice
from .design import DEFAULT_GROUPS, Design, build_design, level_dims
from .labs import (
    DEFAULT_LAB,
    EXPONENTS_VARY_BY,
    LAB_LEVELS,
    LAB_SCALES,
    lab_metadata,
    lab_of_family,
    lab_terms,
    setting_labs,
    sibling_parents,
)
from .law import PRIORS
from .loss import LossPosterior
from .model import Built, Model
from .surface import (
    BEST_LAWS,
    DIVERGED_RATIO,
    LOSS_PRIORS,
    NOISES,
    SURFACES,
    best_loss,
    check_ratio,
    divergence_logit,
    excess,
    mark_diverged,
    mean_scale,
    run_logpdf,
    shape_column,
)

DEFAULT_SURFACE = "asym"
DEFAULT_BEST_LAW = "chinchilla-power"
DEFAULT_SHAPE_TERMS = "quadratic"
DEFAULT_NOISE = "spikes"
BOX_MARGIN, BOX_SD = 1.0, 0.25  # an optimum beyond e x its grid's ends costs (excess / 0.25)²/2


# --------------------------------------------------------------------------- PyMC pieces
#
# The graph is written with few, vector-valued random variables (one per kind of parameter)
# and one gather from settings to runs: the compiled log density is then small (it compiles
# in seconds with JAX) and its gradient has no scatter per parameter. The names the
# predictive reads (c, alpha, a_lr_family, m_lr, shape_coef, ...) are Deterministics of them;
# the raw vectors are named z_* and are not kept in saved posteriors.

LAWS = ("lr", "bs", "star")
"""What the group offsets and the setting effects move: ln lr*, ln B*, ln L*."""
SETTING_SCALE = (0.05, 0.1, 0.002)
"""Sampler scale of a setting's ln lr*, ln B*, ln L* around its best run (about the posterior
sd of each when the setting's runs pin it down; the coordinate itself is flat)."""
TERMS = {"linear": ("1", "u", "v"), "quadratic": ("1", "u", "v", "vv", "uv")}
"""The terms of a shape parameter in centred ln N (u) and ln D (v)."""


def _vector(name: str, dist, priors: dict, keys: tuple[str, ...]):
    """One vector-valued random variable holding the parameters ``keys``, each with its prior
    from ``priors`` (all of the family ``dist``: Normal's mu and sigma, or HalfNormal's sigma)."""
    args = np.array([priors[k][1:] for k in keys]).T
    return dist(name, *args, shape=len(keys))


def _group_offsets(design: Design, lab_of: dict[str, str] | None = None):
    """Per-setting sums of the group offsets of ln lr*, ln B*, ln L*: a tensor (settings, 3).

    Each group column has three population scales (Gamma priors: PRIORS["sigma_group"] for
    the optima, LOSS_PRIORS["sigma_star_group"] for the best loss) and, for every set of
    sibling levels, centred zero-sum offsets: the parent's offset is the siblings' mean.
    With ``lab_of`` (each family's lab), the families of each lab are siblings: a lab's
    families sum to zero about its level, which the lab's own offset carries (a lab with one
    family has none of its own). Recorded as ``a_<law>_<column>`` and ``sigma_<law>_<column>``,
    as the optimum model's.
    """
    import pymc as pm
    import pytensor.tensor as pt

    shape_a = np.array([PRIORS["sigma_group"][1]] * 2 + [LOSS_PRIORS["sigma_star_group"][1]])
    rate = np.array([PRIORS["sigma_group"][2]] * 2 + [LOSS_PRIORS["sigma_star_group"][2]])
    total = pt.zeros((len(design.settings), 3))
    for j, lev in enumerate(design.hierarchy.levels):
        sigma = pm.Gamma(f"z_sigma_{lev.column}", alpha=shape_a, beta=rate, shape=3)
        parents = sibling_parents(lev, j, lab_of)
        siblings = np.unique(parents)
        pieces, order = [], []
        for k, parent in enumerate(siblings):
            members = np.flatnonzero(parents == parent)
            order.extend(members)
            if len(members) == 1:
                pieces.append(pt.zeros((3, 1)))
            else:
                label = lev.column if len(siblings) == 1 else f"{lev.column}_{k}"
                pieces.append(
                    pm.ZeroSumNormal(f"e_{label}", sigma=sigma[:, None], shape=(3, len(members)))
                )
        offsets = pt.concatenate(pieces, axis=1)[:, np.argsort(order)]
        for i, law in enumerate(LAWS):
            pm.Deterministic(f"sigma_{law}_{lev.column}", sigma[i])
            pm.Deterministic(f"a_{law}_{lev.column}", offsets[i], dims=f"level_{lev.column}")
        padded = pt.concatenate([offsets.T, pt.zeros((1, 3))], axis=0)  # index -1: no offset
        total = total + padded[design.setting_levels[:, j]]
    return total


def star_law(form: str) -> dict:
    """The best-loss law's parameters (:func:`.surface.best_loss`) from a sampler-friendly set.

    The runs pin down the law's value at the data's centre, ``L0``, and its log-slopes there,
    ``γ_N`` and ``γ_D``; the floor's share ``f = E / L0`` (and, for the Chinchilla forms, the
    mix ``π = A / (A + B)`` and the power ``c``) only bend the law away from the centre.
    Sampling (L0, γ_N, γ_D, f, ...) instead of (E, A, a, ...) takes the sampler off the ridges
    between the floor and the coefficients. For ``form="product"``, L* = E + K·N^-a·D^-b,
    ``γ_N = (1 − f)·a`` and ``γ_D = (1 − f)·b``: one bending parameter, f, which the curvature
    of ln L* in ln D fixes. The law's own parameters are recorded as ``star_*``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    power = form == "chinchilla-power"
    names = ("star_L0", "star_slope_N", "star_slope_D", "star_c")[: 4 if power else 3]
    positive = _vector("z_star_positive", pm.LogNormal, LOSS_PRIORS, names)
    shares = ("star_floor",) if form == "product" else ("star_floor", "star_mix")
    share = _vector("z_star_share", pm.Beta, LOSS_PRIORS, shares)
    level, slope_n, slope_d = positive[0], positive[1], positive[2]
    floor = share[0]
    law = {
        "floor": pm.Deterministic("star_floor", floor),
        "L0": pm.Deterministic("star_L0", level),
        "E": pm.Deterministic("star_E", floor * level),
    }
    if form == "product":
        return law | {
            "log_K": pm.Deterministic("star_log_K", pt.log((1.0 - floor) * level)),
            "a": pm.Deterministic("star_a", slope_n / (1.0 - floor)),
            "b": pm.Deterministic("star_b", slope_d / (1.0 - floor)),
        }
    c = positive[3] if power else pt.constant(1.0)
    mix = share[1]
    log_sum = pt.log((1.0 - floor) * level) / c  # ln(A + B)
    spread = (1.0 - floor) * c
    return law | {
        "log_A": pm.Deterministic("star_log_A", log_sum + pt.log(mix)),
        "a": pm.Deterministic("star_a", slope_n / (spread * mix)),
        "log_B": pm.Deterministic("star_log_B", log_sum + pt.log1p(-mix)),
        "b": pm.Deterministic("star_b", slope_d / (spread * (1.0 - mix))),
        "c": pm.Deterministic("star_c", c),
    }


def _shape_offsets(design: Design, runs: pd.DataFrame, names, column: str, by_lab: bool):
    """The families' offsets of the surface's shape parameters (shapes, families).

    One lab: centred, zero-sum offsets (the intercept is the families' centre). With lab
    deviations, only the reference lab's families sum to zero; another lab's family gets an
    offset of its own from the same prior. Summed with the released families, a user family
    whose sweep cannot place its valley (one-at-a-time runs do not see the lr-batch coupling)
    moved every family's offsets with it: R-hat 1.018 on the shape parameters of a pooled
    4-setting sweep, even with twice the tuning.
    """
    import pymc as pm
    import pytensor.tensor as pt

    sd = LOSS_PRIORS["shape_group"][1]
    labels = list(design.hierarchy.levels[0].labels)
    dims = ("shape", f"level_{column}")
    if not by_lab:
        return pm.ZeroSumNormal(f"shape_{column}", sigma=sd, shape=(len(names), len(labels)),
                                dims=dims)  # fmt: skip
    lab = lab_of_family(runs)
    ref = DEFAULT_LAB if DEFAULT_LAB in set(lab.values()) else min(lab.values())
    mine = [i for i, f in enumerate(labels) if lab.get(f) == ref]
    other = [i for i, f in enumerate(labels) if lab.get(f) != ref]
    pieces = []
    if len(mine) > 1:
        pieces.append(pm.ZeroSumNormal("e_shape_ref", sigma=sd, shape=(len(names), len(mine))))
    elif mine:
        pieces.append(pt.zeros((len(names), 1)))
    if other:
        pieces.append(pm.Normal("e_shape_other", 0.0, sd, shape=(len(names), len(other))))
    order = np.argsort(mine + other)
    return pm.Deterministic(f"shape_{column}", pt.concatenate(pieces, axis=1)[:, order],
                            dims=dims)  # fmt: skip


def _start(design: Design, origin: np.ndarray, form: str) -> dict[str, np.ndarray]:
    """Starting values of the laws, from each setting's best run: the lr and batch laws by
    least squares (shrunk to their priors), the best-loss law by nonlinear least squares with
    an offset per setting group. A chain that starts at the priors' centres spends its
    tuning on the way (the best loss is pinned to 0.1%) and can stop in a wrong valley."""
    from scipy.optimize import least_squares

    u, v = design.log_n, design.log_d
    start = {}
    mu0 = np.array([PRIORS[k][1] for k in _LAW])
    sd0 = np.array([PRIORS[k][2] for k in _LAW])
    law = mu0.copy()
    for cols, y, idx in (((np.ones_like(u), u, v), origin[:, 0], [0, 2, 3]),
                         ((np.ones_like(u), v), origin[:, 1], [1, 4])):  # fmt: skip
        X = np.column_stack(cols)
        prior = np.diag(1 / sd0[idx] ** 2) * 0.3**2  # residual sd 0.3 against the priors' sd
        law[idx] = np.linalg.solve(X.T @ X + prior, X.T @ y + prior @ mu0[idx])
    start["z_law"] = law
    groups = np.unique(design.setting_levels, axis=0, return_inverse=True)[1].ravel()
    n_groups = int(groups.max()) + 1
    power = form == "chinchilla-power"
    names = ("star_L0", "star_slope_N", "star_slope_D", "star_c")[: 4 if power else 3]
    shares = ("star_floor",) if form == "product" else ("star_floor", "star_mix")
    pos0 = np.array([LOSS_PRIORS[n][1] for n in names])
    sh0 = np.array([LOSS_PRIORS[n][1] / (LOSS_PRIORS[n][1] + LOSS_PRIORS[n][2]) for n in shares])

    def law_of(p):
        pos, share = np.exp(p[: len(names)]), 1 / (1 + np.exp(-p[len(names) : len(names) + 2]))
        level, sn, sd = pos[:3]
        f = share[0]
        offsets = np.concatenate([p[len(names) + len(shares) :], [0.0]])[groups]
        if form == "product":
            star = {"E": f * level, "log_K": np.log((1 - f) * level), "a": sn / (1 - f),
                    "b": sd / (1 - f)}  # fmt: skip
        else:
            c, mix = (pos[3] if power else 1.0), share[1]
            log_sum = np.log((1 - f) * level) / c
            star = {"E": f * level, "log_A": log_sum + np.log(mix), "a": sn / ((1 - f) * c * mix),
                    "log_B": log_sum + np.log1p(-mix), "b": sd / ((1 - f) * c * (1 - mix)),
                    "c": c}  # fmt: skip
        star["E"] = star["E"] + offsets * level
        return np.log(best_loss(u, v, star))

    p0 = np.concatenate([pos0, np.log(sh0 / (1 - sh0)), np.zeros(n_groups - 1)])
    prior_sd = np.concatenate([[LOSS_PRIORS[n][2] for n in names], np.ones(len(shares)),
                               np.full(n_groups - 1, 0.1)])  # fmt: skip

    def residuals(p):
        out = np.concatenate([(law_of(p) - origin[:, 2]) / 0.002, (p - p0) / prior_sd])
        return np.where(np.isfinite(out), out, 1e6)

    # the law's least squares has local minima (a floor near 0 with a small power, ...): take
    # the best of a few starts spread over the floor's share and the power
    rng = np.random.default_rng(0)
    starts = [p0] + [p0 + rng.normal(0.0, 0.5, p0.shape) * (prior_sd > 0.2) for _ in range(7)]
    fit = None
    with np.errstate(all="ignore"):
        for x0 in starts:
            found = least_squares(residuals, x0, method="trf", max_nfev=2000)
            if fit is None or found.cost < fit.cost:
                fit = found
    if np.isfinite(fit.x).all() and fit.cost < 1e6:
        start["z_star_positive"] = np.exp(fit.x[: len(names)])
        start["z_star_share"] = 1 / (1 + np.exp(-fit.x[len(names) : len(names) + len(shares)]))
    return start


def _box(design: Design) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per setting and axis (ln lr, ln B): the lowest and highest value of its runs, and
    whether the sweep brackets its optimum there (at least three distinct values)."""
    frame = pd.DataFrame(
        {"s": design.run_setting, "lr": design.log_lr, "bs": design.log_bs}
    ).groupby("s")
    lo = frame[["lr", "bs"]].min().to_numpy()
    hi = frame[["lr", "bs"]].max().to_numpy()
    brackets = frame[["lr", "bs"]].nunique().to_numpy() >= 3
    return lo, hi, brackets


_LAW = ("c", "d", "alpha", "beta", "gamma")
_DIV = ("div_tau0", "div_tau0_slopes", "div_tau0_slopes", "div_tau1", "div_tau2")


class LossModel(Model):
    """The loss model of the hierarchical Step Law (module docstring).

    Parameters
    ----------
    groups : sequence of str
        Group columns of the offsets, outermost first.
    batch_depends_on_N : bool
        Add δ·(ln N − ln N0) to the batch law.
    surface : {"bowl", "skew", "full", "asym"}
        Shape parameters the surface estimates (:data:`~bayes_steplaw.bayes.surface.SURFACES`):
        ``"bowl"`` a tilted quadratic, ``"skew"`` exponential walls on one side of each axis,
        ``"full"`` also a bending valley and an lr curvature that changes with the batch,
        ``"asym"`` (the default) also an lr curvature of its own on each side of the optimum
        (a fit of two or more labs keeps one curvature for both sides: ``"full"``).
    best_law : {"chinchilla", "chinchilla-power"}
        The law of the best loss (exponent ``c`` fixed at 1, or estimated).
    diverged : float
        A run diverged when its loss exceeds this multiple of its setting's lowest loss.
    noise : {"spikes", "hetero-tails"}
        Run noise of scale ``L*·(σ0 + σ1·q)``: a Student-t with upward spikes away from the
        optimum, or a Student-t whose tails go from ν at the optimum to ν_far away from it
        (:func:`.surface.run_logpdf`).
    shape_terms : {"linear", "quadratic"}
        Each shape parameter linear in centred ln N and ln D, or with ``(ln D)²`` and
        ``ln N·ln D`` terms too.
    exponents_vary_by : {"lab", None}
        With runs of two or more labs (a ``lab`` column: the released sweeps are the
        ``step-law`` lab, a pooled user's the ``user`` lab, :func:`setting_labs`), each other
        lab's exponents α, β, γ and best-loss slopes deviate from the reference lab's
        (:data:`LAB_EXPONENTS`, spreads :data:`LAB_PRIORS`); None: shared.
    """

    kind = "loss"
    posterior_class = LossPosterior
    # on the released data, with the lopsided surface (asym_lr; the curvature's kink at the
    # optimum wants small steps), 4 chains after 500 tuning steps: at target acceptance 0.98,
    # 800 draws left 1 divergence and a tail ESS of 386 (star_log_A), 1,000 draws 1
    # divergence, 1,000 after 800 tuning steps a tail ESS of 396; at 0.99, 700 draws pass the
    # gate (bulk / tail ESS 794 / 649, no divergence, 115 s on two cores; 400 tuning steps
    # did not: R-hat 1.016). Trees of depth <= 6 (64 steps) are what the adapted sampler needs
    # (mean depth 4), and the cap halves the cost of the first tuning windows
    sampler_defaults: ClassVar[dict] = {"draws": 700, "tune": 500, "target_accept": 0.99,
                                        "max_depth": 6}  # fmt: skip
    # with another lab's deviations the posterior is slower to explore: a pooled 4-setting
    # sweep (spreads held fixed) reached R-hat 1.008-1.010 and a tail ESS of 400-500 at
    # 4 x 700 draws after 300 tuning steps; with learned spreads 1-2 divergences in 4,000 draws
    # at target acceptance 0.95 (none at 0.98), and a tail ESS of 400-683 at 4 x 1,000 draws.
    # With the spreads parameter-expanded, the README's pooled sweep at 4 x 800 draws: R-hat
    # 1.006, bulk ESS 586, tail ESS 689, no divergence, 131 s (1,300 draws: 1.004 / 1,003 /
    # 884, 176 s; 700: 1.006 / 503 / 569). The same fit on another machine (AMD EPYC, where
    # the chains take other paths): at 800 draws bulk / tail ESS 396 / 384, below the gate;
    # at 1,000 476 / 470; at 1,200 596 / 648 (R-hat 1.006). Its fit times varied more between
    # runs than with the draws (230 s at 800, 226 s at 1,000, 320 s at 1,200). Pooled, the
    # adapted trees are 63 steps (mean depth 6.0, ended by U-turns: 3 of 4,800 hit the cap;
    # step 0.08). At 0.95 they are 31 steps (160 s), but seeds 1 and 2 missed the gate (R-hat
    # 1.010-1.011, 1 divergence); at 0.98, seeds 0 / 1 / 2 reached R-hat 1.006 / 1.004 / 1.012
    # (m_lr), and 1,000 tuning steps did not help seed 2 (tail ESS 252). Two
    # reparametrisations of the user lab's optima, tried on seeds 0 / 1 / 2 and not kept, as
    # neither passed the gate more often: non-centred about the lab's laws, R-hat 1.014 (m_lr,
    # 1 divergence) / 1.005 / 1.012 (star_E); the lr coordinate where the valley lies at the
    # batch of a sweep's lr runs (the optimum's lr less the valley's turn; Jacobian 1),
    # 1.005 / 1.011 (m_lr) / 1.007 with tail ESS 1,272 / 1,281 / 871 against 648 / 920 / 704.
    # Those misses are what the gate's R-hat does at that depth whatever the sampler: chains
    # that mix as they should (AR(1), 4 x 1,200 draws, bulk ESS 695) put a quantity above 1.01
    # 8% of the time, six fits in ten for ten such quantities; at 4 x 1,800 (ESS 1,036), 0.7%
    # (benchmarks/bench_rhat_gate.py). The user lab's optima have bulk ESS 540-900 at 1,200
    # draws, so 1,800 (ESS x1.5):
    # seeds 0 / 1 / 2 R-hat 1.004 / 1.004 / 1.005, bulk ESS 955 / 1,309 / 852, tail ESS
    # 1,013 / 1,465 / 1,105, sampling 324 / 327 / 317 s (at 1,200: 225-275 s)
    pooled_sampler_defaults: ClassVar[dict] = {"tune": 500, "draws": 1800, "target_accept": 0.98}

    def __init__(
        self,
        groups: tuple[str, ...] | list[str] = DEFAULT_GROUPS,
        *,
        batch_depends_on_N: bool = False,
        surface: str = DEFAULT_SURFACE,
        best_law: str = DEFAULT_BEST_LAW,
        diverged: float = DIVERGED_RATIO,
        noise: str = DEFAULT_NOISE,
        shape_terms: str = DEFAULT_SHAPE_TERMS,
        exponents_vary_by: str | None = "lab",
    ):
        super().__init__(groups, batch_depends_on_N=batch_depends_on_N)
        self.exponents_vary_by = check_choice(
            exponents_vary_by, "exponents_vary_by", EXPONENTS_VARY_BY
        )
        self.shape_terms = check_choice(shape_terms, "shape_terms", ("linear", "quadratic"))
        self.surface = check_choice(surface, "surface", tuple(SURFACES))
        self.best_law = check_choice(best_law, "best_law", BEST_LAWS)
        self.diverged = check_ratio(diverged)
        self.noise = check_choice(noise, "noise", NOISES)

    def get_config(self) -> dict:
        """JSON-ready arguments of this model."""
        return {
            **super().get_config(),
            "surface": self.surface,
            "best_law": self.best_law,
            "diverged": self.diverged,
            "noise": self.noise,
            "shape_terms": self.shape_terms,
            "exponents_vary_by": self.exponents_vary_by,
        }

    def build(self, sweeps: pd.DataFrame, *, weighted: bool = False) -> Built:
        """The PyMC loss model of every run of ``sweeps``.

        Every run's log-likelihood is multiplied by its weight (``run_weight``, a data
        vector of ones unless a held-out fold sets some to 0), so one graph serves the fit and
        every held-out refit; ``weighted`` is accepted for the :class:`Model` interface.
        """
        import pymc as pm
        import pytensor.tensor as pt

        runs = mark_diverged(sweeps, self.diverged)
        design = build_design(runs, self.groups)
        n_set = len(design.settings)
        column = shape_column(design)
        div = runs["diverged"].to_numpy(bool)
        loss = runs["loss"].to_numpy(float)
        rs = design.run_setting
        u, v = design.log_n, design.log_d
        best = runs.loc[runs.groupby("setting")["loss"].idxmin()].set_index("setting")
        best = best.reindex(design.settings)
        origin = np.column_stack(
            [np.log(best[c].to_numpy(float)) for c in ("lr", "batch_tokens", "loss")]
        )
        lo, hi, brackets = _box(design)
        terms = TERMS[self.shape_terms]
        basis = np.column_stack([np.ones(n_set), u, v, v * v, u * v][: len(terms)])
        labs, lab_index = setting_labs(runs, design)
        by_lab = len(labs) >= 2 and self.exponents_vary_by is not None
        names = SURFACES[self.surface]
        if by_lab:
            # runs of two or more labs keep one lr curvature for both sides: with the lopsided
            # one (asym_lr) the README's pooled 4-setting sweep did not converge (spreads
            # parameter-expanded: R-hat 1.035 on the user family's tilt and bend offsets, which
            # one-at-a-time sweeps leave to the prior, 5 divergences, every tree at the depth
            # limit; R-hat 1.014-1.028 at target acceptance 0.99 before); without it, 1.004
            names = tuple(name for name in names if name != "asym_lr")
        surface = next(k for k, v in SURFACES.items() if tuple(v) == tuple(names))
        coords = {"setting": design.settings, "run": np.arange(len(runs)), "shape": list(names),
                  "term": list(terms), "div_term": ["1", "u", "v"]}  # fmt: skip
        coords.update(level_dims(design.hierarchy))
        coords["lab"] = labs
        lab_of = lab_of_family(runs) if by_lab else None
        with pm.Model(coords=coords) as model:
            w = pm.Data("run_weight", np.ones(len(runs)), dims="run", shape=(len(runs),))
            # the settings whose runs all weigh 0 are held out: no grid box for them
            setting_w = pt.inc_subtensor(pt.zeros(n_set)[rs], w) > 0
            # ---- the Step Law of the optima and the law of the best loss, with group offsets
            law = _vector("z_law", pm.Normal, PRIORS, _LAW)
            for i, name in enumerate(_LAW):
                pm.Deterministic(name, law[i])
            c, d, alpha, beta, gamma = (law[i] for i in range(5))
            star = star_law(self.best_law)
            offsets = _group_offsets(design, lab_of)
            if by_lab:
                lab = lab_terms(u, v, labs, lab_index)
                lab_lr, lab_bs, tilt = lab["lr"], lab["bs"], lab["tilt"]
                # its levels add to the families' offsets (which sum to zero within the lab)
                offsets = offsets + lab["level"][:, :3]
                div_lab = lab["level"][:, 3]
            else:
                lab_lr = lab_bs = 0.0
                div_lab = None
                tilt = {}
            mu_lr = c + alpha * u + beta * v + offsets[:, 0] + lab_lr
            mu_bs = d + gamma * v + offsets[:, 1] + lab_bs
            if self.batch_depends_on_N:
                mu_bs = mu_bs + pm.Normal("delta", *PRIORS["delta"][1:]) * u
            # a group's floor is E + r_g·L0: r_g is, to first order, the group's offset of
            # ln L* at the data's centre (what its runs pin down), and it stays an offset of the
            # floor as the reducible part vanishes (MoE extrapolates in D with it; an offset
            # of ln L* itself shrinks too slowly). Written additively, not as E·exp(r_g / f):
            # the division ties each offset to the floor's share and slows the sampler
            law_star = {**star, "E": star["E"] + offsets[:, 2] * star["L0"], **tilt}
            mu_star = pt.log(best_loss(u, v, law_star, xp=pt))
            # ---- each setting's optimum and best loss: a flat coordinate around its best run,
            # the laws as a potential (a held-out setting follows the laws alone)
            sigma_setting = pm.HalfNormal(
                "z_sigma_setting",
                sigma=np.array([PRIORS["sigma_setting"][1]] * 2
                               + [LOSS_PRIORS["sigma_setting_star"][1]]),
                shape=3,
            )  # fmt: skip
            for i, law_name in enumerate(LAWS):
                pm.Deterministic(f"sigma_setting_{law_name}", sigma_setting[i])
            z = pm.Flat("z_setting", shape=(n_set, 3))
            setting = origin + np.asarray(SETTING_SCALE) * z
            mu = pt.stack([mu_lr, mu_bs, mu_star], axis=1)
            pm.Potential("setting_laws", pm.logp(pm.Normal.dist(mu, sigma_setting), setting).sum())
            m_lr = pm.Deterministic("m_lr", setting[:, 0], dims="setting")
            m_bs = pm.Deterministic("m_bs", setting[:, 1], dims="setting")
            pm.Deterministic("loss_star", pt.exp(setting[:, 2]), dims="setting")
            pm.Deterministic("u", m_lr - mu_lr, dims="setting")
            pm.Deterministic("v", m_bs - mu_bs, dims="setting")
            # a sweep that brackets its optimum holds it: one more than e (2.7x) outside its
            # grid costs (excess / 0.25)²/2 (else a chain can wander off with a batch optimum
            # tens of times beyond the grid, where the walls explain the runs about as well)
            outside = pt.maximum(lo - BOX_MARGIN - setting[:, :2], 0.0)
            outside = outside + pt.maximum(setting[:, :2] - hi - BOX_MARGIN, 0.0)
            boxed = brackets * setting_w[:, None]
            pm.Potential("grid_box", -0.5 * (boxed * (outside / BOX_SD) ** 2).sum())
            # ---- the surface's shape: terms in (u, v) plus an offset per family
            shape_mu = np.zeros((len(names), len(terms)))
            shape_sd = np.full((len(names), len(terms)), LOSS_PRIORS["shape_slopes"][2])
            shape_sd[:, 3:] /= 2
            for i, name in enumerate(names):
                shape_mu[i, 0], shape_sd[i, 0] = LOSS_PRIORS[f"shape_{name}"][1:]
            coef = pm.Normal("shape_coef", mu=shape_mu, sigma=shape_sd, dims=("shape", "term"))
            # per run: its setting's terms are constants, so the shapes are one small product
            shapes = pt.dot(basis[rs], coef.T)  # (runs, shapes)
            if column is not None:
                family = _shape_offsets(design, runs, names, column, bool(tilt))
                padded = pt.concatenate([family.T, pt.zeros((1, len(names)))], axis=0)
                shapes = shapes + padded[design.setting_levels[rs, 0]]
            # ---- the divergence threshold's level, linear in (u, v)
            dv = _vector("z_div", pm.Normal, LOSS_PRIORS, _DIV)
            width = pm.HalfNormal("div_width", LOSS_PRIORS["div_width"][1])
            pm.Deterministic("div_tau0", dv[:3], dims="div_term")
            pm.Deterministic("div_tau1", dv[3])
            pm.Deterministic("div_tau2", dv[4])
            tau0 = pt.dot(basis[rs, :3], dv[:3]) + (0.0 if div_lab is None else div_lab[rs])
            # ---- every run: its setting's optimum and best loss, one gather (an indexing,
            # whose gradient JAX sums by index: cheaper than a product with a one-hot matrix)
            at_run = setting[rs]
            x = design.log_lr - at_run[:, 0]
            y = design.log_bs - at_run[:, 1]
            q = excess(x, y, {name: shapes[:, i] for i, name in enumerate(names)}, xp=pt)
            scales = _vector("z_scale", pm.HalfNormal, LOSS_PRIORS, ("sigma_run", "sigma_run_q"))
            sigma0 = pm.Deterministic("sigma_run", scales[0])
            sigma1 = pm.Deterministic("sigma_run_q", scales[1])
            noise = {"nu": _vector("z_nu", pm.Gamma, LOSS_PRIORS, ("nu",))[0]}
            if self.noise == "hetero-tails":
                noise["nu_far"] = _vector("z_nu_far", pm.Gamma, LOSS_PRIORS, ("nu_far",))[0]
            else:
                noise["spike_w"] = _vector("z_spike_w", pm.Beta, LOSS_PRIORS, ("spike_w",))[0]
                spike = _vector("z_spike", pm.LogNormal, LOSS_PRIORS, ("spike_mean", "spike_sd"))
                noise["spike_mean"], noise["spike_sd"] = spike[0], spike[1]
            for name, value in noise.items():
                pm.Deterministic(name, value)
            loss_star_run = pt.exp(at_run[:, 2])
            mean, scale = mean_scale(q, loss_star_run, sigma0, sigma1)
            alive = run_logpdf(loss, mean, scale, q, noise, xp=pt)
            params = {"tau0": tau0, "tau1": dv[3], "tau2": dv[4], "width": width}
            logit = divergence_logit(x, y, params)
            # a diverged run: ln P(diverge); any other: ln P(not diverge) + its loss density
            ll = pt.switch(div, -pt.softplus(-logit), -pt.softplus(logit) + alive)
            pm.Potential("runs", (w * ll).sum())
        extra = {
            "surface": surface,
            "best_law": self.best_law,
            "diverged_ratio": self.diverged,
            "noise": self.noise,
            "shape_terms": self.shape_terms,
            "shape_column": column,
            **lab_metadata(u, v, labs, lab_index, lab_of_family(runs), LAB_LEVELS, by_lab),
            "exponents_vary_by": self.exponents_vary_by,
            "n_diverged": int(div.sum()),
            "priors": PRIORS,
            "loss_priors": LOSS_PRIORS,
        }
        # the best loss, the optima and the surface's shape move together (a deeper bowl and a
        # lower floor explain the same runs); a low-rank mass matrix follows such directions
        options = {"low_rank_modified_mass_matrix": True}
        # chains start at each setting's best run, jittered within about its posterior sd, and
        # the laws at their least-squares fits (_start); every other parameter at its prior's
        # centre, unjittered (a jitter of one unit there sends a
        # chain far off, to spend its tuning on the way back)
        start = _start(design, origin, self.best_law)
        # a group scale that no offset uses (a column with one level per parent) would start at
        # its prior's mean, where its gradient is exactly zero and nutpie's first mass matrix is
        # undefined: it starts at half of it
        for j, lev in enumerate(design.hierarchy.levels):
            parents = sibling_parents(lev, j, lab_of)
            if len(set(parents)) == len(parents):
                mean = np.array([PRIORS["sigma_group"][1] / PRIORS["sigma_group"][2]] * 2
                                + [LOSS_PRIORS["sigma_star_group"][1]
                                   / LOSS_PRIORS["sigma_star_group"][2]])  # fmt: skip
                start[f"z_sigma_{lev.column}"] = mean / 2
        # a lab's deviations start jittered too: at z = 0 the prior's gradient is 0, and so is
        # the runs' where the lab's settings share one N (a deviation of α moves nothing)
        jitter = ("z_setting", "z_lab") if "z_lab" in model.named_vars else ("z_setting",)
        if "tilt_lab" in model.named_vars:
            # the best-loss slopes' deviations (centred) start off 0 by a fifth of their prior
            # scale, not jittered (a unit jitter is 20 of its sd): at 0 their gradient is 0 where
            # the lab's settings share one (N, D), and nutpie refuses the start
            shape = model["tilt_lab"].type.shape
            start["tilt_lab"] = np.broadcast_to(LAB_SCALES[3:] / 5, shape).copy()
            # the spreads' expansions start at 1 (spread = the prior's scale), not at 0, where
            # every non-centred deviation s·a·z is 0 and the runs' gradient of z with it
            start["z_lab_spread"] = np.ones(3)
        more = self.pooled_sampler_defaults if tilt else {}
        return Built(model, design, extra | {"nutpie_kwargs": options}, options, jitter, start,
                     more)  # fmt: skip
