"""Speed of posterior-predictive queries on the shipped posterior (4000 draws).

Targets: predict for one (N, D) under 2 ms; a 100 x 100 grid of (N, D) under 100 ms.
``predict`` builds per-sample law coefficients; medians and intervals reduce the
(point x sample) draws block-wise, so they are timed separately. The baseline in the same run
is the naive route: materialise every draw with xarray and reduce with numpy.

Run: ``python benchmarks/bench_predict.py``
"""

from __future__ import annotations

import time

import numpy as np

import bayes_steplaw as bsl


def best_of(func, repeat: int = 7) -> float:
    """Best wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    post = bsl.load_default()
    print(f"posterior: {post.n_samples} draws")
    post.predict(7e9, 1.4e12)  # warm the per-variable caches, as any second call would be

    one = best_of(lambda: post.predict(7e9, 1.4e12))
    one_full = best_of(lambda: post.predict(7e9, 1.4e12).to_dataframe())
    print(
        f"one (N, D): predict {one * 1e3:.2f} ms (target < 2 ms); "
        f"with median + 90% HDI + table {one_full * 1e3:.2f} ms"
    )

    N, D = np.meshgrid(np.logspace(8, 11, 100), np.logspace(9, 13, 100))
    grid = best_of(lambda: post.predict(N, D), repeat=5)
    med = best_of(lambda: post.predict(N, D).median(), repeat=3)
    eti = best_of(lambda: post.predict(N, D).interval(0.9, "eti"), repeat=3)
    hdi = best_of(lambda: post.predict(N, D).interval(0.9, "hdi"), repeat=3)
    naive = best_of(lambda: post.predict(N, D).draws["lr"].quantile(0.5, dim="sample"), repeat=3)
    print(
        f"100 x 100 grid: predict {grid * 1e3:.1f} ms (target < 100 ms); "
        f"median {med * 1e3:.0f} ms; 90% ETI {eti * 1e3:.0f} ms; 90% HDI {hdi * 1e3:.0f} ms"
    )
    print(
        f"  baseline (all draws through xarray, median of lr only): {naive * 1e3:.0f} ms; "
        f"block-wise median of lr and batch is {naive / med:.1f}x faster"
    )


if __name__ == "__main__":
    main()
