"""Posterior predictive check of the sweeps' best runs: does the run noise of the loss model
make a sweep's best run as lucky, and land it as far from the optimum, as the real sweeps do?

What it measures: a loss posterior (default: the shipped one) against the sweep table it was
fitted on, in sample. For each draw, every run that did not diverge is drawn again from the
posterior predictive (its expected loss plus the model's run noise, independent between
runs), and each setting's best run is found again. Per family, for the real sweeps and the
replicated ones:

* **luck**: the expected loss at the best run minus the loss it reports, in ‰ of L*
  (how far below the surface the winner's noise put it);
* the best run's **ln lr** and **ln batch** minus the setting's optimum (mean and sd over
  settings): where a sweep's best run falls around the optimum, which is what
  ``predict(kind="sweep")`` and ``plateau_probability(reference="sweep")`` simulate;
* the **lag-1 correlation** of the residuals (expected minus reported loss) of runs one lr
  step apart at the same setting and batch, near the optimum (excess below 1%): 0 for the
  model's independent noise; above 0 where part of the "noise" is a smooth departure of the
  real surface from the model's.

The replicated figures are the mean over draws and a 90% interval; ``p`` is the share of
draws whose figure is at least the real one (near 0 or 1: the model fails the check).

Run: ``python benchmarks/bench_sweep_check.py [--posterior FILE] [--draws 200]``
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd

import bayes_steplaw as bsl
from bayes_steplaw.api import shipped
from bayes_steplaw.bayes.answers import SWEEP_GRID
from bayes_steplaw.bayes.loss import NOISE_PARAMETERS
from bayes_steplaw.bayes.surface import run_noise

LR_STEP = math.log(SWEEP_GRID[0])  # the released grids' lr step
NEAR = 0.01  # excess loss below which a run counts as near the optimum


def winners(reported: np.ndarray, setting: np.ndarray) -> np.ndarray:
    """Index of the lowest reported loss of each setting (settings numbered 0..S-1)."""
    order = np.lexsort((reported, setting))
    first = np.r_[True, setting[order][1:] != setting[order][:-1]]
    return order[first]


def lag_pairs(runs: pd.DataFrame, near: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) of runs near the optimum one lr step apart at one setting and batch."""
    frame = runs.assign(i=np.arange(len(runs)))[near]
    frame = frame.assign(step=np.round(np.log(frame["lr"]) / LR_STEP).astype(int))
    key = frame.set_index(["setting", "batch_tokens", "step"])["i"]
    up = key.copy()
    up.index = up.index.set_levels(up.index.levels[2] - 1, level=2)  # (s, b, k) -> run at k+1
    both = pd.concat([key.rename("i"), up.rename("j")], axis=1, join="inner")
    return both["i"].to_numpy(), both["j"].to_numpy()


def figures(residual, loss_star, m_lr, m_bs, runs: dict, best, pairs) -> dict:
    """The check's figures per family for one set of reported losses; ``runs`` holds each
    run's ``setting``, ``family``, ``log_lr`` and ``log_bs``."""
    out = {}
    for fam in np.unique(runs["family"]):
        b = best[runs["family"][best] == fam]
        s = runs["setting"][b]
        i, j = (p[runs["family"][pairs[0]] == fam] for p in pairs)
        dlr = runs["log_lr"][b] - m_lr[s]
        dbs = runs["log_bs"][b] - m_bs[s]
        out[fam] = {
            "luck ‰": 1000 * float(np.mean(residual[b] / loss_star[b])),
            "lr mean": float(dlr.mean()),
            "lr sd": float(dlr.std(ddof=1)),
            "batch mean": float(dbs.mean()),
            "batch sd": float(dbs.std(ddof=1)),
            "lag-1 corr": float(np.corrcoef(residual[i], residual[j])[0, 1]),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posterior", default=None, help="loss posterior (default: shipped)")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    post = shipped("loss") if args.posterior is None else bsl.load(args.posterior)
    sweeps = bsl.load_sweeps("all")
    pred = post.run_predictions(sweeps)
    design = pred["design"]
    alive = ~design.runs["diverged"].to_numpy(bool)
    runs = design.runs.reset_index(drop=True)[alive].reset_index(drop=True)
    setting = design.run_setting[alive]
    columns = {"setting": setting, "family": runs["family"].to_numpy(str),
               "log_lr": design.log_lr[alive], "log_bs": design.log_bs[alive]}  # fmt: skip
    loc, scale, q, star = (pred[k][:, alive] for k in ("loc", "scale", "q", "loss_star"))
    m_lr, m_bs = post.flat("m_lr"), post.flat("m_bs")
    noise = {k: post.flat(k) for k in NOISE_PARAMETERS if k in post.variables}
    reported = runs["loss"].to_numpy(float)
    pairs = lag_pairs(runs, np.median(q, axis=0) < NEAR)

    med = {k: np.median(v, axis=0) for k, v in (("loc", loc), ("star", star))}
    real = figures(med["loc"] - reported, med["star"], np.median(m_lr, 0), np.median(m_bs, 0),
                   columns, winners(reported, setting), pairs)  # fmt: skip
    rng = np.random.default_rng(args.seed)
    reps = []
    for d in rng.choice(post.n_samples, min(args.draws, post.n_samples), replace=False):
        eps = run_noise(q[d][None], {k: v[d] for k, v in noise.items()}, rng, (1, q.shape[1]))
        again = loc[d] + scale[d] * eps[0]
        reps.append(figures(loc[d] - again, star[d], m_lr[d], m_bs[d], columns,
                            winners(again, setting), pairs))  # fmt: skip
    rows = []
    for fam, stats in real.items():
        for name, value in stats.items():
            sim = np.array([r[fam][name] for r in reps])
            lo, hi = np.quantile(sim, [0.05, 0.95])
            p = float(np.mean(sim >= value))
            rows.append({"family": fam, "figure": name, "real": value, "replicated": sim.mean(),
                         "lower 90%": lo, "upper 90%": hi, "p": p})  # fmt: skip
    table = pd.DataFrame(rows).set_index(["family", "figure"])
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print(f"{post!r}\n{len(reps)} replications of {len(runs)} runs that did not diverge\n")
        print(table)


if __name__ == "__main__":
    main()
