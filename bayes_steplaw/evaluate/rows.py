"""Reading the tidy rows of an earlier evaluation back, bounded and checked.

``bayes-steplaw evaluate --rows FILE`` (and :meth:`Evaluation.from_csv`) re-render the
summary tables of a table that :meth:`Evaluation.to_csv` (``--out``) wrote, without refitting.
The file may come from anywhere, so :func:`read_rows`:

* refuses a path that is not a regular file (a FIFO, a device: never opened), a file larger
  than :data:`MAX_BYTES`, and stops at the first row past :data:`MAX_ROWS` (a file of a
  million rows is refused after reading at most :data:`MAX_ROWS` of them, in memory
  proportional to :data:`MAX_ROWS`; lines are read one at a time, each at most
  :data:`MAX_LINE` characters);
* refuses, with one line naming the line and the column: a file that is not UTF-8 text or
  holds a NUL byte, an empty file, a header without rows, a header that names a column twice
  or has a field without a name, the header repeated as a row (two tables written one after
  the other), a row with more or fewer fields than the header, a cell that is not a number in
  a metric column (``rel_loss``, ``loss_r2``, ...) or not a truth value in a yes/no column
  (``lr_in_90``), a missing key column, and two rows for the same (split, fold, method,
  setting) with different values;
* keeps a row repeated exactly once (it is not counted twice) and leaves out columns the
  package does not write;
* with ``baseline``, refuses rows without that method, or of one method only: the report
  compares methods.
"""

from __future__ import annotations

import csv
import os
import re
from array import array
from pathlib import Path

import numpy as np
import pandas as pd

MAX_BYTES = 64 << 20
"""Largest file of rows read back (64 MiB): a full evaluation of every built-in method on
hundreds of settings is a few MiB."""

MAX_ROWS = 100_000
"""Most rows read back (a leave-one-setting-out of the released data is 33 per method)."""

MAX_LINE = 1 << 20
"""Longest line read (characters)."""

KEYS = ("split", "fold", "method", "setting")
"""The columns that identify a row of the settings table."""

_MASS = r"\d+(?:\.\d+)?"
_SETTING_NUMBERS = (
    "k", "N", "D", "compute", "n_runs", "best_lr", "best_batch_tokens", "best_loss", "lr",
    "batch_tokens", "lr_ratio", "batch_ratio", "rel_loss", "nearest_lr", "nearest_batch_tokens",
    "lr_median", "batch_median", "log_score", "lr_log_score", "batch_log_score", "n_diverged",
    "loss_r2", "loss_rmse", "loss_logscore", "best_loss_err", "best_star_err", "brier_diverge",
    "brier_best", "brier_star", "divergences", "max_r_hat", "fit_seconds",
)  # fmt: skip
_RUN_NUMBERS = (
    "k", "lr", "batch_tokens", "loss", "rel_loss", "loss_median", "p_diverge", "p_plateau",
    "p_sweep", "hit_best", "loss_star", "hit_star",
)  # fmt: skip
COLUMNS = {
    "settings": {
        "text": ("split", "fold", "method", "setting", "family", "group", "error"),
        "bool": ("uses_loss", "converged"),
        "bool_patterns": (rf"(lr|batch)(_opt)?_in_{_MASS}",),
        "number": _SETTING_NUMBERS,
        "number_patterns": (rf"(lr|batch)_(lower|upper|width)_{_MASS}", rf"loss_in_{_MASS}"),
        "required": ("split", "fold", "method", "setting", "family"),
    },
    "runs": {
        "text": ("split", "fold", "method", "setting", "family"),
        "bool": ("diverged",),
        "bool_patterns": (),
        "number": _RUN_NUMBERS,
        "number_patterns": (rf"loss_(lower|upper)_{_MASS}",),
        "required": ("split", "fold", "method", "setting"),
    },
}
"""The columns each kind of file may hold, by type; others are left out."""

_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


class RowsError(ValueError):
    """Rows that cannot be read back; the message names the file, and the line and column."""


def _kind_of(name: str, spec: dict) -> str | None:
    if name in spec["text"]:
        return "text"
    if name in spec["bool"] or any(re.fullmatch(p, name) for p in spec["bool_patterns"]):
        return "bool"
    if name in spec["number"] or any(re.fullmatch(p, name) for p in spec["number_patterns"]):
        return "number"
    return None


def _lines(fh, where: str):
    """The lines of an open text file, each at most :data:`MAX_LINE` characters, no NUL."""
    number = 0
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE:
            raise RowsError(f"{where}, line {number} is longer than {MAX_LINE:,} characters; "
                            "not a table of evaluation rows")  # fmt: skip
        if "\x00" in line:
            raise RowsError(f"{where}, line {number} holds a NUL byte: a binary file, not a CSV "
                            "table")  # fmt: skip
        yield line


def read_rows(
    path: str | os.PathLike,
    *,
    kind: str = "settings",
    baseline: str | None = None,
    what: str | None = None,
) -> pd.DataFrame:
    """The rows of an evaluation table written by :meth:`Evaluation.to_csv` (``kind=
    "settings"``) or of its per-run table (``kind="runs"``), checked (module docstring).

    Parameters
    ----------
    path : path
        The CSV file.
    kind : {"settings", "runs"}
        Which table.
    baseline : str, optional
        A method the rows must hold, beside at least one other.
    what : str, optional
        How the file is called in messages (default ``"rows file"``).

    Raises
    ------
    RowsError
        One line naming the file and, where it applies, the line and column.
    """
    from .._io import display_path, input_problem
    from .._validate import preview

    spec = COLUMNS[kind]
    where = f"{what or ('rows file' if kind == 'settings' else 'runs file')} {display_path(path)}"
    problem = input_problem(path)
    if problem is not None:
        raise RowsError(f"{where} {problem}; give the CSV file an evaluation wrote (--out)")
    size = os.stat(path).st_size
    if size > MAX_BYTES:
        raise RowsError(
            f"{where} is {size / 2**20:.1f} MiB; at most {MAX_BYTES >> 20} MiB of evaluation "
            f"rows (and {MAX_ROWS:,} rows) are read back"
        )
    header: list[str] | None = None
    kinds: dict[int, str] = {}
    values: dict[int, object] = {}
    seen: dict[tuple, tuple[int, int]] = {}
    repeated = 0
    count = 0
    reader = None
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(_lines(fh, where), strict=True)
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                if header is None:
                    header = [field.strip() for field in row]
                    kinds, key_at = _header(header, spec, where, line)
                    values = {i: (array("d") if k == "number" else [])
                              for i, k in kinds.items()}  # fmt: skip
                    continue
                if [field.strip() for field in row] == header:
                    raise RowsError(f"{where}, line {line} repeats the header: two tables "
                                    "written one after the other? one table per file")  # fmt: skip
                if len(row) != len(header):
                    raise RowsError(f"{where}, line {line}: {len(row)} fields, but the header has "
                                    f"{len(header)}; quote a field that holds a comma")  # fmt: skip
                if count >= MAX_ROWS:
                    raise RowsError(f"{where} has more than {MAX_ROWS:,} rows; at most "
                                    f"{MAX_ROWS:,} evaluation rows are read back")  # fmt: skip
                identity = hash(tuple(row))
                key = tuple(row[i] for i in key_at) if kind == "settings" else (identity,)
                if key in seen:
                    first, first_identity = seen[key]
                    if first_identity == identity:
                        repeated += 1
                        continue  # the same row again: counted once
                    raise RowsError(
                        f"{where}, line {line} scores (split, fold, method, setting) = "
                        f"{tuple(preview(v, 40) for v in key)} as line {first} does, with "
                        "other values; keep one of them"
                    )
                seen[key] = (line, identity)
                for i, k in kinds.items():
                    values[i].append(_cell(row[i], k, header[i], where, line, preview))
                count += 1
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 1
        raise RowsError(f"{where}, line {line}: not a readable CSV table ({exc})") from None
    except UnicodeDecodeError as exc:
        after = f", after line {reader.line_num}" if reader is not None else ""
        raise RowsError(f"{where} is not UTF-8 text{after} (byte {exc.start} of a block); "
                        "expected a CSV table") from None  # fmt: skip
    except OSError as exc:
        raise RowsError(f"{where} cannot be read: {exc.strerror or exc}") from None
    if header is None:
        raise RowsError(f"{where} is empty; expected the CSV table an evaluation wrote (--out)")
    if not count:
        raise RowsError(f"{where} has a header but no rows")
    frame = _frame(header, kinds, values)
    if baseline is not None:
        methods = list(dict.fromkeys(frame["method"].astype(str)))
        shown = ", ".join(preview(m, 40) for m in methods[:10])
        if baseline not in methods:
            raise RowsError(
                f"{where} has no rows of method {preview(baseline, 40)}, which the paired "
                f"differences are taken against (choose another with --baseline); methods "
                f"here: {shown}"
            )
        if len(methods) < 2:
            raise RowsError(f"{where} holds one method only ({shown}): nothing to compare it "
                            "with; evaluate two methods or more")  # fmt: skip
    frame.attrs["repeated_rows"] = repeated
    return frame


def _header(header: list[str], spec: dict, where: str, line: int) -> tuple[dict, list[int]]:
    """The type of each column kept, by field index, and the fields of the key columns."""
    from .._validate import preview

    for i, name in enumerate(header):
        if not name:
            raise RowsError(f"{where}, line {line}: field {i + 1} of the header has no name")
        if name in header[:i]:
            raise RowsError(f"{where}, line {line}: the header names {preview(name, 40)} twice "
                            f"(fields {header.index(name) + 1} and {i + 1}); name each column "
                            "once")  # fmt: skip
    missing = [c for c in spec["required"] if c not in header]
    if missing:
        names = ", ".join(preview(h, 30) for h in header[:12])
        more = f" and {len(header) - 12} more" if len(header) > 12 else ""
        raise RowsError(f"{where} lacks column(s) {missing}; it has [{names}]{more}: give the "
                        "table an evaluation wrote (--out)")  # fmt: skip
    kinds = {}
    for i, name in enumerate(header):
        k = _kind_of(name, spec)
        if k is not None:
            kinds[i] = k
    key_at = [header.index(c) for c in KEYS if c in header]
    return kinds, key_at


def _cell(text: str, kind: str, column: str, where: str, line: int, preview):
    if kind == "text":
        return text
    value = text.strip()
    if kind == "number":
        if not value:
            return np.nan
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is None or "_" in value:
            raise RowsError(f"{where}, line {line}, column {column}: {preview(text, 40)} is not a "
                            "number")  # fmt: skip
        return number
    low = value.lower()
    if not low or low in ("nan", "<na>", "none"):
        return None
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise RowsError(f"{where}, line {line}, column {column}: {preview(text, 40)} is not True or "
                    "False")  # fmt: skip


def _frame(header: list[str], kinds: dict, values: dict) -> pd.DataFrame:
    data = {}
    for i, k in kinds.items():
        name = header[i]
        if k == "number":
            col = np.frombuffer(values[i], dtype=float) if len(values[i]) else np.empty(0)
            if name in ("k", "n_runs", "n_diverged") and np.isfinite(col).all() and (
                    col == np.round(col)).all():  # fmt: skip
                data[name] = col.astype(int)
            else:
                data[name] = col.copy()
        elif k == "bool":
            data[name] = pd.array(values[i], dtype="boolean")
        else:
            data[name] = pd.Series(values[i], dtype=object).to_numpy()
    return pd.DataFrame(data)
