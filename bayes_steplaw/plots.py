"""Plots of Step Law posteriors, the released sweeps and the paper's bootstrap ensemble.

Every function draws with matplotlib alone and returns what it drew on: the
:class:`~matplotlib.figure.Figure` of a multi-panel plot, or the :class:`~matplotlib.axes.Axes`
of a single-panel plot (drawn into ``ax=`` when you pass one), so that you can restyle,
annotate or save it. Nothing is shown or saved here.

Colours come from one colour-blind-safe palette, the Okabe-Ito set (:data:`OKABE_ITO`); each
kind of estimate keeps its colour across plots (:data:`ROLE_COLORS`): the Bayesian posterior
in blue, the paper's bootstrap ensemble in orange, the paper's Table 2 in vermillion, observed
runs in black, recommendations in bluish green. Sequential quantities (relative loss, N or D
as a colour) use ``viridis``, which is perceptually uniform and colour-blind safe.

Quantities that span decades (lr, batch size, N, D) are drawn on log axes, and axis labels
carry their units (``peak learning rate``, ``batch size (tokens)``, ``N (non-embedding
parameters)``, ``D (training tokens)``).

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from bayes_steplaw import load_default, load_sweeps, plots
>>> ax = plots.optimum_scaling(load_default(), load_sweeps("dense"))  # doctest: +SKIP
>>> ax.figure.savefig("lr_vs_D.png", dpi=150)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .bayes.law import StepLawPosterior
    from .bootstrap import BootstrapOLS

__all__ = [
    "CMAP",
    "OKABE_ITO",
    "PALETTE",
    "ROLE_COLORS",
    "delta_posterior",
    "exponent_pairs",
    "group_offsets",
    "interval_comparison",
    "landscape_map",
    "log_axis",
    "offset_contrast",
    "optimum_scaling",
    "plan",
    "relative_loss_check",
    "setting_optima",
    "si",
]

OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
"""The Okabe-Ito colour-blind-safe palette (Okabe & Ito 2008), by name."""

PALETTE: tuple[str, ...] = tuple(
    OKABE_ITO[k]
    for k in (
        "blue",
        "orange",
        "bluish_green",
        "vermillion",
        "reddish_purple",
        "sky_blue",
        "black",
        "yellow",
    )
)
"""Categorical colour cycle used for groups and lines (Okabe-Ito, yellow last)."""

ROLE_COLORS: dict[str, str] = {
    "posterior": OKABE_ITO["blue"],
    "posterior_run": OKABE_ITO["sky_blue"],
    "bootstrap": OKABE_ITO["orange"],
    "refit": OKABE_ITO["reddish_purple"],
    "paper": OKABE_ITO["vermillion"],
    "observed": OKABE_ITO["black"],
    "recommend": OKABE_ITO["bluish_green"],
    "neutral": "#7f7f7f",
}
"""The colour of each kind of estimate, the same in every plot."""

CMAP = "viridis"
"""Colormap of sequential quantities (relative loss, N or D as a colour)."""

_LABELS = {
    "lr": "peak learning rate",
    "batch_tokens": "batch size (tokens)",
    "N": "N (non-embedding parameters)",
    "D": "D (training tokens)",
}
_SYMBOLS = {
    "alpha": r"$\alpha$  (lr $\propto N^{\alpha}$)",
    "beta": r"$\beta$  (lr $\propto D^{\beta}$)",
    "gamma": r"$\gamma$  (batch $\propto D^{\gamma}$)",
    "delta": r"$\delta$  (batch $\propto N^{\delta}$)",
}
_BOOT_COLUMNS = {"alpha": "lr_coefN", "beta": "lr_coefD", "gamma": "bs_coefD"}


# --------------------------------------------------------------------------- helpers


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _new_axes(ax: Axes | None, figsize=(6.4, 4.4)) -> Axes:
    if ax is not None:
        return ax
    _, ax = _plt().subplots(figsize=figsize, layout="constrained")
    return ax


def si(value: float, unit: str = "") -> str:
    """Format a count the way people say it: ``2.15e8`` -> ``"215M"``, ``1.4e12`` -> ``"1.4T"``."""
    value = float(value)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}"


def _fmt_lr(value: float) -> str:
    if value <= 0:
        return ""
    exp = int(np.floor(np.log10(value) + 1e-9))
    return f"{value / 10.0**exp:g}e{exp}"


def log_axis(ax: Axes, which: str = "x", quantity: str = "count") -> None:
    """Put a log scale with readable ticks on one axis of ``ax``.

    Major ticks at 1, 2, 5 x 10^k (fewer over many decades, more within one), labelled
    ``"2e-3"`` for learning rates (``quantity="lr"``) and ``"200M"``, ``"1B"`` for counts of
    parameters or tokens (``quantity="count"``); minor ticks unlabelled.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{which}scale")("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    decades = np.log10(hi / lo) if lo > 0 else 10.0
    if decades > 4:
        subs: tuple[float, ...] = (1.0,)
    elif decades > 1.3:
        subs = (1.0, 2.0, 5.0)
    else:
        subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(1.0, 10.0)))
    axis.set_minor_formatter(NullFormatter())
    fmt = _fmt_lr if quantity == "lr" else si
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))


def _quantile_bands(log_draws: np.ndarray, probs: Sequence[float]) -> dict[float, np.ndarray]:
    """Equal-tailed bands of (points, samples) log draws, exponentiated: prob -> (2, points)."""
    out = {}
    for p in probs:
        q = np.quantile(log_draws, [(1 - p) / 2, (1 + p) / 2], axis=1)
        out[p] = np.exp(q)
    return out


def _law_draws(post: StepLawPosterior, N, D, quantity: str, group: str, kind: str, seed: int):
    """(points, samples) draws of ln lr or ln batch tokens at broadcast (N, D)."""
    pred = post.predict(N, D, group=group, kind=kind, seed=seed, allow_unconverged=True)
    return np.log(pred.draws[quantity].values)


def _group_of_settings(frame: pd.DataFrame) -> pd.Series:
    """Group name of each row (the setting id up to `` N=``, e.g. ``"moe/1in8"``)."""
    return frame["setting"].astype(str).str.split(" N=", n=1).str[0]


def _in_group(frame: pd.DataFrame, group: str) -> np.ndarray:
    names = _group_of_settings(frame)
    return ((names == group) | names.str.startswith(group + "/")).to_numpy()


def _resolvable(post: StepLawPosterior, group: str) -> str:
    """The longest prefix of ``group`` the posterior's hierarchy knows (``"moe/1in8"`` ->
    ``"moe"`` for a family-only fit)."""
    path, *crossed = group.split("@")
    parts = path.split("/")
    for k in range(len(parts), 0, -1):
        name = "/".join(parts[:k]) + "".join(f"@{c}" for c in crossed)
        try:
            post.hierarchy.resolve(name)
            return name
        except KeyError:
            continue
    raise KeyError(f"the posterior knows no group along {group!r}; it has {post.groups_seen}")


def _near_optimal(sweeps: pd.DataFrame, threshold: float) -> pd.DataFrame:
    from .datasets.sweeps import near_optimal

    return near_optimal(sweeps, threshold)


def _threshold(post: StepLawPosterior | None, threshold: float | None) -> float:
    if threshold is not None:
        return float(threshold)
    if post is not None and "threshold" in post.metadata:
        return float(post.metadata["threshold"])
    return 0.0025


def _data_span(post: StepLawPosterior, name: str) -> tuple[float, float]:
    lo, hi = post.metadata[f"{name}_range"]
    return float(lo), float(hi)


def _log_grid(lo: float, hi: float, n: int = 60) -> np.ndarray:
    return np.geomspace(lo, hi, n)


def _shade_outside(ax: Axes, lo: float, hi: float, label: str | None = None) -> None:
    """Grey out the parts of the x axis outside [lo, hi] (extrapolation)."""
    x0, x1 = ax.get_xlim()
    kw = dict(color="0.92", zorder=0, lw=0)
    if x0 < lo:
        ax.axvspan(x0, lo, label=label, **kw)
        label = None
    if x1 > hi:
        ax.axvspan(hi, x1, label=label, **kw)
    ax.set_xlim(x0, x1)


# --------------------------------------------------------------------------- exponents


def exponent_pairs(
    post: StepLawPosterior,
    *,
    bootstrap: BootstrapOLS | Mapping[str, BootstrapOLS] | None = None,
    paper: Mapping[str, float] | None = None,
    params: Sequence[str] = ("alpha", "beta", "gamma"),
    max_points: int = 1500,
    seed: int = 0,
    fig: Figure | None = None,
) -> Figure:
    """Pair plot of the posterior of the exponents, with marginals on the diagonal.

    Parameters
    ----------
    post : StepLawPosterior
        A fitted optimum model (e.g. :func:`bayes_steplaw.load_default`).
    bootstrap : BootstrapOLS or mapping of label to BootstrapOLS, optional
        Bootstrap-OLS ensembles to overlay (one point per resample), e.g.
        ``{"published ensemble": BootstrapOLS.from_published()}``.
    paper : mapping, optional
        Point values to mark, keyed ``alpha``, ``beta``, ``gamma`` (e.g.
        :data:`bayes_steplaw.bootstrap.PAPER_TABLE2`); drawn as a star and a vertical line.
    params : sequence of str
        Posterior variables to pair (``"delta"`` only in fits with ``batch_depends_on_N``).
    max_points : int
        Posterior draws shown in the scatter panels (thinned evenly; marginals use all).
    seed : int
        Seed of the thinning.
    fig : Figure, optional
        Figure to draw on (its existing axes are cleared).

    Returns
    -------
    matplotlib.figure.Figure
        ``len(params)`` x ``len(params)`` axes; the upper triangle is hidden and holds the legend.
    """
    plt = _plt()
    k = len(params)
    if fig is None:
        fig = plt.figure(figsize=(2.6 * k + 0.8, 2.6 * k + 0.4), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(k, k, squeeze=False)
    draws = {p: post.flat(p) for p in params}
    rng = np.random.default_rng(seed)
    n = len(draws[params[0]])
    pick = rng.choice(n, size=min(n, max_points), replace=False)
    if bootstrap is None:
        ensembles: dict[str, BootstrapOLS] = {}
    elif isinstance(bootstrap, Mapping):
        ensembles = dict(bootstrap)
    else:
        ensembles = {"bootstrap-OLS ensemble": bootstrap}
    boot_colors = [ROLE_COLORS["bootstrap"], ROLE_COLORS["refit"], OKABE_ITO["sky_blue"]]
    boot = {}
    for label, model in ensembles.items():
        coef = model.coefficients.dropna()
        boot[label] = {p: coef[_BOOT_COLUMNS[p]].to_numpy() for p in params if p in _BOOT_COLUMNS}
    blue = ROLE_COLORS["posterior"]
    for i, py in enumerate(params):
        for j, px in enumerate(params):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                values = [draws[px]] + [b[px] for b in boot.values() if px in b]
                lo = min(v.min() for v in values)
                hi = max(v.max() for v in values)
                bins = np.linspace(lo, hi, 45)
                ax.hist(draws[px], bins=bins, density=True, color=blue, alpha=0.55, lw=0)
                ax.hist(draws[px], bins=bins, density=True, histtype="step", color=blue, lw=1.2)
                for c, b in zip(boot_colors, boot.values()):
                    if px in b:
                        ax.hist(b[px], bins=bins, density=True, histtype="step", color=c, lw=1.6)
                if paper and px in paper:
                    ax.axvline(paper[px], color=ROLE_COLORS["paper"], lw=1.5, ls="--")
                ax.set_yticks([])
                ax.set_ylabel("density" if j == 0 else "")
            else:
                ax.scatter(draws[px][pick], draws[py][pick], s=3, color=blue, alpha=0.25, lw=0)
                for c, b in zip(boot_colors, boot.values()):
                    if px in b and py in b:
                        ax.scatter(b[px], b[py], s=3, color=c, alpha=0.35, lw=0)
                if paper and px in paper and py in paper:
                    ax.plot(
                        paper[px],
                        paper[py],
                        marker="*",
                        ms=14,
                        color=ROLE_COLORS["paper"],
                        mec="white",
                        mew=0.8,
                        ls="none",
                    )
                ax.set_ylabel(_SYMBOLS.get(py, py) if j == 0 else "")
            if i == k - 1:
                ax.set_xlabel(_SYMBOLS.get(px, px))
            if j > 0 and i != j:
                ax.tick_params(labelleft=False)
            if i < k - 1:
                ax.tick_params(labelbottom=False)
    for i in range(1, k):  # share x within columns, y within rows of the lower triangle
        for j in range(i):
            axes[i, j].sharex(axes[j, j])
            if j > 0:
                axes[i, j].sharey(axes[i, 0])
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=blue, alpha=0.6, label="Bayesian posterior")]
    handles += [
        Line2D([], [], color=c, marker="o", ls="-", ms=4, label=label)
        for c, label in zip(boot_colors, boot)
    ]
    if paper:
        handles.append(
            Line2D(
                [],
                [],
                color=ROLE_COLORS["paper"],
                marker="*",
                ms=12,
                ls="--",
                label="paper Table 2",
            )
        )
    legend_ax = axes[0, k - 1] if k > 1 else axes[0, 0]
    legend_ax.legend(handles=handles, loc="upper right", frameon=False, fontsize="medium")
    return fig


# --------------------------------------------------------------------------- scaling


def optimum_scaling(
    post: StepLawPosterior,
    sweeps: pd.DataFrame | None = None,
    *,
    quantity: str = "lr",
    against: str = "D",
    at: Sequence[float] | None = None,
    group: str = "dense",
    kind: str = "law",
    probs: Sequence[float] = (0.5, 0.9),
    span: tuple[float, float] | None = None,
    threshold: float | None = None,
    seed: int = 0,
    ax: Axes | None = None,
) -> Axes:
    """Optimal lr (or batch size) against D (or N), one line per value of the other variable.

    The Bayesian counterpart of the paper's Fig. 6: posterior median lines with credible bands,
    and the observed near-optimal runs of the sweep (small dots) with each setting's geometric
    mean of them (large markers) -- the quantity the law describes.

    Parameters
    ----------
    post : StepLawPosterior
        A fitted optimum model.
    sweeps : DataFrame, optional
        Sweep table (:func:`bayes_steplaw.load_sweeps`) whose near-optimal runs are drawn.
    quantity : {"lr", "batch_tokens"}
        What is plotted on the y axis.
    against : {"D", "N"}
        The x axis.
    at : sequence of float, optional
        Values of the other variable, one line each. Default: the group's distinct N values
        (``against="D"``), or four D values spanning the data (``against="N"``); a single line
        when the law does not depend on the other variable (batch without δ).
    group : str
        Group of the law (``"dense"``, ``"moe"``, ``"moe/1in8"``, ...); settings of this group
        and its sub-groups are drawn.
    kind : {"law", "run"}
        ``"law"``: the law's own uncertainty (compare with setting means); ``"run"``: plus
        setting-level scatter (where a new setting's optimum will be).
    probs : sequence of float
        Masses of the equal-tailed credible bands, widest drawn lightest.
    span : (float, float), optional
        x range; default the data's range widened by a factor 2 on both sides.
    threshold : float, optional
        Plateau filter for the observed runs; default the posterior's.
    seed : int
        Seed of the posterior-predictive draws.
    ax : Axes, optional
        Axes to draw into.

    Returns
    -------
    matplotlib.axes.Axes
        Log-log axes; a colorbar (the other variable) is added when there are several lines.
    """
    if quantity not in ("lr", "batch_tokens"):
        raise ValueError(f"quantity must be 'lr' or 'batch_tokens'; got {quantity!r}")
    if against not in ("N", "D"):
        raise ValueError(f"against must be 'N' or 'D'; got {against!r}")
    other = "N" if against == "D" else "D"
    ax = _new_axes(ax, figsize=(7.0, 5.6))
    law_group = group
    runs = None
    if sweeps is not None:
        runs = _near_optimal(sweeps, _threshold(post, threshold))
        runs = runs[_in_group(runs, group)]
    # the batch law has no N term unless the fit has delta: then one line serves every N
    depends = not (quantity == "batch_tokens" and other == "N" and "delta" not in post.posterior)
    if at is None:
        if not depends:
            at = [float(np.exp(post.metadata["log_n0"]))]
        elif runs is not None and other == "N" and runs["N"].nunique() <= 8:
            at = sorted(runs["N"].unique())
        else:
            lo, hi = (
                (runs[other].min(), runs[other].max())
                if runs is not None and len(runs)
                else _data_span(post, other)
            )
            at = np.geomspace(lo, hi, 4)
    at = np.asarray(at, dtype=float)
    if span is None:
        lo, hi = _data_span(post, against)
        if runs is not None and len(runs):
            lo, hi = runs[against].min(), runs[against].max()
        span = (lo / 2, hi * 2)
    grid = _log_grid(*span)

    from matplotlib.colors import LogNorm

    cmap = _plt().get_cmap(CMAP)
    values_for_norm = list(at) + ([] if runs is None else list(runs[other]))
    single = len(at) == 1
    norm = LogNorm(min(values_for_norm), max(values_for_norm) * (1.0001 if single else 1.0))

    def colour(v):
        return ROLE_COLORS["posterior"] if single else cmap(0.9 * norm(v))

    probs = sorted(probs, reverse=True)
    alphas = np.linspace(0.18, 0.38, len(probs))
    for value in at:
        N, D = (
            (np.full_like(grid, value), grid)
            if against == "D"
            else (grid, np.full_like(grid, value))
        )
        log_draws = _law_draws(post, N, D, quantity, law_group, kind, seed)
        med = np.exp(np.median(log_draws, axis=1))
        bands = _quantile_bands(log_draws, probs)
        c = colour(value)
        for p, a in zip(probs, alphas):
            ax.fill_between(grid, bands[p][0], bands[p][1], color=c, alpha=a, lw=0)
        ax.plot(grid, med, color=c, lw=2)
    if runs is not None and len(runs):
        point_c = (
            [ROLE_COLORS["observed"]] * len(runs) if single else [colour(v) for v in runs[other]]
        )
        ax.scatter(runs[against], runs[quantity], s=9, c=point_c, alpha=0.35, lw=0, zorder=3)
        means = runs.groupby("setting").agg(
            x=(against, "first"),
            o=(other, "first"),
            y=(quantity, lambda v: np.exp(np.log(v).mean())),
        )
        mean_c = (
            [ROLE_COLORS["observed"]] * len(means) if single else [colour(v) for v in means["o"]]
        )
        ax.scatter(means["x"], means["y"], s=55, c=mean_c, edgecolors="black", lw=0.9, zorder=4)
    ax.set_xlim(span)
    log_axis(ax, "x")
    log_axis(ax, "y", "lr" if quantity == "lr" else "count")
    ax.set_xlabel(_LABELS[against])
    ax.set_ylabel(f"optimal {_LABELS[quantity]}")
    lo, hi = _data_span(post, against)
    _shade_outside(ax, lo, hi)

    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    line_c = ROLE_COLORS["posterior"] if single else "0.35"
    what = "law" if kind == "law" else "new setting"
    handles = [Line2D([], [], color=line_c, lw=2, label=f"median law ({group})")]
    handles += [
        Patch(color=line_c, alpha=a + 0.05, lw=0, label=f"{p:.0%} band ({what})")
        for p, a in zip(probs, alphas)
    ]
    if runs is not None:
        handles += [
            Line2D(
                [],
                [],
                color="0.35",
                marker="o",
                ms=3,
                ls="none",
                alpha=0.6,
                label="near-optimal runs",
            ),
            Line2D(
                [],
                [],
                color="0.35",
                marker="o",
                ms=7,
                mec="black",
                ls="none",
                label="their setting mean",
            ),
        ]
    handles.append(Patch(color="0.92", label="extrapolation"))
    ax.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.01),
        ncols=2,
        fontsize="small",
        frameon=False,
    )
    if not single:
        from matplotlib.cm import ScalarMappable

        sm = ScalarMappable(norm=norm, cmap=_truncated(cmap))
        cb = ax.figure.colorbar(sm, ax=ax, pad=0.01)
        cb.set_label(_LABELS[other])
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        cb.ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: si(v)))
        cb.ax.yaxis.set_minor_formatter(NullFormatter())
    return ax


def _truncated(cmap, top: float = 0.9):
    from matplotlib.colors import ListedColormap

    return ListedColormap(cmap(np.linspace(0, top, 256)))


def delta_posterior(post: StepLawPosterior, *, prob: float = 0.9, ax: Axes | None = None) -> Axes:
    """Posterior of δ, the N exponent of the batch law (``B ∝ D^γ N^δ``).

    Parameters
    ----------
    post : StepLawPosterior
        A fit with ``batch_depends_on_N=True``.
    prob : float
        Mass of the equal-tailed interval shaded under the density.
    ax : Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Histogram of the draws, the interval, a line at δ = 0 (the paper's batch law) and
        P(δ > 0) in the title.
    """
    if "delta" not in post.posterior:
        raise ValueError(
            "this posterior has no delta: fit it with batch_depends_on_N=True to let the batch "
            "law depend on N"
        )
    ax = _new_axes(ax, figsize=(6.0, 3.8))
    delta = post.flat("delta")
    lo, hi = np.quantile(delta, [(1 - prob) / 2, (1 + prob) / 2])
    bins = np.linspace(min(delta.min(), -0.05), max(delta.max(), 0.05), 60)
    counts, edges, _ = ax.hist(
        delta,
        bins=bins,
        density=True,
        color=ROLE_COLORS["posterior"],
        alpha=0.35,
        lw=0,
        label="posterior of δ",
    )
    centres = 0.5 * (edges[1:] + edges[:-1])
    inside = (centres >= lo) & (centres <= hi)
    ax.bar(
        centres[inside],
        counts[inside],
        width=np.diff(edges)[inside],
        color=ROLE_COLORS["posterior"],
        alpha=0.55,
        lw=0,
        label=f"{prob:.0%} interval",
    )
    ax.axvline(
        0.0,
        color=ROLE_COLORS["paper"],
        ls="--",
        lw=1.5,
        label=r"δ = 0 (paper: $B \propto D^{\gamma}$)",
    )
    ax.axvline(np.median(delta), color=ROLE_COLORS["posterior"], lw=2, label="median")
    ax.set_xlabel(_SYMBOLS["delta"])
    ax.set_ylabel("posterior density")
    ax.set_yticks([])
    ax.set_title(
        f"δ = {np.median(delta):.2f}, {prob:.0%} interval [{lo:.2f}, {hi:.2f}], "
        f"P(δ > 0) = {(delta > 0).mean():.3f}",
        fontsize="medium",
    )
    ax.legend(loc="best", fontsize="small", frameon=False)
    return ax


# --------------------------------------------------------------------------- groups


def _offset_draws(post: StepLawPosterior, group: str, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Total log offset draws of a group (lr, batch), relative to the intercepts."""
    coef_lr, coef_bs = post.law_coefficients(group, "law", seed)
    return coef_lr[0] - post.flat("c"), coef_bs[0] - post.flat("d")


def group_offsets(
    post: StepLawPosterior,
    groups: Sequence[str] | None = None,
    *,
    include_new: bool = True,
    probs: tuple[float, float] = (0.5, 0.9),
    fig: Figure | None = None,
) -> Figure:
    """Forest plot of each group's offset of the lr law and of the batch law.

    Each row is a group's optimum at the same N and D as a multiple of the all-group law
    (``exp`` of the summed offsets along its path): a point at the posterior median, a thick
    bar for the inner and a thin bar for the outer credible interval.

    Parameters
    ----------
    post : StepLawPosterior
    groups : sequence of str, optional
        Rows, top to bottom; default every group of the fit.
    include_new : bool
        Add a row for a never-seen architecture (``"new"``): the spread of the group population.
    probs : (float, float)
        Inner and outer interval masses.
    fig : Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two axes (lr, batch) with log x axes centred on 1.
    """
    plt = _plt()
    groups = list(groups) if groups is not None else list(post.groups_seen)
    if include_new and "new" not in groups:
        groups.append("new")
    if fig is None:
        fig = plt.figure(figsize=(9.0, 0.45 * len(groups) + 1.6), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(1, 2, sharey=True)
    draws = {g: _offset_draws(post, g) for g in groups}
    families = sorted({g.split("/")[0] for g in groups if g != "new"})
    fam_color = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(families)}
    y = np.arange(len(groups))[::-1]
    for ax, k, title in zip(axes, (0, 1), ("peak learning rate", "batch size (tokens)")):
        for yi, g in zip(y, groups):
            d = draws[g][k]
            c = ROLE_COLORS["neutral"] if g == "new" else fam_color[g.split("/")[0]]
            inner = np.exp(np.quantile(d, [(1 - probs[0]) / 2, (1 + probs[0]) / 2]))
            outer = np.exp(np.quantile(d, [(1 - probs[1]) / 2, (1 + probs[1]) / 2]))
            ax.plot(outer, [yi, yi], color=c, lw=1.4, solid_capstyle="butt")
            ax.plot(inner, [yi, yi], color=c, lw=5, solid_capstyle="butt")
            ax.plot(np.exp(np.median(d)), yi, "o", color="white", mec=c, mew=2, ms=7)
        ax.axvline(1.0, color="0.4", lw=0.8, ls=":")
        ax.set_xscale("log")
        _ratio_ticks(ax)
        ax.set_xlabel(f"optimal {title}\n× the all-group law at the same N, D")
        ax.set_title(title)
        ax.grid(axis="x", color="0.9", lw=0.6)
        ax.set_axisbelow(True)
    labels = [("  " * g.count("/")) + ("new architecture" if g == "new" else g) for g in groups]
    axes[0].set_yticks(y, labels)
    axes[0].set_ylim(-0.7, len(groups) - 0.3)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="0.3", lw=5, label=f"{probs[0]:.0%} interval"),
        Line2D([], [], color="0.3", lw=1.4, label=f"{probs[1]:.0%} interval"),
        Line2D([], [], color="0.3", marker="o", mfc="white", mew=2, ls="none", label="median"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    return fig


def _ratio_ticks(ax: Axes, which: str = "x") -> None:
    """Readable multiplicative ticks (0.5, 0.7, 1, 1.2, 1.5, 2, ...) on a log axis."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    if hi / lo > 3:
        candidates = np.array([0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0])
    else:
        candidates = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0])
    ticks = candidates[(candidates >= lo) & (candidates <= hi)]
    if len(ticks) < 3:
        ticks = np.geomspace(lo, hi, 4)
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}×"))


def offset_contrast(
    post: StepLawPosterior,
    a: str = "moe",
    b: str = "dense",
    *,
    prob: float = 0.9,
    fig: Figure | None = None,
) -> Figure:
    """Posterior of the contrast of two groups' optima (``a`` over ``b``) for lr and batch.

    The same numbers as :meth:`StepLawPosterior.compare_offsets`, drawn: the ratio of group
    ``a``'s optimum to group ``b``'s at the same N and D, with its equal-tailed interval and
    P(a > b) -- the posterior mass right of 1.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes (lr, batch) with log x axes.
    """
    plt = _plt()
    if fig is None:
        fig = plt.figure(figsize=(9.0, 3.4), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(1, 2)
    table = post.compare_offsets(a, b, prob=prob, scale="ratio")
    da, db = _offset_draws(post, a), _offset_draws(post, b)
    for ax, k, row, title in zip(
        axes, (0, 1), ("lr", "batch_tokens"), ("peak learning rate", "batch size (tokens)")
    ):
        diff = da[k] - db[k]
        bins = np.linspace(diff.min(), diff.max(), 60)
        counts, edges = np.histogram(diff, bins=bins, density=True)
        centres = np.exp(0.5 * (edges[1:] + edges[:-1]))
        widths = np.exp(edges[1:]) - np.exp(edges[:-1])
        pos = centres > 1
        ax.bar(
            centres[~pos],
            counts[~pos],
            width=widths[~pos],
            color="0.75",
            lw=0,
            label=f"P({a} < {b}) = {1 - table.loc[row, 'prob_positive']:.2f}",
        )
        ax.bar(
            centres[pos],
            counts[pos],
            width=widths[pos],
            color=ROLE_COLORS["posterior"],
            alpha=0.7,
            lw=0,
            label=f"P({a} > {b}) = {table.loc[row, 'prob_positive']:.2f}",
        )
        ax.axvline(1.0, color="0.3", lw=1, ls=":")
        lo, hi = table.loc[row, ["lower", "upper"]].to_numpy(float)
        ax.plot(
            [lo, hi],
            [0, 0],
            color="black",
            lw=4,
            solid_capstyle="butt",
            clip_on=False,
            label=f"{prob:.0%} interval [{lo:.2f}×, {hi:.2f}×]",
        )
        ax.set_xscale("log")
        _ratio_ticks(ax)
        ax.set_yticks([])
        ax.set_ylim(bottom=0)
        ax.set_xlabel(f"{title}: {a} optimum / {b} optimum")
        ax.set_ylabel("posterior density")
        ax.set_title(f"{title}: median ratio {table.loc[row, 'median']:.2f}×", fontsize="medium")
        ax.legend(loc="upper left", fontsize="small", frameon=False)
        ax.set_ylim(top=counts.max() * 1.45)
    return fig


# --------------------------------------------------------------------------- checks


def _settings_table(post: StepLawPosterior, sweeps: pd.DataFrame, threshold: float):
    """Per setting of the fit: N, D, group, observed best run and near-optimal mean."""
    settings = [str(s) for s in post.posterior["u"]["setting"].values]
    rel = sweeps.assign(
        rel_loss=sweeps["loss"] / sweeps.groupby("setting")["loss"].transform("min") - 1
    )
    known = set(rel["setting"].astype(str))
    missing = [s for s in settings if s not in known]
    if missing:
        raise ValueError(
            f"{len(missing)} setting(s) of the posterior are not in the sweep table "
            f"(e.g. {missing[0]!r}); pass the table the posterior was fitted on"
        )
    rel = rel[rel["setting"].astype(str).isin(settings)]
    best = rel.loc[rel.groupby("setting")["loss"].idxmin()].set_index("setting")
    near = rel[rel["rel_loss"] < threshold]
    geo = near.groupby("setting")[["lr", "batch_tokens"]].agg(lambda v: np.exp(np.log(v).mean()))
    out = pd.DataFrame(index=pd.Index(settings, name="setting"))
    out["N"] = best["N"].reindex(settings).to_numpy(float)
    out["D"] = best["D"].reindex(settings).to_numpy(float)
    out["group"] = _group_of_settings(best.reset_index()).set_axis(best.index).reindex(settings)
    out["best_lr"] = best["lr"].reindex(settings).to_numpy(float)
    out["best_batch_tokens"] = best["batch_tokens"].reindex(settings).to_numpy(float)
    out["mean_lr"] = geo["lr"].reindex(settings).to_numpy(float)
    out["mean_batch_tokens"] = geo["batch_tokens"].reindex(settings).to_numpy(float)
    return out


def setting_optima(
    post: StepLawPosterior,
    sweeps: pd.DataFrame,
    *,
    prob: float = 0.9,
    threshold: float | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Posterior check of the optimum location, one point per fitted setting.

    For each setting the posterior of its optimum, ``c + α x + β y + offsets + u[setting]``
    (and ``d + γ y [+ δ x] + offsets + v[setting]`` for the batch), is compared with what the
    sweep observed there: the geometric mean of the near-optimal runs (what the model fits;
    filled markers) and the single best run (open markers). Points on the diagonal agree.

    Parameters
    ----------
    post : StepLawPosterior
        A fitted optimum model.
    sweeps : DataFrame
        The sweep table the posterior was fitted on (its settings must be there).
    prob : float
        Mass of the equal-tailed interval drawn as horizontal bars.
    threshold : float, optional
        Plateau filter; default the posterior's.
    fig : Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two log-log axes (lr, batch), predicted on x, observed on y, colour by group.
    """
    plt = _plt()
    table = _settings_table(post, sweeps, _threshold(post, threshold))
    if fig is None:
        fig = plt.figure(figsize=(10.0, 5.8), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(1, 2)
    n0, d0 = post.metadata["log_n0"], post.metadata["log_d0"]
    x = np.log(table["N"].to_numpy()) - n0
    y = np.log(table["D"].to_numpy()) - d0
    effects = {"lr": post.flat("u"), "batch_tokens": post.flat("v")}
    groups = list(dict.fromkeys(table["group"]))
    colours = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    q = [(1 - prob) / 2, 0.5, (1 + prob) / 2]
    for ax, quantity in zip(axes, ("lr", "batch_tokens")):
        pred = np.empty((len(table), 3))
        for g in groups:
            rows = np.flatnonzero((table["group"] == g).to_numpy())
            coef_lr, coef_bs = post.law_coefficients(_resolvable(post, g), "law", 0)
            coef = coef_lr if quantity == "lr" else coef_bs
            slope_n = coef[1]
            log_opt = (
                coef[0][:, None]
                + slope_n[:, None] * x[rows][None, :]
                + coef[2][:, None] * y[rows][None, :]
                + effects[quantity][:, rows]
            )
            pred[rows] = np.exp(np.quantile(log_opt, q, axis=0)).T
        for g in groups:
            rows = (table["group"] == g).to_numpy()
            c = colours[g]
            ax.errorbar(
                pred[rows, 1],
                table.loc[rows, f"mean_{quantity}"],
                xerr=[pred[rows, 1] - pred[rows, 0], pred[rows, 2] - pred[rows, 1]],
                fmt="o",
                color=c,
                ms=6,
                lw=1.2,
                mec="black",
                mew=0.6,
                label=g,
                zorder=3,
            )
            ax.scatter(
                pred[rows, 1],
                table.loc[rows, f"best_{quantity}"],
                s=40,
                facecolors="none",
                edgecolors=c,
                lw=1.3,
                zorder=2,
            )
        lo = min(
            np.nanmin(pred[:, 0]),
            np.nanmin(table[[f"mean_{quantity}", f"best_{quantity}"]].to_numpy()),
        )
        hi = max(
            np.nanmax(pred[:, 2]),
            np.nanmax(table[[f"mean_{quantity}", f"best_{quantity}"]].to_numpy()),
        )
        lim = (lo / 1.25, hi * 1.25)
        ax.plot(lim, lim, color="0.4", lw=1, ls="--", zorder=1)
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        q_kind = "lr" if quantity == "lr" else "count"
        log_axis(ax, "x", q_kind)
        log_axis(ax, "y", q_kind)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(
            f"posterior setting optimum, {_LABELS[quantity]}\n(median, {prob:.0%} interval)"
        )
        ax.set_ylabel(f"observed {_LABELS[quantity]}")
        ax.set_title(f"optimal {_LABELS[quantity]}", fontsize="medium")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=colours[g], marker="o", mec="black", mew=0.6, ls="none", label=g)
        for g in groups
    ]
    handles += [
        Line2D([], [], color="0.3", marker="o", ls="none", label="near-optimal mean (fitted)"),
        Line2D([], [], color="0.3", marker="o", mfc="none", ls="none", label="best single run"),
    ]
    fig.legend(
        handles=handles, loc="outside lower center", ncols=4, frameon=False, fontsize="small"
    )
    return fig


def relative_loss_check(
    landscape: Any,
    sweeps: pd.DataFrame,
    *,
    prob: float = 0.9,
    ax: Axes | None = None,
) -> Axes:
    """Observed against fitted relative loss of every run the landscape model was fitted on.

    For each run within the model's window of its setting's best, the posterior of its
    expected loss (``L*·(1 + q)``, the bowl at the run's lr and batch, with the setting's own
    optimum) is expressed, like the observation, relative to the setting's *observed* minimum
    loss. Points on the diagonal agree; the bars are the ``prob`` interval of the expected
    loss (run-to-run noise not included, so the observed points scatter about them).

    Parameters
    ----------
    landscape : LandscapePosterior
        The loss-landscape model (``load_default("landscape")``).
    sweeps : DataFrame
        The sweep table the posterior was fitted on.
    prob : float
        Mass of the equal-tailed interval drawn as error bars.
    ax : Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Linear axes in percent; one colour per group.
    """
    ax = _new_axes(ax, figsize=(6.0, 5.6))
    pred = landscape.run_predictions(sweeps)
    runs = pred["design"].runs
    best = runs.groupby("setting")["loss"].transform("min").to_numpy(float)
    draws = (pred["mu"] / best - 1.0) * 100.0  # (samples, runs), percent
    lo, med, hi = np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
    observed = (runs["loss"].to_numpy(float) / best - 1.0) * 100.0
    groups = _group_of_settings(runs)
    names = list(dict.fromkeys(groups))
    colours = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(names)}
    for g in names:
        rows = (groups == g).to_numpy()
        ax.errorbar(
            med[rows],
            observed[rows],
            xerr=[med[rows] - lo[rows], hi[rows] - med[rows]],
            fmt="o",
            ms=2.5,
            lw=0.4,
            alpha=0.5,
            color=colours[g],
            label=f"{g} ({rows.sum()} runs)",
        )
    top = max(np.nanmax(observed), np.nanmax(hi)) * 1.05
    bottom = min(0.0, np.nanmin(lo))
    ax.plot([bottom, top], [bottom, top], color="0.3", ls="--", lw=1, label="observed = fitted")
    ax.set_xlim(bottom, top)
    ax.set_ylim(bottom, top)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"fitted expected relative loss (%)\n(posterior median, {prob:.0%} interval)")
    ax.set_ylabel("observed relative loss (%)\nloss / setting's best − 1")
    ax.legend(loc="upper left", fontsize="small", frameon=False, markerscale=2)
    return ax


# --------------------------------------------------------------------------- bootstrap vs posterior


def interval_comparison(
    post: StepLawPosterior,
    bootstrap: BootstrapOLS | Mapping[str, BootstrapOLS],
    N: Sequence[float] | np.ndarray,
    D: Sequence[float] | np.ndarray,
    *,
    group: str = "dense",
    prob: float = 0.9,
    seed: int = 0,
    fig: Figure | None = None,
) -> Figure:
    """Bootstrap-OLS intervals next to Bayesian intervals along a path of (N, D).

    Top row: the optimal lr and batch size along the path, each method's ``prob`` interval as a
    band. Bottom row: the width of each interval as a factor (upper / lower): a bootstrap band
    narrower than the posterior's ``"law"`` band is overconfident about the law; the
    posterior's ``"run"`` band is what a new run's optimum will see.

    Parameters
    ----------
    post : StepLawPosterior
    bootstrap : BootstrapOLS or mapping of label to BootstrapOLS
        e.g. ``{"published ensemble": BootstrapOLS.from_published(),
        "refit on released dense": BootstrapOLS.fit(load_sweeps("dense"))}``.
    N, D : array-like
        The path, broadcast together; the x axis is N.
    group : str
        Group of the posterior prediction.
    prob : float
        Interval mass of every method.
    seed : int
    fig : Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        2 x 2 axes, log scales; the fitted data's range is left white, extrapolation grey.
    """
    plt = _plt()
    N, D = np.broadcast_arrays(np.asarray(N, dtype=float), np.asarray(D, dtype=float))
    N, D = N.ravel(), D.ravel()
    order = np.argsort(N)
    N, D = N[order], D[order]
    ensembles = dict(bootstrap) if isinstance(bootstrap, Mapping) else {"bootstrap-OLS": bootstrap}
    if fig is None:
        fig = plt.figure(figsize=(10.5, 7.2), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(2, 2, sharex=True)
    methods: dict[str, dict[str, np.ndarray]] = {}
    for kind, label in (("law", "posterior: the law"), ("centre", "posterior: a new setting")):
        pred = post.predict(N, D, group=group, kind=kind, seed=seed, allow_unconverged=True)
        iv = pred.interval(prob, method="eti")
        med = pred.median()
        methods[label] = {
            q: np.column_stack([iv[f"{q}_lower"], med[q], iv[f"{q}_upper"]])
            for q in ("lr", "batch_tokens")
        }
    for label, model in ensembles.items():
        table = model.predict(N, D, prob=prob)
        methods[label] = {
            q: table[[f"{q}_lower", q, f"{q}_upper"]].to_numpy(float)
            for q in ("lr", "batch_tokens")
        }
    colours = [
        ROLE_COLORS["posterior"],
        ROLE_COLORS["posterior_run"],
        ROLE_COLORS["bootstrap"],
        ROLE_COLORS["refit"],
        OKABE_ITO["bluish_green"],
    ]
    styles = ["-", "-", "--", "-.", ":"]
    for col, quantity in enumerate(("lr", "batch_tokens")):
        top, bottom = axes[0, col], axes[1, col]
        for (label, values), c, ls in zip(methods.items(), colours, styles):
            v = values[quantity]
            if label.startswith("posterior"):
                top.fill_between(
                    N, v[:, 0], v[:, 2], color=c, alpha=0.25 if "law" in label else 0.15, lw=0
                )
            else:
                top.plot(N, v[:, 0], color=c, ls=ls, lw=1.2)
                top.plot(N, v[:, 2], color=c, ls=ls, lw=1.2)
            top.plot(N, v[:, 1], color=c, ls=ls, lw=1.8, label=label)
            bottom.plot(N, v[:, 2] / v[:, 0], color=c, ls=ls, lw=2, label=label)
        log_axis(top, "y", "lr" if quantity == "lr" else "count")
        top.set_ylabel(f"optimal {_LABELS[quantity]}")
        top.set_title(f"optimal {_LABELS[quantity]}, {prob:.0%} intervals", fontsize="medium")
        bottom.set_yscale("log")
        bottom.set_ylabel(f"{prob:.0%} interval width\n(upper / lower, ×)")
        bottom.set_xlabel(_LABELS["N"] + "\n" + _path_label(N, D))
        _ratio_ticks(bottom, "y")
        for ax in (top, bottom):
            ax.set_xlim(N.min(), N.max())
            log_axis(ax, "x")
            _shade_extrapolation(ax, post, N, D)
            ax.grid(color="0.9", lw=0.6)
            ax.set_axisbelow(True)
    fig.legend(
        *axes[1, 0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=len(methods),
        frameon=False,
    )
    return fig


def _path_label(N: np.ndarray, D: np.ndarray) -> str:
    ratio = D / N
    if np.allclose(ratio, ratio[0], rtol=1e-6):
        return f"along D = {ratio[0]:.3g} N tokens"
    if np.allclose(D, D[0], rtol=1e-6):
        return f"at D = {si(D[0])} tokens"
    return "along the given (N, D) path"


def _shade_extrapolation(ax: Axes, post: StepLawPosterior, N: np.ndarray, D: np.ndarray) -> None:
    n_lo, n_hi = _data_span(post, "N")
    d_lo, d_hi = _data_span(post, "D")
    inside = (N >= n_lo) & (N <= n_hi) & (D >= d_lo) & (D <= d_hi)
    if inside.all():
        return
    if not inside.any():
        ax.axvspan(N.min(), N.max(), color="0.93", zorder=0, lw=0)
        return
    lo, hi = N[inside].min(), N[inside].max()
    _shade_outside(ax, lo, hi)


# --------------------------------------------------------------------------- landscape


def _grid_edges(values: np.ndarray) -> np.ndarray:
    """Cell edges (geometric midpoints) around sorted positive grid values."""
    v = np.log(np.asarray(values, dtype=float))
    if len(v) == 1:
        return np.exp(np.array([v[0] - 0.2, v[0] + 0.2]))
    mid = 0.5 * (v[1:] + v[:-1])
    return np.exp(np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]]))


def landscape_map(
    sweeps: pd.DataFrame,
    setting: str,
    *,
    landscape: Any = None,
    bootstrap: BootstrapOLS | None = None,
    optimum: StepLawPosterior | None = None,
    tol: float = 0.0025,
    levels: Sequence[float] = (0.5, 0.9),
    vmax: float = 0.02,
    grid_size: int = 60,
    ax: Axes | None = None,
) -> Axes:
    """Loss landscape of one setting: observed relative loss on the (lr, batch) grid.

    The counterpart of the paper's Figs. 1 and 2. Cells are the sweep's runs coloured by
    relative loss (``loss / setting minimum - 1``, capped at ``vmax``); the observed minimum
    is a white star. Optional overlays: contours of the landscape model's plateau probability
    P(relative loss < ``tol``) at ``levels`` and its recommendation (green diamond); the
    paper's point prediction (``bootstrap``, vermillion cross); the optimum model's posterior
    median (``optimum``, blue plus).

    Parameters
    ----------
    sweeps : DataFrame
        Sweep table holding the setting's runs.
    setting : str
        A setting id (the ``setting`` column), e.g. ``"dense N=1.074e+09 D=2e+10"``.
    landscape : LandscapePosterior, optional
        Adds plateau-probability contours and the recommendation.
    bootstrap : BootstrapOLS, optional
        Adds the paper's prediction (mean-coefficient law).
    optimum : StepLawPosterior, optional
        Adds the optimum model's posterior median for the setting's group.
    tol : float
        Relative-loss tolerance of the plateau.
    levels : sequence of float
        Plateau-probability contour levels.
    vmax : float
        Relative loss at which the colour scale saturates.
    grid_size : int
        Resolution of the plateau-probability contours per axis.
    ax : Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Log lr on x, log batch tokens on y, colorbar in percent relative loss.
    """
    from .datasets.sweeps import relative_loss

    ax = _new_axes(ax, figsize=(6.4, 4.8))
    runs = sweeps[sweeps["setting"] == setting]
    if runs.empty:
        raise ValueError(f"no runs of setting {setting!r} in the sweep table")
    runs = runs.assign(rel_loss=relative_loss(runs).to_numpy())
    lrs = np.sort(runs["lr"].unique())
    bss = np.sort(runs["batch_tokens"].unique())
    table = runs.pivot_table(index="batch_tokens", columns="lr", values="rel_loss", aggfunc="min")
    table = table.reindex(index=bss, columns=lrs)
    grid = np.ma.masked_invalid(table.to_numpy(float) * 100)
    mesh = ax.pcolormesh(
        _grid_edges(lrs),
        _grid_edges(bss),
        grid,
        cmap=CMAP,
        vmin=0,
        vmax=vmax * 100,
        shading="flat",
        edgecolors="white",
        linewidth=0.3,
    )
    cb = ax.figure.colorbar(mesh, ax=ax, pad=0.01, extend="max")
    cb.set_label("observed relative loss (%)")
    best = runs.loc[runs["loss"].idxmin()]
    handles = []
    from matplotlib.lines import Line2D

    ax.plot(
        best["lr"],
        best["batch_tokens"],
        marker="*",
        ms=17,
        color="white",
        mec="black",
        mew=1.0,
        ls="none",
        zorder=5,
    )
    handles.append(
        Line2D(
            [],
            [],
            marker="*",
            ms=12,
            color="white",
            mec="black",
            ls="none",
            label="observed minimum",
        )
    )
    N, D = float(runs["N"].iloc[0]), float(runs["D"].iloc[0])
    group = _group_of_settings(runs).iloc[0]
    if landscape is not None:
        lg = _resolvable(landscape, group) if hasattr(landscape, "hierarchy") else group
        glr = np.geomspace(lrs[0] / 1.2, lrs[-1] * 1.2, grid_size)
        gbs = np.geomspace(bss[0] / 1.2, bss[-1] * 1.2, grid_size)
        LR, BS = np.meshgrid(glr, gbs)
        prob = np.asarray(
            landscape.plateau_probability(N, D, LR, BS, tol=tol, group=lg, allow_unconverged=True),
            dtype=float,
        ).reshape(LR.shape)
        shown = [v for v in sorted(levels) if prob.min() < v < prob.max()]
        styles = {
            v: ("--", 1.4) if i < len(levels) - 1 else ("-", 2.4)
            for i, v in enumerate(sorted(levels))
        }
        if shown:
            cs = ax.contour(
                LR,
                BS,
                prob,
                levels=shown,
                colors=[OKABE_ITO["orange"]],
                linestyles=[styles[v][0] for v in shown],
                linewidths=[styles[v][1] for v in shown],
            )
            ax.clabel(cs, fmt=lambda v: f"P={v:.2g}", fontsize="x-small")
        for v in sorted(levels):
            handles.append(
                Line2D(
                    [],
                    [],
                    color=OKABE_ITO["orange"],
                    ls=styles[v][0],
                    lw=styles[v][1],
                    label=f"P(rel. loss < {tol:.2%}) = {v:.2g}",
                )
            )
        handles.append(
            _mark_recommendation(ax, landscape, N, D, lg, tol, "landscape recommendation")
        )
    if bootstrap is not None:
        row = bootstrap.predict(N, D).iloc[0]
        handles.append(
            _mark_point(ax, row["lr"], row["batch_tokens"], "X", "paper", "paper's Step Law")
        )
    if optimum is not None:
        med = (
            optimum.predict(
                N, D, group=_resolvable(optimum, group), kind="law", allow_unconverged=True
            )
            .median()
            .iloc[0]
        )
        handles.append(
            _mark_point(
                ax, med["lr"], med["batch_tokens"], "P", "posterior", "Bayesian law (median)"
            )
        )
    ax.set_xlim(_grid_edges(lrs)[[0, -1]])
    ax.set_ylim(_grid_edges(bss)[[0, -1]])
    log_axis(ax, "x", "lr")
    log_axis(ax, "y")
    ax.set_xlabel(_LABELS["lr"])
    ax.set_ylabel(_LABELS["batch_tokens"])
    ax.legend(
        handles=handles,
        title=f"{group}: N = {si(N)}, D = {si(D)} tokens",
        loc="lower center",
        bbox_to_anchor=(0.5, 1.01),
        ncols=2,
        fontsize="x-small",
        title_fontsize="small",
        frameon=False,
    )
    return ax


def _mark_point(ax, x, y, marker, role, label, ms=11):
    """Plot one filled, white-edged marker in a role's colour; return its legend handle."""
    from matplotlib.lines import Line2D

    style = dict(marker=marker, color=ROLE_COLORS[role], mec="white", ls="none")
    ax.plot(x, y, ms=ms, mew=1.0, zorder=6, **style)
    return Line2D([], [], ms=9, label=label, **style)


def _mark_recommendation(ax, landscape, N, D, group, tol, label):
    """Plot the landscape's (lr, batch) recommendation as an open diamond; return its handle."""
    from matplotlib.lines import Line2D

    rec = _recommendation(landscape.recommend(N, D, group=group, tol=tol, allow_unconverged=True))
    style = dict(marker="D", mfc="none", mec=ROLE_COLORS["recommend"], ls="none")
    ax.plot(*rec, ms=15, mew=2.4, zorder=7, **style)
    return Line2D([], [], ms=9, mew=2, label=label, **style)


def _recommendation(rec: Any) -> tuple[float, float]:
    """(lr, batch_tokens) of whatever ``recommend`` returns (mapping, row, frame or tuple)."""
    if isinstance(rec, pd.DataFrame):
        rec = rec.iloc[0]
    if isinstance(rec, (Mapping, pd.Series)):
        return float(rec["lr"]), float(rec["batch_tokens"])
    if hasattr(rec, "lr") and hasattr(rec, "batch_tokens"):
        return float(np.ravel(rec.lr)[0]), float(np.ravel(rec.batch_tokens)[0])
    lr, bs = rec[:2]
    return float(lr), float(bs)


# --------------------------------------------------------------------------- planning


def plan(
    post: StepLawPosterior,
    N: float,
    D: float,
    *,
    group: str = "dense",
    seq_len: int = 2048,
    prob: float = 0.9,
    bootstrap: BootstrapOLS | None = None,
    landscape: Any = None,
    batch_tokens: float | None = None,
    tol: float = 0.0025,
    plateau_prob: float = 0.5,
    seed: int = 0,
    fig: Figure | None = None,
) -> Figure:
    """A run plan: where the optimal lr and batch size of a new run at (N, D) will be.

    Panels: the posterior-predictive distribution of the optimal lr and of the optimal batch
    size (``kind="centre"``: the optimum of a new setting), with the median, the ``prob``
    interval and the paper's point prediction; with ``landscape``, a third panel with the plateau region
    (settings whose probability of lying within ``tol`` of the optimum loss is at least
    ``plateau_prob``), the recommendation, and the best lr at a fixed ``batch_tokens``.

    Parameters
    ----------
    post : StepLawPosterior
        A fitted optimum model.
    N, D : float
        Non-embedding parameters and training tokens of the planned run.
    group : str
    seq_len : int
        Sequence length, to state the batch in sequences.
    prob : float
    bootstrap : BootstrapOLS, optional
        Marks the paper's prediction.
    landscape : LandscapePosterior, optional
        Adds the plateau-region panel.
    batch_tokens : float, optional
        A batch size fixed by the hardware; with ``landscape``, marks the recommended lr there.
    tol, plateau_prob : float
        Plateau definition and probability level of the region.
    seed : int
    fig : Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two axes (three with ``landscape``).
    """
    plt = _plt()
    n_panels = 3 if landscape is not None else 2
    if fig is None:
        fig = plt.figure(figsize=(4.4 * n_panels + 0.6, 4.2), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(1, n_panels)
    pred = post.predict(N, D, group=group, seq_len=seq_len, kind="centre", seed=seed)
    draws = pred.draws
    med = pred.median().iloc[0]
    iv = pred.interval(prob).iloc[0]
    paper = bootstrap.predict(N, D, seq_len=seq_len, prob=prob).iloc[0] if bootstrap else None
    for ax, quantity in zip(axes[:2], ("lr", "batch_tokens")):
        values = draws[quantity].values.ravel()
        bins = np.geomspace(values.min(), values.max(), 60)
        counts, edges = np.histogram(values, bins=bins, density=False)
        centres = np.sqrt(edges[1:] * edges[:-1])
        inside = (centres >= iv[f"{quantity}_lower"]) & (centres <= iv[f"{quantity}_upper"])
        w = np.diff(edges)
        ax.bar(
            centres[~inside],
            counts[~inside],
            width=w[~inside],
            color=ROLE_COLORS["posterior"],
            alpha=0.25,
            lw=0,
        )
        ax.bar(
            centres[inside],
            counts[inside],
            width=w[inside],
            color=ROLE_COLORS["posterior"],
            alpha=0.6,
            lw=0,
            label=f"{prob:.0%} interval [{_fmt(iv[f'{quantity}_lower'], quantity)}, "
            f"{_fmt(iv[f'{quantity}_upper'], quantity)}]",
        )
        ax.axvline(
            med[quantity],
            color=ROLE_COLORS["posterior"],
            lw=2,
            label=f"median {_fmt(med[quantity], quantity)}",
        )
        if paper is not None:
            ax.axvline(
                paper[quantity],
                color=ROLE_COLORS["paper"],
                lw=2,
                ls="--",
                label=f"paper's Step Law {_fmt(paper[quantity], quantity)}",
            )
        log_axis(ax, "x", "lr" if quantity == "lr" else "count")
        ax.set_yticks([])
        ax.set_ylim(top=counts.max() * 1.5)
        ax.set_xlabel(f"optimal {_LABELS[quantity]}")
        ax.set_ylabel("posterior-predictive draws")
        ax.legend(loc="upper left", fontsize="x-small", frameon=False)
    axes[0].set_title(f"{group}, N = {si(N)}, D = {si(D)} tokens: peak lr", fontsize="medium")
    axes[1].set_title(
        f"batch: median {med['batch_sequences']:.0f} sequences of {seq_len} tokens",
        fontsize="medium",
    )
    if landscape is not None:
        _plateau_panel(axes[2], landscape, N, D, group, tol, plateau_prob, batch_tokens, med, paper)
    return fig


def _fmt(value: float, quantity: str) -> str:
    return f"{value:.2e}" if quantity == "lr" else si(value)


def _plateau_panel(ax, landscape, N, D, group, tol, plateau_prob, batch_tokens, med, paper):
    from matplotlib.lines import Line2D

    lg = _resolvable(landscape, group) if hasattr(landscape, "hierarchy") else group
    region = landscape.plateau_region(
        N, D, tol=tol, min_prob=plateau_prob, group=lg, n_grid=81, allow_unconverged=True
    )
    glr, gbs, prob = region.lr, region.batch_tokens, region.probability
    mesh = ax.pcolormesh(glr, gbs, prob, cmap=CMAP, vmin=0, vmax=1, shading="nearest")
    cb = ax.figure.colorbar(mesh, ax=ax, pad=0.01)
    cb.set_label(f"P(relative loss < {tol:.2%})")
    if not region.empty:
        ax.contour(
            glr, gbs, prob, levels=[plateau_prob], colors=[OKABE_ITO["orange"]], linewidths=2
        )
    handles = [
        Line2D(
            [],
            [],
            color=OKABE_ITO["orange"],
            lw=2,
            label=f"plateau region (P ≥ {plateau_prob:.2g})",
        )
    ]
    handles.append(_mark_recommendation(ax, landscape, N, D, lg, tol, "recommendation"))
    if batch_tokens is not None:
        fixed = _recommendation(
            landscape.recommend(
                N, D, batch_tokens=batch_tokens, group=lg, tol=tol, allow_unconverged=True
            )
        )
        ax.axhline(batch_tokens, color="white", lw=1, ls=":")
        ax.plot(*fixed, marker="s", ms=8, color=OKABE_ITO["sky_blue"], mec="black", ls="none")
        handles.append(
            Line2D(
                [],
                [],
                marker="s",
                color=OKABE_ITO["sky_blue"],
                mec="black",
                ls="none",
                label=f"best lr at batch {si(batch_tokens)} tokens",
            )
        )
    if paper is not None:
        handles.append(
            _mark_point(
                ax, paper["lr"], paper["batch_tokens"], "X", "paper", "paper's Step Law", ms=10
            )
        )
    log_axis(ax, "x", "lr")
    log_axis(ax, "y")
    ax.set_xlabel(_LABELS["lr"])
    ax.set_ylabel(_LABELS["batch_tokens"])
    ax.legend(
        handles=handles,
        title="plateau region (landscape model)",
        loc="lower center",
        bbox_to_anchor=(0.5, 1.01),
        ncols=2,
        fontsize="x-small",
        title_fontsize="small",
        frameon=False,
    )
