"""Figures on the (lr, batch) plane of one setting: its loss landscape, and a run plan.

:func:`landscape_map` (a sweep's observed relative loss, the paper's Figs. 1 and 2, with the
landscape model's plateau contours and the point predictions) and :func:`plan` (where the
optimum of a planned run will be, and the plateau region the landscape model gives it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._validate import DEFAULT_PROB, DEFAULT_SEQ_LEN, DEFAULT_TOL
from . import _data
from .style import (
    CMAP,
    LABELS,
    PLATEAU_COLOR,
    ROLE_COLORS,
    count_or_lr,
    fmt_value,
    handle,
    interval_histogram,
    legend_above,
    log_axis,
    lr_batch_axes,
    mark_fixed_batch,
    mark_observed_best,
    mark_point,
    mark_recommendation,
    new_axes,
    new_figure,
    si,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..bayes.landscape import LandscapePosterior
    from ..bayes.law import StepLawPosterior
    from ..bootstrap import BootstrapOLS


def _grid_edges(values: np.ndarray) -> np.ndarray:
    """Cell edges (geometric midpoints) around sorted positive grid values."""
    v = np.log(np.asarray(values, dtype=float))
    if len(v) == 1:
        return np.exp(np.array([v[0] - 0.2, v[0] + 0.2]))
    mid = 0.5 * (v[1:] + v[:-1])
    return np.exp(np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]]))


def _recommendation(rec: Any) -> tuple[float, float]:
    """(lr, batch_tokens) of what ``recommend`` returns (a Recommendation, mapping or row)."""
    if isinstance(rec, pd.DataFrame):
        rec = rec.iloc[0]
    if isinstance(rec, (Mapping, pd.Series)):
        return float(rec["lr"]), float(rec["batch_tokens"])
    return float(np.ravel(rec.lr)[0]), float(np.ravel(rec.batch_tokens)[0])


def _recommend(landscape: Any, N: float, D: float, group: str, tol: float, **kw):
    return _recommendation(
        landscape.recommend(N, D, group=group, tol=tol, allow_unconverged=True, **kw)
    )


def _plateau_label(tol: float, value: float) -> str:
    return f"P(a new run's rel. loss < {tol:.2%}) = {value:.2g}"


def landscape_map(
    sweeps: pd.DataFrame,
    setting: str,
    *,
    landscape: LandscapePosterior | None = None,
    bootstrap: BootstrapOLS | None = None,
    optimum: StepLawPosterior | None = None,
    tol: float = DEFAULT_TOL,
    levels: Sequence[float] = (0.5, 0.9),
    vmax: float = 0.02,
    grid_size: int = 60,
    ax: Axes | None = None,
) -> Axes:
    """Loss landscape of one setting: observed relative loss on the (lr, batch) grid.

    The counterpart of the paper's Figs. 1 and 2. Cells are the sweep's runs coloured by
    relative loss (``loss / setting minimum - 1``, capped at ``vmax``); the observed minimum
    is a white star. Optional overlays: contours of the landscape model's plateau probability
    of a new run at this setting, P(relative loss < ``tol``), at ``levels``, and its
    recommendation (green diamond); the paper's point prediction (``bootstrap``, vermillion
    cross); the optimum model's posterior median of the law (``optimum``, blue plus).

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
        Adds the optimum model's posterior median of the law for the setting's group.
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
    from ..datasets.sweeps import relative_loss

    ax = new_axes(ax, figsize=(6.4, 4.8))
    runs = sweeps[sweeps["setting"] == setting]
    if runs.empty:
        raise ValueError(f"no runs of setting {setting!r} in the sweep table")
    runs = runs.assign(rel_loss=relative_loss(runs).to_numpy())
    lrs = np.sort(runs["lr"].unique())
    bss = np.sort(runs["batch_tokens"].unique())
    table = runs.pivot_table(index="batch_tokens", columns="lr", values="rel_loss", aggfunc="min")
    grid = np.ma.masked_invalid(table.reindex(index=bss, columns=lrs).to_numpy(float) * 100)
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
    ax.figure.colorbar(mesh, ax=ax, pad=0.01, extend="max").set_label("observed relative loss (%)")
    best = runs.loc[runs["loss"].idxmin()]
    handles = [mark_observed_best(ax, best["lr"], best["batch_tokens"])]
    N, D = float(runs["N"].iloc[0]), float(runs["D"].iloc[0])
    group = _data.group_of_settings(runs).iloc[0]
    if landscape is not None:
        lg = _data.resolvable(landscape, group)
        LR, BS = np.meshgrid(
            np.geomspace(lrs[0] / 1.2, lrs[-1] * 1.2, grid_size),
            np.geomspace(bss[0] / 1.2, bss[-1] * 1.2, grid_size),
        )
        prob = np.asarray(
            landscape.plateau_probability(N, D, LR, BS, tol=tol, group=lg, allow_unconverged=True),
            dtype=float,
        ).reshape(LR.shape)
        ordered = sorted(levels)
        # a solid line for the highest level, dashed ones for the lower levels, drawn over it:
        # the probability rises steeply, so the contours often run close together (and are
        # named in the legend rather than labelled inline, where the labels would collide)
        styles = {
            v: ("--", 1.4) if i < len(ordered) - 1 else ("-", 2.2) for i, v in enumerate(ordered)
        }
        for v in sorted((v for v in ordered if prob.min() < v < prob.max()), reverse=True):
            ls, lw = styles[v]
            ax.contour(
                LR, BS, prob, levels=[v], colors=[PLATEAU_COLOR], linestyles=[ls], linewidths=[lw]
            )
        handles += [
            handle(_plateau_label(tol, v), color=PLATEAU_COLOR, ls=styles[v][0], lw=styles[v][1])
            for v in ordered
        ]
        handles.append(
            mark_recommendation(
                ax, *_recommend(landscape, N, D, lg, tol), "landscape recommendation"
            )
        )
    if bootstrap is not None:
        row = bootstrap.predict(N, D).iloc[0]
        handles.append(
            # larger than the plus drawn over it: the two often coincide
            mark_point(ax, row["lr"], row["batch_tokens"], "X", "paper", "paper's Step Law", ms=14)
        )
    if optimum is not None:
        og = _data.resolvable(optimum, group)
        med = optimum.predict(N, D, group=og, kind="law", allow_unconverged=True).median().iloc[0]
        handles.append(
            mark_point(
                ax, med["lr"], med["batch_tokens"], "P", "posterior", "Bayesian law (median)", ms=9
            )
        )
    ax.set_xlim(_grid_edges(lrs)[[0, -1]])
    ax.set_ylim(_grid_edges(bss)[[0, -1]])
    lr_batch_axes(ax)
    legend_above(ax, handles, title=f"{group}: N = {si(N)}, D = {si(D)} tokens")
    return ax


# --------------------------------------------------------------------------- planning


def plan(
    post: StepLawPosterior,
    N: float,
    D: float,
    *,
    group: str = "dense",
    kind: str = "centre",
    seq_len: int = DEFAULT_SEQ_LEN,
    prob: float = DEFAULT_PROB,
    bootstrap: BootstrapOLS | None = None,
    landscape: LandscapePosterior | None = None,
    batch_tokens: float | None = None,
    tol: float = DEFAULT_TOL,
    plateau_prob: float = 0.5,
    seed: int = 0,
    fig: Figure | None = None,
) -> Figure:
    """A run plan: where the optimal lr and batch size of a new run at (N, D) will be.

    Panels: the posterior-predictive distribution of the optimal lr and of the optimal batch
    size (by default ``kind="centre"``: the optimum of a new setting), with the median, the
    ``prob`` interval and the paper's point prediction; with ``landscape``, a third panel with
    the plateau region (settings whose probability of lying within ``tol`` of the optimum loss
    is at least ``plateau_prob``), the recommendation, and the best lr at a fixed
    ``batch_tokens``. The figure's title says what the intervals are about.

    Parameters
    ----------
    post : StepLawPosterior
        A fitted optimum model.
    N, D : float
        Non-embedding parameters and training tokens of the planned run.
    group : str
    kind : str
        What the distributions are about, any kind :meth:`StepLawPosterior.predict` takes
        (``"centre"``: a new setting's optimum; ``"law"``: the law).
    seq_len : int
        Sequence length, to state the batch in sequences.
    prob : float
        Mass of the highest-density interval shaded (and of the paper's percentile interval).
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
        Two axes (three with ``landscape``, and its colorbar).
    """
    n_panels = 3 if landscape is not None else 2
    fig = new_figure(fig, (4.4 * n_panels + 0.6, 4.6))
    axes = fig.subplots(1, n_panels)
    pred = post.predict(N, D, group=group, kind=kind, seq_len=seq_len, seed=seed)
    draws = pred.draws
    med = pred.median().iloc[0]
    iv = pred.interval(prob).iloc[0]
    paper = None
    if bootstrap is not None:
        paper = bootstrap.predict(N, D, seq_len=seq_len, prob=prob).iloc[0]
    for ax, quantity in zip(axes[:2], ("lr", "batch_tokens")):
        values = draws[quantity].values.ravel()
        lo, hi = iv[f"{quantity}_lower"], iv[f"{quantity}_upper"]
        counts = interval_histogram(
            ax,
            values,
            np.geomspace(values.min(), values.max(), 60),
            lo,
            hi,
            density=False,
            label=f"{prob:.0%} interval [{fmt_value(lo, quantity)}, {fmt_value(hi, quantity)}]",
        )
        ax.axvline(
            med[quantity],
            color=ROLE_COLORS["posterior"],
            lw=2,
            label=f"median {fmt_value(med[quantity], quantity)}",
        )
        if paper is not None:
            ax.axvline(
                paper[quantity],
                color=ROLE_COLORS["paper"],
                lw=2,
                ls="--",
                label=f"paper's Step Law {fmt_value(paper[quantity], quantity)}",
            )
        log_axis(ax, "x", count_or_lr(quantity))
        ax.set_yticks([])
        ax.set_ylim(top=counts.max() * 1.5)
        ax.set_xlabel(f"optimal {LABELS[quantity]}")
        ax.set_ylabel("posterior-predictive draws")
        ax.legend(loc="upper left", fontsize="x-small", frameon=False)
    axes[0].set_title(f"{group}, N = {si(N)}, D = {si(D)} tokens: peak lr", fontsize="medium")
    axes[1].set_title(
        f"batch: median {med['batch_sequences']:.0f} sequences of {seq_len} tokens",
        fontsize="medium",
    )
    # say what the distributions are about (the law / a new setting's optimum / ...)
    about = pred.describe(prob)
    fig.suptitle(about[:1].upper() + about[1:], fontsize="small")
    if landscape is not None:
        _plateau_panel(axes[2], landscape, N, D, group, tol, plateau_prob, batch_tokens, paper)
    return fig


def _plateau_panel(ax, landscape, N, D, group, tol, plateau_prob, batch_tokens, paper):
    """The plateau region of a new run at (N, D), the recommendation, a fixed-batch choice."""
    lg = _data.resolvable(landscape, group)
    region = landscape.plateau_region(
        N, D, tol=tol, min_prob=plateau_prob, group=lg, n_grid=81, allow_unconverged=True
    )
    glr, gbs, prob = region.lr, region.batch_tokens, region.probability
    mesh = ax.pcolormesh(glr, gbs, prob, cmap=CMAP, vmin=0, vmax=1, shading="nearest")
    ax.figure.colorbar(mesh, ax=ax, pad=0.01).set_label(f"P(relative loss < {tol:.2%})")
    if not region.empty:
        ax.contour(glr, gbs, prob, levels=[plateau_prob], colors=[PLATEAU_COLOR], linewidths=2)
    handles = [handle(f"plateau region (P ≥ {plateau_prob:.2g})", color=PLATEAU_COLOR, lw=2)]
    handles.append(mark_recommendation(ax, *_recommend(landscape, N, D, lg, tol), "recommendation"))
    if batch_tokens is not None:
        fixed = _recommend(landscape, N, D, lg, tol, batch_tokens=batch_tokens)
        handles.append(
            mark_fixed_batch(ax, *fixed, label=f"best lr at batch {si(batch_tokens)} tokens")
        )
    if paper is not None:
        handles.append(
            mark_point(
                ax, paper["lr"], paper["batch_tokens"], "X", "paper", "paper's Step Law", ms=10
            )
        )
    lr_batch_axes(ax)
    legend_above(ax, handles, title="plateau region of a new run (landscape model)")
