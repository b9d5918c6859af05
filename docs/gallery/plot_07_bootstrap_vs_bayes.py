"""
Bootstrap intervals next to Bayesian intervals
==============================================

The same (N, D) points, from 100M to 100B parameters trained on 100 tokens per parameter,
through three lenses: the paper's published bootstrap ensemble, the paper's recipe refitted on
the released dense runs, and the Bayesian posterior -- both the law's own uncertainty
(``kind="law"``) and the wider interval of where a new setting's optimum will be
(``kind="optimum"``). Top: the 90% intervals; bottom: their
width as a factor (upper / lower). White is the range the data cover, grey extrapolation.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayes_steplaw import BootstrapOLS, load_default, load_sweeps, plots

post = load_default("optimum")
published = BootstrapOLS.from_published()
refit = BootstrapOLS.fit(load_sweeps("dense"), seed=0)

N = np.geomspace(1e8, 1e11, 60)
fig = plots.interval_comparison(
    post, {"published ensemble": published, "refit on released dense": refit}, N, 100 * N
)
plt.show()

# %%
# Where they agree, and where the bootstrap is overconfident
# -----------------------------------------------------------
#
# The widths of the 90% intervals (upper / lower) at three points: inside the data, at a
# 7B / 1.4T plan, and at 70B / 14T. ``refit, dense + MoE pooled`` is the paper's recipe on all
# released runs, MoE included, with no group offsets -- the way a bootstrap would use them.

pooled = BootstrapOLS.fit(load_sweeps("all"), seed=0)
rows = []
for n, d in [(5e8, 2e10), (7e9, 1.4e12), (7e10, 1.4e13)]:
    row = {"N": f"{n:.0e}", "D": f"{d:.0e}"}
    for kind, name in (("law", "the law"), ("optimum", "a new setting")):
        iv = post.predict(n, d, kind=kind).interval(0.9, method="eti")
        lo, hi = iv.sel(bound="lower"), iv.sel(bound="upper")
        row[f"posterior, {name}: lr"] = float(hi["lr"] / lo["lr"])
        row[f"posterior, {name}: batch"] = float(hi["batch_tokens"] / lo["batch_tokens"])
    for name, model in [
        ("published", published),
        ("refit dense", refit),
        ("refit, dense + MoE pooled", pooled),
    ]:
        p = model.predict(n, d).iloc[0]
        row[f"{name}: lr"] = p.lr_upper / p.lr_lower
        row[f"{name}: batch"] = p.batch_tokens_upper / p.batch_tokens_lower
    rows.append(row)
widths = pd.DataFrame(rows).set_index(["N", "D"]).T
widths.round(2)

# %%
# Inside the data the law's intervals agree: for the learning rate the refit bootstrap and the
# posterior's interval of the law are within a few percent of each other. They part as the law
# is extrapolated: the posterior's exponents are less certain than the bootstrap's, and the
# published ensemble (fitted to more runs than were released) is the narrowest of all.
#
# The bootstrap is overconfident in two ways. It has no setting-to-setting scatter, so as a
# statement about a *new setting's* optimum its batch interval is too narrow even inside the
# data (compare the posterior's rows for a new setting). And pooling the MoE runs -- all at one
# N -- into the regression narrows its batch interval further without adding any information
# about scale.
