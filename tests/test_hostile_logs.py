"""Hostile log trees (issue 15, log tool): no hang, bounded memory, no traceback, nothing lost.

Every probe that could hang or eat memory on a broken implementation runs in a forked child
(:func:`bounded`) that is killed after a few seconds and, where memory is the question, runs
under ``RLIMIT_AS`` a little above the size of this process; the test fails with "hung" or
with the child's MemoryError instead of stalling the suite. Probes that need root to obey file
permissions drop ``CAP_DAC_OVERRIDE`` in the child; the full-disk probe mounts a 64 KiB tmpfs
where this machine allows it and is skipped otherwise (the ``RLIMIT_FSIZE`` probe beside it
runs everywhere).
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import fcntl
import io
import json
import os
import pty
import resource
import select
import signal
import stat
import struct
import subprocess
import sys
import termios
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage  # noqa: F401  (imported before any fork, as the children use it)
import tqdm  # noqa: F401
from test_logs import curve, loss_line, write_log
from typer.testing import CliRunner

from bayes_steplaw import logs, read_sweeps
from bayes_steplaw.cli import app

runner = CliRunner()
MiB = 1 << 20
SEQ = ["--seq-len", "128", "--workers", "1", "--no-progress"]

# ---------------------------------------------------------------------------- the harness


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _drop_dac_override() -> None:
    """Let root obey file permissions: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    keep = ~((1 << 1) | (1 << 2)) & 0xFFFFFFFF
    for name in ("effective", "permitted", "inheritable"):
        setattr(data[0], name, getattr(data[0], name) & keep)
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def bounded(func, *args, timeout=8.0, extra_memory=None, unprivileged=False, fsize=None):
    """``func(*args)`` in a forked child, killed after ``timeout`` seconds; its result must be
    JSON. ``extra_memory``: address space allowed beyond this process's; ``unprivileged``:
    root loses its override of file permissions; ``fsize``: largest file it may write."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read_end)
            if fsize is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            if unprivileged:
                _drop_dac_override()
            if extra_memory is not None:
                limit = _vm_size() + extra_memory
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            result = {"ok": func(*args)}
        except BaseException as exc:
            result = {
                "error": f"{type(exc).__name__}: {str(exc)[:2000]}",
                "tb": traceback.format_exc()[-4000:],
            }
        try:
            data = json.dumps(result).encode()
        except (TypeError, ValueError) as exc:
            data = json.dumps({"error": f"result is not JSON: {exc}"}).encode()
        with contextlib.suppress(BaseException):
            _write_all(write_end, data)
        os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"{func.__name__} hung: no result within {timeout} s")
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if not chunks:
        pytest.fail(f"{func.__name__}: the child died without a result")
    result = json.loads(b"".join(chunks))
    if "error" in result:
        pytest.fail(f"{func.__name__} raised {result['error']}\n{result.get('tb', '')}")
    return result["ok"]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def cli(*args: str) -> dict:
    """The CLI in this process: exit code, stdout, stderr (for use inside ``bounded``)."""
    result = runner.invoke(app, [str(a) for a in args])
    crash = result.exception if not isinstance(result.exception, SystemExit) else None
    return {
        "code": result.exit_code,
        "out": result.stdout,
        "err": result.stderr,
        "crash": "".join(traceback.format_exception(crash)) if crash else None,
    }


def assert_clean(result: dict) -> None:
    assert result["crash"] is None, result["crash"]
    assert "Traceback" not in result["out"] + result["err"], result


def setting_runs(base: Path, suffixes=("", "", ""), points=None, ti: int = 300) -> list[str]:
    """Three runs of one setting in the released naming (``ti`` iterations planned, logged
    every 2; seq_len 128 comes from the CLI); ``points`` below ti / 2 make a run stop early."""
    made = []
    for j, lr in enumerate(("1.381e-03", "2.762e-03", "5.524e-03")):
        name = f"step2v2_0618_h64_ffnh176_numh4_numl2_lr{lr}_bs64_ti{ti}_mlr1.00e-05{suffixes[j]}"
        iters, losses = curve(points[j] if points else ti // 2, interval=2, seed=j)
        write_log(base / name / "train_log_0.txt", iters, losses, total=ti)
        made.append(name)
    return made


@pytest.fixture
def base(tmp_path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    return folder


# ---------------------------------------------------------------------------- bug 1


def _write_gap_log(path: Path, kind: str, gap: int) -> None:
    """300 points, a line of ``gap`` NUL bytes (a sparse hole: no disk used), 300 points."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def point(i: int) -> bytes:
        loss = 2.5 + 1.0 / i
        if kind == "txt":
            return loss_line(10 * i, 6000, loss).encode()
        if kind == "csv":
            return f"{10 * i},{loss!r}\n".encode()
        return (json.dumps({"step": 10 * i, "loss": loss}) + "\n").encode()

    with open(path, "wb") as f:
        f.write(b"step,loss\n" if kind == "csv" else b"")
        f.write(b"".join(point(i) for i in range(1, 301)))
        f.seek(gap, os.SEEK_CUR)
        f.write(b"\n" + b"".join(point(i) for i in range(301, 601)))


def _read_gap(base: str) -> dict:
    row = logs.quick_check(base, ".", workers=1, progress=False).iloc[0]
    values = {k: None if pd.isna(row[k]) else row[k] for k in _GAP_COLUMNS}
    return {k: v.item() if hasattr(v, "item") else v for k, v in values.items()}


_GAP_COLUMNS = ("n_points", "final_iter", "status", "problems")


@pytest.mark.parametrize(
    ("kind", "gap"), [("txt", 256 * MiB), ("csv", 64 * MiB), ("jsonl", 64 * MiB)]
)
def test_bug1_a_huge_line_is_skipped_in_linear_time_and_bounded_memory(tmp_path, kind, gap):
    # the case: 256 MB of NULs in a text log took 23 s and 0.9 GB; exports share the
    # forward reader, so a smaller gap (still 64 times the limit) tests them as well
    path = tmp_path / "runs" / "run_gap" / f"train_log_0.{kind}"
    _write_gap_log(path, kind, gap)
    got = bounded(_read_gap, str(tmp_path / "runs"), timeout=8, extra_memory=96 * MiB)
    assert (got["n_points"], got["final_iter"], got["status"]) == (600, 6000, "warning")
    assert got["problems"].startswith("1 line(s) longer than 1024 KiB skipped")


@pytest.mark.parametrize("kind", ["txt", "csv", "jsonl"])
def test_bug1_the_lines_on_both_sides_of_a_long_line_are_read(tmp_path, kind):
    path = tmp_path / f"train_log_0.{kind}"
    _write_gap_log(path, kind, 3 * MiB)
    got = logs.read_loss_curve(path, max_cnt=400)
    assert got.iters[0] == 2010 and got.iters[-1] == 6000 and got.skipped_lines == 1
    np.testing.assert_allclose(got.losses, 2.5 + 1.0 / np.arange(201, 601), rtol=1e-6)


def test_bug1_a_line_just_under_the_limit_is_read(tmp_path):
    # the boundary: a noise line of exactly max_line bytes between loss lines is kept
    path = tmp_path / "train_log_0.txt"
    text = loss_line(10, 20, 3.0) + "x" * 4096 + "\n" + loss_line(20, 20, 2.0)
    path.write_text(text)
    for block in (64, 1000, 5000):
        got = logs.read_loss_curve(path, max_line=4096, block_size=block)
        assert got.iters.tolist() == [10, 20] and got.skipped_lines == 0, block
        got = logs.read_loss_curve(path, max_line=4095, block_size=block)
        assert got.iters.tolist() == [10, 20] and got.skipped_lines == 1, block


# ---------------------------------------------------------------------------- bug 2


def test_bug2_a_non_utf8_run_folder_is_reported_escaped_and_the_others_kept(base, tmp_path):
    names = setting_runs(base, suffixes=["", "", os.fsdecode(b"_caf\xe9")])
    escaped = names[2].encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    assert escaped.endswith("_caf\\xe9")

    check = cli("logs", "quick-check", base, ".", "--workers", "1", "-v")
    assert_clean(check)
    assert check["code"] == 0, check
    table = pd.read_csv(io.StringIO(check["out"]), sep="\t")
    assert sorted(table["exp_name"]) == sorted([*names[:2], escaped])
    assert table["smooth_loss"].notna().all()
    assert f"warning: {escaped}: the folder name is not printable UTF-8" in check["err"]

    out = tmp_path / "sweep.csv"
    result = cli("logs", "collect", base, ".", "-o", out, *SEQ)
    assert_clean(result)
    assert result["code"] == 0, result
    assert sorted(read_sweeps(out)["run"]) == sorted([*names[:2], escaped])


# ---------------------------------------------------------------------------- bug 3


def _non_regular(base: str) -> dict:
    frame = logs.quick_check(base, ".", workers=1, progress=False)
    rows = dict(zip(frame["exp_name"], zip(frame["status"], frame["problems"])))
    sweep = logs.collect(base, "step", seq_len=128, workers=1, progress=False, min_runs=2)
    excluded = {e["run"]: e["problems"] for e in sweep.attrs["excluded"]}
    return {"rows": rows, "kept": sorted(sweep["run"]), "excluded": excluded}


def test_bug3_fifos_devices_and_links_to_dev_zero_are_reported_not_read(base):
    iters, losses = curve(100)
    write_log(base / "run_ok" / "train_log_0.txt", iters, losses)
    for name, log in [
        ("run_fifo", "train_log_1.txt"),
        ("run_zero", "train_log_1.csv"),
        ("run_null", "train_log_2.jsonl"),
    ]:
        (base / name).mkdir()
        write_log(base / name / "train_log_0.txt", iters, losses)  # an older, readable log
        if name == "run_fifo":
            os.mkfifo(base / name / log)
        else:
            os.symlink("/dev/zero" if name == "run_zero" else "/dev/null", base / name / log)
    runs = setting_runs(base)
    os.mkfifo(base / runs[0] / "hparams.json")  # a FIFO named like the hyperparameters

    got = bounded(_non_regular, str(base), timeout=10, extra_memory=128 * MiB)
    rows = got["rows"]
    assert rows["run_ok"] == ["ok", ""]
    for name, kind in [
        ("run_fifo", "named pipe"),
        ("run_zero", "character device"),
        ("run_null", "character device"),
    ]:
        status, problems = rows[name]
        assert status == "failed" and "not a regular file" in problems and kind in problems
    assert got["kept"] == sorted(runs[1:])
    assert "hparams.json: not a regular file (a named pipe" in got["excluded"][runs[0]]


# ---------------------------------------------------------------------------- bug 4


@pytest.mark.parametrize("case", ["directory", "missing folder", "read-only folder", "fifo"])
def test_bug4_the_output_path_is_checked_before_any_work(base, tmp_path, case):
    setting_runs(base)
    (base / "zzz_unmatched").mkdir()  # entering the tree would print "skip ..." under -v
    target = {
        "directory": tmp_path / "adir",
        "missing folder": tmp_path / "nope" / "sweep.csv",
        "read-only folder": tmp_path / "ro" / "sweep.csv",
        "fifo": tmp_path / "pipe.csv",
    }[case]
    reason = {
        "directory": "is a directory",
        "missing folder": "does not exist",
        "read-only folder": "cannot create a file in",
        "fifo": "named pipe, FIFO, not a regular file",
    }[case]
    if case == "directory":
        target.mkdir()
    elif case == "read-only folder":
        target.parent.mkdir()
        target.parent.chmod(0o555)
    elif case == "fifo":
        os.mkfifo(target)
    try:
        got = bounded(
            cli, "logs", "collect", base, ".", "-o", target, "-v", *SEQ, unprivileged=True
        )
    finally:
        if case == "read-only folder":
            target.parent.chmod(0o755)
    assert_clean(got)
    assert got["code"] == 2, got
    assert str(target) in got["err"] and reason in got["err"], got["err"]
    assert "skip" not in got["err"]  # refused before the tree was searched


def test_bug4_bug5_a_late_write_failure_is_clean_and_keeps_the_old_file(base, tmp_path):
    setting_runs(base)
    out = tmp_path / "sweep.csv"
    out.write_text("old,table\n1,2\n")
    got = bounded(cli, "logs", "collect", base, ".", "-o", out, *SEQ, fsize=512)
    assert_clean(got)
    assert got["code"] == 1, got
    assert "File too large" in got["err"] and "nothing was replaced" in got["err"]
    assert out.read_text() == "old,table\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "sweep.csv"]  # no temp left


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "64k"):
    where.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True, timeout=10, check=False)


def test_bug5_a_full_disk_leaves_the_old_sweep_intact(base, tmp_path):
    for ti in (300, 320, 340, 360, 380):  # 15 runs: a table of more than one 4 KiB page
        setting_runs(base, ti=ti)
    with small_tmpfs(tmp_path / "small") as disk:
        out = disk / "sweep.csv"
        first = cli("logs", "collect", base, "ti300|runs", "-o", out, *SEQ)  # 3 of them
        assert first["code"] == 0, first
        old = out.read_bytes()
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as f:
            while True:  # fill the disk to its last page
                f.write(b"\0" * 4096)
                f.flush()
        got = bounded(cli, "logs", "collect", base, ".", "-o", out, *SEQ)
        assert_clean(got)
        assert got["code"] == 1, got
        assert "No space left on device" in got["err"] and "nothing was replaced" in got["err"]
        assert out.read_bytes() == old and len(read_sweeps(out)) == 3  # not a 4 KiB prefix
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "sweep.csv"]


def test_bug5_concurrent_writers_never_leave_a_partial_table(tmp_path):
    from bayes_steplaw._io import write_csv

    out = tmp_path / "sweep.csv"
    frames = [
        pd.DataFrame({"run": [f"w{k}"] * 500, "loss": np.arange(500.0) + k}) for k in range(4)
    ]
    texts = {f.to_csv(index=False) for f in frames}
    write_csv(frames[0], out)
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(out.read_text())

    def writer(k):
        for _ in range(5):
            write_csv(frames[k], out)

    threads = [threading.Thread(target=reader)] + [
        threading.Thread(target=writer, args=(k,)) for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    stop.set()
    threads[0].join()
    assert seen <= texts and len(seen) >= 1  # every read saw one complete table
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.csv"]  # no temporary file left
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------- bug 9


def _yaml_bomb(path: str) -> dict:
    try:
        logs.read_hparams_file(path)
    except ValueError as exc:
        return {"message": str(exc)}
    return {"message": None}


def test_bug9_yaml_aliases_are_refused_in_bounded_time_and_memory(base):
    levels = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for k in range(1, 10):
        levels.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 10) + "]")
    bomb = "\n".join([*levels, "lr: *a9", "family: *a9"]) + "\n"
    assert len(bomb) < 700  # a few hundred bytes that expand to 10**10 strings
    runs = setting_runs(base)
    path = base / runs[0] / "hparams.yaml"
    path.write_text(bomb)
    got = bounded(_yaml_bomb, str(path), timeout=5, extra_memory=64 * MiB)
    assert got["message"] is not None and "YAML alias" in got["message"]
    assert len(got["message"]) < 300
    out = base.parent / "s.csv"
    result = bounded(cli, "logs", "collect", base, ".", "-o", out, *SEQ, "--min-runs", "1")
    assert result["code"] == 0, result
    line = next(x for x in result["err"].splitlines() if x.startswith("excluded:"))
    assert f"excluded: {runs[0]}: hparams.yaml uses a YAML alias (*a0, line 2)" in line
    assert len(line) < 400


def test_bug9_quoted_values_in_messages_are_cut_to_a_preview(base, tmp_path):
    runs = setting_runs(base)
    (base / runs[0] / "hparams.json").write_text(json.dumps({"lr": "z" * 100_000}))
    iters, losses = curve(100)
    junk = losses.astype(object)
    junk[-1] = "q" * 100_000  # a loss value of 100 kB
    write_log(base / "run_junk" / "train_log_0.txt", iters, junk)
    (base / "run_wide").mkdir()
    header = ",".join(f"col{i}" for i in range(20_000))
    (base / "run_wide" / "train_log_0.csv").write_text(header + "\n" + "1," * 19_999 + "1\n")
    frame = logs.quick_check(base, "run_", workers=1)
    problems = dict(zip(frame["exp_name"], frame["problems"]))
    assert "100,000 characters" in problems["run_junk"] and len(problems["run_junk"]) < 400
    assert "no step column among" in problems["run_wide"] and len(problems["run_wide"]) < 600
    result = cli("logs", "collect", base, "step", "-o", tmp_path / "s.csv", *SEQ, "--min-runs", "1")
    assert result["code"] == 0, result
    line = next(x for x in result["err"].splitlines() if x.startswith(f"excluded: {runs[0]}"))
    assert "lr must be a number; got 'zzz" in line and "(100,000 characters)" in line
    assert len(line) < 400


# ---------------------------------------------------------------------------- weak spots


def _unlistable(base: str, out: str) -> dict:
    return {
        "check": cli("logs", "quick-check", base, ".", "--workers", "1"),
        "strict": cli("logs", "quick-check", base, ".", "--workers", "1", "--strict"),
        "collect": cli("logs", "collect", base, ".", "-o", out, *SEQ, "--strict"),
    }


def test_strict_fails_on_a_run_folder_that_cannot_be_listed(base, tmp_path):
    setting_runs(base)
    locked = base / "run_locked"
    locked.mkdir()
    iters, losses = curve(100)
    write_log(locked / "train_log_0.txt", iters, losses)
    locked.chmod(0)
    try:
        got = bounded(_unlistable, str(base), str(tmp_path / "s.csv"), unprivileged=True)
    finally:
        locked.chmod(0o755)
    for result in got.values():
        assert_clean(result)
    assert got["check"]["code"] == 0  # reported, not fatal without --strict
    assert (
        "failed: run_locked: the folder cannot be listed (Permission denied)"
        in (got["check"]["err"])
    )
    assert "run_locked" in got["check"]["out"]
    assert got["strict"]["code"] == 1
    assert got["collect"]["code"] == 1 and "run_locked" in got["collect"]["err"]
    assert not (tmp_path / "s.csv").exists()


def test_an_excluded_runs_reason_is_printed_when_its_setting_falls_below_min_runs(base, tmp_path):
    runs = setting_runs(base, points=(150, 150, 100))  # the third stopped early
    result = cli("logs", "collect", base, ".", "-o", tmp_path / "s.csv", *SEQ)
    assert_clean(result)
    assert result["code"] == 1
    assert "fewer than 3 runs" in result["err"]
    assert f"run {runs[2]} of setting dense N=" in result["err"]
    assert (
        "was excluded: stopped early: last logged iteration 200 of planned iterations 300"
        in (result["err"])
    )


def test_csv_cells_that_would_run_as_formulas_are_escaped(base, tmp_path):
    names = ["=1+2", "@SUM(A1)", "+cmd", "-2+3", "-3"]
    for j, name in enumerate(names):
        iters, losses = curve(100, interval=5, seed=j)
        write_log(base / name / "train_log_0.txt", iters, losses, total=500)
        hp = {"lr": 2.0 ** (-10 + j / 2), "bs": 16, "N": 1e6, "seq_len": 1024, "recipe": "=r"}
        (base / name / "hparams.json").write_text(json.dumps(hp))
    out = tmp_path / "s.csv"
    result = cli("logs", "collect", base, ".", "-o", out, *SEQ)
    assert result["code"] == 0, result
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["run"] for r in rows) == sorted(["'=1+2", "'@SUM(A1)", "'+cmd", "'-2+3", "-3"])
    assert {r["recipe"] for r in rows} == {"'=r"}
    for row in rows:  # no text cell begins with a formula character, unless a plain number
        for key, value in row.items():
            assert value[:1] not in "=+@" or value == "", (key, value)
            assert not value.startswith("-") or value == "-3", (key, value)
    sweeps = read_sweeps(out)  # numeric columns stayed numeric
    assert sweeps["lr"].dtype == np.float64 and (sweeps["lr"] > 0).all()
    assert sorted(sweeps["lr"]) == sorted(2.0 ** (-10 + j / 2) for j in range(5))
    tsv = cli("logs", "quick-check", base, ".", "--workers", "1")
    assert "'=1+2\t" in tsv["out"] and "\n-3\t" in tsv["out"]


def test_symlinks_that_leave_the_tree_are_reported_and_no_follow_skips_them(base, tmp_path):
    iters, losses = curve(100)
    write_log(base / "run_in" / "train_log_0.txt", iters, losses)
    outside = tmp_path / "elsewhere"
    write_log(outside / "run_x" / "train_log_0.txt", iters, losses)
    os.symlink(outside / "run_x", base / "run_linked")
    (base / "run_loglink").mkdir()
    os.symlink(outside / "run_x" / "train_log_0.txt", base / "run_loglink" / "train_log_0.txt")

    followed = cli("logs", "quick-check", base, ".", "--workers", "1", "-v")
    assert followed["code"] == 0, followed
    assert f"link {base / 'run_linked'} -> {outside / 'run_x'}: outside BASE_DIR" in followed["err"]
    assert f"link {base / 'run_loglink' / 'train_log_0.txt'} -> " in followed["err"]
    table = pd.read_csv(io.StringIO(followed["out"]), sep="\t")
    assert sorted(table["exp_name"]) == ["run_in", "run_linked", "run_loglink"]
    assert table["smooth_loss"].notna().all()

    strict = cli("logs", "quick-check", base, ".", "--workers", "1", "-v", "--no-follow")
    assert f"skip {base / 'run_linked'}: symbolic link, not followed" in strict["err"]
    assert "outside BASE_DIR" not in strict["err"]
    table = pd.read_csv(io.StringIO(strict["out"]), sep="\t")
    assert sorted(table["exp_name"]) == ["run_in", "run_loglink"]
    assert (
        "failed: run_loglink: cannot read train_log_0.txt: not a regular file (a symbolic "
        in (strict["err"])
    )


def _on_a_terminal(args: list[str]) -> dict:
    """The CLI with stderr on a pseudo-terminal: what the terminal shows."""
    pid, master = pty.fork()
    if pid == 0:
        code = 1
        try:  # a terminal of 24 x 80 (a new pty is 0 x 0, where tqdm draws nothing)
            fcntl.ioctl(2, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            returned = app(args, standalone_mode=False)
            code = returned if isinstance(returned, int) else 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
        while chunk := os.read(master, 4096):
            shown += chunk
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return {"code": os.waitstatus_to_exitcode(status), "shown": shown.decode(errors="replace")}


def test_collect_shows_progress_on_a_terminal_only_and_not_under_quiet(base, tmp_path):
    setting_runs(base)
    args = ["logs", "collect", str(base), ".", "-o", str(tmp_path / "s.csv"), "--seq-len", "128"]
    args += ["--workers", "1"]
    tty = bounded(_on_a_terminal, args)
    assert tty["code"] == 0 and "logs:" in tty["shown"] and "wrote 3 runs" in tty["shown"], tty
    quiet = bounded(_on_a_terminal, [*args, "--quiet"])
    assert quiet["code"] == 0 and quiet["shown"] == "", quiet
    piped = cli(*args)  # not a terminal
    assert piped["code"] == 0 and "logs:" not in piped["err"] and "wrote 3 runs" in piped["err"]


def _forward_reference(data: bytes, max_line: int):
    """Complete lines no longer than max_line, parsed front to back; and the count of longer."""
    lines = data.split(b"\n")[:-1]  # the part after the last newline is not a line
    kept = [line for line in lines if len(line) <= max_line]
    iters, _, losses, _ = logs.parse_loss_lines(b"".join(line + b"\n" for line in kept))
    return iters, losses, len(lines) - len(kept)


@pytest.mark.parametrize("seed", range(6))
def test_bug1_readers_agree_with_a_forward_reference_on_random_long_lines(tmp_path, seed):
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(1, 121):
        parts.append(loss_line(10 * i, 1200, 3.0 - i / 1000).encode())
        if rng.random() < 0.3:  # noise lines of every length around the limit
            parts.append(b"\0" * int(rng.integers(0, 700)) + b"\n")
    if seed % 2:
        parts.append(b"\0" * 900)  # a long, cut-off last line
    data = b"".join(parts)
    path = tmp_path / "train_log_0.txt"
    path.write_bytes(data)
    csv_path = tmp_path / "train_log_0.csv"
    csv_lines = [b"step,loss"] + [
        f"{10 * i},{3.0 - i / 1000!r}".encode() if not line.startswith(b"\0") else line[:-1]
        for i, line in enumerate(parts, 1)
        if line.endswith(b"\n")
    ]
    for max_line in (250, 333, 512):
        iters, losses, long_lines = _forward_reference(data, max_line)
        for block in (64, 200, 4096):
            got = logs.read_loss_curve(path, max_line=max_line, block_size=block)
            np.testing.assert_array_equal(got.iters, iters)
            np.testing.assert_array_equal(got.losses, losses)
            assert got.skipped_lines == long_lines, (max_line, block)
            assert got.truncated == bool(seed % 2)
    csv_path.write_bytes(b"\n".join(csv_lines) + b"\n" + (b"\0" * 900 if seed % 2 else b""))
    lines = b"\n".join(csv_lines).split(b"\n")
    got = logs.read_loss_curve(csv_path, max_line=333)
    assert got.skipped_lines == sum(len(line) > 333 for line in lines)
    assert got.truncated == bool(seed % 2)
