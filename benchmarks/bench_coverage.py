"""Coverage study: do the loss model's 90% credible intervals hold the truth 90% of the time?

What it measures: frequentist coverage of the loss model's intervals (the default posterior,
:class:`bayes_steplaw.LossModel` through :func:`bayes_steplaw.fit`). Each repeat simulates a
sweep from a known truth (:func:`bayes_steplaw.simulate_sweeps`: fixed exponents, group
offsets and loss surface, fresh setting effects, designs' offsets, run noise and divergences),
fits it by NUTS and checks whether each quantity's central interval contains the truth: the
exponents α, β, γ; the law's optimum lr and batch at a point inside the data
(``predict(kind="law")``); the law's best loss L* there (``best_loss(kind="best-law")``); the
MoE variants' offset contrasts (``compare_offsets``). The baseline, on the same sweeps, is the
paper's bootstrap-OLS recipe (percentile intervals of α, β, γ over 1000 run resamples): the
coverage of both and the ratio of their mean widths are printed. Goal: every Bayesian quantity
within about two binomial standard errors of the nominal 0.90.
Repeats run in parallel processes; each is a NUTS fit (about a minute or more on two cores).

Run: ``python benchmarks/bench_coverage.py [--repeats 40] [--draws 500] [--workers 2]``
"""

from __future__ import annotations

import argparse
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

import bayes_steplaw as bsl
from bayes_steplaw.datasets.simulate import loss_floor

SETTINGS = pd.DataFrame(
    [("dense", "dense", n, d) for n in (2e8, 6e8, 1.8e9) for d in (4e9, 2e10, 1e11)]
    + [("moe", v, 2e9, d) for v in ("a", "b") for d in (4e9, 2e10)],
    columns=["family", "variant", "N", "D"],
)
LAW = bsl.TrueLaw(
    offsets_lr={"dense": -0.15, "moe": 0.15, "moe/a": 0.1, "moe/b": -0.1},
    offsets_bs={"dense": 0.1, "moe": -0.1, "moe/a": -0.2, "moe/b": 0.2},
)
POINT = (7e8, 2e10)  # inside the simulated range


def truth() -> dict[str, float]:
    """True values of the checked quantities."""
    lr, bs = LAW.optimum(*POINT, "dense")
    return {
        "alpha": LAW.alpha,
        "beta": LAW.beta,
        "gamma": LAW.gamma,
        "dense lr at (7e8, 2e10)": float(lr),
        "dense batch at (7e8, 2e10)": float(bs),
        "dense L* law at (7e8, 2e10)": float(loss_floor(*POINT)),
        "lr offset moe/b - moe/a": LAW.offsets_lr["moe/b"] - LAW.offsets_lr["moe/a"],
        "batch offset moe/b - moe/a": LAW.offsets_bs["moe/b"] - LAW.offsets_bs["moe/a"],
    }


def one_repeat(seed: int, draws: int, prob: float = 0.9) -> dict[str, bool]:
    """Simulate, fit, and report for each quantity whether its interval holds the truth."""
    sweeps, _ = bsl.simulate_sweeps(SETTINGS, LAW, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = bsl.fit(sweeps, "loss", chains=2, draws=draws, tune=draws, seed=seed,
                       progressbar=False)  # fmt: skip
    summary = post.summary(prob)
    law = post.predict(*POINT, kind="law", allow_unconverged=True).to_dataframe(prob).iloc[0]
    star = post.best_loss(*POINT, kind="best-law", allow_unconverged=True)
    star = star.to_dataframe(prob).iloc[0]
    contrast = post.compare_offsets("moe/b", "moe/a", prob=prob)
    bounds = {
        "alpha": summary.loc["alpha", ["lower", "upper"]],
        "beta": summary.loc["beta", ["lower", "upper"]],
        "gamma": summary.loc["gamma", ["lower", "upper"]],
        "dense lr at (7e8, 2e10)": law[["lr_lower", "lr_upper"]],
        "dense batch at (7e8, 2e10)": law[["batch_tokens_lower", "batch_tokens_upper"]],
        "dense L* law at (7e8, 2e10)": star[["loss_star_lower", "loss_star_upper"]],
        "lr offset moe/b - moe/a": contrast.loc["lr", ["lower", "upper"]],
        "batch offset moe/b - moe/a": contrast.loc["batch_tokens", ["lower", "upper"]],
    }
    true = truth()
    hits = {k: bool(v.iloc[0] < true[k] < v.iloc[1]) for k, v in bounds.items()}
    # the paper's recipe on the same sweep: percentile intervals over 1000 run resamples
    ols = bsl.BootstrapOLS.fit(sweeps, seed=seed).coefficients
    q = [(1 - prob) / 2, (1 + prob) / 2]
    for name, col in (("alpha", "lr_coefN"), ("beta", "lr_coefD"), ("gamma", "bs_coefD")):
        lo, hi = np.nanquantile(ols[col], q)
        hits[f"bootstrap-OLS {name}"] = bool(lo < true[name] < hi)
        hits[f"width bayes {name}"] = float(bounds[name].iloc[1] - bounds[name].iloc[0])
        hits[f"width bootstrap-OLS {name}"] = float(hi - lo)
    hits["divergences"] = post.diagnostics["divergences"]
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(one_repeat, range(args.repeats), [args.draws] * args.repeats))
    table = pd.DataFrame(results)
    divergences = table.pop("divergences")
    widths = table[[c for c in table if c.startswith("width ")]].mean()
    table = table.drop(columns=widths.index)
    rate = table.mean()
    se = np.sqrt(0.9 * 0.1 / len(table))
    print(
        f"{len(table)} repeats, 2 chains x {args.draws} draws each, "
        f"{time.perf_counter() - start:.0f} s; nominal 0.90, binomial s.e. {se:.3f}"
    )
    for name, value in rate.items():
        print(f"  {name:<30} coverage {value:.3f}")
    bayes = table[[c for c in table if not c.startswith("bootstrap")]]
    print(f"  all Bayesian quantities pooled coverage {bayes.to_numpy().mean():.3f}")
    for name in ("alpha", "beta", "gamma"):
        b, o = widths[f"width bayes {name}"], widths[f"width bootstrap-OLS {name}"]
        print(f"  {name}: coverage loss model {rate[name]:.3f}, bootstrap-OLS "
              f"{rate[f'bootstrap-OLS {name}']:.3f}; mean 90% width loss model {b:.4f}, "
              f"bootstrap-OLS {o:.4f} (baseline / model {o / b:.2f}x)")  # fmt: skip
    print(f"  repeats with any divergence: {(divergences > 0).sum()}")


if __name__ == "__main__":
    main()
