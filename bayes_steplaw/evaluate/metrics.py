"""The scores of a held-out prediction, each written once, numpy and pandas only.

Per held-out setting (its runs, and a method's prediction for it):

* the paper's metric, :func:`nearest_relative_loss`: the relative loss (a fraction) of the grid
  run nearest in (ln lr, ln batch) to the method's choice, against the setting's best run;
* interval coverage, :func:`inside`, and width, :func:`width` (upper / lower);
* the log score, :func:`normal_log_score`: the log density of the best run's
  (ln lr, ln batch) under a normal distribution fitted (mean and covariance, ``ddof=1``) to the
  method's draws of (ln lr, ln batch). A normal fit rather than a KDE: with a few hundred
  draws in two dimensions a KDE's bandwidth dominates its tails, where held-out best runs
  often fall, and the fit is exactly reproducible.

Per held-out setting, over its runs (the loss task): :func:`r_squared` and :func:`rmse` of a
predicted loss against the observed one.

Across settings: :func:`paired_bootstrap` (a difference of two methods on the same settings,
with a bootstrap-over-settings interval), :func:`reliability_table` and :func:`brier_score`
(predicted probabilities of a binary event against what happened).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validate import check_prob

DEFAULT_MASSES = (0.5, 0.8, 0.9)
"""Masses of the intervals whose coverage is scored."""

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
        "within tol of L*, the setting's best loss from a full-data fit of the loss model (in "
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

RELIABILITY_BINS = (0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0)
"""Edges of the predicted-probability bins of a reliability table (the last bin is closed)."""

DEFAULT_BOOT = 2000
"""Bootstrap resamples of settings for a paired difference."""


def mass_label(mass: float) -> str:
    """Column suffix of an interval mass: 0.9 -> ``"90"``, 0.975 -> ``"97.5"``."""
    pct = round(100 * float(mass), 6)
    return f"{pct:g}"


def nearest_run(lr: np.ndarray, batch: np.ndarray, at_lr: float, at_batch: float) -> int:
    """Position of the run nearest (Euclidean in ln lr, ln batch) to a choice; first on ties."""
    dist = np.hypot(np.log(lr) - np.log(at_lr), np.log(batch) - np.log(at_batch))
    return int(np.argmin(dist))


def nearest_relative_loss(runs: pd.DataFrame, lr: float, batch_tokens: float) -> float:
    """The paper's metric for one setting: relative loss of the grid run nearest the choice.

    Parameters
    ----------
    runs : DataFrame
        The runs of one setting (``lr``, ``batch_tokens``, ``loss``).
    lr, batch_tokens : float
        The method's choice; NaN (a law that gives no learning rate) gives NaN.

    Returns
    -------
    float
        ``loss(nearest run) / min(loss) − 1`` (0 when the choice is nearest the best run).
    """
    if not (np.isfinite(lr) and np.isfinite(batch_tokens)) or lr <= 0 or batch_tokens <= 0:
        return float("nan")
    if "setting" in runs and runs["setting"].nunique() != 1:
        raise ValueError("nearest_relative_loss scores one setting's runs at a time")
    loss = runs["loss"].to_numpy(float)
    grid_lr, grid_bs = runs["lr"].to_numpy(float), runs["batch_tokens"].to_numpy(float)
    at = nearest_run(grid_lr, grid_bs, lr, batch_tokens)
    return float(loss[at] / loss.min() - 1.0)


def inside(value: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> pd.array:
    """Whether each value lies in [lower, upper]; missing (NA) where a bound is NaN."""
    value, lower, upper = (np.asarray(v, dtype=float) for v in (value, lower, upper))
    known = np.isfinite(lower) & np.isfinite(upper)
    hit = (value >= lower) & (value <= upper)
    out = pd.array(hit, dtype="boolean")
    out[~known] = pd.NA
    return out


def width(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Width of a multiplicative interval: ``upper / lower`` (NaN where unknown)."""
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return upper / lower


def normal_log_score(draws: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Log density of ``point`` under a normal fitted to ``draws``, per setting.

    Parameters
    ----------
    draws : ndarray, shape (settings, samples, k)
        Draws of a k-vector (here ln lr, ln batch tokens, or one of them with k = 1).
    point : ndarray, shape (settings, k)
        Where to evaluate each setting's density.

    Returns
    -------
    ndarray, shape (settings,)
        ``log N(point; mean, cov)`` with the draws' mean and covariance (``ddof=1``), in nats;
        NaN where the covariance is singular (draws that do not vary) or the point is not
        finite. Draws that are not finite (a simulated sweep whose every run diverged) are
        left out of their setting's fit.
    """
    draws = np.asarray(draws, dtype=float)
    point = np.asarray(point, dtype=float)
    if draws.ndim != 3 or point.shape != (draws.shape[0], draws.shape[2]):
        raise ValueError(
            f"draws must be (settings, samples, k) and point (settings, k); got {draws.shape} "
            f"and {point.shape}"
        )
    finite = np.isfinite(draws).all(axis=2)
    if not finite.all():  # per setting, on its finite draws
        out = np.full(draws.shape[0], np.nan)
        for i in range(draws.shape[0]):
            kept = draws[i][finite[i]]
            if len(kept):
                out[i] = normal_log_score(kept[None], point[i : i + 1])[0]
        return out
    n, s, k = draws.shape
    if s < k + 1:
        return np.full(n, np.nan)
    mean = draws.mean(axis=1)
    centred = draws - mean[:, None, :]
    cov = np.einsum("nsi,nsj->nij", centred, centred) / (s - 1)
    sign, logdet = np.linalg.slogdet(cov)
    ok = (sign > 0) & np.isfinite(point).all(axis=1) & np.isfinite(draws).all(axis=(1, 2))
    out = np.full(n, np.nan)
    if ok.any():
        diff = (point - mean)[ok]
        sol = np.linalg.solve(cov[ok], diff[..., None])[..., 0]
        maha = np.einsum("ni,ni->n", diff, sol)
        out[ok] = -0.5 * (k * np.log(2 * np.pi) + logdet[ok] + maha)
    return out


def r_squared(observed: np.ndarray, predicted: np.ndarray) -> float:
    """``1 − Σ(y − ŷ)² / Σ(y − ȳ)²``; NaN for fewer than two values or values that do not vary."""
    y, yhat = np.asarray(observed, dtype=float), np.asarray(predicted, dtype=float)
    spread = float(((y - y.mean()) ** 2).sum()) if y.size else 0.0
    if y.size < 2 or spread <= 0:
        return float("nan")
    return float(1.0 - ((y - yhat) ** 2).sum() / spread)


def rmse(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared difference (NaN for no values)."""
    y, yhat = np.asarray(observed, dtype=float), np.asarray(predicted, dtype=float)
    return float(np.sqrt(np.mean((y - yhat) ** 2))) if y.size else float("nan")


def brier_score(prob: np.ndarray, hit: np.ndarray) -> float:
    """Mean squared difference between predicted probabilities and 0/1 outcomes."""
    prob, hit = np.asarray(prob, dtype=float), np.asarray(hit, dtype=float)
    if prob.shape != hit.shape:
        raise ValueError(f"prob and hit must have one shape; got {prob.shape} and {hit.shape}")
    return float(np.mean((prob - hit) ** 2)) if prob.size else float("nan")


def reliability_table(
    prob: np.ndarray, hit: np.ndarray, bins: tuple[float, ...] = RELIABILITY_BINS
) -> pd.DataFrame:
    """Binned predicted probability against the observed frequency of the event.

    Returns
    -------
    DataFrame
        Indexed by ``bin`` (``"[0.05, 0.2)"``, the last closed), columns ``runs``,
        ``mean_predicted``, ``observed_fraction`` (NaN for an empty bin).
    """
    prob, hit = np.asarray(prob, dtype=float), np.asarray(hit, dtype=float)
    edges = np.asarray(bins, dtype=float)
    if np.any(np.diff(edges) <= 0):
        raise ValueError(f"bins must increase; got {bins}")
    # the last edge is closed: a probability of exactly 1 falls in the last bin
    which = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for i in range(len(edges) - 1):
        sel = which == i
        last = i == len(edges) - 2
        rows.append(
            {
                "bin": f"[{edges[i]:g}, {edges[i + 1]:g}" + ("]" if last else ")"),
                "runs": int(sel.sum()),
                "mean_predicted": float(prob[sel].mean()) if sel.any() else float("nan"),
                "observed_fraction": float(hit[sel].mean()) if sel.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("bin")


def paired_bootstrap(
    diff: np.ndarray, *, n_boot: int = DEFAULT_BOOT, prob: float = 0.9, seed: int = 0
) -> dict[str, float]:
    """Mean of per-setting differences with a bootstrap-over-settings interval.

    The settings are resampled with replacement ``n_boot`` times (``numpy.random.default_rng
    (seed)``); the interval is the equal-tailed ``prob`` percentile interval of the resampled
    means. Pairing (one difference per setting, both methods scored on it) removes the
    variation between settings that both methods share, which dwarfs most gaps between them.

    Returns
    -------
    dict
        ``mean``, ``lower``, ``upper`` and ``n`` (settings with a finite difference; NaN values
        are left out and counted out of ``n``).
    """
    prob = check_prob(prob)
    diff = np.asarray(diff, dtype=float).ravel()
    diff = diff[np.isfinite(diff)]
    n = diff.size
    if n == 0:
        return {"mean": float("nan"), "lower": float("nan"), "upper": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - prob) / 2, (1 + prob) / 2])
    return {"mean": float(diff.mean()), "lower": float(lo), "upper": float(hi), "n": int(n)}
