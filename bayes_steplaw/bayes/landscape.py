"""The loss-landscape model: the bowl around each optimum, and the plateau it implies.

For every run within ``window`` relative loss of its setting's best (default 3%),

    loss ~ StudentT(ν, L*[s]·(1 + q(x, y)), L*[s]·(σ0 + σ1·q(x, y)))
    x = ln lr − m_lr[s],   y = ln B − m_bs[s]

with ``q`` the asymmetric quadratic bowl of :mod:`bayes_steplaw.bayes.bowl`, ``m_lr`` and
``m_bs`` the setting optima of the hierarchical Step Law (:mod:`bayes_steplaw.bayes.law`) and
``L*`` the setting's best (noise-free) loss. The noise scale grows with ``q`` because a
quadratic describes the bottom of a bowl better than its rim; the Student-t keeps an odd
diverged run from bending the bowl.

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

with the law's priors as in :mod:`bayes_steplaw.bayes.law`. :class:`LandscapePosterior` answers
questions about a new run from the draws with numpy alone; PyMC is imported only to build.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd

from .._format import format_param, markdown_table
from .._validate import (
    DEFAULT_PROB,
    DEFAULT_TOL,
    check_choice,
    check_prob,
    scalar,
)
from ..datasets.sweeps import relative_loss
from .answers import PlateauAnswers
from .bowl import (
    cross_term,
    log_likelihood,
    loss_mean_scale,
    plateau_half_widths,
    quadratic,
)
from .design import DEFAULT_GROUPS, Design, build_design, level_dims
from .law import PRIORS, StepLawPosterior, law_means
from .model import Built, Model

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


def landscape_runs(sweeps: pd.DataFrame, window: float = DEFAULT_WINDOW) -> pd.DataFrame:
    """Runs within ``window`` relative loss of their setting's best, with ``rel_loss``.

    Unlike the plateau filter (strict ``<``), the window is inclusive, so a window equal to a
    run's relative loss keeps it.
    """
    if not (isinstance(window, (int, float)) and math.isfinite(window) and window > 0):
        raise ValueError(f"window must be a positive relative loss (e.g. 0.03); got {window!r}")
    rel = relative_loss(sweeps)
    out = sweeps.assign(rel_loss=rel)
    return out[rel.to_numpy() <= window].reset_index(drop=True)


def _curvature_column(design: Design, curvature: str) -> str | None:
    """Group column whose levels get curvature offsets (the first one), or None."""
    if "group" not in curvature:
        return None
    levels = design.hierarchy.levels
    if not levels or len(levels[0].labels) < 2:
        raise ValueError(
            f"curvature={curvature!r} needs at least two levels of the first group column; "
            f"the data have {list(levels[0].labels) if levels else []}"
        )
    return levels[0].column


def _log_curvature(which: str, design: Design, curvature: str, column: str | None):
    """Per-setting ln curvature along ``which`` (``lr`` or ``bs``), in the PyMC model."""
    import pymc as pm
    import pytensor.tensor as pt

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


class LandscapePosterior(PlateauAnswers, StepLawPosterior):
    """Posterior of the loss-landscape model.

    Besides the Step-Law predictive (``predict``: the optimum's location), it answers where a
    new run lands on the bowl (:class:`~bayes_steplaw.bayes.answers.PlateauAnswers`:
    ``plateau_probability``, ``relative_loss``, ``plateau_region``, ``recommend``) from the
    per-draw geometry of :meth:`bowl`: the optimum's location includes the law's uncertainty
    and the scatter of optima between settings, the bowl's shape its posterior uncertainty.
    Pure numpy: nothing imports PyMC.
    """

    kind = "landscape"
    version = 1
    metadata_fields: ClassVar[dict] = {"window": (int, float), "curvature": str}
    save_drop = ("u", "v")  # m_lr/m_bs minus the law: restated by variables the file keeps

    # ------------------------------------------------------------------ per-draw geometry

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
            ``m_lr``, ``m_bs``: ln optimum (lr, batch tokens) of a new setting at (N, D),
            setting scatter included; ``a``, ``b``: curvature along ln lr and ln B (relative
            loss per squared ln unit); ``h``: cross term; ``k``: high-lr asymmetry;
            ``sigma0``, ``sigma1``, ``nu``: run noise ``(sigma0 + sigma1·q)·t_nu``.
        """
        N, D = scalar(N, "N"), scalar(D, "D")
        rng = np.random.default_rng(seed)
        coef_lr, coef_bs = self.law_coefficients(group, "centre", seed)
        x = math.log(N) - self.metadata["log_n0"]
        y = math.log(D) - self.metadata["log_d0"]
        a = np.exp(self._log_curvature("lr", x, y, group, rng))
        b = np.exp(self._log_curvature("bs", x, y, group, rng))
        k = self.flat("asymmetry")
        return {
            "m_lr": coef_lr[0] + coef_lr[1] * x + coef_lr[2] * y,
            "m_bs": coef_bs[0] + coef_bs[1] * x + coef_bs[2] * y,
            "a": a,
            "b": b,
            "h": cross_term(a, b, k, self.flat("rho")),
            "k": k,
            "sigma0": self.flat("sigma_loss"),
            "sigma1": self.flat("sigma_loss_q"),
            "nu": self.flat("nu"),
        }

    # ------------------------------------------------------------------ fit checks

    def run_design(self, sweeps: pd.DataFrame, window: float | None = None) -> Design:
        """The design of the runs this posterior was fitted on (same window, groups, centre);
        a wider ``window`` adds runs the fit did not see, on the same settings."""
        runs = landscape_runs(sweeps, window or self.metadata["window"])
        return build_design(
            runs, self.metadata["groups"], self.metadata["log_n0"], self.metadata["log_d0"]
        )

    def _setting_geometry(self, design: Design) -> dict[str, np.ndarray]:
        """Per-draw, per-setting optima and curvatures of the fitted settings."""
        settings = [str(s) for s in self.posterior["setting"].values]
        if design.settings != settings:
            raise ValueError(
                "the sweep table's settings are not those of the fit; pass the table the "
                "posterior was fitted on"
            )
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
        return {
            "m_lr": self.flat("m_lr"),
            "m_bs": self.flat("m_bs"),
            "a": curv["lr"],
            "b": curv["bs"],
        }

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
        q = quadratic(x, y, a, b, cross_term(a, b, k, self.flat("rho")[:, None]), k)
        star = self.flat("loss_star")[:, rs]
        s0, s1 = self.flat("sigma_loss")[:, None], self.flat("sigma_loss_q")[:, None]
        mu, scale = loss_mean_scale(q, star, s0, s1)
        return {"q": q, "mu": mu, "scale": scale, "loss_star": star, "design": design}

    def log_likelihood(self, sweeps: pd.DataFrame) -> np.ndarray:
        """Pointwise log-likelihood of the fitted runs, shape (chain, draw, run), for PSIS-LOO;
        ``sweeps`` must be the table the posterior was fitted on."""
        pred = self.run_predictions(sweeps)
        loss = pred["design"].runs["loss"].to_numpy(float)
        s0, s1 = self.flat("sigma_loss")[:, None], self.flat("sigma_loss_q")[:, None]
        ll = log_likelihood(loss, pred["q"], pred["loss_star"], s0, s1, self.flat("nu")[:, None])
        sizes = self.posterior.sizes
        return ll.reshape(sizes["chain"], sizes["draw"], -1)

    def loo(self, sweeps: pd.DataFrame):
        """PSIS-LOO (ArviZ ``ELPDData``) of the fit on its own sweep table."""
        from .sampling import psis_loo

        return psis_loo(self.posterior, self.log_likelihood(sweeps))

    # ------------------------------------------------------------------ summaries

    def curvature_summary(
        self, group: str = "dense", prob: float = DEFAULT_PROB, tol: float = DEFAULT_TOL
    ) -> pd.DataFrame:
        """Bowl shape at the data's centre (N0, D0) for a group, with the plateau widths.

        Rows: curvatures ``a`` (ln lr) and ``b`` (ln B), ``rho``, ``asymmetry``, and the
        plateau's half-widths at ``tol`` as factors on lr (below: e^sqrt(tol/a); above:
        e^sqrt(tol/(a·k))) and on batch (e^sqrt(tol/b)) at the other coordinate's optimum.
        """
        prob = check_prob(prob)
        g = self.bowl(math.exp(self.metadata["log_n0"]), math.exp(self.metadata["log_d0"]), group)
        rows = {
            "a (ln lr curvature)": g["a"],
            "b (ln batch curvature)": g["b"],
            "rho (cross correlation)": self.flat("rho"),
            "asymmetry k (high-lr / low-lr)": g["k"],
            **{name: f(tol) for name, f in plateau_half_widths(g, tol).items()},
        }
        q = [(1 - prob) / 2, 0.5, (1 + prob) / 2]
        out = pd.DataFrame(
            {name: np.quantile(v, q) for name, v in rows.items()},
            index=["lower", "median", "upper"],
        ).T
        out.index.name = f"{group} at N0, D0"
        return out

    def card_sections(self) -> list[str]:
        """Model-card sections: landscape priors, curvature summary, the candidate table.

        The comparison of candidates is read from ``metadata["loo"]`` (written by
        ``bayes-steplaw card landscape``); a posterior without it gets no such section.
        """
        m = self.metadata
        priors = "\n".join(
            f"- `{k}` ~ {spec[0]}({', '.join(map(format_param, spec[1:]))})"
            for k, spec in LANDSCAPE_PRIORS.items()
        )
        groups = [g for g in self.groups_seen if "/" not in g]
        if "group" not in m["curvature"]:
            groups = groups[:1]  # the bowl is the same for every group
        curv = []
        for g in groups:
            if len(groups) > 1:
                curv += [f"### {g}", ""]
            curv += [markdown_table(self.curvature_summary(g)), ""]
        if "ND" in m["curvature"]:
            slopes = self.summary().loc[[f"curv_{w}_{v}" for w in ("lr", "bs") for v in "ND"]]
            corners = []
            for n_, d_ in ((2e8, 4e9), (1e9, 1e11), (7e9, 1.4e12)):
                g = self.bowl(n_, d_, groups[0])
                widths = {name: float(np.median(f(DEFAULT_TOL))) for name, f in
                          plateau_half_widths(g, DEFAULT_TOL, short=True).items()}  # fmt: skip
                corners.append(
                    {"N": f"{n_:.3g}", "D": f"{d_:.3g}", "a": float(np.median(g["a"])),
                     "b": float(np.median(g["b"])), **widths}
                )  # fmt: skip
            curv += [
                "Curvature slopes: d ln a / d ln N, d ln a / d ln D (lr) and the same for b "
                "(batch); negative means a flatter bowl, a wider plateau, at larger scale.",
                "",
                markdown_table(slopes[["mean", "sd", "lower", "upper", "r_hat", "ess_bulk"]]),
                "",
                f"Plateau half-widths at tol {DEFAULT_TOL:.2%} (posterior medians; the last row "
                "extrapolates):",
                "",
                markdown_table(pd.DataFrame(corners).set_index("N")),
                "",
            ]
        sections = [
            "## Landscape model",
            "",
            f"Runs within {m['window']:.1%} of their setting's minimum loss "
            f"({m['n_runs']} runs); loss ~ StudentT(ν, L*(1+q), L*(σ0+σ1·q)) with q the "
            f"asymmetric quadratic bowl in (ln lr, ln B) around the setting optimum of the "
            f"hierarchical law (see `bayes_steplaw.bayes.landscape`). Curvature variant: "
            f"**{m['curvature']}**.",
            "",
            "Landscape priors (curvatures in relative loss per squared natural-log unit):",
            "",
            priors,
            "",
            "## Curvature (posterior median and 90% interval at N0, D0)",
            "",
            *curv,
        ]
        if "loo" in m:
            loo = pd.DataFrame(m["loo"]).set_index("curvature")
            sections += [
                "## PSIS-LOO comparison of curvature variants",
                "",
                markdown_table(loo),
                "",
                "elpd_loo: expected log predictive density of the runs (higher is better); "
                "elpd_diff/dse: difference from the best and its standard error; p_loo: "
                "effective parameters; pareto_k_high: runs with Pareto k > 0.7; converged: "
                "whether that variant's fit passed the gate (an unconverged variant's elpd is "
                "indicative).",
            ]
        return sections


class LandscapeModel(Model):
    """The loss-landscape model of the hierarchical Step Law.

    Parameters
    ----------
    groups : sequence of str
        Group columns of the law's offsets, outermost first.
    batch_depends_on_N : bool
        Add δ·(ln N − ln N0) to the batch law.
    window : float
        Runs within this relative loss of their setting's minimum enter the likelihood.
    curvature : {"shared", "ND", "group", "ND+group"}
        How the bowl's curvature varies between settings (module docstring).
    """

    kind = "landscape"
    posterior_class = LandscapePosterior

    def __init__(
        self,
        groups: tuple[str, ...] | list[str] = DEFAULT_GROUPS,
        *,
        batch_depends_on_N: bool = False,
        window: float = DEFAULT_WINDOW,
        curvature: str = DEFAULT_CURVATURE,
    ):
        super().__init__(groups, batch_depends_on_N=batch_depends_on_N)
        if not (isinstance(window, (int, float)) and math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a positive relative loss (e.g. 0.03); got {window!r}")
        self.window = float(window)
        self.curvature = check_choice(curvature, "curvature", CURVATURES)

    def get_config(self) -> dict:
        """JSON-ready arguments of this model."""
        return {**super().get_config(), "window": self.window, "curvature": self.curvature}

    def build(self, sweeps: pd.DataFrame, *, weighted: bool = False) -> Built:
        """The PyMC landscape model of the runs of ``sweeps`` within the window."""
        import pymc as pm
        import pytensor.tensor as pt

        runs = landscape_runs(sweeps, self.window)
        design = build_design(runs, self.groups)
        column = _curvature_column(design, self.curvature)
        loss = runs["loss"].to_numpy(float)
        loss_min = runs.groupby("setting")["loss"].min().reindex(design.settings).to_numpy(float)
        rs = design.run_setting
        coords = {"setting": design.settings, "run": np.arange(len(runs))}
        coords.update(level_dims(design.hierarchy))
        with pm.Model(coords=coords) as model:
            # centred: each setting's runs pin its optimum down (see law_means)
            m_lr, m_bs = law_means(design, self.batch_depends_on_N, centered=True)
            z_star = pm.Normal("z_loss_star", 0.0, 1.0, dims="setting")
            loss_star = pm.Deterministic(
                "loss_star", loss_min * (1.0 + LOSS_STAR_SD * z_star), dims="setting"
            )
            log_a = _log_curvature("lr", design, self.curvature, column)
            log_b = _log_curvature("bs", design, self.curvature, column)
            rho = pm.Uniform("rho", *LANDSCAPE_PRIORS["rho"][1:])
            log_k = pm.Normal("log_asymmetry", *LANDSCAPE_PRIORS["log_asymmetry"][1:])
            k = pm.Deterministic("asymmetry", pt.exp(log_k))
            sigma0 = pm.HalfNormal("sigma_loss", LANDSCAPE_PRIORS["sigma_loss"][1])
            sigma1 = pm.HalfNormal("sigma_loss_q", LANDSCAPE_PRIORS["sigma_loss_q"][1])
            nu = pm.Gamma("nu", *LANDSCAPE_PRIORS["nu"][1:])
            a, b = pt.exp(log_a)[rs], pt.exp(log_b)[rs]
            x = design.log_lr - m_lr[rs]
            y = design.log_bs - m_bs[rs]
            q = quadratic(x, y, a, b, cross_term(a, b, k, rho, xp=pt), k, xp=pt)
            mu, sd = loss_mean_scale(q, loss_star[rs], sigma0, sigma1)
            if weighted:
                w = pm.Data("run_weight", np.ones(len(runs)), dims="run")
                logp = pm.logp(pm.StudentT.dist(nu=nu, mu=mu, sigma=sd), loss)
                pm.Potential("loss_weighted", (w * logp).sum())
            else:
                pm.StudentT("loss", nu=nu, mu=mu, sigma=sd, observed=loss, dims="run")
        extra = {
            "window": self.window,
            "curvature": self.curvature,
            "curvature_column": column,
            "priors": PRIORS,
            "landscape_priors": LANDSCAPE_PRIORS,
        }
        # the bowl's asymmetry moves every setting's optimum (and so the law's intercept) at
        # once; a low-rank mass matrix follows that direction, a diagonal one crawls along it
        options = {"low_rank_modified_mass_matrix": True}
        return Built(model, design, extra | {"nutpie_kwargs": options}, options)
