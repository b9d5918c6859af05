"""
Loss landscapes of released settings
====================================

The counterpart of the paper's Figs. 1 and 2 for four released settings: each cell is a run of
the sweep, coloured by its relative loss (final smoothed loss over the setting's best, minus 1;
the colour saturates at 2%), the white star is the observed minimum, the cross the paper's Step
Law prediction and the plus the Bayesian law's median optimum. The orange contours are the loss
posterior's plateau probability -- the probability that a run at that (lr, batch) does not
diverge and ends, in expectation, within 0.25% of the best loss attainable at this N and D
(``plateau_probability(..., reference="optimum")``) -- for a *new* run at this setting (the
setting's own fitted optimum is not used), and the green diamond its Bayes decision
(``recommend``), the (lr, batch) of least expected loss.
"""

import matplotlib.pyplot as plt

from bayes_steplaw import BootstrapOLS, load_default, load_sweeps, plots

sweeps = load_sweeps("all")
# 1000 of the shipped posterior's draws: plenty for contours, and four maps stay quick to draw
loss = load_default("loss").subsample(1000, seed=0)
published = BootstrapOLS.from_published()

settings = [
    "dense N=1.074e+09 D=2e+10",
    "dense N=2.147e+08 D=1e+11",
    "dense N=4.293e+08 D=8e+09",
    "moe/1in8 N=2.155e+09 D=2e+10",
]
fig, axes = plt.subplots(2, 2, figsize=(12.5, 11), layout="constrained")
for ax, setting in zip(axes.flat, settings):
    plots.landscape_map(sweeps, setting, loss=loss, bootstrap=published, optimum=loss, ax=ax)
plt.show()

# %%
# The observed relative loss is flat near the optimum -- a plateau several grid steps wide --
# and it rises faster towards high learning rates than towards low ones, where runs also start
# to diverge; the loss model's surface bends into an exponential wall on that side. Its Bayes
# decision can therefore sit slightly below the median optimum in lr: overshooting costs more
# than undershooting.
#
# How far each prediction lies from the observed minimum, in grid steps of √2 (the runs'
# spacing in lr and batch size):

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

rows = []
for setting in settings:
    runs = sweeps[sweeps["setting"] == setting]
    best = runs.loc[runs["loss"].idxmin()]
    N, D = float(best["N"]), float(best["D"])
    group = setting.split(" N=")[0]
    paper = published.predict(N, D).iloc[0]
    law = loss.predict(N, D, group=group, kind="law").median()
    rec = loss.recommend(N, D, group=group)
    row = {"setting": setting}
    for name, lr, bs in [
        ("paper", paper["lr"], paper["batch_tokens"]),
        ("Bayesian law", float(law["lr"]), float(law["batch_tokens"])),
        ("Bayes decision", rec.lr, rec.batch_tokens),
    ]:
        row[f"{name}: lr steps"] = np.log(lr / best["lr"]) / np.log(np.sqrt(2))
        row[f"{name}: batch steps"] = np.log(bs / best["batch_tokens"]) / np.log(np.sqrt(2))
    rows.append(row)
pd.DataFrame(rows).set_index("setting").round(2)
