"""Benchmark: cold start of ``bayes-steplaw predict 7e9 1.4e12`` against importing the package.

What it measures: the wall time of one prediction from the command line in a fresh process,
the way a user runs it: ``bayes-steplaw predict 7e9 1.4e12`` answers from the shipped loss
posterior (``models/loss.nc``), which it loads, and prints the optimum with its interval. The
baseline, measured in the same run, is ``python -c "import bayes_steplaw"``: the cost of the
public API's import alone. Goal: the cold prediction at most 1.5x the import (median of
``--repeats`` fresh processes each, after one warm-up that fills the OS page cache; the
commands take turns, so a shared machine's changing load falls on all alike).

Also printed, to show where the time goes: ``python -c pass`` (interpreter start-up), the
import of the CLI module, and ``--method paper`` (the published bootstrap ensemble, no
posterior). Run from the repository root::

    BAYES_STEPLAW_DATA=../shared/data/steplaw python benchmarks/bench_cold_start.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_RATIO = 1.5


def script() -> list[str]:
    """The installed ``bayes-steplaw`` console script (next to this interpreter if present)."""
    local = Path(sys.executable).with_name("bayes-steplaw")
    found = str(local) if local.exists() else shutil.which("bayes-steplaw")
    if found is None:
        sys.exit("the bayes-steplaw script is not installed (pip install -e .)")
    return [found]


def timed(cases: dict[str, list[str]], repeats: int, env: dict[str, str]) -> dict:
    """Median and minimum wall time of each command over ``repeats`` fresh processes.

    One warm-up each, then the commands take turns (round robin), so that a change in the
    machine's load during the run falls on all of them alike.
    """
    for cmd in cases.values():
        subprocess.run(cmd, check=True, capture_output=True, env=env)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, cmd in cases.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="fresh processes per command")
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault(
        "BAYES_STEPLAW_DATA", str(Path(__file__).resolve().parents[2] / "shared/data/steplaw")
    )
    py = sys.executable
    paper = [*script(), "predict", "7e9", "1.4e12", "--method", "paper"]
    predict = [*script(), "predict", "7e9", "1.4e12"]
    res = subprocess.run(predict, capture_output=True, text=True, env=env)
    if res.returncode != 0 and "--allow-unconverged" in res.stderr:
        # the shipped posterior fails its convergence gate: say so, and time the same work
        # past the gate rather than the refusal
        print(f"NOTE: {res.stderr.strip()}\n  -> timed with --allow-unconverged\n")
        predict.append("--allow-unconverged")
        res = subprocess.run(predict, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"{' '.join(predict)} failed ({res.returncode}): {res.stderr.strip()}")
    print(res.stdout.rstrip())
    print()
    baseline = "python -c 'import bayes_steplaw' (baseline)"
    target = "bayes-steplaw predict 7e9 1.4e12"
    cases = [
        ("python -c pass", [py, "-c", "pass"]),
        (baseline, [py, "-c", "import bayes_steplaw"]),
        ("python -c 'import bayes_steplaw.cli'", [py, "-c", "import bayes_steplaw.cli"]),
        (target, predict),
        ("bayes-steplaw predict 7e9 1.4e12 --method paper", paper),
    ]
    results = timed(dict(cases), args.repeats, env)
    base = results[baseline][0]
    print(f"{args.repeats} fresh processes each; load average {os.getloadavg()[0]:.2f}")
    print(f"{'':50s}{'median':>9s}{'min':>9s}{'/ baseline':>12s}")
    for name, (med, mn) in results.items():
        print(f"{name:50s}{med:8.3f}s{mn:8.3f}s{med / base:11.2f}x")
    med, fastest = results[target]
    ratio = med / base
    verdict = "meets" if ratio <= GOAL_RATIO else "MISSES"
    print(
        f"cold predict {med:.3f} s = {ratio:.2f}x the import ({base:.3f} s), medians: {verdict} "
        f"the goal of <= {GOAL_RATIO}x (minimums: {fastest / results[baseline][1]:.2f}x)"
    )


if __name__ == "__main__":
    main()
