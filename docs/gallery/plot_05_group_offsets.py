"""
Dense, MoE and the MoE variants
===============================

Every group shares the exponents and keeps its own offset. The forest plot shows each group's
optimal learning rate and batch size as a multiple of the all-group law at the same N and D:
the families (``dense``, ``moe``), each MoE sparsity variant (family and variant offsets
summed), and a never-seen architecture drawn from the group population (``new``), whose wide
interval is what predicting for an untested architecture honestly costs.
"""

import matplotlib.pyplot as plt

from bayes_steplaw import load_default, plots

post = load_default()

fig = plots.group_offsets(post)
plt.show()

# %%
# The MoE − dense contrast
# ------------------------
#
# The posterior of the ratio of the MoE family's optimum to the dense family's, at the same N
# and D, with the probability that MoE wants the larger value (the mass right of 1):

fig = plots.offset_contrast(post, "moe", "dense")
plt.show()

# %%
# The same numbers as ``bayes-steplaw compare moe dense``: the ratio of the MoE law to the
# dense law (posterior mean, median and 90% equal-tailed interval) and P(MoE > dense).

post.compare_offsets("moe", "dense", scale="ratio").round(3)

# %%
# Variants can be compared the same way, e.g. the densest against the sparsest MoE:

post.compare_offsets("moe/3in8", "moe/1in89", scale="ratio").round(3)
