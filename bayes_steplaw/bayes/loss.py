"""The loss model: the final loss of a run before it is trained, over the whole (lr, batch) grid.

Every run of every setting enters, diverged ones too. A run *diverged* when its final loss
exceeds ``diverged`` (default 1.5) times its setting's lowest loss: on the released data every
other run lies within 1.21x of its setting's best and every diverged one above 1.72x (181 dense
runs, most between 6 and 7, all at lr >= 5.5e-3), so any ratio in between draws the same
line. Divergence is a Bernoulli outcome, the loss of a run that did not diverge a Student-t
around ``L*[s]·(1 + q)``, with the geometry of :mod:`bayes_steplaw.bayes.surface`. The runs'
offsets from their setting's optimum are measured from ``m_lr``, ``m_bs``, the setting optima
of the hierarchical Step Law (:func:`bayes_steplaw.bayes.law.law_means`, centred, as in the
landscape model), so the optimum model, the landscape and this one tell one story;
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

from .._format import format_param, markdown_table
from .._validate import DEFAULT_PROB, broadcast, check_choice, check_prob, positive_array, scalar
from .design import DEFAULT_GROUPS, Design, build_design, level_dims
from .law import PRIORS, StepLawPosterior, _decades_outside, group_offsets
from .model import Built, Model
from .surface import (
    BEST_LAWS,
    DIVERGED_RATIO,
    KINDS,
    LOSS_PRIORS,
    SURFACES,
    BestLoss,
    LossPrediction,
    batch_cost_table,
    best_loss,
    check_ratio,
    divergence_logit,
    evaluate,
    excess,
    mark_diverged,
    mean_scale,
    run_log_likelihood,
    run_nu,
    shape_column,
    sigmoid,
)

DEFAULT_SURFACE = "full"
DEFAULT_BEST_LAW = "chinchilla-power"
DEFAULT_SHAPE_TERMS = "quadratic"
NOISES = ("hetero", "hetero-tails", "constant")
DEFAULT_NOISE = "hetero-tails"
STAR_ORIGIN_SD = 0.02  # ln L*[s] = ln(min loss[s]) + 0.02·z, z flat: a scale for the sampler only
OPTIMUM_ORIGIN_SD = 0.5  # m[s] = ln(best run's lr or batch) + 0.5·z, z flat: likewise
BOX_MARGIN, BOX_SD = 1.0, 0.25  # an optimum beyond e x its grid's ends costs (excess / 0.25)²/2


# --------------------------------------------------------------------------- PyMC pieces


def _prior(name: str, dims=None):
    import pymc as pm

    kind, *args = LOSS_PRIORS[name]
    dist = getattr(pm, kind)
    if kind == "LogNormal":
        return dist(name, mu=args[0], sigma=args[1], dims=dims)
    if kind == "Beta":
        return dist(name, alpha=args[0], beta=args[1], dims=dims)
    return dist(name, *args, dims=dims)


def star_law(power: bool) -> dict:
    """The best-loss law's parameters (:func:`.surface.best_loss`) from a sampler-friendly set.

    The runs pin down the law's value at the data's centre, ``L0 = E + (A + B)^c``, and the
    log-slopes of L* there, ``γ_N = (1 − f)·c·a·π`` and ``γ_D = (1 − f)·c·b·(1 − π)`` (the
    floor's share ``f = E / L0``, the mix ``π = A / (A + B)``); what is left, f, π and c, only
    bends the law away from the centre. Sampling (L0, γ_N, γ_D, f, π, c) instead of
    (E, A, a, B, b, c) takes the sampler off the ridges between E, c and the coefficients.
    ``E``, ``log_A``, ``a``, ``log_B``, ``b`` (and ``c``) are recorded too.
    """
    import pymc as pm
    import pytensor.tensor as pt

    level = _prior("star_L0")
    floor, mix = _prior("star_floor"), _prior("star_mix")
    slope_n, slope_d = _prior("star_slope_N"), _prior("star_slope_D")
    c = _prior("star_c") if power else pt.constant(1.0)
    log_sum = pt.log((1.0 - floor) * level) / c  # ln(A + B)
    spread = (1.0 - floor) * c
    return {
        "floor": floor,
        "E": pm.Deterministic("star_E", floor * level),
        "log_A": pm.Deterministic("star_log_A", log_sum + pt.log(mix)),
        "a": pm.Deterministic("star_a", slope_n / (spread * mix)),
        "log_B": pm.Deterministic("star_log_B", log_sum + pt.log1p(-mix)),
        "b": pm.Deterministic("star_b", slope_d / (spread * (1.0 - mix))),
        "c": c,
    }


def star_offsets(design: Design):
    """Per-setting sum of the group offsets ``r`` of the best loss (None when no group has a
    sibling): :func:`bayes_steplaw.bayes.law.group_offsets`, centred, with a population scale
    for losses (Gamma(2, 20)) instead of one for optima.

    A group has its own floor with the shared exponents, ``E_g = E·exp(r_g / f)`` (``f`` the
    floor's share of L* at the data's centre), which extrapolates the MoE variants' loss in D
    better (held-out MoE best-loss error 0.006 against 0.022 with offsets on ln L* and
    per-family centres of ln N). ``r_g`` is, to first order, the group's offset of ln L* at
    the centre: what the runs pin down. With the offset on ln E itself the sampler met a
    ridge (ln E offset x f constant; R-hat 1.05, bulk ESS 122 in 4 x 1000 draws)."""
    total = group_offsets("star", design, True, sigma_prior=LOSS_PRIORS["sigma_star_group"])
    free = any(
        np.unique(np.asarray(lev.parents), return_counts=True)[1].max() > 1
        for lev in design.hierarchy.levels
    )
    # None without a free offset: a constant 0 / f sends PyTensor's rewrites into minutes
    return total if free else None


def _linear(
    name: str, design: Design, slopes: str, column: str | None = None, quadratic: bool = False
):
    """Per-setting value of a parameter linear in centred ln N, ln D (+ ``v²`` and ``u·v``
    terms when ``quadratic``, + a family offset)."""
    import pymc as pm
    import pytensor.tensor as pt

    sd = LOSS_PRIORS[slopes][2]
    out = _prior(name) + pm.Normal(f"{name}_N", 0.0, sd) * design.log_n
    out = out + pm.Normal(f"{name}_D", 0.0, sd) * design.log_d
    if quadratic:
        out = out + pm.Normal(f"{name}_DD", 0.0, sd / 2) * design.log_d**2
        out = out + pm.Normal(f"{name}_ND", 0.0, sd / 2) * design.log_n * design.log_d
    if column is not None:
        off = pm.ZeroSumNormal(
            f"{name}_{column}", LOSS_PRIORS["shape_group"][1], dims=f"level_{column}"
        )
        out = out + pt.concatenate([off, pt.zeros(1)])[design.setting_levels[:, 0]]
    return out


def law_optima(design: Design, batch_depends_on_N: bool, origin: list, box: list, weight=1.0):
    """Setting optima (ln lr, ln batch tokens) of the hierarchical Step Law, centred.

    The law, its priors and its variable names are those of
    :func:`bayes_steplaw.bayes.law.law_means` with ``centered=True``; only the sampler's
    coordinate differs: ``m[s] = origin[s] + 0.5·z[s]`` with ``z`` flat and the law's
    ``Normal(mu[s], σ_setting)`` as a potential, ``origin`` the setting's best run. The
    posterior is the same (a flat coordinate and a shift carry no information; a held-out
    setting's optimum follows the law alone), but each chain starts where the runs are: over
    the whole grid the exponential walls make far starting points multimodal.

    ``box`` holds, per law, the (lowest, highest) ln lr and ln batch of each setting's runs: a
    sweep brackets its optimum, so an optimum more than e (2.7x) outside its grid costs a
    half-normal penalty of scale 0.25 (``weight``: 0 for a held-out setting). Without it a
    chain can wander off with one setting's batch optimum tens of times beyond its grid,
    where the walls explain the runs about as well and the setting scale inflates to follow.
    """
    import pymc as pm
    import pytensor.tensor as pt

    c = pm.Normal("c", *PRIORS["c"][1:])
    d = pm.Normal("d", *PRIORS["d"][1:])
    alpha = pm.Normal("alpha", *PRIORS["alpha"][1:])
    beta = pm.Normal("beta", *PRIORS["beta"][1:])
    gamma = pm.Normal("gamma", *PRIORS["gamma"][1:])
    mu_lr = c + alpha * design.log_n + beta * design.log_d + group_offsets("lr", design, True)
    mu_bs = d + gamma * design.log_d + group_offsets("bs", design, True)
    if batch_depends_on_N:
        mu_bs = mu_bs + pm.Normal("delta", *PRIORS["delta"][1:]) * design.log_n
    out = []
    for law, mu, start, (lo, hi) in zip(("lr", "bs"), (mu_lr, mu_bs), origin, box):
        sigma = pm.HalfNormal(f"sigma_setting_{law}", PRIORS["sigma_setting"][1])
        z = pm.Flat(f"z_m_{law}", dims="setting")
        m = pm.Deterministic(f"m_{law}", start + OPTIMUM_ORIGIN_SD * z, dims="setting")
        pm.Potential(f"setting_{law}", pm.logp(pm.Normal.dist(mu, sigma), m))
        outside = pt.maximum(lo - BOX_MARGIN - m, 0.0) + pt.maximum(m - hi - BOX_MARGIN, 0.0)
        pm.Potential(f"grid_{law}", -0.5 * (weight * (outside / BOX_SD) ** 2).sum())
        pm.Deterministic("u" if law == "lr" else "v", m - mu, dims="setting")
        out.append(m)
    return tuple(out)


_CARD_PARAMETERS = ("star_E", "star_a", "star_b", "star_c", "sigma_setting_star", "sigma_run",
                    "sigma_run_q", "nu", "nu_far", "div_tau0", "div_width")  # fmt: skip


class LossPosterior(StepLawPosterior):
    """Posterior of the loss model: the loss a run will report, its best loss, divergence.

    Predictive methods (numpy only): :meth:`predict_loss`, :meth:`best_loss`,
    :meth:`sweep_best`; checks: :meth:`log_likelihood`, :meth:`loo`. It is a Step-Law
    posterior too (``predict`` gives the optimum's location, from the same law).
    """

    kind = "loss"
    version = 1
    metadata_fields: ClassVar[dict] = {
        "surface": str,
        "best_law": str,
        "diverged_ratio": (int, float),
    }
    save_drop = ("u", "v")  # m_lr/m_bs minus the law: restated by variables the file keeps

    # ------------------------------------------------------------------ coefficients

    def _family_offset(self, name: str, group: str, rng: np.random.Generator) -> np.ndarray:
        """Draws of a shape parameter's offset for the group's family (new: from its prior)."""
        column = self.metadata.get("shape_column")
        if column is None:
            return np.zeros(self.n_samples)
        k = self.hierarchy.resolve(group)[0]
        if k >= 0:
            return self.flat(f"{name}_{column}")[:, k]
        if k == -2:
            return LOSS_PRIORS["shape_group"][1] * rng.standard_normal(self.n_samples)
        return np.zeros(self.n_samples)

    def _triple(self, name: str, offset=0.0) -> np.ndarray:
        """Coefficients of a parameter in (1, u, v[, v², u·v]), one column per draw."""
        terms = [self.flat(name) + offset, self.flat(f"{name}_N"), self.flat(f"{name}_D")]
        if f"{name}_DD" in self.posterior:
            terms += [self.flat(f"{name}_DD"), self.flat(f"{name}_ND")]
        return np.stack(terms)

    def _shared(self) -> dict:
        """Per-draw coefficients that do not depend on the group or the setting."""
        zero = np.zeros(self.n_samples)
        hetero = "sigma_run_q" in self.posterior
        far = {"nu_far": self.flat("nu_far")} if "nu_far" in self.posterior else {}
        return far | {
            "tau0": self._triple("div_tau0"),
            "tau1": self.flat("div_tau1"),
            "tau2": self.flat("div_tau2"),
            "width": self.flat("div_width"),
            "sigma0": self.flat("sigma_run"),
            "sigma1": self.flat("sigma_run_q") if hetero else zero,
            "nu": self.flat("nu"),
        }

    def _star_law(self, group: str, rng: np.random.Generator) -> dict:
        c = self.flat("star_c") if "star_c" in self.posterior else np.ones(self.n_samples)
        star = {k: self.flat(f"star_{k}") for k in ("log_A", "a", "log_B", "b")}
        # the offsets r are on L* at the centre; the floor takes r / f (see star_offsets)
        E = self.flat("star_E") * np.exp(self._offset("star", group, rng) / self.flat("star_floor"))
        return star | {"c": c, "E": E}

    def coefficients(self, group: str = "dense", seed: int = 0) -> dict:
        """Per-draw coefficients of a new setting of ``group`` (:func:`.surface.evaluate`):
        the law's optimum with a new setting's scatter, the group's best-loss law with a new
        setting's scatter of L*, the family's surface shape."""
        rng = np.random.default_rng([seed, 1])
        coef_lr, coef_bs = self.law_coefficients(group, "centre", seed)
        shapes = {
            f"shape_{name}": self._triple(
                f"shape_{name}", self._family_offset(f"shape_{name}", group, rng)
            )
            for name in SURFACES[self.metadata["surface"]]
        }
        scatter = self.flat("sigma_setting_star") * rng.standard_normal(self.n_samples)
        return {
            "m_lr": coef_lr,
            "m_bs": coef_bs,
            **shapes,
            "star": self._star_law(group, rng),
            "star_scale": np.exp(scatter),
            **self._shared(),
        }

    def _centred(self, N, D) -> tuple[np.ndarray, np.ndarray]:
        return np.log(N) - self.metadata["log_n0"], np.log(D) - self.metadata["log_d0"]

    # ------------------------------------------------------------------ the answers

    def predict_loss(
        self,
        N,
        D,
        lr,
        batch_tokens,
        *,
        group: str = "dense",
        kind: str = "run",
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> LossPrediction:
        """Posterior-predictive final loss of a run at (lr, batch) of a new setting (N, D).

        Parameters
        ----------
        N, D, lr, batch_tokens : float or array-like
            Non-embedding parameters, training tokens, peak learning rate and batch size in
            tokens; all four broadcast together.
        group : str
            ``"dense"``, ``"moe/1in8"``, ... (:attr:`groups_seen`) or ``"new"``.
        kind : {"run", "mean"}
            ``"run"``: the smoothed final loss the run will report, run noise included, given
            that it does not diverge; ``"mean"``: its expected value.
        seed : int
            Seed of the new setting's scatter and of the run-noise draws.
        allow_unconverged : bool
            Predict from a posterior that failed its convergence gate.

        Returns
        -------
        LossPrediction
            ``median()``, ``interval(prob)``, ``p_diverge()``, ``to_dataframe(prob)``; draws
            are made lazily, block by block, so the call itself costs O(points + samples).
        """
        kind = check_choice(kind, "kind", KINDS)
        self.gate(allow_unconverged)
        arrays, shape = broadcast({"N": N, "D": D, "lr": lr, "batch_tokens": batch_tokens})
        n, d, lr_, bs = (a.ravel() for a in arrays)
        u, v = self._centred(n, d)
        meta = self.metadata
        return LossPrediction(
            N=n, D=d, lr=lr_, batch_tokens=bs, shape=shape, group=group, kind=kind, seed=seed,
            coef=self.coefficients(group, seed), u=u, v=v,
            N_decades_outside=_decades_outside(n, *meta["N_range"]),
            D_decades_outside=_decades_outside(d, *meta["D_range"]),
        )  # fmt: skip

    def best_loss(
        self,
        N,
        D,
        *,
        group: str = "dense",
        kind: str = "best",
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> BestLoss:
        """Draws of the best loss L*(N, D): the bottom of a setting's loss surface.

        ``kind="best"`` (default): of a new setting (its scatter around the law included);
        ``kind="law"``: of the law itself. ``N`` and ``D`` broadcast together.
        """
        kind = check_choice(kind, "kind", ("best", "law"))
        self.gate(allow_unconverged)
        (n, d), shape = broadcast({"N": N, "D": D})
        u, v = self._centred(n.ravel()[:, None], d.ravel()[:, None])
        rng = np.random.default_rng([seed, 1])
        draws = best_loss(u, v, self._star_law(group, rng))
        if kind == "best":
            draws = draws * np.exp(
                self.flat("sigma_setting_star") * rng.standard_normal(draws.shape[1])
            )
        return BestLoss(n[()], d[()], group, kind, draws.reshape(*shape, -1))

    def sweep_best(
        self, N, D, lr, batch_tokens, *, group: str = "dense", seed: int = 0
    ) -> np.ndarray:
        """Draws of the lowest loss a sweep of one setting reports over the runs (lr, batch).

        Each draw is one new setting and one noisy outcome of every run; a run diverges with
        its probability and then does not count. NaN where every run diverged.
        """
        N, D = scalar(N, "N"), scalar(D, "D")
        pred = self.predict_loss(N, D, lr, batch_tokens, group=group, seed=seed,
                                 allow_unconverged=True)  # fmt: skip
        sl = slice(0, len(pred.u))
        out = pred._block(sl)
        loss = pred._draws(sl, out)
        rng = np.random.default_rng([seed, 11])
        diverged = rng.random(loss.shape) < sigmoid(out["logit"])
        loss = np.where(diverged, np.inf, loss).min(axis=0)
        return np.where(np.isfinite(loss), loss, np.nan)

    def batch_cost(
        self, N, D, batch_tokens, *, group: str = "dense", prob: float = DEFAULT_PROB, seed: int = 0
    ) -> pd.DataFrame:
        """What a fixed batch costs in loss at one setting, against the best (lr, batch).

        For each batch: the lr of least expected loss at that batch (on a grid of 1/8-octave
        steps), the expected loss there, and the excess over the least expected loss of any
        (lr, batch) on the grid, with its ``prob`` interval (per posterior draw, both at the
        chosen points). Columns ``batch_tokens, lr, loss_mean, best_lr, best_batch_tokens,
        best_loss_mean, cost_mean, cost_lower, cost_upper, p_diverge``.
        """
        N, D = scalar(N, "N"), scalar(D, "D")
        fixed = np.atleast_1d(positive_array(batch_tokens, "batch_tokens")).ravel()
        u, v = self._centred(N, D)
        return batch_cost_table(self.coefficients(group, seed), u, v, fixed, check_prob(prob))

    # ------------------------------------------------------------------ fit checks

    def run_design(self, sweeps: pd.DataFrame) -> Design:
        """The design of the runs this posterior was fitted on (same groups and centre)."""
        runs = mark_diverged(sweeps, self.metadata["diverged_ratio"])
        meta = self.metadata
        design = build_design(runs, meta["groups"], meta["log_n0"], meta["log_d0"])
        if design.settings != [str(s) for s in self.posterior["setting"].values]:
            raise ValueError(
                "the sweep table's settings are not those of the fit; pass the table the "
                "posterior was fitted on"
            )
        return design

    def run_predictions(self, sweeps: pd.DataFrame) -> dict:
        """Per-draw location, scale and divergence log-odds of every fitted run, from the
        fitted settings' own optima, L* and shape: arrays (samples, runs), and the design."""
        design = self.run_design(sweeps)
        rs = design.run_setting
        column = self.metadata.get("shape_column")
        coef = {
            "m_lr": (self.flat("m_lr")[:, rs], 0.0, 0.0),
            "m_bs": (self.flat("m_bs")[:, rs], 0.0, 0.0),
            "star": None,
            "star_scale": self.flat("loss_star")[:, rs],
            **{k: (v[:, None] if v.ndim == 1 else v) for k, v in self._shared().items()},
        }
        coef["tau0"] = tuple(c[:, None] for c in self._triple("div_tau0"))
        for name in SURFACES[self.metadata["surface"]]:
            base = f"shape_{name}"
            off = np.zeros((self.n_samples, len(rs)))
            if column is not None:
                pad = np.concatenate([self.flat(f"{base}_{column}"), off[:, :1]], axis=1)
                off = pad[:, design.setting_levels[rs, 0]]
            terms = [c[:, None] for c in self._triple(base)]
            coef[base] = (terms[0] + off, *terms[1:])
        out = evaluate(coef, design.log_n[rs], design.log_d[rs], design.log_lr, design.log_bs)
        return out | {"design": design}

    def log_likelihood(self, sweeps: pd.DataFrame) -> np.ndarray:
        """Pointwise log-likelihood of every fitted run (its divergence and, if it did not
        diverge, its loss), shape (chain, draw, run), for PSIS-LOO."""
        pred = self.run_predictions(sweeps)
        runs = pred["design"].runs
        div = runs["diverged"].to_numpy(bool)
        loss = runs["loss"].to_numpy(float)
        far = self.flat("nu_far")[:, None] if "nu_far" in self.posterior else None
        nu = run_nu(pred["q"], self.flat("nu")[:, None], far)
        ll = run_log_likelihood(div, loss, pred, nu)
        sizes = self.posterior.sizes
        return ll.reshape(sizes["chain"], sizes["draw"], -1)

    def loo(self, sweeps: pd.DataFrame):
        """PSIS-LOO (ArviZ ``ELPDData``) of the fit on its own sweep table."""
        from .sampling import psis_loo

        return psis_loo(self.posterior, self.log_likelihood(sweeps))

    def card_sections(self) -> list[str]:
        """Model-card sections: equations, priors, the candidate table (``metadata
        ["candidates"]``, from ``bayes-steplaw card loss --candidates FILE``) when there is
        one."""
        m = self.metadata
        priors = "\n".join(
            f"- `{k}` ~ {spec[0]}({', '.join(map(format_param, spec[1:]))})"
            for k, spec in LOSS_PRIORS.items()
        )
        sections = [
            "## Loss model",
            "",
            f"All {m['n_runs']} runs ({m.get('n_diverged', '?')} diverged: loss above "
            f"{m['diverged_ratio']:g}x their setting's lowest). Surface **{m['surface']}**, "
            f"best-loss law **{m['best_law']}** (see `bayes_steplaw.bayes.surface`)."
            + (
                f" Thinned by {m['thinned']} for size (the diagnostics are those of the full "
                "chains)."
                if m.get("thinned", 1) > 1
                else ""
            ),
            "",
            "Priors:",
            "",
            priors,
            "",
        ]
        names = [n for n in _CARD_PARAMETERS if n in self.posterior]
        if names:
            sections += ["Loss parameters (90% equal-tailed intervals):", "",
                         markdown_table(self.summary(0.9).loc[names]), ""]  # fmt: skip
        if m.get("candidates"):
            table = pd.DataFrame(m["candidates"]).set_index("candidate")
            sections += ["## Candidates tried", "", markdown_table(table), ""]
        return sections


class LossModel(Model):
    """The loss model of the hierarchical Step Law (module docstring).

    Parameters
    ----------
    groups : sequence of str
        Group columns of the offsets, outermost first.
    batch_depends_on_N : bool
        Add δ·(ln N − ln N0) to the batch law.
    surface : {"bowl", "skew", "full"}
        Shape parameters the surface estimates (:data:`~bayes_steplaw.bayes.surface.SURFACES`):
        ``"bowl"`` a tilted quadratic, ``"skew"`` exponential walls on one side of each axis,
        ``"full"`` also a bending valley and an lr curvature that changes with the batch.
    best_law : {"chinchilla", "chinchilla-power"}
        The law of the best loss (exponent ``c`` fixed at 1, or estimated).
    diverged : float
        A run diverged when its loss exceeds this multiple of its setting's lowest loss.
    noise : {"hetero", "hetero-tails", "constant"}
        Run noise ``L*·(σ0 + σ1·q)`` with one Student-t ν; the same with tails that go from ν
        at the optimum to ν_far away from it (:func:`.surface.run_nu`); or ``L*·σ0``.
    shape_terms : {"linear", "quadratic"}
        Each shape parameter linear in centred ln N and ln D, or with ``(ln D)²`` and
        ``ln N·ln D`` terms too.
    """

    kind = "loss"
    posterior_class = LossPosterior

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
    ):
        super().__init__(groups, batch_depends_on_N=batch_depends_on_N)
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
        }

    def build(self, sweeps: pd.DataFrame, *, weighted: bool = False) -> Built:
        """The PyMC loss model of every run of ``sweeps``."""
        import pymc as pm
        import pytensor.tensor as pt

        runs = mark_diverged(sweeps, self.diverged)
        design = build_design(runs, self.groups)
        column = shape_column(design)
        div = runs["diverged"].to_numpy(bool)
        ok = np.flatnonzero(~div)
        loss = runs["loss"].to_numpy(float)[ok]
        loss_min = runs.groupby("setting")["loss"].min().reindex(design.settings).to_numpy(float)
        rs = design.run_setting
        coords = {"setting": design.settings, "run": np.arange(len(runs))}
        coords.update(level_dims(design.hierarchy))
        best = runs.loc[runs.groupby("setting")["loss"].idxmin()].set_index("setting")
        best = best.reindex(design.settings)
        origin = [np.log(best[c].to_numpy(float)) for c in ("lr", "batch_tokens")]
        grid = runs.assign(log_lr=design.log_lr, log_bs=design.log_bs).groupby("setting")
        box = [
            (grid[c].min().reindex(design.settings).to_numpy(),
             grid[c].max().reindex(design.settings).to_numpy())
            for c in ("log_lr", "log_bs")
        ]  # fmt: skip
        first = np.array(
            [np.flatnonzero(design.run_setting == i)[0] for i in range(len(box[0][0]))]
        )
        with pm.Model(coords=coords) as model:
            w = pm.Data("run_weight", np.ones(len(runs)), dims="run") if weighted else None
            setting_weight = w[first] if weighted else 1.0
            m_lr, m_bs = law_optima(design, self.batch_depends_on_N, origin, box, setting_weight)
            # ---- the best loss: law, group offsets on E, setting scatter
            law = star_law(self.best_law == "chinchilla-power")
            offsets, floor = star_offsets(design), law.pop("floor")
            if offsets is not None:
                law["E"] = law["E"] * pt.exp(offsets / floor)
            log_law = pt.log(best_loss(design.log_n, design.log_d, law, xp=pt))
            sigma_star = _prior("sigma_setting_star")
            # the sampler's coordinate z is flat; the observed minimum only sets its origin and
            # scale (a held-out setting's z follows the hierarchical term alone)
            z_star = pm.Flat("z_star", dims="setting")
            log_star = np.log(loss_min) + STAR_ORIGIN_SD * z_star
            pm.Potential("star_scatter", pm.logp(pm.Normal.dist(log_law, sigma_star), log_star))
            loss_star = pm.Deterministic("loss_star", pt.exp(log_star), dims="setting")
            # ---- the surface
            quad = self.shape_terms == "quadratic"
            shapes = {
                name: _linear(f"shape_{name}", design, "shape_slopes", column, quad)
                for name in SURFACES[self.surface]
            }
            x = design.log_lr - m_lr[rs]
            y = design.log_bs - m_bs[rs]
            q = excess(x[ok], y[ok], {k: v[rs[ok]] for k, v in shapes.items()}, xp=pt)
            sigma0 = _prior("sigma_run")
            sigma1 = _prior("sigma_run_q") if self.noise != "constant" else 0.0
            nu_far = _prior("nu_far") if self.noise == "hetero-tails" else None
            nu = run_nu(q, _prior("nu"), nu_far, xp=pt)
            mu, sd = mean_scale(q, loss_star[rs[ok]], sigma0, sigma1)
            # ---- divergence
            tau0 = _linear("div_tau0", design, "div_tau0_slopes")
            params = {"tau0": tau0[rs], "tau1": _prior("div_tau1"), "tau2": _prior("div_tau2")}
            params["width"] = _prior("div_width")
            logit = divergence_logit(x, y, params)
            if weighted:
                logp = pm.logp(pm.StudentT.dist(nu=nu, mu=mu, sigma=sd), loss)
                pm.Potential("loss_weighted", (w[ok] * logp).sum())
                bern = pm.logp(pm.Bernoulli.dist(logit_p=logit), div.astype("int64"))
                pm.Potential("diverged_weighted", (w * bern).sum())
            else:
                pm.StudentT("loss", nu=nu, mu=mu, sigma=sd, observed=loss)
                pm.Bernoulli("diverged", logit_p=logit, observed=div.astype("int64"), dims="run")
        extra = {
            "surface": self.surface,
            "best_law": self.best_law,
            "diverged_ratio": self.diverged,
            "noise": self.noise,
            "shape_terms": self.shape_terms,
            "shape_column": column,
            "n_diverged": int(div.sum()),
            "priors": PRIORS,
            "loss_priors": LOSS_PRIORS,
        }
        # the best loss, the optima and the surface's shape move together (a deeper bowl and a
        # lower floor explain the same runs); a low-rank mass matrix follows such directions
        options = {"low_rank_modified_mass_matrix": True}
        return Built(model, design, extra | {"nutpie_kwargs": options}, options)
