"""Benchmark: the 1000-resample bootstrap-OLS refit on the released dense sweeps.

Times, in one run and on the same resample indices,

* ``BootstrapOLS.fit(dense, n_boot=1000)`` end to end (validation, plateau filter, resampling,
  both regressions for every resample) -- the target is under 50 ms;
* the vectorised solve alone (both regressions, all resamples, via ``bootstrap_ols``);
* a plain Python loop over the resamples calling ``numpy.linalg.lstsq`` twice each,

and prints the medians of several repeats and their ratios. Run from the repository root::

    BAYES_STEPLAW_DATA=../shared/data/steplaw python benchmarks/bench_bootstrap.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from bayes_steplaw import load_sweeps
from bayes_steplaw.bootstrap import BootstrapOLS, bootstrap_ols

TARGET_S = 0.050


def median_time(fn, repeats: int) -> tuple[float, float]:
    """Median and minimum wall time of ``fn()`` over ``repeats`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--loop-repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault(
        "BAYES_STEPLAW_DATA", str(Path(__file__).resolve().parents[2] / "shared/data/steplaw")
    )

    dense = load_sweeps("dense")
    model = BootstrapOLS.fit(dense, n_boot=args.n_boot, seed=0)
    kept, idx = model.kept, model.indices
    lnN = np.log(kept["N"].to_numpy(float))
    lnD = np.log(kept["D"].to_numpy(float))
    y_lr = np.log(kept["lr"].to_numpy(float))
    y_bs = np.log(kept["batch_tokens"].to_numpy(float))
    X_lr = np.column_stack([lnN, lnD])

    def vectorised():
        return np.concatenate(
            [bootstrap_ols(X_lr, y_lr, idx), bootstrap_ols(lnD, y_bs, idx)], axis=1
        )

    def loop():
        out = np.empty((idx.shape[0], 5))
        ones = np.ones(idx.shape[1])
        for k, rows in enumerate(idx):
            out[k, :3] = np.linalg.lstsq(
                np.column_stack([ones, lnN[rows], lnD[rows]]), y_lr[rows], rcond=None
            )[0]
            out[k, 3:] = np.linalg.lstsq(
                np.column_stack([ones, lnD[rows]]), y_bs[rows], rcond=None
            )[0]
        return out

    # the three compute the same coefficients
    ref = loop()
    np.testing.assert_allclose(vectorised(), ref, rtol=1e-10)
    np.testing.assert_allclose(model.coefficients.to_numpy(), ref, rtol=1e-10)

    fit_med, fit_min = median_time(
        lambda: BootstrapOLS.fit(dense, n_boot=args.n_boot, seed=0), args.repeats
    )
    vec_med, vec_min = median_time(vectorised, args.repeats)
    loop_med, loop_min = median_time(loop, args.loop_repeats)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"numpy {np.__version__}"
    )
    print(f"dense sweeps: {len(dense)} runs, {model.n_kept} kept, {args.n_boot} resamples")
    print(f"{'':38s}{'median':>10s}{'min':>10s}")
    rows = [
        ("BootstrapOLS.fit (end to end)", fit_med, fit_min),
        ("vectorised solve (both regressions)", vec_med, vec_min),
        ("per-resample lstsq loop", loop_med, loop_min),
    ]
    for name, med, mn in rows:
        print(f"{name:38s}{med * 1e3:8.2f}ms{mn * 1e3:8.2f}ms")
    print(f"loop / vectorised solve: {loop_med / vec_med:.1f}x")
    print(f"loop / fit end to end:   {loop_med / fit_med:.1f}x")
    verdict = "meets" if fit_med < TARGET_S else "MISSES"
    print(f"fit end to end {fit_med * 1e3:.1f} ms {verdict} the {TARGET_S * 1e3:.0f} ms target")


if __name__ == "__main__":
    main()
