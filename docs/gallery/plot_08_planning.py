"""
Planning a run: 7B parameters on 1.4T tokens
============================================

Everything the package knows about one planned run, from one posterior: the loss posterior
that ships with the package. Left, the distribution of the optimal peak learning rate and
batch size of a *new* setting at this scale (law uncertainty plus setting-to-setting scatter,
``kind="optimum"``), next to the paper's point prediction. Right, the same posterior's loss
surface at this setting (:func:`bayes_steplaw.plots.loss_surface`): the expected loss of a
run, the 90% region of the optimum, the plateau region -- the (lr, batch) with at least a 90%
chance of ending, in expectation, within 0.25% of the best attainable loss --, the Bayes
decision, and the best learning rate when the batch size is fixed by the hardware (here 4M
tokens, 2048 sequences of 2048 tokens).
"""

import matplotlib.pyplot as plt

from bayes_steplaw import BootstrapOLS, load_default, plots

N, D = 7e9, 1.4e12
batch = 2048 * 2048
post = load_default("loss")
published = BootstrapOLS.from_published()

fig = plots.plan(post, N, D, bootstrap=published, loss=post, batch_tokens=batch)
plt.show()

# %%
# The numbers
# -----------
#
# The posterior median and 90% interval of the optimum of a new setting, and how far the plan
# lies outside the fitted data (in orders of magnitude) -- the intervals are an extrapolation:

pred = post.predict(N, D, kind="optimum")
print(pred.describe())
pred.to_dataframe().transpose()

# %%
# What a sweep around it will find: the best run of a grid sweep (lr steps of √2, batch steps
# of 2) of a new setting, run noise and divergence included -- wider, since a sweep's grid and
# its runs' noise scatter the best run around the optimum:

post.predict(N, D, kind="sweep").to_dataframe().transpose()

# %%
# The paper's law with the percentile interval of its bootstrap ensemble, narrower because it
# resamples runs as if they were independent (see :doc:`/model`):

published.predict(N, D).transpose()

# %%
# The Bayes decision, free and at a fixed batch of 4M tokens: ``expected_excess`` is the
# expected loss over the best loss L* (a diverged run counted at 1.5·L*), ``cost`` what fixing
# the batch adds to the expected loss, ``plateau_probability`` the chance of ending within
# 0.25% of L*:

import pandas as pd  # noqa: E402

free = post.recommend(N, D)
fixed = post.recommend(N, D, batch_tokens=batch)
pd.DataFrame({"free": free.to_dict(), "batch fixed at 4M": fixed.to_dict()})
