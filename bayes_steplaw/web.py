"""The planner page's data: the per-draw loss surfaces of one loss posterior, as one JSON file.

``docs/planner.html`` computes in the browser, from this file alone, what the package computes
in Python from the same posterior: the optimum's median and interval (``predict(kind=
"optimum" | "law")``), the expected loss over (lr, batch) (``expected_loss``), the Bayes
decision with lr, batch or neither fixed (``recommend``), the plateau probability
(``plateau_probability(reference="optimum")``) and the best loss L* (``best_loss``). Each is a
reduction of the same per-draw surfaces (:mod:`bayes_steplaw.bayes.answers`), and the page
evaluates them with the formulas of :mod:`bayes_steplaw.bayes.surface`, written again in
JavaScript (``docs/_static/planner_core.js``).

So that the page and Python agree on the same draws, the file holds, for every group of the
posterior and ``"new"``, the coefficients :meth:`~bayes_steplaw.LossPosterior.surface` gives
a new setting of that group (``post.surface(group, seed=seed).coef``) on the posterior thinned
with :meth:`~bayes_steplaw.Posterior.subsample` (:func:`planner_posterior`):

* ``m_lr``, ``m_bs``: the optimum's (intercept, ln N slope, ln D slope) per draw, with a new
  setting's scatter; ``law_m_lr``, ``law_m_bs`` the same without it (``law=True``: the law's
  optimum, ``predict(kind="law")``);
* ``shape``: each shape parameter of the surface (:data:`bayes_steplaw.bayes.surface.SHAPES`)
  as 3 or 5 coefficients of (1, u, v[, v², u·v]);
* ``star``: the best-loss law (``E``, ``log_A``, ``a``, ``log_B``, ``b``, ``c``, or ``E``,
  ``log_K``, ``a``, ``b``) and ``star_scale``, a new setting's factor on L*;
* ``tau0`` (3 coefficients), ``tau1``, ``tau2``, ``width``: the divergence edge.

The run noise is left out: no answer of the page needs it (a simulated sweep, ``kind="sweep"``,
is random and is not reproduced; the page says so). Each named piece refers to an entry of
``draws``; identical arrays (the slopes every group shares) are stored once. A draw array is
its float64 values, little-endian, in base64 (``encoding``): exact, so the page computes on
the very numbers Python computes on, and within 4% of the size of the same draws rounded to 7
significant decimal digits (half that of exact decimals; ``benchmarks/bench_planner.py``).

Tolerances. On the same draws the page differs from Python by floating-point rounding: the
optimum's median and bounds, L* and every expected loss by ~1e-15 relative (the tests allow
1e-6); the decision, found by the same grid and the same Nelder-Mead steps, by as little, and
at worst by the optimiser's tolerance, 1e-3 in ln lr and ln batch (the tests allow 1/8
octave); a plateau probability by 1/draws for each draw whose excess loss sits on the
tolerance (the tests allow 0.01). Against the full posterior, every number carries the Monte
Carlo error of ``n_draws`` draws: a standard error of at most 0.016 on a probability with the
default 1000 draws (the page's footer says so).
The layout is versioned by ``format`` / ``format_version``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from ._validate import DEFAULT_PROB, DEFAULT_TOL, check_count

FORMAT = "bayes-steplaw-planner"
FORMAT_VERSION = 2
ENCODING = "float64-le-base64"
DEFAULT_DRAWS = 1000
"""Draws exported: with every group of the shipped posterior the page and its data stay near
1.2 MB (2 MB at most), and the page computes its map and its decisions within ~0.1 s."""
MAX_DRAWS = 5000
NEW_GROUP_LABEL = "new architecture"
PAGE_KINDS = ("optimum", "law")
"""The kinds of optimum interval the page computes (``predict(kind=...)``)."""
MAP_GRID = {"lr_half_width": 2.5, "bs_half_width": 3.0, "n": 48}
"""The page's map: ``n`` x ``n`` points over the median optimum ×/÷ e^2.5 in lr and e^3 in
batch (the axes of ``numpy.linspace``)."""
DECISION_TOLERANCES = {"xatol": 1e-3, "fatol": 1e-9}
"""Nelder-Mead's stopping rule in :func:`~bayes_steplaw.bayes.answers.decide`."""
_COLORMAP_STOPS = 64


def planner_posterior(posterior=None, *, n_draws: int = DEFAULT_DRAWS, seed: int = 0):
    """The loss posterior the page computes from: ``posterior`` thinned to ``n_draws``.

    Parameters
    ----------
    posterior : path, LossPosterior or None
        Default: the shipped loss posterior (:func:`bayes_steplaw.load_default`).
    n_draws : int
        Draws kept (all of them when the posterior has fewer).
    seed : int
        Seed of :meth:`~bayes_steplaw.Posterior.subsample`.

    Returns
    -------
    LossPosterior
        Compare the page with this posterior (or this posterior saved and loaded again), not
        with the full one: ``bsl.recommend(N, D, posterior=planner_posterior())``.
    """
    from .api import resolve_posterior

    n_draws = check_count(n_draws, "n_draws", minimum=10)
    post = resolve_posterior(posterior, "loss")
    return post.subsample(n_draws, seed)


class _Draws:
    """Named draw arrays, stored once however often they are referred to."""

    def __init__(self):
        self.arrays: dict[str, str] = {}
        self._names: dict[bytes, str] = {}

    def add(self, name: str, values) -> str:
        values = np.ascontiguousarray(np.asarray(values, dtype="<f8").ravel())
        if not np.isfinite(values).all():
            raise ValueError(f"the draws of {name} are not all finite; refit or check the file")
        if not values.any():
            name = "zeros"  # a term the model lacks (e.g. the batch law's ln N slope)
        key = values.tobytes()
        if key not in self._names:
            self._names[key] = name
            self.arrays[name] = base64.b64encode(key).decode("ascii")
        return self._names[key]

    def terms(self, name: str, coef) -> list[str]:
        """One reference per row of ``coef`` (terms x draws)."""
        return [self.add(f"{name}/{i}", row) for i, row in enumerate(np.atleast_2d(coef))]


def _group_pieces(draws: _Draws, post, group: str, seed: int) -> dict[str, Any]:
    """The per-draw coefficients of a new setting of ``group`` (see the module docstring)."""
    coef = post.surface(group, seed=seed).coef
    law = post.surface(group, seed=seed, law=True).coef
    g = group
    star = coef["star"]
    if star is None:
        raise ValueError("this posterior's surfaces carry no best-loss law; refit it")
    shapes = [k[len("shape_") :] for k in coef if k.startswith("shape_")]
    return {
        "m_lr": draws.terms(f"{g}/m_lr", coef["m_lr"]),
        "m_bs": draws.terms(f"{g}/m_bs", coef["m_bs"]),
        "law_m_lr": draws.terms(f"{g}/law_m_lr", law["m_lr"]),
        "law_m_bs": draws.terms(f"{g}/law_m_bs", law["m_bs"]),
        "shape": {s: draws.terms(f"{g}/shape_{s}", coef[f"shape_{s}"]) for s in shapes},
        "star": {k: draws.add(f"{g}/star_{k}", v) for k, v in star.items()},
        "star_scale": draws.add(f"{g}/star_scale", coef["star_scale"]),
        "tau0": draws.terms(f"{g}/tau0", coef["tau0"]),
        "tau1": draws.add(f"{g}/tau1", coef["tau1"]),
        "tau2": draws.add(f"{g}/tau2", coef["tau2"]),
        "width": draws.add(f"{g}/width", coef["width"]),
    }


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

    from .plots.style import CMAP, OKABE_ITO, PLATEAU_COLOR, ROLE_COLORS

    cmap = matplotlib.colormaps[CMAP]
    stops = [
        matplotlib.colors.to_hex(cmap(i / (_COLORMAP_STOPS - 1))) for i in range(_COLORMAP_STOPS)
    ]
    return {
        "colors": {**ROLE_COLORS, "plateau": PLATEAU_COLOR},
        "okabe_ito": dict(OKABE_ITO),
        "colormap": {"name": CMAP, "stops": stops},
    }


def _source(posterior, post) -> dict[str, Any]:
    """Which posterior the file holds, in words (a user's file by its name only)."""
    m = post.metadata
    name = None
    if isinstance(posterior, (str, os.PathLike)):
        name = Path(posterior).name
    shipped = posterior is None
    return {
        "name": "the shipped loss posterior" if shipped else (name or "a loss posterior"),
        "shipped": shipped,
        "model": m.get("model", "loss"),
        "model_version": m.get("model_version"),
        "surface": m.get("surface"),
        "best_law": m.get("best_law"),
        "n_runs": m.get("n_runs"),
        "n_settings": m.get("n_settings"),
        "converged": bool(post.converged),
    }


def planner_data(
    posterior=None,
    paper=None,
    *,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    kind: str | None = None,
    allow_unconverged: bool = False,
) -> dict[str, Any]:
    """The planner page's data as a JSON-ready dict.

    Parameters
    ----------
    posterior : path, LossPosterior or None
        The loss posterior to export (default: the shipped one), thinned with
        :func:`planner_posterior` (``n_draws``, ``seed``). Its groups fill the page's group
        menu, with ``"new"``.
    paper : BootstrapOLS, optional
        Ensemble whose mean law is the paper's point (default: the published one).
    n_draws : int
        Draws exported.
    seed : int
        Seed of the thinning and of the draws each surface makes (new groups, a new setting's
        scatter): the page then equals the API's answers with ``seed=seed`` on the thinned
        posterior.
    kind : {"optimum", "law"}, optional
        The kind of optimum interval the page opens with (default: the posterior's
        ``default_kind`` when the page computes it, else ``"optimum"``).
    allow_unconverged : bool
        Export a posterior that failed its convergence gate (the page says so).

    Returns
    -------
    dict
        See the module docstring for the layout.
    """
    from .bayes.answers import (
        DECISION_HALF_WIDTHS,
        DECISION_STEPS,
        DIVERGED_EXCESS,
        PLATEAU_ABOUT,
    )
    from .bayes.predictive import ABOUT, SHORT

    post = planner_posterior(posterior, n_draws=n_draws, seed=seed)
    post.gate(allow_unconverged)  # the page answers only what the API would
    if post.n_samples < 10:
        raise ValueError(f"the posterior has only {post.n_samples} draws")
    default_kind = post.default_kind if post.default_kind in PAGE_KINDS else "optimum"
    kind = default_kind if kind is None else kind
    if kind not in PAGE_KINDS:
        raise ValueError(f"kind must be one of {list(PAGE_KINDS)}; got {kind!r}")
    groups = [*post.groups_seen, "new"]
    draws = _Draws()
    pieces = {group: _group_pieces(draws, post, group, seed) for group in groups}
    m = post.metadata
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "encoding": ENCODING,
        "n_draws": post.n_samples,
        "seed": seed,
        "source": _source(posterior, post),
        "setup": post.setup,
        "defaults": {
            "N": "7e9",
            "D": "1.4e12",
            "seq_len": post.seq_len,
            "group": "dense" if "dense" in groups else groups[0],
            "kind": kind,
            "prob": DEFAULT_PROB,
            "tol": DEFAULT_TOL,
        },
        "groups": [{"name": g, "label": NEW_GROUP_LABEL if g == "new" else g} for g in groups],
        "kinds": [{"name": k, "about": ABOUT[k], "short": SHORT[k]} for k in PAGE_KINDS],
        "kinds_unavailable": [
            {
                "name": "sweep",
                "about": ABOUT["sweep"],
                "short": SHORT["sweep"],
                "reason": "a sweep's best run is simulated with random run noise per draw, "
                "which the page does not reproduce; ask bayes-steplaw predict N D --kind sweep",
            }
        ],
        "vocabulary": {
            "best": {"about": ABOUT["best"], "short": SHORT["best"]},
            # the event of plateau_probability(reference="optimum"), "{tol:.2%}" to fill in
            "plateau": PLATEAU_ABOUT["optimum"],
        },
        "interval_method": {
            "name": "eti",
            "description": "equal-tailed interval of the draws (Draws.to_dataframe's default)",
        },
        "geometry": {
            "log_n0": m["log_n0"],
            "log_d0": m["log_d0"],
            "N_range": list(m["N_range"]),
            "D_range": list(m["D_range"]),
        },
        "surface": {"diverged_excess": DIVERGED_EXCESS},
        "decision": {
            "steps": list(DECISION_STEPS),
            "half_widths": list(DECISION_HALF_WIDTHS),
            **DECISION_TOLERANCES,
        },
        "map": dict(MAP_GRID),
        "coefficients": pieces,
        "paper": _paper_law(paper),
        "style": _style(),
        "draws": draws.arrays,
    }


def decode_draws(data: dict[str, Any]) -> dict[str, np.ndarray]:
    """The draw arrays of :func:`planner_data`'s ``data`` (or of the JSON file) as numpy."""
    if data.get("encoding") != ENCODING:
        raise ValueError(f"planner data of encoding {data.get('encoding')!r}; expected {ENCODING}")
    return {k: np.frombuffer(base64.b64decode(v), dtype="<f8") for k, v in data["draws"].items()}


def export_web(
    path: str | os.PathLike,
    posterior=None,
    paper=None,
    *,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    kind: str | None = None,
    allow_unconverged: bool = False,
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
    data = planner_data(posterior, paper, n_draws=n_draws, seed=seed, kind=kind,
                        allow_unconverged=allow_unconverged)  # fmt: skip
    text = json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n"
    encoded = text.encode()
    if target.is_file() and target.stat().st_size == len(encoded):
        if target.read_bytes() == encoded:
            return path
    write_text(path, text)
    return path
