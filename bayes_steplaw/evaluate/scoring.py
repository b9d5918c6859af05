"""One fold's predictions, scored: the tidy rows of the evaluation tables.

:func:`score_fold` turns what a method gave for the held-out settings of one fold (its
:class:`~.protocol.MethodPrediction` and :class:`~.protocol.RunForecast`) into one row per
setting with the columns of the tasks asked for (see :class:`~.result.Evaluation` for them);
:func:`score_runs` turns its run forecasts and plateau probabilities into one row per run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import inside, mass_label, nearest_run, normal_log_score, r_squared, rmse, width
from .protocol import TASKS, MethodPrediction, RunForecast

KEY_COLUMNS = ("split", "fold", "method", "setting")
"""The columns that identify a row of the evaluation table."""


def score_fold(
    *,
    split: str,
    fold: str,
    method: str,
    settings: pd.DataFrame,
    runs: pd.DataFrame,
    prediction: MethodPrediction | None,
    masses: tuple[float, ...],
    diagnostics: dict,
    seconds: float,
    truth: pd.DataFrame | None = None,
    forecast: RunForecast | None = None,
    tasks: tuple[str, ...] = TASKS,
) -> pd.DataFrame:
    """The evaluation rows of one (fold, method): one per held-out setting.

    Parameters
    ----------
    settings : DataFrame
        The held-out settings (rows of :func:`~.splits.setting_table`, reset, with the
        prediction ``group``), in the order of the prediction's arrays.
    runs : DataFrame
        Every run of those settings, with ``diverged``.
    prediction : MethodPrediction or None
        Checked (:meth:`MethodPrediction.checked`); None: no choice and no intervals.
    forecast : RunForecast or None
        Checked (:meth:`RunForecast.checked`), over ``runs``; None: no loss scores.
    tasks : tuple of str
        The tasks whose columns the rows get.
    truth : DataFrame, optional
        ``setting, lr_opt, batch_tokens_opt`` (as from :func:`bayes_steplaw.simulate_sweeps`):
        adds whether each interval holds the true optimum (``lr_opt_in_90``, ...).
    """
    n = len(settings)
    nan = np.full(n, np.nan)
    # columns gathered as arrays and framed once: pandas' per-column insert dominates otherwise
    col: dict[str, object] = {
        "split": np.full(n, split, dtype=object),
        "fold": np.full(n, fold, dtype=object),
        "method": np.full(n, method, dtype=object),
        "setting": settings["setting"].to_numpy(),
        "family": settings["family"].to_numpy() if "family" in settings else np.full(n, "all"),
        "group": settings["group"].to_numpy(),
    }
    for name in ("N", "D", "compute", "best_lr", "best_batch_tokens", "best_loss"):
        col[name] = settings[name].to_numpy(float)
    col["n_runs"] = settings["n_runs"].to_numpy(int)
    best_lr, best_bs = col["best_lr"], col["best_batch_tokens"]
    if prediction is None:
        prediction = MethodPrediction(nan, nan, lr_median=nan, batch_tokens_median=nan)
    if "choice" in tasks:
        col.update(_choice(col["setting"], runs, prediction, best_lr, best_bs))
    if "interval" in tasks:
        col.update(_intervals(col["setting"], prediction, masses, best_lr, best_bs, truth))
    if "loss" in tasks or "divergence" in tasks:
        col.update(_loss(col["setting"], runs, forecast, masses, tasks))
    col["uses_loss"] = np.full(n, bool(prediction.uses_loss))
    col["converged"] = pd.array([diagnostics.get("converged")] * n, dtype="boolean")
    col["divergences"] = np.full(n, diagnostics.get("divergences", np.nan), dtype=float)
    col["max_r_hat"] = np.full(n, diagnostics.get("max_r_hat", np.nan), dtype=float)
    col["fit_seconds"] = np.full(n, seconds, dtype=float)
    return pd.DataFrame(col)


def _choice(ids, runs, prediction, best_lr, best_bs) -> dict:
    """The choice, its ratios to the best run's, and the paper's metric."""
    n = len(ids)
    col = {"lr": prediction.lr, "batch_tokens": prediction.batch_tokens}
    with np.errstate(divide="ignore", invalid="ignore"):
        col["lr_ratio"] = prediction.lr / best_lr
        col["batch_ratio"] = prediction.batch_tokens / best_bs
    run_setting = runs["setting"].to_numpy()
    run_lr, run_bs = runs["lr"].to_numpy(float), runs["batch_tokens"].to_numpy(float)
    run_loss = runs["loss"].to_numpy(float)
    rel, near_lr, near_bs = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for i, s in enumerate(ids):
        lr, bs = prediction.lr[i], prediction.batch_tokens[i]
        if not (np.isfinite(lr) and np.isfinite(bs) and lr > 0 and bs > 0):
            continue  # no choice (a law without a learning rate): no metric
        sel = run_setting == s
        grid_lr, grid_bs, loss = run_lr[sel], run_bs[sel], run_loss[sel]
        at = nearest_run(grid_lr, grid_bs, lr, bs)
        # the paper's metric (nearest_relative_loss), on arrays
        rel[i] = loss[at] / loss.min() - 1.0
        near_lr[i], near_bs[i] = grid_lr[at], grid_bs[at]
    col["rel_loss"], col["nearest_lr"], col["nearest_batch_tokens"] = rel, near_lr, near_bs
    return col


def _intervals(ids, prediction, masses, best_lr, best_bs, truth) -> dict:
    """Medians, bounds, coverage of the best run (and of the truth), widths, log scores."""
    n = len(ids)
    nan = np.full(n, np.nan)
    col: dict[str, object] = {}
    has_interval = bool(prediction.intervals) or prediction.draws is not None
    col["lr_median"] = prediction.lr_median if has_interval else nan
    col["batch_median"] = prediction.batch_tokens_median if has_interval else nan
    true = None
    if truth is not None:
        lookup = truth.drop_duplicates("setting").set_index("setting")
        pos = lookup.index.get_indexer(ids)
        true = {
            k: np.where(pos >= 0, lookup[k].to_numpy(float)[pos], np.nan)
            for k in ("lr_opt", "batch_tokens_opt")
        }
    for m in masses:
        iv = prediction.intervals.get(m, {})
        lab = mass_label(m)
        lo_lr, hi_lr = iv.get("lr_lower", nan), iv.get("lr_upper", nan)
        lo_bs, hi_bs = iv.get("batch_tokens_lower", nan), iv.get("batch_tokens_upper", nan)
        col[f"lr_lower_{lab}"], col[f"lr_upper_{lab}"] = lo_lr, hi_lr
        col[f"batch_lower_{lab}"], col[f"batch_upper_{lab}"] = lo_bs, hi_bs
        col[f"lr_in_{lab}"] = inside(best_lr, lo_lr, hi_lr)
        col[f"batch_in_{lab}"] = inside(best_bs, lo_bs, hi_bs)
        col[f"lr_width_{lab}"] = width(lo_lr, hi_lr)
        col[f"batch_width_{lab}"] = width(lo_bs, hi_bs)
        if true is not None:
            col[f"lr_opt_in_{lab}"] = inside(true["lr_opt"], lo_lr, hi_lr)
            col[f"batch_opt_in_{lab}"] = inside(true["batch_tokens_opt"], lo_bs, hi_bs)
    point = np.log(np.stack([best_lr, best_bs], axis=1))
    if prediction.draws is not None:
        d = prediction.draws
        col["log_score"] = normal_log_score(d, point)
        col["lr_log_score"] = normal_log_score(d[..., :1], point[:, :1])
        col["batch_log_score"] = normal_log_score(d[..., 1:], point[:, 1:])
    else:
        col["log_score"] = col["lr_log_score"] = col["batch_log_score"] = nan
    return col


def _loss(ids, runs, forecast, masses, tasks) -> dict:
    """Per setting, over its runs: the loss scores and the divergence Brier score."""
    n = len(ids)
    names = []
    if "loss" in tasks:
        names += ["loss_r2", "loss_rmse", *(f"loss_in_{mass_label(m)}" for m in masses),
                  "loss_logscore", "best_loss_err", "best_star_err"]  # fmt: skip
    if "divergence" in tasks:
        names += ["brier_diverge"]
    col = {"n_diverged": np.full(n, np.nan), **{k: np.full(n, np.nan) for k in names}}
    setting = runs["setting"].to_numpy()
    diverged = runs["diverged"].to_numpy(bool)
    loss = runs["loss"].to_numpy(float)
    for i, s in enumerate(ids):
        sel = setting == s
        div = diverged[sel]
        col["n_diverged"][i] = div.sum()
        if forecast is None:
            continue
        alive = ~div
        y = loss[sel][alive]
        if "loss" in tasks and y.size:
            best = float(y.min())
            if forecast.median is not None:
                yhat = forecast.median[sel][alive]
                col["loss_r2"][i] = r_squared(y, yhat)
                col["loss_rmse"][i] = rmse(y, yhat)
            for m in masses:
                if m in forecast.intervals:
                    lo, hi = forecast.intervals[m]
                    hit = (y >= lo[sel][alive]) & (y <= hi[sel][alive])
                    col[f"loss_in_{mass_label(m)}"][i] = hit.mean()
            if forecast.log_density is not None:
                col["loss_logscore"][i] = float(np.mean(forecast.log_density[sel][alive]))
            for key, name in (("sweep_best", "best_loss_err"), ("loss_star", "best_star_err")):
                given = getattr(forecast, key)
                if given is not None and str(s) in given:
                    col[name][i] = given[str(s)] - best
        if "divergence" in tasks and forecast.p_diverge is not None:
            col["brier_diverge"][i] = float(np.mean((forecast.p_diverge[sel] - div) ** 2))
    return col


def score_runs(
    *,
    split: str,
    fold: str,
    method: str,
    runs: pd.DataFrame,
    masses: tuple[float, ...],
    tol: float,
    forecast: RunForecast | None = None,
    plateau=None,
    loss_star: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per held-out run: what a method forecast of it, and what happened.

    Columns ``split, fold, method, setting, family, lr, batch_tokens, loss, diverged,
    rel_loss`` (to the sweep's best run); with a forecast ``loss_median``, ``loss_lower_90``,
    ``loss_upper_90`` (each mass) and ``p_diverge``; with plateau probabilities ``p_plateau``
    (``reference="optimum"``), ``p_sweep`` (``reference="sweep"``; either may be missing),
    ``hit_best`` (the run's loss is within ``tol`` of its sweep's best run, what a user can
    check), ``loss_star`` (the yardstick: L* of a full-data fit; NaN without one) and
    ``hit_star`` (the loss is within ``tol`` of it).

    ``plateau`` is an array (``p_plateau``) or a mapping with ``p_plateau`` and/or ``p_sweep``.
    """
    n = len(runs)
    best = runs.groupby("setting")["loss"].transform("min")
    rel = (runs["loss"] / best - 1.0).to_numpy(float)
    col: dict[str, object] = {
        "split": np.full(n, split, dtype=object),
        "fold": np.full(n, fold, dtype=object),
        "method": np.full(n, method, dtype=object),
        "setting": runs["setting"].to_numpy(),
        "family": runs["family"].to_numpy() if "family" in runs else np.full(n, "all"),
        "lr": runs["lr"].to_numpy(float),
        "batch_tokens": runs["batch_tokens"].to_numpy(float),
        "loss": runs["loss"].to_numpy(float),
        "diverged": runs["diverged"].to_numpy(bool),
        "rel_loss": rel,
    }
    if forecast is not None:
        nan = np.full(n, np.nan)
        col["loss_median"] = forecast.median if forecast.median is not None else nan
        for m in masses:
            lo, hi = forecast.intervals.get(m, (nan, nan))
            col[f"loss_lower_{mass_label(m)}"], col[f"loss_upper_{mass_label(m)}"] = lo, hi
        col["p_diverge"] = forecast.p_diverge if forecast.p_diverge is not None else nan
    if plateau is not None:
        probs = dict(plateau) if isinstance(plateau, dict) else {"p_plateau": plateau}
        for key, value in probs.items():
            arr = np.asarray(value, dtype=float).reshape(-1)
            if arr.shape != (n,):
                raise ValueError(
                    f"method {method!r}: plateau_probability gave {arr.size} values of {key} "
                    f"for {n} runs"
                )
            col[key] = arr
        col["hit_best"] = (rel <= tol).astype(float)
        star = np.full(n, np.nan)
        if loss_star is not None:
            star = loss_star.reindex(col["setting"]).to_numpy(float)
        col["loss_star"] = star
        with np.errstate(invalid="ignore"):
            hit = (col["loss"] <= (1 + tol) * star).astype(float)
        col["hit_star"] = np.where(np.isfinite(star), hit, np.nan)
    return pd.DataFrame(col)
