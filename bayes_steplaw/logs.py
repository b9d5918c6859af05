"""Training logs -> smoothed final losses -> sweep tables.

The Step Law paper's metric is the *smoothed* final training loss of each run. This module finds
the runs under a folder, reads the end of each run's loss curve, smooths it and reports the final
smoothed loss (:func:`quick_check`), or turns the runs into a sweep table in the package schema
that :func:`bayes_steplaw.read_sweeps` accepts (:func:`collect`).

Layout of the runs
------------------
Every folder below ``base_dir`` is entered only when its name matches the user's regular
expression (:func:`re.search`, anywhere in the name). A folder that holds files named like
``train_log_<k>.txt`` is a run; its name is the experiment name and the file with the largest
``k`` is read. (The upstream tool only looks at leaf folders, so a run folder that also holds,
say, a ``checkpoints/`` folder is silently missed there; here it is still a run.)

Loss lines
----------
Megatron-style text logs, one line per logged iteration (wrapped here)::

    2024-06-18 10:22:33.123 | INFO     | megatron.core.trainerv2:training_log:412 - iter
        100/   66342 | ... | lm loss: 3.412345E+00 | ...

(``lm loss only:`` is accepted too; other lines are ignored). Logs are read from the end, in
blocks, and reading stops after ``max_cnt`` loss lines. Loss curves exported by experiment
trackers as CSV or JSON Lines (a step and a loss column) are read as well.

Smoothing
---------
A Gaussian filter over the logged losses (:func:`scipy.ndimage.gaussian_filter1d`), with

    sigma = min(window, 0.01 * n_points) / log_interval

in units of logged points, where ``log_interval`` is the iteration step between the first two
lines read. As in the upstream tool the filter uses scipy's defaults, ``mode="reflect"`` (the
curve is mirrored about its ends, edge value repeated) and ``truncate=4.0`` (kernel radius
``int(4 * sigma + 0.5)`` points), and the whole curve read is smoothed before the value at the
target iteration is picked, so points after the target take part in its smoothing.
"""

from __future__ import annotations

import gc
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from .datasets.sweeps import ARCH_COLUMNS, CORE_COLUMNS, MIN_RUNS_PER_SETTING, read_sweeps

__all__ = [
    "DEFAULT_LOG_PATTERN",
    "DEFAULT_MAX_CNT",
    "DEFAULT_WINDOW",
    "HPARAM_FILES",
    "HPARAM_KEYS",
    "LogProblemsError",
    "LossCurve",
    "Run",
    "SmoothedLoss",
    "check_name_regex",
    "collect",
    "find_runs",
    "non_embedding_params",
    "parse_loss_lines",
    "parse_run_name",
    "quick_check",
    "read_hparams_file",
    "read_loss_curve",
    "smooth_final_loss",
    "smooth_losses",
    "training_tokens",
]

DEFAULT_MAX_CNT = 32768
DEFAULT_WINDOW = 100.0
DEFAULT_LOG_PATTERN = r"train_log_(\d+)\.(?:txt|log|csv|jsonl)"
HPARAM_FILES = ("hparams.json", "hparams.yaml", "hparams.yml")
BLOCK_SIZE = 1 << 20

# A loss line. Matched against text that starts with the newline ending the previous line: the
# literal first byte lets the regex engine skip quickly to line starts (about twice as fast as
# a ``^`` anchor in MULTILINE mode). After ``iter i/total`` the rest of the line is scanned
# possessively (no backtracking) up to the field that begins with ``lm loss:`` or
# ``lm loss only:``; the value is every byte up to the next space or ``|``, so ``nan``, ``inf``
# and garbage are captured and judged later.
_LOSS_LINE = re.compile(
    rb"\n\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| \w+ *\| [\w.]+:\w+:\d+ - "
    rb"iter +(\d+) */ *(\d+) *(?=\|)(?:[^|\n]++|\|(?! *lm loss(?: only)?:))*+"
    rb"\| *lm loss(?: only)?: *([^\s|]+)"
)

_STEP_COLUMNS = ("step", "_step", "global_step", "trainer/global_step", "iteration", "iter")
_LOSS_COLUMNS = (
    "loss",
    "lm loss",
    "lm_loss",
    "train/loss",
    "train_loss",
    "train/lm_loss",
    "lm loss only",
    "value",
)

Status = Literal["ok", "warning", "failed"]

# ---------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Run:
    """One training run found under the base folder.

    Attributes
    ----------
    name : str
        Experiment name (the run folder's name).
    directory : pathlib.Path
        The run folder.
    log_file : pathlib.Path
        The log read: the ``train_log_<k>`` file with the largest ``k``.
    """

    name: str
    directory: Path
    log_file: Path


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
    """

    iters: np.ndarray
    losses: np.ndarray
    total_iter: int | None = None
    truncated: bool = False
    unparseable: list[str] = field(default_factory=list)
    source: Path | None = None


class SmoothedLoss(NamedTuple):
    """Smoothed loss at one iteration: ``loss`` at ``iteration``, its index and the ``sigma``."""

    loss: float
    iteration: int
    index: int
    sigma: float


class LogProblemsError(ValueError):
    """Some runs could not be turned into sweep rows; ``problems`` maps each to its reasons."""

    def __init__(self, problems: Mapping[str, str]):
        self.problems = dict(problems)
        lines = "\n".join(f"  - {name}: {why}" for name, why in self.problems.items())
        super().__init__(f"{len(self.problems)} run(s) have problems:\n{lines}")


# ---------------------------------------------------------------------------- finding runs


def _compile(pattern: str | re.Pattern[str], name: str) -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(
            f"{name} {pattern!r} is not a valid regular expression ({exc}); expected a Python "
            f"regular expression such as 'step2v2_.*'"
        ) from None


def _check_base_dir(base_dir: str | os.PathLike) -> Path:
    base = Path(base_dir)
    if not base.exists():
        raise FileNotFoundError(
            f"base_dir {str(base)!r} does not exist; expected a directory holding run folders"
        )
    if not base.is_dir():
        raise NotADirectoryError(
            f"base_dir {str(base)!r} is a file; expected a directory holding run folders"
        )
    return base


def _log_sort_key(match: re.Match[str]) -> tuple:
    digits = next((g for g in match.groups() if g is not None and g.isdigit()), None)
    return (int(digits) if digits is not None else -1, match.string)


def find_runs(
    base_dir: str | os.PathLike,
    pattern: str | re.Pattern[str],
    *,
    log_pattern: str | re.Pattern[str] = DEFAULT_LOG_PATTERN,
    on_skip: Callable[[Path, str], None] | None = None,
) -> list[Run]:
    """Find the runs under ``base_dir``.

    Parameters
    ----------
    base_dir : path
        Folder searched recursively.
    pattern : str or re.Pattern
        Every folder below ``base_dir`` (intermediate folders and run folders alike) is entered
        only when ``re.search(pattern, folder_name)`` matches.
    log_pattern : str or re.Pattern
        File names (full match) that are logs; the first all-digit group orders them and the
        largest is read. The default accepts ``train_log_<k>.txt`` (also ``.log``, ``.csv``,
        ``.jsonl``).
    on_skip : callable, optional
        Called as ``on_skip(folder, reason)`` for every folder skipped, and for folders entered
        that hold no logs and no sub-folders.

    Returns
    -------
    list of Run
        Sorted by experiment name, then folder.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        ``base_dir`` is missing or not a folder.
    ValueError
        ``pattern`` or ``log_pattern`` is not a valid regular expression.
    """
    base = _check_base_dir(base_dir)
    dir_rx = _compile(pattern, "pattern")
    log_rx = _compile(log_pattern, "log_pattern")
    runs: list[Run] = []
    stack = [base]
    seen: set[str] = set()
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop or a second link to a folder already searched
            if on_skip:
                on_skip(folder, "already searched (symbolic link)")
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            if on_skip:
                on_skip(folder, f"cannot be listed ({exc.strerror})")
            continue
        logs = []
        subdirs = []
        for entry in entries:
            if entry.is_dir():
                subdirs.append(entry)
            elif (m := log_rx.fullmatch(entry.name)) is not None:
                logs.append(m)
        if logs:
            newest = max(logs, key=_log_sort_key)
            runs.append(Run(folder.name, folder, folder / newest.string))
        elif not subdirs and on_skip and folder != base:
            on_skip(folder, "holds no log files")
        for entry in reversed(subdirs):
            if dir_rx.search(entry.name):
                stack.append(Path(entry.path))
            elif on_skip:
                on_skip(Path(entry.path), f"name does not match {dir_rx.pattern!r}")
    runs.sort(key=lambda r: (r.name, str(r.directory)))
    return runs


# ---------------------------------------------------------------------------- reading


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a parse builds many small tuples.

    A parse allocates hundreds of thousands of acyclic objects; the collector would walk them
    again and again for nothing (about a third of the parse time). It is re-enabled on exit
    by the caller that paused it, so concurrent threads leave it as they found it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _to_float(values: Sequence[bytes] | Sequence[str]) -> tuple[np.ndarray, list[str]]:
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


def parse_loss_lines(text: bytes | str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Parse the loss lines of a piece of Megatron-style log.

    Parameters
    ----------
    text : bytes or str
        Whole lines of a log. Lines that are not loss lines are ignored.

    Returns
    -------
    iters : numpy.ndarray of int64
        Iteration of each loss line, in file order.
    totals : numpy.ndarray of int64
        Planned total iterations written on each line.
    losses : numpy.ndarray of float64
        Loss values (NaN where the value is not a number).
    unparseable : list of str
        The values that were not numbers.
    """
    if isinstance(text, str):
        text = text.encode()
    with _gc_paused():
        return _columns(_LOSS_LINE.findall(b"\n" + text))


def _columns(found: list[tuple[bytes, bytes, bytes]]):
    if not found:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy(), np.empty(0), []
    iters, totals, values = zip(*found, strict=True)
    losses, bad = _to_float(values)
    return (
        np.asarray(iters).astype(np.int64),
        np.asarray(totals).astype(np.int64),
        losses,
        bad,
    )


def _complete_end(f: io.BufferedReader, size: int, block_size: int) -> int:
    """Offset just past the file's last newline (0 when there is none)."""
    if size == 0:
        return 0
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return size
    pos = size
    while pos > 0:
        start = max(0, pos - block_size)
        f.seek(start)
        chunk = f.read(pos - start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        pos = start
    return 0


def _read_text_log(path: Path, max_cnt: int, block_size: int) -> LossCurve:
    with open(path, "rb") as f, _gc_paused():
        size = f.seek(0, os.SEEK_END)
        end = _complete_end(f, size, block_size)
        if end < size:
            f.seek(end)
            truncated = bool(f.read(min(size - end, 1 << 16)).strip())
        else:
            truncated = False
        pieces: list[list[tuple[bytes, bytes, bytes]]] = []
        count = 0
        pos = end
        carry = b""  # start of a line whose beginning lies in the next block read
        while pos > 0 and count < max_cnt:
            start = max(0, pos - block_size)
            f.seek(start)
            buf = f.read(pos - start) + carry
            pos = start
            if pos > 0:
                nl = buf.find(b"\n")
                if nl < 0:
                    carry = buf
                    continue
                carry, region = buf[:nl], buf[nl:]
            else:
                carry, region = b"", b"\n" + buf
            found = _LOSS_LINE.findall(region)
            if found:
                pieces.append(found)
                count += len(found)
        found = [m for piece in reversed(pieces) for m in piece][-max_cnt:]
        iters, totals, losses, bad = _columns(found)
    total = int(totals[-1]) if len(totals) else None
    return LossCurve(iters, losses, total, truncated, bad, path)


def _split_complete(data: bytes) -> tuple[bytes, bool]:
    """Drop an incomplete last line; say whether there was one."""
    if not data or data.endswith(b"\n"):
        return data, False
    cut = data.rfind(b"\n") + 1
    return data[:cut], bool(data[cut:].strip())


def _pick(columns: Sequence[str], wanted: str | None, choices: Sequence[str], what: str) -> str:
    lower = {c.strip().lower(): c for c in columns}
    if wanted is not None:
        if wanted in columns:
            return wanted
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise ValueError(f"{what}_column {wanted!r} is not among the columns {list(columns)}")
    for name in choices:
        if name in lower:
            return lower[name]
    raise ValueError(
        f"no {what} column among {list(columns)}; expected one of {list(choices)} "
        f"(or name it with {what}_column=)"
    )


def _curve_from_records(
    steps: Sequence, values: Sequence, max_cnt: int, truncated: bool, path: Path
) -> LossCurve:
    steps_arr = pd.to_numeric(pd.Series(steps, dtype=object), errors="coerce").to_numpy(float)
    keep = ~np.isnan(steps_arr)
    vals = [str(v) for v, k in zip(values, keep, strict=True) if k]
    losses, bad = _to_float(vals)
    iters = steps_arr[keep].astype(np.int64)
    return LossCurve(iters[-max_cnt:], losses[-max_cnt:], None, truncated, bad, path)


def _read_csv_curve(
    path: Path, max_cnt: int, step_column: str | None, loss_column: str | None
) -> LossCurve:
    data, truncated = _split_complete(path.read_bytes())
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        table = pd.read_csv(io.BytesIO(data), sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return LossCurve(np.empty(0, np.int64), np.empty(0), None, truncated, [], path)
    step = _pick(list(table.columns), step_column, _STEP_COLUMNS, "step")
    loss = _pick(list(table.columns), loss_column, _LOSS_COLUMNS, "loss")
    rows = table[(table[loss].str.strip() != "") & (table[step].str.strip() != "")]
    return _curve_from_records(rows[step].tolist(), rows[loss].tolist(), max_cnt, truncated, path)


def _read_jsonl_curve(
    path: Path, max_cnt: int, step_column: str | None, loss_column: str | None
) -> LossCurve:
    data, truncated = _split_complete(path.read_bytes())
    records = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
    keys = list(dict.fromkeys(k for r in records if isinstance(r, dict) for k in r))
    if not keys:
        return LossCurve(np.empty(0, np.int64), np.empty(0), None, truncated, [], path)
    step = _pick(keys, step_column, _STEP_COLUMNS, "step")
    loss = _pick(keys, loss_column, _LOSS_COLUMNS, "loss")
    rows = [
        r
        for r in records
        if isinstance(r, dict) and r.get(step) is not None and r.get(loss) is not None
    ]
    steps = [r[step] for r in rows]
    values = [r[loss] for r in rows]
    return _curve_from_records(steps, values, max_cnt, truncated, path)


def read_loss_curve(
    path: str | os.PathLike,
    max_cnt: int = DEFAULT_MAX_CNT,
    *,
    step_column: str | None = None,
    loss_column: str | None = None,
    block_size: int = BLOCK_SIZE,
) -> LossCurve:
    """Read the last ``max_cnt`` points of a run's loss curve.

    Parameters
    ----------
    path : path
        A Megatron-style text log (read from the end in blocks of ``block_size`` bytes, so
        only the tail of a multi-gigabyte log is touched), or a loss curve exported as CSV
        (``.csv``, ``.tsv``) or JSON Lines (``.jsonl``, ``.ndjson``).
    max_cnt : int
        Most loss points returned (the last ones).
    step_column, loss_column : str, optional
        Column (CSV) or key (JSON Lines) names. By default the first present, ignoring case,
        of ``step, _step, global_step, trainer/global_step, iteration, iter`` and of ``loss,
        lm loss, lm_loss, train/loss, train_loss, train/lm_loss, lm loss only, value``. Rows
        without a step or a loss (sparse tracker histories) are skipped.
    block_size : int
        Bytes read per step when reading a text log backwards.

    Returns
    -------
    LossCurve
        A final line without a newline is treated as cut off by a crash or a job still
        writing: it is ignored and ``truncated`` is set.
    """
    path = Path(path)
    if max_cnt < 1:
        raise ValueError(f"max_cnt must be a positive number of lines; got {max_cnt}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _read_csv_curve(path, max_cnt, step_column, loss_column)
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl_curve(path, max_cnt, step_column, loss_column)
    return _read_text_log(path, max_cnt, block_size)


# ---------------------------------------------------------------------------- smoothing


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


# ---------------------------------------------------------------------------- hyperparameters

_KEY_ALIASES = {
    "h": "d_model",
    "hidden_size": "d_model",
    "ffnh": "d_ff",
    "ffn_hidden_size": "d_ff",
    "numh": "n_heads",
    "num_attention_heads": "n_heads",
    "numl": "n_layers",
    "num_layers": "n_layers",
    "bs": "batch_sequences",
    "global_batch_size": "batch_sequences",
    "ti": "iterations",
    "train_iters": "iterations",
    "seq_length": "seq_len",
    "topk": "top_k",
    "moe_router_topk": "top_k",
    "nume": "n_experts",
    "num_experts": "n_experts",
    "moeh": "d_expert",
    "sed": "d_shared_expert",
    "numld": "n_dense_layers",
    "Na": "N_active",
    "mlr": "min_lr",
}
_INT_KEYS = (*ARCH_COLUMNS, "iterations")
_FLOAT_KEYS = ("N", "N_active", "D", "lr", "min_lr", "batch_sequences", "batch_tokens", "seq_len")
_STR_KEYS = ("family", "variant", "recipe")
HPARAM_KEYS = (*_FLOAT_KEYS, *_INT_KEYS, *_STR_KEYS)

_NUM = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_NAME_TOKENS = [
    (re.compile(r"h(\d+)"), ("d_model",)),
    (re.compile(r"ffnh(\d+)"), ("d_ff",)),
    (re.compile(r"numh(\d+)"), ("n_heads",)),
    (re.compile(r"numl(\d+)"), ("n_layers",)),
    (re.compile(r"lr" + _NUM), ("lr",)),
    (re.compile(r"mlr" + _NUM), ("min_lr",)),
    (re.compile(r"bs(\d+)"), ("batch_sequences",)),
    (re.compile(r"ti(\d+)"), ("iterations",)),
    (re.compile(r"moeh(\d+)"), ("d_expert",)),
    (re.compile(r"sed(\d+)"), ("d_shared_expert",)),
    (re.compile(r"(\d+)in(\d+)"), ("top_k", "n_experts")),
]


def canonical_key(key: str) -> str:
    """Canonical hyperparameter name of ``key`` (released short names and Megatron names)."""
    return _KEY_ALIASES.get(key, key)


def _convert(key: str, value: Any, source: str) -> Any:
    if key in _STR_KEYS:
        return str(value)
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{source}: {key} must be a number; got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: {key} must be a number; got {value!r}") from None
    if key in _INT_KEYS:
        if not number.is_integer():
            raise ValueError(f"{source}: {key} must be a whole number; got {value!r}")
        return int(number)
    return number


def normalize_hparams(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Map keys to canonical names and convert values; unknown keys are dropped.

    Raises
    ------
    ValueError
        A known key holds a value of the wrong kind; the message names ``source`` and the key.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        canon = canonical_key(str(key))
        if canon in HPARAM_KEYS:
            out[canon] = _convert(canon, value, source)
    return out


def parse_run_name(name: str, regex: str | re.Pattern[str] | None = None) -> dict[str, Any]:
    """Hyperparameters encoded in an experiment name.

    Parameters
    ----------
    name : str
        Experiment name. Without ``regex`` the released data's naming is read: ``_``-separated
        tokens ``h<d_model>``, ``ffnh<d_ff>``, ``numh<n_heads>``, ``numl<n_layers>``,
        ``lr<lr>``, ``bs<batch_sequences>``, ``ti<iterations>``, ``mlr<min_lr>`` and for MoE
        ``<top_k>in<n_experts>`` (also the ``variant``), ``moeh<d_expert>``,
        ``sed<d_shared_expert>``; other tokens are ignored. E.g.
        ``step2v2_0618_h1280_ffnh9472_numh10_numl10_lr2.762e-03_bs736_ti33171_mlr1.00e-05``.
    regex : str or re.Pattern, optional
        A regular expression searched in the name whose named groups are hyperparameters
        (canonical or short names, e.g. ``(?P<lr>[\\d.e-]+)``). It replaces the built-in
        naming. A name it does not match gives ``{}``.

    Returns
    -------
    dict
        Canonical hyperparameter names to values (``family="moe"`` when experts are named).
    """
    if regex is not None:
        rx = _compile(regex, "name_regex")
        match = rx.search(name)
        if match is None:
            return {}
        found = {k: v for k, v in match.groupdict().items() if v is not None}
        return normalize_hparams(found, f"experiment name {name!r}")
    out: dict[str, Any] = {}
    for token in name.split("_"):
        for rx, keys in _NAME_TOKENS:
            m = rx.fullmatch(token)
            if m:
                out.update(zip(keys, m.groups(), strict=True))
                if keys == ("top_k", "n_experts"):
                    out["variant"] = token
                break
    out = normalize_hparams(out, f"experiment name {name!r}")
    if "n_experts" in out:
        out.setdefault("family", "moe")
    return out


def check_name_regex(regex: str | re.Pattern[str]) -> re.Pattern[str]:
    """Compile a name regex and check that its named groups are known hyperparameters."""
    rx = _compile(regex, "name_regex")
    groups = list(rx.groupindex)
    if not groups:
        raise ValueError(
            f"name_regex {rx.pattern!r} has no named groups; expected groups such as "
            f"(?P<lr>[0-9.e+-]+) and (?P<bs>[0-9]+)"
        )
    unknown = [g for g in groups if canonical_key(g) not in HPARAM_KEYS]
    if unknown:
        raise ValueError(
            f"name_regex group(s) {unknown} are not hyperparameters; expected names among "
            f"{sorted(HPARAM_KEYS)} or the short names {sorted(_KEY_ALIASES)}"
        )
    return rx


def read_hparams_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a run's hyperparameter file (JSON, or YAML when PyYAML is installed).

    The file is one mapping; keys are canonical names (``d_model``, ``lr``, ``seq_len``...),
    the released data's short names (``h``, ``ffnh``, ``bs``, ``ti``...) or Megatron argument
    names (``hidden_size``, ``global_batch_size``, ``train_iters``...). Other keys are ignored.

    Raises
    ------
    ValueError
        The file cannot be parsed, is not a mapping, or a value has the wrong kind.
    """
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(
                f"{path.name}: reading YAML needs PyYAML, which is not installed; "
                f"install it or write the file as hparams.json"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path.name} is not valid YAML ({exc})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} must hold a mapping of names to values")
    return normalize_hparams(data, path.name)


def non_embedding_params(
    d_model,
    d_ff,
    n_layers,
    n_experts=None,
    top_k=None,
    d_expert=None,
    d_shared_expert=None,
    n_dense_layers=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-embedding parameter count, total and active, of the Step Law architectures.

    Dense::

        N = n_layers * (4 * d_model**2 + 3 * d_model * d_ff)

    (Q, K, V and output projections of ``d_model x d_model``; a gated (SwiGLU) FFN of three
    ``d_model x d_ff`` matrices; embeddings, norms and biases left out). It reproduces the
    ``N`` column of every row of the released ``dense_lr_bs_loss.csv``.

    MoE (with ``n_experts`` given)::

        N        = n_layers * 4 * d_model**2 + n_dense_layers * 3 * d_model * d_ff
                   + (n_layers - n_dense_layers) * 3 * d_model * (n_experts * d_expert
                                                                 + d_shared_expert)
        N_active = the same with top_k in place of n_experts

    (router weights left out); it reproduces ``N`` and ``Na`` of every row of the released
    ``moe_lr_bs_loss.csv``. Arguments broadcast; NaN for MoE entries means a dense row.

    Returns
    -------
    N, N_active : numpy.ndarray of float64
    """
    h = np.asarray(d_model, dtype=np.float64)
    f = np.asarray(d_ff, dtype=np.float64)
    layers = np.asarray(n_layers, dtype=np.float64)
    dense = layers * (4.0 * h * h + 3.0 * h * f)
    if n_experts is None:
        return dense, dense.copy()
    experts = np.asarray(n_experts, dtype=np.float64)
    k = np.asarray(top_k, dtype=np.float64)
    de = np.asarray(d_expert, dtype=np.float64)
    ds = np.asarray(d_shared_expert, dtype=np.float64)
    ld = np.asarray(n_dense_layers, dtype=np.float64)
    base = layers * 4.0 * h * h + ld * 3.0 * h * f
    moe_layers = (layers - ld) * 3.0 * h
    total = base + moe_layers * (experts * de + ds)
    active = base + moe_layers * (k * de + ds)
    is_moe = ~np.isnan(experts)
    return np.where(is_moe, total, dense), np.where(is_moe, active, dense)


def training_tokens(iterations, batch_sequences, seq_len, sig_figs: int | None = 3) -> np.ndarray:
    """Training tokens ``D = iterations * batch_sequences * seq_len``, optionally rounded.

    The released data's ``D`` is the nominal token budget: for every released dense and MoE
    row it equals this product rounded to 3 significant figures (the runs' iteration counts
    are whole steps, so the product is off the budget by up to 0.22%). Rounding the same way
    keeps runs of one budget in one setting; ``sig_figs=None`` gives the exact product.
    """
    d = (
        np.asarray(iterations, dtype=np.float64)
        * np.asarray(batch_sequences, dtype=np.float64)
        * np.asarray(seq_len, dtype=np.float64)
    )
    if sig_figs is None:
        return d
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (np.floor(np.log10(np.abs(d))) - (sig_figs - 1))
        rounded = np.round(d / scale) * scale
    return np.where(np.isfinite(rounded) & (d > 0), rounded, d)


# ---------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class _Options:
    target_iter: int | None = None
    max_cnt: int = DEFAULT_MAX_CNT
    window: float = DEFAULT_WINDOW
    step_column: str | None = None
    loss_column: str | None = None
    hparams: bool = False
    name_regex: re.Pattern[str] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    hparam_files: tuple[str, ...] = HPARAM_FILES


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


def _run_hparams(run: Run, opts: _Options) -> tuple[dict[str, Any], list[str]]:
    """Merge, lowest precedence first: defaults, the experiment name, the hparams file."""
    values = dict(opts.defaults)
    errors: list[str] = []
    try:
        values.update(parse_run_name(run.name, opts.name_regex))
    except ValueError as exc:
        errors.append(str(exc))
    if opts.name_regex is not None and opts.name_regex.search(run.name) is None:
        errors.append(f"the experiment name does not match name_regex {opts.name_regex.pattern!r}")
    for name in opts.hparam_files:
        path = run.directory / name
        if path.is_file():
            try:
                values.update(read_hparams_file(path))
            except (ValueError, OSError) as exc:
                errors.append(str(exc))
            break
    return values, errors


def _analyse_run(run: Run, opts: _Options) -> dict[str, Any]:
    """Read, check and smooth one run; every problem lands in the row, nothing is raised."""
    try:
        return _analyse(run, opts)
    except Exception as exc:  # one broken run must not stop the others
        return {
            "exp_name": run.name,
            "log_file": str(run.log_file),
            "status": "failed",
            "problems": f"unexpected error: {type(exc).__name__}: {exc}",
        }


def _analyse(run: Run, opts: _Options) -> dict[str, Any]:
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
        "log_file": str(run.log_file),
    }
    status: Status = "ok"
    problems: list[str] = []

    def report(level: Status, message: str) -> None:
        nonlocal status
        status = _worst(status, level)
        problems.append(message)

    if opts.hparams:
        values, errors = _run_hparams(run, opts)
        row.update(values)
        for message in errors:
            report("failed", message)
    try:
        curve = read_loss_curve(
            run.log_file, opts.max_cnt, step_column=opts.step_column, loss_column=opts.loss_column
        )
    except (OSError, ValueError) as exc:
        report("failed", f"cannot read {run.log_file.name}: {exc}")
        return {**row, "status": status, "problems": "; ".join(problems)}

    iters, losses = curve.iters, curve.losses
    row["n_points"] = len(iters)
    row["total_iter"] = curve.total_iter
    if curve.truncated:
        report("warning", "the last line is truncated (no newline at the end); it was ignored")
    if len(iters) == 0:
        report("failed", f"no loss lines in {run.log_file.name}")
        return {**row, "status": status, "problems": "; ".join(problems)}
    row["final_iter"] = int(iters[-1])
    if curve.unparseable:
        shown = ", ".join(repr(v) for v in curve.unparseable[:3])
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
        return {**row, "status": status, "problems": "; ".join(problems)}
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
    return {**row, "status": status, "problems": "; ".join(problems)}


# ---------------------------------------------------------------------------- many runs

_RUN_COLUMNS = [
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


def _analyse_many(
    runs: Sequence[Run],
    opts: _Options,
    workers: int | None,
    executor: Literal["process", "thread"],
    progress: bool | None,
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    if executor not in ("process", "thread"):
        raise ValueError(f"executor must be 'process' or 'thread'; got {executor!r}")
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
        return [_analyse_run(run, opts) for run in tqdm(runs, **bar)]
    pool: Executor
    if executor == "process":
        pool = ProcessPoolExecutor(n_workers)
    else:
        pool = ThreadPoolExecutor(n_workers)
    with pool:
        chunk = max(1, len(runs) // (n_workers * 8))
        kwargs = {"chunksize": chunk} if executor == "process" else {}
        # submit everything (and so start the workers) before tqdm starts its monitor thread
        results = pool.map(_analyse_run, runs, [opts] * len(runs), **kwargs)
        return list(tqdm(results, **bar))


def _rows_frame(rows: list[dict[str, Any]], extra: Iterable[str] = ()) -> pd.DataFrame:
    """Rows of :func:`_analyse_run` as a frame with fixed columns and dtypes."""
    columns = list(dict.fromkeys([*_RUN_COLUMNS, *extra]))
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
) -> pd.DataFrame:
    """Smoothed final loss of every run under ``base_dir``.

    Parameters
    ----------
    base_dir, pattern, log_pattern, on_skip
        Which runs: see :func:`find_runs`.
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
        line, iterations going back); or ``"failed"`` (no loss lines, non-numeric or non-finite
        losses, stopped before the planned total or the target, too few points). ``problems``
        says why, in words. Runs with problems are kept, never dropped. A run has stopped
        early when its last logged iteration is a whole log interval or more short of the
        planned total (or of ``target_iter``); the upstream tool tolerates one more interval
        and drops such runs without a word.
    """
    if target_iter is not None and target_iter < 1:
        raise ValueError(f"target_iter must be a positive iteration; got {target_iter}")
    if max_cnt < 2:
        raise ValueError(f"max_cnt must be >= 2 (lines read per log); got {max_cnt}")
    if not window > 0:
        raise ValueError(f"window must be > 0 iterations; got {window}")
    runs = find_runs(base_dir, pattern, log_pattern=log_pattern, on_skip=on_skip)
    opts = _Options(target_iter, max_cnt, float(window), step_column, loss_column)
    rows = _analyse_many(runs, opts, workers, executor, progress)
    return _rows_frame(rows)


# ---------------------------------------------------------------------------- sweep tables


def _parse_defaults(defaults: Mapping[str, Any] | None, seq_len: int | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if defaults:
        unknown = [k for k in defaults if canonical_key(k) not in HPARAM_KEYS]
        if unknown:
            raise ValueError(
                f"defaults has unknown key(s) {unknown}; expected names among {sorted(HPARAM_KEYS)}"
            )
        values.update(normalize_hparams(defaults, "defaults"))
    if seq_len is not None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be a positive number of tokens; got {seq_len}")
        values["seq_len"] = float(seq_len)
    return values


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)


def _derive(frame: pd.DataFrame, d_sig_figs: int | None) -> pd.DataFrame:
    """Fill batch sizes, N, N_active, D and groups where the hyperparameters do not give them."""
    out = frame.copy()
    seq = _column(out, "seq_len")
    bseq = _column(out, "batch_sequences")
    btok = _column(out, "batch_tokens")
    bseq = np.where(np.isnan(bseq), btok / seq, bseq)
    btok = np.where(np.isnan(btok), bseq * seq, btok)
    out["batch_sequences"], out["batch_tokens"] = bseq, btok
    n_calc, na_calc = non_embedding_params(
        _column(out, "d_model"),
        _column(out, "d_ff"),
        _column(out, "n_layers"),
        _column(out, "n_experts"),
        _column(out, "top_k"),
        _column(out, "d_expert"),
        _column(out, "d_shared_expert"),
        _column(out, "n_dense_layers"),
    )
    moe = ~np.isnan(_column(out, "n_experts"))
    n_given = _column(out, "N")
    out["N"] = np.where(np.isnan(n_given), n_calc, n_given)
    # N_active: as given; else the MoE count from the architecture; else (dense) N itself
    na = _column(out, "N_active")
    na = np.where(np.isnan(na) & moe, na_calc, na)
    out["N_active"] = np.where(np.isnan(na), out["N"], na)
    d_given = _column(out, "D")
    d_calc = training_tokens(_column(out, "iterations"), bseq, seq, d_sig_figs)
    out["D"] = np.where(np.isnan(d_given), d_calc, d_given)
    family = out["family"] if "family" in out else pd.Series(pd.NA, index=out.index)
    out["family"] = family.astype("string").fillna(
        pd.Series(np.where(moe, "moe", "dense"), index=out.index, dtype="string")
    )
    variant = out["variant"] if "variant" in out else pd.Series(pd.NA, index=out.index)
    out["variant"] = variant.astype("string").fillna(out["family"])
    if "recipe" not in out:
        out["recipe"] = pd.Series(pd.NA, index=out.index, dtype="string")
    return out


def _missing_reasons(frame: pd.DataFrame) -> pd.Series:
    """Per row, the hyperparameters still unknown and what would give them ("" when none).

    Only root causes are named: a D that is unknown because seq_len is, is not listed again.
    """
    isnan = {col: np.isnan(_column(frame, col)) for col in _NEEDED_COLUMNS}
    missing = {
        "lr": isnan["lr"],
        "seq_len (seq_len= / --seq-len, or in the hyperparameters)": isnan["seq_len"],
        "batch size (bs, batch_sequences or batch_tokens)": isnan["batch_sequences"]
        & isnan["batch_tokens"],
        "N (or d_model, d_ff, n_layers; for MoE also top_k, n_experts, d_expert, "
        "d_shared_expert, n_dense_layers)": isnan["N"],
        "D (or the planned iterations)": isnan["D"] & isnan["iterations"],
    }
    texts = np.array(list(missing), dtype=object)
    table = np.column_stack(list(missing.values()))
    out = pd.Series([", ".join(texts[row]) for row in table], index=frame.index, dtype=object)
    return out.where(out == "", "unknown hyperparameters: " + out)


_NEEDED_COLUMNS = ("lr", "seq_len", "batch_sequences", "batch_tokens", "N", "D", "iterations")


def collect(
    base_dir: str | os.PathLike,
    pattern: str | re.Pattern[str],
    *,
    seq_len: int | None = None,
    name_regex: str | re.Pattern[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    d_sig_figs: int | None = 3,
    target_iter: int | None = None,
    max_cnt: int = DEFAULT_MAX_CNT,
    window: float = DEFAULT_WINDOW,
    log_pattern: str | re.Pattern[str] = DEFAULT_LOG_PATTERN,
    hparam_files: Sequence[str] = HPARAM_FILES,
    step_column: str | None = None,
    loss_column: str | None = None,
    on_problem: Literal["skip", "raise"] = "skip",
    min_runs: int = MIN_RUNS_PER_SETTING,
    workers: int | None = None,
    executor: Literal["process", "thread"] = "process",
    progress: bool | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> pd.DataFrame:
    """The runs under ``base_dir`` as a validated sweep table (see :func:`read_sweeps`).

    Each run's hyperparameters are merged from, lowest precedence first: ``defaults`` (and
    ``seq_len``), the experiment name (the released naming, see :func:`parse_run_name`, or
    ``name_regex``), and the first of ``hparam_files`` found in the run folder (see
    :func:`read_hparams_file`). Missing quantities are derived:

    - ``batch_tokens = batch_sequences * seq_len`` (or the reverse);
    - ``N`` and ``N_active`` from the architecture, :func:`non_embedding_params`:
      ``N = n_layers * (4 d_model^2 + 3 d_model d_ff)`` for dense models;
    - ``D = iterations * batch_sequences * seq_len`` rounded to ``d_sig_figs`` significant
      figures (3 reproduces the released data; see :func:`training_tokens`), where
      ``iterations`` is the planned total (``ti``, else the ``/total`` of the log lines),
      or ``target_iter`` when one is given (``iterations`` then holds it too);
    - ``family`` ``"moe"`` when experts are given, else ``"dense"``; ``variant`` = family.

    Parameters
    ----------
    seq_len : int, optional
        Sequence length of runs that do not give one (the released runs used 2048).
    name_regex : str, optional
        Regular expression with named groups read from the experiment name instead of the
        released naming (e.g. ``r"lr(?P<lr>[\\d.e-]+)_bs(?P<bs>\\d+)"``).
    defaults : mapping, optional
        Hyperparameters shared by all runs, e.g. ``{"n_dense_layers": 1}``.
    on_problem : {"skip", "raise"}
        Runs with status ``"failed"`` (see :func:`quick_check`) or unknown hyperparameters are
        left out of the table and listed in ``result.attrs["excluded"]`` (``"skip"``), or
        raise :class:`LogProblemsError` (``"raise"``). Warnings stay in the ``problems``
        column of the kept rows.
    min_runs : int
        Passed to :func:`read_sweeps`.
    Other parameters
        As :func:`quick_check`.

    Returns
    -------
    pandas.DataFrame
        The output of :func:`read_sweeps`: canonical columns, architecture columns,
        ``iterations``, ``loss_last``, ``run`` (experiment name), then ``min_lr`` (when known),
        ``final_iter``, ``target_iter``, ``log_file`` and ``problems``. ``loss`` is the
        smoothed loss. ``attrs["excluded"]`` is a list of ``{"run", "log_file", "problems"}``.

    Raises
    ------
    LogProblemsError
        With ``on_problem="raise"`` when any run has problems.
    SweepValidationError
        The usable runs do not make a valid sweep (e.g. settings with fewer than ``min_runs``).
    ValueError
        No usable runs, or bad arguments (each message names the argument).
    """
    if on_problem not in ("skip", "raise"):
        raise ValueError(f"on_problem must be 'skip' or 'raise'; got {on_problem!r}")
    if target_iter is not None and target_iter < 1:
        raise ValueError(f"target_iter must be a positive iteration; got {target_iter}")
    if max_cnt < 2:
        raise ValueError(f"max_cnt must be >= 2 (lines read per log); got {max_cnt}")
    if d_sig_figs is not None and d_sig_figs < 1:
        raise ValueError(f"d_sig_figs must be >= 1 or None; got {d_sig_figs}")
    rx = check_name_regex(name_regex) if name_regex is not None else None
    opts = _Options(
        target_iter,
        max_cnt,
        float(window),
        step_column,
        loss_column,
        hparams=True,
        name_regex=rx,
        defaults=_parse_defaults(defaults, seq_len),
        hparam_files=tuple(hparam_files),
    )
    runs = find_runs(base_dir, pattern, log_pattern=log_pattern, on_skip=on_skip)
    if not runs:
        raise ValueError(
            f"no runs under base_dir {str(base_dir)!r} whose folders match pattern "
            f"{getattr(pattern, 'pattern', pattern)!r}"
        )
    rows = _analyse_many(runs, opts, workers, executor, progress)
    frame = _rows_frame(rows, HPARAM_KEYS)
    # D is the planned budget: the run's own iteration count, else the log's planned total;
    # with target_iter, the tokens seen by the target
    if target_iter is not None:
        frame["iterations"] = float(target_iter)
    else:
        frame["iterations"] = pd.to_numeric(frame["iterations"]).fillna(
            frame["total_iter"].astype("Float64")
        )
    frame = _derive(frame, d_sig_figs)
    failed = frame["status"].eq("failed").to_numpy()
    missing = _missing_reasons(frame).where(~failed, "")  # a failed run's reason is enough
    usable = ~failed & missing.eq("").to_numpy()
    reasons = frame["problems"].fillna("")
    reasons = reasons + np.where((reasons != "") & (missing != ""), "; ", "") + missing
    excluded = [
        {"run": r.exp_name, "log_file": r.log_file, "problems": why}
        for r, why in zip(frame[~usable].itertuples(), reasons[~usable], strict=True)
    ]
    if on_problem == "raise" and excluded:
        names = [e["run"] for e in excluded]
        raise LogProblemsError(
            {
                e["run"] if names.count(e["run"]) == 1 else e["log_file"]: e["problems"]
                for e in excluded
            }
        )
    kept = frame[usable]
    if kept.empty:
        lines = "\n".join(f"  - {e['run']}: {e['problems']}" for e in excluded)
        raise ValueError(f"none of the {len(frame)} runs is usable:\n{lines}")
    table = kept.rename(columns={"smooth_loss": "loss", "exp_name": "run"})
    keep_cols = [
        *(c for c in CORE_COLUMNS if c != "setting"),  # read_sweeps derives the setting id
        *[c for c in _INT_KEYS if c != "iterations" and table[c].notna().any()],
        "iterations",
        "loss_last",
        "run",
        *(["min_lr"] if table["min_lr"].notna().any() else []),
        "final_iter",
        "target_iter",
        "log_file",
        "problems",
    ]
    table = table[keep_cols].copy()
    for col in [c for c in _INT_KEYS if c in table]:
        table[col] = pd.to_numeric(table[col]).astype("Int64")
    sweeps = read_sweeps(table, min_runs=min_runs)
    sweeps.attrs["excluded"] = excluded
    return sweeps
