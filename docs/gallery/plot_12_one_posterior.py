"""
One posterior, every answer: a held-out setting
===============================================

Every answer of the package is a reduction of the loss posterior's draws: one loss surface per
draw for a new setting (N, D) of a group. Here, for a setting of the released dense sweep that
the fit did not see, every answer at once, in one figure and from one posterior
(:func:`bayes_steplaw.plots.loss_surface`):

* the filled contours are the posterior expected loss of a run,
  ``expected_loss(N, D, lr, batch_tokens)`` (a run that diverges counted at 1.5·L*), in bands
  above the Bayes decision's;
* the blue dashes are the 90% region of the optimum of a new setting,
  ``predict(N, D, kind="optimum").draws`` (the plus its median);
* the orange line closes the plateau region,
  ``plateau_probability(N, D, lr, batch_tokens, reference="optimum") >= 0.9``: the run does
  not diverge and its expected loss is within 0.25% of the setting's best loss L*;
* the green diamond is the Bayes decision, ``recommend(N, D)``: the (lr, batch) of least
  expected loss; the square on the dotted line is the best lr at a batch fixed at 2M tokens,
  ``recommend(N, D, batch_tokens=2**21)``;
* the circles are the setting's 118 actual runs, filled with their observed final loss on the
  same colour bands (a run that matches its background agrees with the posterior); crosses
  are runs that diverged, the white star is the observed best run.

**Held out.** The posterior is the leave-one-setting-out fold of the loss evaluation for
``dense N=4.293e+08 D=2.27e+10``: the loss model fitted on every released run with this
setting's runs weighted 0 (what ``bayes-steplaw evaluate --split loso`` refits for the ``bayes``
method in this fold; 2 chains of 500 draws, thinned to 500 draws). A fit takes minutes, so the
posterior is
stored in ``docs/gallery/data/loss_fold_loso.nc`` rather than refitted at build time; it was
written by::

    import bayes_steplaw as bsl
    from bayes_steplaw.bayes import LossModel

    sweeps = bsl.load_sweeps("all")
    prepared = LossModel().prepare(sweeps, weighted=True)
    held = "dense N=4.293e+08 D=2.27e+10"
    weights = (prepared.built.design.runs["setting"] != held).to_numpy(float)
    fold = prepared.fit(weights, chains=2, draws=500, tune=500, seed=0)
    fold.thin(2).save("docs/gallery/data/loss_fold_loso.nc")

Like every fold refit of the evaluation it is small by design and misses the convergence gate
(its largest R-hat is printed below), so each call passes ``allow_unconverged=True``.
"""

from pathlib import Path

import matplotlib.pyplot as plt

from bayes_steplaw import load, load_sweeps, plots

# sphinx-gallery runs the script from its folder, without __file__
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
post = load(here / "data" / "loss_fold_loso.nc")
(setting,) = post.metadata["held_out_settings"]
print(f"held out: {setting}; largest R-hat {post.diagnostics['max_r_hat']:.3f}")

sweeps = load_sweeps("all")
runs = sweeps[sweeps["setting"] == setting]
N, D = float(runs["N"].iloc[0]), float(runs["D"].iloc[0])
batch = 2**21  # 1024 sequences of 2048 tokens, fixed by the hardware

ax = plots.loss_surface(post, N, D, group="dense", runs=runs, batch_tokens=batch,
                        allow_unconverged=True)  # fmt: skip
plt.show()

# %%
# The answers agree because they are one posterior's: the decision lies inside the optimum's
# region, the optimum's region inside the plateau, and the plateau inside the lowest bands of
# the expected loss. The runs' fills match their background near the optimum and along the
# valley; to the right, where runs start to diverge, observed runs that survived sit below
# the expected loss, which counts the runs that diverge there at 1.5·L*.
#
# The numbers behind the figure
# -----------------------------
# Each answer as a table row, next to the observed best run of the held-out sweep.

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

kw = dict(group="dense", allow_unconverged=True)
rows = {}
for kind in ("optimum", "sweep"):
    pred = post.predict(N, D, kind=kind, **kw).to_dataframe(0.9).iloc[0]
    rows[f"predict(kind={kind!r})"] = {
        f"{q}_{stat}": pred[f"{q}_{stat}"]
        for q in ("lr", "batch_tokens")
        for stat in ("median", "lower", "upper")
    }
decisions = {
    "recommend()": post.recommend(N, D, **kw),
    "recommend(batch_tokens=2M)": post.recommend(N, D, batch_tokens=batch, **kw),
}
for name, rec in decisions.items():
    rows[name] = {
        "lr_median": rec.lr,
        "batch_tokens_median": rec.batch_tokens,
        "expected_excess": rec.expected_excess,
        "plateau_probability": rec.plateau_probability,
    }
best = runs.loc[runs["loss"].idxmin()]
rows["observed best run"] = {"lr_median": best["lr"], "batch_tokens_median": best["batch_tokens"]}
pd.DataFrame(rows).transpose().rename(columns=lambda c: c.replace("_median", ""))

# %%
# The held-out runs against their predicted loss
# ----------------------------------------------
# ``predict_loss`` gives the loss each run will report (run noise included, given that it
# does not diverge) and its probability of diverging; the same posterior, the same seed.

lr, bs = runs["lr"].to_numpy(), runs["batch_tokens"].to_numpy()
loss = post.predict_loss(N, D, lr, bs, **kw).to_dataframe(0.9)
observed = runs["loss"].to_numpy()
diverged = observed > post.metadata["diverged_ratio"] * observed.min()
alive = ~diverged
inside = (observed >= loss["loss_lower"]) & (observed <= loss["loss_upper"])
summary = pd.Series({
    "runs": len(runs),
    "diverged (observed)": int(diverged.sum()),
    "diverged (expected, sum of p_diverge)": loss["p_diverge"].sum(),
    "runs alive inside their 90% interval": inside[alive].mean(),
    "median |observed - median| / observed": np.median(
        np.abs(observed[alive] - loss["loss_median"][alive]) / observed[alive]),
})  # fmt: skip
summary.round(4)
