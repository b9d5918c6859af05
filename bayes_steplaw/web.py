"""The planner page's data: posterior draws of the shipped models as one JSON file.

``docs/planner.html`` computes in the browser, from this file alone, what ``predict``,
``plateau_probability`` and ``recommend`` compute in Python. So that the two agree on the same
draws, the file holds exactly the per-draw pieces the Python predictive uses, on posteriors
thinned with :meth:`~bayes_steplaw.Posterior.subsample`:

* the optimum model's law coefficients per group and kind,
  :meth:`~bayes_steplaw.StepLawPosterior.law_coefficients` (``ln lr = a + b·x + c·y`` with
  ``x = ln N − log_n0``, ``y = ln D − log_d0``), for ``predict``'s medians and intervals;
* the landscape model's bowl per group, :meth:`~bayes_steplaw.LandscapePosterior.bowl`
  decomposed so that it can be rebuilt at any (N, D): the optimum's law coefficients
  (``kind="centre"``), the ln curvatures ``ln a = a0 + aN·x + aD·y`` (and ``ln b`` alike), the
  asymmetry ``k`` and the correlation ``rho`` (``h = rho·sqrt(a·b·min(1, k))``), for plateau
  probabilities (the fraction of draws with ``q(x, y) <= tol``) and the recommendation (the
  minimum of the mean of ``q`` over draws);
* the paper's point law (the mean of the published bootstrap fits, ``predict --method
  paper``), the kinds of interval with their descriptions, the default of the CLI, and the
  palette and colormap of :mod:`bayes_steplaw.plots`.

Draw arrays are stored once in ``draws`` (identical arrays, such as the slopes every group
shares, only once) and referred to by name, rounded to ``digits`` significant digits (7: at
most ~5e-6 in ln units, for ln-batch intercepts near 14; far below the page's tolerances). The
layout is versioned by ``format`` / ``format_version``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from ._validate import DEFAULT_PROB, DEFAULT_SEQ_LEN, DEFAULT_TOL, check_count
from .bayes.landscape import LandscapePosterior
from .bayes.law import KINDS, StepLawPosterior, describe_kind
from .bayes.posterior import load_default

FORMAT = "bayes-steplaw-planner"
FORMAT_VERSION = 1
DEFAULT_DRAWS = 2000
"""Draws exported per model: the page and its data stay near 1 MB."""
DIGITS = 7
"""Significant digits of each exported draw."""
NEW_GROUP_LABEL = "new architecture"
_COLORMAP_STOPS = 64


def default_kind(post: StepLawPosterior | None = None) -> str:
    """The kind of interval ``predict`` (API and CLI) gives unless told, for ``post`` (default
    the shipped optimum posterior): :data:`bayes_steplaw.api.DEFAULT_KIND`, or when that is
    None the posterior's own ``default_kind``."""
    from .api import DEFAULT_KIND

    if DEFAULT_KIND is not None:
        return DEFAULT_KIND
    if post is None:
        from .bayes.posterior import load_default

        post = load_default("optimum")
    return post.default_kind


def exportable_kinds(post: StepLawPosterior, seed: int = 0) -> tuple[list[str], dict[str, str]]:
    """The kinds ``post`` can predict, and why each other kind cannot (its error message).

    ``kind="sweep"`` needs a posterior fitted with the best-run offsets; an older one says so.
    """
    kinds, unavailable = [], {}
    for kind in KINDS:
        try:
            post.law_coefficients("dense" if "dense" in post.groups_seen else "new", kind, seed)
        except ValueError as exc:
            unavailable[kind] = str(exc)
        else:
            kinds.append(kind)
    return kinds, unavailable


def planner_posteriors(
    optimum: StepLawPosterior | None = None,
    landscape: LandscapePosterior | None = None,
    *,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> tuple[StepLawPosterior, LandscapePosterior]:
    """The optimum and landscape posteriors thinned to the draws the export holds.

    Parameters
    ----------
    optimum, landscape : Posterior, optional
        Default: the shipped ones (:func:`bayes_steplaw.load_default`).
    n_draws : int
        Draws kept of each (all of them when a posterior has fewer).
    seed : int
        Seed of :meth:`~bayes_steplaw.Posterior.subsample`.

    Returns
    -------
    (StepLawPosterior, LandscapePosterior)
        What the page computes from: compare the page with these, not the full posteriors.
    """
    n_draws = check_count(n_draws, "n_draws", minimum=10)
    optimum = load_default("optimum") if optimum is None else optimum
    landscape = load_default("landscape") if landscape is None else landscape
    if not isinstance(landscape, LandscapePosterior):
        raise ValueError(
            f"landscape must be a landscape posterior; got a {type(landscape).__name__}"
        )
    if not isinstance(optimum, StepLawPosterior):
        raise ValueError(f"optimum must be a Step-Law posterior; got a {type(optimum).__name__}")
    return optimum.subsample(n_draws, seed), landscape.subsample(n_draws, seed)


class _Draws:
    """Named draw arrays, rounded, stored once however often they are referred to."""

    def __init__(self, digits: int):
        self.digits = digits
        self.arrays: dict[str, list[float]] = {}
        self._names: dict[bytes, str] = {}

    def add(self, name: str, values: np.ndarray) -> str:
        values = np.asarray(values, dtype=float).ravel()
        if not np.isfinite(values).all():
            raise ValueError(f"the draws of {name} are not all finite; refit or check the file")
        rounded = np.array([float(f"{v:.{self.digits}g}") for v in values.tolist()])
        if not rounded.any():
            name = "zeros"  # a term the model lacks (e.g. the batch law's ln N slope)
        key = rounded.tobytes()
        if key not in self._names:
            self._names[key] = name
            self.arrays[name] = rounded.tolist()
        return self._names[key]


def _geometry(post: StepLawPosterior) -> dict[str, Any]:
    m = post.metadata
    return {
        "log_n0": m["log_n0"],
        "log_d0": m["log_d0"],
        "N_range": list(m["N_range"]),
        "D_range": list(m["D_range"]),
    }


def _law_refs(draws: _Draws, prefix: str, coef_lr, coef_bs) -> dict[str, list[str]]:
    terms = ("intercept", "lnN", "lnD")
    return {
        law: [draws.add(f"{prefix}/{law}/{t}", coef[i]) for i, t in enumerate(terms)]
        for law, coef in (("lr", coef_lr), ("bs", coef_bs))
    }


def _bowl_refs(draws: _Draws, land: LandscapePosterior, group: str, seed: int) -> dict:
    """The bowl of ``group`` as pieces linear in the centred ln N, ln D (see module doc)."""
    m = land.metadata
    coef_lr, coef_bs = land.law_coefficients(group, "centre", seed)
    refs = _law_refs(draws, f"landscape/{group}", coef_lr, coef_bs)
    # the curvature at the data's centre carries the group's offset (new groups: the same
    # draws bowl() makes with this seed); the slopes are shared by every group
    n0, d0 = math.exp(m["log_n0"]), math.exp(m["log_d0"])
    centre = land.bowl(n0, d0, group, seed)
    x0, y0 = math.log(n0) - m["log_n0"], math.log(d0) - m["log_d0"]
    for which, key in (("lr", "a"), ("bs", "b")):
        if "ND" in m.get("curvature", "shared"):
            slope_n = land.flat(f"curv_{which}_N")
            slope_d = land.flat(f"curv_{which}_D")
        else:
            slope_n = slope_d = np.zeros(land.n_samples)
        intercept = np.log(centre[key]) - slope_n * x0 - slope_d * y0
        refs[f"log_{key}"] = [
            draws.add(f"landscape/{group}/log_{key}/intercept", intercept),
            draws.add(f"landscape/log_{key}/lnN", slope_n),
            draws.add(f"landscape/log_{key}/lnD", slope_d),
        ]
    refs["k"] = draws.add("landscape/k", centre["k"])
    refs["rho"] = draws.add("landscape/rho", land.flat("rho"))
    return refs


def _paper_law(paper) -> dict[str, Any]:
    """The paper's point law in ln form: ln lr = a + b ln N + c ln D, ln B = d + g ln D."""
    if paper is None:
        from .bootstrap import BootstrapOLS

        paper = BootstrapOLS.from_published()
    m = paper.mean_coefficients()
    return {
        "label": "the paper's Step Law",
        "description": "mean law of the paper's 1000 published bootstrap fits "
        "(bayes-steplaw predict --method paper)",
        "lr": [m["lr_intercept"], m["lr_coefN"], m["lr_coefD"]],
        "bs": [m["bs_intercept"], 0.0, m["bs_coefD"]],
    }


def _style() -> dict[str, Any]:
    """The plots' colour roles and sequential colormap, for the page to draw alike."""
    import matplotlib

    from .plots import CMAP, OKABE_ITO, ROLE_COLORS

    cmap = matplotlib.colormaps[CMAP]
    stops = [
        matplotlib.colors.to_hex(cmap(i / (_COLORMAP_STOPS - 1))) for i in range(_COLORMAP_STOPS)
    ]
    return {
        "colors": {**ROLE_COLORS, "plateau": OKABE_ITO["orange"]},
        "okabe_ito": dict(OKABE_ITO),
        "colormap": {"name": CMAP, "stops": stops},
    }


def planner_data(
    optimum: StepLawPosterior | None = None,
    landscape: LandscapePosterior | None = None,
    *,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    kind: str | None = None,
    paper=None,
    digits: int = DIGITS,
) -> dict[str, Any]:
    """The planner page's data as a JSON-ready dict.

    Parameters
    ----------
    optimum, landscape : Posterior, optional
        The posteriors to export (default: the shipped ones), thinned with
        :func:`planner_posteriors` (``n_draws``, ``seed``).
    n_draws : int
        Draws per model.
    seed : int
        Seed of the thinning and of the draws ``law_coefficients`` / ``bowl`` make (new
        groups, setting scatter): the page then equals ``predict(..., seed=seed)`` and
        ``plateau_probability(..., seed=seed)`` on the thinned posteriors.
    kind : str, optional
        The kind of interval the page opens with (default: ``predict``'s default,
        :func:`default_kind`). Every kind of :data:`bayes_steplaw.bayes.law.KINDS` the
        optimum posterior can predict is exported; the others are listed, with the reason,
        under ``kinds_unavailable`` (the page shows them disabled).
    paper : BootstrapOLS, optional
        Ensemble whose mean law is the paper's point (default: the published one).
    digits : int
        Significant digits per exported draw.

    Returns
    -------
    dict
        See the module docstring for the layout.
    """
    digits = check_count(digits, "digits", minimum=4)
    opt, land = planner_posteriors(optimum, landscape, n_draws=n_draws, seed=seed)
    kind = default_kind(opt) if kind is None else kind
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}; got {kind!r}")
    kinds, unavailable = exportable_kinds(opt, seed)
    if kind not in kinds:
        raise ValueError(
            f"the page's default kind {kind!r} cannot be exported: {unavailable[kind]}"
        )
    for name, post in (("optimum", opt), ("landscape", land)):
        post.gate(False)  # the page has no allow_unconverged: refuse what predict refuses
        if post.n_samples < 10:
            raise ValueError(f"the {name} posterior has only {post.n_samples} draws")
    groups = [*opt.groups_seen, "new"]
    missing = [g for g in groups[:-1] if g not in land.groups_seen]
    if missing:
        raise ValueError(
            f"the landscape posterior lacks the group(s) {missing} of the optimum posterior"
        )
    draws = _Draws(digits)
    coefficients = {
        group: {
            k: _law_refs(draws, f"optimum/{group}/{k}", *opt.law_coefficients(group, k, seed))
            for k in kinds
        }
        for group in groups
    }
    bowls = {group: _bowl_refs(draws, land, group, seed) for group in groups}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "n_draws": {"optimum": opt.n_samples, "landscape": land.n_samples},
        "seed": seed,
        "digits": digits,
        "defaults": {
            "N": "7e9",
            "D": "1.4e12",
            "seq_len": DEFAULT_SEQ_LEN,
            "group": "dense",
            "kind": kind,
            "prob": DEFAULT_PROB,
            "tol": DEFAULT_TOL,
        },
        "interval_method": {
            "name": "hdi",
            "description": "highest-density interval of the log quantity (the narrowest "
            "interval in ratio terms), mapped back: Prediction.interval's default",
        },
        "groups": [{"name": g, "label": NEW_GROUP_LABEL if g == "new" else g} for g in groups],
        "kinds": [{"name": k, "description": describe_kind(k)} for k in kinds],
        "kinds_unavailable": [
            {"name": k, "description": describe_kind(k), "reason": why}
            for k, why in unavailable.items()
        ],
        "optimum": {**_geometry(opt), "coefficients": coefficients},
        "landscape": {
            **_geometry(land),
            "curvature": land.metadata.get("curvature", "shared"),
            "bowls": bowls,
            # plateau_region's default grid: the median optimum ×/÷ e^2.5 in lr, e^3 in batch
            "grid": {"lr_half_width": 2.5, "bs_half_width": 3.0, "n": 121},
        },
        "paper": _paper_law(paper),
        "style": _style(),
        "draws": draws.arrays,
    }


def export_web(
    path: str | os.PathLike,
    optimum: StepLawPosterior | None = None,
    landscape: LandscapePosterior | None = None,
    *,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    kind: str | None = None,
    paper=None,
) -> Path:
    """Write the planner page's data (:func:`planner_data`) as compact JSON.

    ``path`` is checked before any work (:func:`bayes_steplaw._io.check_output_path`: not a
    directory, a FIFO or a device; its folder exists and can be written); the file is written
    beside it and renamed over it (:func:`bayes_steplaw._io.write_text`), so the page never
    reads a part; an unchanged export leaves the file (and its modification time) as it was.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    bayes_steplaw._io.OutputPathError
        ``path`` cannot be written (an :class:`OSError`; the message names the reason).
    """
    from ._io import check_output_path, write_text

    path = Path(path)
    target = check_output_path(path, "path")
    data = planner_data(optimum, landscape, n_draws=n_draws, seed=seed, kind=kind, paper=paper)
    text = json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n"
    encoded = text.encode()
    if target.is_file() and target.stat().st_size == len(encoded):
        if target.read_bytes() == encoded:
            return path
    write_text(path, text)
    return path
