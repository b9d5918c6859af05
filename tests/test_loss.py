"""The loss model: the surface maths, the predictive against closed forms on hand-made
posteriors, I/O, the CLI end to end, the evaluation's scores and peers, and (slow) recovery
and calibration on sweeps simulated from a known loss surface."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from typer.testing import CliRunner

import bayes_steplaw as bsl
from bayes_steplaw.bayes.hierarchy import Hierarchy
from bayes_steplaw.bayes.loss import LossModel, LossPosterior, check_ratio, mark_diverged
from bayes_steplaw.bayes.posterior import Posterior, model_versions
from bayes_steplaw.bayes.surface import SHAPES, excess, phi, run_log_likelihood, run_nu
from bayes_steplaw.cli import app
from bayes_steplaw.evaluate import loss as le

LOG_N0, LOG_D0 = float(np.log(5e8)), float(np.log(2e10))
N0, D0 = float(np.exp(LOG_N0)), float(np.exp(LOG_D0))
LOG_LR0, LOG_BS0 = float(np.log(1e-3)), float(np.log(1e6))
HIER = Hierarchy.from_dict(
    {
        "levels": [
            {"column": "family", "kind": "nested", "labels": ["dense", "moe"], "parents": ["", ""]}
        ]
    }
)
STAR = {"E": 1.2, "log_A": np.log(0.6), "a": 0.4, "log_B": np.log(0.5), "b": 0.35, "c": 0.8}
SHAPE = {
    "log_a_lr": np.log(0.006),
    "log_a_bs": np.log(0.004),
    "tilt": 0.3,
    "bend": -0.1,
    "skew_lr": 0.5,
    "skew_bs": 0.3,
    "lr_batch": 0.2,
}
DIV = {"tau0": 2.0, "tau1": -0.05, "tau2": -0.03, "width": 0.1}


def handmade(
    n: int = 2000,
    *,
    shape: dict | None = None,
    star: dict | None = None,
    div: dict | None = None,
    sigma0: float = 1e-3,
    sigma1: float = 0.05,
    nu: float = 5.0,
    nu_far: float | None = None,
    sd_star: float = 0.0,
    moe_star: float = 0.02,
    moe_shape: float = 0.1,
    surface: str = "full",
) -> LossPosterior:
    """A loss posterior of n identical draws of known values (one chain)."""
    shape = {**SHAPE, **(shape or {})}
    star, div = {**STAR, **(star or {})}, {**DIV, **(div or {})}

    def draws(value):
        return np.full((1, n), float(value))

    scalars = {
        "c": LOG_LR0,
        "d": LOG_BS0,
        "alpha": -0.7,
        "beta": 0.3,
        "gamma": 0.55,
        "sigma_setting_lr": 0.0,
        "sigma_setting_bs": 0.0,
        "sigma_lr_family": 0.1,
        "sigma_bs_family": 0.1,
        "sigma_star_family": 0.05,
        "sigma_setting_star": sd_star,
        "div_tau0_N": 0.0,
        "div_tau0_D": 0.0,
        "div_tau1": div["tau1"],
        "div_tau2": div["tau2"],
        "div_tau0": div["tau0"],
        "div_width": div["width"],
        "sigma_run": sigma0,
        "sigma_run_q": sigma1,
        "nu": nu,
        **{f"star_{k}": v for k, v in star.items()},
        "star_floor": 0.5,  # the group offsets of E are r / f (star_offsets)
        **({"nu_far": nu_far} if nu_far is not None else {}),
    }
    for name in SHAPES:
        scalars |= {f"shape_{name}": shape[name], f"shape_{name}_N": 0.0, f"shape_{name}_D": 0.0}
    data = {name: (("chain", "draw"), draws(v)) for name, v in scalars.items()}
    fam = ("chain", "draw", "level_family")
    for law in ("lr", "bs"):
        data[f"a_{law}_family"] = (fam, np.zeros((1, n, 2)))
    data["a_star_family"] = (fam, np.tile([0.0, moe_star], (1, n, 1)))
    for name in SHAPES:
        data[f"shape_{name}_family"] = (fam, np.tile([0.0, moe_shape], (1, n, 1)))
    ds = xr.Dataset(
        data, coords={"chain": [0], "draw": np.arange(n), "level_family": ["dense", "moe"]}
    )
    meta = {
        "model": "loss",
        "model_version": model_versions()["loss"],
        "hierarchy": HIER.to_dict(),
        "groups": ["family", "variant"],
        "batch_depends_on_N": False,
        "log_n0": LOG_N0,
        "log_d0": LOG_D0,
        "N_range": [1e8, 1e10],
        "D_range": [1e9, 1e12],
        "n_runs": 0,
        "n_settings": 0,
        "surface": surface,
        "best_law": "chinchilla-power",
        "diverged_ratio": 1.5,
        "shape_column": "family",
        "diagnostics": {"converged": True, "problems": [], "variables": {}},
    }
    post = Posterior.from_datasets({"posterior": ds}, meta)
    assert isinstance(post, LossPosterior)
    return post


# --------------------------------------------------------------------------- closed forms


def true_star(N, D, E=STAR["E"]):
    u, v = np.log(N) - LOG_N0, np.log(D) - LOG_D0
    s = STAR
    return E + (np.exp(s["log_A"] - s["a"] * u) + np.exp(s["log_B"] - s["b"] * v)) ** s["c"]


def true_q(N, D, lr, bs, shape=SHAPE):
    x = np.log(lr) - (LOG_LR0 - 0.7 * (np.log(N) - LOG_N0) + 0.3 * (np.log(D) - LOG_D0))
    y = np.log(bs) - (LOG_BS0 + 0.55 * (np.log(D) - LOG_D0))
    xv = x - shape["tilt"] * y - shape["bend"] * y**2

    def ph(z):  # 2(e^z − 1 − z)/z², 1 at z = 0
        z = np.asarray(z, dtype=float)
        safe = np.where(z == 0, 1.0, z)
        return np.where(z == 0, 1.0, 2 * (np.exp(safe) - 1 - safe) / safe**2)

    a_lr = np.exp(shape["log_a_lr"] + shape["lr_batch"] * y)
    q = a_lr * xv**2 * ph(shape["skew_lr"] * xv)
    return q + np.exp(shape["log_a_bs"]) * y**2 * ph(shape["skew_bs"] * y), x, y


def test_phi_is_smooth_through_zero_and_excess_is_the_bowl_without_bends():
    z = np.array([-1e-2, -1e-3, -9.99e-4, 0.0, 9.99e-4, 1e-3, 1e-2, 2.0])
    closed = 2 * (np.expm1(z) - z) / np.where(z == 0, 1, z) ** 2
    closed[z == 0] = 1.0
    np.testing.assert_allclose(phi(z), closed, rtol=1e-6)
    x, y = np.meshgrid(np.linspace(-2, 2, 9), np.linspace(-2, 2, 7))
    plain = {"log_a_lr": np.log(0.01), "log_a_bs": np.log(0.005), "tilt": 0.4}
    np.testing.assert_allclose(excess(x, y, plain), 0.01 * (x - 0.4 * y) ** 2 + 0.005 * y**2)
    full = excess(x, y, SHAPE)
    assert (full >= 0).all() and excess(0.0, 0.0, SHAPE) == 0
    # a positive lr skew makes the high-lr side steeper than the low-lr side
    assert excess(1.5, 0.0, SHAPE) > excess(-1.5, 0.0, SHAPE)


def test_run_log_likelihood_is_bernoulli_plus_student_t():
    rng = np.random.default_rng(0)
    pred = {"logit": rng.normal(0, 3, 6), "loc": np.full(6, 2.3), "scale": np.full(6, 0.01)}
    loss = 2.3 + 0.01 * rng.standard_normal(6)
    div = np.array([True, False, False, True, False, False])
    got = run_log_likelihood(div, loss, pred, 4.0)
    p = 1 / (1 + np.exp(-pred["logit"]))
    want = np.where(div, np.log(p), np.log1p(-p) + stats.t.logpdf(loss, 4.0, 2.3, 0.01))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_mean_prediction_is_the_closed_form_and_broadcasts():
    post = handmade(200)
    lr = np.exp(LOG_LR0 + np.linspace(-2, 2, 5))[None, :]
    bs = np.exp(LOG_BS0 + np.linspace(-2, 2, 3))[:, None]
    pred = post.predict_loss(N0, D0, lr, bs, kind="mean")
    q, x, y = true_q(N0, D0, lr, bs)
    want = true_star(N0, D0) * (1 + q)
    np.testing.assert_allclose(pred.median(), want, rtol=1e-10)
    lo, hi = pred.interval(0.9)
    np.testing.assert_allclose(lo, want, rtol=1e-10)
    np.testing.assert_allclose(hi, want, rtol=1e-10)
    assert pred.median().shape == (3, 5)
    p = 1 / (1 + np.exp(-(x - (2.0 - 0.05 * y - 0.03 * y**2)) / 0.1))
    np.testing.assert_allclose(pred.p_diverge(), p, rtol=1e-9, atol=1e-15)
    frame = pred.to_dataframe()
    assert list(frame.columns[:10]) == [
        "N",
        "D",
        "lr",
        "batch_tokens",
        "group",
        "kind",
        "loss_median",
        "loss_lower",
        "loss_upper",
        "p_diverge",
    ]
    assert len(frame) == 15
    assert np.isscalar(post.predict_loss(N0, D0, 1e-3, 1e6).median())


def test_run_prediction_adds_student_t_noise_of_the_heteroscedastic_scale():
    post = handmade(40_000, sigma0=2e-3, sigma1=0.1, nu=4.0)
    lr, bs = np.exp(LOG_LR0 + 0.8), 2e6
    q, _, _ = true_q(N0, D0, lr, bs)
    star = true_star(N0, D0)
    loc, scale = star * (1 + q), star * (2e-3 + 0.1 * q)
    pred = post.predict_loss(N0, D0, lr, bs)
    t95 = stats.t.ppf(0.95, 4.0)
    assert pred.median() == pytest.approx(loc, abs=0.03 * scale)
    lo, hi = pred.interval(0.9)
    assert lo == pytest.approx(loc - t95 * scale, abs=0.06 * scale)
    assert hi == pytest.approx(loc + t95 * scale, abs=0.06 * scale)
    assert pred.log_density(loc + scale) == pytest.approx(
        stats.t.logpdf(1.0, 4.0) - np.log(scale), rel=1e-9
    )
    assert "given that it does not diverge" in pred.describe()
    assert "no run noise" in post.predict_loss(N0, D0, lr, bs, kind="mean").describe()


def test_noise_tails_go_from_nu_at_the_optimum_to_nu_far_away():
    post = handmade(50, nu=30.0, nu_far=2.5, sigma1=0.1)
    star = true_star(N0, D0)
    for lr, bs in ((1e-3, 1e6), (np.exp(LOG_LR0 + 2.5), 4e6)):
        q = float(true_q(N0, D0, lr, bs)[0])
        nu = 2.5 + (30.0 - 2.5) * np.exp(-q / 0.01)
        loc, scale = star * (1 + q), star * (1e-3 + 0.1 * q)
        got = post.predict_loss(N0, D0, lr, bs).log_density(loc + 2 * scale)
        assert got == pytest.approx(stats.t.logpdf(2.0, nu) - np.log(scale), rel=1e-9)
    assert q > 0.05  # the second point is far out: its tails are ν_far's


def test_best_loss_law_group_offsets_and_setting_scatter():
    post = handmade(20_000, sd_star=0.01)
    N, D = np.array([2e8, 5e8, 2e9]), 4e10
    law = post.best_loss(N, D, kind="law")
    np.testing.assert_allclose(law.median(), true_star(N, D), rtol=1e-10)
    moe = post.best_loss(N, D, group="moe", kind="law").median()
    # E_g = E·exp(r_g / f): r = 0.02, f = 0.5
    np.testing.assert_allclose(moe, true_star(N, D, STAR["E"] * np.exp(0.04)), rtol=1e-10)
    best = post.best_loss(N0, D0)
    assert np.log(best.draws).std() == pytest.approx(0.01, rel=0.03)
    assert "new setting" in best.describe()
    assert list(best.to_dataframe().columns)[-3:] == [
        "best_loss_median",
        "best_loss_lower",
        "best_loss_upper",
    ]


def test_family_shape_offset_changes_the_surface():
    post = handmade(100)
    lr, bs = np.exp(LOG_LR0 + 1.0), 1e6
    dense = post.predict_loss(N0, D0, lr, bs, kind="mean").median()
    moe = post.predict_loss(N0, D0, lr, bs, group="moe", kind="mean").median()
    moved = {k: v + 0.1 for k, v in SHAPE.items()}
    star_moe = true_star(N0, D0, STAR["E"] * np.exp(0.02 / 0.5))  # E_g = E·exp(r / f)
    assert dense == pytest.approx(true_star(N0, D0) * (1 + true_q(N0, D0, lr, bs)[0]), rel=1e-10)
    assert moe == pytest.approx(star_moe * (1 + true_q(N0, D0, lr, bs, moved)[0]), rel=1e-10)


def test_sweep_best_is_the_minimum_of_independent_runs():
    """k runs at one point, no divergence: P(min <= m) = 1 − (1 − F(m))^k."""
    post = handmade(40_000, div={"tau0": 50.0}, nu=6.0)
    k = 8
    draws = post.sweep_best(N0, D0, np.full(k, 1e-3), np.full(k, 1e6))
    star = true_star(N0, D0)
    q = true_q(N0, D0, 1e-3, 1e6)[0]
    loc, scale = star * (1 + q), star * (1e-3 + 0.05 * q)
    want = loc + scale * stats.t.ppf(1 - 0.5 ** (1 / k), 6.0)
    assert np.median(draws) == pytest.approx(want, abs=0.03 * scale)
    # every run certain to diverge: nothing to report
    dead = handmade(50, div={"tau0": -50.0})
    assert np.isnan(dead.sweep_best(N0, D0, [1e-3, 2e-3], 1e6)).all()


def test_batch_cost_of_a_plain_bowl_is_b_times_y_squared():
    plain = {"tilt": 0.0, "bend": 0.0, "skew_lr": 0.0, "skew_bs": 0.0, "lr_batch": 0.0}
    post = handmade(50, shape=plain, div={"tau0": 50.0})
    bs = np.exp(LOG_BS0 + np.array([-1.0, 0.5, 2.0]))
    cost = post.batch_cost(N0, D0, bs)
    star = true_star(N0, D0)
    np.testing.assert_allclose(cost["cost_mean"], star * 0.004 * np.log(bs / 1e6) ** 2, rtol=1e-9)
    np.testing.assert_allclose(cost["lr"], 1e-3, rtol=1e-9)
    assert cost["best_loss_mean"].iloc[0] == pytest.approx(star, rel=1e-12)


def test_thin_keeps_every_other_draw_and_says_so():
    post = handmade(300)
    half = post.thin(2)
    assert half.n_samples == 150 and half.metadata["thinned"] == 2
    np.testing.assert_array_equal(half.flat("star_E"), post.flat("star_E")[::2])
    assert half.thin(3).metadata["thinned"] == 6
    with pytest.raises(ValueError, match="step must be a positive integer"):
        post.thin(0)


def test_bad_input_is_named():
    post = handmade(20)
    with pytest.raises(ValueError, match="kind must be one of"):
        post.predict_loss(N0, D0, 1e-3, 1e6, kind="best")
    with pytest.raises(ValueError, match="lr must be positive"):
        post.predict_loss(N0, D0, [1e-3, -1.0], 1e6)
    with pytest.raises(KeyError, match="unknown group"):
        post.predict_loss(N0, D0, 1e-3, 1e6, group="bogus")
    with pytest.raises(ValueError, match="cannot be broadcast"):
        post.predict_loss(N0, D0, [1e-3, 2e-3], [1e6, 2e6, 3e6])
    with pytest.raises(ValueError, match="diverged must be > 1"):
        check_ratio(0.9)
    with pytest.raises(ValueError, match="surface must be one of"):
        LossModel(surface="wavy")


def test_divergence_rule_on_the_released_data(released):
    marked = mark_diverged(released)
    dense = marked[marked["family"] == "dense"]
    assert int(dense["diverged"].sum()) == 181
    assert not marked.loc[marked["family"] == "moe", "diverged"].any()
    assert dense.loc[dense["diverged"], "lr"].min() >= 5.5e-3
    # the same line for any ratio between the two clouds (1.21x and 1.72x)
    assert (mark_diverged(released, 1.25)["diverged"] == marked["diverged"]).all()
    assert (mark_diverged(released, 1.7)["diverged"] == marked["diverged"]).all()


@pytest.mark.slow  # a fresh interpreter: a few seconds of imports
def test_save_load_roundtrip_and_no_pymc_on_the_prediction_path(tmp_path):
    post = handmade(300)
    path = post.save(tmp_path / "loss.nc")
    back = LossPosterior.load(path)
    a = post.predict_loss(N0, D0, [1e-3, 3e-3], 1e6).to_dataframe()
    pd.testing.assert_frame_equal(a, back.predict_loss(N0, D0, [1e-3, 3e-3], 1e6).to_dataframe())
    code = (
        "import sys\n"
        "from bayes_steplaw.bayes.loss import LossPosterior\n"
        f"p = LossPosterior.load({str(path)!r})\n"
        "p.predict_loss(5e8, 2e10, [1e-3, 2e-3], 1e6).to_dataframe()\n"
        "p.best_loss(5e8, 2e10).median()\n"
        "bad = [m for m in ('pymc', 'pytensor', 'arviz') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------- CLI


def test_cli_loss_one_run_json(tmp_path):
    path = handmade(300, sigma1=0.0).save(tmp_path / "loss.nc")
    runner = CliRunner()
    args = ["loss", "5e8", "2e10", "--lr", "1e-3", "--batch-tokens", "1M", "--posterior", path]
    res = runner.invoke(app, [*map(str, args), "--json", "--kind", "mean"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    star = true_star(N0, D0)
    want = star * (1 + true_q(N0, D0, 1e-3, 1e6)[0])
    assert out["loss_median"] == pytest.approx(want, rel=1e-9)
    assert out["best_loss_median"] == pytest.approx(star, rel=1e-9)
    assert "no run noise" in out["note"]


@pytest.mark.slow  # reads the shipped landscape posterior (~2 s)
def test_plateau_and_recommend_print_the_loss_and_the_batch_cost(tmp_path):
    plain = {"tilt": 0.0, "bend": 0.0, "skew_lr": 0.0, "skew_bs": 0.0, "lr_batch": 0.0}
    path = handmade(2000, shape=plain, div={"tau0": 50.0}, sigma1=0.0).save(tmp_path / "l.nc")
    runner = CliRunner()
    bs = float(np.exp(LOG_BS0 + 1.5))
    args = ["plateau", "5e8", "2e10", "--lr", "1e-3", "--batch-tokens", str(bs)]
    res = runner.invoke(app, [*args, "--loss-posterior", str(path), "--json"])
    assert res.exit_code == 0, res.output
    loss = json.loads(res.output)["loss"]
    star = true_star(N0, D0)
    # a plain bowl: at the best lr for any batch, the cost is L*·a_bs·y²
    assert loss["batch_cost_mean"] == pytest.approx(star * 0.004 * 1.5**2, rel=1e-9)
    assert loss["loss_median"] == pytest.approx(star * (1 + 0.004 * 1.5**2), rel=2e-4)
    assert loss["best_loss_median"] == pytest.approx(star, rel=1e-9)
    res = runner.invoke(app, ["recommend", "5e8", "2e10", "--loss-posterior", str(path)])
    assert res.exit_code == 0, res.output
    assert "final loss" in res.output and "batch cost" in res.output
    # an optimum posterior cannot answer: one line says why, the rest of the answer stands
    other = "tests/data/v0.1_optimum.nc"
    res = runner.invoke(app, ["recommend", "5e8", "2e10", "--loss-posterior", other])
    assert res.exit_code == 0, res.output
    assert "no loss prediction" in res.output and "peak lr" in res.output


@pytest.mark.slow  # each call reads the posterior file (~1 s)
def test_cli_loss_text_output(tmp_path):
    path = handmade(300).save(tmp_path / "loss.nc")
    args = ["loss", "5e8", "2e10", "--lr", "1e-3", "--batch-tokens", "1M", "--posterior", path]
    text = CliRunner().invoke(app, list(map(str, args)))
    assert text.exit_code == 0, text.output
    assert "final loss" in text.output and "given that it does not diverge" in text.output
    assert "P(diverges)" in text.output and "best loss L*" in text.output


@pytest.mark.slow  # each call reads the posterior file (~1 s)
def test_cli_loss_grid_writes_csv_and_errors_are_one_line(tmp_path):
    path = str(handmade(200).save(tmp_path / "loss.nc"))
    grid = tmp_path / "runs.csv"
    pd.DataFrame(
        {
            "N": [5e8, 1e9],
            "D": ["2e10", "40B"],
            "lr": [1e-3, 2e-3],
            "batch_tokens": ["1M", 2e6],
            "group": ["dense", "moe"],
        }
    ).to_csv(grid, index=False)
    out = tmp_path / "loss.csv"
    runner = CliRunner()
    res = runner.invoke(app, ["loss", "--grid", str(grid), "--posterior", path, "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert list(table["group"]) == ["dense", "moe"] and table["D"].iloc[1] == 4e10
    assert {"loss_median", "loss_lower", "loss_upper", "p_diverge"} <= set(table.columns)
    many = runner.invoke(
        app,
        [
            "loss",
            "5e8",
            "2e10",
            "--lr",
            "1e-3,2e-3,4e-3",
            "--batch-tokens",
            "1M,2M",
            "--posterior",
            path,
            "--json",
        ],
    )
    assert many.exit_code == 0 and len(json.loads(many.output)["predictions"]) == 6
    missing = runner.invoke(
        app,
        [
            "loss",
            "5e8",
            "2e10",
            "--lr",
            "1e-3",
            "--batch-tokens",
            "1M",
            "--posterior",
            str(tmp_path / "none.nc"),
        ],
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output


@pytest.mark.slow  # a fresh interpreter: a few seconds of imports
def test_cli_loss_bad_quantity_is_a_one_line_error(tmp_path):
    path = str(handmade(50).save(tmp_path / "loss.nc"))
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayes_steplaw",
            "loss",
            "5e8",
            "2e10",
            "--lr",
            "fast",
            "--batch-tokens",
            "1M",
            "--posterior",
            path,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "--lr must be a positive number" in bad.stderr


# --------------------------------------------------------------------------- evaluation


def test_score_setting_against_hand_computed_values():
    runs = pd.DataFrame({"loss": [2.0, 2.1, 2.3, 6.0], "diverged": [False, False, False, True]})
    f = le.SettingForecast(
        median=np.array([2.0, 2.2, 2.3, 2.5]),
        lower=np.array([1.9, 2.15, 2.0, 2.0]),
        upper=np.array([2.1, 2.3, 2.4, 3.0]),
        log_density=np.array([1.0, 0.0, -1.0, 9.0]),
        p_diverge=np.array([0.0, 0.1, 0.2, 0.6]),
        sweep_best=1.99,
        loss_star=2.01,
    )
    s = le.score_setting(runs, f)
    ybar = np.mean([2.0, 2.1, 2.3])
    assert s["loss_r2"] == pytest.approx(
        1 - 0.01 / ((2.0 - ybar) ** 2 + (2.1 - ybar) ** 2 + (2.3 - ybar) ** 2)
    )
    assert s["loss_rmse"] == pytest.approx(np.sqrt(0.01 / 3))
    assert s["loss_in_90"] == pytest.approx(2 / 3)
    assert s["loss_logscore"] == pytest.approx(0.0)
    assert s["best_loss_err"] == pytest.approx(-0.01) and s["best_star_err"] == pytest.approx(0.01)
    assert s["brier_diverge"] == pytest.approx((0 + 0.01 + 0.04 + 0.16) / 4)


def _peer_data(rng, fn, n_settings=6):
    rows = []
    for i, (N, D) in enumerate(
        [(2e8, 4e9), (2e8, 2e10), (5e8, 1e10), (5e8, 5e10), (1e9, 2e10), (1e9, 8e10)][:n_settings]
    ):
        lr, bs = np.meshgrid(2.0 ** -np.arange(9, 15), 2048 * 2.0 ** np.arange(6, 11))
        frame = pd.DataFrame({"N": N, "D": D, "lr": lr.ravel(), "batch_tokens": bs.ravel()})
        frame["loss"] = fn(frame) * np.exp(1e-4 * rng.standard_normal(len(frame)))
        rows.append(frame.assign(setting=f"s{i}"))
    out = pd.concat(rows, ignore_index=True)
    return out.assign(family="dense", group="dense", diverged=False)


def test_quadratic_peer_recovers_a_quadratic_surface():
    rng = np.random.default_rng(0)

    def truth(f):
        z = np.log(f["lr"]) + 7, np.log(f["batch_tokens"]) - 13.5, np.log(f["N"]) - 20
        return np.exp(
            0.8 + 0.01 * z[0] ** 2 + 0.005 * z[1] ** 2 - 0.05 * z[2] + 0.003 * z[0] * z[1]
        )

    data = _peer_data(rng, truth)
    peer = le.Quadratic().fit(data)
    runs = data[data["setting"] == "s3"].reset_index(drop=True)
    s = le.score_setting(runs, peer.forecast(runs))
    assert s["loss_r2"] > 0.999 and s["loss_in_90"] > 0.7
    assert peer.sigma == pytest.approx(1e-4, rel=0.2)


def test_chinchilla_bowl_peer_recovers_its_own_form():
    rng = np.random.default_rng(1)

    def truth(f):
        floor = 1.6 + 400 / f["N"] ** 0.34 + 400 / f["D"] ** 0.28
        lr0 = 0.5 * f["N"] ** -0.7 * f["D"] ** 0.3
        bs0 = 0.5 * f["D"] ** 0.55
        return floor * (
            1 + 0.01 * np.log(f["lr"] / lr0) ** 2 + 0.006 * np.log(f["batch_tokens"] / bs0) ** 2
        )

    data = _peer_data(rng, truth)
    peer = le.ChinchillaBowl().fit(data[data["setting"] != "s2"])
    runs = data[data["setting"] == "s2"].reset_index(drop=True)
    s = le.score_setting(runs, peer.forecast(runs))
    assert s["loss_r2"] > 0.99


def test_paired_table_pairs_by_setting():
    rows = pd.DataFrame(
        {
            "split": "loso",
            "setting": ["a", "b", "c"] * 2,
            "method": ["bayes-loss"] * 3 + ["peer-quadratic"] * 3,
            "loss_r2": [0.9, 0.8, 0.7, 0.5, 0.6, 0.7],
            "loss_rmse": 0.01,
            "loss_in_90": 0.9,
            "loss_logscore": 1.0,
            "best_loss_err": [0.001, -0.002, 0.0, 0.01, 0.0, -0.01],
            "brier_diverge": 0.0,
        }
    )
    table = le.paired_table(rows)
    r2 = table.loc[("loso", "bayes-loss - peer-quadratic", "loss_r2")]
    assert r2["mean"] == pytest.approx(0.2) and r2["n"] == 3
    err = table.loc[("loso", "bayes-loss - peer-quadratic", "abs_best_loss_err")]
    assert err["mean"] == pytest.approx((0.001 - 0.01 + 0.002 - 0.0 + 0.0 - 0.01) / 3)


def test_evaluate_loss_renders_rows_into_card_records(tmp_path):
    rows = pd.DataFrame(
        {
            "split": "extrapolate",
            "setting": ["a", "b", "c"] * 2,
            "family": ["dense", "dense", "moe"] * 2,
            "method": ["bayes-loss"] * 3 + ["peer-quadratic"] * 3,
            "loss_r2": [0.9, 0.8, 0.7, 0.5, 0.6, 0.7],
            "loss_rmse": 0.01,
            "loss_in_90": [0.9, 0.8, 1.0, 0.5, 0.5, 0.5],
            "loss_logscore": 1.0,
            "best_loss_err": [0.001, -0.002, 0.0, 0.01, 0.0, -0.01],
            "best_star_err": 0.0,
            "brier_diverge": 0.0,
            "converged": [True, False, True] + [np.nan] * 3,
        }
    )
    rows.to_csv(tmp_path / "rows.csv", index=False)
    records = tmp_path / "records.json"
    args = ["evaluate-loss", "--rows", str(tmp_path / "rows.csv"), "--records", str(records)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    ev = json.loads(records.read_text())
    assert "2 of 3 passed the convergence gate" in ev["text"]
    summary = pd.DataFrame(ev["tables"]["Per split, method and family"])
    one = summary[(summary["method"] == "bayes-loss") & (summary["family"] == "all")].iloc[0]
    assert one["loss_r2_median"] == pytest.approx(0.8) and one["settings"] == 3
    assert one["loss_in_90"] == pytest.approx(0.9)
    res = CliRunner().invoke(app, ["evaluate-loss", "--rows", str(records)])
    assert res.exit_code == 2 and "not a readable CSV" in res.output
    rows.drop(columns="loss_r2").to_csv(tmp_path / "short.csv", index=False)
    res = CliRunner().invoke(app, ["evaluate-loss", "--rows", str(tmp_path / "short.csv")])
    assert res.exit_code == 2 and "lacks column(s) ['loss_r2']" in res.output


# --------------------------------------------------------------------------- simulation (slow)

SIM_SETTINGS = [("dense", n, d) for n in (2e8, 5e8, 1.2e9) for d in (4e9, 2e10, 8e10)]
SIM_LAW = {"E": 1.3, "log_A": np.log(0.7), "a": 0.45, "log_B": np.log(0.6), "b": 0.35, "c": 1.0}


def simulate_loss_sweeps(
    shape: dict, seed: int = 0, noise_seed: int | None = None, settings=SIM_SETTINGS, noise=2e-3
):
    """Sweeps over a grid of 2^(-k/2) lr x powers-of-2 batches around each optimum, from a
    known L* law, surface, Student-t run noise (ν = 6) and divergence rule. ``seed`` draws the
    settings' optima and L* effects, ``noise_seed`` (default: ``seed``) the runs' outcomes, so
    two noise seeds are two replicate sweeps of the same settings."""
    rng = np.random.default_rng(seed)
    out_rng = np.random.default_rng(seed if noise_seed is None else noise_seed)
    rows = []
    for family, N, D in settings:
        u, v = np.log(N) - LOG_N0, np.log(D) - LOG_D0
        m_lr = LOG_LR0 - 0.7 * u + 0.3 * v + 0.03 * rng.standard_normal()
        m_bs = LOG_BS0 + 0.55 * v + 0.08 * rng.standard_normal()
        star = SIM_LAW["E"] + np.exp(SIM_LAW["log_A"] - SIM_LAW["a"] * u)
        star = (star + np.exp(SIM_LAW["log_B"] - SIM_LAW["b"] * v)) * np.exp(
            0.002 * rng.standard_normal()
        )
        ks = np.round(-2 * m_lr / np.log(2)) + np.arange(-6, 8)
        js = np.round((m_bs - np.log(2048)) / np.log(2)) + np.arange(-3, 4)
        lr, bs = (g.ravel() for g in np.meshgrid(2.0 ** (-ks / 2), 2048 * 2.0**js))
        x, y = np.log(lr) - m_lr, np.log(bs) - m_bs
        q = excess(x, y, shape)
        loc, scale = star * (1 + q), star * (noise * 0.3 + noise * 5 * q)
        loss = loc + scale * out_rng.standard_t(6.0, size=len(q))
        diverged = out_rng.random(len(q)) < 1 / (1 + np.exp(-(x - 1.8) / 0.1))
        loss = np.where(diverged, 6.5 + 0.3 * out_rng.standard_normal(len(q)), loss)
        frame = pd.DataFrame({"N": N, "D": D, "lr": lr, "batch_tokens": bs, "loss": loss})
        rows.append(frame.assign(family=family, seq_len=2048, x=x, y=y))
    raw = pd.concat(rows, ignore_index=True)
    raw["batch_sequences"] = raw.pop("batch_tokens") / 2048
    return bsl.read_sweeps(raw)


TRUE_SHAPE = {
    "log_a_lr": np.log(0.006),
    "log_a_bs": np.log(0.005),
    "tilt": 0.3,
    "skew_lr": 0.9,
    "skew_bs": 0.6,
}


def replicate_coverage(model: LossModel, seed: int = 1) -> dict:
    """Fit on simulated sweeps, then score the 90% predictive intervals of the fitted
    settings' runs against a replicate sweep (same settings, fresh outcomes): coverage over
    all runs that did not diverge and over those on the walls (|x| > 1.2 or |y| > 1.5)."""
    sweeps = simulate_loss_sweeps(TRUE_SHAPE, seed=seed)
    replicate = simulate_loss_sweeps(TRUE_SHAPE, seed=seed, noise_seed=seed + 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = model.fit(sweeps, chains=2, draws=300, tune=300, seed=seed, progressbar=False)
    pred = post.run_predictions(replicate)
    far = post.flat("nu_far")[:, None] if "nu_far" in post.posterior else None
    nu = run_nu(pred["q"], post.flat("nu")[:, None], far)
    rng = np.random.default_rng(seed)
    draws = pred["loc"] + pred["scale"] * rng.standard_t(np.broadcast_to(nu, pred["loc"].shape))
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    runs = pred["design"].runs
    ok = ~runs["diverged"].to_numpy()
    inside = (runs["loss"].to_numpy() >= lo) & (runs["loss"].to_numpy() <= hi)
    x, y = runs["x"].to_numpy(), runs["y"].to_numpy()
    regions = {"all": ok, "walls": ok & ((np.abs(x) > 1.2) | (np.abs(y) > 1.5)),
               "plateau": ok & (np.abs(x) < 0.5) & (np.abs(y) < 0.7),
               "high_lr": ok & (x > 1.0), "low_lr": ok & (x < -1.5),
               "large_batch": ok & (y > 1.2), "small_batch": ok & (y < -1.2)}  # fmt: skip
    out = {k: round(float(inside[m].mean()), 3) for k, m in regions.items()}
    return out | {"width": round(float(np.median((hi - lo)[ok] / runs["loss"][ok])), 5)}


@pytest.mark.slow
def test_simulated_sweeps_are_covered_at_nominal_and_a_wrong_surface_is_not():
    """The model that generated the data covers a replicate sweep at about 90%, on each side
    of the bowl too; a symmetric quadratic bowl with constant run noise, fitted to the same
    exponential walls, misses nominal by 0.1 or more in some region of the grid."""
    kw = {"best_law": "chinchilla", "shape_terms": "linear"}
    right = replicate_coverage(LossModel(surface="skew", **kw))
    wrong = replicate_coverage(LossModel(surface="bowl", noise="constant", **kw))
    print(f"coverage of the 90% intervals: right {right}, wrong {wrong}")
    assert 0.85 <= right["all"] <= 0.95, right
    regions = ("plateau", "high_lr", "low_lr", "large_batch", "small_batch")
    assert min(right[k] for k in regions) >= 0.8, right

    def miss(c):
        return max(abs(c[k] - 0.9) for k in regions)

    assert miss(wrong) >= 0.1, (right, wrong)
    assert miss(wrong) > miss(right) + 0.05, (right, wrong)
