"""Files out, safely: the output path checked before any work, atomic replacement, text cells
that a spreadsheet would run as formulas escaped, and names printed without surprises.

A table is written to a unique temporary file in the target's folder, flushed to disk, then
renamed over the target (:func:`os.replace`, atomic on POSIX file systems): a reader, a crash
or a full disk leaves either the old file or the new one, never a part of it, and concurrent
writers do not collide (the last complete one wins).

Spreadsheets run a cell that begins with ``=``, ``+``, ``-`` or ``@`` (and some with a tab or
a carriage return) as a formula, and run names come from folder names anyone can choose.
Text cells that begin so are written with a leading apostrophe (``'=HYPERLINK(...)``), which
spreadsheets show as text, the OWASP advice against "CSV injection". Numeric columns are
never changed, and a text cell that is a plain number (``-3``, ``+1.5e-3``) is not a formula
and is left as it is. Reading the file back gives the escaped text.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


_KINDS = (
    (stat.S_ISFIFO, "a named pipe, FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
)


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words."""
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def input_problem(path: str | os.PathLike) -> str | None:
    """What keeps ``path`` from being read as a file, in words (``"does not exist"``, ``"is a
    directory"``, ``"is a named pipe, FIFO, not a regular file (a symbolic link to
    /dev/zero)"``...), or None for a regular file. Only :func:`os.stat` is called: a FIFO or a
    device is never opened."""
    link = ""
    if os.path.islink(path):
        link = f" (a symbolic link to {display_path(os.readlink(path))})"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return ("is a symbolic link to a missing file" if link else "does not exist") + link
    except OSError as exc:
        return f"cannot be used ({exc.strerror or exc}){link}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return f"is a directory, not a regular file{link}"
    return f"is {file_kind(mode)}, not a regular file{link}"


def display_name(name: str) -> str:
    """``name`` as it can be printed: bytes that are not UTF-8 as ``\\xNN``, control
    characters (newlines, terminal escapes) as Python escapes; other names unchanged."""
    if name.isprintable():
        return name
    # names read from the file system carry undecodable bytes as lone surrogates
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def display_path(path: str | os.PathLike) -> str:
    """A path as it can be printed (see :func:`display_name`)."""
    return display_name(os.fspath(path))


class OutputPathError(OSError):
    """The output path cannot be written; the message names the path and the reason."""

    def __str__(self) -> str:
        return str(self.args[0])


def check_output_path(path: str | os.PathLike, name: str = "path") -> Path:
    """Check, before any work, that a file can be written at ``path``.

    A file is really created (and removed) in the target's folder, so read-only file systems,
    permissions and access lists are all found out. A symbolic link is written through: its
    target is replaced.

    Parameters
    ----------
    path : path
        Where the file will be written.
    name : str
        How the path is called in messages (``--out``).

    Returns
    -------
    pathlib.Path
        The file that will be replaced (``path``, or the target of the link ``path`` is).

    Raises
    ------
    OutputPathError
        ``path`` is a directory or another non-regular file, its folder is missing or not a
        folder, or no file can be created there (read-only, permission denied...).
    """
    given = display_path(path)
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    folder = target.parent
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{name} {given!r}: {display_path(folder)!r} is not a folder")
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputPathError(f"{name} {given!r} cannot be used ({exc.strerror})") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputPathError(
            f"{name} {given!r} is a directory; expected a file name, e.g. {given}/sweep.csv"
        )
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputPathError(
            f"{name} {given!r} is {file_kind(st.st_mode)}, not a regular file; expected the "
            f"path of a file to write"
        )
    if not folder.exists():
        raise OutputPathError(
            f"{name} {given!r}: the folder {display_path(folder)!r} does not exist; create it first"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputPathError(
            f"{name} {given!r}: cannot write in {display_path(folder)} (cannot create a file "
            f"in {display_path(folder)!r}: {exc.strerror})"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return target


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells a spreadsheet would run are escaped (see the
    module); numeric columns are unchanged."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if not (series.dtype == object or pd.api.types.is_string_dtype(series.dtype)):
            continue
        is_text = series.map(lambda v: isinstance(v, str)).astype(bool)
        text = series.where(is_text, "").astype(str)
        risky = is_text & text.str.startswith(_FORMULA_START)
        risky &= ~text.str.fullmatch(_PLAIN_NUMBER)
        if risky.any():
            out[col] = series.astype(object).where(~risky, "'" + text)
            if series.dtype != object:
                out[col] = out[col].astype(series.dtype)
    return out


def new_file_mode() -> int:
    """The permissions a newly created file gets here (0o666 less the umask)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no other portable way to read it
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike, *, name: str = "path") -> Iterator[Path]:
    """The one way this package replaces a file: check, write aside, rename over.

    ``path`` is checked first (:func:`check_output_path`); the body writes the new content
    to the temporary file this yields (beside the target, so the rename stays on one file
    system), which is then flushed to disk, given the target's permissions (a new file's:
    0o666 less the umask) and renamed over the target with :func:`os.replace`. Any failure,
    Ctrl-C included, removes the temporary file and leaves the target as it was.

    Examples
    --------
    >>> with atomic_path("table.csv") as tmp:  # doctest: +SKIP
    ...     frame.to_csv(tmp, index=False)
    """
    target = check_output_path(path, name)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = new_file_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:  # whoever wrote it may not have synced
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(
    path: str | os.PathLike, text: str, *, name: str = "path", newline: str | None = None
) -> Path:
    """Write ``text`` (UTF-8) at ``path`` atomically (:func:`atomic_path`).

    Returns
    -------
    pathlib.Path
        The file written (the target of ``path`` when it is a symbolic link).

    Raises
    ------
    OutputPathError
        As :func:`check_output_path`.
    OSError
        Writing failed (a full disk...): an existing file at ``path`` is left as it was.
    """
    with atomic_path(path, name=name) as tmp:
        with open(tmp, "w", encoding="utf-8", newline=newline) as fh:
            fh.write(text)
    return check_target(path)


def check_target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` replaces: ``path``, or the target of the link it is."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)


def write_csv(
    frame: pd.DataFrame,
    path: str | os.PathLike,
    *,
    escape: bool = True,
    name: str = "path",
    **to_csv: object,
) -> Path:
    """Write ``frame`` as CSV at ``path`` atomically (see the module), without its index.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    path : path
        The file to write or replace (checked with :func:`check_output_path`).
    escape : bool
        Escape text cells that a spreadsheet would run as formulas (:func:`escape_formulas`).
    name : str
        How the path is called in messages.
    **to_csv
        Passed to :meth:`pandas.DataFrame.to_csv`.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    OutputPathError
        As :func:`check_output_path`.
    OSError
        Writing failed (a full disk...): the temporary file is removed and an existing file
        at ``path`` is left as it was.
    """
    table = escape_formulas(frame) if escape else frame
    with atomic_path(path, name=name) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            table.to_csv(fh, **{"index": False, **to_csv})
    return check_target(path)


def write_json_records(frame: pd.DataFrame, path: str | os.PathLike, *, name: str = "path") -> Path:
    """Write ``frame`` as a JSON list of records at ``path`` atomically (as :func:`write_csv`);
    non-finite numbers are written as ``null``."""
    with atomic_path(path, name=name) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            frame.to_json(fh, orient="records", indent=1, double_precision=15)
    return check_target(path)


def shell_word(text: str) -> str:
    """``text`` as one word that a shell reads back exactly, to show in a command to paste.

    Printable text is quoted with :func:`shlex.quote`; text with control characters (a
    terminal escape, a newline) or bidirectional overrides is written in bash/zsh ANSI-C
    quoting, ``$'user:\\x1b[2J'``, so that it neither acts on the terminal nor hides part
    of the command, and still pastes as the same name.
    """
    if text.isprintable():
        return shlex.quote(text)
    out = []
    for char in text:
        code = ord(char)
        if char in "\\'":
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "$'" + "".join(out) + "'"


__all__ = [
    "OutputPathError",
    "atomic_path",
    "check_output_path",
    "check_target",
    "display_name",
    "display_path",
    "escape_formulas",
    "file_kind",
    "input_problem",
    "new_file_mode",
    "shell_word",
    "write_csv",
    "write_json_records",
    "write_text",
]
