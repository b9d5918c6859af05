"""Planned calibration runs against one small grid sweep at the largest affordable size.

For a target (N, D) of a group and a budget of K small runs, :func:`bayes_steplaw.
plan_calibration` chooses the runs greedily by preposterior analysis (draws reweighted by the
simulated outcomes; the Bayes decision at the target scored under the truth) and scores, on
fresh simulations, three things per simulated truth: the expected excess loss at the target of
the Bayes decision with no runs (``before``), after the plan (``after``) and after the naive
plan (``naive``: K runs of the largest candidate setting nearest its predicted optimum, on the
same √2 lr and 2x batch grid). The table prints, per scenario and seed, the three means, the
paired difference plan − naive with its bootstrap interval, the improvement before − plan and
the weights' ESS; then the difference pooled over the seeds (all their truths, paired).

Scenarios (``--scenarios``):

* ``pooled``: the loss model fitted as the README's own-sweep flow fits (every released run
  pooled with a small simulated user group, ``simulate_sweeps``: a one-at-a-time sweep,
  Marin-like, at two settings; its truth is known), at default settings (4 x 1,800 draws,
  about 6 minutes; ``--posterior FILE`` reuses a fit, written there the first time; a fit
  that misses the convergence gate is refused). The group ``user:mine``, target 7e9 x
  1.4e11: its lab's exponents and offsets are what the runs teach. This is the case the
  planner is for.
* ``new``: the shipped posterior, group ``new`` (a never-seen family), same target: the most
  there is to learn, and the weights collapse (ESS of a few draws), so the comparison is
  noisy and the reweighting understates both plans.
* ``moe``: the shipped posterior, group ``moe`` (a well-known group): little to learn.

Run: ``BAYES_STEPLAW_DATA=... python benchmarks/bench_calibration.py [--scenarios pooled,new]
[--seeds 3] [--budget 6] [--draws 1000] [--truths 1024] [--posterior pooled.nc]
[--fit-seed 1]``
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_steplaw as bsl

TARGET = (7e9, 1.4e11)
USER_SETTINGS = pd.DataFrame({"family": "mine", "variant": "mine", "N": [1.5e8, 4e8],
                              "D": [3e9, 8e9]})  # fmt: skip
USER_LAW = bsl.TrueLaw(offsets_lr={"mine": 0.3}, offsets_bs={"mine": -0.2})


def pooled_posterior(path: Path | None, seed: int = 1):
    """The loss model on every released run and a simulated user group, at default settings
    (cached at ``path``)."""
    if path is not None and path.is_file():
        return bsl.load(path)
    mine, _ = bsl.simulate_sweeps(USER_SETTINGS, USER_LAW, seed=seed, seq_len=4096,
                                  design="one-at-a-time")  # fmt: skip
    start = time.perf_counter()
    post = bsl.fit(mine, with_released=True, seed=seed, progressbar=False)
    print(f"fitted the pooled posterior in {time.perf_counter() - start:.0f} s: {post}")
    if path is not None:
        post.save(path)
    return post


def paired(values: np.ndarray, prob: float = 0.9, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (4000, len(values)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - prob) / 2, (1 + prob) / 2])
    return float(values.mean()), float(lo), float(hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="pooled,new,moe")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=6)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--truths", type=int, default=1024)
    parser.add_argument("--search-truths", type=int, default=128)
    parser.add_argument("--posterior", type=Path, default=None, help="cache of the pooled fit")
    parser.add_argument("--fit-seed", type=int, default=1, help="seed of the user's sweep and fit")
    args = parser.parse_args()
    rows, pooled = [], {}
    for scenario in args.scenarios.split(","):
        if scenario == "pooled":
            post, group = pooled_posterior(args.posterior, args.fit_seed), "user:mine"
        else:
            post, group = bsl.load_default("loss"), scenario
        for seed in range(args.seeds):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", bsl.CalibrationWarning)
                plan = bsl.plan_calibration(
                    *TARGET, args.budget, group=group, posterior=post, draws=args.draws,
                    truths=args.truths, search_truths=args.search_truths, seed=seed,
                )  # fmt: skip
            seconds = time.perf_counter() - start
            t = plan.per_truth
            pooled.setdefault(scenario, []).append(t["after"] - t["naive"])
            rows.append({
                "scenario": scenario, "seed": seed, "draws": plan.n_draws,
                "before": plan.expected_excess_before, "after": plan.expected_excess_after,
                "naive": plan.expected_excess_naive, "plan-naive": plan.difference[0],
                "lower": plan.difference[1], "upper": plan.difference[2],
                "before-plan": plan.improvement[0], "ess_median": plan.ess["median"],
                "settings": plan.runs[["N", "D"]].drop_duplicates().shape[0], "s": seconds,
            })  # fmt: skip
            print(f"{scenario} seed {seed}: {seconds:.0f} s; plan runs:")
            print(plan.runs.to_string(index=False))
    table = pd.DataFrame(rows)
    pct = {c: "{:.4%}".format for c in ("before", "after", "naive", "plan-naive", "lower",
                                         "upper", "before-plan")}  # fmt: skip
    print(f"\ntarget N={TARGET[0]:.3g}, D={TARGET[1]:.3g}; budget {args.budget}; {args.truths} "
          f"truths per score (90% paired bootstrap intervals)")  # fmt: skip
    print(table.to_string(index=False, formatters={**pct, "ess_median": "{:.0f}".format,
                                                   "s": "{:.0f}".format}))  # fmt: skip
    print("\npooled over seeds (plan - naive, all truths paired):")
    for scenario, diffs in pooled.items():
        mean, lo, hi = paired(np.concatenate([d.to_numpy() for d in diffs]))
        print(f"  {scenario}: {mean:+.4%} (90% interval {lo:+.4%} to {hi:+.4%})")


if __name__ == "__main__":
    main()
