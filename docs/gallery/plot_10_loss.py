"""
The loss of a run before it is trained
======================================

The loss model (:class:`bayes_steplaw.bayes.loss_model.LossModel`) predicts the smoothed final
loss a run will report at any (N, D, lr, batch) (``predict_loss``), the probability that it
diverges, and the best loss L*(N, D) of the setting (``best_loss``). Here it is judged on
settings it never saw: it was fitted on the released settings of smallest compute (the
``extrapolate`` split: 6·N·D up to each family's 0.75 quantile) and predicts every run of the
eight largest.

Refitting takes minutes, so the figure reads the predictions from
``docs/gallery/data/loss_heldout.csv`` and ``loss_curves.csv``, written by
:func:`bayes_steplaw.evaluate.methods.gallery_tables` from that fold's posterior.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
data = here / "data" if (here / "data").is_dir() else Path("docs/gallery/data")
runs = pd.read_csv(data / "loss_heldout.csv")
curves = pd.read_csv(data / "loss_curves.csv")

# %%
# Predicted against observed loss, every run of the held-out settings
# --------------------------------------------------------------------
# Each point is a run that did not diverge; the bar is the 90% predictive interval of the loss
# the run reports (run noise, a new setting's scatter and the fit's uncertainty included).

settings = list(dict.fromkeys(runs["setting"]))
fig, axes = plt.subplots(2, 4, figsize=(15, 7.5), layout="constrained")
for ax, setting in zip(axes.flat, settings):
    one = runs[(runs["setting"] == setting) & ~runs["diverged"]]
    y, yhat = one["loss"].to_numpy(), one["loss_median"].to_numpy()
    r2 = 1 - ((y - yhat) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    inside = ((y >= one["loss_lower"]) & (y <= one["loss_upper"])).mean()
    ax.errorbar(
        yhat,
        y,
        xerr=[yhat - one["loss_lower"], one["loss_upper"] - yhat],
        fmt="o",
        ms=3,
        lw=0.6,
        alpha=0.6,
    )
    lim = [min(y.min(), one["loss_lower"].min()), max(y.max(), one["loss_upper"].max())]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_title(f"{setting}\nR² {r2:.2f}, {inside:.0%} inside 90%", fontsize=9)
    ax.set_xlabel("predicted loss (median, 90% interval)")
    ax.set_ylabel("observed loss")
plt.show()

# %%
# Loss against learning rate at four batch sizes, for a setting the fit did not see
# ---------------------------------------------------------------------------------
# Lines: predictive median; bands: 90% interval of the reported loss, given that the run does
# not diverge; dots: the sweep's runs; crosses at the top: runs that diverged. The dotted line
# (right axis) is the predicted probability of divergence.

setting = curves["setting"].iloc[0]
observed = runs[runs["setting"] == setting]
fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
twin = ax.twinx()
for (bs, part), colour in zip(
    curves.groupby("batch_tokens"), plt.cm.viridis(np.linspace(0, 0.9, 4))
):
    seqs = round(bs / 2048)
    ax.plot(part["lr"], part["loss_median"], color=colour, label=f"batch {seqs} sequences")
    ax.fill_between(part["lr"], part["loss_lower"], part["loss_upper"], color=colour, alpha=0.2)
    twin.plot(part["lr"], part["p_diverge"], ":", color=colour)
    runs_b = observed[observed["batch_sequences"] == seqs]
    ok = runs_b[~runs_b["diverged"]]
    ax.plot(ok["lr"], ok["loss"], "o", color=colour, ms=4)
    top = ax.get_ylim()[1] if len(ok) else 3
    ax.plot(
        runs_b.loc[runs_b["diverged"], "lr"],
        np.full(runs_b["diverged"].sum(), top),
        "x",
        color=colour,
    )
ax.set_xscale("log")
ax.set_xlabel("peak learning rate")
ax.set_ylabel("final smoothed loss")
twin.set_ylabel("P(diverge)")
twin.set_ylim(0, 1)
ax.set_title(f"{setting} (held out)")
ax.legend(fontsize=8, loc="upper center")
plt.show()
