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

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .._validate import (
    DEFAULT_PROB,
    DEFAULT_SEQ_LEN,
    broadcast,
    check_choice,
    check_prob,
    check_seq_len,
    legacy_positional,
    renamed,
    scalar,
)
from .design import Design
from .posterior import Posterior, interval_bounds, sorted_quantile

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
KINDS = ("sweep", "centre", "law")
"""What a :meth:`StepLawPosterior.predict` interval is about (see :func:`describe_kind`)."""
DEFAULT_GRID = (2**0.5, 2.0)
"""Multiplicative steps of a sweep's lr and batch grids, as in the released sweeps."""
_DEPRECATED_KINDS = {"run": "centre"}
_CHUNK = 512  # points per block when reducing (point x sample) draws


# --------------------------------------------------------------------------- PyMC pieces


def group_offsets(
    name: str, design: Design, centered: bool = False, sigma_prior: tuple | None = None
):
    """Sum of the level offsets of every setting for one law (``lr`` or ``bs``).

    The offsets of the levels under one parent are ``sigma * z`` with ``z`` a zero-sum normal
    (non-centred): the intercept, or the parent's offset, is the siblings' mean and is not
    traded off against them. A level without siblings gets no offset: it is not identified
    apart from its parent. ``centered=True`` samples the zero-sum offsets with scale ``sigma``
    directly (for data that pin the offsets down, as in the landscape model).
    ``sigma_prior``: the Gamma prior of the scales (default ``PRIORS["sigma_group"]``).
    """
    import pymc as pm
    import pytensor.tensor as pt

    total = 0.0
    for j, lev in enumerate(design.hierarchy.levels):
        sigma = pm.Gamma(f"sigma_{name}_{lev.column}", *(sigma_prior or PRIORS["sigma_group"])[1:])
        parents = np.asarray(lev.parents)
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


def law_means(design: Design, batch_depends_on_N: bool, centered: bool = False):
    """Setting-level optima (ln lr, ln batch tokens) of the hierarchical law.

    ``centered=True`` samples the setting optima ``m_lr``, ``m_bs`` (``u``, ``v`` then follow
    from them) and the group offsets directly: right when every setting's own runs pin its
    optimum down, as in the landscape model, where the non-centred form makes NUTS trees ~15x
    deeper and funnels the family scale.
    """
    import pymc as pm

    c = pm.Normal("c", *PRIORS["c"][1:])
    d = pm.Normal("d", *PRIORS["d"][1:])
    alpha = pm.Normal("alpha", *PRIORS["alpha"][1:])
    beta = pm.Normal("beta", *PRIORS["beta"][1:])
    gamma = pm.Normal("gamma", *PRIORS["gamma"][1:])
    off_lr = group_offsets("lr", design, centered)
    off_bs = group_offsets("bs", design, centered)
    mu_lr = c + alpha * design.log_n + beta * design.log_d + off_lr
    mu_bs = d + gamma * design.log_d + off_bs
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


def check_kind(kind: str, func: str = "predict") -> str:
    """A predict kind, with the deprecated spellings mapped (and warned about)."""
    if kind in _DEPRECATED_KINDS:
        new = _DEPRECATED_KINDS[kind]
        renamed(func, f"kind={kind!r}", f"kind={new!r}", None)
        return new
    return check_choice(kind, "kind", KINDS)


def _decades_outside(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """How many orders of magnitude each value lies outside [lo, hi] (0 inside)."""
    with np.errstate(over="ignore", divide="ignore"):
        return np.maximum.reduce(
            [np.log10(values) - np.log10(hi), np.log10(lo) - np.log10(values), 0 * values]
        )


@dataclass
class Prediction:
    """Posterior-predictive draws of the optimal lr and batch size at a set of points.

    Draws are generated lazily from per-sample coefficients: ``ln lr[p, s] = a_lr[s] +
    b_lr[s]·x[p] + c_lr[s]·y[p]`` (x, y the centred ln N and ln D), so ``predict`` itself costs
    O(points + samples) and reductions run block-wise over points.
    """

    N: np.ndarray
    D: np.ndarray
    seq_len: int
    group: str
    kind: str
    shape: tuple[int, ...]
    x: np.ndarray  # centred ln N per point
    y: np.ndarray  # centred ln D per point
    coef_lr: np.ndarray  # (3, samples): intercept, ln N, ln D slopes
    coef_bs: np.ndarray  # (3, samples)
    N_decades_outside: np.ndarray
    D_decades_outside: np.ndarray

    @property
    def n_samples(self) -> int:
        """Number of posterior samples per point."""
        return self.coef_lr.shape[1]

    def _log_block(self, which: str, sl: slice) -> np.ndarray:
        coef = self.coef_lr if which == "lr" else self.coef_bs
        design = np.stack([np.ones_like(self.x[sl]), self.x[sl], self.y[sl]], axis=1)
        return design @ coef

    def _summarise(
        self, prob: float | None, method: str, name: str = "method"
    ) -> dict[str, np.ndarray]:
        """Median and (optionally) interval bounds of the log draws, one sort per block.

        numpy's SIMD sort beats a partition for the several order statistics needed here;
        quantiles interpolate linearly between order statistics, as ``numpy.quantile`` does.
        """
        if prob is not None:
            prob = check_prob(prob)
        if method not in ("hdi", "eti"):
            raise ValueError(f"{name} must be 'hdi' or 'eti'; got {method!r}")
        stats: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(self.x), _CHUNK):
            sl = slice(start, start + _CHUNK)
            for which in ("lr", "bs"):
                ordered = np.sort(self._log_block(which, sl), axis=1)
                found = {which: sorted_quantile(ordered, 0.5)}
                if prob is not None:
                    lo, hi = interval_bounds(ordered, prob, method)
                    found |= {f"{which}_lower": lo, f"{which}_upper": hi}
                for key, values in found.items():
                    stats.setdefault(key, []).append(values)
        return {key: np.exp(np.concatenate(parts)) for key, parts in stats.items()}

    def _frame(self, stats: dict[str, np.ndarray], suffixes: tuple[str, ...]) -> pd.DataFrame:
        columns = {}
        for suffix in suffixes:
            lr, bs = stats[f"lr{suffix}"], stats[f"bs{suffix}"]
            columns |= {
                f"lr{suffix}": lr,
                f"batch_tokens{suffix}": bs,
                f"batch_sequences{suffix}": bs / self.seq_len,
            }
        order = [f"{q}{s}" for q in ("lr", "batch_tokens", "batch_sequences") for s in suffixes]
        return pd.DataFrame(columns)[order]

    def median(self) -> pd.DataFrame:
        """Posterior median of ``lr``, ``batch_tokens`` and ``batch_sequences`` per point."""
        return self._frame(self._summarise(None, "hdi"), ("",))

    def interval(
        self, prob: float = DEFAULT_PROB, method: str = "hdi", *, kind: str | None = None
    ) -> pd.DataFrame:
        """Credible interval per point.

        ``method="eti"`` is the equal-tailed interval; ``method="hdi"`` the highest-density
        interval of the log quantity (the narrowest interval in ratio terms), mapped back.
        Columns: ``lr_lower, lr_upper, batch_tokens_lower, batch_tokens_upper,
        batch_sequences_lower, batch_sequences_upper``. (``kind=`` is the old name of
        ``method=``.)
        """
        name = "method"
        if kind is not None:
            method, name = renamed("interval", "kind", "method", kind), "kind"
        return self._frame(self._summarise(prob, method, name), ("_lower", "_upper"))

    @property
    def draws(self):
        """All draws as an xarray Dataset with dims ``point`` x ``sample``."""
        import xarray as xr

        everything = slice(None)
        lr = np.exp(self._log_block("lr", everything))
        bs = np.exp(self._log_block("bs", everything))
        coords = {"N": ("point", self.N), "D": ("point", self.D)}
        dims = ("point", "sample")
        return xr.Dataset(
            {
                "lr": (dims, lr),
                "batch_tokens": (dims, bs),
                "batch_sequences": (dims, bs / self.seq_len),
            },
            coords=coords,
            attrs={"group": self.group, "kind": self.kind, "seq_len": self.seq_len},
        )

    def describe(self, prob: float = DEFAULT_PROB) -> str:
        """One sentence saying what the intervals are about."""
        what = describe_kind(self.kind)
        return f"posterior median and {prob:.0%} interval of {what}, group {self.group!r}"

    def extrapolation(self) -> pd.DataFrame:
        """Orders of magnitude each point lies outside the fitted data's N and D ranges."""
        return pd.DataFrame(
            {
                "N_decades_outside": self.N_decades_outside,
                "D_decades_outside": self.D_decades_outside,
            }
        )

    def to_dataframe(
        self, prob: float = DEFAULT_PROB, method: str = "hdi", *, kind: str | None = None
    ) -> pd.DataFrame:
        """Inputs, medians, intervals and extrapolation in one table, one row per point."""
        name = "method"
        if kind is not None:
            method, name = renamed("to_dataframe", "kind", "method", kind), "kind"
        stats = self._summarise(prob, method, name)
        inputs = pd.DataFrame(
            {"N": self.N, "D": self.D, "seq_len": self.seq_len, "group": self.group}
        )
        return pd.concat(
            [
                inputs,
                self._frame(stats, ("",)),
                self._frame(stats, ("_lower", "_upper")),
                self.extrapolation(),
            ],
            axis=1,
        )


KIND_NAMES = {"sweep": "a sweep's best run", "centre": "a new setting's optimum", "law": "the law"}
"""Short names of what each kind's interval is about (legends, tables)."""


def describe_kind(kind: str) -> str:
    """What an interval of ``kind`` is about, in words."""
    return {
        "centre": "the optimum (plateau centre) of a new setting: the law's uncertainty plus "
        "setting-level scatter",
        "law": "the law's own uncertainty (its optimum, without setting-level scatter)",
        "sweep": "the best run a grid sweep around the optimum will find",
    }[kind]


class StepLawPosterior(Posterior):
    """A fitted hierarchical Step Law: predictive optima, group contrasts, the paper's form.

    Both models are Step-Law posteriors; build one with :func:`bayes_steplaw.fit`,
    :func:`bayes_steplaw.load` or :func:`bayes_steplaw.load_default`.
    """

    save_drop = ()

    @property
    def default_kind(self) -> str:
        """``"sweep"`` when the posterior models the best run of a sweep, else ``"centre"``."""
        return "sweep" if "mu_best_lr" in self.posterior else "centre"

    # ------------------------------------------------------------------ offsets

    def _offset(self, law: str, group: str, rng: np.random.Generator | None) -> np.ndarray:
        """Offset draws of one law for a group; new levels drawn from their population."""
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
        self, group: str, kind: str, seed: int = 0, grid: tuple[float, float] = DEFAULT_GRID
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample (intercept, ln N slope, ln D slope) of the lr and batch laws.

        ``kind`` as in :meth:`predict`; ``grid`` the sweep's lr and batch steps (``"sweep"``).
        """
        kind = check_kind(kind, "law_coefficients")
        rng = np.random.default_rng(seed)
        a_lr = self.flat("c") + self._offset("lr", group, rng)
        a_bs = self.flat("d") + self._offset("bs", group, rng)
        if kind in ("centre", "sweep"):
            a_lr = a_lr + self.flat("sigma_setting_lr") * rng.standard_normal(self.n_samples)
            a_bs = a_bs + self.flat("sigma_setting_bs") * rng.standard_normal(self.n_samples)
        if kind == "sweep":
            a_lr = a_lr + self._best_run_offset("lr", grid[0], group, rng)
            a_bs = a_bs + self._best_run_offset("bs", grid[1], group, rng)
        delta = self.flat("delta") if "delta" in self.posterior else np.zeros(self.n_samples)
        coef_lr = np.stack([a_lr, self.flat("alpha"), self.flat("beta")])
        coef_bs = np.stack([a_bs, delta, self.flat("gamma")])
        return coef_lr, coef_bs

    def _best_run_offset(
        self, law: str, step: float, group: str, rng: np.random.Generator
    ) -> np.ndarray:
        """Draws of (best run of a sweep − plateau centre) in ln units, on a grid of ``step``."""
        if f"mu_best_{law}" not in self.posterior:
            raise ValueError(
                f"kind='sweep' needs a posterior of the optimum model fitted by bayes-steplaw "
                f">= 0.2 (this one is {self.kind!r} version {self.metadata['model_version']}); "
                f"refit it, or use kind='centre'"
            )
        step = scalar(step, "grid step")
        if step < 1:
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
        *args,
        group: str | None = None,
        kind: str | None = None,
        seq_len: int | None = None,
        grid: tuple[float, float] = DEFAULT_GRID,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> Prediction:
        """Posterior-predictive optimal lr and batch size at (N, D).

        Parameters
        ----------
        N, D : float or array-like
            Non-embedding parameters and training tokens; broadcast together.
        group : str
            ``"dense"`` (default), ``"moe"``, ``"moe/1in8"``, ... (see :attr:`groups_seen`);
            ``"new"`` for a never-seen architecture drawn from the group population.
        kind : {"sweep", "centre", "law"}, optional
            What the interval is about: ``"sweep"``, the best run that a grid sweep around the
            optimum of a new setting will find (what a user observes; needs a posterior with
            the best-run model, the optimum model's); ``"centre"``, the optimum (plateau
            centre) of a new setting: the law's uncertainty plus the scatter of optima
            between settings; ``"law"``, the law itself. Default: :attr:`default_kind`.
            (``"run"`` is the old name of ``"centre"``.)
        seq_len : int
            Sequence length, to express the batch in sequences (default 2048).
        grid : (float, float)
            With ``kind="sweep"``: the sweep's multiplicative lr and batch steps (default
            √2 and 2, as in the released sweeps).
        seed : int
            Seed of the draws for new groups and setting scatter.
        allow_unconverged : bool
            Predict even when the fit failed its convergence gate.
        """
        opts = legacy_positional(
            "predict", args, {"group": group, "seq_len": seq_len, "kind": kind},
            {"group": "dense", "seq_len": DEFAULT_SEQ_LEN, "kind": self.default_kind},
        )  # fmt: skip
        group, seq_len = opts["group"], check_seq_len(opts["seq_len"])
        kind = check_kind(opts["kind"])
        self.gate(allow_unconverged)
        (n, d), shape = broadcast({"N": N, "D": D})
        n, d = n.ravel(), d.ravel()
        coef_lr, coef_bs = self.law_coefficients(group, kind, seed, grid)
        meta = self.metadata
        return Prediction(
            N=n,
            D=d,
            seq_len=seq_len,
            group=group,
            kind=kind,
            shape=shape,
            x=np.log(n) - meta["log_n0"],
            y=np.log(d) - meta["log_d0"],
            coef_lr=coef_lr,
            coef_bs=coef_bs,
            N_decades_outside=_decades_outside(n, *meta["N_range"]),
            D_decades_outside=_decades_outside(d, *meta["D_range"]),
        )

    def published_form(self, group: str = "dense") -> dict[str, float]:
        """Posterior-median constants in the paper's form ``lr = C·N^α·D^β``, ``B = E·D^γ``."""
        coef_lr, coef_bs = self.law_coefficients(group, "law", 0)
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
