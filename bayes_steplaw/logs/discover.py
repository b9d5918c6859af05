"""Finding the runs below a base folder.

Every folder below ``base_dir`` is entered only when its name matches the user's regular
expression (:func:`re.search`, anywhere in the name). A folder that holds files named like
``train_log_<k>.txt`` is a run; its name is the experiment name and the file with the largest
``k`` is read. (The upstream tool only looks at leaf folders, so a run folder that also holds,
say, a ``checkpoints/`` folder is silently missed there; here it is still a run.)

Names are printable: a folder name that is not UTF-8, or holds control characters, becomes
the run's name escaped (``run_caf\\xe9``). Symbolic links are followed unless asked not to,
and a link that leads out of the base folder is reported through ``on_link``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._defaults import DEFAULT_LOG_PATTERN
from ._guards import compile_pattern, display_name, display_path, is_inside, preview


@dataclass(frozen=True)
class Run:
    """One training run found under the base folder.

    Attributes
    ----------
    name : str
        Experiment name: the run folder's name, escaped when it is not printable UTF-8.
    directory : pathlib.Path
        The run folder.
    log_file : pathlib.Path
        The log read: the ``train_log_<k>`` file with the largest ``k``.
    """

    name: str
    directory: Path
    log_file: Path

    @property
    def escaped(self) -> bool:
        """Whether ``name`` is an escaped form of the folder's name."""
        return self.name != self.directory.name


def check_base_dir(base_dir: str | os.PathLike) -> Path:
    """``base_dir`` as a Path; FileNotFoundError / NotADirectoryError when it is not a folder."""
    base = Path(base_dir)
    if not base.exists():
        raise FileNotFoundError(
            f"base_dir {display_path(base)!r} does not exist; expected a directory holding "
            f"run folders"
        )
    if not base.is_dir():
        raise NotADirectoryError(
            f"base_dir {display_path(base)!r} is a file; expected a directory holding run folders"
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
    on_error: Callable[[Path, str], None] | None = None,
    on_link: Callable[[Path, Path], None] | None = None,
    follow_symlinks: bool = True,
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
    on_error : callable, optional
        Called as ``on_error(folder, reason)`` for every folder entered that cannot be listed
        (permissions, a folder removed meanwhile): its runs, if any, are unknown. Without it
        such folders go to ``on_skip``.
    on_link : callable, optional
        Called as ``on_link(path, target)`` for every symbolic link followed (a folder entered
        or the log of a run) whose target lies outside ``base_dir``.
    follow_symlinks : bool
        With False, folders that are symbolic links are not entered (they go to ``on_skip``),
        and a run's log that is a link is still named in the run, to be refused when read.

    Returns
    -------
    list of Run
        Sorted by experiment name, then folder.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        ``base_dir`` is missing or not a folder.
    PermissionError
        ``base_dir`` itself cannot be listed.
    ValueError
        ``pattern`` or ``log_pattern`` is not a valid regular expression.
    """
    base = check_base_dir(base_dir)
    dir_rx = compile_pattern(pattern, "pattern")
    log_rx = compile_pattern(log_pattern, "log_pattern")
    base_real = os.path.realpath(base)
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
            reason = f"cannot be listed ({exc.strerror})"
            if folder == base:
                raise PermissionError(
                    f"base_dir {display_path(base)!r} {reason}; expected a readable directory"
                ) from None
            if on_error:
                on_error(folder, reason)
            elif on_skip:
                on_skip(folder, reason)
            continue
        logs = {}
        subdirs = []
        for entry in entries:
            if entry.is_dir():
                subdirs.append(entry)
            elif (m := log_rx.fullmatch(entry.name)) is not None:
                logs[entry.name] = (m, entry)
        if logs:
            newest, entry = max(logs.values(), key=lambda item: _log_sort_key(item[0]))
            runs.append(Run(display_name(folder.name), folder, folder / newest.string))
            link = follow_symlinks and entry.is_symlink()
            if on_link and link and not is_inside(entry.path, base_real):
                on_link(Path(entry.path), Path(os.path.realpath(entry.path)))
        elif not subdirs and on_skip and folder != base:
            on_skip(folder, "holds no log files")
        for entry in reversed(subdirs):
            path = Path(entry.path)
            if not dir_rx.search(entry.name):
                if on_skip:
                    on_skip(path, f"name does not match {preview(dir_rx.pattern)}")
                continue
            if entry.is_symlink():
                if not follow_symlinks:
                    if on_skip:
                        on_skip(path, "symbolic link, not followed")
                    continue
                if on_link and not is_inside(path, base_real):
                    on_link(path, Path(os.path.realpath(path)))
            stack.append(path)
    runs.sort(key=lambda r: (r.name, str(r.directory)))
    return runs
