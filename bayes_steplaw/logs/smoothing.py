"""Gaussian smoothing of a loss curve and the smoothed loss at one iteration.

A Gaussian filter over the logged losses (:func:`scipy.ndimage.gaussian_filter1d`), with

    sigma = min(window, 0.01 * n_points) / log_interval

in units of logged points, where ``log_interval`` is the iteration step between the first two
lines read. As in the upstream tool the filter uses scipy's defaults, ``mode="reflect"`` (the
curve is mirrored about its ends, edge value repeated) and ``truncate=4.0`` (kernel radius
``int(4 * sigma + 0.5)`` points), and the whole curve read is smoothed before the value at the
target iteration is picked, so points after the target take part in its smoothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ._defaults import DEFAULT_WINDOW


class SmoothedLoss(NamedTuple):
    """Smoothed loss at one iteration: ``loss`` at ``iteration``, its index and the ``sigma``."""

    loss: float
    iteration: int
    index: int
    sigma: float


def _check_curve(iters: np.ndarray, losses: np.ndarray, window: float) -> float:
    """Validate a curve for smoothing and return its log interval."""
    if iters.shape != losses.shape or iters.ndim != 1:
        raise ValueError(
            f"iters and losses must be 1-D arrays of one length; got shapes "
            f"{iters.shape} and {losses.shape}"
        )
    if len(iters) < 2:
        raise ValueError(f"need at least 2 logged points to smooth; got {len(iters)}")
    if not window > 0:
        raise ValueError(f"window must be > 0 iterations; got {window}")
    interval = float(iters[1] - iters[0])
    if not interval > 0:
        raise ValueError(
            f"the log interval (step between the first two logged iterations, "
            f"{iters[0]} -> {iters[1]}) must be > 0"
        )
    return interval


def smooth_losses(
    iters: np.ndarray | Sequence[int],
    losses: np.ndarray | Sequence[float],
    window: float = DEFAULT_WINDOW,
) -> tuple[np.ndarray, float]:
    """Gaussian-smooth a loss curve.

    Parameters
    ----------
    iters : array of int
        Logged iterations, increasing and evenly spaced.
    losses : array of float
        Logged losses.
    window : float
        Smoothing window in iterations.

    Returns
    -------
    smoothed : numpy.ndarray
        ``gaussian_filter1d(losses, sigma, mode="reflect", truncate=4.0)``.
    sigma : float
        ``min(window, 0.01 * len(losses)) / log_interval`` in logged points, where
        ``log_interval = iters[1] - iters[0]``.

    Raises
    ------
    ValueError
        Fewer than two points, mismatched lengths, ``window <= 0`` or a log interval <= 0.
    """
    it = np.asarray(iters)
    y = np.asarray(losses, dtype=np.float64)
    interval = _check_curve(it, y, window)
    sigma = min(float(window), 0.01 * len(y)) / interval
    from scipy.ndimage import gaussian_filter1d  # scipy.ndimage costs ~0.3 s to import

    return gaussian_filter1d(y, sigma, mode="reflect", truncate=4.0), sigma


def smooth_final_loss(
    iters: np.ndarray | Sequence[int],
    losses: np.ndarray | Sequence[float],
    window: float = DEFAULT_WINDOW,
    target_iter: int | None = None,
) -> SmoothedLoss:
    """Smoothed loss at the last logged iteration, or at the last one <= ``target_iter``.

    The whole curve is smoothed first (see :func:`smooth_losses`), then the value is picked,
    so with ``target_iter`` the points logged after it still take part in its smoothing.

    Parameters
    ----------
    iters, losses : array
        The loss curve (see :func:`smooth_losses`).
    window : float
        Smoothing window in iterations.
    target_iter : int, optional
        Iteration to read the smoothed loss at (the last logged one <= it).

    Returns
    -------
    SmoothedLoss
        ``loss``, the ``iteration`` it belongs to, its ``index`` in the curve and ``sigma``.

    Raises
    ------
    ValueError
        As :func:`smooth_losses`, or when no logged iteration is <= ``target_iter``.
    """
    it = np.asarray(iters)
    smoothed, sigma = smooth_losses(it, losses, window)
    if target_iter is None:
        index = len(it) - 1
    else:
        candidates = np.flatnonzero(it <= target_iter)
        if len(candidates) == 0:
            raise ValueError(
                f"no logged iteration <= target_iter {target_iter}; the first one read is "
                f"{it[0]} (read more lines with a larger max_cnt)"
            )
        index = int(candidates[-1])
    return SmoothedLoss(float(smoothed[index]), int(it[index]), index, sigma)
