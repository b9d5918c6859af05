"""Figures of a held-out evaluation (:func:`bayes_steplaw.evaluate`).

:func:`relative_loss_by_setting` (the paper's metric per held-out setting, one marker per
method), :func:`coverage_against_nominal` (how often the intervals held the best run, against
their mass) and :func:`reliability_diagram` (plateau probabilities against the observed
frequency of each event). Each reads the columns of its task (``rel_loss``; ``lr_in_90``,
...; the per-run ``p_sweep``, ``p_plateau``, ``hit_best``, ``hit_star``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .style import PALETTE, ROLE_COLORS, handle, legend_above, new_axes, new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..evaluate import Evaluation

_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
_BASELINE_COLOURS = {"bayes": ROLE_COLORS["posterior"], "paper": ROLE_COLORS["paper"]}
_PREFERRED = ("bayes", "optimum", "ols", "paper")
"""The methods drawn by default, those of them the evaluation has."""


def _colours(methods: Sequence[str]) -> dict[str, str]:
    """The package's choice in the posterior colour, the paper's in its own, others after."""
    rest = iter(c for c in PALETTE if c not in _BASELINE_COLOURS.values())
    return {m: _BASELINE_COLOURS.get(m) or next(rest) for m in methods}


def _methods(result: Evaluation, methods: Sequence[str] | None, column: str) -> list[str]:
    """The methods to draw: those asked for (each must be in the evaluation), else the
    preferred ones the evaluation scored on ``column`` (else every method that did)."""
    table = result.table
    if column in table:
        scored = table[table[column].notna()]
    else:
        scored = table.iloc[:0]
    known = list(dict.fromkeys(table["method"]))
    if methods is None:
        have = list(dict.fromkeys(scored["method"]))
        preferred = [m for m in _PREFERRED if m in have]
        if not have:
            raise ValueError(f"no method of this evaluation has {column!r}; it has {known}")
        return preferred or have
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"methods {unknown} are not in this evaluation; it has {known}")
    return list(methods)


def relative_loss_by_setting(
    result: Evaluation,
    methods: Sequence[str] | None = None,
    *,
    ax: Axes | None = None,
) -> Axes:
    """The relative loss (‰) of the grid run nearest to each method's choice, per setting.

    Settings run along x, grouped by family and sorted by compute 6·N·D within it; one marker
    per method, the family means as horizontal lines. ``methods``: default those of ``bayes``,
    ``optimum``, ``ols`` and ``paper`` the evaluation scored.
    """
    names = _methods(result, methods, "rel_loss")
    table = result.table[result.table["method"].isin(names)]
    order = table.drop_duplicates("setting").sort_values(["family", "compute"])["setting"].tolist()
    position = {s: i for i, s in enumerate(order)}
    ax = new_axes(ax, figsize=(9.0, 4.2))
    colours = _colours(names)
    spread = np.linspace(-0.25, 0.25, len(names)) if len(names) > 1 else [0.0]
    handles = []
    for k, name in enumerate(names):
        rows = table[table["method"] == name]
        x = rows["setting"].map(position).to_numpy(float) + spread[k]
        y = rows["rel_loss"].to_numpy(float) * 1e3
        ax.plot(x, y, _MARKERS[k % len(_MARKERS)], color=colours[name], ms=5, alpha=0.85)
        for _, part in rows.groupby("family"):
            xs = part["setting"].map(position).to_numpy(float)
            ax.hlines(
                part["rel_loss"].mean() * 1e3, xs.min() - 0.4, xs.max() + 0.4,
                color=colours[name], lw=1.2, alpha=0.8,
            )  # fmt: skip
        mean = rows["rel_loss"].mean() * 1e3
        handles.append(
            handle(
                f"{name} (mean {mean:.2f}‰)",
                color=colours[name],
                marker=_MARKERS[k % len(_MARKERS)],
                ls="none",
            )
        )
    families = table.drop_duplicates("setting").set_index("setting").loc[order, "family"]
    edges = [i for i in range(1, len(order)) if families.iloc[i] != families.iloc[i - 1]]
    for edge in edges:
        ax.axvline(edge - 0.5, color="0.6", lw=0.8, ls=":")
    starts = [0, *edges]
    ends = [*edges, len(order)]
    for lo, hi in zip(starts, ends):
        ax.text((lo + hi - 1) / 2, 1.0, families.iloc[lo], transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize="small")  # fmt: skip
    ax.set_xticks([])
    ax.set_xlim(-0.7, len(order) - 0.3)
    ax.set_xlabel("held-out setting (by family, then compute 6ND)")
    ax.set_ylabel("relative loss of the nearest grid run (‰)")
    ax.set_ylim(bottom=0)
    legend_above(ax, handles, title=f"{result.meta.get('split', '')}: lines are family means")
    return ax


def coverage_against_nominal(
    result: Evaluation,
    methods: Sequence[str] | None = None,
    *,
    fig: Figure | None = None,
) -> Figure:
    """How often each method's intervals held the held-out best run, against their mass.

    Two panels (lr, batch); a point per method and mass, with a 90% binomial band around the
    diagonal for the number of settings (a calibrated method's points fall inside it).
    ``methods``: default those of ``bayes``, ``optimum``, ``ols`` and ``paper`` with intervals.
    """
    from scipy import stats

    first = next((c for c in result.table if c.startswith("lr_in_")), "lr_in_90")
    names = _methods(result, methods, first)
    fig = new_figure(fig, (9.0, 4.0))
    axes = fig.subplots(1, 2, sharey=True)
    masses = sorted(
        (c.rsplit("_", 1)[1] for c in result.table if c.startswith("lr_in_")), key=float
    )
    nominal = np.array([float(m) for m in masses]) / 100
    n = result.table.drop_duplicates("setting").shape[0]
    lo, hi = stats.binom.ppf([0.05, 0.95], n, nominal[:, None]).T / n
    colours = _colours(names)
    for ax, which, title in zip(axes, ("lr", "batch"), ("peak learning rate", "batch size")):
        grid = np.linspace(0, 1, 2)
        ax.plot(grid, grid, color="0.4", lw=1, ls="--")
        ax.fill_between(
            nominal, lo, hi, color="0.85", lw=0, label="90% band of a calibrated method"
        )
        for k, name in enumerate(names):
            rows = result.table[result.table["method"] == name]
            observed = [rows[f"{which}_in_{m}"].mean() for m in masses]
            ax.plot(nominal, observed, marker=_MARKERS[k % len(_MARKERS)], color=colours[name],
                    label=name)  # fmt: skip
        ax.set_xlim(0.4, 1.0)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("interval mass (nominal coverage)")
        ax.set_title(f"{title}: the best run inside the interval", fontsize="medium")
    axes[0].set_ylabel(f"share of the {n} held-out settings")
    axes[1].legend(loc="lower right", fontsize="small", frameon=False)
    return fig


def reliability_diagram(
    result: Evaluation,
    method: str | None = None,
    *,
    ax: Axes | None = None,
) -> Axes:
    """Plateau probabilities of the held-out runs against the observed frequency of each
    event, binned: relative to the sweep's best run (``reference="sweep"``), relative to L*
    (``reference="optimum"``), and the first event against the second's probability.
    ``method``: default the first method of the evaluation with plateau probabilities."""
    from ..evaluate.metrics import EVENTS

    if method is None:
        runs = result.runs
        have = []
        if runs is not None and "hit_best" in runs:
            probs = [c for c in ("p_sweep", "p_plateau") if c in runs]
            scored = runs[runs[probs].notna().any(axis=1)] if probs else runs.iloc[:0]
            have = list(dict.fromkeys(scored["method"]))
        if not have:
            raise ValueError("this evaluation has no plateau probabilities (task 'plateau')")
        method = next((m for m in result.methods if m in have), have[0])
    ax = new_axes(ax, figsize=(5.6, 5.0))
    ax.plot([0, 1], [0, 1], color="0.4", lw=1, ls="--")
    styles = {
        "best": (ROLE_COLORS["posterior"], "o", "-", "best run of the sweep, P(reference='sweep')"),
        "star": (PALETTE[2], "s", "-", "L* (yardstick), P(reference='optimum')"),
        "best_by_optimum": (
            ROLE_COLORS["paper"],
            "x",
            ":",
            "best run of the sweep, P(reference='optimum')",
        ),
    }
    for event in EVENTS:
        table = result.reliability(event)
        if table.empty or method not in table.index.get_level_values(0):
            continue
        rows = table.loc[method].dropna(subset=["mean_predicted"])
        colour, marker, ls, label = styles[event]
        ax.plot(rows["mean_predicted"], rows["observed_fraction"], marker=marker, ls=ls,
                color=colour, label=label)  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("predicted probability (bin mean)")
    ax.set_ylabel("observed fraction of held-out runs")
    ax.set_title(f"{method}: within tol of ...", fontsize="medium")
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    return ax
