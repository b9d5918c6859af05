"""
Held-out evaluation: choices, coverage and plateau probabilities
================================================================

Every accuracy claim of the package is a number from settings the fit did not see. Here:
leave-one-setting-out over the 33 released settings (``bayes-steplaw evaluate --split
loso``), every method refitted 33 times without the setting it then predicts. The tables
behind the figures are in the model cards; this script reads the tidy table the command
wrote (``docs/gallery/data``, 2 chains x 500 draws per refit), since 66 refits take minutes.
"""

# %%
from pathlib import Path

from bayes_steplaw import plots
from bayes_steplaw.evaluate import Evaluation

# sphinx-gallery runs the script from its folder, without __file__
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
data = here / "data"
result = Evaluation.from_csv(data / "evaluation_loso.csv", runs=data / "evaluation_loso_runs.csv")
result.mean_relative_loss().round(3)

# %%
# The choice
# ----------
# The relative loss of the grid run nearest to each method's choice (the paper's metric), in
# 0.3's evaluation: ``bayes``, the loss model's ``recommend`` (the least posterior expected
# loss), against the optimum model's median best run of a sweep, the paper's recipe refitted
# per fold (``ols``) and the paper's published constants. Paired differences with bootstrap
# intervals are in the card.
ax = plots.relative_loss_by_setting(result)

# %%
# The intervals
# -------------
# How often the intervals held the held-out best run, against their mass. ``bayes``'s
# intervals are about the best run a sweep finds (``kind="sweep"``) and hold it about as
# often as they say; the bootstrap intervals of the paper's recipe are about its mean law and
# almost never do.
fig = plots.coverage_against_nominal(result)

# %%
# The plateau probabilities
# -------------------------
# ``plateau_probability(reference="sweep")`` is the probability that a run lands within 0.25% of
# the best run of a sweep (what a user checks); ``reference="optimum"`` the probability relative
# to L*, the bottom of the setting's loss surface. Each matches the frequency of its own event on
# held-out
# runs; asking the second about the first event overstates it.
ax = plots.reliability_diagram(result)
