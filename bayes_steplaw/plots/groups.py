"""Figures of the groups: each group's offset from the all-group law, and two groups' contrast.

:func:`group_offsets` (a forest plot of every group's lr and batch offset, with a never-seen
architecture) and :func:`offset_contrast` (the posterior of one group's optimum over another's,
the numbers of :meth:`StepLawPosterior.compare_offsets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .style import (
    PALETTE,
    ROLE_COLORS,
    handle,
    new_figure,
    ratio_ticks,
    tails,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..bayes.law import StepLawPosterior

_PANELS = (("lr", "peak learning rate"), ("batch_tokens", "batch size (tokens)"))


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
    bar for the inner and a thin bar for the outer equal-tailed credible interval. The
    intervals are about the law (``kind="law"``): a group's offset, without setting scatter.

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
    groups = list(groups) if groups is not None else list(post.groups_seen)
    if include_new and "new" not in groups:
        groups.append("new")
    fig = new_figure(fig, (9.0, 0.45 * len(groups) + 1.6))
    axes = fig.subplots(1, 2, sharey=True)
    draws = {g: _offset_draws(post, g) for g in groups}
    families = sorted({g.split("/")[0] for g in groups if g != "new"})
    fam_color = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(families)}
    y = np.arange(len(groups))[::-1]
    for ax, k, (_, title) in zip(axes, (0, 1), _PANELS):
        for yi, g in zip(y, groups):
            d = draws[g][k]
            c = ROLE_COLORS["neutral"] if g == "new" else fam_color[g.split("/")[0]]
            inner, outer = (np.exp(np.quantile(d, tails(p))) for p in probs)
            ax.plot(outer, [yi, yi], color=c, lw=1.4, solid_capstyle="butt")
            ax.plot(inner, [yi, yi], color=c, lw=5, solid_capstyle="butt")
            ax.plot(np.exp(np.median(d)), yi, "o", color="white", mec=c, mew=2, ms=7)
        ax.axvline(1.0, color="0.4", lw=0.8, ls=":")
        ax.set_xscale("log")
        ratio_ticks(ax)
        ax.set_xlabel(f"optimal {title}\n× the all-group law at the same N, D")
        ax.set_title(title)
        ax.grid(axis="x", color="0.9", lw=0.6)
        ax.set_axisbelow(True)
    labels = [("  " * g.count("/")) + ("new architecture" if g == "new" else g) for g in groups]
    axes[0].set_yticks(y, labels)
    axes[0].set_ylim(-0.7, len(groups) - 0.3)
    handles = [
        handle(f"{probs[0]:.0%} interval", color="0.3", lw=5),
        handle(f"{probs[1]:.0%} interval", color="0.3", lw=1.4),
        handle("median", color="0.3", marker="o", mfc="white", mew=2, ls="none"),
    ]
    fig.legend(
        handles=handles,
        title="the group's law (its offset, no setting scatter)",
        title_fontsize="small",
        loc="outside lower center",
        ncols=3,
        frameon=False,
    )
    return fig


def offset_contrast(
    post: StepLawPosterior,
    a: str = "moe",
    b: str = "dense",
    *,
    prob: float = 0.9,
    fig: Figure | None = None,
) -> Figure:
    """Posterior of the contrast of two groups' optima (``a`` over ``b``) for lr and batch.

    The same numbers as :meth:`StepLawPosterior.compare_offsets` with ``scale="ratio"``,
    drawn: the ratio of group ``a``'s law to group ``b``'s at the same N and D (the optimum
    of each group's law, no setting scatter), with its equal-tailed interval and P(a > b) --
    the posterior mass right of 1.

    Parameters
    ----------
    post : StepLawPosterior
    a, b : str
        Group names (:attr:`StepLawPosterior.groups_seen`).
    prob : float
        Mass of the equal-tailed interval.
    fig : Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two axes (lr, batch) with log x axes.
    """
    fig = new_figure(fig, (9.0, 3.6))
    axes = fig.subplots(1, 2)
    table = post.compare_offsets(a, b, prob=prob, scale="ratio")
    da, db = _offset_draws(post, a), _offset_draws(post, b)
    for ax, k, (row, title) in zip(axes, (0, 1), _PANELS):
        diff = da[k] - db[k]
        counts, edges = np.histogram(
            diff, bins=np.linspace(diff.min(), diff.max(), 60), density=True
        )
        centres = np.exp(0.5 * (edges[1:] + edges[:-1]))
        widths = np.exp(edges[1:]) - np.exp(edges[:-1])
        p_pos = table.loc[row, "prob_positive"]
        for side, colour, alpha, label in (
            (centres <= 1, "0.75", 1.0, f"P({a} < {b}) = {1 - p_pos:.2f}"),
            (centres > 1, ROLE_COLORS["posterior"], 0.7, f"P({a} > {b}) = {p_pos:.2f}"),
        ):
            ax.bar(
                centres[side],
                counts[side],
                width=widths[side],
                color=colour,
                alpha=alpha,
                lw=0,
                label=label,
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
        ratio_ticks(ax)
        ax.set_yticks([])
        ax.set_ylim(0, counts.max() * 1.45)
        ax.set_xlabel(f"{title}: {a} law / {b} law at the same N, D")
        ax.set_ylabel("posterior density")
        ax.set_title(f"{title}: median ratio {table.loc[row, 'median']:.2f}×", fontsize="medium")
        ax.legend(loc="upper left", fontsize="small", frameon=False)
    return fig
