"""Megatron-style text logs: the loss-line grammar and the backward block reader.

A text log can be many gigabytes while the smoothed final loss needs its last few thousand
loss lines, so the file is read from the end in blocks and reading stops after ``max_cnt``
loss lines. A line longer than ``max_line`` (a crash's NUL-filled gap) is skipped without
being held in memory: the reader's memory stays about one block and one line, and its time
is linear in the bytes it reads.
"""

from __future__ import annotations

import gc
import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._defaults import BLOCK_SIZE, MAX_LINE_BYTES
from ._guards import open_regular
from .curve import LossCurve, to_float

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
    losses, bad = to_float(values)
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


def read_text_log(
    path: Path,
    max_cnt: int,
    block_size: int = BLOCK_SIZE,
    *,
    max_line: int = MAX_LINE_BYTES,
    follow_symlinks: bool = True,
) -> LossCurve:
    """The last ``max_cnt`` loss lines of a text log, read backwards (see the module)."""
    # with blocks no longer than max_line, a longer line spans two blocks or more, and so is
    # always the line that the carry completes: only that line's length needs judging
    block_size = max(1, min(block_size, max_line))
    with open_regular(path, follow_symlinks=follow_symlinks) as f, _gc_paused():
        size = f.seek(0, os.SEEK_END)
        end = _complete_end(f, size, block_size)
        if end < size:
            f.seek(end)
            truncated = bool(f.read(min(size - end, 1 << 16)).strip())
        else:
            truncated = False
        pieces: list[list[tuple[bytes, bytes, bytes]]] = []
        count = skipped = 0
        pos = end
        carry = b""  # the end of a line whose beginning lies in the next block read
        skipping = False  # inside a line already longer than max_line, seen from its end
        while pos > 0 and count < max_cnt:
            start = max(0, pos - block_size)
            f.seek(start)
            chunk = f.read(pos - start)
            pos = start
            if skipping:
                nl = chunk.rfind(b"\n")
                if nl < 0:
                    continue  # still inside the long line: drop the block unread
                skipping = False
                buf = chunk[:nl]  # up to the newline before the long line
            else:
                buf = chunk + carry  # carry <= max_line, so each step copies O(block)
            if pos > 0:
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > max_line:
                        skipped += 1
                        skipping, carry = True, b""
                    else:
                        carry = buf
                    continue
                carry, region = buf[:nl], buf[nl:]
            else:
                carry, region = b"", b"\n" + buf
            # the region's last line may have grown over several blocks: judge its length
            last = region.rfind(b"\n")
            if len(region) - last - 1 > max_line:
                region = region[:last]
                skipped += 1
            found = _LOSS_LINE.findall(region)
            if found:
                pieces.append(found)
                count += len(found)
        found = [m for piece in reversed(pieces) for m in piece][-max_cnt:]
        iters, totals, losses, bad = _columns(found)
    total = int(totals[-1]) if len(totals) else None
    return LossCurve(iters, losses, total, truncated, bad, path, skipped)
