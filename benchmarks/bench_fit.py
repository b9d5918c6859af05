"""Fit wall time: a first and a second ``bayes-steplaw fit`` in new processes, and nutpie vs PyMC.

Part 1, the compiled-model cache (:mod:`bayes_steplaw.bayes.compile_cache`): ``bayes-steplaw
fit`` of the optimum model on the released dense + MoE data (4 chains x 1000 draws, 1000
tuning), each in a NEW process, against a temporary cache directory:

* first:    the cache empty (numba compiles and saves the model),
* second:   the cache as the first left it (the compiled model is loaded),
* uncached: ``BAYES_STEPLAW_COMPILE_CACHE=0``, what every fit cost before the cache (baseline).

Each line gives the process's wall time, the compile and sample seconds the posterior
records (``fit_seconds`` - ``sample_seconds`` and ``sample_seconds``), the process's CPU
seconds and the 1-minute load average when it started: timings on a shared machine are only
as good as its load. Targets: compile + sample of the first fit < 15 s, of the second < 6 s.
The three posteriors must hold the same draws (same seed).

PyTensor's own numba cache (per-Op functions) is used as this machine has it, i.e. "first" is
a first fit of this model on a machine that has fitted before; ``--cold-pytensor`` gives every
process an empty one (its C compiledir is kept: C helpers need no rebuilding to measure numba).

Part 2, in this process: ``bayes_steplaw.fit`` with nutpie (its compiled model now cached) and
with PyMC's own NUTS (C code cached by PyTensor): wall time, worst bulk ESS, ESS per second.

Run: ``python benchmarks/bench_fit.py [--draws 1000] [--chains 4] [--cold-pytensor]
[--skip-uncached] [--skip-pymc] [--keep]`` (needs the released data: ``$BAYES_STEPLAW_DATA``
or a source checkout).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import bayes_steplaw as bsl

FIRST_TARGET_S = 15.0
SECOND_TARGET_S = 6.0


def script() -> list[str]:
    """The installed ``bayes-steplaw`` console script, else ``python -m bayes_steplaw``."""
    local = Path(sys.executable).with_name("bayes-steplaw")
    return [str(local)] if local.exists() else [sys.executable, "-m", "bayes_steplaw"]


def pytensor_compiledir() -> str:
    code = "import pytensor; print(pytensor.config.compiledir)"
    res = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True
    )
    return res.stdout.strip().splitlines()[-1]


def cli_fit(csv: Path, out: Path, env: dict, args) -> dict:
    """One ``bayes-steplaw fit`` in a new process; its timings and posterior."""
    cmd = [*script(), "fit", str(csv), "--out", str(out), "--quiet", "--seed", "0"]
    cmd += ["--chains", str(args.chains), "--draws", str(args.draws), "--tune", str(args.draws)]
    load = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode not in (0, 3):  # 3: written, but not converged
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"bayes-steplaw fit failed with exit code {res.returncode}")
    post = bsl.load(out)
    meta = post.metadata
    return {
        "wall_s": wall,
        "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "compile_s": meta["fit_seconds"] - meta["sample_seconds"],
        "sample_s": meta["sample_seconds"],
        "load": load,
        "converged": post.converged,
        "post": post,
    }


def part_one(args, root: Path) -> None:
    csv = root / "released.csv"
    bsl.load_sweeps("all").to_csv(csv, index=False)  # a temporary copy, never in the repo
    env = {k: v for k, v in os.environ.items() if k != "BAYES_STEPLAW_COMPILE_CACHE"}
    env["BAYES_STEPLAW_CACHE"] = str(root / "cache")
    if args.cold_pytensor:
        # PyTensor keeps its numba cache in base_compiledir/numba; keep the C compiledir
        flags = [f"base_compiledir={root / 'pytensor'}", f"compiledir={pytensor_compiledir()}"]
        env["PYTENSOR_FLAGS"] = ",".join(filter(None, [env.get("PYTENSOR_FLAGS"), *flags]))
    manifests = root / "cache" / "nutpie-numba"
    print(
        f"bayes-steplaw fit of the optimum model on the released data, {args.chains} x "
        f"{args.draws} draws, each in a new process; PyTensor's numba cache "
        f"{'empty (--cold-pytensor)' if args.cold_pytensor else 'as this machine has it'}; "
        f"{os.cpu_count()} CPUs"
    )
    runs = {"first": cli_fit(csv, root / "first.nc", env, args)}
    stamps = {p: p.stat().st_mtime_ns for p in manifests.glob("*/manifest.json")}
    runs["second"] = cli_fit(csv, root / "second.nc", env, args)
    hit = any(p.stat().st_mtime_ns != t for p, t in stamps.items())  # a hit touches it
    if not args.skip_uncached:
        off = {**env, "BAYES_STEPLAW_COMPILE_CACHE": "0"}
        runs["uncached"] = cli_fit(csv, root / "uncached.nc", off, args)
    notes = {
        "first": f"cache empty: {'saved' if stamps else 'NOT saved'}",
        "second": f"cache warm: {'hit' if hit else 'NOT a hit'}",
        "uncached": "BAYES_STEPLAW_COMPILE_CACHE=0 (baseline)",
    }
    targets = {"first": FIRST_TARGET_S, "second": SECOND_TARGET_S}
    for name, r in runs.items():
        both = r["compile_s"] + r["sample_s"]
        goal = ""
        if name in targets:
            met = "met" if both < targets[name] else "NOT met"
            goal = f", target < {targets[name]:.0f} s {met}"
        print(
            f"  {name:<8} process {r['wall_s']:5.1f} s wall, {r['cpu_s']:5.1f} s CPU; compile "
            f"{r['compile_s']:5.1f} s + sample {r['sample_s']:4.1f} s = {both:5.1f} s{goal}; "
            f"load {r['load']:.2f}; converged {r['converged']}  [{notes[name]}]"
        )
    ref = runs["first"]["post"].posterior
    for name, r in runs.items():
        other = r["post"].posterior
        same = set(ref.data_vars) == set(other.data_vars) and all(
            np.array_equal(ref[v].values, other[v].values) for v in ref.data_vars
        )
        if name != "first":
            print(f"  draws of {name} vs first: {'identical' if same else 'DIFFERENT'}")
    size = sum(f.stat().st_size for f in manifests.rglob("*") if f.is_file())
    print(f"  compiled-model cache: {size / 1e6:.1f} MB; load average now {os.getloadavg()[0]:.2f}")


def one_fit(sweeps, sampler: str, chains: int, draws: int) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bsl.ConvergenceWarning)
        post = bsl.fit(
            sweeps, sampler=sampler, chains=chains, draws=draws, tune=draws, progressbar=False
        )
    wall = time.perf_counter() - start
    diag = post.diagnostics
    return {
        "sampler": sampler,
        "wall_s": wall,
        "min_ess_bulk": diag["min_ess_bulk"],
        "ess_per_s": diag["min_ess_bulk"] / wall,
        "divergences": diag["divergences"],
        "max_r_hat": diag["max_r_hat"],
        "converged": post.converged,
    }


def part_two(args, root: Path) -> None:
    # nutpie's compiled model from the cache part one filled (when it ran)
    os.environ["BAYES_STEPLAW_CACHE"] = str(root / "cache")
    sweeps = bsl.load_sweeps("all")
    print(f"in this process (load average {os.getloadavg()[0]:.2f}):")
    rows = [one_fit(sweeps, s, args.chains, args.draws) for s in ("nutpie", "pymc")]
    for r in rows:
        print(
            f"  {r['sampler']:>7}: wall {r['wall_s']:6.1f} s, min bulk ESS "
            f"{r['min_ess_bulk']:6.0f}, ESS/s {r['ess_per_s']:6.1f}, divergences "
            f"{r['divergences']}, max R-hat {r['max_r_hat']:.4f}, converged {r['converged']}"
        )
    nut, pym = rows
    print(
        f"  nutpie vs pymc: {pym['wall_s'] / nut['wall_s']:.2f}x faster wall time, "
        f"{nut['ess_per_s'] / pym['ess_per_s']:.2f}x ESS per second"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000, help="draws and tuning steps")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument(
        "--cold-pytensor", action="store_true", help="give each process an empty PyTensor cache"
    )
    parser.add_argument("--skip-uncached", action="store_true", help="no baseline process")
    parser.add_argument("--skip-pymc", action="store_true", help="no nutpie-vs-PyMC part")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-fit-"))
    try:
        part_one(args, root)
        if not args.skip_pymc:
            part_two(args, root)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
