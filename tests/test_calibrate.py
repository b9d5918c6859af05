"""Calibration runs (bayes_steplaw.calibrate): preposterior analysis by reweighting the loss
posterior's draws, the level-free likelihood, the plan's API and command, and, for a lab with
no runs yet, the plan against one grid sweep at the largest size (a pooled user's lab:
``tests/test_readme.py``, on the README's pooled fit, and ``benchmarks/bench_calibration.py``)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_steplaw.bayes.preposterior import (
    MAX_COMPUTE_FRACTION,
    MAX_N_FRACTION,
    Study,
    nearest,
    with_setting_scatter,
)
from bayes_steplaw.bayes.surface import run_logpdf
from bayes_steplaw.calibrate import CalibrationWarning, naive_runs, plan_calibration
from bayes_steplaw.cli import app

TARGET = (7e9, 1.4e11)
SMALL = pd.DataFrame({"N": [7e8, 7e7], "D": [1.4e10, 1.4e10]})
"""Two candidate settings (30 runs): keeps the fast tests to seconds."""


@pytest.fixture(scope="module")
def study(light_loss):
    """The analysis for the well-known group ``moe`` on the light shipped posterior."""
    return Study(light_loss, "moe", *TARGET, SMALL, 4096, seed=0)


@pytest.fixture(scope="module")
def quick_plan(light_loss):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        return plan_calibration(*TARGET, 3, group="moe", posterior=light_loss, candidates=SMALL,
                                truths=256, search_truths=32, seed=0)  # fmt: skip


def test_each_setting_gets_the_posteriors_own_scatter(light_loss):
    """A setting's surface is the group's law surface plus a new setting's scatter, as the
    posterior's own surface of a new setting draws it (same spread; slopes untouched)."""
    base = light_loss.surface("moe", seed=0, law=True)
    own = light_loss.surface("moe", seed=0)  # a seen group: only the scatter differs
    ours = with_setting_scatter(base, light_loss, np.random.default_rng(1))
    for key, law in (("m_lr", "lr"), ("m_bs", "bs")):
        np.testing.assert_array_equal(ours.coef[key][1:], base.coef[key][1:])
        sd = math.sqrt(np.mean(light_loss.flat(f"sigma_setting_{law}") ** 2))
        for surf in (own, ours):
            spread = np.std(surf.coef[key][0] - base.coef[key][0])
            assert spread == pytest.approx(sd, rel=0.2)
    sd = math.sqrt(np.mean(light_loss.flat("sigma_setting_star") ** 2))
    assert np.std(np.log(ours.coef["star_scale"])) == pytest.approx(sd, rel=0.2)


def test_the_level_free_likelihood_is_the_integral_over_the_level(study):
    rng = np.random.default_rng(0)
    truths = np.arange(0, 40, 8)
    runs = naive_runs(study.table, 3, study.base)
    sim = study.simulate(np.asarray(runs), truths, rng)
    one = study.level_free(sim, [0])
    three = study.level_free(sim, [0, 1, 2])
    # one run alone says (nearly) nothing about the draws; three runs do
    assert np.std(one, axis=1).max() < 0.2 < np.std(three, axis=1).mean()
    rows = sim["rows"]
    noise_all = study.surfaces[study.setting[rows[0]]].noise
    for t in range(len(truths)):
        for i in (0, 7, 99):
            y = sim["loss"][:, t]
            q, rel = study.pred["q"][rows, i], study.pred["rel"][rows, i]
            noise = {k: v[i] for k, v in noise_all.items()}
            h = np.log(y.mean()) + np.linspace(-0.03, 0.03, 30001)
            dens = sum(run_logpdf(y[r], np.exp(h) * (1 + q[r]), np.exp(h) * (1 + q[r]) * rel[r],
                                  q[r], noise) for r in range(3))  # fmt: skip
            exact = np.log(np.trapezoid(np.exp(dens - dens.max()), h)) + dens.max()
            assert three[t, i] == pytest.approx(exact, abs=0.5)


def test_the_full_likelihood_collapses_where_the_level_free_one_does_not(light_loss):
    ess = {}
    for likelihood in ("full", "relative"):
        s = Study(light_loss, "moe", *TARGET, SMALL, 4096, seed=0, likelihood=likelihood)
        runs = naive_runs(s.table, 6, s.base)
        truths = np.arange(0, light_loss.n_samples, 4)
        sim = s.simulate(np.asarray(runs), truths, np.random.default_rng(0))
        ess[likelihood] = np.median(s.decide(s.loglik(sim, list(range(6))), truths)[1])
    # each run pins its setting's loss level far tighter than the draws agree on it: a few
    # of the 64 truths carry the full likelihood's weight (10.3 on the shipped posterior)
    assert ess["full"] < 16 and ess["relative"] > 5 * ess["full"]


def test_a_plan_is_small_runs_of_the_candidates(quick_plan):
    plan = quick_plan
    N = TARGET[0]
    assert len(plan.runs) == 3 and len(plan.naive) == 3 and plan.n_candidates == 30
    assert (plan.runs["N"] <= MAX_N_FRACTION * N).all()
    assert (plan.runs["compute_fraction"] <= MAX_COMPUTE_FRACTION).all()
    keys = set(zip(SMALL["N"], SMALL["D"]))
    assert set(zip(plan.runs["N"], plan.runs["D"])) <= keys
    # the naive plan: one grid sweep at the largest setting
    assert set(plan.naive["N"]) == {7e8}
    assert plan.seq_len == 2048  # the fit's
    assert np.allclose(plan.runs["batch_tokens"], plan.runs["batch_sequences"] * 2048)
    for value in (plan.expected_excess_before, plan.expected_excess_after,
                  plan.expected_excess_naive):  # fmt: skip
        assert 0 < value < 0.5
    assert plan.difference[1] <= plan.difference[0] <= plan.difference[2]
    assert len(plan.per_truth) == 256
    assert plan.per_truth["after"].mean() == pytest.approx(plan.expected_excess_after)
    assert plan.runs["expected_excess_after"].iloc[-1] == pytest.approx(plan.expected_excess_after)
    json.dumps(plan.summary())
    assert list(plan.to_dataframe().columns[:4]) == ["run", "target_N", "target_D", "group"]


def test_a_plan_is_reproducible(light_loss, quick_plan):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        again = plan_calibration(*TARGET, 3, group="moe", posterior=light_loss, candidates=SMALL,
                                 truths=256, search_truths=32, seed=0)  # fmt: skip
    pd.testing.assert_frame_equal(again.runs, quick_plan.runs)
    assert again.difference == quick_plan.difference


def test_a_search_that_ends_below_the_naive_sweep_gives_way_to_it(light_loss, monkeypatch):
    """The plan is the naive sweep where that scores better on the search's simulations: here
    the search is made to end on the runs of the smaller setting farthest from its predicted
    optimum, which teach a never-seen group less than a sweep around the larger one's."""

    def farthest(self, budget, sim):
        rows = sim["rows"][np.isclose(self.table["N"].to_numpy()[sim["rows"]], 7e7)]
        far = nearest(self.table, rows, self.base)[::-1][:budget]
        return [int(np.flatnonzero(sim["rows"] == r)[0]) for r in far]

    monkeypatch.setattr(Study, "greedy", farthest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        plan = plan_calibration(*TARGET, 3, group="new", posterior=light_loss, candidates=SMALL,
                                truths=256, search_truths=64, seed=0)  # fmt: skip
    assert any("the plan is the naive sweep" in note for note in plan.notes)
    columns = ["N", "D", "lr", "batch_tokens"]
    pd.testing.assert_frame_equal(plan.runs[columns], plan.naive[columns])
    assert plan.difference == (0.0, 0.0, 0.0)


def test_runs_given_as_runs(light_loss):
    runs = pd.DataFrame({"N": [7e8] * 3 + [2e8] * 3, "D": [1.4e10] * 6,
                         "lr": [1e-3, 2e-3, 4e-3] * 2, "batch_sequences": [256] * 6})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        plan = plan_calibration(*TARGET, 2, group="moe", posterior=light_loss, candidates=runs,
                                seq_len=4096, truths=64, search_truths=16)  # fmt: skip
    assert plan.n_candidates == 6
    assert set(plan.runs["lr"].round(6)) <= {1e-3, 2e-3, 4e-3}
    assert (plan.runs["batch_tokens"] == 256 * 4096).all()


@pytest.mark.parametrize(
    ("candidates", "budget", "message"),
    [
        (pd.DataFrame({"N": [1e9], "D": [1e10]}), 1, "not small runs"),  # N > target / 10
        (pd.DataFrame({"N": [7e8], "D": [1e11]}), 1, "not small runs"),  # compute > 1%
        (pd.DataFrame({"N": [7e8]}), 1, "lack column"),
        (pd.DataFrame({"N": [7e8], "D": [1e10], "lr": [1e-3]}), 1, "without a batch"),
        (pd.DataFrame({"N": [7e8], "D": [-1.0]}), 1, "positive finite"),
        (SMALL.iloc[:1], 16, "exceeds the 15 candidate runs"),
    ],
)
def test_bad_candidates_are_refused(light_loss, candidates, budget, message):
    with pytest.raises(ValueError, match=message):
        plan_calibration(*TARGET, budget, group="moe", posterior=light_loss,
                         candidates=candidates)  # fmt: skip


def test_bad_arguments_are_refused(light_loss):
    with pytest.raises(KeyError):
        plan_calibration(*TARGET, 2, group="llama", posterior=light_loss)
    with pytest.raises(ValueError, match="likelihood"):
        plan_calibration(*TARGET, 2, group="moe", posterior=light_loss, likelihood="exact")
    with pytest.raises(ValueError, match="budget"):
        plan_calibration(*TARGET, 0, group="moe", posterior=light_loss)


def test_a_collapse_of_the_weights_warns(light_loss):
    with pytest.warns(CalibrationWarning, match="effective sample size has collapsed"):
        plan = plan_calibration(*TARGET, 4, group="moe", posterior=light_loss, candidates=SMALL,
                                likelihood="full", truths=64, search_truths=16)  # fmt: skip
    assert plan.notes and plan.ess["median"] < 20


def test_the_command(tmp_path):
    runner = CliRunner()
    candidates = tmp_path / "candidates.csv"
    SMALL.to_csv(candidates, index=False)
    out = tmp_path / "plan.csv"
    args = ["plan-calibration", "7B", "140B", "--group", "moe", "--budget", "2", "--draws", "100",
            "--truths", "64", "--candidates", str(candidates)]  # fmt: skip
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["runs"]) == 2 and len(payload["naive"]) == 2
    assert {"expected_excess_before", "expected_excess_after", "difference_vs_naive",
            "ess"} <= set(payload)  # fmt: skip
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "after one grid sweep of 2 runs" in result.stdout and out.is_file()
    assert len(pd.read_csv(out)) == 2
    # errors: one line each
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"N": [5e9], "D": [1e10]}).to_csv(bad, index=False)
    result = runner.invoke(app, [*args[:-1], str(bad)])
    assert result.exit_code == 2 and "not small runs" in result.output
    result = runner.invoke(app, ["plan-calibration", "7B", "140B"])
    assert result.exit_code == 2 and "--group" in result.output


# --------------------------------------------------------------------------- against the naive


@pytest.mark.slow
def test_the_planned_runs_lower_the_expected_excess_at_the_target(light_loss):
    """Issue 21: the planned runs, and the naive sweep (one small grid sweep at the largest
    affordable size), lower the expected loss excess at the target (fresh simulations), for a
    lab with no runs yet (``new``, the shipped posterior's 250 draws).

    Whether the plan beats the sweep depends on the posterior's draws, and is not asserted
    (on the shipped posterior's 936 draws plan minus sweep is +0.053% [+0.006, +0.108]; on
    pooled fits of a user's sweep, from -0.108% to +0.07%: docs/workflows/calibrate.rst). The
    pooled flow is benchmarks/bench_calibration.py's: its fit takes longer than this test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        plan = plan_calibration(*TARGET, 6, group="new", posterior=light_loss, seed=0,
                                truths=4096)  # fmt: skip
    assert plan.improvement[1] > 0  # the runs help, the interval excluding zero
    assert plan.expected_excess_after < plan.expected_excess_before
    assert plan.expected_excess_naive < plan.expected_excess_before
