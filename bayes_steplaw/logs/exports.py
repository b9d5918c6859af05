"""Loss curves exported by experiment trackers: CSV/TSV and JSON Lines.

Exports are read front to back, line by line through :class:`~._guards.BoundedLines` (lines
longer than ``max_line`` are skipped and counted), keeping only the last ``max_cnt`` points,
so a file of any size is read with bounded memory. A row without a step or a loss (a sparse
tracker history) is skipped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._defaults import MAX_EXPORT_KEYS, MAX_LINE_BYTES
from ._guards import BoundedLines, display_name, open_regular, preview
from .curve import LossCurve, empty_curve, to_float

STEP_COLUMNS = ("step", "_step", "global_step", "trainer/global_step", "iteration", "iter")
LOSS_COLUMNS = (
    "loss",
    "lm loss",
    "lm_loss",
    "train/loss",
    "train_loss",
    "train/lm_loss",
    "lm loss only",
    "value",
)


def _pick(columns: Sequence[str], wanted: str | None, choices: Sequence[str], what: str) -> str:
    lower = {c.strip().lower(): c for c in columns}
    shown = preview(list(columns), 200)
    if wanted is not None:
        if wanted in columns:
            return wanted
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise ValueError(f"{what}_column {preview(wanted)} is not among the columns {shown}")
    for name in choices:
        if name in lower:
            return lower[name]
    raise ValueError(
        f"no {what} column among {shown}; expected one of {list(choices)} "
        f"(or name it with {what}_column=)"
    )


class _Tail:
    """The last ``max_cnt`` (step, value) pairs whose step is a number, in bounded memory.

    Steps are converted in batches with :func:`pandas.to_numeric` (as the whole column would
    be), and only the last ``max_cnt`` numeric ones are kept between batches.
    """

    def __init__(self, max_cnt: int):
        self.max_cnt = max_cnt
        self._batch = max(4 * max_cnt, 1 << 16)
        self._steps: list[Any] = []
        self._values: list[Any] = []
        self._kept_steps = np.empty(0)
        self._kept_values: list[Any] = []

    def add(self, step: Any, value: Any) -> None:
        self._steps.append(step)
        self._values.append(value)
        if len(self._steps) >= self._batch:
            self._flush()

    def _flush(self) -> None:
        steps = pd.to_numeric(pd.Series(self._steps, dtype=object), errors="coerce")
        arr = steps.to_numpy(dtype=float)
        keep = ~np.isnan(arr)
        values = [v for v, k in zip(self._values, keep, strict=True) if k]
        self._kept_steps = np.concatenate([self._kept_steps, arr[keep]])[-self.max_cnt :]
        self._kept_values = (self._kept_values + values)[-self.max_cnt :]
        self._steps, self._values = [], []

    def curve(self, truncated: bool, path: Path, skipped: int) -> LossCurve:
        self._flush()
        losses, bad = to_float([str(v) for v in self._kept_values])
        iters = self._kept_steps.astype(np.int64)
        return LossCurve(iters, losses, None, truncated, bad, path, skipped)


def _decoded(lines: BoundedLines, path: Path) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(lines, 1):
        try:
            yield number, raw.decode("utf-8").removesuffix("\r")
        except UnicodeDecodeError:
            raise ValueError(
                f"{display_name(path.name)}: line {number} is not UTF-8 text"
            ) from None


def read_csv_curve(
    path: Path,
    max_cnt: int,
    step_column: str | None,
    loss_column: str | None,
    *,
    max_line: int = MAX_LINE_BYTES,
    follow_symlinks: bool = True,
) -> LossCurve:
    """The last ``max_cnt`` points of a CSV (``.tsv``: tab-separated) loss-curve export."""
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    with open_regular(path, follow_symlinks=follow_symlinks) as f:
        lines = BoundedLines(f, max_line)
        rows = csv.reader((text for _, text in _decoded(lines, path)), delimiter=sep)
        try:
            header = next((row for row in rows if row), None)
            if header is None:
                return empty_curve(path, lines.truncated, lines.skipped)
            step = header.index(_pick(header, step_column, STEP_COLUMNS, "step"))
            loss = header.index(_pick(header, loss_column, LOSS_COLUMNS, "loss"))
            need = max(step, loss)
            tail = _Tail(max_cnt)
            for row in rows:
                if len(row) > need and row[loss].strip() != "" and row[step].strip() != "":
                    tail.add(row[step], row[loss])
        except csv.Error as exc:
            raise ValueError(
                f"{display_name(path.name)}: row {rows.line_num} is not valid CSV ({exc})"
            ) from None
    return tail.curve(lines.truncated, path, lines.skipped)


def _records(f, path: Path, max_line: int) -> tuple[Iterator[Any], BoundedLines]:
    lines = BoundedLines(f, max_line)

    def records() -> Iterator[Any]:
        for number, text in _decoded(lines, path):
            if not text.strip():
                continue
            try:
                yield json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{display_name(path.name)}: line {number} is not valid JSON ({exc.msg})"
                ) from None
            except RecursionError:
                raise ValueError(
                    f"{display_name(path.name)}: line {number} is nested too deeply"
                ) from None

    return records(), lines


def read_jsonl_curve(
    path: Path,
    max_cnt: int,
    step_column: str | None,
    loss_column: str | None,
    *,
    max_line: int = MAX_LINE_BYTES,
    follow_symlinks: bool = True,
) -> LossCurve:
    """The last ``max_cnt`` points of a JSON Lines loss-curve export (records with a step
    and a loss key; records of other kinds are skipped)."""
    with open_regular(path, follow_symlinks=follow_symlinks) as f:
        # two passes: the keys of all records choose the columns, then the values are read
        records, lines = _records(f, path, max_line)
        keys: dict[str, None] = {}
        for record in records:
            if isinstance(record, dict):
                keys.update(dict.fromkeys(record))
                if len(keys) > MAX_EXPORT_KEYS:
                    raise ValueError(
                        f"{display_name(path.name)} has more than {MAX_EXPORT_KEYS:,} distinct "
                        f"keys; expected a loss-curve export (a step and a loss per record)"
                    )
        if not keys:
            return empty_curve(path, lines.truncated, lines.skipped)
        step = _pick(list(keys), step_column, STEP_COLUMNS, "step")
        loss = _pick(list(keys), loss_column, LOSS_COLUMNS, "loss")
        f.seek(0)
        records, lines = _records(f, path, max_line)
        tail = _Tail(max_cnt)
        for r in records:
            if isinstance(r, dict) and r.get(step) is not None and r.get(loss) is not None:
                tail.add(r[step], r[loss])
    return tail.curve(lines.truncated, path, lines.skipped)
