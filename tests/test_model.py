"""NUTS fits of the hierarchical law on sweeps simulated from a known truth.

Most fits here are the optimum model's (``model="optimum"``: a table of each setting's best
runs); the gate and the seed are checked on the default fit, the loss model's."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import FAST
from conftest import SIM_LAW as LAW
from conftest import SIM_SETTINGS as SETTINGS
from conftest import quiet_fit as _fit

import bayes_steplaw as bsl
from bayes_steplaw.bayes.law import PRIORS
from bayes_steplaw.bayes.optimum import OptimumModel


@pytest.fixture
def simulated(simulated_optimum):
    return simulated_optimum


@pytest.mark.slow
def test_recovers_exponents(simulated):
    _, _, post = simulated
    summary = post.summary(0.95)
    for name in ("alpha", "beta", "gamma"):
        lo, hi = summary.loc[name, ["lower", "upper"]]
        assert lo < getattr(LAW, name) < hi, (name, lo, hi)
        assert hi - lo < 0.4  # informative, not just the prior (prior 95% width is 3.9)
    # short tuning may leave a stray divergence; a broken geometry gives dozens
    assert post.diagnostics["divergences"] <= 0.01 * FAST["chains"] * FAST["draws"]
    assert post.diagnostics["max_r_hat"] < 1.05


@pytest.mark.slow
@pytest.mark.parametrize("group", ["dense", "moe/a", "moe/b"])
def test_law_predictions_cover_the_true_law(simulated, group):
    _, _, post = simulated
    N = np.array([3e8, 1e9, 2e9])
    D = np.array([5e9, 3e10, 8e10])
    res = post.predict(N, D, group=group, kind="law", allow_unconverged=True)
    ci = res.interval(0.95, method="eti")
    lr, bs = LAW.optimum(N, D, group)
    for q, truth in (("lr", lr), ("batch_tokens", bs)):
        lower, upper = ci[q].sel(bound="lower").values, ci[q].sel(bound="upper").values
        assert ((lower < truth) & (truth < upper)).all(), (q, lower, truth, upper)


@pytest.mark.slow
def test_offsets_contrast_has_the_right_sign(simulated):
    _, _, post = simulated
    table = post.compare_offsets("moe/b", "moe/a")
    true_lr = LAW.offsets_lr["moe/b"] - LAW.offsets_lr["moe/a"]
    true_bs = LAW.offsets_bs["moe/b"] - LAW.offsets_bs["moe/a"]
    assert table.loc["lr", "lower"] < true_lr < table.loc["lr", "upper"]
    assert table.loc["batch_tokens", "lower"] < true_bs < table.loc["batch_tokens", "upper"]
    assert table.loc["batch_tokens", "prob_positive"] > 0.9  # true contrast +0.4


@pytest.mark.slow
def test_run_predictions_are_wider_than_law_predictions(simulated):
    _, _, post = simulated
    law = post.predict(1e9, 2e10, kind="law", allow_unconverged=True).interval(0.9)
    new = post.predict(1e9, 2e10, kind="optimum", allow_unconverged=True).interval(0.9)

    def ratio(interval):
        return float(interval["lr"].sel(bound="upper") / interval["lr"].sel(bound="lower"))

    assert ratio(new) > ratio(law)  # a new setting's optimum scatters around the law


@pytest.mark.slow
def test_metadata_and_roundtrip(simulated, tmp_path):
    sweeps, _, post = simulated
    meta = post.metadata
    assert meta["n_settings"] == len(SETTINGS)
    assert meta["n_runs"] == len(bsl.near_optimal(sweeps))
    assert meta["N_range"] == [2e8, 2e9]
    assert meta["sampler"]["draws"] == FAST["draws"]
    assert meta["seed"] == 3 and len(meta["data_sha256"]) == 64
    back = bsl.load(post.save(tmp_path / "p.nc"))
    assert back.metadata == json_roundtrip(meta)
    np.testing.assert_array_equal(back.flat("alpha"), post.flat("alpha"))


def json_roundtrip(obj):
    import json

    return json.loads(json.dumps(obj))


@pytest.mark.slow
def test_gate_warns_names_parameters_and_blocks_predict():
    sweeps, _ = bsl.simulate_sweeps(SETTINGS, LAW, seed=4)
    with pytest.warns(bsl.ConvergenceWarning, match="ESS < 400 for .*alpha"):
        post = bsl.fit(sweeps, chains=2, draws=50, tune=50, progressbar=False)
    assert isinstance(post, bsl.LossPosterior) and not post.converged  # the default model
    with pytest.raises(bsl.ConvergenceError, match="allow_unconverged"):
        post.predict(1e9, 1e10)


@pytest.mark.slow
def test_batch_depends_on_N_recovers_delta():
    law = bsl.TrueLaw(delta=0.25)
    sweeps, _ = bsl.simulate_sweeps(SETTINGS, law, seed=5)
    post = _fit(sweeps, model="optimum", batch_depends_on_N=True, seed=5)
    lo, hi = post.summary(0.95).loc["delta", ["lower", "upper"]]
    assert lo < 0.25 < hi and lo > 0


@pytest.mark.slow
def test_same_seed_same_posterior():
    sweeps, _ = bsl.simulate_sweeps(SETTINGS, LAW, seed=6)
    # the default model, the loss model; a few draws: equal or not, the seed decides. One
    # model sampled twice: in one process a second build is the same graph (its compiling,
    # about 10 s, tests nothing more), and what a seed fixes is the sampler's path
    prepared = bsl.LossModel().prepare(sweeps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bsl.ConvergenceWarning)
        a, b = (prepared.fit(**{**FAST, "seed": 11, "draws": 30, "tune": 30}) for _ in "ab")
    np.testing.assert_array_equal(a.flat("alpha"), b.flat("alpha"))
    np.testing.assert_array_equal(a.flat("shape_coef"), b.flat("shape_coef"))


@pytest.mark.slow
def test_bad_arguments():
    sweeps, _ = bsl.simulate_sweeps(SETTINGS, LAW, seed=7)
    with pytest.raises(ValueError, match="sampler must be one of"):
        bsl.fit(sweeps, sampler="metropolis", **FAST)
    with pytest.raises(ValueError, match="model must be one of"):
        bsl.fit(sweeps, model="chinchilla")
    with pytest.raises(ValueError, match=r"group column\(s\) \['arch'\]"):
        bsl.fit(sweeps, groups=("arch",))
    with pytest.raises(ValueError, match=r"missing required column\(s\): loss"):
        bsl.fit(sweeps.drop(columns="loss"))  # read as read_sweeps reads a table
    with pytest.raises(ValueError, match="lacks column"):
        bsl.OptimumModel().fit(sweeps.drop(columns="loss"))
    bad = sweeps.copy()
    bad.loc[3, "lr"] = np.nan
    bad.loc[[5, 6], "batch_tokens"] = 0.0
    with pytest.raises(ValueError, match=r"'lr': .* row 3; column 'batch_tokens': .* rows 5, 6"):
        bsl.OptimumModel().fit(bad)  # a NaN start, which nutpie reports naming no column
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        bsl.fit(sweeps, draws=0)


@pytest.mark.slow  # compiles a one-parameter model
def test_a_model_no_chain_can_start_says_which_term_is_not_finite():
    """nutpie's "All initialization points failed" names no term; the error names them."""
    import pymc as pm

    from bayes_steplaw.bayes.sampling import compile_model, run_nuts

    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0)
        pm.Potential("broken", pm.math.log(x - 100.0))  # NaN wherever a chain may start
    with pytest.raises(RuntimeError, match="not finite at the start: broken"):
        run_nuts(compile_model(model), chains=2, draws=5, tune=5, seed=0, target_accept=0.9,
                 progressbar=False)  # fmt: skip


@pytest.mark.slow
def test_prior_predictive_allows_every_plausible_lr_and_batch():
    """The priors put mass on lr from 1e-5 to 1e-1 and batch from 1e4 to 1e8 tokens."""
    import pymc as pm

    sweeps, _ = bsl.simulate_sweeps(SETTINGS, LAW, seed=8)
    with OptimumModel(("family", "variant")).build(sweeps).model:
        prior = pm.sample_prior_predictive(draws=4000, random_seed=0)
    lr = np.exp(prior.prior_predictive["log_lr"].values.ravel())
    bs = np.exp(prior.prior_predictive["log_bs"].values.ravel())
    for lo, hi, values in ((1e-5, 1e-1, lr), (1e4, 1e8, bs)):
        edges = np.logspace(np.log10(lo), np.log10(hi), 5)
        counts = np.histogram(values, edges)[0]
        # every decade-wide band of the plausible range keeps at least 1% of the prior mass
        assert (counts / values.size > 0.01).all(), counts
    assert PRIORS["c"][1] == pytest.approx(np.log(1e-3))


@pytest.mark.slow
def test_interval_coverage_over_repeats():
    """Fast version of benchmarks/bench_coverage.py: 90% intervals over 4 simulated sweeps."""
    hits = []
    for seed in range(20, 24):
        sweeps, _ = bsl.simulate_sweeps(SETTINGS, LAW, seed=seed)
        post = _fit(sweeps, model="optimum", seed=seed)
        summary = post.summary(0.9)
        hits += [
            summary.loc[name, "lower"] < getattr(LAW, name) < summary.loc[name, "upper"]
            for name in ("alpha", "beta", "gamma")
        ]
        contrast = post.compare_offsets("moe/b", "moe/a", prob=0.9)
        for law, row in (("lr", "lr"), ("bs", "batch_tokens")):
            offsets = getattr(LAW, f"offsets_{law}")
            true = offsets["moe/b"] - offsets["moe/a"]
            hits.append(contrast.loc[row, "lower"] < true < contrast.loc[row, "upper"])
    # 20 checks at nominal 0.9: fewer than 15 hits has probability < 5% under calibration
    assert sum(hits) >= 15, hits


@pytest.mark.slow
def test_building_a_model_prints_no_notice_of_another_library(tmp_path):
    # ArviZ >= 0.22 warns once a day, on import, that it is being refactored; PyMC imports it
    # unguarded. A fresh cache folder makes that notice due: a model prepared from a new
    # process must not pass it on (FutureWarnings are errors here)
    code = (
        "import bayes_steplaw as bsl\n"
        "runs = bsl.simulate_sweeps(seed=0)[0]\n"
        "bsl.LossModel().prepare(runs)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "refactor" not in res.stderr
