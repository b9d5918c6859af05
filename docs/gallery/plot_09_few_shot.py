"""
How many small sweeps of my architecture do I need?
===================================================

A new architecture with a few small sweeps cannot pin the Step Law's exponents down on its
own; pooled with the released data (``bayes-steplaw fit mine.csv --with-released``) it only
needs to fix its own offsets. To measure what that buys, each MoE variant of the released data
is held out in turn and plays the new architecture: the fit sees the rest of the released data
plus the variant's k smallest settings (k = 0 to 4 of its 4 token budgets), and predicts the
variant's remaining, larger settings.

The numbers come from ``benchmarks/bench_transfer.py`` (20 NUTS fits, about 15 minutes on two
cores), stored in ``docs/gallery/data/transfer.json``; this page reads them rather than refit
at build time. The stored run is 0.2's, when the fit was the optimum model; the loss model of
0.3 was run for k = 0 and 1 only (the few-shot workflow's table: k = 1 narrows the lr interval
from a factor of 6.7 to 3.1, every held-out best run inside). Intervals are 90% intervals of
``kind="sweep"``, the best run a grid sweep will find, scored against each held-out setting's
observed best run; the relative loss is the paper's metric: the relative loss of the grid run
nearest to the posterior median.
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

try:
    here = Path(__file__).parent
except NameError:  # run by sphinx-gallery from this folder
    here = Path.cwd()
results = json.loads((here / "data" / "transfer.json").read_text())
summary = pd.DataFrame(results["summary"])
rows = pd.DataFrame(results["rows"])

learnt = summary[summary["label"].str.contains("user group|new family")].sort_values("k")
paper = summary[summary["label"] == "paper law"].iloc[0]
moe_new = summary[summary["label"] == "0: moe/new"].iloc[0]
k = learnt["k"].to_numpy()

fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
ax = axes[0]
ax.plot(k, learnt["lr_coverage"], "o-", label="lr")
ax.plot(k, learnt["batch_coverage"], "s-", label="batch")
ax.axhline(0.9, color="0.5", ls=":", label="nominal 90%")
ax.set(xlabel="settings of the new architecture seen (k)", ylabel="coverage of the best run",
       ylim=(0, 1.05), xticks=k, title="Interval coverage")  # fmt: skip
ax.legend(loc="lower left", fontsize=8)

ax = axes[1]
ax.plot(k, learnt["lr_width"], "o-", label="lr")
ax.plot(k, learnt["batch_width"], "s-", label="batch")
ax.set(xlabel="settings seen (k)", ylabel="90% interval width (upper / lower)", xticks=k,
       title="Interval width")  # fmt: skip
ax.legend(fontsize=8)

ax = axes[2]
ax.plot(k, 100 * learnt["relative_loss_mean"], "o-", color="C2", label="pooled fit")
ax.axhline(100 * paper["relative_loss_mean"], color="C3", ls="--", label="paper's (dense) law")
ax.plot([0], [100 * moe_new["relative_loss_mean"]], "v", color="C4", label="k = 0 as moe/new")
in_sample = summary[summary["label"] == "4: in sample"].iloc[0]
ax.plot([4], [100 * in_sample["relative_loss_mean"]], "o", mfc="none", color="C2",
        label="k = 4: the predicted setting fitted")  # fmt: skip
top = 1.25 * 100 * max(paper["relative_loss_mean"], learnt["relative_loss_mean"].max())
ax.set(xlabel="settings seen (k)", ylabel="relative loss of nearest run (%)",
       xticks=[*k, 4], ylim=(0, top), title="The paper's metric")  # fmt: skip
ax.legend(fontsize=8)
fig.suptitle("Held-out MoE variants predicted from k of their own settings (smallest first)")
plt.show()

# %%
# The table behind the figure. ``targets`` counts the predicted settings over the four
# variants (fewer as k grows: only the remaining settings are predicted); k = 4 predicts the
# largest setting in sample, a reference. Coverage from so few targets is coarse: one miss in
# four is 75%.

summary.round(4)

# %%
# Reading it. Without a run of the new architecture (k = 0) the prediction is for a
# never-seen family: honest (every best run inside its interval) and wide, a factor of about
# five either way. One small sweep (k = 1) shrinks the lr interval from a factor of 5.3 to 2.9;
# by k = 3 the lr interval is about a factor of 2.6. The paper's metric moves less: picking
# the run nearest to the posterior median costs about 0.1% of loss from k = 0 to k = 3,
# against 0.13% for the paper's dense law and 0.05% when the predicted setting itself was
# fitted (k = 4, in sample). On these loss surfaces one step of the lr grid (√2) already costs about
# that much, so the metric is coarse; the intervals are where the small sweeps pay.
#
# Every fit's largest R-hat (2 chains of 500 draws each):

pd.DataFrame(results["fits"]).pivot(index="variant", columns="k", values="max_r_hat").round(3)
