"""One entry point for reading a run's loss curve, whatever the file's format."""

from __future__ import annotations

import os
from pathlib import Path

from ._defaults import BLOCK_SIZE, DEFAULT_MAX_CNT, MAX_LINE_BYTES
from .curve import LossCurve
from .exports import read_csv_curve, read_jsonl_curve
from .text import read_text_log


def read_loss_curve(
    path: str | os.PathLike,
    max_cnt: int = DEFAULT_MAX_CNT,
    *,
    step_column: str | None = None,
    loss_column: str | None = None,
    block_size: int = BLOCK_SIZE,
    max_line: int = MAX_LINE_BYTES,
    follow_symlinks: bool = True,
) -> LossCurve:
    """Read the last ``max_cnt`` points of a run's loss curve.

    Parameters
    ----------
    path : path
        A Megatron-style text log (read from the end in blocks of ``block_size`` bytes, so
        only the tail of a multi-gigabyte log is touched), or a loss curve exported as CSV
        (``.csv``, ``.tsv``) or JSON Lines (``.jsonl``, ``.ndjson``). Only a regular file is
        read: a FIFO, a device or a socket raises at once (it could block or never end).
    max_cnt : int
        Most loss points returned (the last ones).
    step_column, loss_column : str, optional
        Column (CSV) or key (JSON Lines) names. By default the first present, ignoring case,
        of ``step, _step, global_step, trainer/global_step, iteration, iter`` and of ``loss,
        lm loss, lm_loss, train/loss, train_loss, train/lm_loss, lm loss only, value``. Rows
        without a step or a loss (sparse tracker histories) are skipped.
    block_size : int
        Bytes read per step when reading a text log backwards.
    max_line : int
        Longest line read, in bytes (default 1 MiB). Longer lines are skipped without being
        held in memory and counted in ``skipped_lines``; reading stays linear in time.
    follow_symlinks : bool
        With False, a ``path`` that is a symbolic link is refused.

    Returns
    -------
    LossCurve
        A final line without a newline is treated as cut off by a crash or a job still
        writing: it is ignored and ``truncated`` is set.

    Raises
    ------
    NotRegularFileError
        ``path`` is not a regular file (an :class:`OSError`).
    OSError
        The file cannot be read.
    ValueError
        Bad arguments, or an export whose columns cannot be found or that is not valid text.
    """
    path = Path(path)
    if max_cnt < 1:
        raise ValueError(f"max_cnt must be a positive number of lines; got {max_cnt}")
    if max_line < 1:
        raise ValueError(f"max_line must be a positive number of bytes; got {max_line}")
    suffix = path.suffix.lower()
    limits = {"max_line": max_line, "follow_symlinks": follow_symlinks}
    if suffix in (".csv", ".tsv"):
        return read_csv_curve(path, max_cnt, step_column, loss_column, **limits)
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl_curve(path, max_cnt, step_column, loss_column, **limits)
    return read_text_log(path, max_cnt, block_size, **limits)
