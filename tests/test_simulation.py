"""Simulation with known truth: what each run design identifies, and a wrong model failing.

Sweeps are drawn from a known law and a known loss surface of the loss model's own form
(:func:`bayes_steplaw.simulate_sweeps`) under three designs (a full grid, one-at-a-time
sweeps around a tuned baseline, random search); the loss model is fitted on each and checked
against the truth (issue 19, item 2). Each fit is small (2 chains); the recovery checks use
90% intervals, so each holds with high probability for any seed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_steplaw as bsl

pytestmark = pytest.mark.slow  # one small NUTS fit per design

SETTINGS = pd.DataFrame(
    [("dense", "dense", n, d) for n, d in
     ((2e8, 4e9), (2e8, 3e10), (6e8, 1e10), (6e8, 6e10), (1.5e9, 2e10), (1.5e9, 8e10))]
    + [("moe", "moe", 2e9, d) for d in (5e9, 3e10)],
    columns=["family", "variant", "N", "D"],
)  # fmt: skip
LAW = bsl.TrueLaw()
SURFACE = bsl.TrueSurface(lr_window=1.2, bs_window=1.4)
FIT = dict(chains=2, draws=300, tune=300, progressbar=False, seed=2)


def _fit(design: str, **model):
    sweeps, truth = bsl.simulate_sweeps(SETTINGS, LAW, SURFACE, seed=5, design=design, runs=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bsl.ConvergenceWarning)
        post = bsl.LossModel(**model).fit(sweeps, **FIT)
    return post, truth


@pytest.fixture(scope="module")
def grid():
    return _fit("grid")


@pytest.fixture(scope="module")
def one_at_a_time():
    return _fit("one-at-a-time")


def _coverage(post, truth, name: str, column: str) -> float:
    draws = post.flat(name)  # (samples, settings): m_lr, m_bs are ln lr*, ln B* (tokens)
    settings = list(post.posterior["setting"].values)
    order = truth.set_index("setting").loc[settings, column].to_numpy()
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    return float(np.mean((np.log(order) >= lo) & (np.log(order) <= hi)))


def _covers(post, name: str, value: float, prob: float = 0.9) -> bool:
    lo, hi = np.quantile(post.flat(name), [(1 - prob) / 2, (1 + prob) / 2])
    return bool(lo <= value <= hi)


def _shape(post, name: str) -> np.ndarray:
    """Draws of a shape parameter's intercept (the value at the data's centre)."""
    i = list(post.posterior["shape"].values).index(name)
    return post.flat("shape_coef")[:, i, 0]


def test_a_grid_recovers_the_law_the_optima_and_the_skew(grid):
    post, truth = grid
    for name in ("alpha", "beta", "gamma"):
        assert _covers(post, name, getattr(LAW, name), 0.98), name
    assert np.exp(np.median(post.flat("m_lr"), axis=0)).size == len(SETTINGS)
    assert _coverage(post, truth, "m_lr", "lr_opt") >= 0.75
    assert _coverage(post, truth, "m_bs", "batch_tokens_opt") >= 0.75
    skew = _shape(post, "skew_lr")
    assert np.quantile(skew, 0.05) > 0  # the wall on the high-lr side is found
    stars = np.median(post.flat("loss_star"), axis=0)
    settings = list(post.posterior["setting"].values)
    true_star = truth.set_index("setting").loc[settings, "loss_star"].to_numpy()
    assert np.max(np.abs(stars / true_star - 1)) < 0.003


def test_one_at_a_time_sweeps_find_the_optima_but_not_the_valleys_tilt(grid, one_at_a_time):
    """Varying lr at one batch and the batch at one lr shows each axis, never the diagonal:
    the tilt of the valley (how the best lr moves with the batch) stays near its prior,
    while the optimum of each setting is still found."""
    post, truth = one_at_a_time
    assert _coverage(post, truth, "m_lr", "lr_opt") >= 0.6
    tilt_grid, tilt_oat = np.std(_shape(grid[0], "tilt")), np.std(_shape(post, "tilt"))
    assert tilt_oat > 2 * tilt_grid
    assert _covers(post, "alpha", LAW.alpha, 0.98)


def test_random_search_recovers_the_law_and_the_gate_says_the_optima_are_unsettled():
    """Sixteen scattered runs per setting pin the exponents and the batch optima down, but not
    the lr optima: the chains settle the settings' lr effects and their spread differently
    (measured on this design: R-hat 1.5-2.4 whether 2 or 4 chains, 300 or 800 tuning steps,
    one curvature or two, shape terms linear or quadratic, the settings' optima centred or
    not; the 90% intervals of the lr optima held 4 to 7 of the 8). What must hold: the
    exponents, the batch optima, and a gate that says the fit has not converged (so no answer
    is given from it without ``allow_unconverged``). Issue 19's "fits that converge" is unmet
    for random search."""
    post, truth = _fit("random")
    for name in ("alpha", "beta", "gamma"):
        assert _covers(post, name, getattr(LAW, name), 0.98), name
    assert _coverage(post, truth, "m_bs", "batch_tokens_opt") >= 0.75
    assert not post.converged and "m_lr" in " ".join(post.diagnostics["problems"])


def test_a_symmetric_bowl_misplaces_the_optimum_of_a_skewed_surface(grid):
    """The deliberately wrong model: a bowl without walls, fitted on the same grid, puts the
    optimum of every setting on the low-lr side of the truth (it trades the steep high-lr
    wall for a wider, shifted bowl) and covers the true optima less often."""
    wrong, truth = _fit("grid", surface="bowl")
    right, _ = grid
    settings = list(wrong.posterior["setting"].values)
    true_lr = np.log(truth.set_index("setting").loc[settings, "lr_opt"].to_numpy())
    err_wrong = np.median(wrong.flat("m_lr"), axis=0) - true_lr
    err_right = np.median(right.flat("m_lr"), axis=0) - true_lr
    assert np.mean(np.abs(err_wrong)) > 1.5 * np.mean(np.abs(err_right))
    assert _coverage(wrong, truth, "m_lr", "lr_opt") < _coverage(right, truth, "m_lr", "lr_opt")
