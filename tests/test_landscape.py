"""The loss-landscape model: recovery from simulated sweeps, plateau probabilities against
independent computations, the decision API, I/O and the CLI."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import xarray as xr
from conftest import LANDSCAPE_BOWL as TRUE_BOWL
from conftest import LANDSCAPE_LAW as TRUE_LAW
from scipy import stats
from typer.testing import CliRunner

import bayes_steplaw.bayes.posterior as posterior_module
from bayes_steplaw.bayes.hierarchy import Hierarchy
from bayes_steplaw.bayes.landscape import LandscapeModel, LandscapePosterior, landscape_runs
from bayes_steplaw.bayes.law import Prediction, StepLawPosterior
from bayes_steplaw.bayes.posterior import model_versions
from bayes_steplaw.cli import app
from bayes_steplaw.datasets.simulate import simulate_sweeps

LOG_N0, LOG_D0 = float(np.log(5e8)), float(np.log(2e10))
LOG_LR0, LOG_BS0 = float(np.log(1e-3)), float(np.log(1e6))  # hand-made law at N0, D0
HIER = Hierarchy.from_dict(
    {
        "levels": [
            {"column": "family", "kind": "nested", "labels": ["dense", "moe"], "parents": ["", ""]}
        ]
    }
)


def handmade(
    n: int = 4000,
    *,
    c=LOG_LR0,
    d=LOG_BS0,
    a=0.01,
    b=0.008,
    rho=0.0,
    k=1.0,
    sigma0=1e-3,
    sigma1=0.0,
    nu=5.0,
    sd_c=0.0,
    sd_d=0.0,
    seed=0,
) -> LandscapePosterior:
    """A landscape posterior from hand-made draws of known values (one chain)."""
    rng = np.random.default_rng(seed)

    def draws(value, sd=0.0):
        return (np.asarray(value, float) + sd * rng.standard_normal(n))[None] * np.ones((1, n))

    zero = draws(0.0)
    scalars = {
        "c": draws(c, sd_c),
        "d": draws(d, sd_d),
        "alpha": draws(-0.7),
        "beta": draws(0.3),
        "gamma": draws(0.55),
        "sigma_setting_lr": zero,
        "sigma_setting_bs": zero,
        "sigma_lr_family": draws(0.1),
        "sigma_bs_family": draws(0.1),
        "curv_lr": draws(np.log(a)),
        "curv_bs": draws(np.log(b)),
        "rho": draws(rho),
        "log_asymmetry": draws(np.log(k)),
        "asymmetry": draws(k),
        "sigma_loss": draws(sigma0),
        "sigma_loss_q": draws(sigma1),
        "nu": draws(nu),
    }
    data = {name: (("chain", "draw"), v) for name, v in scalars.items()}
    for law in ("lr", "bs"):
        data[f"a_{law}_family"] = (("chain", "draw", "level_family"), np.zeros((1, n, 2)))
    ds = xr.Dataset(
        data, coords={"chain": [0], "draw": np.arange(n), "level_family": ["dense", "moe"]}
    )
    meta = {
        "model": "landscape",
        "model_version": model_versions()["landscape"],
        "hierarchy": HIER.to_dict(),
        "groups": ["family", "variant"],
        "batch_depends_on_N": False,
        "log_n0": LOG_N0,
        "log_d0": LOG_D0,
        "N_range": [1e8, 1e10],
        "D_range": [1e9, 1e12],
        "n_runs": 0,
        "n_settings": 0,
        "window": 0.03,
        "curvature": "shared",
        "curvature_column": None,
        "diagnostics": {"converged": True, "problems": [], "variables": {}},
        "sampler": {"name": "hand", "chains": 1, "draws": n, "tune": 0, "target_accept": 0.9},
        "seed": 0,
    }
    post = StepLawPosterior.from_datasets({"posterior": ds}, meta)
    assert isinstance(post, LandscapePosterior)
    return post


N0, D0 = float(np.exp(LOG_N0)), float(np.exp(LOG_D0))  # the law is c, d here


# --------------------------------------------------------------------------- exact checks


def test_plateau_probability_matches_closed_form():
    """Optimum ln lr ~ Normal(mu, s) (draws), symmetric bowl without cross term: at batch
    offset y, q <= tol iff |ln lr - m| <= w, w = sqrt((tol - b y^2)/a): P = Phi((l-mu+w)/s) -
    Phi((l-mu-w)/s)."""
    mu, s, a, b, tol = np.log(1e-3), 0.3, 0.01, 0.008, 0.0025
    post = handmade(200_000, c=mu, sd_c=s, a=a, b=b)
    y = 0.3
    lr = np.exp(mu + np.linspace(-1.2, 1.2, 9))
    got = post.plateau_probability(N0, D0, lr, np.exp(np.log(1e6) + y), tol=tol)
    w = np.sqrt((tol - b * y * y) / a)
    l_ = np.log(lr)
    want = stats.norm.cdf((l_ - mu + w) / s) - stats.norm.cdf((l_ - mu - w) / s)
    np.testing.assert_allclose(got, want, atol=4e-3)


def test_plateau_probability_equals_direct_fraction_with_cross_term_and_asymmetry():
    """Against the fraction of draws whose q at the point is <= tol, q computed here."""
    post = handmade(5000, sd_c=0.4, sd_d=0.5, rho=-0.6, k=3.0, seed=3)
    lr = np.exp(np.log(1e-3) + np.linspace(-1.5, 1.5, 13))[None, :]
    bs = np.exp(np.log(1e6) + np.linspace(-1.5, 1.5, 11))[:, None]
    got = post.plateau_probability(N0, D0, lr, bs, tol=0.003)
    c = post.flat("c")
    d = post.flat("d")
    a, b, k = 0.01, 0.008, 3.0
    h = -0.6 * np.sqrt(a * b * min(1.0, k))
    x = np.log(lr)[..., None] - c
    y = np.log(bs)[..., None] - d
    q = np.where(x > 0, a * k, a) * x**2 + b * y**2 + 2 * h * x * y
    want = (q <= 0.003).mean(axis=-1)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got.shape == (11, 13)
    # relative_loss draws are the same q
    rl = post.relative_loss(N0, D0, lr, bs)
    np.testing.assert_allclose(rl.draws, q, rtol=1e-12)
    np.testing.assert_allclose(rl.prob_within(0.003), want, atol=1e-12)


def test_predictive_probability_includes_noise():
    """With run noise sigma0·t_nu (sigma1 = 0): P = E_draws[F_t((tol - q)/sigma0)]."""
    post = handmade(100_000, sd_c=0.2, sigma0=2e-3, nu=4.0, seed=1)
    lr = np.exp(np.log(1e-3) + np.array([-1.0, -0.3, 0.0, 0.4]))
    got = post.plateau_probability(N0, D0, lr, 1e6, tol=0.0025, predictive=True)
    x = np.log(lr)[:, None] - post.flat("c")
    q = 0.01 * x**2
    want = stats.t.cdf((0.0025 - q) / 2e-3, 4.0).mean(axis=1)
    np.testing.assert_allclose(got, want, atol=6e-3)
    plain = post.plateau_probability(N0, D0, lr, 1e6, tol=0.0025)
    assert not np.allclose(got, plain)


@pytest.mark.slow
def test_probability_relative_to_a_sweeps_best_run_matches_a_direct_simulation():
    """reference="sweep": the run's loss within tol of the best of a grid sweep. A direct
    simulation (own code: random grid phase, Student-t run noise, the sweep's minimum) gives
    the same probability; the event is rarer than the one relative to L*."""
    a, b, s0, nu, tol = 0.01, 0.008, 2e-3, 4.0, 0.0025
    post = handmade(40_000, a=a, b=b, sigma0=s0, nu=nu, seed=2)
    lr = np.exp(np.log(1e-3) + np.array([-0.6, 0.0, 0.5]))
    got = post.plateau_probability(N0, D0, lr, 1e6, tol=tol, reference="sweep", seed=5)
    rng = np.random.default_rng(11)
    n = 200_000
    # the sweep: 11 lr values sqrt(2) apart and 7 batch values 2x apart, random phase
    gx = (np.arange(11) - 5 + rng.uniform(-0.5, 0.5, (n, 1))) * np.log(2) / 2
    gy = (np.arange(7) - 3 + rng.uniform(-0.5, 0.5, (n, 1))) * np.log(2)
    q = a * gx[:, :, None] ** 2 + b * gy[:, None, :] ** 2
    best = (q + s0 * rng.standard_t(nu, q.shape)).reshape(n, -1).min(axis=1)
    x = np.log(lr)[:, None] - np.log(1e-3)
    run = a * x**2 + s0 * rng.standard_t(nu, (len(lr), n))
    want = (1 + run <= (1 + tol) * (1 + best)).mean(axis=1)
    np.testing.assert_allclose(got, want, atol=0.01)
    assert (got < post.plateau_probability(N0, D0, lr, 1e6, tol=tol, predictive=True)).all()
    with pytest.raises(ValueError, match="reference must be one of"):
        post.plateau_probability(N0, D0, 1e-3, 1e6, reference="L*")
    with pytest.raises(ValueError, match="lr step must be a ratio"):
        post.plateau_probability(N0, D0, 1e-3, 1e6, reference="sweep", sweep_grid=(1, 2, 3, 3))


def test_broadcasting_scalars_and_speed():
    post = handmade(4000, sd_c=0.3, sd_d=0.3, rho=-0.4, k=2.0)
    p = post.plateau_probability(N0, D0, 1e-3, 1e6)
    assert isinstance(p, float) and 0 < p <= 1
    assert post.plateau_probability(N0, D0, [1e-3, 2e-3], 1e6).shape == (2,)
    assert post.plateau_probability(N0, D0, np.ones((3, 1)) * 1e-3, [1e6, 2e6]).shape == (3, 2)
    lr = np.geomspace(1e-4, 1e-2, 100)[None, :]
    bs = np.geomspace(1e5, 1e7, 100)[:, None]
    post.plateau_probability(N0, D0, lr, bs)  # warm-up
    start = time.perf_counter()
    grid = post.plateau_probability(N0, D0, lr, bs)
    elapsed = time.perf_counter() - start
    assert grid.shape == (100, 100)
    assert elapsed < 1.0  # ~50 ms on an idle core; slack for shared CI machines
    rl = post.relative_loss(N0, D0, [1e-3, 2e-3], 1e6)
    assert rl.draws.shape == (2, 4000)
    assert rl.to_dataframe().shape[0] == 2


def test_recommend_bayes_decision_and_fixed_batch():
    # symmetric bowl: the decision is the median optimum
    post = handmade(4000, sd_c=0.3, sd_d=0.3, seed=2)
    rec = post.recommend(N0, D0)
    assert rec.lr == pytest.approx(1e-3, rel=0.03)
    assert rec.batch_tokens == pytest.approx(1e6, rel=0.05)
    # asymmetric (high-lr side 4x steeper): the decision shades lr down
    post = handmade(4000, sd_c=0.3, sd_d=0.3, k=4.0, seed=2)
    rec = post.recommend(N0, D0)
    assert rec.lr < 0.9 * rec.lr_median_optimum
    assert 0 < rec.plateau_probability < 1 and rec.expected_relative_loss > 0
    # brute-force check of the minimiser of E[q] along lr
    grid = np.exp(np.log(1e-3) + np.linspace(-0.6, 0.3, 181))
    risk = post.expected_relative_loss(N0, D0, grid, rec.batch_tokens)
    assert rec.lr == pytest.approx(grid[np.argmin(risk)], rel=0.01)
    # fixed batch with a diagonal valley (rho < 0): a larger batch wants a larger lr
    post = handmade(4000, sd_c=0.2, sd_d=0.2, rho=-0.7, seed=2)
    small = post.recommend(N0, D0, batch_tokens=5e5)
    large = post.recommend(N0, D0, batch_tokens=2e6)
    assert small.fixed_batch and small.batch_tokens == pytest.approx(5e5)
    assert large.lr > small.lr
    # with a fixed batch the best lr follows x = -h y / a
    h = -0.7 * np.sqrt(0.01 * 0.008)
    want = np.exp(np.log(1e-3) - h / 0.01 * np.log(2.0))
    assert large.lr == pytest.approx(want, rel=0.05)


def test_plateau_region_bounds():
    post = handmade(4000, sd_c=0.1, sd_d=0.1, rho=-0.5)
    region = post.plateau_region(N0, D0, tol=0.0025, min_prob=0.5, n_grid=61)
    assert region.probability.shape == (61, 61)
    assert not region.empty
    inside = region.bounds.dropna()
    assert (inside["lr_min"] <= inside["lr_max"]).all()
    # the valley: lr bounds rise with the batch
    assert inside["lr_min"].iloc[-1] > inside["lr_min"].iloc[0]
    i = np.argmin(np.abs(np.log(region.batch_tokens) - np.log(1e6)))
    row = region.probability[i]
    assert row[region.lr < region.bounds["lr_min"].iloc[i]].max(initial=0) < 0.5


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: p.plateau_probability(N0, D0, -1e-3, 1e6), "lr must be positive"),
        (lambda p: p.plateau_probability(N0, D0, 1e-3, np.nan), "batch_tokens must be positive"),
        (lambda p: p.plateau_probability(N0, D0, 1e-3, 1e6, tol=0), "tol must be"),
        (lambda p: p.plateau_probability([N0, -N0], D0, 1e-3, 1e6), "N must be positive"),
        (lambda p: p.plateau_probability(N0, D0, [1e-3] * 2, [1e6] * 3), "broadcast"),
        (lambda p: p.plateau_region(N0, D0, min_prob=1.5), "prob must be"),
        (lambda p: p.recommend(N0, -1.0), "D must be positive"),
        (lambda p: p.recommend(N0, D0, seq_len=0), "seq_len"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(handmade(100))


def test_unknown_group_and_unconverged():
    post = handmade(100)
    with pytest.raises(KeyError, match="unknown group"):
        post.plateau_probability(N0, D0, 1e-3, 1e6, group="gpt")
    post.metadata["diagnostics"] = {"converged": False, "problems": ["R-hat > 1.01 for c"]}
    from bayes_steplaw.bayes.sampling import ConvergenceError

    with pytest.raises(ConvergenceError):
        post.recommend(N0, D0)
    assert post.recommend(N0, D0, allow_unconverged=True).lr > 0


def test_window_filter():
    sweeps, _ = simulate_sweeps(seed=0)
    runs = landscape_runs(sweeps, 0.01)
    assert (runs["rel_loss"] <= 0.01).all() and runs["setting"].nunique() == sweeps[
        "setting"
    ].nunique()
    with pytest.raises(ValueError, match="window"):
        landscape_runs(sweeps, 0)
    with pytest.raises(ValueError, match="curvature"):
        LandscapeModel(curvature="wiggly")


# --------------------------------------------------------------------------- NUTS recovery


@pytest.fixture
def fitted(simulated_landscape):
    return simulated_landscape


@pytest.mark.slow
def test_recovers_bowl_and_law(fitted):
    post, _, _ = fitted
    assert isinstance(post, LandscapePosterior)
    s = post.summary()

    def covers(name, value, width=0.995):
        lo, hi = np.quantile(post.flat(name), [(1 - width) / 2, (1 + width) / 2])
        assert lo <= value <= hi, (name, lo, value, hi)

    covers("curv_lr", np.log(TRUE_BOWL.a))
    covers("curv_bs", np.log(TRUE_BOWL.b))
    covers("rho", TRUE_BOWL.h / np.sqrt(TRUE_BOWL.a * TRUE_BOWL.b))
    covers("asymmetry", TRUE_BOWL.asymmetry)
    assert (post.flat("rho") < 0).mean() > 0.99  # the cross term's sign
    assert (post.flat("asymmetry") > 1).mean() > 0.99
    for name in ("alpha", "beta", "gamma"):
        assert abs(s.loc[name, "mean"] - getattr(TRUE_LAW, name)) < 0.1, name
    assert post.diagnostics["divergences"] <= 5


@pytest.mark.slow
def test_setting_optima_and_fit_checks(fitted):
    post, sweeps, truth = fitted
    design = post.run_design(sweeps)
    assert len(design.runs) == post.metadata["n_runs"]
    m = post.flat("m_lr").mean(axis=0)
    order = truth.set_index("setting").loc[design.settings]
    np.testing.assert_allclose(m, np.log(order["lr_opt"]), atol=0.1)
    ll = post.log_likelihood(sweeps)
    assert ll.shape == (2, 300, len(design.runs)) and np.isfinite(ll).all()


@pytest.mark.slow
def test_log_likelihood_matches_pymc(fitted):
    """The numpy log-likelihood used for LOO equals PyMC's, on draws from the prior."""
    import arviz as az
    import pymc as pm

    post, sweeps, _ = fitted
    model = LandscapeModel(curvature="ND+group").build(sweeps).model
    with model:
        prior = pm.sample_prior_predictive(draws=4, random_seed=0).prior
    theirs = pm.compute_log_likelihood(
        az.InferenceData(posterior=prior), model=model, extend_inferencedata=False,
        progressbar=False,
    )["loss"].values  # fmt: skip
    meta = {**post.metadata, "curvature": "ND+group", "curvature_column": "family"}
    other = LandscapePosterior({"posterior": prior}, meta)
    np.testing.assert_allclose(other.log_likelihood(sweeps), theirs, rtol=1e-7, atol=1e-7)


@pytest.mark.slow
def test_predict_and_round_trip(fitted, tmp_path):
    post, _, _ = fitted
    pred = post.predict(5e8, 2e10, allow_unconverged=True)
    assert isinstance(pred, Prediction)
    assert pred.median().shape == (1, 3)
    path = post.save(tmp_path / "landscape.nc")
    back = StepLawPosterior.load(path)
    assert isinstance(back, LandscapePosterior)
    args = (5e8, 2e10, [1e-3, 2e-3], [1e6, 2e6])
    np.testing.assert_array_equal(
        back.plateau_probability(*args, allow_unconverged=True),
        post.plateau_probability(*args, allow_unconverged=True),
    )
    assert back.metadata["curvature"] == "shared" and back.metadata["window"] == 0.03
    assert "log_likelihood" not in back.groups


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_post(monkeypatch):
    post = handmade(2000, sd_c=0.2, sd_d=0.2, rho=-0.5, k=2.0)
    monkeypatch.setattr(posterior_module, "load_default", lambda model="optimum": post)
    return post


def test_cli_plateau_and_recommend(cli_post):
    runner = CliRunner()
    res = runner.invoke(app, ["plateau", "5e8", "2e10", "--lr", "1e-3", "--batch-tokens", "1M"])
    assert res.exit_code == 0, res.output
    assert "P(loss within 0.25% of the setting's best)" in res.output
    res = runner.invoke(
        app, ["plateau", "500M", "20B", "--lr", "1e-3", "--batch-tokens", "1e6", "--json"]
    )
    payload = json.loads(res.stdout)
    want = cli_post.plateau_probability(5e8, 2e10, 1e-3, 1e6)
    assert payload["plateau_probability"] == pytest.approx(want)
    res = runner.invoke(app, ["recommend", "5e8", "2e10", "--batch-tokens", "2M", "--json"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert rec["fixed_batch"] and rec["batch_tokens"] == pytest.approx(2e6)
    res = runner.invoke(app, ["recommend", "5e8", "2e10"])
    assert res.exit_code == 0 and "peak lr" in res.output


@pytest.mark.parametrize(
    "args",
    [
        ["plateau", "5e8", "2e10", "--lr", "-1e-3", "--batch-tokens", "1M"],
        ["plateau", "5e8", "2e10", "--lr", "abc", "--batch-tokens", "1M"],
        ["plateau", "-5e8", "2e10", "--lr", "1e-3", "--batch-tokens", "1M"],
        ["plateau", "5e8", "2e10", "--lr", "1e-3", "--batch-tokens", "1M", "--tol", "0"],
        ["plateau", "5e8", "2e10", "--lr", "1e-3", "--batch-tokens", "1M", "--group", "gpt"],
        ["recommend", "5e8", "2e10", "--batch-tokens", "0"],
        ["recommend", "5e8", "x"],
    ],
)
def test_cli_bad_input(cli_post, args):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) == 1
