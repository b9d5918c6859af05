"""Hostile posterior files and concurrent saves (issue 15): refused early, named, never a
traceback, never a half-written file."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5netcdf
import numpy as np
import pytest
from typer.testing import CliRunner

import bayes_steplaw as bsl
from bayes_steplaw._resources import resource_path
from bayes_steplaw.bayes.posterior import METADATA_ATTR
from bayes_steplaw.cli import app

SHIPPED = resource_path("models", "optimum.nc")
SMALL = Path(__file__).parent / "data" / "v0.1_optimum.nc"  # 140 KB, written by 0.1.0


def with_metadata(tmp_path: Path, meta) -> Path:
    """A copy of a small optimum posterior whose metadata attribute is ``meta`` (JSON)."""
    path = tmp_path / "bad.nc"
    shutil.copy(SMALL, path)
    with h5netcdf.File(path, "a") as f:
        f["posterior"].attrs[METADATA_ATTR] = meta if isinstance(meta, str) else json.dumps(meta)
    return path


def shipped_metadata() -> dict:
    return json.loads(json.dumps(bsl.load(SMALL).metadata))


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        ([1, 2, 3], "JSON object"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ({"model": "optimum"}, "version"),
    ],
    ids=["a list", "nested 100,000 deep", "no version"],
)
def test_malformed_metadata_is_a_named_error(tmp_path, meta, field):
    path = with_metadata(tmp_path, meta)
    with pytest.raises(bsl.PosteriorFileError, match=field):
        bsl.load(path)
    result = CliRunner().invoke(app, ["compare", "moe", "dense", "--posterior", str(path)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "error:" in result.output


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m.pop("hierarchy"), "'hierarchy'"),
        (lambda m: m.update(hierarchy={"levels": "garbage"}), "'hierarchy'"),
        (lambda m: m.update(hierarchy=[1]), "'hierarchy'"),
        (lambda m: m.update(N_range=[1.0]), "'N_range'"),
        (lambda m: m.update(log_n0="big"), "'log_n0'"),
        (lambda m: m["diagnostics"].pop("converged"), "'diagnostics.converged'"),
        (lambda m: m.update(n_runs=True), "'n_runs'"),
    ],
)
def test_metadata_fields_are_checked_by_name(tmp_path, edit, field):
    meta = shipped_metadata()
    edit(meta)
    with pytest.raises(bsl.PosteriorFileError, match=field):
        bsl.load(with_metadata(tmp_path, meta))


@pytest.mark.slow
def test_a_tiny_file_declaring_a_huge_variable_is_refused_before_reading(tmp_path):
    """8 KB on disk, 1e9 draws declared (never written): refused from the header, in a
    process whose memory is capped far below what reading it would take."""
    path = tmp_path / "huge.nc"
    with h5netcdf.File(path, "w") as f:
        group = f.create_group("posterior")
        group.dimensions = {"chain": 1, "draw": 10**9}
        group.create_variable(
            "alpha", ("chain", "draw"), dtype="f8", chunks=(1, 1 << 20), compression="gzip"
        )
        meta = shipped_metadata()
        for bulky in ("evaluation", "candidates"):  # keep the file small: the point of the test
            meta.pop(bulky, None)
        group.attrs[METADATA_ATTR] = json.dumps(meta)
    assert path.stat().st_size < 20_000
    code = (
        "import resource, sys\n"
        "import bayes_steplaw as bsl\n"
        "soft = 1 << 30\n"  # 1 GiB more than the interpreter needs is plenty; 8 GB would not be
        "used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (used * 4 + soft, used * 4 + soft))\n"
        f"try:\n    bsl.load({str(path)!r})\n"
        "except bsl.PosteriorFileError as exc:\n    print('refused:', exc)\n"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused:" in out.stdout and "samples" in out.stdout
    assert time.perf_counter() - start < 30


def _save(args):
    path, seed = args
    post = bsl.load_default("optimum")
    post.metadata = {**post.metadata, "seed": seed}
    for _ in range(3):
        post.save(path)
    return seed


@pytest.mark.slow
def test_concurrent_saves_to_one_path_leave_a_complete_file(tmp_path):
    path = tmp_path / "shared.nc"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        seeds = pool.map(_save, [(path, 1), (path, 2)])
    back = bsl.load(path)  # the last complete writer won; the file always loads
    assert back.metadata["seed"] in seeds
    np.testing.assert_array_equal(back.flat("alpha"), bsl.load_default("optimum").flat("alpha"))
    assert not list(tmp_path.glob("*.part")), "temporary files were left behind"


def test_a_directory_or_a_missing_file_as_posterior(tmp_path):
    with pytest.raises(bsl.PosteriorFileError, match="is a directory"):
        bsl.load(tmp_path)
    with pytest.raises(bsl.PosteriorFileError, match="does not exist"):
        bsl.load(tmp_path / "nope.nc")


def test_the_wrong_kind_of_model_names_the_fit_that_makes_the_right_one():
    with pytest.raises(bsl.PosteriorFileError, match="--model loss"):
        bsl.LossPosterior.load(SHIPPED)  # an optimum posterior cannot answer for runs
    result = CliRunner().invoke(app, ["recommend", "1e9", "1e10", "--posterior", str(SMALL)])
    assert result.exit_code == 2 and "--model loss" in result.output
