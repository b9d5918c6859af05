"""The compiled-model cache (bayes_steplaw.bayes.compile_cache) with real nutpie and numba.

Every process that compiles gets its own temporary ``$BAYES_STEPLAW_CACHE`` (never the user's
cache). A second process must load what the first saved and sample exactly the draws that
nutpie's own, uncached compilation samples for the same seed; a damaged entry must be
compiled again, not fail; an unsafe directory or ``BAYES_STEPLAW_COMPILE_CACHE=0`` must leave
the cache alone. The model is the optimum model on a five-setting simulated sweep.

Run as a script (``python tests/test_compile_cache.py GROUPS``), this file is the second
process: it compiles the model of ``GROUPS`` (comma-separated) and prints one JSON line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_steplaw as bsl

ENV_CACHE, ENV_SWITCH = "BAYES_STEPLAW_CACHE", "BAYES_STEPLAW_COMPILE_CACHE"
GROUPS = ("family",)  # the smaller structure: the compile tests' cost is compilation
SAMPLE = dict(chains=2, draws=50, tune=50, seed=7, progress_bar=False)
TINY_SETTINGS = pd.DataFrame(
    [
        ("dense", "dense", 2e8, 4e9),
        ("dense", "dense", 6e8, 2e10),
        ("dense", "dense", 1.8e9, 1e11),
        ("moe", "a", 2e9, 4e9),
        ("moe", "b", 2e9, 2e10),
    ],
    columns=["family", "variant", "N", "D"],
)


def tiny_model(groups=GROUPS, seed: int = 1, weighted: bool = False):
    """The optimum model's PyMC graph on a small simulated sweep."""
    sweeps, _ = bsl.simulate_sweeps(TINY_SETTINGS, seed=seed)
    return bsl.OptimumModel(groups).build(sweeps, weighted=weighted).model


def draws_digest(compiled) -> str:
    """sha256 of every posterior draw nutpie samples from ``compiled`` with SAMPLE."""
    import nutpie

    idata = nutpie.sample(compiled, **SAMPLE)
    h = hashlib.sha256()
    for name in sorted(idata.posterior.data_vars):
        h.update(name.encode())
        h.update(np.ascontiguousarray(idata.posterior[name].values).tobytes())
    return h.hexdigest()


def _child(groups: str) -> None:
    from bayes_steplaw.bayes.compile_cache import compile_nutpie, last_compile_info

    model = tiny_model(tuple(groups.split(",")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", RuntimeWarning)
        compiled = compile_nutpie(model)
    info = last_compile_info()
    digest = draws_digest(compiled)
    print(json.dumps({**info, "digest": digest, "warnings": [str(w.message) for w in caught]}))


# --------------------------------------------------------------------------- helpers


def run_child(cache_root: Path, groups=GROUPS, **env) -> dict:
    """Compile and sample the tiny model in a new Python process; its JSON report."""
    full_env = {k: v for k, v in os.environ.items() if k != ENV_SWITCH}
    full_env.update({ENV_CACHE: str(cache_root), **env})
    res = subprocess.run(
        [sys.executable, __file__, ",".join(groups)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, f"child failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout.strip().splitlines()[-1])


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under root: what a process left alone stays equal."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def entry_files(cache_root: Path, pattern: str) -> list[Path]:
    """The files of the one cache entry under cache_root matching pattern."""
    entries = [p for p in (cache_root / "nutpie-numba").iterdir() if p.is_dir()]
    assert len(entries) == 1, entries
    found = sorted(entries[0].glob(pattern))
    assert found, f"no {pattern} in {entries[0]}"
    return found


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """Three processes on one cache: a miss, a hit, then one with the cache switched off
    (nutpie's own compilation: the reference draws), and whether that one left it alone."""
    root = tmp_path_factory.mktemp("compile-cache")
    first = run_child(root)
    second = run_child(root)
    before = snapshot(root)
    off = run_child(root, **{ENV_SWITCH: "0"})
    return {
        "root": root,
        "miss": first,
        "hit": second,
        "off": off,
        "untouched": before == snapshot(root),
    }


# --------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_second_process_hits_and_samples_the_uncached_draws(populated):
    root, first, second = populated["root"], populated["miss"], populated["hit"]
    assert (first["cache"], first["saved"], first["reason"]) == ("miss", True, "")
    assert (second["cache"], second["reason"]) == ("hit", "")
    assert second["key"] == first["key"]
    # loading skips PyTensor's rewrites and numba's compiler: far below the compile
    assert second["seconds"] < first["seconds"] / 2
    assert first["digest"] == second["digest"] == populated["off"]["digest"]
    assert (root / "nutpie-numba" / first["key"] / "manifest.json").is_file()


@pytest.mark.slow
def test_the_key_follows_structure_and_constants_not_data_values():
    from bayes_steplaw.bayes import compile_cache
    from bayes_steplaw.bayes._compile_key import model_key

    def key(model) -> str:
        return model_key(model, None, {}, compile_cache._CODE)[0]

    base = key(tiny_model())  # a rebuilt model has the same key: the second process's hit
    assert key(tiny_model(groups=("family", "variant"))) != base  # other groups
    assert key(tiny_model(seed=2)) != base  # other data: compiled in as constants
    # pm.Data is passed at run time: its values are not in the key
    weighted = tiny_model(weighted=True)
    before = key(weighted)
    weighted["run_weight"].set_value(np.linspace(0.0, 2.0, len(weighted["run_weight"].get_value())))
    assert key(weighted) == before != base


@pytest.mark.slow
def test_truncated_file_recompiles(populated, tmp_path):
    root, first = populated["root"], populated["miss"]
    shutil.copytree(root, tmp_path / "cache")
    for data in entry_files(tmp_path / "cache", "*logp_numba*.nbc"):
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    report = run_child(tmp_path / "cache")
    assert report["key"] == first["key"]
    assert report["cache"] == "miss" and report["saved"], report
    assert report["reason"].startswith("entry unusable"), report
    assert report["digest"] == populated["off"]["digest"]


@pytest.mark.slow
def test_deleted_file_recompiles(populated, tmp_path):
    root = populated["root"]
    shutil.copytree(root, tmp_path / "cache")
    for data in entry_files(tmp_path / "cache", "*expand_numba*.nbc"):
        data.unlink()
    report = run_child(tmp_path / "cache")
    assert report["cache"] == "miss" and report["saved"], report
    assert report["reason"].startswith("entry unusable"), report
    assert report["digest"] == populated["off"]["digest"]
    assert entry_files(tmp_path / "cache", "*expand_numba*.nbc")  # written again


@pytest.mark.slow
def test_directory_others_can_write_disables_the_cache(tmp_path, monkeypatch):
    from bayes_steplaw.bayes.compile_cache import compile_nutpie, last_compile_info

    shared = tmp_path / "nutpie-numba"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(ENV_SWITCH, raising=False)
    model = tiny_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTensor's notice when BLAS is missing
        with pytest.warns(RuntimeWarning, match="writable by other users"):
            compile_nutpie(model)
    info = last_compile_info()
    assert (info["cache"], info["key"]) == ("off", None)
    assert "writable by other users" in info["reason"]
    assert list(shared.iterdir()) == []


@pytest.mark.slow
def test_a_failing_cache_falls_back_to_nutpie(tmp_path, monkeypatch):
    # as when another nutpie version lacks an internal the cache uses
    from bayes_steplaw.bayes import _nutpie_numba
    from bayes_steplaw.bayes.compile_cache import compile_nutpie, last_compile_info

    def missing(*args, **kwargs):
        raise AttributeError("module 'nutpie.compile_pymc' has no attribute '_make_functions'")

    monkeypatch.setattr(_nutpie_numba, "prepare", missing)
    monkeypatch.setenv(ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(ENV_SWITCH, raising=False)
    model = tiny_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTensor's notice when BLAS is missing
        with pytest.warns(RuntimeWarning, match="cache failed .*AttributeError"):
            compiled = compile_nutpie(model)
    assert last_compile_info()["cache"] == "off"
    assert compiled.n_dim > 0


@pytest.mark.slow
def test_switch_off_leaves_the_cache_alone(populated):
    off = populated["off"]
    assert (off["cache"], off["reason"], off["key"]) == ("off", "disabled", None)
    assert populated["untouched"]  # not even the time stamp a hit sets


def test_cache_dir_and_clear(tmp_path, monkeypatch):
    from bayes_steplaw.bayes.compile_cache import clear_compile_cache, compile_cache_dir

    monkeypatch.setenv(ENV_CACHE, str(tmp_path))
    assert compile_cache_dir() == tmp_path / "nutpie-numba"
    for name in ("a", "b"):
        (compile_cache_dir() / name).mkdir(parents=True)
        (compile_cache_dir() / name / "manifest.json").write_text("{}")
    assert clear_compile_cache() == 2
    assert list(compile_cache_dir().iterdir()) == []
    assert clear_compile_cache(tmp_path / "missing") == 0


if __name__ == "__main__":
    _child(sys.argv[1])
