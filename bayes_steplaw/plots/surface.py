"""Figures on the (lr, batch) plane of one setting, drawn from the loss posterior.

:func:`loss_surface` (every answer of one loss posterior at one setting in one figure: the
expected loss, the optimum's region, the plateau region, the Bayes decision free and at a fixed
batch, and the setting's runs), :func:`landscape_map` (a sweep's observed relative loss, the
paper's Figs. 1 and 2, with the loss posterior's plateau contours and decision) and :func:`plan`
(where the optimum of a planned run will be; with a loss posterior, its surface beside it).

Every overlay of a loss posterior is one of its public answers at a *new* setting of the
group (:meth:`~bayes_steplaw.bayes.loss.LossPosterior.expected_loss`,
:meth:`~bayes_steplaw.bayes.loss.LossPosterior.predict`,
:meth:`~bayes_steplaw.bayes.loss.LossPosterior.plateau_probability`,
:meth:`~bayes_steplaw.bayes.loss.LossPosterior.recommend`), all with one ``seed``, so they
reduce the same posterior draws and agree with one another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._validate import DEFAULT_PROB, DEFAULT_TOL
from ..bayes.predictive import SHORT
from . import _data
from .style import (
    CMAP,
    LABELS,
    OKABE_ITO,
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
    plt,
    si,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..bayes.law import StepLawPosterior
    from ..bayes.loss import LossPosterior
    from ..bootstrap import BootstrapOLS

EXCESS_LEVELS = (0.0025, 0.005, 0.01, 0.02, 0.05, 0.1)
"""Expected-loss contours of :func:`loss_surface`: relative excess over the Bayes decision's."""
_HALF_WIDTH = (1.5, 2.0)  # least half-width (ln lr, ln batch) of a panel around the optimum


def _grid_edges(values: np.ndarray) -> np.ndarray:
    """Cell edges (geometric midpoints) around sorted positive grid values."""
    v = np.log(np.asarray(values, dtype=float))
    if len(v) == 1:
        return np.exp(np.array([v[0] - 0.2, v[0] + 0.2]))
    mid = 0.5 * (v[1:] + v[:-1])
    return np.exp(np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]]))


def _plateau_label(tol: float, level: float) -> str:
    return f"P(on the plateau: within {tol:.2%} of L*) = {level:.2g}"


# --------------------------------------------------------------------------- the surface


def _span(draws: np.ndarray, half_width: float, extra: Sequence[float]) -> tuple[float, float]:
    """(lo, hi) in ln units: the draws' 0.5-99.5% range, at least ``half_width`` either side
    of their median, widened to hold ``extra`` (ln values) with a margin of 0.2."""
    lo, mid, hi = np.nanquantile(draws, [0.005, 0.5, 0.995])
    lo, hi = min(lo, mid - half_width), max(hi, mid + half_width)
    finite = [v for v in extra if np.isfinite(v)]
    if finite:
        lo, hi = min(lo, min(finite) - 0.2), max(hi, max(finite) + 0.2)
    return float(lo), float(hi)


def _runs_table(runs: pd.DataFrame, ratio: float) -> pd.DataFrame:
    """lr, batch_tokens, loss and ``diverged`` (the table's, else loss > ratio x the best)."""
    missing = [c for c in ("lr", "batch_tokens", "loss") if c not in runs.columns]
    if missing:
        raise ValueError(f"runs needs columns lr, batch_tokens and loss; missing {missing}")
    if any(c in runs.columns and runs[c].nunique() > 1 for c in ("N", "D")):
        raise ValueError("runs must be the runs of one setting (one N and one D)")
    out = runs[["lr", "batch_tokens", "loss"]].astype(float).reset_index(drop=True)
    if "diverged" in runs.columns:
        diverged = runs["diverged"].to_numpy(bool)
    else:
        loss = out["loss"].to_numpy()
        with np.errstate(invalid="ignore"):
            diverged = ~np.isfinite(loss) | (loss > ratio * np.nanmin(loss))
    return out.assign(diverged=diverged)


def _optimum_region(ax, x: np.ndarray, y: np.ndarray, LR, BS, prob: float) -> bool:
    """The ``prob`` highest-density region of the optimum's draws (ln lr, ln batch), from a
    Gaussian kernel density estimate: the contour of the density that ``prob`` of the draws
    exceed. Returns whether a region was drawn."""
    from scipy.stats import gaussian_kde

    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 10 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return False
    kde = gaussian_kde(np.vstack([x[keep], y[keep]]))
    level = np.quantile(kde(np.vstack([x[keep], y[keep]])), 1 - prob)
    density = kde(np.vstack([np.log(LR).ravel(), np.log(BS).ravel()])).reshape(LR.shape)
    if not density.max() > level:
        return False
    ax.contour(LR, BS, density, levels=[level], colors=[ROLE_COLORS["posterior"]],
               linestyles=["--"], linewidths=[2.0], zorder=4)  # fmt: skip
    return True


def _draw_surface(
    ax: Axes,
    post: LossPosterior,
    N: float,
    D: float,
    *,
    group: str,
    batch_tokens: float | None,
    runs: pd.DataFrame | None,
    prob: float,
    plateau_level: float,
    tol: float,
    excess_levels: Sequence[float],
    grid_size: int,
    lr_span: tuple[float, float] | None,
    batch_span: tuple[float, float] | None,
    seed: int,
    allow_unconverged: bool,
    paper: Any = None,
) -> list:
    """Draw every answer of ``post`` at (N, D) on ``ax`` (and its colorbar); return the legend
    handles."""
    from matplotlib.colors import BoundaryNorm

    common = dict(group=group, seed=seed, allow_unconverged=allow_unconverged)
    optimum = post.predict(N, D, kind="optimum", **common)
    draws = optimum.draws
    x, y = np.log(draws["lr"].values.ravel()), np.log(draws["batch_tokens"].values.ravel())
    decision = post.recommend(N, D, tol=tol, **common)
    fixed = None
    if batch_tokens is not None:
        fixed = post.recommend(N, D, batch_tokens=batch_tokens, tol=tol, **common)
    table = None
    if runs is not None:
        table = _runs_table(runs, float(post.metadata.get("diverged_ratio", 1.5)))
    extra_x = [np.log(decision.lr)] + ([np.log(fixed.lr)] if fixed is not None else [])
    extra_y = [np.log(decision.batch_tokens)]
    extra_y += [np.log(batch_tokens)] if fixed is not None else []
    if table is not None:
        extra_x += list(np.log(table["lr"]))
        extra_y += list(np.log(table["batch_tokens"]))
    lo_x, hi_x = np.log(lr_span) if lr_span is not None else _span(x, _HALF_WIDTH[0], extra_x)
    lo_y, hi_y = np.log(batch_span) if batch_span is not None else _span(y, _HALF_WIDTH[1], extra_y)
    lr = np.exp(np.linspace(lo_x, hi_x, grid_size))
    bs = np.exp(np.linspace(lo_y, hi_y, grid_size))
    LR, BS = np.meshgrid(lr, bs)

    # the expected loss (what the decision minimises), in bands of excess over the decision's
    expected = np.asarray(post.expected_loss(N, D, LR, BS, **common), dtype=float)
    base = float(decision.expected_loss)
    floor = min(float(np.nanmin(expected)), base)
    upper = [base * (1 + r) for r in sorted(excess_levels)]
    levels = np.array([floor] + [v for v in upper if v > floor])
    cmap = plt().get_cmap(CMAP)
    norm = BoundaryNorm(levels, cmap.N, extend="max")
    ax.contourf(LR, BS, expected, levels=levels, cmap=cmap, norm=norm, extend="max", zorder=1)
    cb = ax.figure.colorbar(
        plt().cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01, extend="max"
    )
    cb.set_ticks(levels)
    cb.set_ticklabels(["+0%"] + [f"+{100 * (v / base - 1):.3g}%" for v in levels[1:]])
    cb.set_label(f"expected loss over the decision's ({base:.4g})")
    handles = []

    # the optimum's region and median
    if _optimum_region(ax, x, y, LR, BS, prob):
        handles.append(handle(f"{prob:.0%} region of {SHORT['optimum']}",
                              color=ROLE_COLORS["posterior"], ls="--", lw=2))  # fmt: skip
    median = optimum.median()
    handles.append(mark_point(ax, float(median["lr"]), float(median["batch_tokens"]), "P",
                              "posterior", f"median of {SHORT['optimum']}", ms=10))  # fmt: skip

    # the plateau region
    plateau = post.plateau_probability(N, D, LR, BS, tol=tol, reference="optimum", **common).values
    if np.nanmax(plateau) >= plateau_level:
        ax.contour(LR, BS, plateau, levels=[plateau_level], colors=[PLATEAU_COLOR],
                   linewidths=[2.2], zorder=4)  # fmt: skip
        label = f"plateau: P(within {tol:.2%} of L*) ≥ {plateau_level:.2g}"
    else:
        label = f"plateau P ≥ {plateau_level:.2g}: nowhere (at most {np.nanmax(plateau):.2f})"
    handles.append(handle(label, color=PLATEAU_COLOR, lw=2.2))

    # the decisions
    handles.append(mark_recommendation(ax, decision.lr, decision.batch_tokens,
                                       "Bayes decision (least expected loss)"))  # fmt: skip
    if fixed is not None:
        cost = float(fixed.expected_loss) / base - 1
        handles.append(mark_fixed_batch(
            ax, fixed.lr, float(batch_tokens),
            label=f"best lr at batch {si(batch_tokens)} tokens (+{cost:.2%} expected loss)",
        ))  # fmt: skip
    if paper is not None:
        handles.append(mark_point(ax, paper["lr"], paper["batch_tokens"], "X", "paper",
                                  "paper's Step Law", ms=10))  # fmt: skip

    # the setting's runs, coloured by their observed loss on the same bands
    if table is not None:
        alive = table[~table["diverged"]]
        dead = table[table["diverged"]]
        ax.scatter(alive["lr"], alive["batch_tokens"], c=alive["loss"], cmap=cmap, norm=norm,
                   s=42, edgecolors="black", linewidths=0.7, zorder=5)  # fmt: skip
        handles.append(handle("runs (fill: observed loss, same bands)", marker="o", mfc="0.6",
                              mec="black", ls="none"))  # fmt: skip
        if len(dead):
            ax.plot(dead["lr"], dead["batch_tokens"], "x", color=OKABE_ITO["vermillion"],
                    ms=6, mew=1.6, zorder=5)  # fmt: skip
            handles.append(handle("diverged runs", marker="x", color=OKABE_ITO["vermillion"],
                                  ls="none", mew=1.6))  # fmt: skip
        if len(alive):
            best = alive.loc[alive["loss"].idxmin()]
            handles.append(mark_observed_best(ax, best["lr"], best["batch_tokens"]))
    ax.set_xlim(lr[0], lr[-1])
    ax.set_ylim(bs[0], bs[-1])
    lr_batch_axes(ax)
    return handles


def loss_surface(
    post: LossPosterior,
    N: float,
    D: float,
    *,
    group: str = "dense",
    batch_tokens: float | None = None,
    runs: pd.DataFrame | None = None,
    prob: float = DEFAULT_PROB,
    plateau_level: float = 0.9,
    tol: float = DEFAULT_TOL,
    excess_levels: Sequence[float] = EXCESS_LEVELS,
    grid_size: int = 51,
    lr_span: tuple[float, float] | None = None,
    batch_span: tuple[float, float] | None = None,
    seed: int = 0,
    allow_unconverged: bool = False,
    ax: Axes | None = None,
) -> Axes:
    """Every answer of one loss posterior at one setting (N, D), on the (lr, batch) plane.

    All from the same posterior draws of a *new* setting of ``group`` (one ``seed``):

    * filled contours: the posterior expected loss of a run
      (:meth:`~bayes_steplaw.bayes.loss.LossPosterior.expected_loss`, a diverged run counted
      at 1.5·L*), in bands of ``excess_levels`` above the Bayes decision's;
    * blue dashes and plus: the ``prob`` highest-density region and the median of the
      optimum (:meth:`~bayes_steplaw.bayes.loss.LossPosterior.predict`,
      ``kind="optimum"``; a kernel density estimate of its draws);
    * orange line: the plateau region, where
      :meth:`~bayes_steplaw.bayes.loss.LossPosterior.plateau_probability`
      (``reference="optimum"``: the run does not diverge and its expected loss is within
      ``tol`` of L*) is at least ``plateau_level``;
    * green diamond: the Bayes decision, the (lr, batch) of least expected loss
      (:meth:`~bayes_steplaw.bayes.loss.LossPosterior.recommend`);
    * blue square on a dotted line: the best lr at a batch fixed by the hardware
      (``recommend(batch_tokens=...)``), with what it costs in expected loss;
    * with ``runs``: the setting's runs, filled with their observed loss on the same colour
      bands (a run that matches its background agrees with the posterior), diverged runs as
      crosses, the observed minimum as a white star.

    Parameters
    ----------
    post : LossPosterior
        A loss posterior (``load_default("loss")``, :func:`bayes_steplaw.fit`). For a held-out
        check, one that did not see ``runs``.
    N, D : float
        Non-embedding parameters and training tokens of the setting.
    group : str
        Group of the setting (``"dense"``, ``"moe/1in8"``, ...; ``"new"``).
    batch_tokens : float, optional
        A batch size fixed by the hardware: marks the best lr there.
    runs : DataFrame, optional
        Runs of this setting (columns ``lr``, ``batch_tokens``, ``loss``; ``diverged`` if it
        has one, else a loss above the posterior's divergence ratio times the best).
    prob : float
        Mass of the optimum's region.
    plateau_level : float
        Probability level of the plateau region.
    tol : float
        Relative-loss tolerance of the plateau (and of the decision's plateau probability).
    excess_levels : sequence of float
        Expected-loss contours, relative excess over the decision's expected loss.
    grid_size : int
        Grid points per axis.
    lr_span, batch_span : (float, float), optional
        Axis ranges; default the optimum's draws widened to hold the decisions and the runs.
    seed : int
        Seed of the new setting's draws, shared by every answer.
    allow_unconverged : bool
        Draw from a posterior that failed its convergence gate.
    ax : Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Log lr on x, log batch tokens on y; a colorbar of the expected loss.
    """
    N, D = float(N), float(D)
    if not 0 < plateau_level < 1:
        raise ValueError(f"plateau_level must be between 0 and 1; got {plateau_level!r}")
    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1; got {prob!r}")
    ax = new_axes(ax, figsize=(7.4, 6.2))
    handles = _draw_surface(
        ax, post, N, D, group=group, batch_tokens=batch_tokens, runs=runs, prob=prob,
        plateau_level=plateau_level, tol=tol, excess_levels=excess_levels,
        grid_size=grid_size, lr_span=lr_span, batch_span=batch_span, seed=seed,
        allow_unconverged=allow_unconverged,
    )  # fmt: skip
    legend_above(ax, handles, title=f"{group}: N = {si(N)}, D = {si(D)} tokens (a new setting)")
    return ax


# --------------------------------------------------------------------------- observed map


def landscape_map(
    sweeps: pd.DataFrame,
    setting: str,
    *,
    loss: LossPosterior | None = None,
    bootstrap: BootstrapOLS | None = None,
    optimum: StepLawPosterior | None = None,
    tol: float = DEFAULT_TOL,
    levels: Sequence[float] = (0.5, 0.9),
    vmax: float = 0.02,
    grid_size: int = 40,
    seed: int = 0,
    ax: Axes | None = None,
) -> Axes:
    """Loss landscape of one setting: observed relative loss on the (lr, batch) grid.

    The counterpart of the paper's Figs. 1 and 2. Cells are the sweep's runs coloured by
    relative loss (``loss / setting minimum - 1``, capped at ``vmax``); the observed minimum
    is a white star. Optional overlays: from the loss posterior (``loss``), contours of the
    plateau probability of a run at a new setting of this (N, D) and group
    (:meth:`~bayes_steplaw.bayes.loss.LossPosterior.plateau_probability`,
    ``reference="optimum"``) at ``levels``, and its Bayes decision (green diamond); the
    paper's point prediction (``bootstrap``, vermillion cross); the median optimum of the law
    (``optimum``, any Step-Law posterior, blue plus).

    Parameters
    ----------
    sweeps : DataFrame
        Sweep table holding the setting's runs.
    setting : str
        A setting id (the ``setting`` column), e.g. ``"dense N=1.074e+09 D=2e+10"``.
    loss : LossPosterior, optional
        Adds plateau-probability contours and the Bayes decision.
    bootstrap : BootstrapOLS, optional
        Adds the paper's prediction (mean-coefficient law).
    optimum : StepLawPosterior, optional
        Adds the posterior median of the law (``kind="law"``) for the setting's group.
    tol : float
        Relative-loss tolerance of the plateau.
    levels : sequence of float
        Plateau-probability contour levels.
    vmax : float
        Relative loss at which the colour scale saturates.
    grid_size : int
        Resolution of the plateau-probability contours per axis.
    seed : int
        Seed of the loss posterior's new-setting draws.
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
    mesh = ax.pcolormesh(_grid_edges(lrs), _grid_edges(bss), grid, cmap=CMAP, vmin=0,
                         vmax=vmax * 100, shading="flat", edgecolors="white",
                         linewidth=0.3)  # fmt: skip
    ax.figure.colorbar(mesh, ax=ax, pad=0.01, extend="max").set_label("observed relative loss (%)")
    best = runs.loc[runs["loss"].idxmin()]
    handles = [mark_observed_best(ax, best["lr"], best["batch_tokens"])]
    N, D = float(runs["N"].iloc[0]), float(runs["D"].iloc[0])
    group = _data.group_of_settings(runs).iloc[0]
    if loss is not None:
        lg = _data.resolvable(loss, group)
        LR, BS = np.meshgrid(
            np.geomspace(lrs[0] / 1.2, lrs[-1] * 1.2, grid_size),
            np.geomspace(bss[0] / 1.2, bss[-1] * 1.2, grid_size),
        )
        prob = loss.plateau_probability(N, D, LR, BS, tol=tol, group=lg, reference="optimum",
                                        seed=seed, allow_unconverged=True).values  # fmt: skip
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
        rec = loss.recommend(N, D, group=lg, tol=tol, seed=seed, allow_unconverged=True)
        handles.append(mark_recommendation(ax, rec.lr, rec.batch_tokens, "Bayes decision"))
    if bootstrap is not None:
        row = bootstrap.predict(N, D).iloc[0]
        handles.append(
            # larger than the plus drawn over it: the two often coincide
            mark_point(ax, row["lr"], row["batch_tokens"], "X", "paper", "paper's Step Law", ms=14)
        )
    if optimum is not None:
        og = _data.resolvable(optimum, group)
        med = optimum.predict(N, D, group=og, kind="law", allow_unconverged=True).median()
        handles.append(mark_point(ax, float(med["lr"]), float(med["batch_tokens"]), "P",
                                  "posterior", f"median of {SHORT['law']}", ms=9))  # fmt: skip
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
    kind: str = "optimum",
    seq_len: int | None = None,
    prob: float = DEFAULT_PROB,
    bootstrap: BootstrapOLS | None = None,
    loss: LossPosterior | None = None,
    batch_tokens: float | None = None,
    tol: float = DEFAULT_TOL,
    plateau_level: float = 0.9,
    seed: int = 0,
    allow_unconverged: bool = False,
    fig: Figure | None = None,
) -> Figure:
    """A run plan: where the optimal lr and batch size of a new run at (N, D) will be.

    Panels: the posterior-predictive distribution of the optimal lr and of the optimal batch
    size (by default ``kind="optimum"``: the optimum of a new setting), with the median, the
    ``prob`` interval and the paper's point prediction; with ``loss``, a third panel with that
    loss posterior's answers at the setting (:func:`loss_surface`: the expected loss, the
    optimum's region, the plateau region, the Bayes decision and the best lr at a fixed
    ``batch_tokens``). The figure's title says what the intervals are about.

    Parameters
    ----------
    post : StepLawPosterior
        A fitted optimum or loss posterior.
    N, D : float
        Non-embedding parameters and training tokens of the planned run.
    group : str
    kind : str
        What the distributions are about, a kind :meth:`StepLawPosterior.predict` takes
        (``"optimum"``: a new setting's optimum; ``"law"``: the law; ``"sweep"``: the best
        run of a sweep).
    seq_len : int, optional
        Sequence length, to state the batch in sequences (default: the fit's).
    prob : float
        Mass of the equal-tailed interval shaded (and of the paper's percentile interval).
    bootstrap : BootstrapOLS, optional
        Marks the paper's prediction.
    loss : LossPosterior, optional
        Adds the surface panel (it may be ``post`` itself).
    batch_tokens : float, optional
        A batch size fixed by the hardware; with ``loss``, marks the best lr there.
    tol, plateau_level : float
        Plateau tolerance and probability level of the plateau region.
    seed : int
        Seed of the new setting's draws (shared by every answer of the surface panel).
    allow_unconverged : bool
        Draw from posteriors that failed their convergence gate.
    fig : Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two axes (three with ``loss``, and its colorbar).
    """
    n_panels = 3 if loss is not None else 2
    fig = new_figure(fig, (4.6 * n_panels + 0.8, 4.8))
    axes = fig.subplots(1, n_panels)
    pred = post.predict(N, D, group=group, kind=kind, seq_len=seq_len, seed=seed,
                        allow_unconverged=allow_unconverged)  # fmt: skip
    draws = pred.draws
    row = pred.to_dataframe(prob).iloc[0]
    paper = None
    if bootstrap is not None:
        paper = bootstrap.predict(N, D, seq_len=pred.attrs["seq_len"], prob=prob).iloc[0]
    name = SHORT.get(pred.kind, pred.kind)
    for ax, quantity in zip(axes[:2], ("lr", "batch_tokens")):
        values = draws[quantity].values.ravel()
        values = values[np.isfinite(values)]
        lo, med, hi = row[f"{quantity}_lower"], row[f"{quantity}_median"], row[f"{quantity}_upper"]
        counts = interval_histogram(
            ax, values, np.geomspace(values.min(), values.max(), 60), lo, hi, density=False,
            label=f"{prob:.0%} interval [{fmt_value(lo, quantity)}, {fmt_value(hi, quantity)}]",
        )  # fmt: skip
        ax.axvline(med, color=ROLE_COLORS["posterior"], lw=2,
                   label=f"median {fmt_value(med, quantity)}")  # fmt: skip
        if paper is not None:
            label = f"paper's Step Law {fmt_value(paper[quantity], quantity)}"
            ax.axvline(paper[quantity], color=ROLE_COLORS["paper"], lw=2, ls="--", label=label)
        log_axis(ax, "x", count_or_lr(quantity))
        ax.set_yticks([])
        ax.set_ylim(top=counts.max() * 1.5)
        ax.set_xlabel(f"{LABELS[quantity]} of {name}")
        ax.set_ylabel("posterior-predictive draws")
        ax.legend(loc="upper left", fontsize="x-small", frameon=False)
    axes[0].set_title(f"{group}, N = {si(N)}, D = {si(D)} tokens: peak lr", fontsize="medium")
    axes[1].set_title(
        f"batch: median {row['batch_sequences_median']:.0f} sequences of "
        f"{pred.attrs['seq_len']} tokens",
        fontsize="medium",
    )
    # say what the distributions are about (the law / a new setting's optimum / ...)
    about = pred.describe(prob)
    fig.suptitle(about[:1].upper() + about[1:], fontsize="small")
    if loss is not None:
        panel = axes[2]
        handles = _draw_surface(
            panel, loss, float(N), float(D), group=_data.resolvable(loss, group),
            batch_tokens=batch_tokens, runs=None, prob=prob, plateau_level=plateau_level,
            tol=tol, excess_levels=EXCESS_LEVELS, grid_size=41, lr_span=None, batch_span=None,
            seed=seed, allow_unconverged=allow_unconverged, paper=paper,
        )  # fmt: skip
        legend_above(panel, handles, title="the loss posterior at this setting")
    return fig
