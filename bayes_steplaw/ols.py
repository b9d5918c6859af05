"""Ordinary least squares over many bootstrap resamples at once (the paper's fitting recipe).

A resample is a vector of row counts; every resample's weighted normal equations are solved
in one batched call, so 1000 refits cost about as much as a few.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

RCOND = 1e-10
"""A resample's design is singular when a covariate's weighted variance is at most ``RCOND``
times its mean square about the covariate's overall mean (it is constant to working precision,
e.g. every drawn run has the same ``N``), or when the reciprocal condition number of the
covariates' correlation matrix is at most ``RCOND`` (collinear, e.g. only two distinct
``(N, D)`` settings drawn)."""


def resample_indices(n_runs: int, n_boot: int, seed: int | None = 0) -> np.ndarray:
    """Draw the bootstrap resamples: an ``(n_boot, n_runs)`` matrix of row indices.

    Row ``k`` holds the indices of the runs in resample ``k``, drawn uniformly with
    replacement by ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    n_runs : int
        Number of runs resampled (each resample has as many draws as runs).
    n_boot : int
        Number of resamples.
    seed : int or None
        Seed of the generator; ``None`` draws fresh entropy.

    Returns
    -------
    numpy.ndarray
        Integer array of shape ``(n_boot, n_runs)``.
    """
    for value, name in ((n_runs, "n_runs"), (n_boot, "n_boot")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, int(n_runs), size=(int(n_boot), int(n_runs)))


def row_counts(indices: np.ndarray, n_runs: int) -> np.ndarray:
    """How often each run occurs in each resample: ``(n_boot, n_runs)`` float array."""
    n_boot = indices.shape[0]
    flat = (indices + n_runs * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_runs).reshape(n_boot, n_runs).astype(float)


def weighted_ols(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS with intercept of ``y`` on ``X`` for each weight row of ``w``, solved batched.

    Count-weighted normal equations for every resample from one matrix product: ``w`` times
    the columns ``x, y, x x^T, x y`` of the data centred at their overall means (centring keeps
    the moments of order one, although ``ln N`` and ``ln D`` are large numbers). Each
    resample's centred covariance is scaled to a correlation matrix and solved in one batched
    :func:`numpy.linalg.solve`.

    Returns
    -------
    coef : (n_boot, 1 + p) array
        Intercept, then slopes; NaN rows where the design is singular (see :data:`RCOND`).
    ok : (n_boot,) bool array
        False where the design is singular.
    """
    n_boot, p = w.shape[0], X.shape[1]
    x_bar, y_bar = X.mean(axis=0), y.mean()
    Xg, yg = X - x_bar, y - y_bar
    cross = (Xg[:, :, None] * Xg[:, None, :]).reshape(len(Xg), p * p)
    moments = np.column_stack([Xg, yg, cross, Xg * yg[:, None]])  # (n, p + 1 + p^2 + p)
    S = (w @ moments) / w.sum(axis=1)[:, None]  # weighted means, one row per resample
    mu_x, mu_y = S[:, :p], S[:, p]
    Sxx = S[:, p + 1 : p + 1 + p * p].reshape(n_boot, p, p)
    Cxx = Sxx - mu_x[:, :, None] * mu_x[:, None, :]  # weighted covariance of the covariates
    Cxy = S[:, -p:] - mu_x * mu_y[:, None]
    var = np.einsum("bpp->bp", Cxx)
    ok = (var > RCOND * np.einsum("bpp->bp", Sxx)).all(axis=1)
    scale = np.sqrt(np.where(var > 0, var, 1.0))
    R = Cxx / (scale[:, :, None] * scale[:, None, :])
    if p > 1:
        eig = np.linalg.eigvalsh(np.where(ok[:, None, None], R, np.eye(p)))
        ok &= eig[:, 0] > RCOND * eig[:, -1]
    coef = np.full((n_boot, 1 + p), np.nan)
    if ok.any():
        z = np.linalg.solve(R[ok], (Cxy[ok] / scale[ok])[:, :, None])[:, :, 0]
        slopes = z / scale[ok]
        coef[ok, 1:] = slopes
        coef[ok, 0] = (y_bar - slopes @ x_bar) + (
            mu_y[ok] - np.einsum("bp,bp->b", mu_x[ok], slopes)
        )
    return coef, ok


def bootstrap_ols(X: Any, y: Any, indices: Any) -> np.ndarray:
    """OLS with intercept of ``y`` on ``X``, for every bootstrap resample at once.

    Parameters
    ----------
    X : array_like, shape (n, p)
        Covariates (no intercept column; one is added). A 1-D array is one covariate.
    y : array_like, shape (n,)
        Response.
    indices : array_like of int, shape (n_boot, m)
        Row ``k`` lists the rows of ``X``/``y`` in resample ``k`` (with repeats), e.g. from
        :func:`resample_indices`.

    Returns
    -------
    numpy.ndarray, shape (n_boot, 1 + p)
        Intercept then slopes of each resample's least-squares fit; a row is NaN where the
        resample's design is singular (e.g. every drawn run has the same ``N``; see
        :data:`RCOND`).
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    y = np.asarray(y, dtype=float)
    idx = np.asarray(indices)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (n, p) and y (n,); got {X.shape} and {y.shape}")
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be a 2-D integer array; got {idx.dtype} {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= X.shape[0]):
        raise ValueError(f"indices must lie in [0, {X.shape[0]}); got {idx.min()}..{idx.max()}")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    coef, _ = weighted_ols(X, y, row_counts(idx, X.shape[0]))
    return coef
