"""Hostile inputs to the data registry (issue 15): no hang, bounded memory, nothing left behind.

Every case is bounded in time: a call that could hang runs in a thread joined with a deadline
(its blocking FIFO or server is released at teardown) or in a subprocess killed after a
timeout; cases that could grow without bound (an endless body, a device that never ends) run
in a subprocess under ``resource.setrlimit`` (address space and file size), so that a
regression fails the test instead of filling the memory or the disk of a shared machine.

Servers are real sockets on 127.0.0.1 that misbehave on purpose (a body that drips one byte
a second, headers that never end, a silent peer, an endless body, a lying Content-Length, a
truncated body, a redirect). Expected bytes, sizes and hashes come from the shared copy of
the release, never from the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from shared_data import shared_data_dir
from typer.testing import CliRunner

from bayes_steplaw.cli import app
from bayes_steplaw.datasets import registry
from bayes_steplaw.datasets.registry import DataError, fetch, registered_files, status

SHARED = shared_data_dir()
SMALL = "1004_fitted_lr_bs_scaling_model_parameters.csv"
MOE = "moe_lr_bs_loss.csv"
DENSE = "dense_lr_bs_loss.csv"
NAMES = (DENSE, MOE, SMALL)
SIZE = {name: (SHARED / name).stat().st_size for name in NAMES}
SHA = {name: hashlib.sha256((SHARED / name).read_bytes()).hexdigest() for name in NAMES}
ENV_VARS = (
    "BAYES_STEPLAW_DATA",
    "BAYES_STEPLAW_URL",
    "BAYES_STEPLAW_OFFLINE",
    "BAYES_STEPLAW_TIMEOUT",
    "BAYES_STEPLAW_CACHE",
)
HANG = 8.0  # seconds after which a call counts as hung


def _entries(folder: Path) -> list[str]:
    """Everything in ``folder`` (dot files included), or [] when it does not exist."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _within(seconds: float, fn, *args, **kwargs):
    """Run ``fn`` in a daemon thread; fail the test if it has not returned after ``seconds``.

    Returns ``(value, error, elapsed)``: the return value or the exception raised.
    """
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # reported to the test, not swallowed
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(seconds)
    elapsed = time.monotonic() - start
    if thread.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} still running after {seconds:g} s: a hang")
    return box.get("value"), box.get("error"), elapsed


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Isolate every place of the search: only the (empty) temporary cache is left."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "cache"
    monkeypatch.setenv("BAYES_STEPLAW_CACHE", str(folder))
    monkeypatch.setattr(registry, "source_checkout", lambda: None)
    return folder


@pytest.fixture
def fifo():
    """``fifo(path)`` makes a FIFO; teardown opens each for writing, so that a reader stuck
    in ``open`` (the bug) is released and its thread ends."""
    made: list[Path] = []

    def make(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        made.append(path)
        return path

    yield make
    for path in made:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader waiting: nothing to release
            pass


# --------------------------------------------------------------------------- hostile servers


class _Hostile(socketserver.ThreadingTCPServer):
    """An HTTP/1.x server whose first path segment says how to misbehave."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stop = threading.Event()
        self.hits: list[str] = []
        self.barrier = threading.Barrier(4, timeout=60)  # four interpreters start on a busy box
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"{self.base}/{mode}"

    def close(self):
        self.stop.set()
        self.shutdown()
        self.server_close()
        self.thread.join()


def _head(length: int | None, status: str = "200 OK", extra: str = "") -> bytes:
    size = "" if length is None else f"Content-Length: {length}\r\n"
    return f"HTTP/1.1 {status}\r\n{size}{extra}Connection: close\r\n\r\n".encode()


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        server: _Hostile = self.server  # type: ignore[assignment]
        sock = self.request
        sock.settimeout(10)
        request = b""
        try:
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                request += chunk
            path = request.split(b" ")[1].decode()
            server.hits.append(path)
            mode, name = path.strip("/").split("/", 1)
            body = (SHARED / name).read_bytes() if name in NAMES else b""
            self.misbehave(server, sock, mode, name, body)
        except OSError:  # the client went away: that is what most cases are about
            return

    @staticmethod
    def misbehave(server, sock, mode, name, body):
        stop, send = server.stop, sock.sendall
        if mode == "good":
            send(_head(len(body)) + body)
        elif mode == "together":  # once four clients wait, the real body in small pieces
            server.barrier.wait()
            send(_head(len(body)))
            for i in range(0, len(body), 8192):
                send(body[i : i + 8192])
                stop.wait(0.02)
        elif mode == "redirect":
            send(_head(0, "302 Found", f"Location: /good/{name}\r\n"))
        elif mode == "ftpredirect":
            send(_head(0, "302 Found", f"Location: ftp://127.0.0.1:9/{name}\r\n"))
        elif mode == "drip":  # honest headers, then one byte a second
            send(_head(len(body)))
            for byte in body:
                send(bytes([byte]))
                if stop.wait(1.0):
                    return
        elif mode == "headerdrip":  # a header line that never ends
            send(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.wait(0.5):
                send(b"a")
        elif mode == "silent":  # accepts, reads the request, never answers
            stop.wait(60)
        elif mode in ("endless", "slowendless", "liar"):
            # no length (or a huge one), then zeros for ever: "endless" as fast as it goes,
            # the others at ~10 kB/s (the in-process "liar" must not fill a disk if it regresses)
            send(_head(10**12 if mode == "liar" else None))
            block, pause = (b"0" * 65536, 0) if mode == "endless" else (b"0" * 1024, 0.1)
            while not stop.is_set():
                send(block)
                if pause:
                    stop.wait(pause)
        elif mode == "truncated":
            send(_head(len(body)) + body[: len(body) // 2])
        else:
            send(_head(0, "404 Not Found"))


@pytest.fixture
def hostile():
    server = _Hostile()
    yield server
    server.close()


# --------------------------------------------------------------------------- subprocesses

_CHILD = r"""
import json, signal, sys
from bayes_steplaw.datasets.registry import DataError, fetch
if sys.argv[2] == "handler":  # a caller's own SIGTERM handler that lets the process go on
    signal.signal(signal.SIGTERM, lambda s, f: print(json.dumps({"handler": s}), flush=True))
try:
    path = fetch(sys.argv[1])
except DataError as exc:
    print(json.dumps({"error": str(exc)}), flush=True)
    sys.exit(1)
print(json.dumps({"path": str(path)}), flush=True)
"""

CLI = (sys.executable, "-c", "from bayes_steplaw.cli import main; main()")
MEMORY_LIMIT = 3 << 30  # address space of a child: Python + numpy/pandas need ~1.5 GiB
FILE_LIMIT = 64 << 20  # no file a child writes may exceed this (the data files are < 1 MiB)


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def _child_env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(BAYES_STEPLAW_CACHE=str(cache), OPENBLAS_NUM_THREADS="1", **extra)
    return env


def _spawn(name: str, env: dict[str, str], mode: str = "plain") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, name, mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limits,
    )


def _finish(proc: subprocess.Popen, seconds: float = 30) -> tuple[int, str, str]:
    """Wait for ``proc`` at most ``seconds`` (then kill it and fail): rc, stdout, stderr."""
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the child was still running after {seconds:g} s: a hang")
    return proc.returncode, out, err


def _records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# --------------------------------------------------------------------------- registry facts


def test_registry_knows_each_size():
    sizes = {e.name: e.size for e in registered_files()}
    assert sizes == SIZE


def test_data_help_documents_the_environment():
    result = CliRunner().invoke(app, ["data", "--help"], terminal_width=120)
    assert result.exit_code == 0
    for var in ENV_VARS:
        assert var in result.stdout
    assert "regular file" in result.stdout


# --------------------------------------------------------------------------- non-regular files


@pytest.mark.parametrize("place", ["data_dir", "env", "cache"])
def test_fifo_named_like_a_data_file_is_reported_not_read(
    cache, fifo, monkeypatch, tmp_path, place
):
    folder = {"data_dir": tmp_path / "d", "env": tmp_path / "env", "cache": cache}[place]
    if place == "env":
        monkeypatch.setenv("BAYES_STEPLAW_DATA", str(folder))
    path = fifo(folder / MOE)
    arg = folder if place == "data_dir" else None

    records, error, elapsed = _within(HANG, status, arg)
    assert error is None and elapsed < 2
    rec = {r["name"]: r for r in records}[MOE]
    assert not rec["ok"] and str(path) in rec["problem"] and "FIFO" in rec["problem"]
    assert "\n" not in rec["problem"]

    # fetch stops with a clean error naming the entry: no silent substitute, no download
    monkeypatch.setenv("BAYES_STEPLAW_URL", "http://127.0.0.1:9/never")
    _, error, _ = _within(HANG, fetch, MOE, arg)
    assert isinstance(error, DataError)
    assert str(path) in str(error) and "not a regular file" in str(error)
    assert path.is_fifo()  # reported, left alone


@pytest.mark.slow
def test_cli_verify_skips_fifo_and_device(cache, tmp_path):
    """``data verify`` on a FIFO and on a symlink to /dev/zero: each reported, none read."""
    folder = tmp_path / "d"
    folder.mkdir()
    os.mkfifo(folder / DENSE)
    (folder / MOE).symlink_to("/dev/zero")
    (folder / SMALL).write_bytes((SHARED / SMALL).read_bytes())
    proc = subprocess.Popen(
        [*CLI, "data", "verify", "--data-dir", str(folder)],
        env=_child_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limits,
    )
    try:
        rc, out, err = _finish(proc, seconds=30)
    finally:  # release a reader stuck on the FIFO (the bug)
        try:
            os.close(os.open(folder / DENSE, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert rc == 1, err
    lines = dict(line.split("\t", 1) for line in out.splitlines())
    assert lines[SMALL] == "ok"
    assert lines[DENSE].startswith("FAILED") and "FIFO" in lines[DENSE]
    assert str(folder / DENSE) in lines[DENSE]
    assert lines[MOE].startswith("FAILED") and "character device" in lines[MOE]
    assert "Traceback" not in err


def test_huge_file_of_the_wrong_size_is_refused_without_reading(cache, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    with open(folder / SMALL, "wb") as fh:  # sparse: 4 GiB on paper, nothing on disk
        fh.truncate(4 << 30)
    records, error, elapsed = _within(HANG, status, folder)
    assert error is None
    assert elapsed < 1.5  # hashing 4 GiB takes several seconds; a size check takes none
    rec = {r["name"]: r for r in records}[SMALL]
    assert not rec["ok"] and str(4 << 30) in rec["problem"] and str(SIZE[SMALL]) in rec["problem"]


# --------------------------------------------------------------------------- downloads


def _fetch_from(monkeypatch, server: _Hostile, mode: str, name: str = SMALL, timeout: float = 2):
    """``fetch(name)`` from ``server``'s ``mode`` with the overall deadline ``timeout``
    (set through the environment, as a user would), in a thread joined after HANG s."""
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url(mode))
    monkeypatch.setenv("BAYES_STEPLAW_TIMEOUT", str(timeout))
    return _within(HANG, fetch, name)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["drip", "headerdrip", "silent"])
def test_slow_server_fails_within_the_deadline(cache, hostile, monkeypatch, mode):
    """One byte a second (body or headers) keeps every read alive; the deadline still holds."""
    _, error, elapsed = _fetch_from(monkeypatch, hostile, mode, timeout=2)
    assert isinstance(error, DataError), error
    msg = str(error)
    assert SMALL in msg and hostile.url(mode) in msg and "\n" not in msg
    assert "2 s deadline" in msg and "BAYES_STEPLAW_TIMEOUT" in msg
    assert 1.9 < elapsed < 3.5
    assert _entries(cache) == []


@pytest.mark.slow
def test_endless_body_stops_at_the_registered_size(cache, hostile):
    """No Content-Length and zeros for ever: cut off at the size the registry knows.

    In a child under a file-size and memory limit, so that a regression cannot fill the disk.
    """
    env = _child_env(cache, BAYES_STEPLAW_URL=hostile.url("endless"), BAYES_STEPLAW_TIMEOUT="20")
    rc, out, err = _finish(_spawn(SMALL, env), seconds=30)  # the bound: no endless stream
    assert rc == 1, (rc, err)
    (rec,) = _records(out)
    assert f"sent more than the registered {SIZE[SMALL]} bytes" in rec["error"]
    assert "nothing was cached" in rec["error"]
    assert _entries(cache) == []


def test_lying_content_length_is_refused_before_the_body(cache, hostile, monkeypatch):
    _, error, elapsed = _fetch_from(monkeypatch, hostile, "liar", timeout=20)
    assert isinstance(error, DataError)
    assert f"announces {10**12} bytes" in str(error) and str(SIZE[SMALL]) in str(error)
    assert elapsed < 2
    assert _entries(cache) == []


def test_truncated_body_leaves_nothing(cache, hostile, monkeypatch):
    _, error, _ = _fetch_from(monkeypatch, hostile, "truncated", timeout=20)
    assert isinstance(error, DataError)
    assert f"{SIZE[SMALL] // 2} of the registered {SIZE[SMALL]} bytes" in str(error)
    assert _entries(cache) == []


def test_redirect_is_followed_and_the_file_verified(cache, hostile, monkeypatch):
    path, error, _ = _fetch_from(monkeypatch, hostile, "redirect", name=MOE, timeout=20)
    assert error is None
    assert path == cache / MOE and hashlib.sha256(path.read_bytes()).hexdigest() == SHA[MOE]
    assert hostile.hits == [f"/redirect/{MOE}", f"/good/{MOE}"]
    assert _entries(cache) == [MOE]  # no temporary file left beside it
    umask = os.umask(0o022)
    os.umask(umask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~umask)  # as the user's own files


@pytest.mark.parametrize("url", ["file:///dev/zero", "ftp://127.0.0.1:9/x", "ftpredirect"])
def test_only_http_addresses_are_fetched(cache, hostile, monkeypatch, url):
    """Neither a file:// address (it could name a FIFO or a device) nor an ftp:// one, and
    no redirect to one either."""
    monkeypatch.setenv("BAYES_STEPLAW_URL", hostile.url(url) if "://" not in url else url)
    _, error, elapsed = _within(HANG, fetch, SMALL)
    assert isinstance(error, DataError)
    assert "only http:// and https://" in str(error) and elapsed < 1
    assert _entries(cache) == []


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf", "soon"])
def test_bad_timeout_is_a_clear_error(cache, monkeypatch, value):
    monkeypatch.setenv("BAYES_STEPLAW_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("BAYES_STEPLAW_TIMEOUT", value)
    with pytest.raises(DataError, match=r"\$BAYES_STEPLAW_TIMEOUT must be a positive number"):
        fetch(SMALL)
    with pytest.raises(DataError, match="timeout must be a positive number"):
        fetch(SMALL, timeout=0)


# --------------------------------------------------------------------------- exit paths


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["plain", "handler"])
def test_sigterm_during_a_download_leaves_no_temporary_file(cache, hostile, mode):
    """SIGTERM while the body streams in: the temporary file goes, then the signal acts
    (the process ends by it; a caller's own handler runs and fetch raises DataError)."""
    url = hostile.url("slowendless")
    proc = _spawn(SMALL, _child_env(cache, BAYES_STEPLAW_URL=url, BAYES_STEPLAW_TIMEOUT="60"), mode)
    deadline = time.monotonic() + 30  # the child's start-up included
    while not _entries(cache) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    partial = _entries(cache)
    assert partial and SMALL not in partial  # only a temporary file while it downloads
    time.sleep(0.3)  # let some body arrive
    proc.send_signal(signal.SIGTERM)
    rc, out, err = _finish(proc, seconds=10)
    assert _entries(cache) == []
    if mode == "plain":
        assert rc == -signal.SIGTERM, err
    else:
        assert rc == 1, err
        handler, error = _records(out)
        assert handler == {"handler": signal.SIGTERM}
        assert "interrupted by signal SIGTERM" in error["error"]


@pytest.mark.slow
def test_concurrent_fetches_into_one_cache(cache, hostile):
    """Four processes download the same file at once (the server answers only when all four
    wait): each gets the verified file through its own temporary file; only the file is left."""
    env = _child_env(cache, BAYES_STEPLAW_URL=hostile.url("together"), BAYES_STEPLAW_TIMEOUT="120")
    procs = [_spawn(SMALL, env) for _ in range(4)]
    most = 0  # the most temporary files seen at once
    deadline = time.monotonic() + 90
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        most = max(most, sum(name.endswith(".part") for name in _entries(cache)))
        time.sleep(0.005)
    results = [_finish(p, seconds=5) for p in procs]
    for rc, out, err in results:
        assert rc == 0, err
        assert _records(out) == [{"path": str(cache / SMALL)}]
    assert len(hostile.hits) == 4 and most == 4
    assert hashlib.sha256((cache / SMALL).read_bytes()).hexdigest() == SHA[SMALL]
    assert _entries(cache) == [SMALL]
