"""Benchmark: a held-out evaluation of both Bayesian models, with and without compile reuse.

Prints measured figures (not a test):

1. the wall time of ``evaluate(split, methods=["bayes", "optimum"], tasks=...)`` (``bayes`` is
   the loss model, every task; ``optimum`` the optimum model, the choice and the intervals)
   with compile reuse (each worker compiles each model structure once and every fold only
   samples), the machine's load average before and after, each model's compile and sampling
   times, and the summary tables;
2. beside it, the time of the same folds *without* compile reuse: the first
   ``--baseline-folds`` folds of each model refitted the ordinary way (``Model.fit`` on the
   training runs: build, compile, sample), extrapolated to all folds from their mean.

Run from the repository root (a full leave-one-setting-out of the loss model on the released
data takes about an hour on two cores)::

    BAYES_STEPLAW_DATA=../shared/data/steplaw python benchmarks/bench_evaluate.py

``--split`` picks the split (``transfer`` with ``--k``); ``--draws``/``--tune``/``--chains``
size each refit; ``--workers`` the local processes (default: one per ``chains`` CPUs; on 2
cores, the main process sampling 2 chains in threads); ``--simulated`` runs on a small
simulated table instead (a quick check of the harness, minutes).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("BAYES_STEPLAW_DATA", str(ROOT.parent / "shared/data/steplaw"))

from bayes_steplaw import LossModel, OptimumModel, load_sweeps, simulate_sweeps  # noqa: E402
from bayes_steplaw.evaluate import evaluate, make_folds  # noqa: E402

MODELS = {"bayes": LossModel, "optimum": OptimumModel}


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def simulated() -> pd.DataFrame:
    """Six dense settings and two MoE variants of two settings each."""
    rows = [("dense", "dense", n, d) for n in (2e8, 6e8, 1.8e9) for d in (4e9, 2e10)]
    rows += [("moe", v, 2e9, d) for v in ("a", "b") for d in (4e9, 2e10)]
    frame = pd.DataFrame(rows, columns=["family", "variant", "N", "D"])
    return simulate_sweeps(frame, seed=0)[0]


def baseline(sweeps: pd.DataFrame, folds, methods, args) -> dict[str, list[float]]:
    """Seconds per fold refitted without reuse (build + compile + sample), per model."""
    times: dict[str, list[float]] = {m: [] for m in methods}
    for name in methods:
        model = MODELS[name]()
        for i, fold in enumerate(folds):
            train = sweeps[sweeps["setting"].isin(fold.train)]
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(
                    train, chains=args.chains, draws=args.draws, tune=args.tune, seed=i,
                    progressbar=False,
                )  # fmt: skip
            times[name].append(time.perf_counter() - start)
            print(f"  {name} without reuse, fold {i + 1}: {times[name][-1]:.1f} s")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="loso")
    parser.add_argument("--k", default="0,1,2,4", help="transfer: settings of the group that train")
    parser.add_argument("--methods", default="bayes,optimum")
    parser.add_argument("--tasks", default=None, help="Comma-separated tasks (default all).")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-folds", type=int, default=2)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--simulated", action="store_true", help="A small simulated table.")
    parser.add_argument("--report", type=Path, default=None, help="Write the tables as Markdown.")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in MODELS]
    if unknown:
        parser.error(f"--methods takes {list(MODELS)}; got {unknown}")
    k = tuple(int(v) for v in args.k.split(","))
    sweeps = simulated() if args.simulated else load_sweeps("all")
    folds = make_folds(sweeps, args.split, k=k)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(
        f"\n1. {args.split} of {', '.join(methods)}: {len(folds)} folds x {len(methods)} "
        f"models, {args.chains} chains x {args.draws} draws ({args.tune} tuning), compile "
        f"reuse; load average {load()}"
    )
    start, cpu = time.perf_counter(), time.process_time()
    result = evaluate(
        sweeps, args.split, methods, args.tasks, k=k, chains=args.chains, draws=args.draws,
        tune=args.tune, seed=args.seed, workers=args.workers,
    )  # fmt: skip
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu  # every thread of this process (nutpie samples in threads)
    fits = result.fits
    print(
        f"  wall {wall:.0f} s (load average after: {load()}); CPU time of this process "
        f"{cpu:.0f} s (workers' CPU not counted)"
    )
    for name, rows in fits.groupby("method"):
        compiled = rows[rows.get("compile_seconds", pd.Series(0, index=rows.index)) > 0]
        sample = rows["sample_seconds"] if "sample_seconds" in rows else rows["fit_seconds"]
        unconverged = int((~rows["converged"].astype("boolean").fillna(True)).sum())
        print(
            f"  {name}: {len(rows)} folds, sampling median {sample.median():.1f} s, total "
            f"{sample.sum():.0f} s; {len(compiled)} compile(s) "
            f"({', '.join(f'{c:.0f} s' for c in compiled.get('compile_seconds', []))}); "
            f"{unconverged} fold(s) missed the gate"
        )
    print()
    print(result.report())
    if args.report is not None:
        from bayes_steplaw._io import write_text

        write_text(args.report, result.to_markdown() + "\n", name="--report")

    if not args.skip_baseline:
        n = min(args.baseline_folds, len(folds))
        print(f"\n2. The same folds without compile reuse ({n} folds per model, extrapolated)")
        times = baseline(sweeps, folds[:n], methods, args)
        total = sum(np.mean(t) * len(folds) for t in times.values())
        means = ", ".join(f"{m} {np.mean(t):.1f} s" for m, t in times.items())
        print(
            f"  mean per fold: {means}; all {len(methods) * len(folds)} fold fits without "
            f"reuse: about {total:.0f} s, against {wall:.0f} s with reuse (x{total / wall:.1f}; "
            f"that wall also holds every task's predictions and the L* yardstick fit); load "
            f"average {load()}"
        )


if __name__ == "__main__":
    main()
