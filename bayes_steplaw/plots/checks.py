"""Posterior checks: does a fit reproduce the sweep it was fitted on?

:func:`setting_optima` (each fitted setting's optimum against the sweep's near-optimal mean and
best run; optimum or loss posterior) and :func:`relative_loss_check` (each fitted run's expected
relative loss against the observed one; loss posterior).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import _data
from .style import LABELS, count_or_lr, group_colours, handle, log_axis, new_axes, new_figure, tails

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..bayes.law import StepLawPosterior
    from ..bayes.loss import LossPosterior


def _settings_table(post: StepLawPosterior, sweeps: pd.DataFrame, threshold: float):
    """Per setting of the fit: N, D, group, observed best run and near-optimal mean."""
    settings = [str(s) for s in post.variables["setting"].values]
    known = set(sweeps["setting"].astype(str))
    missing = [s for s in settings if s not in known]
    if missing:
        raise ValueError(
            f"{len(missing)} setting(s) of the posterior are not in the sweep table "
            f"(e.g. {missing[0]!r}); pass the table the posterior was fitted on"
        )
    rel = sweeps[sweeps["setting"].astype(str).isin(settings)]
    best = rel.loc[rel.groupby("setting")["loss"].idxmin()].set_index("setting")
    near = _data.near_optimal(rel, threshold)
    geo = near.groupby("setting")[["lr", "batch_tokens"]].agg(_data.geometric_mean)
    out = pd.DataFrame(index=pd.Index(settings, name="setting"))
    out["N"] = best["N"].reindex(settings).to_numpy(float)
    out["D"] = best["D"].reindex(settings).to_numpy(float)
    out["group"] = (
        _data.group_of_settings(best.reset_index()).set_axis(best.index).reindex(settings)
    )
    for q in ("lr", "batch_tokens"):
        out[f"best_{q}"] = best[q].reindex(settings).to_numpy(float)
        out[f"mean_{q}"] = geo[q].reindex(settings).to_numpy(float)
    return out


def _fitted_optima(post: StepLawPosterior, table: pd.DataFrame, quantity: str, prob: float):
    """(settings, 3) lower / median / upper of each fitted setting's optimum.

    The optimum of a *fitted* setting: the group's law at its (N, D) plus the setting's own
    effect (``u`` for lr, ``v`` for batch), not a new setting's predictive; a loss posterior
    keeps each setting's optimum itself (``m_lr``, ``m_bs``).
    """
    lo, hi = tails(prob)
    direct = "m_lr" if quantity == "lr" else "m_bs"
    if direct in post.variables:
        return np.exp(np.quantile(post.flat(direct), [lo, 0.5, hi], axis=0)).T
    x = np.log(table["N"].to_numpy()) - post.metadata["log_n0"]
    y = np.log(table["D"].to_numpy()) - post.metadata["log_d0"]
    effect = post.flat("u" if quantity == "lr" else "v")
    out = np.empty((len(table), 3))
    for g in dict.fromkeys(table["group"]):
        rows = np.flatnonzero((table["group"] == g).to_numpy())
        coef_lr, coef_bs = post.law_coefficients(_data.resolvable(post, g), "law", 0)
        coef = coef_lr if quantity == "lr" else coef_bs
        log_opt = (
            coef[0][:, None]
            + coef[1][:, None] * x[rows][None, :]
            + coef[2][:, None] * y[rows][None, :]
            + effect[:, rows]
        )
        out[rows] = np.exp(np.quantile(log_opt, [lo, 0.5, hi], axis=0)).T
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
    (and ``d + γ y [+ δ x] + offsets + v[setting]`` for the batch; a loss posterior's
    ``m_lr[setting]``, ``m_bs[setting]``), is compared with what the sweep observed there:
    the geometric mean of the near-optimal runs (filled markers) and the single best run
    (open markers). Points on the diagonal agree.
    The intervals are about each *fitted* setting's optimum (its own effect included), not
    about a new setting.

    Parameters
    ----------
    post : StepLawPosterior
        A fitted optimum or loss posterior.
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
    table = _settings_table(post, sweeps, _data.threshold(post, threshold))
    fig = new_figure(fig, (10.0, 5.8))
    axes = fig.subplots(1, 2)
    colours = group_colours(table["group"])
    for ax, quantity in zip(axes, ("lr", "batch_tokens")):
        pred = _fitted_optima(post, table, quantity, prob)
        for g, c in colours.items():
            rows = (table["group"] == g).to_numpy()
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
        observed = table[[f"mean_{quantity}", f"best_{quantity}"]].to_numpy()
        lo = min(np.nanmin(pred[:, 0]), np.nanmin(observed))
        hi = max(np.nanmax(pred[:, 2]), np.nanmax(observed))
        lim = (lo / 1.25, hi * 1.25)
        ax.plot(lim, lim, color="0.4", lw=1, ls="--", zorder=1)
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        log_axis(ax, "x", count_or_lr(quantity))
        log_axis(ax, "y", count_or_lr(quantity))
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(
            f"posterior optimum of the fitted setting, {LABELS[quantity]}\n"
            f"(median, {prob:.0%} interval)"
        )
        ax.set_ylabel(f"observed {LABELS[quantity]}")
        ax.set_title(f"optimal {LABELS[quantity]}", fontsize="medium")
    handles = [
        handle(g, color=c, marker="o", mec="black", mew=0.6, ls="none") for g, c in colours.items()
    ]
    handles += [
        handle("near-optimal mean (fitted)", color="0.3", marker="o", ls="none"),
        handle("best single run", color="0.3", marker="o", mfc="none", ls="none"),
    ]
    fig.legend(
        handles=handles, loc="outside lower center", ncols=4, frameon=False, fontsize="small"
    )
    return fig


def relative_loss_check(
    post: LossPosterior,
    sweeps: pd.DataFrame,
    *,
    prob: float = 0.9,
    max_excess: float = 0.05,
    ax: Axes | None = None,
) -> Axes:
    """Observed against fitted relative loss of every run the loss model was fitted on.

    For each run that did not diverge, the posterior of its expected loss (``L*·(1 + q)``,
    the surface at the run's lr and batch, with its fitted setting's own optimum and L*:
    :meth:`~bayes_steplaw.bayes.loss.LossPosterior.run_predictions`) is expressed, like the
    observation, relative to the setting's *observed* minimum loss. Points on the diagonal
    agree; the bars are the ``prob`` interval of the expected loss (run-to-run noise not
    included, so the observed points scatter about them).

    Parameters
    ----------
    post : LossPosterior
        The loss model (``load_default("loss")``).
    sweeps : DataFrame
        The sweep table the posterior was fitted on.
    prob : float
        Mass of the equal-tailed interval drawn as error bars.
    max_excess : float
        The view: relative losses up to this (every run is drawn; those further from their
        setting's best lie outside the axes).
    ax : Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Linear axes in percent; one colour per group.
    """
    ax = new_axes(ax, figsize=(6.0, 5.6))
    pred = post.run_predictions(sweeps)
    runs = pred["design"].runs
    alive = ~runs["diverged"].to_numpy(bool)
    best = runs.groupby("setting")["loss"].transform("min").to_numpy(float)
    draws = (pred["loc"][:, alive] / best[alive] - 1.0) * 100.0  # (samples, runs), percent
    lo, med, hi = np.quantile(draws, [*tails(prob)[:1], 0.5, tails(prob)[1]], axis=0)
    observed = (runs["loss"].to_numpy(float)[alive] / best[alive] - 1.0) * 100.0
    groups = _data.group_of_settings(runs[alive])
    for g, c in group_colours(groups).items():
        rows = (groups == g).to_numpy()
        ax.errorbar(med[rows], observed[rows], xerr=[med[rows] - lo[rows], hi[rows] - med[rows]],
                    fmt="o", ms=2.5, lw=0.4, alpha=0.5, color=c,
                    label=f"{g} ({rows.sum()} runs)")  # fmt: skip
    top = 100.0 * max_excess
    bottom = min(0.0, float(np.nanmin(lo)))
    ax.plot([bottom, top], [bottom, top], color="0.3", ls="--", lw=1, label="observed = fitted")
    ax.set_xlim(bottom, top)
    ax.set_ylim(bottom, top)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(
        f"fitted expected relative loss of the run (%)\n(posterior median, {prob:.0%} interval)"
    )
    ax.set_ylabel("observed relative loss (%)\nloss / setting's best − 1")
    n_out = int(((observed > top) | (med > top)).sum())
    ax.set_title(f"{alive.sum()} runs that did not diverge; {n_out} beyond the view",
                 fontsize="small")  # fmt: skip
    ax.legend(loc="upper left", fontsize="small", frameon=False, markerscale=2)
    return ax
