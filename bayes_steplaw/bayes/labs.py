"""Labs: which lab each setting comes from, where a lab's laws turn, and what may differ
between labs (:class:`~bayes_steplaw.bayes.loss_model.LossModel`'s lab deviations).

A table's ``lab`` column names each run's lab (the released sweeps: :data:`DEFAULT_LAB`). A lab
other than the reference gets deviations of :data:`LAB_EXPONENTS` (:data:`LAB_PRIORS`), turning
its laws about the centre of its own settings (:func:`lab_centres`), and levels of its own
(:data:`LAB_LEVELS`), about which its families' offsets sum to zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .design import Design

LAB_EXPONENTS = ("alpha", "beta", "gamma", "star_N", "star_D")
"""What may differ between labs: the exponents of the lr and batch laws (α, β, γ) and the
log-slopes of the best loss in ln N and ln D (``star_N``, ``star_D``: another lab's data and
tokenizer give another loss law, not only another loss level)."""
LAB_PRIORS = {name: ("HalfNormal", 0.2) for name in LAB_EXPONENTS[:3]} | {
    name: ("Fixed", 0.05) for name in LAB_EXPONENTS[3:]
}
"""Prior of the spread of each between labs. Exponents: HalfNormal(0.2), learned. Published
setups disagree on β by about 0.4 (the Step Law's +0.25 to +0.31 against Marin NAdamW's -0.15)
and on γ by about 0.25: a spread of 0.2 holds those at one to two sd. A new lab's exponent then
varies by about ±0.2, which at one decade of N from the data's centre (2.3 ln units) is ×1.6
in lr per sd. Best-loss slopes: a fixed sd of 0.05 (two labs say next to nothing of their
spread, and a learned one formed a funnel); the released sweeps' ln L* falls by about
0.04-0.08 per ln unit of N or D, and a lab whose slopes differed by more than that would be
measuring another quantity."""
LAB_SCALES = np.array([LAB_PRIORS[name][1] for name in LAB_EXPONENTS])
"""The scales of :data:`LAB_PRIORS`, in the order of :data:`LAB_EXPONENTS`."""
LAB_LEVELS = ("lr", "bs", "star", "div")
"""Levels another lab moves: of its lr and batch laws (``c``, ``d``), of its best loss (the
offset ``r`` of its floor, ``E + r·L0``) and of the divergence edge (``div_tau0``'s intercept,
relative to the optimum)."""
LAB_LEVEL_SD = 1.0
"""Prior sd (ln units) of another lab's offsets of :data:`LAB_LEVELS` from the reference lab's,
fixed (two labs say nothing of a spread). Another optimizer, warm-up or clipping moves the
best lr by x3 (Marin's NAdamW baselines against the Step Law's at the same N and D) and where
runs diverge: in the released sweeps a run diverges about 2.3 ln units (x10) above its
setting's optimum, in Marin's at 0.7 (a 300M baseline's double). A family's offsets, pooled
with the released families' (which differ by ±0.06), and the released lab's edge held that
lab's optima x2-3 below its best runs."""
DEFAULT_LAB = "step-law"
"""The lab of runs whose table has no ``lab`` column (the released sweeps')."""


def lab_centres(u, v, lab_index, n_labs: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean centred ln N and ln D of each lab's settings: where its deviations turn its laws.

    Every setting counts, a fold's held-out ones too: about the centre of the settings that
    weigh, a lab of one setting gives its best-loss slopes no hold on the runs, and a
    held-out setting's best loss then moved with them through their prior (a held-out MoE
    variant from one setting: R-hat 2.09 against 1.23)."""
    counts = np.bincount(lab_index, minlength=n_labs)
    return (np.bincount(lab_index, u, n_labs) / np.maximum(counts, 1),
            np.bincount(lab_index, v, n_labs) / np.maximum(counts, 1))  # fmt: skip


def setting_labs(runs: pd.DataFrame, design: Design) -> tuple[list[str], np.ndarray]:
    """The labs (sorted) and each setting's lab index, from a ``lab`` column (default
    :data:`DEFAULT_LAB`)."""
    lab = lab_column(runs)
    per_setting = lab.groupby(runs["setting"]).first().reindex(design.settings)
    labs = sorted(set(per_setting))
    return labs, per_setting.map({name: i for i, name in enumerate(labs)}).to_numpy(int)


def lab_of_family(runs: pd.DataFrame) -> dict[str, str]:
    """Each family's lab (a family belongs to one lab)."""
    lab = lab_column(runs)
    pairs = pd.DataFrame({"family": runs["family"].astype(str), "lab": lab}).drop_duplicates()
    clash = pairs["family"].duplicated(keep=False)
    if clash.any():
        raise ValueError(
            f"a family belongs to one lab; {sorted(set(pairs.loc[clash, 'family']))} appear "
            "under several values of the lab column"
        )
    return dict(zip(pairs["family"], pairs["lab"]))


def lab_column(runs: pd.DataFrame) -> pd.Series:
    """Each run's lab: its ``lab`` value, else :data:`DEFAULT_LAB`."""
    if "lab" not in runs:
        return pd.Series(DEFAULT_LAB, index=runs.index)
    return runs["lab"].astype("string").fillna(DEFAULT_LAB).astype(str)
