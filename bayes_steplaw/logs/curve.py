"""The loss-curve record every reader returns, and the text-to-number conversion they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LossCurve:
    """The end of one run's loss curve, in iteration order.

    Attributes
    ----------
    iters : numpy.ndarray of int64
        Logged iterations (at most ``max_cnt``, the last ones of the file).
    losses : numpy.ndarray of float64
        Logged losses; ``nan``/``inf`` as written, NaN also where the value was not a number.
    total_iter : int or None
        Planned total iterations (``iter i/total``) on the last loss line; None for exports.
    truncated : bool
        The file did not end with a newline; its incomplete last line was ignored.
    unparseable : list of str
        Loss values that are not numbers (they are NaN in ``losses``).
    source : pathlib.Path or None
        The file read.
    skipped_lines : int
        Lines longer than the reader's ``max_line`` (1 MiB by default) that were skipped
        unread, e.g. the gap of NUL bytes a crash leaves in a log (among the lines read).
    """

    iters: np.ndarray
    losses: np.ndarray
    total_iter: int | None = None
    truncated: bool = False
    unparseable: list[str] = field(default_factory=list)
    source: Path | None = None
    skipped_lines: int = 0


def empty_curve(path: Path, truncated: bool = False, skipped_lines: int = 0) -> LossCurve:
    """A curve without points (a file with no loss lines or rows)."""
    return LossCurve(np.empty(0, np.int64), np.empty(0), None, truncated, [], path, skipped_lines)


def to_float(values: Sequence[bytes] | Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Convert text to float64; values that are not numbers become NaN and are returned."""
    if len(values) == 0:
        return np.empty(0), []
    try:
        return np.asarray(values).astype(np.float64), []
    except ValueError:
        out = np.empty(len(values))
        bad = []
        for i, v in enumerate(values):
            try:
                out[i] = float(v)
            except ValueError:
                out[i] = np.nan
                bad.append(v.decode(errors="replace") if isinstance(v, bytes) else str(v))
        return out, bad
