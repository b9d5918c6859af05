"""The dataset registry: where the released Step Law files are and how to get them.

Resolution order for a registered file:

1. an explicit ``data_dir`` argument,
2. the directory in ``$BAYES_STEPLAW_DATA``,
3. ``data/`` of a source checkout,
4. the user cache (``$BAYES_STEPLAW_CACHE`` or the platform cache directory),
5. a download from the pinned upstream address (``$BAYES_STEPLAW_URL`` replaces its base)
   into the cache, checked against the registered size and sha256; never with
   ``$BAYES_STEPLAW_OFFLINE`` set.

Files found locally are checked too: a copy that differs from the registered release, or an
entry named like a data file that is not a regular file (a FIFO, a device, a directory), is
an error naming its path, never a silent substitute; such entries are never opened for
reading in a way that could block.

Downloads go through pooch (``pooch.create(...).fetch`` with the registered sha256): pooch
hands the downloader a temporary file in the cache directory, checks the hash and only then
moves the file into place. The downloader is this module's own (:class:`_Downloader`, on
``urllib``) for what pooch's requests-based one cannot do: an overall deadline
(``$BAYES_STEPLAW_TIMEOUT`` seconds, however slowly the server sends), a cut-off at the
registered size, and ``http(s)://`` only, redirects included. Temporary files are removed on
every other exit path, SIGTERM and SIGHUP included.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import io
import json
import logging
import math
import os
import secrets
import signal
import stat
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO

from .._resources import resource_path, source_checkout

ENV_DATA = "BAYES_STEPLAW_DATA"
ENV_CACHE = "BAYES_STEPLAW_CACHE"
ENV_URL = "BAYES_STEPLAW_URL"
ENV_OFFLINE = "BAYES_STEPLAW_OFFLINE"
ENV_TIMEOUT = "BAYES_STEPLAW_TIMEOUT"

#: Seconds one download may take in all (connection, headers and body).
DEFAULT_TIMEOUT = 300.0
#: Seconds of silence from the server after which one network operation fails.
READ_TIMEOUT = 30.0
_BLOCK = 1 << 16
# Signals whose default action ends the process: while a download runs they become an
# exception, so that the temporary files are removed before the process goes.
_TERMINATING = tuple(getattr(signal, s) for s in ("SIGTERM", "SIGHUP") if hasattr(signal, s))


class DataError(RuntimeError):
    """A registered data file could not be found, read or verified."""


@dataclass(frozen=True)
class RegisteredFile:
    """One file of the registry (``size`` in bytes)."""

    name: str
    sha256: str
    url: str
    rows: int
    size: int
    description: str


@cache
def _spec() -> dict:
    return json.loads(resource_path("registry.json").read_text())


@cache
def _registry() -> dict[str, RegisteredFile]:
    spec = _spec()
    base = spec["base_url"]
    return {
        name: RegisteredFile(
            name, f["sha256"], base + name, f["rows"], int(f["size"]), f["description"]
        )
        for name, f in spec["files"].items()
    }


def registered_files() -> list[RegisteredFile]:
    """List the files in the registry.

    Returns
    -------
    list of RegisteredFile
        Name, sha256, upstream address, rows, size in bytes and description of each file.
    """
    return list(_registry().values())


def _entry(name: str) -> RegisteredFile:
    reg = _registry()
    if name not in reg:
        raise DataError(f"{name!r} is not a registered file; known files: {', '.join(reg)}.")
    return reg[name]


def cache_dir() -> Path:
    """The user cache directory (``$BAYES_STEPLAW_CACHE`` overrides the platform default).

    Returns
    -------
    pathlib.Path
        The directory; it need not exist yet.
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("bayes-steplaw"))


# --------------------------------------------------------------------------- local files


class NotRegularFileError(OSError):
    """An entry named like a data file is a FIFO, device, socket or directory."""


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    return None if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (symlinks followed).

    The type is checked before opening (a FIFO would block ``open`` until a writer comes) and
    again on the open descriptor, which is opened non-blocking, so that an entry swapped for a
    FIFO or device in between is refused as well.
    """
    kind = _kind(os.stat(path).st_mode)
    if kind is None:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags)
        kind = _kind(os.fstat(fd).st_mode)
        if kind is None:
            if hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        os.close(fd)
    words = kind if kind.startswith("not") else f"it is {kind}, not a regular file"
    raise NotRegularFileError(errno.EINVAL, words, str(path))


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a regular file.

    Parameters
    ----------
    path : path
        The file; symlinks are followed.

    Returns
    -------
    str
        The hex digest.

    Raises
    ------
    OSError
        The file cannot be read; :class:`NotRegularFileError` when it is a FIFO, device,
        socket or directory (never opened in a way that could block).
    """
    with _open_regular(path) as fh:
        return _digest(fh)


def _digest(fh: BinaryIO) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def _local_candidates(data_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    places: list[tuple[str, Path]] = []
    if data_dir is not None:
        places.append(("explicit data_dir", Path(data_dir).expanduser()))
    if os.environ.get(ENV_DATA):
        places.append((f"${ENV_DATA}", Path(os.environ[ENV_DATA]).expanduser()))
    root = source_checkout()
    if root is not None:
        places.append(("source checkout data/", root / "data"))
    places.append(("user cache", cache_dir()))
    return places


def _check(path: Path, entry: RegisteredFile, where: str) -> Path:
    try:
        with _open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            # a size check first: a huge wrong file is refused without reading it
            digest = _digest(fh) if size == entry.size else None
    except NotRegularFileError as exc:
        raise DataError(
            f"{entry.name}: found in {where} at {path} but it cannot be read ({exc.strerror}); "
            f"it was skipped, not opened. Replace it with the file from {entry.url}, or remove "
            f"it so that it can be fetched again."
        ) from exc
    except OSError as exc:
        raise DataError(
            f"{entry.name}: found in {where} at {path} but it cannot be read ({exc}). "
            f"Fix its permissions or remove it so that it can be fetched again."
        ) from exc
    if digest is None:
        raise DataError(
            f"{entry.name}: the copy in {where} at {path} has {size} bytes, expected "
            f"{entry.size} bytes with sha256 {entry.sha256}. It is not the registered release: "
            f"replace it with the file from {entry.url}, or remove it so that it can be "
            f"fetched again."
        )
    if digest != entry.sha256:
        raise DataError(
            f"{entry.name}: the copy in {where} at {path} has sha256 {digest}, "
            f"expected {entry.sha256}. It is not the registered release: replace it with "
            f"the file from {entry.url}, or remove it so that it can be fetched again."
        )
    return path


def locate(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """Return the verified local path of a registered file, or None when none is found.

    Parameters
    ----------
    name : str
        File name as in the registry.
    data_dir : path, optional
        A directory searched before every other place.

    Returns
    -------
    pathlib.Path or None
        The first copy found in the resolution order, verified; None when no place has one.

    Raises
    ------
    DataError
        The first entry found is not the registered release, cannot be read, or is not a
        regular file (it is reported, never opened in a way that could block).
    """
    entry = _entry(name)
    for where, folder in _local_candidates(data_dir):
        path = folder / name
        try:
            os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue  # nothing there (a dangling symlink included): try the next place
        except OSError as exc:  # e.g. a folder that cannot be searched, a symlink loop
            raise DataError(
                f"{name}: cannot look at {path} in {where} ({exc}). Fix its permissions or "
                f"remove it so that it can be fetched again."
            ) from exc
        return _check(path, entry, where)
    return None


# --------------------------------------------------------------------------- downloads


class _Refused(Exception):
    """A download stopped by a check (deadline, size, hash); the message is the reason."""


class _Expired(Exception):
    """The overall deadline of a download passed while waiting for the server."""


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived during a download (a BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_as_exceptions() -> Iterator[None]:
    """While the block runs, SIGTERM/SIGHUP raise :class:`_Terminated` (once), so that the
    ``finally`` blocks inside (ours and pooch's) remove the temporary files; on leaving, the
    previous handlers come back and the signal is delivered again, so the process still ends
    as it would have.

    Only the main thread can set handlers; elsewhere, and for ignored signals, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def handler(signum, frame):
        if not caught:  # a second signal while cleaning up must not interrupt the cleanup
            caught.append(signum)
            raise _Terminated(signum)

    previous = {}
    for sig in _TERMINATING:
        old = signal.getsignal(sig)
        if old not in (signal.SIG_IGN, None):
            previous[sig] = old
            signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if caught:
            signal.raise_signal(caught[0])


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Without pooch's "Downloading file ..." line: the outcome is a path or a DataError."""
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _timeout(timeout: float | None) -> float:
    """The overall deadline in seconds: the argument, ``$BAYES_STEPLAW_TIMEOUT`` or default."""
    source, raw = ("timeout", timeout)
    if timeout is None:
        source, raw = (f"${ENV_TIMEOUT}", os.environ.get(ENV_TIMEOUT) or DEFAULT_TIMEOUT)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise DataError(f"{source} must be a positive number of seconds; got {raw!r}.")
    return value


def _check_scheme(url: str, what: str = "unsupported address") -> None:
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise ValueError(f"{what} {url!r}: only http:// and https:// are fetched")


def _wait(until: float) -> float:
    """Seconds the next wait may last: READ_TIMEOUT at most, never past ``until`` (monotonic)."""
    left = until - time.monotonic()
    if left <= 0:
        raise _Expired
    return min(READ_TIMEOUT, left)


class _DeadlineReader(io.RawIOBase):
    """The reading end of a socket whose every wait ends by ``until``: a timeout per read
    alone lets a server that sends a byte a second (body or headers) go on for ever."""

    def __init__(self, sock, until: float):
        self.sock, self.until = sock, until
        self.file = sock.makefile("rb", buffering=0)  # keeps the socket open, as http.client does

    def makefile(self, mode: str) -> io.BufferedReader:  # all HTTPResponse asks of a socket
        return io.BufferedReader(self)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int | None:
        wait = _wait(self.until)
        self.sock.settimeout(wait)
        try:
            return self.file.readinto(buffer)
        except TimeoutError:
            if wait < READ_TIMEOUT:  # the wait was cut short by the deadline
                raise _Expired from None
            raise

    def close(self) -> None:
        self.file.close()
        super().close()


def _opener(until: float) -> urllib.request.OpenerDirector:
    """A urllib opener (proxies and redirects as usual) that fetches http(s) only, also after
    a redirect, and whose every wait for the server (connection, headers, body) ends by
    ``until``."""

    class Response(http.client.HTTPResponse):
        def __init__(self, sock, *args, **kwargs):
            super().__init__(_DeadlineReader(sock, until), *args, **kwargs)

    def connection(cls):
        def connect(host, **kwargs):
            conn = cls(host, **{**kwargs, "timeout": _wait(until)})
            conn.response_class = Response
            return conn

        return connect

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(connection(http.client.HTTPConnection), req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(connection(http.client.HTTPSConnection), req)

    class Redirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            _check_scheme(newurl, "redirected to")  # urllib would follow ftp:// too
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler, Redirects)


class _Downloader:
    """A pooch downloader, ``downloader(url, output_file, pooch)``, with what pooch's own
    lacks: an overall deadline of ``deadline`` seconds and a cut-off at the registered size.

    The body goes to a new file of its own beside pooch's temporary file (``O_EXCL``, with the
    mode any file the user creates gets, where ``tempfile`` makes pooch's private), which
    replaces pooch's once the body is whole; pooch then checks its hash and moves it into
    place. ``sha256`` is the hash of the last whole body, None before.
    """

    def __init__(self, entry: RegisteredFile, deadline: float):
        self.entry, self.deadline, self.sha256 = entry, deadline, None

    def __call__(self, url: str, output_file: str, store: object = None) -> None:
        entry, started, received = self.entry, time.monotonic(), 0
        until = started + self.deadline
        name = f".{entry.name}.{os.getpid()}.{secrets.token_hex(6)}.part"
        part = Path(output_file).with_name(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        headers = {"User-Agent": "bayes-steplaw", "Accept-Encoding": "identity"}
        h = hashlib.sha256()
        try:
            with (
                os.fdopen(os.open(part, flags, 0o666), "wb") as out,
                _opener(until).open(urllib.request.Request(url, headers=headers)) as resp,
            ):
                announced = (resp.headers.get("Content-Length") or "").strip()
                if announced.isdigit() and int(announced) != entry.size:
                    raise _Refused(
                        f"announces {int(announced)} bytes, but the registered file has "
                        f"{entry.size} bytes"
                    )
                # read1: at most one read from the socket, each bounded by the deadline
                while block := resp.read1(_BLOCK):
                    received += len(block)
                    if received > entry.size:
                        raise _Refused(
                            f"sent more than the registered {entry.size} bytes (stopped there)"
                        )
                    h.update(block)
                    try:
                        out.write(block)
                    except OSError as exc:
                        raise _Refused(f"could not be written into the cache ({exc})") from exc
                out.flush()
                os.fsync(out.fileno())  # whole on disk before a rename makes it visible
            if received < entry.size:
                raise _Refused(f"ended after {received} of the registered {entry.size} bytes")
            os.replace(part, output_file)
            self.sha256 = h.hexdigest()
        except _Refused:
            raise
        except Exception as exc:
            if isinstance(exc, _Expired) or time.monotonic() >= until:
                raise _Refused(
                    f"did not finish within the {self.deadline:g} s deadline ({received} of "
                    f"{entry.size} bytes after {time.monotonic() - started:.1f} s; set "
                    f"{ENV_TIMEOUT} to allow more)"
                ) from exc
            raise
        finally:
            part.unlink(missing_ok=True)  # no-op after the rename


def fetch(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    timeout: float | None = None,
) -> Path:
    """Return a verified local path of a registered file, downloading it if needed.

    Parameters
    ----------
    name : str
        File name as in the registry, e.g. ``"dense_lr_bs_loss.csv"``.
    data_dir : path, optional
        A directory searched before every other place.
    download : bool
        Allow the download step. Also disabled by ``BAYES_STEPLAW_OFFLINE=1``.
    timeout : float, optional
        Seconds the whole download may take (default ``$BAYES_STEPLAW_TIMEOUT`` or
        :data:`DEFAULT_TIMEOUT`); a server that goes silent fails after
        ``min(READ_TIMEOUT, timeout)`` seconds.

    Returns
    -------
    pathlib.Path
        The verified file: a local copy, or the cached download.

    Raises
    ------
    DataError
        The file is missing everywhere and cannot be downloaded, a local copy has the wrong
        size or hash, cannot be read or is not a regular file, or the download fails, runs
        past the deadline, exceeds the registered size or does not match the registered
        sha256 (nothing is cached then). A download interrupted by SIGTERM or SIGHUP
        removes its temporary files, then the signal takes its usual course.
    """
    entry = _entry(name)
    found = locate(name, data_dir)
    if found is not None:
        return found
    searched = "; ".join(f"{w}: {p}" for w, p in _local_candidates(data_dir))
    how = (
        f"Supply it by setting {ENV_DATA} to a directory that holds {name}, by passing "
        f"data_dir=..., or by running `bayes-steplaw data fetch` while online."
    )
    offline = os.environ.get(ENV_OFFLINE, "").lower() in {"1", "true", "yes"}
    if not download or offline:
        raise DataError(
            f"{name} was not found and downloading is disabled. Searched {searched}. {how}"
        )
    import pooch

    downloader = _Downloader(entry, _timeout(timeout))
    folder = cache_dir()
    store = pooch.create(
        path=folder,
        base_url=os.environ.get(ENV_URL) or _spec()["base_url"],
        registry={e.name: f"sha256:{e.sha256}" for e in registered_files()},
    )
    url = store.get_url(name)
    try:
        _check_scheme(url)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _Refused(f"cannot create the cache directory {folder} ({exc})") from exc
        with _signals_as_exceptions(), _quiet(pooch.get_logger()):
            store.fetch(name, downloader=downloader)
    except _Refused as exc:
        raise DataError(f"{name}: the download from {url} {exc}; nothing was cached.") from exc
    except _Terminated as exc:  # only reached when a Python handler let the process go on
        raise DataError(
            f"{name}: the download from {url} was interrupted by signal "
            f"{signal.Signals(exc.signum).name}; nothing was cached."
        ) from None
    except Exception as exc:  # network errors of every kind, malformed addresses
        if downloader.sha256 not in (None, entry.sha256):  # pooch's hash check refused it
            raise DataError(
                f"{name}: the download from {url} does not match the registered sha256 "
                f"{entry.sha256} (got {downloader.sha256}); nothing was cached."
            ) from exc
        reason = str(exc).replace("\n", " ") or type(exc).__name__
        raise DataError(
            f"{name} was not found locally and the download from {url} failed ({reason}). "
            f"Searched {searched}. {how}"
        ) from exc
    return folder / name


def status(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """One record per registered file: where it resolves locally and whether it verifies.

    Parameters
    ----------
    data_dir : path, optional
        A directory searched before every other place.

    Returns
    -------
    list of dict
        ``name``, ``path`` (str or None), ``ok`` (bool) and ``problem`` (None or a one-line
        reason, e.g. a wrong hash or an entry that is not a regular file: such an entry is
        reported and skipped, never read). Nothing is downloaded.
    """
    out = []
    for entry in registered_files():
        rec = {"name": entry.name, "path": None, "ok": False, "problem": None}
        try:
            path = locate(entry.name, data_dir)
        except DataError as exc:
            rec["problem"] = str(exc)
        else:
            rec["path"] = None if path is None else str(path)
            rec["ok"] = path is not None
            rec["problem"] = None if path is not None else "not found locally"
        out.append(rec)
    return out
