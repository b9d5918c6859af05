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

post = load_default()
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
# The loss around the optimum
# ---------------------------
#
# The landscape model also predicts every run's loss, not only where the optimum is. For each
# run within its window (3%) of the setting's best, the fitted expected loss relative to the
# setting's observed minimum, against the observed relative loss:

from bayes_steplaw import PosteriorFileError  # noqa: E402

try:
    landscape = load_default("landscape")
except PosteriorFileError as exc:  # the landscape model is not shipped with this build
    landscape = None
    print(f"landscape model not available, check left out: {exc}")

if landscape is not None:
    ax = plots.relative_loss_check(landscape, sweeps)
    plt.show()

# %%
# Runs above 3% were not fitted, so the cloud is cut off at the top: near the cut, runs whose
# loss happened to come out high are missing, and the observed points bend below the diagonal.
# Below it the points follow the diagonal with the scatter of run-to-run noise, which the bars
# (the uncertainty of the *expected* loss) leave out on purpose.
