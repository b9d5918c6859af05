"""The hierarchical Step Law both models share: its priors, its PyMC pieces, its predictive.

For every setting s (one (N, D) of one group),

    ln lr*[s] = c + α·(ln N − ln N0) + β·(ln D − ln D0) + a_lr[group] + u[s]
    ln B*[s]  = d + γ·(ln D − ln D0) [+ δ·(ln N − ln N0)] + a_bs[group] + v[s]

with α, β, γ (and δ) shared by every group, group offsets with partial pooling (one population
scale per group column, non-centred zero-sum normals) and setting effects u, v. N0 and D0 are
the geometric means of the data's settings, so c and d are the law at the centre of the data.

Priors (natural-log scale):

    c ~ Normal(ln 1e-3, 2.5)     d ~ Normal(ln 1e6, 2.5)       (lr 1e-3, batch 1e6 tokens)
    α, β, γ, δ ~ Normal(0, 1)
    group scales ~ Gamma(2, rate 4)   (mean 0.5; kept off zero, see below)
    setting scales ~ HalfNormal(0.5)

The group scales are estimated from a handful of groups (two families here); a prior that
allows, but does not pile up at, zero keeps the sampler out of the funnel between a scale and
its offsets, and keeps predictions for a never-seen group honestly wide.

:class:`StepLawPosterior` is the predictive of this law from posterior draws, numpy only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .._validate import (
    DEFAULT_PROB,
    DEFAULT_SEQ_LEN,
    check_choice,
    check_prob,
    check_seq_len,
    scalar,
)
from .design import Design
from .labs import LAB_EXPONENTS, lab_terms, sibling_parents
from .posterior import Posterior
from .predictive import ABOUT, SHORT, Draws, Points, points

PRIORS = {
    "c": ("Normal", float(np.log(1e-3)), 2.5),
    "d": ("Normal", float(np.log(1e6)), 2.5),
    "alpha": ("Normal", 0.0, 1.0),
    "beta": ("Normal", 0.0, 1.0),
    "gamma": ("Normal", 0.0, 1.0),
    "delta": ("Normal", 0.0, 1.0),
    "sigma_group": ("Gamma", 2.0, 4.0),
    "sigma_setting": ("HalfNormal", 0.5),
    "sigma_run": ("HalfNormal", 0.5),
    "mu_best": ("Normal", 0.0, 0.5),
    "sigma_best": ("HalfNormal", 0.5),
}
KINDS = ("optimum", "sweep", "law")
"""What a :meth:`StepLawPosterior.predict` interval is about (:data:`.predictive.ABOUT`)."""
DEFAULT_GRID = (2**0.5, 2.0)
"""Multiplicative steps of a sweep's lr and batch grids, as in the released sweeps."""


# --------------------------------------------------------------------------- PyMC pieces


def group_offsets(
    name: str,
    design: Design,
    centered: bool = False,
    sigma_prior: tuple | None = None,
    lab_of: dict[str, str] | None = None,
):
    """Sum of the level offsets of every setting for one law (``lr`` or ``bs``).

    The offsets of the levels under one parent are ``sigma * z`` with ``z`` a zero-sum normal
    (non-centred): the intercept, or the parent's offset, is the siblings' mean and is not
    traded off against them. A level without siblings gets no offset: it is not identified
    apart from its parent. ``centered=True`` samples the zero-sum offsets with scale ``sigma``
    directly (for data that pin the offsets down).
    ``sigma_prior``: the Gamma prior of the scales (default ``PRIORS["sigma_group"]``).
    ``lab_of`` (each family's lab): the families of each lab sum to zero, about its level.
    """
    import pymc as pm
    import pytensor.tensor as pt

    total = 0.0
    for j, lev in enumerate(design.hierarchy.levels):
        sigma = pm.Gamma(f"sigma_{name}_{lev.column}", *(sigma_prior or PRIORS["sigma_group"])[1:])
        parents = sibling_parents(lev, j, lab_of)
        pieces, order = [], []
        siblings = np.unique(parents)
        for k, parent in enumerate(siblings):
            members = np.flatnonzero(parents == parent)
            order.extend(members)
            if len(members) == 1:
                pieces.append(pt.zeros(1))
            else:
                label = lev.column if len(siblings) == 1 else f"{lev.column}_{k}"
                if centered:
                    pieces.append(pm.ZeroSumNormal(f"e_{name}_{label}", sigma, shape=len(members)))
                else:
                    z = pm.ZeroSumNormal(f"e_{name}_{label}", 1.0, shape=len(members))
                    pieces.append(sigma * z)
        stacked = pt.concatenate(pieces)[np.argsort(order)]
        offset = pm.Deterministic(f"a_{name}_{lev.column}", stacked, dims=f"level_{lev.column}")
        padded = pt.concatenate([offset, pt.zeros(1)])  # index -1 picks the zero
        total = total + padded[design.setting_levels[:, j]]
    return total


def law_means(
    design: Design,
    batch_depends_on_N: bool,
    centered: bool = False,
    labs: tuple[list[str], np.ndarray, dict[str, str]] | None = None,
):
    """Setting-level optima (ln lr, ln batch tokens) of the hierarchical law.

    ``centered=True`` samples the setting optima ``m_lr``, ``m_bs`` (``u``, ``v`` then follow
    from them) and the group offsets directly: right when every setting's own runs pin its
    optimum down, where the non-centred form makes NUTS trees ~15x
    deeper and funnels the family scale. ``labs`` (the labs, each setting's lab, each family's
    lab; two or more labs): another lab's levels and deviations of α, β, γ
    (:func:`.labs.lab_terms`), its families summing to zero about its levels.
    """
    import pymc as pm

    c = pm.Normal("c", *PRIORS["c"][1:])
    d = pm.Normal("d", *PRIORS["d"][1:])
    alpha = pm.Normal("alpha", *PRIORS["alpha"][1:])
    beta = pm.Normal("beta", *PRIORS["beta"][1:])
    gamma = pm.Normal("gamma", *PRIORS["gamma"][1:])
    lab_of = labs[2] if labs else None
    off_lr = group_offsets("lr", design, centered, lab_of=lab_of)
    off_bs = group_offsets("bs", design, centered, lab_of=lab_of)
    mu_lr = c + alpha * design.log_n + beta * design.log_d + off_lr
    mu_bs = d + gamma * design.log_d + off_bs
    if labs:
        lab = lab_terms(design.log_n, design.log_d, labs[0], labs[1], LAB_EXPONENTS[:3],
                        ("lr", "bs"))  # fmt: skip
        mu_lr = mu_lr + lab["lr"] + lab["level"][:, 0]
        mu_bs = mu_bs + lab["bs"] + lab["level"][:, 1]
    if batch_depends_on_N:
        mu_bs = mu_bs + pm.Normal("delta", *PRIORS["delta"][1:]) * design.log_n
    sigma_u = pm.HalfNormal("sigma_setting_lr", PRIORS["sigma_setting"][1])
    sigma_v = pm.HalfNormal("sigma_setting_bs", PRIORS["sigma_setting"][1])
    if centered:
        m_lr = pm.Normal("m_lr", mu_lr, sigma_u, dims="setting")
        m_bs = pm.Normal("m_bs", mu_bs, sigma_v, dims="setting")
        pm.Deterministic("u", m_lr - mu_lr, dims="setting")
        pm.Deterministic("v", m_bs - mu_bs, dims="setting")
        return m_lr, m_bs
    u = pm.Deterministic("u", sigma_u * pm.Normal("z_u", 0.0, 1.0, dims="setting"), dims="setting")
    v = pm.Deterministic("v", sigma_v * pm.Normal("z_v", 0.0, 1.0, dims="setting"), dims="setting")
    return mu_lr + u, mu_bs + v


# --------------------------------------------------------------------------- the predictive


def check_kind(kind: str) -> str:
    """A predict kind (:data:`KINDS`)."""
    return check_choice(kind, "kind", KINDS)


def decades_outside(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """How many orders of magnitude each value lies outside [lo, hi] (0 inside)."""
    with np.errstate(over="ignore", divide="ignore"):
        return np.maximum.reduce(
            [np.log10(values) - np.log10(hi), np.log10(lo) - np.log10(values), 0 * values]
        )


KIND_NAMES = {k: SHORT[k] for k in KINDS}
"""Short names of what each kind's interval is about (legends, tables)."""


def describe_kind(kind: str) -> str:
    """What an interval of ``kind`` is about, in words."""
    return ABOUT[kind]


def optimum_draws(
    post: Posterior, pts: Points, coef_lr: np.ndarray, coef_bs: np.ndarray, kind: str, attrs: dict
) -> Draws:
    """:class:`Draws` of the optimal lr and batch at ``pts`` from per-sample coefficients
    (intercept, ln N slope, ln D slope) of the two laws: ``ln lr = a + b·u + c·v``."""
    meta = post.metadata
    u = np.log(pts.values["N"]) - meta["log_n0"]
    v = np.log(pts.values["D"]) - meta["log_d0"]

    def generate(block: slice) -> dict[str, np.ndarray]:
        basis = np.stack([np.ones_like(u[block]), u[block], v[block]], axis=1)
        return {"lr": np.exp(basis @ coef_lr), "batch_tokens": np.exp(basis @ coef_bs)}

    return Draws(
        pts, generate, ("lr", "batch_tokens"), kind, coef_lr.shape[1],
        derived={"batch_sequences": ("batch_tokens", 1.0 / attrs["seq_len"])},
        extra=extrapolation(post, pts), attrs=attrs,
    )  # fmt: skip


def extrapolation(post: Posterior, pts: Points) -> dict[str, np.ndarray]:
    """Per point, how many decades N and D lie outside the fitted data."""
    meta = post.metadata
    return {
        "N_decades_outside": decades_outside(pts.values["N"], *meta["N_range"]),
        "D_decades_outside": decades_outside(pts.values["D"], *meta["D_range"]),
    }


class StepLawPosterior(Posterior):
    """A fitted hierarchical Step Law: predictive optima, group contrasts, the paper's form.

    Both models are Step-Law posteriors; build one with :func:`bayes_steplaw.fit`,
    :func:`bayes_steplaw.load` or :func:`bayes_steplaw.load_default`.
    """

    save_drop = ()

    @property
    def default_kind(self) -> str:
        """``"optimum"``: what :meth:`predict` answers for unless told (the optimum of a new
        setting; ``"sweep"`` and ``"law"`` on request)."""
        return "optimum"

    @property
    def seq_len(self) -> int:
        """Sequence length of the fitted runs (the most common one), the default for
        expressing batches in sequences."""
        return int(self.metadata.get("seq_len", DEFAULT_SEQ_LEN))

    # ------------------------------------------------------------------ offsets

    def _offset(self, law: str, group: str, rng: np.random.Generator | None) -> np.ndarray:
        """Offset draws of one law for a group (its lab's level included, where the fit has
        one); new levels drawn from their population."""
        index = self.hierarchy.resolve(group)
        total = np.zeros(self.n_samples)
        for lev, k in zip(self.hierarchy.levels, index):
            if k >= 0:
                total = total + self.flat(f"a_{law}_{lev.column}")[:, k]
            elif k == -2:
                if rng is None:
                    raise ValueError(f"group {group!r} has no offset of its own to compare")
                sigma = self.flat(f"sigma_{law}_{lev.column}")
                total = total + sigma * rng.standard_normal(self.n_samples)
        if f"dev_{law}_lab" in self.variables:  # the level of the group's lab
            total = total + self.lab_deviations(group, rng, (law,))[0]
        return total

    def compare_offsets(
        self, a: str, b: str, *, prob: float = DEFAULT_PROB, scale: str = "log"
    ) -> pd.DataFrame:
        """Posterior contrast of the lr and batch offsets of group ``a`` against group ``b``.

        Parameters
        ----------
        a, b : str
            Group names (:attr:`groups_seen`).
        prob : float
            Mass of the equal-tailed interval.
        scale : {"log", "ratio"}
            ``"log"``: the difference of ln offsets, ``a − b``; ``"ratio"``: its exp, how many
            times larger ``a``'s optimum is than ``b``'s at the same N and D.

        Returns
        -------
        DataFrame
            Rows ``lr`` and ``batch_tokens``; columns ``mean``, ``median``, ``lower``,
            ``upper`` (all on ``scale``) and ``prob_positive`` = P(a's optimum > b's).
        """
        prob = check_prob(prob)
        check_choice(scale, "scale", ("log", "ratio"))
        rows = {}
        for law, label in (("lr", "lr"), ("bs", "batch_tokens")):
            diff = self._offset(law, a, None) - self._offset(law, b, None)
            values = np.exp(diff) if scale == "ratio" else diff
            lo, med, hi = np.quantile(values, [(1 - prob) / 2, 0.5, (1 + prob) / 2])
            rows[label] = {
                "mean": values.mean(),
                "median": med,
                "lower": lo,
                "upper": hi,
                "prob_positive": float((diff > 0).mean()),
            }
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = f"{a} - {b} (ln offsets)" if scale == "log" else f"{a} / {b} (ratio)"
        return out

    # ------------------------------------------------------------------ predict

    def law_coefficients(
        self,
        group: str,
        kind: str,
        rng: np.random.Generator | int = 0,
        grid: tuple[float, float] = DEFAULT_GRID,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample (intercept, ln N slope, ln D slope) of the lr and batch laws.

        ``kind`` as in :meth:`predict`; ``rng`` (a Generator, or a seed) draws a new group's
        offsets and a new setting's scatter; ``grid`` the sweep's lr and batch steps.
        """
        kind = check_kind(kind)
        rng = np.random.default_rng(rng)
        a_lr = self.flat("c") + self._offset("lr", group, rng)
        a_bs = self.flat("d") + self._offset("bs", group, rng)
        if kind in ("optimum", "sweep"):
            a_lr = a_lr + self.flat("sigma_setting_lr") * rng.standard_normal(self.n_samples)
            a_bs = a_bs + self.flat("sigma_setting_bs") * rng.standard_normal(self.n_samples)
        if kind == "sweep":
            a_lr = a_lr + self._best_run_offset("lr", grid[0], group, rng)
            a_bs = a_bs + self._best_run_offset("bs", grid[1], group, rng)
        delta = self.flat("delta") if "delta" in self.variables else np.zeros(self.n_samples)
        dev = self.lab_deviations(group, rng)
        centre = self.lab_centre(group)
        a_lr = a_lr - dev[0] * centre[0] - dev[1] * centre[1]
        a_bs = a_bs - dev[2] * centre[1]
        coef_lr = np.stack([a_lr, self.flat("alpha") + dev[0], self.flat("beta") + dev[1]])
        coef_bs = np.stack([a_bs, delta, self.flat("gamma") + dev[2]])
        return coef_lr, coef_bs

    def lab_of(self, group: str) -> str | None:
        """The lab of a group (None: a never-seen family, hence a never-seen lab)."""
        k = self.hierarchy.resolve(group)
        if not len(k) or k[0] == -2:
            return None
        family = self.hierarchy.levels[0].labels[k[0]] if k[0] >= 0 else group.split("/")[0]
        return self.metadata.get("lab_of_family", {}).get(family, "step-law")

    def lab_centre(self, group: str) -> tuple[float, float]:
        """Centred (ln N, ln D) about which the group's lab's deviations turn its laws: a
        fitted lab's own settings' centre (the loss model's ``lab_centres``), else the data's."""
        return tuple(self.metadata.get("lab_centres", {}).get(self.lab_of(group), (0.0, 0.0)))

    def lab_deviations(
        self,
        group: str,
        rng: np.random.Generator,
        names: tuple[str, ...] = ("alpha", "beta", "gamma"),
    ) -> np.ndarray:
        """Draws (len(names), samples) of the group's lab's deviations from what the labs
        share (α, β, γ by default; ``("star_N", "star_D")``, the best loss's log-slopes;
        ``("div",)``, the divergence edge's level): its own for a fitted lab, from the spread
        between labs for a new one (a fixed one, ``sd_lab_<name>`` in the metadata, where the
        fit learnt none), 0 when the fit kept them shared."""
        if f"dev_{names[0]}_lab" not in self.variables:
            return np.zeros((len(names), self.n_samples))
        lab = self.lab_of(group)
        if lab is None:
            spread = np.stack([self.flat(f"sigma_lab_{n}") if f"sigma_lab_{n}" in self.variables
                               else np.full(self.n_samples, self.metadata[f"sd_lab_{n}"])
                               for n in names])  # fmt: skip
            return spread * rng.standard_normal(spread.shape)
        i = list(self.metadata["labs"]).index(lab)
        return np.stack([self.flat(f"dev_{n}_lab")[:, i] for n in names])

    def _best_run_offset(
        self, law: str, step: float, group: str, rng: np.random.Generator
    ) -> np.ndarray:
        """Draws of (best run of a sweep − optimum) in ln units, on a grid of ``step``."""
        if f"mu_best_{law}" not in self.variables:
            raise ValueError(
                f"kind='sweep' needs a posterior of the optimum model fitted by bayes-steplaw "
                f">= 0.2, or a loss posterior (this one is {self.kind!r} version "
                f"{self.metadata['model_version']}); refit it, or use kind='optimum'"
            )
        step = scalar(step, "grid step")
        if step <= 1:
            raise ValueError(f"grid steps are ratios between neighbouring values, > 1; got {step}")
        scale = np.sqrt(self.flat(f"sigma_best_{law}") ** 2 + np.log(step) ** 2 / 12.0)
        mu = self.flat(f"mu_best_{law}")
        column = self.metadata.get("best_offsets_column")
        if column is not None:
            k = self.hierarchy.resolve(group)[0]
            if k >= 0:
                mu = mu + self.flat(f"mu_best_{law}_{column}")[:, k]
            elif k == -2:  # a never-seen family: its offset from the prior of the seen ones
                sd = self.metadata["best_offset_sd"]
                mu = mu + sd * rng.standard_normal(self.n_samples)
        return mu + scale * rng.standard_normal(self.n_samples)

    def predict(
        self,
        N: ArrayLike,
        D: ArrayLike,
        *,
        group: str = "dense",
        kind: str | None = None,
        seq_len: int | None = None,
        grid: tuple[float, float] = DEFAULT_GRID,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> Draws:
        """Posterior-predictive optimal lr and batch size at (N, D).

        Parameters
        ----------
        N, D : float, str or array-like
            Non-embedding parameters and training tokens (``7e9`` or ``"7B"``); broadcast
            together (xarray inputs by dimension name).
        group : str
            ``"dense"``, ``"moe"``, ``"moe/1in8"``, ... (:attr:`groups_seen`), or ``"new"``
            for a never-seen group drawn from the group population.
        kind : {"sweep", "optimum", "law"}, optional
            What the interval is about (:data:`.predictive.ABOUT`): ``"sweep"``, the best run
            a grid sweep around the optimum of a new setting will find (what a user observes);
            ``"optimum"``, the optimum of a new setting (default); ``"law"``, the law itself.
        seq_len : int, optional
            Sequence length, to express the batch in sequences (default: the fit's,
            :attr:`seq_len`).
        grid : (float, float)
            With ``kind="sweep"``: the sweep's multiplicative lr and batch steps.
        seed : int
            Seed of the draws for new groups and setting scatter.
        allow_unconverged : bool
            Predict even when the fit failed its convergence gate.

        Returns
        -------
        Draws
            ``lr``, ``batch_tokens`` and ``batch_sequences``: ``median()``,
            ``interval(prob, method)``, ``to_dataframe(prob)``, ``describe(prob)``, ``draws``.
        """
        kind = check_kind(self.default_kind if kind is None else kind)
        seq_len = check_seq_len(self.seq_len if seq_len is None else seq_len)
        self.gate(allow_unconverged)
        pts = points({"N": N, "D": D})
        coef_lr, coef_bs = self.law_coefficients(group, kind, seed, grid)
        attrs = {"group": group, "seq_len": seq_len}
        return optimum_draws(self, pts, coef_lr, coef_bs, kind, attrs)

    def published_form(self, group: str = "dense") -> dict[str, float]:
        """Posterior-median constants in the paper's form ``lr = C·N^α·D^β``, ``B = E·D^γ``."""
        coef_lr, coef_bs = self.law_coefficients(group, "law")
        n0, d0 = self.metadata["log_n0"], self.metadata["log_d0"]
        log_c = coef_lr[0] - coef_lr[1] * n0 - coef_lr[2] * d0
        log_e = coef_bs[0] - coef_bs[1] * n0 - coef_bs[2] * d0
        return {
            "lr_coefficient": float(np.exp(np.median(log_c))),
            "alpha": float(np.median(coef_lr[1])),
            "beta": float(np.median(coef_lr[2])),
            "bs_coefficient": float(np.exp(np.median(log_e))),
            "gamma": float(np.median(coef_bs[2])),
        }
