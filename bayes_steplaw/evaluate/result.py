"""The result of a held-out evaluation: the tidy table and its summary tables.

:class:`Evaluation` holds one row per (split, fold, method, setting) and, for methods that
give plateau probabilities, one row per held-out run. Each summary is a method returning a
DataFrame; :meth:`Evaluation.summary_tables` collects them, :meth:`Evaluation.to_markdown`
and :meth:`Evaluation.report` render them, and :meth:`Evaluation.to_records` stores them as
JSON-ready records (the ``evaluation`` field of a posterior's metadata, which model cards
render).
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .._format import markdown_table
from ..laws import LAWS
from .metrics import DEFAULT_BOOT, brier_score, mass_label, paired_bootstrap, reliability_table

BASELINE = "bayes"
"""The method the paired differences are taken against: the package's default choice."""

EVENTS = {
    "best": (
        "hit_best",
        "p_sweep",
        "within tol of the sweep's best run (what a user can check), against "
        "plateau_probability(reference='sweep')",
    ),
    "star": (
        "hit_star",
        "p_plateau",
        "within tol of L*, the setting's bowl bottom from a full-data landscape fit (in "
        "sample; a yardstick only), against plateau_probability(reference='optimum')",
    ),
    "best_by_optimum": (
        "hit_best",
        "p_plateau",
        "within tol of the sweep's best run, against the probability relative to L* "
        "(reference='optimum'): the mismatch of asking one event's probability of the other",
    ),
}
"""Event name -> (outcome column, probability column, description)."""


class Evaluation:
    """Held-out scores of several methods on the same folds (from :func:`evaluate`).

    Attributes
    ----------
    table : DataFrame
        One row per (split, fold, method, setting). Columns: ``split, fold, method,
        setting, family, group`` (the group the setting was predicted as), ``N, D,
        compute, n_runs``, the setting's best run ``best_lr, best_batch_tokens,
        best_loss``; the method's choice ``lr, batch_tokens`` and its ratios to the best
        run's ``lr_ratio, batch_ratio``; ``rel_loss`` (the paper's metric, a fraction) with
        the run it scored ``nearest_lr, nearest_batch_tokens``; per interval mass (``_50``,
        ``_80``, ``_90``): ``lr_lower_90, lr_upper_90, batch_lower_90, batch_upper_90``, whether
        the best run lies inside ``lr_in_90, batch_in_90`` and the widths ``lr_width_90,
        batch_width_90`` (upper / lower); ``log_score`` (and per coordinate ``lr_log_score``,
        ``batch_log_score``): the log density of the best run's (ln lr, ln batch) under a
        normal fitted to the method's draws; ``brier_best, brier_star`` (methods with
        plateau probabilities); ``uses_loss`` (given the setting's best observed loss);
        the fit's ``converged, divergences, max_r_hat, fit_seconds``; with a truth,
        ``lr_opt_in_90, batch_opt_in_90``, ....
    runs : DataFrame or None
        One row per held-out run of the methods with plateau probabilities: ``p_plateau``
        and both events ``hit_best``, ``hit_star``.
    fits : DataFrame
        One row per (fold, method): timings and sampler diagnostics.
    meta : dict
        JSON-ready description of the evaluation (split, methods, notes, sampler, seed).
    """

    def __init__(
        self,
        table: pd.DataFrame,
        runs: pd.DataFrame | None = None,
        fits: pd.DataFrame | None = None,
        meta: dict | None = None,
    ):
        self.table = table
        self.runs = runs
        self.fits = fits if fits is not None else pd.DataFrame()
        self.meta = dict(meta or {})
        self.meta.setdefault("methods", list(dict.fromkeys(table["method"])))
        self.meta.setdefault("split", ", ".join(dict.fromkeys(table["split"])))
        if runs is not None and len(runs) and "brier_best" not in table:
            keys = ["split", "fold", "method", "setting"]
            p_best = runs["p_sweep"] if "p_sweep" in runs else runs["p_plateau"]
            sq = runs[keys].assign(
                brier_best=(p_best - runs["hit_best"]) ** 2,
                brier_star=(runs["p_plateau"] - runs["hit_star"]) ** 2,
            )
            per = sq.groupby(keys, sort=False)[["brier_best", "brier_star"]].mean()
            self.table = table.merge(per.reset_index(), on=keys, how="left")

    def __repr__(self) -> str:
        return (
            f"Evaluation(split={self.meta['split']!r}, methods={self.methods}, "
            f"{self.table['setting'].nunique()} settings, {len(self.table)} rows)"
        )

    @classmethod
    def from_csv(cls, path: str | Path, runs: str | Path | None = None) -> Evaluation:
        """An evaluation re-read from the CSV that :meth:`to_csv` (or the CLI) wrote."""
        table = pd.read_csv(path)
        for col in table.columns:
            if col.startswith(("lr_in_", "batch_in_", "lr_opt_in_", "batch_opt_in_")) or col in (
                "uses_loss",
                "converged",
            ):
                table[col] = table[col].astype("boolean")
        return cls(table, pd.read_csv(runs) if runs is not None else None)

    def to_csv(self, path: str | Path) -> Path:
        """Write :attr:`table` (one row per (split, fold, method, setting))."""
        from .._io import write_csv

        path = Path(path)
        write_csv(self.table, path)  # atomic, text cells that would run as formulas escaped
        return path

    # ------------------------------------------------------------------ helpers

    @property
    def methods(self) -> list[str]:
        """Method names in the order they were given."""
        return list(self.meta["methods"])

    @property
    def masses(self) -> list[float]:
        """Interval masses scored."""
        found = sorted(
            {float(c.rsplit("_", 1)[1]) / 100 for c in self.table if c.startswith("lr_in_")}
        )
        return self.meta.get("masses", found)

    def _families(self) -> list[str]:
        return sorted(self.table["family"].astype(str).unique())

    def _by_family(self, frame: pd.DataFrame, func) -> pd.DataFrame:
        """``func(rows)`` per (method, family) and per method over all families."""
        out = []
        for method in [m for m in self.methods if m in set(frame["method"])]:
            rows = frame[frame["method"] == method]
            parts = [(f, rows[rows["family"].astype(str) == f]) for f in self._families()]
            if len(parts) > 1:
                parts.append(("all", rows))
            for family, sub in parts:
                if len(sub):
                    out.append({"method": method, "family": family, **func(sub, method, family)})
        if not out:
            return pd.DataFrame()
        return pd.DataFrame(out).set_index(["method", "family"])

    # ------------------------------------------------------------------ summaries

    def mean_relative_loss(self, per_mille: bool = True) -> pd.DataFrame:
        """Mean of the paper's metric per method (rows) and family (columns, plus ``all``);
        in per mille by default. NaN for a method without a learning rate or batch."""
        scale = 1000.0 if per_mille else 1.0
        t = self.table
        piv = t.pivot_table(index="method", columns="family", values="rel_loss", aggfunc="mean")
        if len(self._families()) > 1:
            piv["all"] = t.groupby("method")["rel_loss"].mean()
        piv = piv.reindex([m for m in self.methods if m in set(t["method"])]) * scale
        piv.columns.name = None
        piv.index.name = "method (‰)" if per_mille else "method"
        return piv

    def coverage(self, target: str = "best") -> pd.DataFrame:
        """Fraction of held-out settings whose best run's lr / batch lies inside each
        interval, against the nominal mass in the column name (methods with intervals).

        ``target="truth"``: whether the true optimum lies inside (needs ``truth=``).
        """
        infix = {"best": "in", "truth": "opt_in"}[target]
        cols = [
            (f"{q} {mass_label(m)}%", f"{q}_{infix}_{mass_label(m)}")
            for q in ("lr", "batch")
            for m in self.masses
        ]
        cols = [(a, b) for a, b in cols if b in self.table]
        if not cols:
            return pd.DataFrame()
        have = self.table[self.table[cols[0][1]].notna()]

        def cover(sub, *_):
            out = {a: float(sub[b].astype(float).mean()) for a, b in cols}
            return {**out, "settings": len(sub)}

        return self._by_family(have, cover)

    def widths(self) -> pd.DataFrame:
        """Median interval width (upper / lower) per method and family, lr and batch."""
        cols = [
            (f"{q} {mass_label(m)}%", f"{q}_width_{mass_label(m)}")
            for q in ("lr", "batch")
            for m in self.masses
        ]
        cols = [(a, b) for a, b in cols if b in self.table]
        if not cols:
            return pd.DataFrame()
        have = self.table[self.table[cols[0][1]].notna()]
        return self._by_family(have, lambda s, *_: {a: float(s[b].median()) for a, b in cols})

    def log_scores(self) -> pd.DataFrame:
        """Mean log score (nats; higher is better) per method and family, methods with draws."""
        have = self.table[self.table["log_score"].notna()]
        cols = ("log_score", "lr_log_score", "batch_log_score")
        return self._by_family(have, lambda s, *_: {c: float(s[c].mean()) for c in cols})

    def paired_differences(
        self,
        baseline: str = BASELINE,
        *,
        metric: str = "rel_loss",
        prob: float = 0.9,
        n_boot: int = DEFAULT_BOOT,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Each method minus ``baseline`` on the same settings, with a bootstrap interval.

        For every setting both methods scored, the difference of ``metric`` (``rel_loss`` in
        per mille, or ``log_score`` in nats); its mean per family and over all settings, with
        the ``prob`` percentile interval of ``n_boot`` bootstrap resamples of the settings
        (seeded by ``seed``, default the evaluation's), and how many settings the method did
        better on (``better``: lower relative loss, higher log score) and worse.
        """
        if metric not in ("rel_loss", "log_score"):
            raise ValueError(f"metric must be 'rel_loss' or 'log_score'; got {metric!r}")
        t = self.table
        if baseline not in set(t["method"]):
            return pd.DataFrame()
        seed = self.meta.get("seed", 0) if seed is None else seed
        scale = 1000.0 if metric == "rel_loss" else 1.0
        keys = ["split", "setting"]
        base = t[t["method"] == baseline].set_index(keys)[metric]
        others = t[t["method"] != baseline]
        if others.empty:
            return pd.DataFrame()
        merged = others.join(base.rename("base"), on=keys)
        merged["diff"] = (merged[metric] - merged["base"]) * scale
        sign = 1.0 if metric == "rel_loss" else -1.0
        merged = merged[np.isfinite(merged["diff"])]

        def paired(sub, method, family):
            s = np.random.SeedSequence([seed, zlib.crc32(f"{method}|{family}".encode())])
            boot = paired_bootstrap(
                sub["diff"].to_numpy(), n_boot=n_boot, prob=prob,
                seed=int(s.generate_state(1)[0]),
            )  # fmt: skip
            d = sign * sub["diff"].to_numpy()
            return {
                "mean": boot["mean"],
                f"lower {prob:.0%}": boot["lower"],
                f"upper {prob:.0%}": boot["upper"],
                "better": int((d < 0).sum()),
                "worse": int((d > 0).sum()),
                "settings": boot["n"],
            }

        out = self._by_family(merged, paired)
        if len(out):
            unit = "‰" if metric == "rel_loss" else "nats"
            out.index.names = [f"method − {baseline} ({metric}, {unit})", "family"]
        return out

    def reliability(self, event: str = "best") -> pd.DataFrame:
        """Reliability table of the plateau probabilities against ``event`` (``"best"``:
        within tol of the sweep's best run; ``"star"``: within tol of L*;
        ``"best_by_optimum"``: the first event against the second's probability), per method."""
        column, prob = EVENTS[event][:2]
        if self.runs is None or self.runs.empty or prob not in self.runs:
            return pd.DataFrame()
        parts = []
        for method in [m for m in self.methods if m in set(self.runs["method"])]:
            r = self.runs[(self.runs["method"] == method) & self.runs[column].notna()]
            if r.empty:
                continue
            rel = reliability_table(r[prob].to_numpy(), r[column].to_numpy())
            parts.append(rel.assign(method=method).set_index("method", append=True))
        if not parts:
            return pd.DataFrame()
        return pd.concat(parts).reorder_levels(["method", "bin"])

    def brier(self) -> pd.DataFrame:
        """Brier score of the plateau probabilities against both events, beside the score of
        always predicting the observed frequency (climatology)."""
        if self.runs is None or self.runs.empty:
            return pd.DataFrame()
        rows = []
        for method in [m for m in self.methods if m in set(self.runs["method"])]:
            r = self.runs[self.runs["method"] == method]
            for event, (column, prob, _) in EVENTS.items():
                ok = r[column].notna()
                hit = r.loc[ok, column].to_numpy()
                if not hit.size or prob not in r:
                    continue
                rows.append(
                    {
                        "method": method,
                        "event": event,
                        "brier": brier_score(r.loc[ok, prob].to_numpy(), hit),
                        "climatology": brier_score(np.full(hit.size, hit.mean()), hit),
                        "event_rate": float(hit.mean()),
                        "runs": int(hit.size),
                    }
                )
        return pd.DataFrame(rows).set_index(["method", "event"]) if rows else pd.DataFrame()

    def fit_summary(self) -> pd.DataFrame:
        """Per method: folds, median fit time, compile time, unconverged folds, divergences."""
        if self.fits.empty:
            return pd.DataFrame()
        f = self.fits
        agg = {"folds": ("fold", "size"), "median_fit_s": ("fit_seconds", "median")}
        if "compile_seconds" in f:
            agg["compile_s"] = ("compile_seconds", "sum")
        if "converged" in f:
            f = f.assign(unconverged=~f["converged"].fillna(True).astype(bool))
            agg["unconverged"] = ("unconverged", "sum")
        if "divergences" in f:
            agg["divergences"] = ("divergences", "sum")
        out = f.groupby("method").agg(**agg)
        return out.reindex([m for m in self.methods if m in out.index])

    def summary_tables(self) -> dict[str, pd.DataFrame]:
        """Every non-empty summary, by title, in report order."""
        tables = {
            "Mean relative loss of the nearest grid run (‰)": self.mean_relative_loss(),
            "Coverage of the best run (fraction of settings; nominal in the column)": (
                self.coverage()
            ),
            "Median interval width (upper / lower)": self.widths(),
            f"Paired differences in relative loss vs {BASELINE} (‰, bootstrap over settings)": (
                self.paired_differences()
            ),
            "Log score of the best run (nats, normal fit to the log draws)": self.log_scores(),
            f"Paired differences in log score vs {BASELINE} (nats)": self.paired_differences(
                metric="log_score"
            ),
        }
        if any(c.startswith("lr_opt_in_") for c in self.table):
            tables["Coverage of the true optimum (simulation)"] = self.coverage("truth")
        for event, (_, _, words) in EVENTS.items():
            tables[f"Plateau reliability: {words}"] = self.reliability(event)
        tables["Plateau Brier scores"] = self.brier()
        tables["Fits"] = self.fit_summary()
        return {k: v for k, v in tables.items() if v is not None and len(v)}

    def describe(self) -> str:
        """A paragraph saying what was evaluated and how to read the tables."""
        m = self.meta
        folds = m.get("folds", [])
        parts = [
            f"Split {m['split']!r}: {len(folds) or '?'} fold(s), "
            f"{self.table['setting'].nunique()} held-out settings, methods "
            f"{', '.join(self.methods)}.",
        ]
        if m.get("sampler"):
            s = m["sampler"]
            parts.append(
                f"Bayesian refits: {s['chains']} chains x {s['draws']} draws ({s['tune']} "
                f"tuning), seed {m.get('seed', 0)}."
            )
        parts.append(
            "Relative loss: of the grid run nearest (ln lr, ln batch) to each method's choice, "
            "against the setting's best run. Coverage: whether the best run's lr and batch lie "
            "inside the method's interval. Log score: log density of the best run's "
            "(ln lr, ln batch) under a normal fitted to the method's draws."
        )
        users = sorted(set(self.table.loc[self.table["uses_loss"].astype(bool), "method"]))
        if users:
            parts.append(
                f"{', '.join(users)} are functions of the loss and were given each held-out "
                "setting's best observed loss."
            )
        unevaluable = [k for k, law in LAWS.items() if not law.evaluable]
        if unevaluable and any(name in LAWS for name in self.methods):
            parts.append(
                f"The laws {', '.join(unevaluable)} of the paper's Table 1 cannot be evaluated "
                "(no usable published constants; see bayes_steplaw.laws) and are not scored."
            )
        for name, note in (m.get("notes") or {}).items():
            if note:
                parts.append(f"{name}: {note}.")
        if self.runs is not None and len(self.runs):
            parts.append(
                "Plateau probabilities (run noise included) are scored against these events: "
                + "; ".join(f"'{k}' = {w}" for k, (_, _, w) in EVENTS.items())
                + "."
            )
        fits = self.fit_summary()
        if "unconverged" in fits and fits["unconverged"].sum():
            parts.append(
                f"{int(fits['unconverged'].sum())} fold fit(s) missed the convergence gate "
                "(R-hat, ESS >= 400, no divergences): expected with small refits; see Fits."
            )
        if m.get("errors"):
            parts.append(
                f"{len(m['errors'])} fit(s) failed and are kept without scores: "
                + " | ".join(m["errors"])
            )
        if m.get("warnings"):
            parts.append("Warnings during the folds: " + " | ".join(m["warnings"]))
        return " ".join(parts)

    # ------------------------------------------------------------------ renderings

    def to_markdown(self, digits: int = 4) -> str:
        """The summary tables as one Markdown document."""
        out = [f"# Held-out evaluation: {self.meta['split']}", "", self.describe(), ""]
        for title, frame in self.summary_tables().items():
            out += [f"## {title}", "", markdown_table(_flat(frame), digits), ""]
        return "\n".join(out)

    def report(self) -> str:
        """The summary tables as plain text, for a terminal."""
        out = [self.describe(), ""]
        for title, frame in self.summary_tables().items():
            out += [title, frame.to_string(float_format=_fmt), ""]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.report()

    def to_records(self) -> dict:
        """The summary tables as JSON-ready records.

        Returns
        -------
        dict
            ``{"title", "text", "tables": {title: [row, ...]}}``: each row a dict whose first
            key is the row label, NaN as None; the form of a posterior's ``evaluation``
            metadata, which :func:`bayes_steplaw.bayes.card.evaluation_sections` renders.
        """
        tables = {}
        for title, frame in self.summary_tables().items():
            flat = _flat(frame).reset_index()
            tables[title] = [
                {str(k): _json(v) for k, v in row.items()} for row in flat.to_dict("records")
            ]
        return {
            "title": f"Held-out evaluation ({self.meta['split']})",
            "text": self.describe(),
            "tables": tables,
        }


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """One index level (joined by ' / ') so Markdown and records have one row label."""
    if isinstance(frame.index, pd.MultiIndex):
        frame = frame.copy()
        name = " / ".join(str(n) for n in frame.index.names)
        frame.index = pd.Index([" / ".join(map(str, i)) for i in frame.index], name=name)
    return frame


def _json(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if value is pd.NA:
        return None
    return value


def _fmt(value: float) -> str:
    return f"{value:.4g}"
