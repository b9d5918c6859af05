"""One fold's prediction, scored: the tidy rows of the evaluation table.

:func:`score_fold` turns a method's :class:`~.methods.MethodPrediction` for the held-out
settings of one fold into one row per setting (the columns of the evaluation table, see
:func:`bayes_steplaw.evaluate`), and its plateau probabilities, if any, into one row per run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import inside, mass_label, nearest_run, normal_log_score, width
from .protocol import MethodPrediction

KEY_COLUMNS = ("split", "fold", "method", "setting")
"""The columns that identify a row of the evaluation table."""


def score_fold(
    *,
    split: str,
    fold: str,
    method: str,
    settings: pd.DataFrame,
    runs: pd.DataFrame,
    prediction: MethodPrediction,
    masses: tuple[float, ...],
    diagnostics: dict,
    seconds: float,
    truth: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The evaluation rows of one (fold, method): one per held-out setting.

    Parameters
    ----------
    settings : DataFrame
        The held-out settings (rows of :func:`~.splits.setting_table`, reset, with the
        prediction ``group``), in the order of the prediction's arrays.
    runs : DataFrame
        Every run of those settings.
    prediction : MethodPrediction
        Checked (:meth:`MethodPrediction.checked`).
    truth : DataFrame, optional
        ``setting, lr_opt, batch_tokens_opt`` (as from :func:`bayes_steplaw.simulate_sweeps`):
        adds whether each interval holds the true optimum (``lr_opt_in_90``, ...).
    """
    n = len(settings)
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
    col["lr"], col["batch_tokens"] = prediction.lr, prediction.batch_tokens
    col["lr_ratio"] = prediction.lr / best_lr
    col["batch_ratio"] = prediction.batch_tokens / best_bs
    run_setting = runs["setting"].to_numpy()
    run_lr, run_bs = runs["lr"].to_numpy(float), runs["batch_tokens"].to_numpy(float)
    run_loss = runs["loss"].to_numpy(float)
    rel, near_lr, near_bs = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for i, s in enumerate(col["setting"]):
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
    true = None
    if truth is not None:
        lookup = truth.drop_duplicates("setting").set_index("setting")
        pos = lookup.index.get_indexer(col["setting"])
        true = {
            k: np.where(pos >= 0, lookup[k].to_numpy(float)[pos], np.nan)
            for k in ("lr_opt", "batch_tokens_opt")
        }
    nan = np.full(n, np.nan)
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
    col["uses_loss"] = np.full(n, bool(prediction.uses_loss))
    col["converged"] = pd.array([diagnostics.get("converged")] * n, dtype="boolean")
    col["divergences"] = np.full(n, diagnostics.get("divergences", np.nan), dtype=float)
    col["max_r_hat"] = np.full(n, diagnostics.get("max_r_hat", np.nan), dtype=float)
    col["fit_seconds"] = np.full(n, seconds, dtype=float)
    out = pd.DataFrame(col)
    return out


def score_plateau(
    *,
    split: str,
    fold: str,
    method: str,
    runs: pd.DataFrame,
    prob,
    tol: float,
    loss_star: pd.Series | None,
) -> pd.DataFrame:
    """One row per held-out run: its plateau probabilities and both events.

    ``prob`` is an array (the probability of the event relative to L*, ``p_plateau``) or a
    mapping with ``p_plateau`` and ``p_sweep`` (relative to the best run of a sweep).
    ``hit_best``: the run's loss is within ``tol`` of its sweep's best run (what a user can
    check); ``hit_star``: within ``tol`` of the setting's L* (``loss_star``: the yardstick,
    a full-data landscape fit; NaN without one).
    """
    probs = dict(prob) if isinstance(prob, dict) else {"p_plateau": prob}
    for key, value in probs.items():
        probs[key] = np.asarray(value, dtype=float).reshape(-1)
        if probs[key].shape != (len(runs),):
            raise ValueError(
                f"method {method!r}: plateau_probability gave {probs[key].size} values of "
                f"{key} for {len(runs)} runs"
            )
    best = runs.groupby("setting")["loss"].transform("min")
    rel = runs["loss"] / best - 1.0
    out = pd.DataFrame(
        {
            "split": split,
            "fold": fold,
            "method": method,
            "setting": runs["setting"].to_numpy(),
            "family": runs["family"].to_numpy() if "family" in runs else "all",
            "lr": runs["lr"].to_numpy(float),
            "batch_tokens": runs["batch_tokens"].to_numpy(float),
            "loss": runs["loss"].to_numpy(float),
            "rel_loss": rel.to_numpy(float),
            **probs,
            "hit_best": (rel <= tol).to_numpy(float),
        }
    )
    star = np.full(len(runs), np.nan)
    if loss_star is not None:
        star = loss_star.reindex(out["setting"]).to_numpy(float)
    out["loss_star"] = star
    with np.errstate(invalid="ignore"):
        out["hit_star"] = np.where(
            np.isfinite(star), (out["loss"].to_numpy() <= (1 + tol) * star).astype(float), np.nan
        )
    return out
