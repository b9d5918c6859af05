"""Benchmark: a full leave-one-setting-out (LOSO) evaluation of both Bayesian models.

Prints measured figures (not a test):

1. the wall time of ``evaluate(split="loso", methods=["bayes", "landscape"])`` over the 33
   released settings, with compile reuse (each worker compiles each model structure once and
   every fold only samples), the machine's load average before and after, where each
   model's compilation came from (compiled here, or the on-disk compile cache), and the
   summary tables;
2. beside it, the time of the same folds *without* compile reuse: the first ``--baseline-folds``
   folds of each model refitted the ordinary way (``Model.fit`` on the training runs: build,
   compile, sample; the on-disk compile cache switched off, as a new data set would miss it
   anyway), extrapolated to all folds from their mean;
3. optionally (``--ppc``), the in-sample posterior-predictive check of the shipped landscape
   posterior that the former ``bench_landscape.py`` printed: the 90% predictive interval of
   every run's relative loss against the observed one.

Run from the repository root::

    BAYES_STEPLAW_DATA=../shared/data/steplaw python benchmarks/bench_evaluate.py

``--draws``/``--tune``/``--chains`` size each refit; ``--workers`` the local processes
(default: one per ``chains`` CPUs; on 2 cores, the main process sampling 2 chains in threads).
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

from bayes_steplaw import LandscapeModel, OptimumModel, load_sweeps  # noqa: E402
from bayes_steplaw.evaluate import evaluate  # noqa: E402


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def baseline(sweeps: pd.DataFrame, folds: int, args) -> dict[str, list[float]]:
    """Seconds per fold refitted without reuse (build + compile + sample), per model."""
    settings = sorted(sweeps["setting"].unique())[:folds]
    previous = os.environ.get("BAYES_STEPLAW_COMPILE_CACHE")
    os.environ["BAYES_STEPLAW_COMPILE_CACHE"] = "0"  # each fold's data are new: a miss anyway
    times: dict[str, list[float]] = {"bayes": [], "landscape": []}
    try:
        for name, model in (("bayes", OptimumModel()), ("landscape", LandscapeModel())):
            for i, s in enumerate(settings):
                train = sweeps[sweeps["setting"] != s]
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(
                        train, chains=args.chains, draws=args.draws, tune=args.tune, seed=i,
                        progressbar=False,
                    )  # fmt: skip
                times[name].append(time.perf_counter() - start)
                print(f"  {name} without reuse, fold {i + 1}: {times[name][-1]:.1f} s")
    finally:
        if previous is None:
            os.environ.pop("BAYES_STEPLAW_COMPILE_CACHE", None)
        else:
            os.environ["BAYES_STEPLAW_COMPILE_CACHE"] = previous
    return times


def predictive_check(sweeps: pd.DataFrame, seed: int = 0) -> None:
    """Coverage of 90% posterior-predictive intervals of every run's relative loss (in sample)."""
    from bayes_steplaw import load_default

    post = load_default("landscape")
    rng = np.random.default_rng(seed)
    print(f"\n3. Posterior-predictive check of the shipped landscape ({post.n_samples} draws)")
    for label, window in (("in the fit's window", None), ("all runs within 10%", 0.10)):
        pred = post.run_predictions(sweeps, window)
        runs = pred["design"].runs
        nu = post.flat("nu")[:, None]
        draws = pred["mu"] + pred["scale"] * rng.standard_t(nu, size=pred["mu"].shape)
        best = runs.groupby("setting")["loss"].transform("min").to_numpy()
        lo, hi = np.quantile(draws / best - 1.0, [0.05, 0.95], axis=0)
        obs = runs["rel_loss"].to_numpy()
        inside = (obs >= lo) & (obs <= hi)
        frame = pd.DataFrame({"family": runs["family"], "inside": inside})
        by = frame.groupby("family")["inside"].mean().to_dict()
        per_family = ", ".join(f"{k} {v:.1%}" for k, v in by.items())
        print(f"  {label}: {inside.mean():.1%} of {len(obs)} runs inside ({per_family})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-folds", type=int, default=2)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--ppc", action="store_true", help="Also the in-sample predictive check.")
    parser.add_argument("--report", type=Path, default=None, help="Write the tables as Markdown.")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sweeps = load_sweeps("all")
    n_set = sweeps["setting"].nunique()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(
        f"\n1. LOSO of bayes + landscape: {n_set} folds x 2 models, {args.chains} chains x "
        f"{args.draws} draws ({args.tune} tuning), compile reuse; load average {load()}"
    )
    start, cpu = time.perf_counter(), time.process_time()
    result = evaluate(
        sweeps, "loso", methods=["bayes", "landscape"], chains=args.chains, draws=args.draws,
        tune=args.tune, seed=args.seed, workers=args.workers,
    )  # fmt: skip
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu  # every thread of this process (nutpie samples in threads)
    fits = result.fits
    compiles = fits[fits["compile_seconds"] > 0]
    print(
        f"  wall {wall:.0f} s (load average after: {load()}); CPU time of this process "
        f"{cpu:.0f} s (workers' CPU not counted)"
    )
    for name, rows in fits.groupby("method"):
        done = compiles[compiles["method"] == name]
        print(
            f"  {name}: {len(rows)} folds, sampling median {rows['sample_seconds'].median():.1f} s"
            f", total {rows['sample_seconds'].sum():.0f} s; {len(done)} compile(s) "
            f"({', '.join(f'{c:.0f} s {h}' for c, h in zip(done['compile_seconds'], done['compiled']))})"  # noqa: E501
            f"; {int((~rows['converged'].astype(bool)).sum())} fold(s) missed the gate"
        )
    print()
    print(result.report())
    if args.report is not None:
        args.report.write_text(result.to_markdown() + "\n")

    if not args.skip_baseline:
        k = args.baseline_folds
        print(f"\n2. The same folds without compile reuse ({k} folds per model, extrapolated)")
        times = baseline(sweeps, k, args)
        total = sum(np.mean(t) * n_set for t in times.values())
        print(
            f"  mean per fold: bayes {np.mean(times['bayes']):.1f} s, landscape "
            f"{np.mean(times['landscape']):.1f} s; all {2 * n_set} folds without reuse: about "
            f"{total:.0f} s, against {wall:.0f} s with reuse (x{total / wall:.1f}); load "
            f"average {load()}"
        )
    if args.ppc:
        predictive_check(sweeps, args.seed)


if __name__ == "__main__":
    main()
