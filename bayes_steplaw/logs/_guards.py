"""Defences against hostile log trees: bounded messages, printable names, regular files only.

Everything the log tool reads comes from folders other people (or crashed jobs) wrote, so
every value quoted in a message is cut to a preview, every file or folder name is escaped
before it is printed, only regular files are opened, and lines are read with a length cap.
"""

from __future__ import annotations

import os
import re
import reprlib
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO

from .._io import display_name, display_path, file_kind
from ._defaults import BLOCK_SIZE, MAX_LINE_BYTES, PREVIEW_CHARS

__all__ = ["display_name", "display_path", "file_kind"]  # re-exported for the log modules

# ---------------------------------------------------------------------------- messages

# reprlib stops at a depth and a number of items, so even a structure whose plain repr would
# be exponentially long (YAML aliases nested ten deep) is previewed in bounded time
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxdict = 4
_REPR.maxstring = _REPR.maxother = PREVIEW_CHARS


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A quoted value for a message, at most about ``limit`` characters.

    Strings and bytes longer than ``limit`` are cut and their length is given
    (``'aaaa…' (1,048,576 characters)``); containers are shown a few items deep.
    """
    if isinstance(value, (str, bytes)):
        if len(value) <= limit:
            return repr(value)
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:limit]!r}… ({len(value):,} {unit})"
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def cut(message: str, limit: int = 400) -> str:
    """A message from elsewhere (an exception's text), cut to ``limit`` characters."""
    return message if len(message) <= limit else f"{message[:limit]}… ({len(message):,} chars)"


def compile_pattern(pattern: str | re.Pattern[str], name: str) -> re.Pattern[str]:
    """Compile a user's regular expression; a bad one raises ValueError naming ``name``."""
    if isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(
            f"{name} {preview(pattern)} is not a valid regular expression ({exc}); expected a "
            f"Python regular expression such as 'step2v2_.*'"
        ) from None


# ---------------------------------------------------------------------------- files


class NotRegularFileError(OSError):
    """A path named like an input is not a regular file (a FIFO, a device, a link not
    followed...); reading it could block forever or never end, so it is not read."""

    def __init__(self, path: str | os.PathLike, kind: str):
        self.filename = os.fspath(path)
        self.kind = kind
        super().__init__(f"not a regular file ({kind}); only regular files are read")

    def __str__(self) -> str:
        return str(self.args[0])


def open_regular(path: str | os.PathLike, *, follow_symlinks: bool = True) -> BinaryIO:
    """Open ``path`` for binary reading if, and only if, it is a regular file.

    The file is checked before it is opened (a device is never opened) and again on the open
    descriptor (it cannot be swapped in between). The open never blocks: a FIFO would wait
    for a writer forever, so it is opened non-blocking and refused.

    Raises
    ------
    NotRegularFileError
        ``path`` is a FIFO, a device, a socket, a directory, or (``follow_symlinks=False``)
        a symbolic link.
    OSError
        It cannot be opened.
    """
    before = os.stat(path, follow_symlinks=follow_symlinks)
    if not stat.S_ISREG(before.st_mode):
        kind = file_kind(before.st_mode)
        raise NotRegularFileError(
            path, kind + (", not followed" if stat.S_ISLNK(before.st_mode) else "")
        )
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path, file_kind(st.st_mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_inside(path: str | os.PathLike, root_real: str) -> bool:
    """Whether ``path`` (resolved) lies in the folder whose resolved path is ``root_real``."""
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


# ---------------------------------------------------------------------------- lines


class BoundedLines:
    """The complete lines of a binary file, front to back, each at most ``max_line`` bytes.

    Iterating yields lines without their newline. A line longer than ``max_line`` is skipped
    (counted in ``skipped``) without being held in memory, so a file of any size and shape is
    read in linear time with about ``block_size + max_line`` bytes in memory. A last line
    without a newline is not yielded (nor counted): it is cut off (a crash, a job still
    writing), and ``truncated`` says whether it held anything but white space.
    """

    def __init__(
        self, f: BinaryIO, max_line: int = MAX_LINE_BYTES, block_size: int = BLOCK_SIZE
    ) -> None:
        self._f = f
        self.max_line = max_line
        self.block_size = block_size
        self.skipped = 0
        self.truncated = False

    def __iter__(self) -> Iterator[bytes]:
        carry = b""  # the start of a line whose end lies in a later block
        skipping = False  # inside a line already known to be too long
        while block := self._f.read(self.block_size):
            start = 0
            while (nl := block.find(b"\n", start)) >= 0:
                if skipping:  # the newline that ends the long line: it counts now
                    skipping = False
                    self.skipped += 1
                else:
                    line = carry + block[start:nl] if carry else block[start:nl]
                    if len(line) > self.max_line:
                        self.skipped += 1
                    else:
                        yield line
                carry = b""
                start = nl + 1
            if not skipping and start < len(block):
                if len(carry) + len(block) - start > self.max_line:
                    skipping, carry = True, b""
                else:
                    carry += block[start:]
        self.truncated = skipping or bool(carry.strip())


__all__ = [
    "BoundedLines",
    "NotRegularFileError",
    "compile_pattern",
    "cut",
    "display_name",
    "display_path",
    "file_kind",
    "is_inside",
    "open_regular",
    "preview",
]
