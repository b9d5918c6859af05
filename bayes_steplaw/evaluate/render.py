"""Renderings of an :class:`~.result.Evaluation`: the paragraph that says what was evaluated,
Markdown, plain text for a terminal, and JSON-ready records (a posterior's ``evaluation``
metadata, which model cards render). Names are escaped for each medium. Each function takes
the evaluation as ``ev`` (untyped here: result.py imports this module)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from .._format import markdown_table
from .._io import display_name
from ..laws import LAWS
from .metrics import EVENTS


def describe(ev) -> str:
    """A paragraph saying what was evaluated and how to read the tables."""
    m = ev.meta
    folds = m.get("folds", [])
    tasks = m.get("tasks") or []
    parts = [
        f"Split {m['split']!r}: {len(folds) or '?'} fold(s), "
        f"{ev.table['setting'].nunique()} held-out settings, methods "
        f"{', '.join(map(str, ev.methods))}" + (f"; tasks {', '.join(tasks)}." if tasks else "."),
    ]
    if m.get("k"):
        parts.append(
            f"Transfer: each held-out group's k smallest settings by compute (k = "
            f"{', '.join(map(str, m['k']))}) train with the other groups; k = 0 predicts "
            "the group as a never-seen one."
        )
    if m.get("sampler"):
        s = m["sampler"]
        parts.append(
            f"Bayesian refits: {s['chains']} chains x {s['draws']} draws ({s['tune']} "
            f"tuning), seed {m.get('seed', 0)}."
        )
    if "rel_loss" in ev.table:
        parts.append(
            "Relative loss: of the grid run nearest (ln lr, ln batch) to each method's "
            "choice, against the setting's best run."
        )
    if "log_score" in ev.table:
        parts.append(
            "Coverage: whether the best run's lr and batch lie inside the method's "
            "interval. Log score: log density of the best run's (ln lr, ln batch) under a "
            "normal fitted to the method's draws."
        )
    if "loss_r2" in ev.table:
        parts.append(
            "Loss: every held-out run that did not diverge (loss above "
            f"{m.get('diverged', 1.5):g}x its setting's lowest) against the method's "
            "predictive median and intervals; best_loss_err is the predicted minus the "
            "observed lowest loss of the sweep."
        )
    users = []
    if "uses_loss" in ev.table:
        used = ev.table["uses_loss"].astype("boolean").fillna(False).astype(bool)
        users = sorted(set(ev.table.loc[used, "method"].astype(str)))
    if users:
        parts.append(
            f"{', '.join(users)} are functions of the loss and were given each held-out "
            "setting's best observed loss."
        )
    unevaluable = [k for k, law in LAWS.items() if not law.evaluable]
    if unevaluable and any(name in LAWS for name in ev.methods):
        parts.append(
            f"The laws {', '.join(unevaluable)} of the paper's Table 1 cannot be evaluated "
            "(no usable published constants; see bayes_steplaw.laws) and are not scored."
        )
    for name, note in (m.get("notes") or {}).items():
        if note:
            parts.append(f"{name}: {note}.")
    if ev.runs is not None and len(ev.runs) and "hit_best" in ev.runs:
        parts.append(
            "Plateau probabilities (run noise included) are scored against these events: "
            + "; ".join(f"'{k}' = {w}" for k, (_, _, w) in EVENTS.items())
            + "."
        )
    fits = ev.fit_summary()
    if "unconverged" in fits and fits["unconverged"].sum():
        parts.append(
            f"{int(fits['unconverged'].sum())} fold fit(s) missed the convergence gate "
            "(R-hat, ESS >= 400, no divergences): expected with small refits; see Fits."
        )
    if m.get("errors"):
        parts.append(
            f"{len(m['errors'])} fit(s) or task(s) failed and are kept without scores: "
            + " | ".join(_collapse(m["errors"]))
        )
    if m.get("warnings"):
        parts.append("Warnings during the folds: " + " | ".join(m["warnings"]))
    return " ".join(parts)


def to_markdown(ev, digits: int = 4) -> str:
    """The summary tables as one Markdown document; names are escaped (``|`` and line
    breaks in a method, family or setting name cannot break a table or start a heading)."""
    out = [
        f"# Held-out evaluation: {markdown_text(ev.meta['split'])}",
        "",
        markdown_text(describe(ev)),
        "",
    ]
    for title, frame in ev.summary_tables().items():
        out += [f"## {title}", "", markdown_table(_markdown_safe(_flat(frame)), digits), ""]
    return "\n".join(out)


def report(ev) -> str:
    """The summary tables as plain text, for a terminal (control characters in names
    shown as escapes)."""
    out = [display_name(describe(ev)), ""]
    for title, frame in ev.summary_tables().items():
        out += [title, _terminal_safe(frame).to_string(float_format=_fmt), ""]
    return "\n".join(out)


def to_records(ev) -> dict:
    """The summary tables as JSON-ready records.

    Returns
    -------
    dict
        ``{"title", "text", "tables": {title: [row, ...]}}``: each row a dict whose first
        key is the row label, NaN as None, text escaped for Markdown (the records are
        rendered into model cards); the form of a posterior's ``evaluation`` metadata,
        which :func:`bayes_steplaw.bayes.card.evaluation_sections` renders.
    """
    tables = {}
    for title, frame in ev.summary_tables().items():
        flat = _markdown_safe(_flat(frame)).reset_index()
        tables[title] = [
            {str(k): _json(v) for k, v in row.items()} for row in flat.to_dict("records")
        ]
    return {
        "title": f"Held-out evaluation ({markdown_text(ev.meta['split'])})",
        "text": markdown_text(describe(ev)),
        "tables": tables,
    }


def _collapse(messages: list[str]) -> list[str]:
    """Messages that differ only in the fold, once each with the number of folds."""
    counts: dict[str, int] = {}
    for message in messages:
        key = re.sub(r" on fold .*? of split ", " on fold ... of split ", str(message), count=1)
        counts[key] = counts.get(key, 0) + 1
    return [k if n == 1 or "on fold ... " not in k else f"{k} ({n} folds)"
            for k, n in counts.items()]  # fmt: skip


def markdown_text(text) -> str:
    """``text`` safe in a Markdown table cell or paragraph: ``|`` escaped, line breaks (and
    other control characters) as spaces."""
    text = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]", " ", str(text))
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _markdown_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Index, column names and text cells through :func:`markdown_text`."""
    out = frame.copy()
    out.index = pd.Index([markdown_text(i) for i in out.index],
                         name=markdown_text(out.index.name or ""))  # fmt: skip
    out.columns = [markdown_text(c) for c in out.columns]
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: markdown_text(v) if isinstance(v, str) else v)
    return out


def _terminal_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Index labels with control characters shown as escapes."""
    out = frame.copy()

    def clean(v):
        return display_name(v) if isinstance(v, str) else v

    if isinstance(out.index, pd.MultiIndex):
        out.index = pd.MultiIndex.from_tuples([tuple(clean(v) for v in i) for i in out.index],
                                              names=out.index.names)  # fmt: skip
    else:
        out.index = pd.Index([clean(v) for v in out.index], name=out.index.name)
    return out


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """One index level (joined by ' / ') so Markdown and records have one row label."""
    if isinstance(frame.index, pd.MultiIndex):
        frame = frame.copy()
        name = " / ".join(str(n) for n in frame.index.names)
        frame.index = pd.Index([" / ".join(map(str, i)) for i in frame.index], name=name)
    return frame


def _json(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if value is pd.NA or value is None:
        return None
    return value


def _fmt(value: float) -> str:
    return f"{value:.4g}"
