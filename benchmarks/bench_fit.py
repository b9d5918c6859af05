"""Fit wall time of the default model: ``bayes-steplaw fit`` on all released runs, in new processes.

The loss model (every run: 2,619 of them) at its default sampler settings, each fit in a NEW
process, three ways:

* jax:          nutpie's JAX backend, as the package compiles by default;
* jax-cached:   the same with JAX's own persistent compilation cache
                (``JAX_COMPILATION_CACHE_DIR``, a public JAX setting) warm from the run
                before: the public way to reuse compiled code across processes;
* numba:        nutpie's numba backend (``BAYES_STEPLAW_NUTPIE_BACKEND=numba``): the baseline,
                what 0.2 compiled with.

Each line gives the process's wall time, the compile and sample seconds the posterior records,
the convergence gate and the 1-minute load average when it started (timings on a shared
machine are only as good as its load). Target (issue 19): the default fit <= 120 s with
compilation. Also the reduced folds of an evaluation: one leave-one-setting-out fold with the
evaluation's sampler settings, in this process (``--fold``).

Run: ``python benchmarks/bench_fit.py [--skip-numba] [--fold]`` (needs the released data:
``$BAYES_STEPLAW_DATA`` or a source checkout).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bayes_steplaw as bsl

TARGET_S = 120.0


def script() -> list[str]:
    """The installed ``bayes-steplaw`` console script, else ``python -m bayes_steplaw``."""
    local = Path(sys.executable).with_name("bayes-steplaw")
    return [str(local)] if local.exists() else [sys.executable, "-m", "bayes_steplaw"]


def cli_fit(csv: Path, out: Path, env: dict) -> dict:
    """One ``bayes-steplaw fit`` (the default model, default settings) in a new process."""
    cmd = [*script(), "fit", str(csv), "--out", str(out), "--quiet"]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    if res.returncode not in (0, 3):  # 3: written, but not converged
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"bayes-steplaw fit failed with exit code {res.returncode}")
    post = bsl.load(out)
    meta = post.metadata
    return {
        "wall_s": wall,
        "compile_s": meta["fit_seconds"] - meta["sample_seconds"],
        "sample_s": meta["sample_seconds"],
        "load": load,
        "converged": post.converged,
        "max_r_hat": post.diagnostics["max_r_hat"],
        "min_ess": min(post.diagnostics["min_ess_bulk"], post.diagnostics["min_ess_tail"]),
    }


def fold_time() -> None:
    """One leave-one-setting-out refit with the evaluation's settings, compiled once."""
    from bayes_steplaw.evaluate.splits import make_folds

    sweeps = bsl.load_sweeps("all")
    fold = make_folds(sweeps, "loso")[0]
    start = time.perf_counter()
    prepared = bsl.LossModel().prepare(sweeps, weighted=True)
    compiled = time.perf_counter() - start
    weights = prepared.built.design.runs["setting"].isin(fold.train).to_numpy(float)
    start = time.perf_counter()
    post = prepared.fit(weights, chains=2, draws=500, tune=300, progressbar=False)
    sampled = time.perf_counter() - start
    n = len(make_folds(sweeps, "loso"))
    print(
        f"  one leave-one-setting-out fold (2 chains x 500 draws): compile {compiled:.1f} s "
        f"once, sample {sampled:.1f} s; all {n} folds ~ {(compiled + n * sampled) / 60:.1f} "
        f"min on one worker (target 20 min); max R-hat {post.diagnostics['max_r_hat']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-numba", action="store_true", help="no numba baseline process")
    parser.add_argument("--fold", action="store_true", help="also time one held-out fold")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-fit-"))
    csv = root / "released.csv"
    bsl.load_sweeps("all").to_csv(csv, index=False)  # a temporary copy, never in the repo
    base = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    print(f"bayes-steplaw fit (loss model, defaults) on the released data; {os.cpu_count()} CPUs")
    cached = {**base, "JAX_COMPILATION_CACHE_DIR": str(root / "jax-cache")}
    runs = {
        "jax": cli_fit(csv, root / "jax.nc", base),
        "jax-fill": cli_fit(csv, root / "fill.nc", cached),
        "jax-cached": cli_fit(csv, root / "cached.nc", cached),
    }
    if not args.skip_numba:
        numba = {**base, "BAYES_STEPLAW_NUTPIE_BACKEND": "numba"}
        runs["numba"] = cli_fit(csv, root / "numba.nc", numba)
    for name, r in runs.items():
        total = r["compile_s"] + r["sample_s"]
        goal = f"target <= {TARGET_S:.0f} s {'met' if total <= TARGET_S else 'NOT met'}"
        print(
            f"  {name:<10} process {r['wall_s']:6.1f} s; compile {r['compile_s']:6.1f} s + sample "
            f"{r['sample_s']:6.1f} s = {total:6.1f} s ({goal}); load {r['load']:.2f}; "
            f"converged {r['converged']} (R-hat {r['max_r_hat']:.4f}, ESS >= {r['min_ess']:.0f})"
        )
    if "numba" in runs:
        j, n = runs["jax"], runs["numba"]
        print(f"  compile: numba / jax = {n['compile_s'] / j['compile_s']:.1f}x; sample: "
              f"numba / jax = {n['sample_s'] / j['sample_s']:.2f}x")  # fmt: skip
    if args.fold:
        fold_time()


if __name__ == "__main__":
    main()
