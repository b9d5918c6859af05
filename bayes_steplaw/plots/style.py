"""The look every figure shares: palette, colour roles, labels, log axes, markers, legends.

Nothing here reads a posterior or a sweep table: the figure modules (:mod:`.laws`,
:mod:`.groups`, :mod:`.surface`, :mod:`.checks`) compute what to draw and draw it with these
pieces, so that a colour, a tick or a marker means the same in every plot. matplotlib is
imported inside the functions, never at module import.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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

PLATEAU_COLOR = OKABE_ITO["orange"]
"""Colour of plateau-probability contours (drawn over the viridis maps, where orange reads)."""

EXTRAPOLATION_GREY = "0.92"
"""Background of x ranges outside the fitted data."""

LABELS = {
    "lr": "peak learning rate",
    "batch_tokens": "batch size (tokens)",
    "N": "N (non-embedding parameters)",
    "D": "D (training tokens)",
}
"""Axis label of each quantity, with its unit."""

SYMBOLS = {
    "alpha": r"$\alpha$  (lr $\propto N^{\alpha}$)",
    "beta": r"$\beta$  (lr $\propto D^{\beta}$)",
    "gamma": r"$\gamma$  (batch $\propto D^{\gamma}$)",
    "delta": r"$\delta$  (batch $\propto N^{\delta}$)",
}
"""Axis label of each exponent: its symbol and the law it belongs to."""


def plt():
    """``matplotlib.pyplot``, imported on first use (importing the package must not)."""
    import matplotlib.pyplot

    return matplotlib.pyplot


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (6.4, 4.4)) -> Axes:
    """``ax``, or the axes of a new constrained-layout figure of ``figsize``."""
    if ax is not None:
        return ax
    _, ax = plt().subplots(figsize=figsize, layout="constrained")
    return ax


def new_figure(fig: Figure | None, figsize: tuple[float, float]) -> Figure:
    """``fig`` cleared, or a new constrained-layout figure of ``figsize``."""
    if fig is None:
        return plt().figure(figsize=figsize, layout="constrained")
    fig.clear()
    return fig


def si(value: float, unit: str = "") -> str:
    """Format a count the way people say it: ``2.15e8`` -> ``"215M"``, ``1.4e12`` -> ``"1.4T"``."""
    value = float(value)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}"


def fmt_lr(value: float) -> str:
    """A learning rate as a tick label: ``0.002`` -> ``"2e-3"``."""
    if value <= 0:
        return ""
    exp = int(np.floor(np.log10(value) + 1e-9))
    return f"{value / 10.0**exp:g}e{exp}"


def fmt_value(value: float, quantity: str) -> str:
    """A value in a legend: ``2.13e-03`` for a learning rate, ``4.19M`` for a count."""
    return f"{value:.2e}" if quantity == "lr" else si(value)


def count_or_lr(quantity: str) -> str:
    """The tick style (:func:`log_axis` ``quantity``) of ``"lr"`` or a count."""
    return "lr" if quantity == "lr" else "count"


def kind_label(kind: str) -> str:
    """Short legend name of what an interval of ``kind`` is about: the package's one
    vocabulary (:data:`~bayes_steplaw.bayes.law.KIND_NAMES` for the optimum's kinds,
    :data:`~bayes_steplaw.bayes.predictive.SHORT` for the loss's)."""
    from ..bayes.law import KIND_NAMES
    from ..bayes.predictive import SHORT

    if kind in KIND_NAMES:
        return KIND_NAMES[kind]
    return SHORT.get(kind, f"kind={kind!r}")


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
    fmt = fmt_lr if quantity == "lr" else si
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))


def lr_batch_axes(ax: Axes) -> None:
    """Log lr on x and log batch tokens on y, labelled: the axes of every (lr, batch) panel."""
    log_axis(ax, "x", "lr")
    log_axis(ax, "y")
    ax.set_xlabel(LABELS["lr"])
    ax.set_ylabel(LABELS["batch_tokens"])


def ratio_ticks(ax: Axes, which: str = "x") -> None:
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


def log_colorbar(ax: Axes, cmap, norm, label: str) -> None:
    """A colorbar of a log-normed quantity (N or D) with ``si`` tick labels."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    cb = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01)
    cb.set_label(label)
    cb.ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: si(v)))
    cb.ax.yaxis.set_minor_formatter(NullFormatter())


def truncated(cmap, top: float = 0.9):
    """``cmap`` cut at ``top`` (viridis' last yellow reads badly on white)."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(cmap(np.linspace(0, top, 256)))


def group_colours(names: Iterable[str]) -> dict[str, str]:
    """One palette colour per name, in order of first appearance."""
    unique = list(dict.fromkeys(names))
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(unique)}


def tails(prob: float) -> list[float]:
    """The quantile levels of an equal-tailed interval of mass ``prob``."""
    return [(1 - prob) / 2, (1 + prob) / 2]


def shade_outside(ax: Axes, lo: float, hi: float, label: str | None = None) -> None:
    """Grey out the parts of the x axis outside [lo, hi] (extrapolation)."""
    x0, x1 = ax.get_xlim()
    kw = dict(color=EXTRAPOLATION_GREY, zorder=0, lw=0)
    if x0 < lo:
        ax.axvspan(x0, lo, label=label, **kw)
        label = None
    if x1 > hi:
        ax.axvspan(hi, x1, label=label, **kw)
    ax.set_xlim(x0, x1)


def legend_above(ax: Axes, handles: Sequence, title: str | None = None, **kw) -> None:
    """A frameless two-column legend just above the axes (keeps the data area free)."""
    options = dict(
        loc="lower center",
        bbox_to_anchor=(0.5, 1.01),
        ncols=2,
        fontsize="x-small",
        title_fontsize="small",
        frameon=False,
    )
    ax.legend(handles=handles, title=title, **(options | kw))


def handle(label: str, **style):
    """A legend entry (an empty Line2D) drawn in ``style``."""
    from matplotlib.lines import Line2D

    return Line2D([], [], label=label, **style)


def mark_point(ax: Axes, x: float, y: float, marker: str, role: str, label: str, ms: float = 11):
    """Plot one filled, white-edged marker in a role's colour; return its legend handle.

    The markers of point estimates: ``"X"`` the paper's Step Law, ``"P"`` the Bayesian law's
    median, ``"*"`` (white, :func:`mark_observed_best`) the observed minimum.
    """
    style = dict(marker=marker, color=ROLE_COLORS[role], mec="white", ls="none")
    ax.plot(x, y, ms=ms, mew=1.0, zorder=6, **style)
    return handle(label, ms=9, **style)


def mark_observed_best(ax: Axes, x: float, y: float, label: str = "observed minimum"):
    """The observed best run of a sweep: a white star edged in black; returns its handle."""
    style = dict(marker="*", color="white", mec="black", ls="none")
    ax.plot(x, y, ms=17, mew=1.0, zorder=5, **style)
    return handle(label, ms=12, **style)


def mark_recommendation(ax: Axes, lr: float, batch_tokens: float, label: str):
    """A recommended (lr, batch): an open bluish-green diamond; returns its legend handle."""
    style = dict(marker="D", mfc="none", mec=ROLE_COLORS["recommend"], ls="none")
    ax.plot(lr, batch_tokens, ms=15, mew=2.4, zorder=7, **style)
    return handle(label, ms=9, mew=2, **style)


def mark_fixed_batch(ax: Axes, lr: float, batch_tokens: float, label: str):
    """The best lr at a batch size fixed by the hardware: a sky-blue square on a dotted line."""
    ax.axhline(batch_tokens, color="white", lw=1, ls=":")
    style = dict(marker="s", color=OKABE_ITO["sky_blue"], mec="black", ls="none")
    ax.plot(lr, batch_tokens, ms=8, **style)
    return handle(label, **style)


def interval_histogram(
    ax: Axes,
    values: np.ndarray,
    bins: np.ndarray,
    lo: float,
    hi: float,
    *,
    label: str,
    outside_label: str | None = None,
    density: bool = True,
    colour: str = ROLE_COLORS["posterior"],
) -> np.ndarray:
    """Histogram of draws, the bins inside [lo, hi] darker (the interval); returns the counts.

    ``bins`` may be log-spaced: bar centres are the bins' geometric midpoints then, so the
    bars line up on a log axis.
    """
    counts, edges = np.histogram(values, bins=bins, density=density)
    log_bins = edges[0] > 0 and np.allclose(np.diff(np.log(edges)), np.log(edges[1] / edges[0]))
    centres = np.sqrt(edges[1:] * edges[:-1]) if log_bins else 0.5 * (edges[1:] + edges[:-1])
    widths = np.diff(edges)
    inside = (centres >= lo) & (centres <= hi)
    ax.bar(
        centres[~inside],
        counts[~inside],
        width=widths[~inside],
        color=colour,
        alpha=0.25,
        lw=0,
        label=outside_label or "_nolegend_",
    )
    ax.bar(
        centres[inside],
        counts[inside],
        width=widths[inside],
        color=colour,
        alpha=0.6,
        lw=0,
        label=label,
    )
    return counts
