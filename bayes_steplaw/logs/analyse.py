"""Checking and smoothing runs: one run's row, many runs in parallel, and the quick check.

Every problem of a run lands in its row (``status`` and ``problems``), nothing is raised and
nothing is dropped: a run that cannot be read, a folder that cannot be listed, a run whose
name had to be escaped are all rows.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ._defaults import (
    DEFAULT_LOG_PATTERN,
    DEFAULT_MAX_CNT,
    DEFAULT_WINDOW,
    HPARAM_FILES,
    MAX_LINE_BYTES,
)
from ._guards import cut, display_name, display_path, preview
from .discover import Run, find_runs
from .hparams import parse_run_name, read_hparams_file
from .reading import read_loss_curve
from .smoothing import smooth_final_loss

Status = Literal["ok", "warning", "failed"]


@dataclass(frozen=True)
class Options:
    """How each run is read and checked (one picklable value for the worker processes)."""

    target_iter: int | None = None
    max_cnt: int = DEFAULT_MAX_CNT
    window: float = DEFAULT_WINDOW
    step_column: str | None = None
    loss_column: str | None = None
    hparams: bool = False
    name_regex: re.Pattern[str] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    hparam_files: tuple[str, ...] = HPARAM_FILES
    follow_symlinks: bool = True


def check_options(target_iter: int | None, max_cnt: int, window: float) -> None:
    """The argument checks quick_check and collect share; ValueError naming the argument."""
    if target_iter is not None and target_iter < 1:
        raise ValueError(f"target_iter must be a positive iteration; got {target_iter}")
    if max_cnt < 2:
        raise ValueError(f"max_cnt must be >= 2 (lines read per log); got {max_cnt}")
    if not window > 0:
        raise ValueError(f"window must be > 0 iterations; got {window}")


def _worst(a: Status, b: Status) -> Status:
    order = {"ok": 0, "warning": 1, "failed": 2}
    return a if order[a] >= order[b] else b


def _first_nonfinite(iters: np.ndarray, losses: np.ndarray) -> str | None:
    bad = ~np.isfinite(losses)
    if not bad.any():
        return None
    first = int(np.argmax(bad))
    return (
        f"{int(bad.sum())} non-finite loss value(s) (diverged?), first {losses[first]} "
        f"at iteration {int(iters[first])}"
    )


def _run_hparams(run: Run, opts: Options) -> tuple[dict[str, Any], list[str]]:
    """Merge, lowest precedence first: defaults, the experiment name, the hparams file."""
    values = dict(opts.defaults)
    errors: list[str] = []
    try:
        values.update(parse_run_name(run.name, opts.name_regex))
    except ValueError as exc:
        errors.append(str(exc))
    if opts.name_regex is not None and opts.name_regex.search(run.name) is None:
        errors.append(
            f"the experiment name does not match name_regex {preview(opts.name_regex.pattern)}"
        )
    for name in opts.hparam_files:
        path = run.directory / name
        if os.path.lexists(path):  # the first one present is read, whatever kind of file
            try:
                values.update(read_hparams_file(path, follow_symlinks=opts.follow_symlinks))
            except (ValueError, OSError) as exc:
                reason = str(exc)
                errors.append(reason if reason.startswith(name) else f"{name}: {reason}")
            break
    return values, errors


def analyse_run(run: Run, opts: Options) -> dict[str, Any]:
    """Read, check and smooth one run; every problem lands in the row, nothing is raised."""
    try:
        return _analyse(run, opts)
    except Exception as exc:  # one broken run must not stop the others
        return {
            "exp_name": run.name,
            "log_file": display_path(run.log_file),
            "status": "failed",
            "problems": f"unexpected error: {type(exc).__name__}: {cut(str(exc))}",
        }


def _analyse(run: Run, opts: Options) -> dict[str, Any]:
    row: dict[str, Any] = {
        "exp_name": run.name,
        "smooth_loss": np.nan,
        "target_iter": None,
        "final_iter": None,
        "total_iter": None,
        "loss_last": np.nan,
        "n_points": 0,
        "log_interval": None,
        "sigma": np.nan,
        "log_file": display_path(run.log_file),
    }
    status: Status = "ok"
    problems: list[str] = []
    log_name = display_name(run.log_file.name)

    def report(level: Status, message: str) -> None:
        nonlocal status
        status = _worst(status, level)
        problems.append(message)

    def done() -> dict[str, Any]:
        return {**row, "status": status, "problems": "; ".join(problems)}

    if run.escaped:
        report(
            "warning",
            "the folder name is not printable UTF-8; the run is named by its escaped form",
        )
    if opts.hparams:
        values, errors = _run_hparams(run, opts)
        row.update(values)
        for message in errors:
            report("failed", message)
    try:
        curve = read_loss_curve(
            run.log_file,
            opts.max_cnt,
            step_column=opts.step_column,
            loss_column=opts.loss_column,
            follow_symlinks=opts.follow_symlinks,
        )
    except (OSError, ValueError) as exc:
        report("failed", f"cannot read {log_name}: {cut(str(exc))}")
        return done()

    iters, losses = curve.iters, curve.losses
    row["n_points"] = len(iters)
    row["total_iter"] = curve.total_iter
    if curve.truncated:
        report("warning", "the last line is truncated (no newline at the end); it was ignored")
    if curve.skipped_lines:
        report(
            "warning",
            f"{curve.skipped_lines} line(s) longer than {MAX_LINE_BYTES // 1024} KiB skipped "
            f"unread (a crash's gap of NUL bytes?)",
        )
    if len(iters) == 0:
        report("failed", f"no loss lines in {log_name}")
        return done()
    row["final_iter"] = int(iters[-1])
    if curve.unparseable:
        shown = ", ".join(preview(v) for v in curve.unparseable[:3])
        report("failed", f"{len(curve.unparseable)} loss value(s) are not numbers: {shown}")
    elif (msg := _first_nonfinite(iters, losses)) is not None:
        report("failed", msg)
    steps = np.diff(iters)
    if len(steps) and (steps <= 0).any():
        back = int(np.argmax(steps <= 0))
        report(
            "warning",
            f"iterations do not increase ({int(iters[back])} -> {int(iters[back + 1])}); "
            f"the log may hold a restart",
        )
    try:
        smoothed = smooth_final_loss(iters, losses, opts.window, opts.target_iter)
    except ValueError as exc:
        report("failed", str(exc))
        return done()
    interval = int(iters[1] - iters[0])
    row.update(
        smooth_loss=smoothed.loss,
        target_iter=smoothed.iteration,
        loss_last=float(losses[smoothed.index]),
        log_interval=interval,
        sigma=smoothed.sigma,
    )
    planned_from = "planned total"
    planned = curve.total_iter
    if opts.hparams and row.get("iterations") is not None:
        planned, planned_from = row["iterations"], "planned iterations"
        if curve.total_iter is not None and curve.total_iter != planned:
            report(
                "warning",
                f"the log plans {curve.total_iter} iterations but the run's hyperparameters "
                f"say {planned}",
            )
    if opts.target_iter is not None:
        planned, planned_from = opts.target_iter, "target_iter"
    if planned is not None and planned - int(iters[-1]) >= interval:
        report(
            "failed",
            f"stopped early: last logged iteration {int(iters[-1])} of {planned_from} {planned}",
        )
    return done()


def unlisted_row(folder: Path, reason: str) -> dict[str, Any]:
    """The row of a folder that matched but could not be listed: its runs are unknown."""
    return {
        "exp_name": display_name(folder.name),
        "log_file": display_path(folder),
        "status": "failed",
        "problems": f"the folder {reason}; any logs in it were not read",
    }


# ---------------------------------------------------------------------------- many runs

RUN_COLUMNS = [
    "exp_name",
    "smooth_loss",
    "target_iter",
    "final_iter",
    "total_iter",
    "loss_last",
    "n_points",
    "log_interval",
    "sigma",
    "log_file",
    "status",
    "problems",
]


def analyse_many(
    runs: Sequence[Run],
    opts: Options,
    workers: int | None,
    executor: Literal["process", "thread"],
    progress: bool | None,
) -> list[dict[str, Any]]:
    """:func:`analyse_run` of every run, in order, in a pool, with a progress bar on stderr
    (``progress=None``: only when stderr is a terminal)."""
    from tqdm import tqdm

    class Progress(tqdm):
        # no monitor thread: it outlives the bar, and a later pool would fork a threaded
        # process (or, by _process_context, pay for a fork server)
        monitor_interval = 0

    if executor not in ("process", "thread"):
        raise ValueError(f"executor must be 'process' or 'thread'; got {preview(executor)}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    n_workers = min(workers or os.cpu_count() or 1, max(len(runs), 1))
    bar = dict(
        total=len(runs),
        desc="logs",
        unit="run",
        file=sys.stderr,
        disable=None if progress is None else not progress,
        leave=False,
    )
    if n_workers == 1:
        return [analyse_run(run, opts) for run in Progress(runs, **bar)]
    pool: Executor
    if executor == "process":
        pool = ProcessPoolExecutor(n_workers, mp_context=_process_context())
    else:
        pool = ThreadPoolExecutor(n_workers)
    with pool:
        chunk = max(1, len(runs) // (n_workers * 8))
        kwargs = {"chunksize": chunk} if executor == "process" else {}
        results = pool.map(analyse_run, runs, [opts] * len(runs), **kwargs)
        return list(Progress(results, **bar))


def _process_context() -> multiprocessing.context.BaseContext:
    """The platform's default start (on Linux a fork, the cheapest: 0.9 s less per
    ``quick-check`` of 300 logs) where this process runs one thread; else a fork server (or
    spawn). A forked child gets a copy of every lock the other threads held (JAX's, once a
    fit imported it; a sampler's) and can deadlock on one."""
    if threading.active_count() == 1 and "jax" not in sys.modules:
        return multiprocessing.get_context()  # the platform's default: fork on Linux
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # the server imports this module once; each pool's workers then fork from it ready
    context.set_forkserver_preload([__name__])
    return context


def scan(
    base_dir: str | os.PathLike,
    pattern: str | re.Pattern[str],
    opts: Options,
    *,
    log_pattern: str | re.Pattern[str],
    workers: int | None,
    executor: Literal["process", "thread"],
    progress: bool | None,
    on_skip: Callable[[Path, str], None] | None,
    on_link: Callable[[Path, Path], None] | None,
) -> tuple[list[Run], list[dict[str, Any]]]:
    """Find and analyse the runs; folders that cannot be listed become failed rows, in the
    order of :func:`find_runs` (name, then folder)."""
    unlisted: list[tuple[Path, str]] = []
    runs = find_runs(
        base_dir,
        pattern,
        log_pattern=log_pattern,
        on_skip=on_skip,
        on_error=lambda folder, why: unlisted.append((folder, why)),
        on_link=on_link,
        follow_symlinks=opts.follow_symlinks,
    )
    rows = analyse_many(runs, opts, workers, executor, progress)
    keyed = [((r.name, str(r.directory)), row) for r, row in zip(runs, rows, strict=True)]
    keyed += [((display_name(f.name), str(f)), unlisted_row(f, why)) for f, why in unlisted]
    keyed.sort(key=lambda item: item[0])
    return runs, [row for _, row in keyed]


def rows_frame(rows: list[dict[str, Any]], extra: Iterable[str] = ()) -> pd.DataFrame:
    """Rows of :func:`analyse_run` as a frame with fixed columns and dtypes."""
    columns = list(dict.fromkeys([*RUN_COLUMNS, *extra]))
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=columns + [c for c in frame if c not in columns])
    for col in ("target_iter", "final_iter", "total_iter", "log_interval"):
        frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
    frame["n_points"] = frame["n_points"].fillna(0).astype(np.int64)
    for col in ("smooth_loss", "loss_last", "sigma"):
        frame[col] = frame[col].astype(np.float64)
    for col in ("exp_name", "log_file", "status", "problems"):
        frame[col] = frame[col].astype(object)
    return frame


def quick_check(
    base_dir: str | os.PathLike,
    pattern: str | re.Pattern[str],
    *,
    target_iter: int | None = None,
    max_cnt: int = DEFAULT_MAX_CNT,
    window: float = DEFAULT_WINDOW,
    log_pattern: str | re.Pattern[str] = DEFAULT_LOG_PATTERN,
    step_column: str | None = None,
    loss_column: str | None = None,
    workers: int | None = None,
    executor: Literal["process", "thread"] = "process",
    progress: bool | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
    on_link: Callable[[Path, Path], None] | None = None,
    follow_symlinks: bool = True,
) -> pd.DataFrame:
    """Smoothed final loss of every run under ``base_dir``.

    Parameters
    ----------
    base_dir, pattern, log_pattern, on_skip, on_link, follow_symlinks
        Which runs: see :func:`find_runs`. With ``follow_symlinks=False`` a log or a
        hyperparameter file that is a symbolic link is not read either.
    target_iter : int, optional
        Report the smoothed loss at the last logged iteration <= ``target_iter`` instead of at
        the last logged iteration.
    max_cnt : int
        Loss lines read from the end of each log (the smoothing window also depends on it).
    window : float
        Smoothing window in iterations (see :func:`smooth_losses`).
    step_column, loss_column : str, optional
        Column names for CSV / JSON Lines exports (see :func:`read_loss_curve`).
    workers : int, optional
        Parallel workers (default: one per CPU); 1 runs in this process.
    executor : {"process", "thread"}
        Process pool (parsing is CPU-bound, so this scales) or thread pool.
    progress : bool, optional
        Progress bar on stderr; by default shown only when stderr is a terminal.

    Returns
    -------
    pandas.DataFrame
        One row per run, sorted by ``exp_name``: ``exp_name``, ``smooth_loss``,
        ``target_iter`` (the iteration the smoothed loss is read at), ``final_iter`` (last
        logged iteration), ``total_iter`` (planned, from the log), ``loss_last`` (raw loss at
        ``target_iter``), ``n_points``, ``log_interval``, ``sigma``, ``log_file``, ``status``
        and ``problems``. ``status`` is ``"ok"``; ``"warning"`` (value usable: truncated last
        line, iterations going back, over-long lines skipped, a name shown escaped); or
        ``"failed"`` (no loss lines, non-numeric or non-finite losses, stopped before the
        planned total or the target, too few points, a log that is not a regular file, a
        matching folder that cannot be listed: its row has the folder as ``log_file``).
        ``problems`` says why, in words. Runs with problems are kept, never dropped. A run has
        stopped early when its last logged iteration is a whole log interval or more short of
        the planned total (or of ``target_iter``); the upstream tool tolerates one more
        interval and drops such runs without a word.
    """
    check_options(target_iter, max_cnt, window)
    opts = Options(
        target_iter, max_cnt, float(window), step_column, loss_column,
        follow_symlinks=follow_symlinks,
    )  # fmt: skip
    _, rows = scan(
        base_dir,
        pattern,
        opts,
        log_pattern=log_pattern,
        workers=workers,
        executor=executor,
        progress=progress,
        on_skip=on_skip,
        on_link=on_link,
    )
    return rows_frame(rows)
