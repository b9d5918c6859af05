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
EXPONENTS_VARY_BY = ("lab", None)
"""What a model's exponents may vary by (``exponents_vary_by``): each lab, or nothing."""
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


def lab_metadata(
    u: np.ndarray,
    v: np.ndarray,
    labs: list[str],
    lab_index: np.ndarray,
    lab_of: dict[str, str],
    levels: tuple[str, ...],
    by_lab: bool,
) -> dict:
    """What a posterior needs to answer for each lab: the labs, the centre of each lab's
    settings (:func:`lab_centres`), each family's lab and the fixed sd of each of ``levels``
    (``sd_lab_<name>``; None where the fit has no lab terms)."""
    lab_u, lab_v = lab_centres(u, v, lab_index, len(labs))
    return {
        "labs": labs,
        "lab_centres": {lab: [float(lab_u[i]), float(lab_v[i])] for i, lab in enumerate(labs)},
        "lab_of_family": lab_of,
        **{f"sd_lab_{name}": LAB_LEVEL_SD if by_lab else None for name in levels},
    }


def sibling_parents(level, j: int, lab_of: dict[str, str] | None) -> np.ndarray:
    """Each level's parent, whose children's offsets sum to zero: for the outermost group
    column (``j == 0``) with ``lab_of`` (each family's lab), the family's lab."""
    if j == 0 and lab_of is not None:
        return np.array([lab_of.get(str(f), DEFAULT_LAB) for f in level.labels])
    return np.asarray(level.parents)


def lab_terms(
    u: np.ndarray,
    v: np.ndarray,
    labs: list[str],
    lab_index: np.ndarray,
    exponents: tuple[str, ...] = LAB_EXPONENTS,
    levels: tuple[str, ...] = LAB_LEVELS,
) -> dict:
    """Another lab's terms in the laws, built inside a PyMC model that has a ``lab`` dim.

    The released lab (else the first) is the reference that holds the shared exponents and
    levels; every other lab gets deviations of ``exponents`` (a prefix of
    :data:`LAB_EXPONENTS`) turning its laws about the centre of its own settings
    (:func:`lab_centres`), and offsets of ``levels`` (of :data:`LAB_LEVELS`). Recorded as
    ``dev_<name>_lab`` (dims ``lab``) and ``sigma_lab_<name>``.

    Parameters
    ----------
    u, v : ndarray
        Centred ln N and ln D of each setting.
    labs, lab_index : list of str, ndarray
        The labs and each setting's lab (:func:`setting_labs`).
    exponents, levels : tuple of str
        What another lab moves.

    Returns
    -------
    dict
        ``lr``, ``bs``: per setting, what the lab's deviations of the exponents add to ln lr*
        and ln B*; ``level``: per setting, its levels (settings, len(levels));
        ``tilt``: its best-loss slopes' deviations and centre (:func:`.surface.best_loss`),
        where ``exponents`` holds them, else empty.
    """
    import pymc as pm
    import pytensor.tensor as pt

    ref = labs.index(DEFAULT_LAB) if DEFAULT_LAB in labs else 0
    others = len(labs) - 1

    def with_reference(x, width):  # the reference lab's row: zeros
        return pt.concatenate([x[:ref], pt.zeros((1, width)), x[ref:]], axis=0)

    # the exponents' deviations (a few small settings inform them about as much as the prior
    # does) non-centred, with learned spreads; with a free deviation for every lab, the shared
    # exponents and two labs' deviations would form a ridge that only the spread's prior
    # bounds. The spreads are parameter-expanded (Gelman 2006): spread = s·|a| with a ~
    # Normal(0, 1) is HalfNormal(s), and a non-centred deviation is s·a·z. In (a, z) the prior
    # is a unit normal, so a spread near 0 (a lab whose exponents match) is the middle of it;
    # sampled as ln(spread), it was an exponential tail that chains wandered into at the
    # tree-depth limit and left slowly (the README's pooled sweep: R-hat 1.022 and tail ESS
    # 115 on the spread of β). a's sign is redundant: only |a| and a·z are reported
    k = min(len(exponents), 3)
    expand = pm.Normal("z_lab_spread", 0.0, 1.0, shape=k)
    dev = LAB_SCALES[:k] * expand * pm.Normal("z_lab", 0.0, 1.0, shape=(others, k))
    spread = LAB_SCALES[:k] * pt.abs(expand)
    if len(exponents) > 3:
        # the best-loss slopes' deviations centred, of fixed scale: a learned spread of theirs
        # formed a funnel wherever the lab's settings pin them (centred) or do not
        # (non-centred): a held-out MoE variant from one setting, R-hat 1.72; the NAdamW lab
        # from 4 settings, 106 divergences at the spread's neck. Two labs say next to nothing
        # of that spread
        scale = LAB_SCALES[3 : len(exponents)]
        slopes = pm.Normal("tilt_lab", 0.0, scale, shape=(others, len(scale)))
        dev = pt.concatenate([dev, slopes], axis=1)
        spread = pt.concatenate([spread, scale])
    dev = with_reference(dev, len(exponents))
    for i, name in enumerate(exponents):
        pm.Deterministic(f"sigma_lab_{name}", spread[i])
        pm.Deterministic(f"dev_{name}_lab", dev[:, i], dims="lab")
    # the levels are the lab's own: an offset per other lab, non-centred, of fixed sd. Another
    # optimizer or schedule moves the optimum as a whole (Marin's NAdamW x3 above the Step
    # Law) and where runs diverge; pooled with the released families' offsets and edge, its
    # optima sat x2-3 below its best runs
    level = LAB_LEVEL_SD * with_reference(
        pm.Normal("z_lab_level", 0.0, 1.0, shape=(others, len(levels))), len(levels)
    )
    for i, name in enumerate(levels):
        pm.Deterministic(f"dev_{name}_lab", level[:, i], dims="lab")
    # about the centre of the lab's own settings (not the pooled data's) its offsets and its
    # deviations are uncorrelated (the README's pooled sweep: max R-hat 1.31 about the data's
    # centre, 1.047 about the lab's own)
    lab_u, lab_v = lab_centres(u, v, lab_index, len(labs))
    du, dv = u - lab_u[lab_index], v - lab_v[lab_index]
    level = level[lab_index]
    out = {
        "lr": dev[lab_index, 0] * du + dev[lab_index, 1] * dv,
        "bs": dev[lab_index, 2] * dv,
        "level": level,
        "tilt": {},
    }
    if len(exponents) > 3:
        out["tilt"] = {"tilt_N": dev[lab_index, 3], "tilt_D": dev[lab_index, 4],
                       "u0": lab_u[lab_index], "v0": lab_v[lab_index]}  # fmt: skip
    return out


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
