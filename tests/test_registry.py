"""The dataset registry: resolution order, hash checks, a real download, and `data` commands.

Downloads go to an HTTP server started here on 127.0.0.1 that serves the shared copy of the
release (``$BAYES_STEPLAW_URL`` points at it); the cache is a temporary directory. Expected
hashes and addresses come from ``SOURCE.md`` and from hashing the files here, never from the
package.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import socket
import stat
import threading
from pathlib import Path

import pytest
from shared_data import shared_data_dir
from typer.testing import CliRunner

from bayes_steplaw.cli import app
from bayes_steplaw.datasets import registry
from bayes_steplaw.datasets.registry import DataError, fetch, locate, registered_files, status

REPO = Path(__file__).resolve().parents[1]


SHARED = shared_data_dir()

# SOURCE.md: pinned commit, upstream address, and the table of files, rows and sha256.
COMMIT = "32a8f4cc50247695fb56cc6c9117abdf67c97763"
UPSTREAM = f"https://raw.githubusercontent.com/step-law/steplaw/{COMMIT}/data/"
SOURCE_TABLE = {
    "dense_lr_bs_loss.csv": (
        1911,
        "9e46181076c04d450294d75dfe6f72adc416e231e154a07b337e378f9410002c",
    ),
    "moe_lr_bs_loss.csv": (
        708,
        "653d585244a7b227423007e8b796bc16d76f6d24eb87b1919b8f048a91897b92",
    ),
    "1004_fitted_lr_bs_scaling_model_parameters.csv": (
        1000,
        "2252afbba5530e6ba6167e8101bd2b9082a018a58cb5922cc8672891a7f4336c",
    ),
}
SMALL = "1004_fitted_lr_bs_scaling_model_parameters.csv"  # the smallest file (~100 kB)
MOE = "moe_lr_bs_loss.csv"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(SHARED / name, folder / name))


def _corrupt(name: str, folder: Path) -> Path:
    """A copy of ``name`` in ``folder`` with one byte changed."""
    folder.mkdir(parents=True, exist_ok=True)
    data = bytearray((SHARED / name).read_bytes())
    i = len(data) // 2
    data[i] = ord("7") if data[i] != ord("7") else ord("3")
    (folder / name).write_bytes(bytes(data))
    return folder / name


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Isolate every place of the search: only the (empty) temporary cache is left."""
    for var in ("BAYES_STEPLAW_DATA", "BAYES_STEPLAW_URL", "BAYES_STEPLAW_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "cache"
    monkeypatch.setenv("BAYES_STEPLAW_CACHE", str(folder))
    monkeypatch.setattr(registry, "source_checkout", lambda: None)
    return folder


class _Server:
    def __init__(self, root: Path):
        hits: list[str] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.hits = hits
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def serve():
    """Start HTTP servers on 127.0.0.1: ``serve(folder)`` returns one, with ``url`` and ``hits``."""
    servers: list[_Server] = []

    def start(root: Path) -> _Server:
        servers.append(_Server(root))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more


# --------------------------------------------------------------------------- the registry


def test_registry_matches_source_md():
    entries = {e.name: e for e in registered_files()}
    assert set(entries) == set(SOURCE_TABLE)
    for name, (rows, digest) in SOURCE_TABLE.items():
        assert entries[name].sha256 == digest
        assert entries[name].rows == rows
        assert entries[name].url == UPSTREAM + name
        assert entries[name].size == (SHARED / name).stat().st_size
        assert _sha(SHARED / name) == digest  # the shared copy is the release


def test_source_checkout_data_holds_no_released_csv():
    # the tests neutralise the source-checkout step; it must hold no copy of a released file
    # anyway (data/ holds only the derived external sweeps, with their provenance)
    held = {p.name for p in (REPO / "data").glob("*.csv")}
    assert held == {"marin_nadamw.csv"}
    assert not held & set(SOURCE_TABLE)


def test_unknown_name_lists_known_files(cache):
    with pytest.raises(DataError) as err:
        fetch("nope.csv")
    assert "nope.csv" in str(err.value)
    for name in SOURCE_TABLE:
        assert name in str(err.value)


# --------------------------------------------------------------------------- downloads


def test_download_lands_in_cache_and_is_reused(cache, serve, monkeypatch):
    server = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url)
    assert locate(MOE) is None
    path = fetch(MOE)
    assert path == cache / MOE
    assert _sha(path) == SOURCE_TABLE[MOE][1]
    assert server.hits == [f"/{MOE}"]
    assert fetch(MOE) == path
    assert locate(MOE) == path
    assert server.hits == [f"/{MOE}"]  # the second call is served by the cache


def test_base_url_without_trailing_slash(cache, serve, monkeypatch):
    server = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url.rstrip("/"))
    assert _sha(fetch(SMALL)) == SOURCE_TABLE[SMALL][1]
    assert server.hits == [f"/{SMALL}"]


def test_corrupted_download_is_rejected_and_not_cached(cache, serve, monkeypatch, tmp_path):
    bad = serve(tmp_path / "bad")
    _corrupt(MOE, tmp_path / "bad")
    monkeypatch.setenv("BAYES_STEPLAW_URL", bad.url)
    with pytest.raises(DataError) as err:
        fetch(MOE)
    msg = str(err.value)
    assert MOE in msg
    assert SOURCE_TABLE[MOE][1] in msg
    assert "sha256" in msg and _sha(tmp_path / "bad" / MOE) in msg  # what was received
    assert bad.hits == [f"/{MOE}"]
    assert _files(cache) == []  # neither the bad file nor a temporary file is left
    assert locate(MOE) is None

    good = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", good.url)
    path = fetch(MOE)
    assert _sha(path) == SOURCE_TABLE[MOE][1]
    assert _files(cache) == [cache / MOE]
    assert good.hits == [f"/{MOE}"]


def test_download_prints_nothing(cache, serve, monkeypatch, capfd):
    # pooch logs each download at INFO on stderr; fetch keeps quiet and leaves its level alone
    import pooch

    server = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url)
    level = pooch.get_logger().level
    assert fetch(SMALL) == cache / SMALL
    assert capfd.readouterr() == ("", "")
    assert pooch.get_logger().level == level


def _assert_helpful(msg: str, name: str, cache: Path) -> None:
    assert name in msg
    assert str(cache) in msg  # the places searched
    assert "BAYES_STEPLAW_DATA" in msg and "data_dir" in msg  # how to supply it
    assert "bayes-steplaw data fetch" in msg


@pytest.mark.parametrize("how", ["env", "argument"])
def test_offline_is_a_clear_error_and_contacts_nobody(cache, serve, monkeypatch, how):
    server = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url)
    if how == "env":
        monkeypatch.setenv("BAYES_STEPLAW_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        fetch(MOE, download=how != "argument")
    _assert_helpful(str(err.value), MOE, cache)
    assert "Searched" in str(err.value)
    assert server.hits == []
    assert _files(cache) == []


def test_offline_error_lists_every_place_searched(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("BAYES_STEPLAW_OFFLINE", "true")
    monkeypatch.setenv("BAYES_STEPLAW_DATA", str(tmp_path / "env"))
    root = tmp_path / "checkout"
    monkeypatch.setattr(registry, "source_checkout", lambda: root)
    with pytest.raises(DataError) as err:
        fetch(MOE, tmp_path / "explicit")
    msg = str(err.value)
    for place in (tmp_path / "explicit", tmp_path / "env", root / "data", cache):
        assert str(place) in msg


def test_refused_port_is_a_clear_error(cache, monkeypatch):
    url = _refused_url()
    monkeypatch.setenv("BAYES_STEPLAW_URL", url)
    with pytest.raises(DataError) as err:
        fetch(MOE)
    msg = str(err.value)
    _assert_helpful(msg, MOE, cache)
    assert url in msg and "failed" in msg
    assert _files(cache) == []


def test_missing_upstream_file_is_a_clear_error(cache, serve, monkeypatch, tmp_path):
    (tmp_path / "empty").mkdir()
    server = serve(tmp_path / "empty")
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url)
    with pytest.raises(DataError) as err:
        fetch(MOE)
    _assert_helpful(str(err.value), MOE, cache)
    assert "404" in str(err.value)
    assert _files(cache) == []


def test_malformed_url_is_not_reported_as_a_hash_mismatch(cache, monkeypatch):
    # pooch raises ValueError both for a hash mismatch and for an unknown URL protocol
    monkeypatch.setenv("BAYES_STEPLAW_URL", "127.0.0.1:1/data")
    with pytest.raises(DataError) as err:
        fetch(MOE)
    msg = str(err.value)
    _assert_helpful(msg, MOE, cache)
    assert "failed" in msg
    assert "does not match" not in msg


# --------------------------------------------------------------------------- local copies


def test_override_dir_wins_over_cache(cache, serve, monkeypatch, tmp_path):
    server = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url)
    _corrupt(MOE, cache)  # never read: the override is found first
    override = tmp_path / "override"
    _copy(MOE, override)
    monkeypatch.setenv("BAYES_STEPLAW_DATA", str(override))
    assert fetch(MOE) == override / MOE
    assert server.hits == []


def test_wrong_hash_in_override_dir_is_an_error(cache, serve, monkeypatch, tmp_path):
    server = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url)
    _copy(MOE, cache)  # a good copy further down is no silent substitute
    bad = _corrupt(MOE, tmp_path / "override")
    monkeypatch.setenv("BAYES_STEPLAW_DATA", str(tmp_path / "override"))
    with pytest.raises(DataError) as err:
        fetch(MOE)
    msg = str(err.value)
    assert MOE in msg and str(bad) in msg
    assert "$BAYES_STEPLAW_DATA" in msg
    assert SOURCE_TABLE[MOE][1] in msg and _sha(bad) in msg
    assert UPSTREAM + MOE in msg  # where the right file comes from
    assert server.hits == []


def test_wrong_hash_in_cache_is_an_error(cache, serve, monkeypatch):
    server = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url)
    bad = _corrupt(MOE, cache)
    with pytest.raises(DataError) as err:
        fetch(MOE)
    assert str(bad) in str(err.value) and "user cache" in str(err.value)
    assert server.hits == []


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads a chmod 000 file"
)
def test_unreadable_file_is_a_clear_error(cache, tmp_path):
    path = _copy(MOE, tmp_path / "explicit")
    path.chmod(0)
    try:
        with pytest.raises(DataError) as err:
            fetch(MOE, tmp_path / "explicit")
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    msg = str(err.value)
    assert MOE in msg and str(path) in msg and "cannot be read" in msg


def test_unreadable_entry_named_like_the_file_is_a_clear_error(cache, tmp_path):
    (tmp_path / "explicit" / MOE).mkdir(parents=True)  # a directory cannot be read as a file
    with pytest.raises(DataError) as err:
        fetch(MOE, tmp_path / "explicit")
    msg = str(err.value)
    assert MOE in msg and str(tmp_path / "explicit" / MOE) in msg
    assert "explicit data_dir" in msg and "cannot be read" in msg


def test_resolution_order(cache, serve, monkeypatch, tmp_path):
    server = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url)
    explicit, env, root = tmp_path / "explicit", tmp_path / "env", tmp_path / "checkout"
    for folder in (explicit, env, root / "data", cache):
        _copy(SMALL, folder)
    monkeypatch.setenv("BAYES_STEPLAW_DATA", str(env))
    monkeypatch.setattr(registry, "source_checkout", lambda: root)

    assert fetch(SMALL, explicit) == explicit / SMALL
    assert fetch(SMALL, str(explicit)) == explicit / SMALL
    assert fetch(SMALL) == env / SMALL
    monkeypatch.delenv("BAYES_STEPLAW_DATA")
    assert fetch(SMALL) == root / "data" / SMALL
    monkeypatch.setattr(registry, "source_checkout", lambda: None)
    assert fetch(SMALL) == cache / SMALL
    # a place that lacks the file is skipped, not an error
    assert fetch(SMALL, tmp_path / "nowhere") == cache / SMALL
    assert server.hits == []


def test_status_reports_each_file(cache, tmp_path):
    _copy(MOE, tmp_path / "d")
    _corrupt(SMALL, tmp_path / "d")
    recs = {r["name"]: r for r in status(tmp_path / "d")}
    assert set(recs) == set(SOURCE_TABLE)
    assert recs[MOE]["ok"] and recs[MOE]["path"] == str(tmp_path / "d" / MOE)
    assert not recs[SMALL]["ok"] and SOURCE_TABLE[SMALL][1] in recs[SMALL]["problem"]
    dense = recs["dense_lr_bs_loss.csv"]
    assert not dense["ok"] and dense["path"] is None and "not found" in dense["problem"]


# --------------------------------------------------------------------------- CLI

runner = CliRunner()


def _lines(text: str) -> dict[str, list[str]]:
    out = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] in SOURCE_TABLE:
            out[fields[0]] = fields[1:]
    return out


def test_cli_data_path_found(cache, monkeypatch):
    monkeypatch.setenv("BAYES_STEPLAW_DATA", str(SHARED))
    result = runner.invoke(app, ["data", "path"])
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    assert set(lines) == set(SOURCE_TABLE)
    for name, (path, verdict) in lines.items():
        assert Path(path) == SHARED / name and verdict == "ok"


def test_cli_data_path_missing_does_not_download(cache, serve, monkeypatch, tmp_path):
    server = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url)
    _copy(SMALL, tmp_path / "d")
    result = runner.invoke(app, ["data", "path", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    lines = _lines(result.stdout)
    assert lines[SMALL] == [str(tmp_path / "d" / SMALL), "ok"]
    assert lines[MOE][0] == "-" and "not found" in lines[MOE][1]
    assert server.hits == []


def test_cli_data_fetch_downloads_everything_once(cache, serve, monkeypatch):
    server = serve(SHARED)
    monkeypatch.setenv("BAYES_STEPLAW_URL", server.url)
    result = runner.invoke(app, ["data", "fetch"])
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    assert set(lines) == set(SOURCE_TABLE)
    for name, (_, digest) in SOURCE_TABLE.items():
        assert Path(lines[name][0]) == cache / name
        assert _sha(cache / name) == digest
    assert sorted(server.hits) == sorted(f"/{n}" for n in SOURCE_TABLE)

    again = runner.invoke(app, ["data", "fetch"])
    assert again.exit_code == 0
    assert len(server.hits) == len(SOURCE_TABLE)

    verify = runner.invoke(app, ["data", "verify"])
    assert verify.exit_code == 0
    assert all(v == ["ok"] for v in _lines(verify.stdout).values())


def test_cli_data_fetch_offline_fails(cache, monkeypatch):
    monkeypatch.setenv("BAYES_STEPLAW_OFFLINE", "1")
    result = runner.invoke(app, ["data", "fetch"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error:")
    _assert_helpful(result.stderr, "dense_lr_bs_loss.csv", cache)
    assert _files(cache) == []


def test_cli_data_fetch_corrupted_server_fails(cache, serve, monkeypatch, tmp_path):
    for name in SOURCE_TABLE:
        _corrupt(name, tmp_path / "bad")
    monkeypatch.setenv("BAYES_STEPLAW_URL", serve(tmp_path / "bad").url)
    result = runner.invoke(app, ["data", "fetch"])
    assert result.exit_code == 1
    assert "sha256" in result.stderr
    assert _files(cache) == []


def test_cli_data_verify(cache, tmp_path):
    for name in SOURCE_TABLE:
        _copy(name, tmp_path / "d")
    ok = runner.invoke(app, ["data", "verify", "--data-dir", str(tmp_path / "d")])
    assert ok.exit_code == 0
    assert _lines(ok.stdout) == {name: ["ok"] for name in SOURCE_TABLE}

    _corrupt(MOE, tmp_path / "d")
    (tmp_path / "d" / SMALL).unlink()
    bad = runner.invoke(app, ["data", "verify", "--data-dir", str(tmp_path / "d")])
    assert bad.exit_code == 1
    lines = _lines(bad.stdout)
    assert lines["dense_lr_bs_loss.csv"] == ["ok"]
    assert lines[MOE][0].startswith("FAILED") and SOURCE_TABLE[MOE][1] in lines[MOE][0]
    assert lines[SMALL][0].startswith("FAILED") and "not found" in lines[SMALL][0]
