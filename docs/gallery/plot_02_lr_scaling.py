"""
Optimal learning rate across scale
==================================

The Bayesian counterpart of the paper's Fig. 6: the optimal peak learning rate against the
training tokens D for each model size N, and against N for a few D, with the posterior median
law, its 50% and 90% credible bands, and the runs that were observed to be near-optimal (within
0.25% of their setting's best loss). Large markers are each setting's geometric mean of those
runs -- the quantity the law describes.
"""

import matplotlib.pyplot as plt

from bayes_steplaw import load_default, load_sweeps, plots

post = load_default("optimum")
sweeps = load_sweeps("all")

fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6), layout="constrained")
fig.get_layout_engine().set(wspace=0.08)  # room between the left colorbar and the right panel
plots.optimum_scaling(post, sweeps, against="D", ax=left)
plots.optimum_scaling(post, sweeps, against="N", at=[5e9, 1e10, 2e10, 5e10, 1e11], ax=right)
plt.show()

# %%
# The bands are the *law's* uncertainty (``kind="law"``): inside the data they are a few
# percent wide, and they fan out where the law is extrapolated (grey). Individual near-optimal
# runs scatter much more than that -- the loss plateau is wide and the lr grid steps by
# √2 -- which is why the law is fitted to all of them rather than to each setting's single
# best run.
#
# Where the optimum of a *new* setting will be is a wider question; ``kind="optimum"`` adds
# the setting-to-setting scatter (the legend's title says which of the two a band is about):

ax = plots.optimum_scaling(post, sweeps, against="D", kind="optimum")
plt.show()
