"""How often the convergence gate's R-hat misses by chance, at a given effective sample size.

The gate (:func:`bayes_steplaw.bayes.sampling.convergence_report`) asks R-hat <= 1.01 of every
quantity. Chains that mix exactly as they should still give an R-hat above 1.01 now and then,
the more often the fewer effective draws they hold. This script draws 4 chains of AR(1) noise
(stationary, all from one distribution: nothing for R-hat to find) of a given length and
autocorrelation, puts them through the gate's own report, and prints each quantity's median
bulk ESS, the share of quantities whose R-hat exceeds the gate's bound, and the chance that a
fit with ten such quantities misses the gate.

It set the pooled fits' draws (``LossModel.pooled_sampler_defaults``): at 4 x 1,200 draws
the user lab's optima had bulk ESS 540-900, where about one quantity in twelve misses by
chance (ESS 695: 8%, and six fits in ten with ten such quantities); at 4 x 1,800 draws (ESS
1,036) it is 0.7%.

Run: ``python benchmarks/bench_rhat_gate.py [--quantities 400] [--seed 1]``
"""

from __future__ import annotations

import argparse

import arviz as az
import numpy as np

from bayes_steplaw.bayes.sampling import RHAT_MAX, convergence_report

CASES = ((1200, 0.75), (1200, 0.65), (1200, 0.5), (1800, 0.75), (2400, 0.75))
"""(draws per chain, lag-1 autocorrelation) of each row."""


def ar1_chains(rng: np.random.Generator, n: int, draws: int, rho: float) -> np.ndarray:
    """``n`` quantities x 4 chains x ``draws`` of stationary AR(1) noise (unit variance)."""
    x = np.empty((n, 4, draws))
    x[..., 0] = rng.standard_normal((n, 4))
    noise = np.sqrt(1 - rho**2) * rng.standard_normal((n, 4, draws))
    for t in range(1, draws):
        x[..., t] = rho * x[..., t - 1] + noise[..., t]
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quantities", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"draws  rho   bulk ESS  P(R-hat > {RHAT_MAX})  P(miss | 10 quantities)")
    for draws, rho in CASES:
        chains = ar1_chains(rng, args.quantities, draws, rho)
        idata = az.from_dict(
            posterior={f"q{i}": chains[i] for i in range(args.quantities)},
            sample_stats={"diverging": np.zeros((4, draws), bool)},
        )
        per_var = convergence_report(idata)["variables"].values()
        r_hat = np.array([v["r_hat"] for v in per_var])
        ess = np.median([v["ess_bulk"] for v in per_var])
        share = float(np.mean(r_hat > RHAT_MAX))
        print(f"{draws:5d}  {rho:.2f}  {ess:8.0f}  {share:15.3f}  {1 - (1 - share) ** 10:23.2f}")


if __name__ == "__main__":
    main()
