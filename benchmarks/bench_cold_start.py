"""Benchmark: cold start of ``bayes-steplaw predict 7e9 1.4e12 --method paper``.

Each command runs as a fresh subprocess, several times; the script prints the median and
minimum wall times, with ``python -c pass`` (interpreter start-up) as the baseline and the
import of the CLI module and of pandas alone to show where the time goes. Target: the paper
prediction under 1 s. Run from the repository root::

    BAYES_STEPLAW_DATA=../shared/data/steplaw python benchmarks/bench_cold_start.py
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

TARGET_S = 1.0


def script() -> list[str]:
    """The installed ``bayes-steplaw`` console script (next to this interpreter if present)."""
    local = Path(sys.executable).with_name("bayes-steplaw")
    found = str(local) if local.exists() else shutil.which("bayes-steplaw")
    if found is None:
        sys.exit("the bayes-steplaw script is not installed (pip install -e .)")
    return [found]


def timed(cmd: list[str], repeats: int, env: dict[str, str]) -> tuple[float, float]:
    """Median and minimum wall time of running ``cmd`` ``repeats`` times (after one warm-up)."""
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault(
        "BAYES_STEPLAW_DATA", str(Path(__file__).resolve().parents[2] / "shared/data/steplaw")
    )
    py = sys.executable
    predict = [*script(), "predict", "7e9", "1.4e12", "--method", "paper"]
    out = subprocess.run(predict, check=True, capture_output=True, text=True, env=env).stdout
    print(out.rstrip())
    print()
    cases = [
        ("python -c pass (baseline)", [py, "-c", "pass"]),
        ("python -c 'import pandas'", [py, "-c", "import pandas"]),
        ("python -c 'import bayes_steplaw.cli'", [py, "-c", "import bayes_steplaw.cli"]),
        ("bayes-steplaw predict ... --method paper", predict),
        ("bayes-steplaw predict ... --method paper --raw", [*predict, "--raw"]),
    ]
    results = {name: timed(cmd, args.repeats, env) for name, cmd in cases}
    base = results[cases[0][0]][0]
    print(f"{'':48s}{'median':>9s}{'min':>9s}{'- baseline':>12s}")
    for name, (med, mn) in results.items():
        print(f"{name:48s}{med:8.3f}s{mn:8.3f}s{med - base:11.3f}s")
    med = results[cases[3][0]][0]
    share = results[cases[1][0]][0] - base
    print(f"pandas import alone: {share:.3f}s of the {med - base:.3f}s above baseline")
    verdict = "meets" if med < TARGET_S else "MISSES"
    print(f"predict --method paper: {med:.3f} s median {verdict} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
