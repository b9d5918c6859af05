"""
Posterior-predictive check: where the optima are
================================================

A fit should reproduce the data it was fitted on. For each of the 33 released settings, the
posterior of that setting's optimum -- the law at its (N, D), its group's offsets and its own
setting effect, ``c + α x + β y + offsets + u[setting]`` for the learning rate and the same
with ``d, γ, v`` for the batch -- is compared with what the sweep observed there: the geometric
mean of the near-optimal runs (filled, what the model fits) and the single best run (open).
"""

import matplotlib.pyplot as plt

from bayes_steplaw import load_default, load_sweeps, plots

post = load_default("optimum")
sweeps = load_sweeps("all")

fig = plots.setting_optima(post, sweeps)
plt.show()

# %%
# The filled markers sit on the diagonal: the law, offsets and setting effects account for the
# settings' near-optimal means. The open markers -- single best runs -- scatter around it by a
# factor of about √2 in either direction, one step of the lr and batch grids: on a wide plateau
# the single best run is a noisy estimate of the optimum, which is why the paper (and this
# model) fits all near-optimal runs.
#
# The setting effects themselves are small for the learning rate and larger for the batch size:

post.summary().loc[["sigma_setting_lr", "sigma_setting_bs", "sigma_run_lr", "sigma_run_bs"]][
    ["mean", "lower", "upper"]
].round(3)

# %%
# The loss of every run
# ---------------------
#
# The loss model predicts every run's loss, not only where the optimum is. For each run that
# did not diverge, the fitted expected loss (its setting's own optimum and best loss, the
# surface at the run's lr and batch) relative to the setting's observed minimum, against the
# observed relative loss; the view stops at 5%, the runs beyond it are fitted too:

loss = load_default("loss")
ax = plots.relative_loss_check(loss, sweeps)
plt.show()

# %%
# The points follow the diagonal with the scatter of run-to-run noise, which the bars (the
# uncertainty of the *expected* loss) leave out on purpose. The observed minimum of a setting
# is itself a noisy run, so the fitted relative losses of the best runs sit a little above 0.
