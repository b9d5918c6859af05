"""Hostile inputs to the CLI's fit and answer commands (issue 15, CLI side): no hang, bounded
memory, no traceback, nothing lost.

Commands that could hang or allocate run in a subprocess with a timeout and an address-space
limit (``resource.setrlimit``), so a regression fails in seconds instead of stalling the suite.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import typer
from conftest import FAST
from typer.testing import CliRunner

import bayes_steplaw as bsl
from bayes_steplaw.cli import app
from bayes_steplaw.cli.fit import save_or_keep

runner = CliRunner()
LIMIT_BYTES = 3 << 30  # address space of the subprocesses: a runaway allocation fails fast


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def cli(*args, timeout: float = 120, limit: int | None = LIMIT_BYTES, env=None):
    """Run ``python -m bayes_steplaw ARGS`` bounded in time and memory."""

    def bound():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "bayes_steplaw", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=bound,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def sweep_csv(tmp_path_factory) -> Path:
    """A small valid sweep that identifies the law (the conftest's simulated settings)."""
    from conftest import SIM_LAW, SIM_SETTINGS

    sweeps, _ = bsl.simulate_sweeps(SIM_SETTINGS, SIM_LAW, seed=3)
    path = tmp_path_factory.mktemp("sweep") / "sweep.csv"
    sweeps.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def small_optimum(shipped_optimum):
    return shipped_optimum.subsample(200)


@pytest.fixture(scope="module")
def light_loss_file(light_loss, tmp_path_factory) -> Path:
    """The shipped loss posterior on 250 draws, as a file: the answering commands at a quarter
    of a second each."""
    return light_loss.save(tmp_path_factory.mktemp("light") / "loss.nc")


# --------------------------------------------------------------------------- output paths


@pytest.mark.slow  # a subprocess, bounded in time and memory
@pytest.mark.parametrize(
    "where, message",
    [
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: tmp / "missing" / "post.nc", "does not exist"),
        (lambda tmp: tmp / "file.txt" / "post.nc", "is not a folder"),
        (lambda tmp: Path("/proc/bayes-steplaw-test.nc"), "cannot write in /proc"),
    ],
)
def test_fit_out_is_checked_before_any_work(tmp_path, sweep_csv, where, message):
    (tmp_path / "file.txt").write_text("x")
    # a fit of 2 x 200000 draws takes minutes: the refusal must come before it
    result = cli("fit", sweep_csv, "--out", where(tmp_path), "--draws", "200000", "--chains", "2",
                 timeout=90)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_fit_out_in_a_read_only_folder(tmp_path, sweep_csv):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    result = invoke("fit", sweep_csv, "--out", folder / "post.nc")
    assert result.exit_code == 2 and "cannot write in" in result.output


def test_late_write_failure_keeps_the_fit(tmp_path, small_optimum, capsys):
    (tmp_path / "file.txt").write_text("x")
    target = tmp_path / "file.txt" / "post.nc"  # its folder is a file: the save fails
    with pytest.raises(typer.Exit) as info:
        save_or_keep(small_optimum, target)
    assert info.value.exit_code == 1
    err = capsys.readouterr().err
    assert f"could not write {target}" in err and "kept at" in err
    kept = Path(err.split("kept at ")[1].split()[0])
    try:
        back = bsl.load(kept)
        np.testing.assert_array_equal(back.flat("alpha"), small_optimum.flat("alpha"))
    finally:
        kept.unlink(missing_ok=True)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\x00\x01\x02binary\xff" * 50, b"\xff\xfe" * 9])
def test_empty_and_binary_sweep_files_name_the_file(tmp_path, content):
    path = tmp_path / "sweep.csv"
    path.write_bytes(content)
    result = invoke("fit", path, "--out", tmp_path / "p.nc")
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and "Traceback" not in result.output
    assert any(w in result.output for w in ("is empty", "binary", "not UTF-8"))


@pytest.mark.slow  # a subprocess, bounded in time and memory
def test_fit_on_a_directory_or_a_fifo(tmp_path):
    result = invoke("fit", tmp_path, "--out", tmp_path / "p.nc")
    assert result.exit_code == 2 and "is a directory" in result.output
    fifo = tmp_path / "sweep.csv"
    os.mkfifo(fifo)
    result = cli("fit", fifo, "--out", tmp_path / "p.nc", timeout=60)  # a read would hang
    assert result.returncode == 2 and "not a regular file" in result.stderr


# --------------------------------------------------------------------------- sizes


@pytest.mark.slow  # a subprocess, bounded in time and memory
@pytest.mark.parametrize(
    "args, option",
    [
        (["--draws", "400000", "--chains", "2"], "--draws or --chains"),
        (["--draws", "10", "--chains", "100000"], "--draws or --chains"),
        (["--draws", "100000000"], "--draws"),
    ],
)
def test_fit_sizes_are_refused_up_front(tmp_path, sweep_csv, args, option):
    result = cli("fit", sweep_csv, "--out", tmp_path / "p.nc", *args, timeout=90)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert option in result.stderr and "Traceback" not in result.stderr


def test_the_size_checks_count_a_two_lab_tables_pooled_draws(tmp_path, sweep_csv):
    """A table with a lab column of two labs is fitted with the loss model's pooled defaults
    (pooled_sampler_defaults): the checks before any work count those, as for --with-released."""
    table = pd.read_csv(sweep_csv)
    first = table["family"] == table["family"].iloc[0]
    table.assign(lab=np.where(first, "step-law", "mine")).to_csv(tmp_path / "labs.csv")
    for table, sampler in ((tmp_path / "labs.csv", bsl.LossModel.pooled_sampler_defaults),
                           (sweep_csv, bsl.LossModel.sampler_defaults)):  # fmt: skip
        result = invoke("fit", table, "--out", tmp_path / "p.nc", "--chains", "2000")
        expected = f"chains x draws = {2000 * sampler['draws']} exceeds"
        assert result.exit_code == 2 and expected in result.output, result.output


def test_fit_draws_in_float_notation_is_a_usage_error(tmp_path, sweep_csv):
    result = invoke("fit", sweep_csv, "--out", tmp_path / "p.nc", "--draws", "1e8")
    assert result.exit_code == 2 and "--draws" in result.output


@pytest.mark.slow  # a subprocess, bounded in time and memory
def test_reproduce_n_boot_is_refused_up_front():
    result = cli("reproduce", "--n-boot", "100000000", timeout=90)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--n-boot" in result.stderr and "Unable to allocate" not in result.stderr


def test_predict_grid_size_is_refused():
    many = ",".join(["1e9"] * 1001)
    result = invoke("predict", many, many)
    assert result.exit_code == 2 and "exceed 1000000 points" in result.output


# --------------------------------------------------------------------------- extreme values


@pytest.mark.parametrize("command", ["plateau", "recommend", "plan-sweep", "loss"])
def test_answering_commands_say_when_they_extrapolate(command, light_loss_file):
    extra = ["--lr", "1e-3", "--batch-tokens", "1M"] if command in ("plateau", "loss") else []
    result = invoke(command, "1e12", "1e14", *extra, "--posterior", light_loss_file)
    assert result.exit_code == 0, result.output
    assert "orders of magnitude outside the fitted data's N range" in result.output
    assert "D range" in result.output


@pytest.mark.slow  # a subprocess, bounded in time and memory
@pytest.mark.parametrize(
    "args",
    [
        ["predict", "1e-300", "1e10"],
        ["plateau", "1e-300", "1e10", "--lr", "1e-3", "--batch-tokens", "1M"],
        ["recommend", "1e-300", "1e-300"],
    ],
)
def test_tiny_values_give_no_raw_numpy_warning(args):
    result = cli(*args, timeout=90, env={"PYTHONWARNINGS": "default"})
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 2)


# --------------------------------------------------------------------------- posterior files


def _edited_copy(post, path: Path, edit) -> Path:
    post.save(path)
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def test_compare_warns_on_an_unconverged_posterior(tmp_path, small_optimum):
    import json

    def unconverged(f):
        meta = json.loads(f["posterior"].attrs["bayes_steplaw_metadata"])
        meta["diagnostics"].update(converged=False, problems=["R-hat > 1.01 for alpha"])
        f["posterior"].attrs["bayes_steplaw_metadata"] = json.dumps(meta)

    path = _edited_copy(small_optimum, tmp_path / "u.nc", unconverged)
    result = invoke("compare", "moe", "dense", "--posterior", path)
    assert result.exit_code == 0, result.output
    assert "warning: this posterior failed its convergence checks (R-hat" in result.output


def test_compare_refuses_nan_draws(tmp_path, small_optimum):
    def poison(f):
        values = f["posterior"]["alpha"][...]
        values[0, :3] = np.nan
        f["posterior"]["alpha"][...] = values

    path = _edited_copy(small_optimum, tmp_path / "nan.nc", poison)
    result = invoke("compare", "moe", "dense", "--posterior", path)
    assert result.exit_code == 2 and "non-finite or non-numeric draws of ['alpha']" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "1e9", "1e10"],
        ["plateau", "1e9", "1e10", "--lr", "1e-3", "--batch-tokens", "1M"],
        ["recommend", "1e9", "1e10"],
        ["compare", "moe", "dense"],
        ["plan-sweep", "1e9", "1e10"],
    ],
)
def test_a_directory_as_posterior_says_so(tmp_path, args):
    result = invoke(*args, "--posterior", tmp_path)
    assert result.exit_code == 2 and "is a directory" in result.output, result.output


@pytest.mark.slow  # a subprocess, bounded in time and memory
def test_bad_posterior_files_end_in_one_clean_line(tmp_path, small_optimum):
    files = {
        "garbage.nc": b"not a netCDF file at all",
        "truncated.nc": None,
    }
    small_optimum.save(tmp_path / "full.nc")
    data = (tmp_path / "full.nc").read_bytes()
    files["truncated.nc"] = data[: len(data) // 3]
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        result = cli("compare", "moe", "dense", "--posterior", tmp_path / name, timeout=90)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
        assert "Exception ignored" not in result.stderr


@pytest.mark.slow  # a subprocess, bounded in time and memory
def test_unraisable_noise_of_h5py_is_dropped_and_other_noise_kept():
    code = (
        "from bayes_steplaw.cli._common import silence_unraisable\n"
        "silence_unraisable()\n"
        "class H5Error(Exception):\n"
        "    pass\n"
        "H5Error.__module__ = 'h5py._hl.files'\n"
        "class FileLike:\n"
        "    def __del__(self):\n"
        "        raise H5Error('closing a half-opened file')\n"
        "class Other:\n"
        "    def __del__(self):\n"
        "        raise RuntimeError('someone else')\n"
        "FileLike(); Other()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "closing a half-opened file" not in out.stderr
    assert "someone else" in out.stderr


# --------------------------------------------------------------------------- --force (slow)


@pytest.mark.slow
def test_unconverged_fit_does_not_replace_a_converged_posterior(tmp_path, sweep_csv, small_optimum):
    out = tmp_path / "post.nc"
    bsl.load_default("optimum").save(out)  # converged
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    # the optimum model (the file it guards is one): its NUTS fit takes seconds, not a minute
    tiny = ["--model", "optimum", "--chains", "2", "--draws", str(FAST["draws"] // 4), "--tune",
            "200", "--quiet"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = invoke("fit", sweep_csv, "--out", out, *tiny)
    assert result.exit_code == 3, result.output
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    aside = tmp_path / "post.unconverged.nc"
    assert not bsl.load(aside).converged
    assert f"this unconverged one went to {aside}" in result.output and "--force" in result.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = invoke("fit", sweep_csv, "--out", out, "--force", *tiny)
    assert result.exit_code == 3 and not bsl.load(out).converged
