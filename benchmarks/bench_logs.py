"""Benchmark ``bayes-steplaw logs quick-check`` on a synthetic sweep of training logs.

Writes ``--runs`` Megatron-style logs of ``--lines`` lines each (one line in ``--noise-every``
is not a loss line) into a temporary folder, then times, in the same run:

1. ``bayes-steplaw logs quick-check BASE .`` end to end (a fresh interpreter: start-up, imports,
   search, parallel backward reading, smoothing, output);
2. the same API call in this process with one worker (backward reading alone);
3. baselines that read each file front to back in one process, keep the last ``--max-cnt``
   loss lines and smooth them the same way: (a) the whole file through the same block parser,
   (b) line by line with a per-line regular expression (the straightforward tool).

It checks that all of them give the same smoothed losses and prints runs per second and the
speed-up of (1) over each baseline. The files are freshly written, so every timing reads them
from the page cache when they fit in memory; the figures measure parsing, not the disk.

Then (4) a crash's log: loss lines, one line of ``--long-line-mb`` MB of NUL bytes (a sparse
hole, so no disk is used), more loss lines, read by ``read_loss_curve`` in a fresh process
at a quarter, half and the full size. It prints time and peak memory of each: reading is
linear in the bytes read (the seconds per MB stay flat) and the memory does not grow with the
line (about a block and the 1 MiB line limit), where the reader before the fix took 23 s and
0.9 GB for 256 MB.

    python benchmarks/bench_logs.py                       # 1,000 logs x 50,000 lines
    python benchmarks/bench_logs.py --runs 100 --lines 5000
    python benchmarks/bench_logs.py --runs 0 --long-line-mb 1024   # only the long line
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_steplaw import logs

_NOISE = (
    "{ts} | INFO     | megatron.core.utils:report_memory:88 - [Rank 0] memory (MB) | "
    "allocated: 20456.12 | max allocated: 30120.77 | reserved: 32768.00\n"
)
_LINE = (
    "{ts} | INFO     | megatron.core.trainerv2:training_log:412 - iter {it:>8d}/{total:>8d} | "
    "consumed samples: {samples:>10d} | elapsed time per iteration (ms): 402.1 | "
    "learning rate: 2.762E-03 | global batch size:   736 | lm loss: {loss:.6E} | "
    "loss scale: 1.0 | grad norm: 0.512 | number of skipped iterations:   0 | "
    "number of nan iterations:   0 |\n"
)


def write_one(args: tuple[Path, int, int, int]) -> int:
    """Write one log; returns its size in bytes."""
    folder, seed, lines, noise_every = args
    rng = np.random.default_rng(seed)
    is_loss = (np.arange(lines) % noise_every) != noise_every - 1
    total = int(is_loss.sum())
    its = np.cumsum(is_loss)
    loss = 2.2 + 4.0 / np.sqrt(its + 1.0) + 0.02 * rng.standard_normal(lines)
    ts = "2024-06-18 10:22:33.123"
    text = "".join(
        _LINE.format(ts=ts, it=int(i), total=total, samples=int(i) * 736, loss=v)
        if keep
        else _NOISE.format(ts=ts)
        for keep, i, v in zip(is_loss.tolist(), its.tolist(), loss.tolist(), strict=True)
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_log_0.txt").write_text(text)
    return len(text)


def generate(base: Path, runs: int, lines: int, noise_every: int, workers: int) -> int:
    jobs = [
        (base / f"sweep_{i // 100:02d}" / f"run_{i:05d}", i, lines, noise_every)
        for i in range(runs)
    ]
    with ProcessPoolExecutor(workers) as pool:
        return sum(pool.map(write_one, jobs, chunksize=max(1, runs // (8 * workers))))


# the baseline's own, line-oriented parse (str regex, one line at a time)
_BASELINE_RX = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| \w+ *\| [\w.]+:\w+:\d+ - "
    r"iter +(\d+) */ *\d+ *\|.*?\blm loss(?: only)?: *([^\s|]+)"
)


def baseline_blocks(base: Path, max_cnt: int) -> dict[str, float]:
    """Front-to-back reading of every log in one process, with the package's parser."""
    out = {}
    for path in sorted(base.rglob("train_log_*.txt")):
        iters, _, losses, _ = logs.parse_loss_lines(path.read_bytes())
        out[path.parent.name] = logs.smooth_final_loss(iters[-max_cnt:], losses[-max_cnt:]).loss
    return out


def baseline_lines(base: Path, max_cnt: int) -> dict[str, float]:
    """Front-to-back, line-by-line reading of every log in one process."""
    out = {}
    for path in sorted(base.rglob("train_log_*.txt")):
        tail: deque[tuple[int, float]] = deque(maxlen=max_cnt)
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = _BASELINE_RX.search(line)
                if m:
                    tail.append((int(m.group(1)), float(m.group(2))))
        iters, losses = (np.array(c) for c in zip(*tail, strict=True))
        out[path.parent.name] = logs.smooth_final_loss(iters, losses).loss
    return out


def run_cli(base: Path, max_cnt: int, workers: int | None) -> tuple[float, pd.DataFrame]:
    cmd = [
        sys.executable,
        "-c",
        "from bayes_steplaw.cli import main; main()",
        "logs",
        "quick-check",
        str(base),
        ".",
        "--max-cnt",
        str(max_cnt),
        "--no-progress",
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    return elapsed, pd.read_csv(io.StringIO(proc.stdout), sep="\t")


_LONG_LINE_CHILD = r"""
import resource, sys, time, tracemalloc
from bayes_steplaw import logs

path = sys.argv[1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
t0 = time.perf_counter()
curve = logs.read_loss_curve(path)
seconds = time.perf_counter() - t0
_, peak = tracemalloc.get_traced_memory()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert len(curve.iters) == 2000 and curve.skipped_lines == 1, (len(curve.iters), curve)
print(seconds, peak, (after - before) * 1024)
"""


def write_long_line_log(path: Path, gap_bytes: int) -> None:
    """1,000 loss lines, one line of ``gap_bytes`` NUL bytes (a sparse hole), 1,000 more."""
    ts = "2024-06-18 10:22:33.123"

    def lines(first: int) -> str:
        return "".join(
            _LINE.format(ts=ts, it=i, total=2000, samples=i * 736, loss=2.5 + 1.0 / i)
            for i in range(first, first + 1000)
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(lines(1).encode())
        f.seek(gap_bytes, os.SEEK_CUR)
        f.write(b"\n" + lines(1001).encode())


def bench_long_line(root: Path, size_mb: int) -> None:
    """Time and peak memory of reading a log with one ``size_mb`` MB line (see the module)."""
    print("\na log with one long line (a crash's NUL-filled gap), read in a fresh process:")
    print(
        f"{'line MB':>8s} {'seconds':>8s} {'s per GB':>9s} {'traced peak MB':>15s} "
        f"{'peak RSS +MB':>13s}"
    )
    for mb in sorted({max(1, size_mb // 4), max(1, size_mb // 2), size_mb}):
        path = root / f"long_{mb}" / "train_log_0.txt"
        write_long_line_log(path, mb * 1_000_000)
        proc = subprocess.run(
            [sys.executable, "-c", _LONG_LINE_CHILD, str(path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        seconds, peak, rss = (float(v) for v in proc.stdout.split())
        print(
            f"{mb:8d} {seconds:8.3f} {seconds / mb * 1000:9.3f} {peak / 1e6:15.1f} "
            f"{rss / 1e6:13.1f}"
        )
        path.unlink()
    print(
        "expected: linear time (seconds per GB flat across sizes) and memory that does not grow "
        "with the line (a 1 MiB block and the 1 MiB line limit); before the fix: 23 s, 0.9 GB "
        "at 256 MB, quadratic"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="number of logs")
    parser.add_argument("--lines", type=int, default=50_000, help="lines per log")
    parser.add_argument("--noise-every", type=int, default=10, help="one line in k is noise")
    parser.add_argument("--max-cnt", type=int, default=logs.DEFAULT_MAX_CNT)
    parser.add_argument("--workers", type=int, default=None, help="quick-check workers")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated logs")
    parser.add_argument(
        "--long-line-mb", type=int, default=256, help="the long-line case (0: not measured)"
    )
    args = parser.parse_args(argv)

    cpus = os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="bench_logs_", dir=args.dir))
    base = root / "base"
    try:
        if args.runs > 0:
            bench_sweep(base, args, cpus)
        if args.long_line_mb > 0:
            bench_long_line(root, args.long_line_mb)
    finally:
        if args.keep:
            print(f"logs kept in {base}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def bench_sweep(base: Path, args: argparse.Namespace, cpus: int) -> None:
    """The sweep of logs: the CLI, the API and the two baselines (see the module)."""
    t0 = time.perf_counter()
    size = generate(base, args.runs, args.lines, args.noise_every, cpus)
    print(
        f"generated {args.runs} logs x {args.lines} lines = {size / 1e9:.2f} GB "
        f"in {time.perf_counter() - t0:.1f} s ({cpus} CPUs)"
    )

    t_cli, table = run_cli(base, args.max_cnt, args.workers)
    t0 = time.perf_counter()
    serial = logs.quick_check(base, ".", max_cnt=args.max_cnt, workers=1, progress=False)
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    blocks = baseline_blocks(base, args.max_cnt)
    t_blocks = time.perf_counter() - t0
    t0 = time.perf_counter()
    lines = baseline_lines(base, args.max_cnt)
    t_lines = time.perf_counter() - t0

    got = dict(zip(table["exp_name"], table["smooth_loss"], strict=True))
    same = dict(zip(serial["exp_name"], serial["smooth_loss"], strict=True))
    assert len(got) == args.runs and (serial["status"] == "ok").all()
    for name, value in lines.items():
        for other in (got, same, blocks):
            assert abs(other[name] - value) <= 1e-12 * abs(value), name

    print(f"results agree for all {args.runs} runs (max_cnt {args.max_cnt})")
    print(f"{'method':58s} {'seconds':>8s} {'runs/s':>8s} {'MB/s':>8s}")
    for label, t in (
        (f"quick-check CLI end to end ({args.workers or cpus} workers, backward)", t_cli),
        ("quick_check API, 1 process, backward reading", t_serial),
        ("baseline a: front to back, block parser, 1 process", t_blocks),
        ("baseline b: front to back, line by line, 1 process", t_lines),
    ):
        print(f"{label:58s} {t:8.2f} {args.runs / t:8.1f} {size / 1e6 / t:8.0f}")
    print(
        f"speed-up of quick-check over baseline a: {t_blocks / t_cli:.2f}x, "
        f"over baseline b: {t_lines / t_cli:.2f}x"
    )


if __name__ == "__main__":
    main()
