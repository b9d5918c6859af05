"""Speed of loss predictions: ``predict_loss`` on 10,000 settings beside ``predict`` on the same.

Target: ``predict_loss`` on 10,000 (N, D, lr, batch) points under 0.1 s. Like ``predict``, the
call builds per-draw coefficients and defers the (point x draw) work to the reductions, so the
table (median, 90% interval and P(diverge) of every point, one pass over the draws) is timed
separately, for both.

Run: ``python benchmarks/bench_loss.py [LOSS_POSTERIOR.nc]`` (default: the shipped
``models/loss.nc``; the optimum model's shipped posterior answers ``predict``).
"""

from __future__ import annotations

import sys

import numpy as np
from bench_predict import best_of

import bayes_steplaw as bsl
from bayes_steplaw.bayes.loss import LossPosterior


def main(argv: list[str]) -> None:
    post = LossPosterior.load(argv[0]) if argv else bsl.load_default("loss")
    optimum = bsl.load_default("optimum")
    rng = np.random.default_rng(0)
    n = 10_000
    N = np.exp(rng.uniform(np.log(1e8), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(1e9), np.log(1e12), n))
    lr = np.exp(rng.uniform(np.log(2.0**-12), np.log(2.0**-5.5), n))
    bs = 2048 * np.exp(rng.uniform(np.log(32), np.log(4096), n))
    print(f"loss posterior: {post.n_samples} draws; optimum posterior: {optimum.n_samples}")
    post.predict_loss(N[:10], D[:10], lr[:10], bs[:10], allow_unconverged=True)  # warm caches
    optimum.predict(N[:10], D[:10])

    call = best_of(lambda: post.predict_loss(N, D, lr, bs, allow_unconverged=True), repeat=5)
    table = best_of(
        lambda: post.predict_loss(N, D, lr, bs, allow_unconverged=True).to_dataframe(), repeat=2
    )
    p_call = best_of(lambda: optimum.predict(N, D), repeat=5)
    p_table = best_of(lambda: optimum.predict(N, D).to_dataframe(), repeat=2)
    print(f"{n} settings:")
    print(f"  predict_loss  {call * 1e3:7.1f} ms (target < 100 ms); with the table "
          f"(median, 90% interval, P(diverge)) {table * 1e3:7.0f} ms")  # fmt: skip
    print(f"  predict       {p_call * 1e3:7.1f} ms;                    with the table "
          f"(median, 90% HDI of lr and batch)  {p_table * 1e3:7.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
