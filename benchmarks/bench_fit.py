"""Fit wall time and ESS per second: nutpie against PyMC's own NUTS, in one run.

Target: a full fit (4 chains x 1000 draws, 1000 tuning) on the released dense + MoE data under
15 s with nutpie on a 2-core machine. Wall time includes model compilation (numba for nutpie,
C for PyMC); ESS per second divides the worst bulk ESS of the reported parameters by it.

Run: ``python benchmarks/bench_fit.py [--draws 1000] [--chains 4]``
"""

from __future__ import annotations

import argparse
import time
import warnings

import bayes_steplaw as bsl


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args()
    sweeps = bsl.load_sweeps("all")
    rows = [one_fit(sweeps, s, args.chains, args.draws) for s in ("nutpie", "pymc")]
    for r in rows:
        print(
            f"{r['sampler']:>7}: wall {r['wall_s']:6.1f} s, min bulk ESS {r['min_ess_bulk']:6.0f}, "
            f"ESS/s {r['ess_per_s']:6.1f}, divergences {r['divergences']}, "
            f"max R-hat {r['max_r_hat']:.4f}, converged {r['converged']}"
        )
    nut, pym = rows
    print(
        f"nutpie vs pymc: {pym['wall_s'] / nut['wall_s']:.2f}x faster wall time, "
        f"{nut['ess_per_s'] / pym['ess_per_s']:.2f}x ESS per second "
        f"(target: nutpie full fit < 15 s: {'met' if nut['wall_s'] < 15 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
