"""
Planning a run: 7B parameters on 1.4T tokens
============================================

Everything the package knows about one planned run. The optimum model gives the distribution
of the optimal peak learning rate and batch size of a *new* setting at this scale (law
uncertainty plus setting-to-setting scatter, ``kind="centre"``), next to the paper's point
prediction. The landscape model adds the plateau region -- the (lr, batch) settings with at
least a 50% chance of ending within 0.25% of the best attainable loss --, its recommendation,
and the best learning rate when the batch size is fixed by the hardware (here 4M tokens, 2048
sequences of 2048 tokens).
"""

import matplotlib.pyplot as plt

from bayes_steplaw import BootstrapOLS, PosteriorFileError, load_default, plots

N, D = 7e9, 1.4e12
post = load_default()
published = BootstrapOLS.from_published()
try:
    landscape = load_default("landscape")
except PosteriorFileError as exc:  # the landscape model is not shipped with this build
    landscape = None
    print(f"landscape model not available, plateau panel left out: {exc}")

fig = plots.plan(post, N, D, bootstrap=published, landscape=landscape, batch_tokens=2048 * 2048)
plt.show()

# %%
# The numbers
# -----------
#
# The posterior median and 90% interval of the optimum, and how far the plan lies outside the
# fitted data (in orders of magnitude) -- the intervals are an extrapolation:

pred = post.predict(N, D)
print(pred.describe())
pred.to_dataframe().transpose()

# %%
# The paper's law with the percentile interval of its bootstrap ensemble, narrower because it
# resamples runs as if they were independent (see :doc:`/model`):

published.predict(N, D).transpose()

# %%
# The landscape model's recommendation, free and at a fixed batch of 4M tokens:

if landscape is not None:
    import pandas as pd

    free = landscape.recommend(N, D)
    fixed = landscape.recommend(N, D, batch_tokens=2048 * 2048)
    table = pd.DataFrame({"free": free.to_dict(), "batch fixed at 4M": fixed.to_dict()})
    print(table)
