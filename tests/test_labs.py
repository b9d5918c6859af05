"""Exponents that differ between labs, with known truth (issue 21).

Two labs' sweeps are drawn from known laws (:func:`bayes_steplaw.simulate_sweeps`): a
reference lab with eight settings, and a second lab of four small settings whose lr law has
another D-exponent (β lower by 0.4, about what separates the Step Law from Marin NAdamW). The
loss model with lab deviations (the default) is fitted on both and must find the deviation and
carry it to a far setting of the second lab; the model with exponents shared by every lab (the
deliberately wrong one here) must miss that setting. Drawn again with the reference's
exponents, the learned spread must shrink and the far interval stay about as narrow as the
shared model's. Small fits (2 chains), 90% intervals.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from test_planner import needs_chromium
from test_simulation import SETTINGS as REFERENCE  # eight settings of the reference lab
from test_simulation import SURFACE

import bayes_steplaw as bsl

pytestmark = pytest.mark.slow  # two small NUTS fits

OTHER = pd.DataFrame(
    [("lab-b", "lab-b", n, d) for n in (2e8, 6e8) for d in (4e9, 3e10)],
    columns=["family", "variant", "N", "D"],
)
LAW = bsl.TrueLaw()
LAW_B = replace(LAW, beta=LAW.beta - 0.4, offsets_lr={"lab-b": 0.2}, offsets_bs={})
FIT = dict(chains=2, draws=300, tune=300, progressbar=False, seed=3)
FAR = (6e8, 3e11)  # ten times the other lab's largest D


LAW_SAME = replace(LAW, offsets_lr={"lab-b": 0.2}, offsets_bs={})  # the reference's exponents


def sweeps(settings: pd.DataFrame = OTHER, law: bsl.TrueLaw = LAW_B) -> pd.DataFrame:
    """The reference lab's sweeps and the second lab's at ``settings``, drawn from ``law``."""
    ref, _ = bsl.simulate_sweeps(REFERENCE, LAW, SURFACE, seed=5)
    other, _ = bsl.simulate_sweeps(settings, law, SURFACE, seed=6)
    return pd.concat([ref.assign(lab="step-law"), other.assign(lab="lab-b")], ignore_index=True)


def _fit(law: bsl.TrueLaw = LAW_B, **model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bsl.ConvergenceWarning)
        return bsl.LossModel(**model).fit(sweeps(law=law), **FIT)


@pytest.fixture(scope="module")
def by_lab():
    return _fit()


@pytest.fixture(scope="module")
def shared():
    return _fit(exponents_vary_by=None)


@pytest.fixture(scope="module")
def same():
    return _fit(LAW_SAME)


@pytest.fixture(scope="module")
def same_shared():
    return _fit(LAW_SAME, exponents_vary_by=None)


def _interval(draws, prob=0.9):
    return np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2])


def test_the_other_labs_exponent_is_recovered(by_lab):
    labs = list(by_lab.metadata["labs"])
    assert labs == ["lab-b", "step-law"]
    dev = by_lab.flat("dev_beta_lab")[:, labs.index("lab-b")]
    # the truth sits at 2 prior sd (LAB_PRIORS: 0.2), and partial pooling pulls the estimate
    # toward 0: the 95% interval holds it
    lo, hi = _interval(dev, 0.95)
    assert lo <= -0.4 <= hi
    assert hi < 0  # and not the shared exponent
    assert np.allclose(by_lab.flat("dev_beta_lab")[:, labs.index("step-law")], 0)  # reference
    # the reference lab's own exponent is the shared one, recovered as in a one-lab fit
    assert _interval(by_lab.flat("beta"))[0] <= LAW.beta <= _interval(by_lab.flat("beta"))[1]


def test_a_far_setting_of_the_other_lab_is_covered_and_a_shared_one_misses_it(by_lab, shared):
    truth = float(LAW_B.optimum(*FAR, group="lab-b")[0])
    answers = {}
    for name, post in (("by_lab", by_lab), ("shared", shared)):
        pred = post.predict(*FAR, group="lab-b", kind="law", allow_unconverged=True)
        row = pred.to_dataframe(0.9).iloc[0]
        answers[name] = (row["lr_lower"], row["lr_median"], row["lr_upper"])
    lo, _, hi = answers["by_lab"]
    assert lo <= truth <= hi
    lo, median, hi = answers["shared"]
    assert not lo <= truth <= hi and median > truth  # β too high: lr too high far out in D


def test_the_other_labs_interval_widens_with_the_distance_from_its_data(by_lab):
    near = by_lab.predict(6e8, 3e10, group="lab-b", kind="law", allow_unconverged=True)
    far = by_lab.predict(*FAR, group="lab-b", kind="law", allow_unconverged=True)
    width = [float(np.log(row["lr_upper"] / row["lr_lower"]))
             for row in (p.to_dataframe(0.9).iloc[0] for p in (near, far))]  # fmt: skip
    assert width[1] > 1.5 * width[0]


def _lr_width(post, N: float, D: float) -> float:
    pred = post.predict(N, D, group="lab-b", kind="law", allow_unconverged=True)
    row = pred.to_dataframe(0.9).iloc[0]
    return float(np.log(row["lr_upper"] / row["lr_lower"]))


def test_shared_exponents_shrink_the_spread_and_keep_the_interval(same, same_shared, by_lab):
    """Both labs drawn with the same exponents: the spread of β shrinks below its prior's
    median and below the one a lab whose β differs by 0.4 leaves, the truth far from lab-b's
    data is covered, and the interval there is not needlessly wide against the model whose
    exponents are shared by construction. Measured: spreads 0.07 against 0.31 (prior median
    0.135); widths 0.31 against 0.28 (ln of upper / lower)."""
    spread = {name: float(np.median(post.flat("sigma_lab_beta")))
              for name, post in (("same", same), ("differs", by_lab))}  # fmt: skip
    assert spread["same"] < 0.2 * 0.674 and spread["same"] < spread["differs"] / 2, spread
    truth = float(LAW_SAME.optimum(*FAR, group="lab-b")[0])
    pred = same.predict(*FAR, group="lab-b", kind="law", allow_unconverged=True)
    row = pred.to_dataframe(0.9).iloc[0]
    assert row["lr_lower"] <= truth <= row["lr_upper"]
    widths = {name: _lr_width(post, *FAR) for name, post in (("same", same),
                                                              ("shared", same_shared))}  # fmt: skip
    assert widths["same"] <= 1.25 * widths["shared"], widths


@pytest.mark.slow
def test_a_lab_with_one_setting_starts_sampling(released):
    """A lab whose runs share one (N, D) gives its best-loss slopes' deviations no gradient at
    0: nutpie refused every start ("All initialization points failed") until they started off
    0 (found by benchmarks/bench_lab_transfer.py at k = 1). A short fit must start and record
    the lab's deviations."""
    user = pd.DataFrame({"family": "mine", "variant": "mine", "N": [1.5e8], "D": [3e9]})
    mine, _ = bsl.simulate_sweeps(user, bsl.TrueLaw(), seed=1, seq_len=4096,
                                  design="one-at-a-time")  # fmt: skip
    one_n = released[released["N"] == released["N"].min()].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bsl.ConvergenceWarning)
        post = bsl.fit(mine, with_released=True, released=one_n, chains=2, draws=20, tune=20,
                       seed=0, progressbar=False)  # fmt: skip
    labs = list(post.metadata["labs"])
    assert labs == ["step-law", "user"]
    dev = post.flat("dev_star_N_lab")[:, labs.index("user")]
    assert np.isfinite(dev).all() and np.ptp(dev) > 0  # it moved from its start


@needs_chromium
def test_the_planner_page_turns_the_other_labs_best_loss_as_python_does(by_lab, tmp_path):
    """The page's L* and optimum for the other lab, far from its data, equal Python's on the
    same draws: its lab's tilt of ln L* (``tilt_N``, ``tilt_D`` about its own centre) is
    computed in the page's JavaScript, which the shipped one-lab posterior never exercises."""
    from test_planner import Chromium, read_page, serve, site

    from bayes_steplaw.web import export_web, planner_posterior

    file = planner_posterior(by_lab).save(tmp_path / "pooled.nc")
    data = export_web(tmp_path / "planner.json", file, allow_unconverged=True)
    post = bsl.load(file)
    tilt = post.surface("lab-b", seed=0).coef["star"]
    assert np.ptp(tilt["tilt_N"]) > 0 and np.ptp(tilt["tilt_D"]) > 0  # a tilt to apply
    N, D = FAR  # 6e8, 3e11: as the page is asked below
    star = bsl.best_loss(N, D, group="lab-b", posterior=post, allow_unconverged=True)
    star = star.to_dataframe(0.9).iloc[0]
    pred = post.predict(N, D, group="lab-b", allow_unconverged=True).to_dataframe(0.9).iloc[0]
    browser = Chromium()
    try:
        with serve(site(tmp_path / "site", data)) as url:
            state = browser.open(f"{url}/planner.html?N=6e8&D=3e11&group=lab-b")
            page = read_page(browser)
    finally:
        browser.close()
    assert state == "ready", page["errors"]
    nums = page["numbers"]
    for stat in ("median", "lower", "upper"):
        for shown, want in ((f"out-loss_star_{stat}", star[f"loss_star_{stat}"]),
                            (f"out-lr_{stat}", pred[f"lr_{stat}"])):  # fmt: skip
            assert abs(nums[shown]["value"] / want - 1) <= 1e-6, (shown, nums[shown], want)


@pytest.mark.slow
def test_a_lab_with_one_setting_mixes():
    """Nothing pins a lab's best-loss slopes where its settings hold one N and one D (they are
    its level): centred with a learned spread, they and their spread formed a funnel (a
    held-out MoE variant from one setting: R-hat 1.72 and 11 divergences at 2 x 500 draws);
    here, in this file's short fits, their R-hat was 1.23-1.54. With a fixed spread they
    must mix, and so must the lab's lr and divergence levels. (Its best-loss level moves with
    the best-loss law's shared parameters, which these 2 x 300 draws do not mix: R-hat 1.12
    against their 1.32.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bsl.ConvergenceWarning)
        post = bsl.LossModel().fit(sweeps(OTHER.iloc[[0]]), **FIT)
    per_var = post.diagnostics["variables"]
    slopes = ("dev_star_N_lab", "dev_star_D_lab", "dev_lr_lab", "dev_div_lab")
    r_hat = {name: round(per_var[name]["r_hat"], 3) for name in slopes}
    assert max(r_hat.values()) < 1.05, r_hat


def test_the_optimum_model_has_the_same_lab_terms():
    """The optimum model (each setting's plateau and best runs) gets the loss model's lab
    terms: the other lab's levels and deviations of α, β, γ. It must lean toward β's
    deviation (measured: median -0.22, 95% [-0.42, +0.03]) and predict the far setting near
    the truth (median off by 0.1%), where the same model with shared exponents is 1.6x too
    high."""
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bsl.ConvergenceWarning)
        for name, vary in (("by_lab", "lab"), ("shared", None)):
            fits[name] = bsl.OptimumModel(exponents_vary_by=vary).fit(sweeps(), **FIT)
    post = fits["by_lab"]
    labs = list(post.metadata["labs"])
    dev = post.flat("dev_beta_lab")[:, labs.index("lab-b")]
    lo, hi = _interval(dev, 0.95)
    assert lo <= -0.4 <= hi and np.median(dev) < -0.1
    assert "dev_lr_lab" in post.variables and "dev_beta_lab" not in fits["shared"].variables
    truth = float(LAW_B.optimum(*FAR, group="lab-b")[0])
    rows = {name: fit.predict(*FAR, group="lab-b", kind="law", allow_unconverged=True)
            .to_dataframe(0.9).iloc[0] for name, fit in fits.items()}  # fmt: skip
    error = {name: abs(np.log(row["lr_median"] / truth)) for name, row in rows.items()}
    assert rows["by_lab"]["lr_lower"] <= truth <= rows["by_lab"]["lr_upper"]
    assert error["by_lab"] < 0.15 and error["shared"] > 0.3, error
