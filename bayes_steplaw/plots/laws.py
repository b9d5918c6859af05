"""Figures of the law itself: its exponents, its optima across scale, its intervals.

:func:`exponent_pairs` (the exponents' joint posterior beside the bootstrap ensembles),
:func:`optimum_scaling` (the paper's Fig. 6, with credible bands), :func:`delta_posterior` (does
the batch law depend on N) and :func:`interval_comparison` (bootstrap against Bayesian intervals
along a path of (N, D)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import _data
from .style import (
    CMAP,
    EXTRAPOLATION_GREY,
    LABELS,
    OKABE_ITO,
    ROLE_COLORS,
    SYMBOLS,
    count_or_lr,
    handle,
    interval_histogram,
    kind_label,
    legend_above,
    log_axis,
    log_colorbar,
    new_axes,
    new_figure,
    plt,
    ratio_ticks,
    shade_outside,
    si,
    tails,
    truncated,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..bayes.law import StepLawPosterior
    from ..bootstrap import BootstrapOLS

_BOOT_COLUMNS = {"alpha": "lr_coefN", "beta": "lr_coefD", "gamma": "bs_coefD"}


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
        A fitted optimum or loss posterior (e.g. :func:`bayes_steplaw.load_default`).
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
    k = len(params)
    fig = new_figure(fig, (2.6 * k + 0.8, 2.6 * k + 0.4))
    axes = fig.subplots(k, k, squeeze=False)
    draws = {p: post.flat(p) for p in params}
    n = len(draws[params[0]])
    pick = np.random.default_rng(seed).choice(n, size=min(n, max_points), replace=False)
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
    star = dict(marker="*", color=ROLE_COLORS["paper"])
    for i, py in enumerate(params):
        for j, px in enumerate(params):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                values = [draws[px]] + [b[px] for b in boot.values() if px in b]
                bins = np.linspace(min(v.min() for v in values), max(v.max() for v in values), 45)
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
                    ax.plot(paper[px], paper[py], ms=14, mec="white", mew=0.8, ls="none", **star)
                ax.set_ylabel(SYMBOLS.get(py, py) if j == 0 else "")
            if i == k - 1:
                ax.set_xlabel(SYMBOLS.get(px, px))
            if j > 0 and i != j:
                ax.tick_params(labelleft=False)
            if i < k - 1:
                ax.tick_params(labelbottom=False)
    for i in range(1, k):  # share x within columns, y within rows of the lower triangle
        for j in range(i):
            axes[i, j].sharex(axes[j, j])
            if j > 0:
                axes[i, j].sharey(axes[i, 0])
    from matplotlib.patches import Patch

    handles = [Patch(color=blue, alpha=0.6, label="Bayesian posterior")]
    handles += [
        handle(label, color=c, marker="o", ls="-", ms=4) for c, label in zip(boot_colors, boot)
    ]
    if paper:
        handles.append(handle("paper Table 2", ms=12, ls="--", **star))
    legend_ax = axes[0, k - 1] if k > 1 else axes[0, 0]
    legend_ax.legend(handles=handles, loc="upper right", frameon=False, fontsize="medium")
    return fig


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
    if "delta" not in post.variables:
        raise ValueError(
            "this posterior has no delta: fit it with batch_depends_on_N=True to let the batch "
            "law depend on N"
        )
    ax = new_axes(ax, figsize=(6.0, 3.8))
    delta = post.flat("delta")
    lo, hi = np.quantile(delta, tails(prob))
    bins = np.linspace(min(delta.min(), -0.05), max(delta.max(), 0.05), 60)
    interval_histogram(
        ax, delta, bins, lo, hi, label=f"{prob:.0%} interval", outside_label="posterior of δ"
    )
    ax.axvline(
        0.0,
        color=ROLE_COLORS["paper"],
        ls="--",
        lw=1.5,
        label=r"δ = 0 (paper: $B \propto D^{\gamma}$)",
    )
    ax.axvline(np.median(delta), color=ROLE_COLORS["posterior"], lw=2, label="median")
    ax.set_xlabel(SYMBOLS["delta"])
    ax.set_ylabel("posterior density")
    ax.set_yticks([])
    ax.set_title(
        f"δ = {np.median(delta):.2f}, {prob:.0%} interval [{lo:.2f}, {hi:.2f}], "
        f"P(δ > 0) = {(delta > 0).mean():.3f}",
        fontsize="medium",
    )
    ax.legend(loc="best", fontsize="small", frameon=False)
    return ax


# --------------------------------------------------------------------------- scaling


def _lines_at(post, runs, other: str, depends: bool) -> np.ndarray:
    """Default values of the other variable, one line each."""
    if not depends:
        return np.array([np.exp(post.metadata["log_n0"])])
    if runs is not None and other == "N" and runs["N"].nunique() <= 8:
        return np.sort(runs["N"].unique()).astype(float)
    if runs is not None and len(runs):
        return np.geomspace(runs[other].min(), runs[other].max(), 4)
    return np.geomspace(*_data.data_span(post, other), 4)


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
        A fitted optimum or loss posterior.
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
    kind : str
        What the bands are about, any kind :meth:`StepLawPosterior.predict` takes:
        ``"law"`` (default) the law's own uncertainty (compare with setting means),
        ``"optimum"`` plus setting-level scatter (where a new setting's optimum will be),
        ``"sweep"`` the best run a grid sweep of a new setting will find. The legend names
        it (:data:`bayes_steplaw.bayes.law.KIND_NAMES`).
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
    ax = new_axes(ax, figsize=(7.0, 5.6))
    runs = None
    if sweeps is not None:
        runs = _data.near_optimal(sweeps, _data.threshold(post, threshold))
        runs = runs[_data.in_group(runs, group)]
    # the batch law has no N term unless the fit has delta: then one line serves every N
    depends = not (quantity == "batch_tokens" and other == "N" and "delta" not in post.variables)
    at = _lines_at(post, runs, other, depends) if at is None else np.asarray(at, float)
    data_lo, data_hi = _data.data_span(post, against)
    if span is None:
        lo, hi = data_lo, data_hi
        if runs is not None and len(runs):
            lo, hi = runs[against].min(), runs[against].max()
        span = (lo / 2, hi * 2)
    grid = np.geomspace(*span, 60)

    from matplotlib.colors import LogNorm

    cmap = plt().get_cmap(CMAP)
    values_for_norm = list(at) + ([] if runs is None else list(runs[other]))
    single = len(at) == 1
    norm = LogNorm(min(values_for_norm), max(values_for_norm) * (1.0001 if single else 1.0))

    def colour(v):
        return ROLE_COLORS["posterior"] if single else cmap(0.9 * norm(v))

    probs = sorted(probs, reverse=True)
    alphas = np.linspace(0.18, 0.38, len(probs))
    for value in at:
        full = np.full_like(grid, value)
        N, D = (full, grid) if against == "D" else (grid, full)
        pred = post.predict(N, D, group=group, kind=kind, seed=seed, allow_unconverged=True)
        kind = pred.kind  # the canonical name, for the legend
        c = colour(value)
        for p, a in zip(probs, alphas):
            band = pred.interval(p, method="eti")[quantity]
            lower, upper = band.sel(bound="lower").values, band.sel(bound="upper").values
            ax.fill_between(grid, lower, upper, color=c, alpha=a, lw=0)
        ax.plot(grid, pred.median()[quantity].values, color=c, lw=2)
    if runs is not None and len(runs):
        point_c = (
            [ROLE_COLORS["observed"]] * len(runs) if single else [colour(v) for v in runs[other]]
        )
        ax.scatter(runs[against], runs[quantity], s=9, c=point_c, alpha=0.35, lw=0, zorder=3)
        means = runs.groupby("setting").agg(
            x=(against, "first"), o=(other, "first"), y=(quantity, _data.geometric_mean)
        )
        mean_c = (
            [ROLE_COLORS["observed"]] * len(means) if single else [colour(v) for v in means["o"]]
        )
        ax.scatter(means["x"], means["y"], s=55, c=mean_c, edgecolors="black", lw=0.9, zorder=4)
    ax.set_xlim(span)
    log_axis(ax, "x")
    log_axis(ax, "y", count_or_lr(quantity))
    ax.set_xlabel(LABELS[against])
    ax.set_ylabel(f"optimal {LABELS[quantity]}")
    shade_outside(ax, data_lo, data_hi)

    from matplotlib.patches import Patch

    line_c = ROLE_COLORS["posterior"] if single else "0.35"
    handles = [handle(f"posterior median ({group})", color=line_c, lw=2)]
    handles += [
        Patch(color=line_c, alpha=a + 0.05, lw=0, label=f"{p:.0%} interval")
        for p, a in zip(probs, alphas)
    ]
    if runs is not None:
        dots = dict(color="0.35", marker="o", ls="none")
        handles += [
            handle("near-optimal runs", ms=3, alpha=0.6, **dots),
            handle("their setting mean", ms=7, mec="black", **dots),
        ]
    handles.append(Patch(color=EXTRAPOLATION_GREY, label="extrapolation"))
    legend_above(
        ax,
        handles,
        title=f"optimal {LABELS[quantity]}: intervals of {kind_label(kind)}",
        fontsize="small",
        title_fontsize=None,
    )
    if not single:
        log_colorbar(ax, truncated(cmap), norm, LABELS[other])
    return ax


# --------------------------------------------------------------------------- intervals


def interval_comparison(
    post: StepLawPosterior,
    bootstrap: BootstrapOLS | Mapping[str, BootstrapOLS],
    N: Sequence[float] | np.ndarray,
    D: Sequence[float] | np.ndarray,
    *,
    group: str = "dense",
    kinds: Sequence[str] = ("law", "optimum"),
    prob: float = 0.9,
    seed: int = 0,
    fig: Figure | None = None,
) -> Figure:
    """Bootstrap-OLS intervals next to Bayesian intervals along a path of (N, D).

    Top row: the optimal lr and batch size along the path, each method's ``prob`` interval as a
    band. Bottom row: the width of each interval as a factor (upper / lower): a bootstrap band
    narrower than the posterior's ``"law"`` band is overconfident about the law; the
    posterior's ``"optimum"`` band is where a new setting's optimum will be.

    Parameters
    ----------
    post : StepLawPosterior
        A fitted optimum or loss posterior.
    bootstrap : BootstrapOLS or mapping of label to BootstrapOLS
        e.g. ``{"published ensemble": BootstrapOLS.from_published(),
        "refit on released dense": BootstrapOLS.fit(load_sweeps("dense"))}``.
    N, D : array-like
        The path, broadcast together; the x axis is N.
    group : str
        Group of the posterior prediction.
    kinds : sequence of str
        The posterior intervals drawn, any kinds :meth:`StepLawPosterior.predict` takes; the
        legend names what each is about.
    prob : float
        Interval mass of every method (equal-tailed).
    seed : int
    fig : Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        2 x 2 axes, log scales; the fitted data's range is left white, extrapolation grey.
    """
    N, D = np.broadcast_arrays(np.asarray(N, dtype=float), np.asarray(D, dtype=float))
    order = np.argsort(N.ravel())
    N, D = N.ravel()[order], D.ravel()[order]
    ensembles = dict(bootstrap) if isinstance(bootstrap, Mapping) else {"bootstrap-OLS": bootstrap}
    fig = new_figure(fig, (10.5, 7.2))
    axes = fig.subplots(2, 2, sharex=True)
    quantities = ("lr", "batch_tokens")
    # label -> (quantity -> (points, 3) lower/median/upper, band alpha or None for lines)
    methods: dict[str, tuple[dict[str, np.ndarray], float | None]] = {}
    for i, kind in enumerate(kinds):
        pred = post.predict(N, D, group=group, kind=kind, seed=seed, allow_unconverged=True)
        frame = pred.to_dataframe(prob, method="eti")
        values = {
            q: frame[[f"{q}_lower", f"{q}_median", f"{q}_upper"]].to_numpy(float)
            for q in quantities
        }
        methods[f"posterior: {kind_label(pred.kind)}"] = (values, 0.25 if i == 0 else 0.15)
    for label, model in ensembles.items():
        table = model.predict(N, D, prob=prob)
        values = {q: table[[f"{q}_lower", q, f"{q}_upper"]].to_numpy(float) for q in quantities}
        methods[label] = (values, None)
    n_post = len(kinds)
    post_colours = [ROLE_COLORS["posterior"], ROLE_COLORS["posterior_run"], OKABE_ITO["yellow"]]
    boot_colours = [ROLE_COLORS["bootstrap"], ROLE_COLORS["refit"], OKABE_ITO["bluish_green"]]
    colours = post_colours[:n_post] + boot_colours
    styles = ["-"] * n_post + ["--", "-.", ":"]
    inside = _data.inside_data(post, N, D)
    for col, quantity in enumerate(quantities):
        top, bottom = axes[0, col], axes[1, col]
        for (label, (values, alpha)), c, ls in zip(methods.items(), colours, styles):
            v = values[quantity]
            if alpha is not None:
                top.fill_between(N, v[:, 0], v[:, 2], color=c, alpha=alpha, lw=0)
            else:
                top.plot(N, v[:, 0], color=c, ls=ls, lw=1.2)
                top.plot(N, v[:, 2], color=c, ls=ls, lw=1.2)
            top.plot(N, v[:, 1], color=c, ls=ls, lw=1.8, label=label)
            bottom.plot(N, v[:, 2] / v[:, 0], color=c, ls=ls, lw=2, label=label)
        log_axis(top, "y", count_or_lr(quantity))
        top.set_ylabel(f"optimal {LABELS[quantity]}")
        top.set_title(f"optimal {LABELS[quantity]}, {prob:.0%} intervals", fontsize="medium")
        bottom.set_yscale("log")
        bottom.set_ylabel(f"{prob:.0%} interval width\n(upper / lower, ×)")
        bottom.set_xlabel(LABELS["N"] + "\n" + _path_label(N, D))
        ratio_ticks(bottom, "y")
        for ax in (top, bottom):
            ax.set_xlim(N.min(), N.max())
            log_axis(ax, "x")
            _shade_extrapolation(ax, N, inside)
            ax.grid(color="0.9", lw=0.6)
            ax.set_axisbelow(True)
    fig.legend(
        *axes[1, 0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=len(methods) if len(methods) <= 3 else 2,  # columns: posterior | bootstrap
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


def _shade_extrapolation(ax: Axes, N: np.ndarray, inside: np.ndarray) -> None:
    """Grey the parts of a path (x = N) that leave the fitted data's N or D range."""
    if inside.all():
        return
    if not inside.any():
        ax.axvspan(N.min(), N.max(), color=EXTRAPOLATION_GREY, zorder=0, lw=0)
        return
    shade_outside(ax, N[inside].min(), N[inside].max())
