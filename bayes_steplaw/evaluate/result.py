"""The result of a held-out evaluation: the tidy tables and their summaries.

:class:`Evaluation` holds one row per (split, fold, method, setting), with the columns of every
task evaluated, and one row per held-out run for the methods that forecast runs or give plateau
probabilities. Each summary is a method returning a DataFrame; :meth:`Evaluation.summary_tables`
collects them, :meth:`Evaluation.to_markdown` and :meth:`Evaluation.report` render them, and
:meth:`Evaluation.to_records` stores them as JSON-ready records (the ``evaluation`` field of a
posterior's metadata, which model cards render). Every difference between two methods goes
through one function, :meth:`Evaluation.paired_differences`, whatever the metric
(:data:`PAIRED_METRICS`).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import render
from .metrics import (
    DEFAULT_BOOT,
    EVENTS,
    brier_score,
    mass_label,
    paired_bootstrap,
    reliability_table,
)
from .scoring import KEY_COLUMNS

BASELINE = "bayes"
"""The method the paired differences are taken against: the package's default (the loss
model)."""


@dataclass(frozen=True)
class Metric:
    """A per-setting score that two methods can be compared on.

    ``column`` is read from the table, made ``abs`` (an error whose sign does not matter) or
    ``|value − nominal|`` (a coverage, whose distance from its nominal mass matters) by
    ``transform``, and multiplied by ``scale``; ``better`` says which direction wins.
    """

    column: str
    better: str = "lower"
    scale: float = 1.0
    unit: str = ""
    transform: str | None = None
    nominal: float | None = None

    def values(self, table: pd.DataFrame) -> pd.Series:
        """The metric of each row (NaN where the method did not score it)."""
        x = pd.to_numeric(table[self.column], errors="coerce").astype(float)
        if self.transform == "abs":
            x = x.abs()
        elif self.transform == "coverage":
            x = (x - self.nominal).abs()
        return x * self.scale


PAIRED_METRICS = {
    "rel_loss": Metric("rel_loss", "lower", 1000.0, "‰"),
    "log_score": Metric("log_score", "higher", 1.0, "nats"),
    "loss_r2": Metric("loss_r2", "higher"),
    "loss_rmse": Metric("loss_rmse", "lower"),
    "loss_logscore": Metric("loss_logscore", "higher", 1.0, "nats"),
    "abs_best_loss_err": Metric("best_loss_err", "lower", transform="abs"),
    "abs_best_star_err": Metric("best_star_err", "lower", transform="abs"),
    "brier_diverge": Metric("brier_diverge", "lower"),
    "brier_best": Metric("brier_best", "lower"),
    "brier_star": Metric("brier_star", "lower"),
}
"""The metrics :meth:`Evaluation.paired_differences` knows by name; besides these, the
coverage of an interval, ``loss_in_<mass>`` (``lr_in_<mass>``, ``batch_in_<mass>``), is compared
by its distance from the nominal mass."""

LOSS_PAIRED = ("loss_r2", "loss_rmse", "loss_in_90", "loss_logscore", "abs_best_loss_err",
               "brier_diverge")  # fmt: skip
"""The loss and divergence scores compared in the report."""

_COVERAGE = re.compile(r"(loss|lr|batch)_in_(\d+(?:\.\d+)?)")


def paired_metric(name: str) -> Metric:
    """The :class:`Metric` of a name (:data:`PAIRED_METRICS`, or a coverage column)."""
    if name in PAIRED_METRICS:
        return PAIRED_METRICS[name]
    hit = _COVERAGE.fullmatch(name)
    if hit:
        nominal = float(hit.group(2)) / 100
        return Metric(name, "lower", unit=f"|coverage − {nominal:g}|", transform="coverage",
                      nominal=nominal)  # fmt: skip
    known = [*PAIRED_METRICS, "loss_in_90", "lr_in_90", "batch_in_90"]
    raise ValueError(f"unknown metric {name!r}; paired differences know {known}")


class Evaluation:
    """Held-out scores of several methods on the same folds (from :func:`evaluate`).

    Attributes
    ----------
    table : DataFrame
        One row per (split, fold, method, setting): ``split, fold, method, setting`` (and
        ``k`` under ``transfer``), ``family, group`` (the group the setting was predicted as),
        ``N, D, compute, n_runs``, the setting's best run ``best_lr, best_batch_tokens,
        best_loss``, then the columns of each task evaluated:

        * choice: the method's choice ``lr, batch_tokens``, its ratios to the best run's
          ``lr_ratio, batch_ratio``, ``rel_loss`` (the paper's metric, a fraction) and the run
          it scored ``nearest_lr, nearest_batch_tokens``;
        * interval: the median of the distribution the intervals describe ``lr_median,
          batch_median``; per interval mass (``_50``, ``_80``, ``_90``) the bounds
          ``lr_lower_90, lr_upper_90, batch_lower_90, batch_upper_90``, whether the best run
          lies inside ``lr_in_90, batch_in_90`` and the widths ``lr_width_90,
          batch_width_90`` (upper / lower); ``log_score`` (and per coordinate
          ``lr_log_score``, ``batch_log_score``): the log density of the best run's
          (ln lr, ln batch) under a normal fitted to the method's draws; with a truth,
          ``lr_opt_in_90, batch_opt_in_90``, ...;
        * loss (over the setting's runs that did not diverge): ``loss_r2``, ``loss_rmse`` of
          the predictive median, ``loss_in_90`` (each mass) the share inside the predictive
          interval, ``loss_logscore`` their mean log predictive density, ``best_loss_err``
          (predicted minus observed lowest loss of the sweep) and ``best_star_err`` (the
          method's L* minus the same); ``n_diverged``;
        * divergence: ``brier_diverge`` over all the setting's runs;
        * plateau: ``brier_best, brier_star`` (from :attr:`runs`);

        and ``uses_loss`` (given the setting's best observed loss), the fit's ``converged,
        divergences, max_r_hat, fit_seconds``, and ``error``.
    runs : DataFrame or None
        One row per held-out run of the methods that forecast runs or give plateau
        probabilities (:func:`~.scoring.score_runs`).
    fits : DataFrame
        One row per (fold, method): timings and sampler diagnostics.
    meta : dict
        JSON-ready description of the evaluation (split, methods, tasks, notes, sampler, seed).
    baseline : str
        The method paired differences are taken against (default :data:`BASELINE`).

    A row repeated (the same split, fold, method and setting) counts once, as does a run row
    repeated.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        runs: pd.DataFrame | None = None,
        fits: pd.DataFrame | None = None,
        meta: dict | None = None,
        *,
        baseline: str = BASELINE,
    ):
        keys = [c for c in KEY_COLUMNS if c in table]
        self.table = table.drop_duplicates(keys).reset_index(drop=True) if keys else table
        if runs is not None:
            runs = runs.drop_duplicates().reset_index(drop=True)
        self.runs = runs
        self.fits = fits if fits is not None else pd.DataFrame()
        self.meta = dict(meta or {})
        self.baseline = baseline
        self.meta.setdefault("methods", list(dict.fromkeys(self.table["method"])))
        self.meta.setdefault("split", ", ".join(map(str, dict.fromkeys(self.table["split"]))))
        if (
            runs is not None
            and len(runs)
            and "hit_best" in runs
            and "brier_best" not in self.table
            and len(keys) == len(KEY_COLUMNS)
        ):
            p_best = runs["p_sweep"] if "p_sweep" in runs else runs["p_plateau"]
            p_star = runs["p_plateau"] if "p_plateau" in runs else np.nan
            sq = runs[list(KEY_COLUMNS)].assign(
                brier_best=(p_best - runs["hit_best"]) ** 2,
                brier_star=(p_star - runs["hit_star"]) ** 2 if "hit_star" in runs else np.nan,
            )
            per = sq.groupby(list(KEY_COLUMNS), sort=False)[["brier_best", "brier_star"]].mean()
            self.table = self.table.merge(per.reset_index(), on=list(KEY_COLUMNS), how="left")

    def __repr__(self) -> str:
        return (
            f"Evaluation(split={self.meta['split']!r}, methods={self.methods}, "
            f"{self.table['setting'].nunique()} settings, {len(self.table)} rows)"
        )

    @classmethod
    def from_csv(
        cls, path: str | Path, runs: str | Path | None = None, *, baseline: str | None = None
    ) -> Evaluation:
        """An evaluation re-read from the CSV that :meth:`to_csv` (or the CLI's ``--out``)
        wrote, and optionally its per-run rows (``--runs-out``), checked as
        :func:`~.rows.read_rows` says: a file above its size bound, a cell that is not a
        number in a metric column, a header without rows or naming a column twice are
        refused with the line and column. With ``baseline``, the rows must hold that method
        and another one (what the paired differences compare)."""
        from .rows import read_rows

        table = read_rows(path, kind="settings", baseline=baseline)
        per_run = read_rows(runs, kind="runs") if runs is not None else None
        return cls(table, per_run, baseline=baseline or BASELINE)

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
        found = {float(c.rsplit("_", 1)[1]) / 100 for c in self.table if _COVERAGE.fullmatch(c)}
        found = sorted(found)
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

    @staticmethod
    def _mean(sub: pd.DataFrame, column: str, how: str = "mean") -> float:
        """``how`` of a column of ``sub`` (NaN when the column is absent)."""
        if column not in sub:
            return float("nan")
        return float(getattr(pd.to_numeric(sub[column], errors="coerce"), how)())

    def _scored(self, column: str) -> pd.DataFrame:
        """Rows with a value in ``column`` (none when the column is absent)."""
        if column not in self.table:
            return self.table.iloc[:0]
        return self.table[pd.to_numeric(self.table[column], errors="coerce").notna()]

    # ------------------------------------------------------------------ the choice

    def mean_relative_loss(self, per_mille: bool = True) -> pd.DataFrame:
        """Mean of the paper's metric per method (rows) and family (columns, plus ``all``);
        in per mille by default. NaN for a method without a learning rate or batch."""
        if "rel_loss" not in self.table:
            return pd.DataFrame()
        scale = 1000.0 if per_mille else 1.0
        t = self.table
        piv = t.pivot_table(index="method", columns="family", values="rel_loss", aggfunc="mean",
                            dropna=False)  # fmt: skip
        if len(self._families()) > 1:
            piv["all"] = t.groupby("method")["rel_loss"].mean()
        piv = piv.reindex([m for m in self.methods if m in set(t["method"])]) * scale
        piv.columns.name = None
        piv.index.name = "method (‰)" if per_mille else "method"
        return piv

    # ------------------------------------------------------------------ the intervals

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
        have = self._scored(cols[0][1])
        return self._by_family(have, lambda s, *_: {a: float(s[b].median()) for a, b in cols})

    def log_scores(self) -> pd.DataFrame:
        """Mean log score (nats; higher is better) per method and family, methods with draws."""
        have = self._scored("log_score")
        cols = ("log_score", "lr_log_score", "batch_log_score")
        return self._by_family(have, lambda s, *_: {c: self._mean(s, c) for c in cols})

    def transfer_summary(self) -> pd.DataFrame:
        """Few-shot transfer (``split="transfer"``): per method and ``k``, the coverage of the
        best run at each mass, the median interval widths at the largest mass, the bias
        (geometric mean of observed best / predicted median, lr and batch: 1 is unbiased)
        and the mean relative loss of the choice (‰)."""
        t = self.table
        if "k" not in t or not len(t):
            return pd.DataFrame()
        top = mass_label(max(self.masses)) if self.masses else None
        rows = []
        for method in [m for m in self.methods if m in set(t["method"])]:
            for k, sub in t[t["method"] == method].groupby("k", sort=True):
                row = {"method": method, "k": int(k), "settings": len(sub)}
                if "rel_loss" in sub:
                    row["rel_loss ‰"] = float(sub["rel_loss"].mean() * 1000)
                for q, best, med in (("lr", "best_lr", "lr_median"),
                                     ("batch", "best_batch_tokens", "batch_median")):  # fmt: skip
                    for m in self.masses:
                        c = f"{q}_in_{mass_label(m)}"
                        if c in sub:
                            row[f"{q} {mass_label(m)}%"] = float(sub[c].astype(float).mean())
                    if top is not None and f"{q}_width_{top}" in sub:
                        row[f"{q} width {top}%"] = float(sub[f"{q}_width_{top}"].median())
                    if med in sub:
                        with np.errstate(divide="ignore", invalid="ignore"):
                            ratio = np.log(sub[best].to_numpy(float) / sub[med].to_numpy(float))
                        ratio = ratio[np.isfinite(ratio)]
                        row[f"{q} bias"] = float(np.exp(ratio.mean())) if ratio.size else np.nan
                rows.append(row)
        if not rows:
            return pd.DataFrame()
        return pd.DataFrame(rows).set_index(["method", "k"])

    # ------------------------------------------------------------------ the loss

    def loss_scores(self) -> pd.DataFrame:
        """The loss of every held-out run, per method and family: median and least R² over
        settings, mean RMSE, share of runs inside each predictive interval, mean log score,
        mean absolute and mean error of the predicted best loss of the sweep, mean absolute error of
        L*; methods that forecast runs."""
        cover = [c for c in self.table if c.startswith("loss_in_")]
        scored = [c for c in ("loss_r2", "loss_rmse", *cover) if c in self.table]
        if not scored:
            return pd.DataFrame()
        have = self.table[self.table[scored].notna().any(axis=1)]

        def scores(sub, *_):
            out = {
                "settings": len(sub),
                "loss_r2_median": self._mean(sub, "loss_r2", "median"),
                "loss_r2_min": self._mean(sub, "loss_r2", "min"),
                "loss_rmse": self._mean(sub, "loss_rmse"),
            }
            out |= {c: self._mean(sub, c) for c in cover}
            out["loss_logscore"] = self._mean(sub, "loss_logscore")
            for c in ("best_loss_err", "best_star_err"):
                if c in sub:
                    out[f"abs_{c}"] = float(sub[c].abs().mean())
            out["best_loss_err"] = self._mean(sub, "best_loss_err")
            return out

        return self._by_family(have, scores).dropna(axis=1, how="all")

    def divergence(self) -> pd.DataFrame:
        """Brier score of P(diverge) per method and family: the mean over settings of the
        per-setting score, and, with the per-run rows, over runs beside the score of always
        predicting the observed frequency (climatology)."""
        have = self._scored("brier_diverge")
        if not len(have):
            return pd.DataFrame()
        runs = self.runs
        per_run = runs is not None and {"p_diverge", "diverged", "method", "setting"} <= set(runs)

        def scores(sub, method, family):
            out = {
                "settings": len(sub),
                "runs": self._mean(sub, "n_runs", "sum"),
                "diverged": self._mean(sub, "n_diverged", "sum"),
                "brier (mean over settings)": self._mean(sub, "brier_diverge"),
            }
            if per_run:
                r = runs[(runs["method"] == method) & runs["p_diverge"].notna()]
                r = r[r["setting"].isin(set(sub["setting"]))]
                if family != "all" and "family" in r:
                    r = r[r["family"].astype(str) == family]
                hit = r["diverged"].astype(float).to_numpy()
                if hit.size:
                    out["brier (runs)"] = brier_score(r["p_diverge"].to_numpy(float), hit)
                    out["climatology"] = brier_score(np.full(hit.size, hit.mean()), hit)
            return out

        return self._by_family(have, scores)

    # ------------------------------------------------------------------ paired differences

    def paired_differences(
        self,
        baseline: str | None = None,
        *,
        metric: str = "rel_loss",
        prob: float = 0.9,
        n_boot: int = DEFAULT_BOOT,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Each method minus ``baseline`` on the same settings, with a bootstrap interval.

        One function for every metric (:data:`PAIRED_METRICS`, or a coverage column
        ``loss_in_90`` compared by its distance from the nominal mass): for every (split, fold,
        setting) both methods scored, the difference of ``metric`` (``rel_loss`` in per mille,
        log scores in nats, ...); its mean per family and over all settings, with the ``prob``
        percentile interval of ``n_boot`` bootstrap resamples of the settings (seeded by
        ``seed``, default the evaluation's), and on how many settings the method did better
        (``better``: lower for a loss, an error, a Brier score; higher for R² and log scores)
        and worse.
        """
        spec = paired_metric(metric)
        baseline = self.baseline if baseline is None else baseline
        t = self.table
        if spec.column not in t or baseline not in set(t["method"]):
            return pd.DataFrame()
        seed = self.meta.get("seed", 0) if seed is None else seed
        keys = [c for c in ("split", "fold", "setting") if c in t]
        values = t.assign(_value=spec.values(t))
        base = values[values["method"] == baseline].set_index(keys)["_value"]
        others = values[values["method"] != baseline]
        if others.empty:
            return pd.DataFrame()
        merged = others.join(base.rename("_base"), on=keys)
        merged["diff"] = merged["_value"] - merged["_base"]
        sign = 1.0 if spec.better == "lower" else -1.0
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
            unit = f", {spec.unit}" if spec.unit else ""
            out.index.names = [f"method − {baseline} ({metric}{unit})", "family"]
        return out

    def paired_summary(
        self, metrics=LOSS_PAIRED, baseline: str | None = None, *, prob: float = 0.9
    ) -> pd.DataFrame:
        """:meth:`paired_differences` of several metrics over all settings (every family),
        one row per (metric, method)."""
        parts = []
        for metric in metrics:
            try:
                diff = self.paired_differences(baseline, metric=metric, prob=prob)
            except ValueError:
                continue
            if not len(diff):
                continue
            families = diff.index.get_level_values(1)
            pick = "all" if "all" in set(families) else families[0]
            rows = diff.xs(pick, level=1)
            rows.index = pd.MultiIndex.from_product([[metric], rows.index],
                                                    names=["metric", "method"])  # fmt: skip
            parts.append(rows)
        return pd.concat(parts) if parts else pd.DataFrame()

    # ------------------------------------------------------------------ the plateau

    def reliability(self, event: str = "best") -> pd.DataFrame:
        """Reliability table of the plateau probabilities against ``event`` (``"best"``:
        within tol of the sweep's best run; ``"star"``: within tol of L*;
        ``"best_by_optimum"``: the first event against the second's probability), per method."""
        column, prob = EVENTS[event][:2]
        runs = self.runs
        if runs is None or runs.empty or prob not in runs or column not in runs:
            return pd.DataFrame()
        parts = []
        for method in [m for m in self.methods if m in set(runs["method"])]:
            r = runs[(runs["method"] == method) & runs[column].notna() & runs[prob].notna()]
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
        runs = self.runs
        if runs is None or runs.empty:
            return pd.DataFrame()
        rows = []
        for method in [m for m in self.methods if m in set(runs["method"])]:
            r = runs[runs["method"] == method]
            for event, (column, prob, _) in EVENTS.items():
                if column not in r or prob not in r:
                    continue
                ok = r[column].notna() & r[prob].notna()
                hit = r.loc[ok, column].to_numpy(float)
                if not hit.size:
                    continue
                rows.append(
                    {
                        "method": method,
                        "event": event,
                        "brier": brier_score(r.loc[ok, prob].to_numpy(float), hit),
                        "climatology": brier_score(np.full(hit.size, hit.mean()), hit),
                        "event_rate": float(hit.mean()),
                        "runs": int(hit.size),
                    }
                )
        return pd.DataFrame(rows).set_index(["method", "event"]) if rows else pd.DataFrame()

    # ------------------------------------------------------------------ the fits

    def fit_summary(self) -> pd.DataFrame:
        """Per method: folds, median fit time, compile time, unconverged folds, divergences."""
        if self.fits.empty:
            return pd.DataFrame()
        f = self.fits
        agg = {"folds": ("fold", "size"), "median_fit_s": ("fit_seconds", "median")}
        if "compile_seconds" in f:
            agg["compile_s"] = ("compile_seconds", "sum")
        if "converged" in f:
            f = f.assign(unconverged=~f["converged"].astype("boolean").fillna(True).astype(bool))
            agg["unconverged"] = ("unconverged", "sum")
        if "divergences" in f:
            agg["divergences"] = ("divergences", "sum")
        out = f.groupby("method").agg(**agg)
        return out.reindex([m for m in self.methods if m in out.index])

    # ------------------------------------------------------------------ all of them

    def summary_tables(self) -> dict[str, pd.DataFrame]:
        """Every non-empty summary, by title, in report order."""
        b = self.baseline
        tables = {
            "Mean relative loss of the nearest grid run (‰)": self.mean_relative_loss(),
            f"Paired differences in relative loss vs {b} (‰, bootstrap over settings)": (
                self.paired_differences()
            ),
            "Coverage of the best run (fraction of settings; nominal in the column)": (
                self.coverage()
            ),
            "Median interval width (upper / lower)": self.widths(),
            "Log score of the best run (nats, normal fit to the log draws)": self.log_scores(),
            f"Paired differences in log score vs {b} (nats)": self.paired_differences(
                metric="log_score"
            ),
        }
        if any(c.startswith("lr_opt_in_") for c in self.table):
            tables["Coverage of the true optimum (simulation)"] = self.coverage("truth")
        tables["Transfer against k: coverage, width and bias (observed / median)"] = (
            self.transfer_summary()
        )
        tables["Loss of every held-out run (per setting, over its runs)"] = self.loss_scores()
        tables["Divergence: Brier score of P(diverge)"] = self.divergence()
        tables[f"Paired differences in the loss scores vs {b} (all settings)"] = (
            self.paired_summary()
        )
        for event, (_, _, words) in EVENTS.items():
            tables[f"Plateau reliability: {words}"] = self.reliability(event)
        tables["Plateau Brier scores"] = self.brier()
        tables["Fits"] = self.fit_summary()
        return {k: v for k, v in tables.items() if v is not None and len(v)}

    def describe(self) -> str:
        """A paragraph saying what was evaluated and how to read the tables."""
        return render.describe(self)

    def to_markdown(self, digits: int = 4) -> str:
        """The summary tables as one Markdown document; names are escaped (``|`` and line
        breaks in a method, family or setting name cannot break a table or start a heading)."""
        return render.to_markdown(self, digits)

    def report(self) -> str:
        """The summary tables as plain text, for a terminal (control characters in names
        shown as escapes)."""
        return render.report(self)

    def __str__(self) -> str:
        return self.report()

    def to_records(self) -> dict:
        """The summary tables as JSON-ready records (:func:`.render.to_records`)."""
        return render.to_records(self)
