"""
Posterior of the exponents
==========================

The joint posterior of the three exponents of the Step Law -- α (lr ∝ N^α), β (lr ∝ D^β)
and γ (batch ∝ D^γ) -- fitted on the released dense and MoE sweeps, next to the paper's
bootstrap-OLS ensemble: the 1000 resamples the authors published (their mean is Table 2, the
star), and the same recipe refitted on the released dense runs.
"""

import matplotlib.pyplot as plt

from bayes_steplaw import BootstrapOLS, load_default, load_sweeps, plots
from bayes_steplaw.bootstrap import PAPER_TABLE2

post = load_default()
published = BootstrapOLS.from_published()
refit = BootstrapOLS.fit(load_sweeps("dense"), seed=0)

fig = plots.exponent_pairs(
    post,
    bootstrap={"published ensemble": published, "refit on released dense": refit},
    paper=PAPER_TABLE2,
)
plt.show()

# %%
# The three estimates roughly agree on α and γ. They disagree on β: the
# published ensemble puts it near 0.31, while both fits of the *released* rows put it near
# 0.2. The paper's fit used runs that were not released (see :doc:`/reproducing`), so the
# published ensemble describes a different table. The Bayesian α is also wider than the
# published ensemble's: the released data hold five model sizes, and runs of one setting
# share one optimum rather than each being an independent measurement of the law.
#
# The numbers behind the plot:

summary = post.summary().loc[["alpha", "beta", "gamma"], ["mean", "sd", "lower", "upper"]]
summary["paper Table 2"] = [PAPER_TABLE2[k] for k in ("alpha", "beta", "gamma")]
summary["published sd"] = published.coefficients[["lr_coefN", "lr_coefD", "bs_coefD"]].std().values
summary.round(3)
