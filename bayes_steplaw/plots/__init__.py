"""Plots of Step Law posteriors, the released sweeps and the paper's bootstrap ensemble.

Every function draws with matplotlib alone and returns what it drew on: the
:class:`~matplotlib.figure.Figure` of a multi-panel plot, or the :class:`~matplotlib.axes.Axes`
of a single-panel plot (drawn into ``ax=`` when you pass one), so that you can restyle,
annotate or save it. Nothing is shown or saved here, and matplotlib is imported only when a
function draws (importing :mod:`bayes_steplaw` or this package does not import it).

One module per family of figures, all drawn with the pieces of :mod:`.style`:

- :mod:`.laws`: the law -- :func:`exponent_pairs`, :func:`optimum_scaling`,
  :func:`delta_posterior`, :func:`interval_comparison`;
- :mod:`.groups`: the groups -- :func:`group_offsets`, :func:`offset_contrast`;
- :mod:`.surface`: the (lr, batch) plane of one setting, from the loss posterior --
  :func:`loss_surface` (every answer of one posterior at one setting), :func:`landscape_map`,
  :func:`plan`;
- :mod:`.checks`: posterior checks -- :func:`setting_optima`, :func:`relative_loss_check`;
- :mod:`.evaluation`: a held-out evaluation -- :func:`relative_loss_by_setting`,
  :func:`coverage_against_nominal`, :func:`reliability_diagram`.

Colours come from one colour-blind-safe palette, the Okabe-Ito set
(:data:`~bayes_steplaw.plots.style.OKABE_ITO`); each kind of estimate keeps its colour across
plots (:data:`~bayes_steplaw.plots.style.ROLE_COLORS`): the Bayesian posterior in blue, the
paper's bootstrap ensemble in orange, the paper's Table 2 in vermillion, observed runs in black,
recommendations in bluish green. Sequential quantities (relative loss, N or D as a colour) use
``viridis`` (:data:`~bayes_steplaw.plots.style.CMAP`), which is perceptually uniform and
colour-blind safe.

Quantities that span decades (lr, batch size, N, D) are drawn on log axes
(:func:`log_axis`), and axis labels carry their units (``peak learning rate``, ``batch size
(tokens)``, ``N (non-embedding parameters)``, ``D (training tokens)``). Every figure with an
interval names what it is about in the package's one vocabulary
(:data:`bayes_steplaw.bayes.predictive.SHORT` in legends,
:data:`~bayes_steplaw.bayes.predictive.ABOUT` in titles): the law (``kind="law"``), a new
setting's optimum (``kind="optimum"``), a sweep's best run (``kind="sweep"``), a fitted
setting, or a group's offset.

Figures of the loss surface take a :class:`~bayes_steplaw.bayes.loss.LossPosterior`
(``load_default("loss")``); the figures of the law take any Step-Law posterior (the optimum
model's or the loss model's).

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from bayes_steplaw import load_default, load_sweeps, plots
>>> ax = plots.optimum_scaling(load_default("optimum"), load_sweeps("dense"))  # doctest: +SKIP
>>> ax.figure.savefig("lr_vs_D.png", dpi=150)  # doctest: +SKIP
>>> ax = plots.loss_surface(load_default("loss"), 7e9, 1.4e12, batch_tokens=4e6)  # doctest: +SKIP
"""

from __future__ import annotations

from .checks import relative_loss_check, setting_optima
from .evaluation import coverage_against_nominal, relative_loss_by_setting, reliability_diagram
from .groups import group_offsets, offset_contrast
from .laws import delta_posterior, exponent_pairs, interval_comparison, optimum_scaling
from .style import CMAP, OKABE_ITO, PALETTE, ROLE_COLORS, log_axis, si
from .surface import landscape_map, loss_surface, plan

__all__ = [
    "CMAP",
    "OKABE_ITO",
    "PALETTE",
    "ROLE_COLORS",
    "coverage_against_nominal",
    "delta_posterior",
    "exponent_pairs",
    "group_offsets",
    "interval_comparison",
    "landscape_map",
    "log_axis",
    "loss_surface",
    "offset_contrast",
    "optimum_scaling",
    "plan",
    "relative_loss_by_setting",
    "relative_loss_check",
    "reliability_diagram",
    "setting_optima",
    "si",
]
