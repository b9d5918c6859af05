"""
Optimal batch size, and does it depend on N?
============================================

The paper found the optimal batch size to depend on the data D alone, B* ∝ D^γ. The shipped
posterior makes the same assumption; here is its batch law against D with 50% and 90%
credible bands and the observed near-optimal runs of every dense setting.
"""

import warnings

import matplotlib.pyplot as plt

from bayes_steplaw import ConvergenceWarning, fit, load_default, load_sweeps, plots

post = load_default("optimum")
sweeps = load_sweeps("all")

ax = plots.optimum_scaling(post, sweeps, quantity="batch_tokens", against="D")
plt.show()

# %%
# Letting the batch law depend on N
# ---------------------------------
#
# ``batch_depends_on_N=True`` adds δ·ln N to the batch law, B* ∝ D^γ N^δ, so the data can say
# whether the paper's assumption holds. This example fits that law live, in the optimum model
# (``model="optimum"``: each setting's near-optimal runs, far quicker to sample than the loss
# model) -- a deliberately small fit (2 chains of 1000 draws, about half a minute) so the
# documentation builds quickly.

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", ConvergenceWarning)
    post_delta = fit(
        sweeps, model="optimum", batch_depends_on_N=True, chains=2, draws=1000, progressbar=False
    )
print(post_delta)
print("converged:", post_delta.converged, "|", "; ".join(post_delta.diagnostics["problems"]))

# %%
# A fit this small may miss the convergence gate (R-hat ≤ 1.01, ESS ≥ 400, no divergences);
# when it does, the report names the parameters. Typically it is a group-level scale estimated
# from two families, a nuisance parameter here; δ itself is well sampled. For a result you
# would quote, fit with the defaults (4 chains, 1000 draws); see :doc:`/fitting`.

post_delta.summary().loc[["gamma", "delta"], ["mean", "sd", "lower", "upper", "ess_bulk"]]

# %%
ax = plots.delta_posterior(post_delta)
plt.show()

# %%
# The released data lean towards a *negative* δ: at equal D, larger models want somewhat
# smaller batches. Read it with care: the dense sweeps span only N = 215M–1.07B, and the MoE
# sweeps all sit at N ≈ 2.15B, so part of what δ sees is the dense/MoE difference that the
# family offsets also claim.
