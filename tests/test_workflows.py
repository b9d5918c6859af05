"""The top-level workflows, end to end: predict / plateau / recommend at the top level and with
``--posterior``, grids, few-shot transfer (``--with-released``), and planning the next sweep.

The fits are the CLI's own (``bayes-steplaw fit``) on small simulated sweeps, once per module;
every number the CLI prints is checked against the Python API on the posterior file it wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import SIM_LAW, SIM_SETTINGS
from typer.testing import CliRunner

import bayes_steplaw as bsl
from bayes_steplaw import api, transfer
from bayes_steplaw.cli import app
from bayes_steplaw.datasets.sweeps import batch_unit_warnings

runner = CliRunner()
TINY = ["--chains", "2", "--draws", "200", "--tune", "200", "--quiet"]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- top-level API


def test_top_level_predict_is_the_shipped_loss_posteriors(shipped_loss):
    got = bsl.predict(7e9, 1.4e12)
    want = shipped_loss.predict(7e9, 1.4e12, kind="optimum")
    pd.testing.assert_frame_equal(got.to_dataframe(), want.to_dataframe())
    assert got.kind == "optimum"  # the default: the optimum of a new setting
    assert api.shipped("loss") is api.shipped("loss")  # loaded once


def test_top_level_plateau_and_recommend(shipped_loss):
    p = bsl.plateau_probability([1e9, 2e9], 2e10, 1e-3, 1e6, tol=0.005, group="moe")
    want = shipped_loss.plateau_probability([1e9, 2e9], 2e10, 1e-3, 1e6, tol=0.005, group="moe")
    xr.testing.assert_identical(p, want)
    assert p.dims == ("point",) and p.attrs["reference"] == "optimum"
    rec = bsl.recommend(1e9, 2e10, batch_tokens=2**21)
    assert rec.batch_tokens == 2**21 and rec.fixed == ("batch_tokens",)
    assert rec.lr == pytest.approx(shipped_loss.recommend(1e9, 2e10, batch_tokens=2**21).lr)
    # fixing the batch off the free choice costs expected loss: never less than the free one
    assert rec.cost > 0 and rec.best_batch_tokens != 2**21


def test_posterior_argument_takes_a_path_or_a_posterior(tmp_path, light_loss):
    path = tmp_path / "loss.nc"
    light_loss.save(path)
    by_path = bsl.predict(1e9, 2e10, posterior=path).median()
    by_object = bsl.predict(1e9, 2e10, posterior=light_loss).median()
    xr.testing.assert_identical(by_path, by_object)
    assert float(bsl.plateau_probability(1e9, 2e10, 1e-3, 1e6, posterior=str(path))) == float(
        light_loss.plateau_probability(1e9, 2e10, 1e-3, 1e6)
    )


def test_wrong_kind_of_posterior_names_the_fit_that_makes_one(shipped_optimum):
    from bayes_steplaw._resources import resource_path

    optimum_file = resource_path("models", "optimum.nc")
    with pytest.raises(bsl.PosteriorFileError, match="--model loss"):
        bsl.plateau_probability(1e9, 2e10, 1e-3, 1e6, posterior=optimum_file)
    with pytest.raises(TypeError, match=r"needs a loss posterior.*bayes_steplaw\.fit\(sweeps\)"):
        bsl.recommend(1e9, 2e10, posterior=shipped_optimum)
    with pytest.raises(TypeError, match="path, a loaded posterior or None"):
        bsl.predict(1e9, 2e10, posterior=3)
    # an optimum posterior still answers predict (the law of the optima is all it needs)
    assert bsl.predict(1e9, 2e10, posterior=optimum_file).kind == "optimum"


@pytest.mark.slow  # a fresh interpreter
def test_top_level_path_never_imports_pymc_or_arviz():
    code = (
        "import sys, bayes_steplaw as b\n"
        "b.predict(7e9, 1.4e12).median()\n"
        "b.predict_loss(7e9, 1.4e12, 3e-4, 4e6).to_dataframe()\n"
        "b.best_loss(7e9, 1.4e12).interval()\n"
        "b.plateau_probability(7e9, 1.4e12, 3e-4, 4e6)\n"
        "b.recommend(7e9, 1.4e12)\n"
        "b.plan_sweep(7e9, 1.4e12, 2)\n"
        "heavy = [m for m in ('pymc', 'pytensor', 'arviz', 'nutpie') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------- grids


def test_predict_lists_are_every_n_with_every_d(shipped_loss):
    result = invoke("predict", "1B,7B", "100B,1.4T", "--json")
    assert result.exit_code == 0, result.output
    rows = pd.DataFrame(json.loads(result.stdout)["predictions"])
    assert list(zip(rows["N"], rows["D"])) == [
        (1e9, 1e11),
        (1e9, 1.4e12),
        (7e9, 1e11),
        (7e9, 1.4e12),
    ]
    want = shipped_loss.predict(rows["N"], rows["D"]).to_dataframe()
    np.testing.assert_allclose(rows["lr_upper"], want["lr_upper"])
    np.testing.assert_allclose(rows["batch_sequences_median"], want["batch_sequences_median"])


def test_predict_grid_file_writes_csv_and_json(tmp_path, shipped_loss):
    grid = tmp_path / "points.csv"
    pd.DataFrame({"N": ["1e9", "7B", "2e9"], "D": ["2e10", "1.4T", "2e10"],
                  "group": ["dense", "", "moe/1in8"]}).to_csv(grid, index=False)  # fmt: skip
    for suffix in (".csv", ".json"):
        out = tmp_path / f"pred{suffix}"
        result = invoke("predict", "--grid", grid, "--out", out, "--prob", "0.5")
        assert result.exit_code == 0, result.output
        assert f"wrote 3 predictions to {out}" in result.output
        table = pd.read_csv(out) if suffix == ".csv" else pd.read_json(out)
        assert table["group"].tolist() == ["dense", "dense", "moe/1in8"]  # empty: --group
        for i, g in enumerate(table["group"]):
            want = shipped_loss.predict(table["N"][i], table["D"][i], group=g)
            assert table["lr_lower"][i] == pytest.approx(want.to_dataframe(0.5)["lr_lower"][0])


@pytest.mark.parametrize(
    "content, message",
    [
        ("N,tokens\n1e9,2e10\n", "lacks column(s) ['D']"),
        ("N,D\n1e9,2e10\nabc,2e10\n", "row 1 (line 3), column N"),
        ("N,D\n", "no rows"),
        ("", "is empty"),
    ],
)
def test_predict_grid_errors_name_the_row(tmp_path, content, message):
    grid = tmp_path / "g.csv"
    grid.write_text(content)
    result = invoke("predict", "--grid", grid)
    assert result.exit_code == 2 and message in result.output, result.output


def test_predict_needs_points():
    assert "give N and D" in invoke("predict").output
    assert "not both" in invoke("predict", "1e9", "1e10", "--grid", "x.csv").output


# --------------------------------------------------------------------------- plan-sweep


def excess(post, N: float, D: float, log_lr: np.ndarray, log_bs: np.ndarray) -> np.ndarray:
    """Per run and draw, the relative excess loss a plan scores: q if the run does not
    diverge, 0.5 if it does (a diverged run ends above 1.5 x its setting's best), weighted by
    P(diverge); from the surfaces of a new setting (post.surface), arrays (runs, draws)."""
    surface = post.surface("dense", seed=0)
    n = len(log_lr)
    at = surface.at(np.full(n, N), np.full(n, D), log_lr[:, None], log_bs[:, None])
    p = 1 / (1 + np.exp(-at["logit"]))
    return np.where(p < 1, (1 - p) * at["q"], 0.0) + 0.5 * p


def test_plan_sweep_no_single_swap_improves_and_beats_greedy(shipped_loss):
    plan = bsl.plan_sweep(1e9, 2e10, 3, group="dense")
    pts = plan.points
    # grid values are powers of the steps: lr = sqrt(2)^i, batch = 2^j tokens
    i = np.log(pts["lr"]) / np.log(2**0.5)
    np.testing.assert_allclose(i, np.round(i), atol=1e-9)
    np.testing.assert_allclose(np.log2(pts["batch_tokens"]), np.round(np.log2(pts["batch_tokens"])))
    # brute force on a grid around the plan, evaluated here from the surfaces' draws
    lr = np.log(pts["lr"].iloc[0]) + np.log(2**0.5) * np.arange(-5, 6)
    bs = np.log(pts["batch_tokens"].iloc[0]) + np.log(2.0) * np.arange(-3, 4)
    ll, bb = (a.ravel() for a in np.meshgrid(lr, bs, indexing="ij"))
    q = excess(shipped_loss, 1e9, 2e10, ll, bb)
    chosen = [
        int(np.argmin(np.hypot(ll - np.log(a), bb - np.log(b))))
        for a, b in zip(pts["lr"], pts["batch_tokens"])
    ]
    value = q[chosen].min(axis=0).mean()
    assert value == pytest.approx(plan.expected_best_relative_loss)
    for pos in range(3):
        others = chosen[:pos] + chosen[pos + 1 :]
        swapped = np.minimum(q[others].min(axis=0), q).mean(axis=1)
        assert swapped.min() >= value * (1 - 1e-9)
    best, greedy = np.full(q.shape[1], np.inf), []
    for _ in range(3):
        pick = int(np.argmin(np.minimum(best, q).mean(axis=1)))
        greedy.append(pick)
        best = np.minimum(best, q[pick])
    assert value <= best.mean() * (1 + 1e-9)
    # the cumulative columns restate the runs in order
    running = np.minimum.accumulate(q[chosen], axis=0).mean(axis=1)
    np.testing.assert_allclose(pts["expected_best_relative_loss"], running)
    assert pts["expected_best_relative_loss"].is_monotonic_decreasing
    # each run's plateau probability is the posterior's own (reference "optimum")
    for row in pts.itertuples():
        p = shipped_loss.plateau_probability(1e9, 2e10, row.lr, row.batch_tokens)
        assert row.plateau_probability == pytest.approx(float(p), abs=1e-6)
    # one run at the Bayes decision: its expected excess is the recommendation's
    rec = shipped_loss.recommend(1e9, 2e10)
    one = bsl.plan.evaluate_points(1e9, 2e10, rec.lr, rec.batch_tokens)
    assert one["expected_best_relative_loss"] == pytest.approx(rec.expected_excess, rel=1e-9)


def test_planned_sweep_beats_a_box_around_the_paper_point():
    paper = bsl.BootstrapOLS.from_published().predict(1e9, 2e10).iloc[0]
    box_lr = paper["lr"] * np.array([2**-0.25, 2**0.25, 2**-0.25, 2**0.25])
    box_bs = paper["batch_tokens"] * np.array([2**-0.5, 2**-0.5, 2**0.5, 2**0.5])
    box = bsl.plan.evaluate_points(1e9, 2e10, box_lr, box_bs)
    plan = bsl.plan_sweep(1e9, 2e10, 4)
    assert plan.expected_best_relative_loss < box["expected_best_relative_loss"]
    again = bsl.plan.evaluate_points(1e9, 2e10, plan.points["lr"], plan.points["batch_tokens"])
    assert again["expected_best_relative_loss"] == pytest.approx(plan.expected_best_relative_loss)


def test_plan_sweep_cli_matches_the_api(tmp_path):
    out = tmp_path / "plan.csv"
    result = invoke("plan-sweep", "7B", "1.4T", "--runs", "3", "--grid-batch-step", "1.414",
                    "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = bsl.plan_sweep(7e9, 1.4e12, 3, batch_step=1.414)
    table = pd.read_csv(out)
    np.testing.assert_allclose(table["lr"], plan.points["lr"])
    np.testing.assert_allclose(table["batch_tokens"], plan.points["batch_tokens"])
    assert f"{plan.expected_best_relative_loss:.3%}" in result.output
    assert "extrapolation" in result.output  # 7B, 1.4T lie outside the released range
    payload = json.loads(invoke("plan-sweep", "1e9", "2e10", "--runs", "2", "--json").stdout)
    assert payload["expected_best_relative_loss"] == pytest.approx(
        bsl.plan_sweep(1e9, 2e10, 2).expected_best_relative_loss
    )


def test_plan_sweep_expresses_batches_with_the_fits_sequence_length(light_loss):
    longer = type(light_loss)(light_loss.groups, {**light_loss.metadata, "seq_len": 4096})
    plan = bsl.plan_sweep(1e9, 2e10, 2, posterior=longer).points
    np.testing.assert_allclose(plan["batch_sequences"], plan["batch_tokens"] / 4096)
    told = bsl.plan_sweep(1e9, 2e10, 2, posterior=longer, seq_len=1024).points
    np.testing.assert_allclose(told["batch_sequences"], told["batch_tokens"] / 1024)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--grid-lr-step", "1"], "--grid-lr-step must be a grid ratio between 1 and 1000"),
        (["--grid-batch-step", "0.5"], "--grid-batch-step must be a grid ratio between 1 and"),
        (["--grid-lr-step", "1.00001"], "use a larger --grid-lr-step"),
        (["--grid-batch-step", "1.00001"], "use a larger --grid-batch-step"),
        (["--runs", "0"], "--runs must be a positive integer"),
        (["--runs", "100000"], "--runs (100000) exceeds"),
        (["--group", "gpt"], "unknown group 'gpt'"),
    ],
)
def test_plan_sweep_refusals_name_the_option(args, message):
    result = invoke("plan-sweep", "1e9", "2e10", *args)
    assert result.exit_code == 2 and message in result.output, result.output


# --------------------------------------------------------------------------- transfer: pooling


def user_sweep(seed: int = 5) -> pd.DataFrame:
    """A new architecture at one model size, two token budgets: too little to fit alone."""
    settings = pd.DataFrame([("mine", "mine", 6e8, d) for d in (5e9, 2e10)],
                            columns=["family", "variant", "N", "D"])  # fmt: skip
    sweeps, _ = bsl.simulate_sweeps(settings, seed=seed)
    return sweeps.assign(arch="llama")


def test_pooling_namespaces_the_users_groups(released):
    mine = user_sweep().assign(arch="new")  # the reserved name is harmless once prefixed
    pooled = bsl.pool_with_released(mine, ("arch",), released=released)
    assert len(pooled) == len(released) + len(mine)
    assert set(pooled.loc[pooled["source"] == "user", "family"]) == {"user:new"}
    released_rows = pooled[pooled["source"] == "released"]
    pd.testing.assert_series_equal(
        released_rows["setting"].reset_index(drop=True), released["setting"], check_dtype=False
    )
    hierarchy, _ = bsl.Hierarchy.from_frame(
        pooled.drop_duplicates("setting"), ("family", "variant")
    )
    assert {"dense", "moe", "moe/1in8", "user:new"} <= set(hierarchy.group_names())
    assert hierarchy.resolve("user:new")[0] >= 0  # a real level, not the never-seen one
    assert pooled["setting"].nunique() == released["setting"].nunique() + 2


def test_pooling_second_column_nests_and_bad_names_are_refused(released):
    mine = user_sweep().assign(size=lambda f: np.where(f["D"] < 1e10, "small", "big"))
    names = transfer.user_group_names(mine, ("arch", "size"))
    assert names == {"llama/big": "user:llama/big", "llama/small": "user:llama/small"}
    with pytest.raises(ValueError, match="'/' or '@'"):
        bsl.pool_with_released(mine.assign(arch="a/b"), ("arch",), released=released)
    with pytest.raises(ValueError, match="one or two group columns"):
        bsl.pool_with_released(mine, ("arch", "size", "family"), released=released)
    with pytest.raises(ValueError, match="not in your sweep table"):
        bsl.pool_with_released(mine, ("model",), released=released)


@pytest.mark.slow  # one tiny pooled fit (compiling it: about 15 s)
def test_a_table_in_your_own_names_pools_as_a_csv_would(released):
    """A DataFrame in your own names, its batch in sequences, is read as a CSV would be
    (:func:`bayes_steplaw.read_sweeps`). Pooled as given, its missing ``batch_tokens`` were NaN
    and every start of the sampler failed ("All initialization points failed")."""
    mine = user_sweep()
    names = {"N": "params", "D": "tokens", "lr": "peak_lr", "batch_sequences": "batch_size",
             "loss": "final_loss"}  # fmt: skip
    raw = mine[[*names, "seq_len", "arch"]].rename(columns=names)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['batch_tokens'"):
        bsl.pool_with_released(raw.rename(columns={v: k for k, v in names.items()}), ("arch",),
                               released=released)  # fmt: skip
    small = released[released["N"] == released["N"].min()].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bsl.ConvergenceWarning)
        warnings.simplefilter("ignore", bsl.SweepWarning)  # the small table holds one N
        post = bsl.fit(raw, groups=("arch",), columns=names, with_released=True, released=small,
                       chains=1, draws=10, tune=10, seed=0, progressbar=False)  # fmt: skip
    assert post.metadata["pooled"]["user_runs"] == len(mine)
    assert np.isfinite(post.flat("m_lr")).all()


def test_identifiability_problems_say_what_is_missing():
    one = user_sweep()
    one = one[one["setting"] == one["setting"].iloc[0]]
    assert "one setting" in transfer.identifiability_problems(one)[0]
    assert "same N" in transfer.identifiability_problems(user_sweep())[0]
    chinchilla = pd.DataFrame(
        {"N": [1e8, 1e9, 1e10], "D": [2e9, 2e10, 2e11], "setting": list("abc")}
    )
    assert "D ∝ N^1" in transfer.identifiability_problems(chinchilla)[0]
    fine = pd.DataFrame({"N": [1e8, 1e9, 1e9], "D": [2e9, 2e10, 1e11], "setting": list("abc")})
    assert transfer.identifiability_problems(fine) == []
    split = pd.DataFrame({"N": [1e8, 1e8, 1e9, 1e9], "D": [2e9, 2e10, 2e9, 2e10],
                          "family": ["a", "a", "b", "b"], "setting": list("abcd")})  # fmt: skip
    assert "N varies only between groups" in transfer.between_group_warnings(split, ["family"])[0]


def test_batch_unit_warnings():
    sweeps = user_sweep()
    assert batch_unit_warnings(sweeps) == []
    tokens_as_sequences = sweeps.assign(batch_tokens=sweeps["batch_tokens"] * 2048)
    assert "map it to batch_tokens" in batch_unit_warnings(tokens_as_sequences)[0]
    sequences_as_tokens = sweeps.assign(batch_tokens=sweeps["batch_sequences"])
    assert "map it to batch_sequences" in batch_unit_warnings(sequences_as_tokens)[0]


def test_fit_refuses_an_unidentifiable_sweep_before_sampling(tmp_path):
    csv = tmp_path / "mine.csv"
    mine = user_sweep()
    mine[["N", "D", "lr", "batch_sequences", "loss", "arch"]].assign(
        batch_sequences=mine["batch_tokens"]  # a tokens column under the sequences name
    ).to_csv(csv, index=False)
    result = invoke("fit", csv, "--seq-len", "2048", "--out", tmp_path / "x.nc")
    assert result.exit_code == 2, result.output
    assert "same N (6e+08)" in result.output and "--with-released" in result.output
    assert "warning: batches of up to" in result.output and "batch_tokens" in result.output
    assert not (tmp_path / "x.nc").exists()
    with pytest.raises(bsl.UnidentifiableSweepError, match="with_released=True"):
        api.fit(mine)


def test_column_mapping_speaks_cli(tmp_path):
    csv = tmp_path / "mine.csv"
    user_sweep()[["N", "D", "lr", "batch_tokens", "loss"]].rename(
        columns={"loss": "final_loss", "batch_tokens": "bt"}
    ).to_csv(csv, index=False)
    result = invoke("fit", csv)
    assert result.exit_code == 2 and "--column CANONICAL=YOURS" in result.output
    assert "columns={" not in result.output
    result = invoke("fit", csv, "--column", "loss=final_loss", "--column", "batch_tokens=bt")
    assert result.exit_code == 2 and "same N" in result.output  # mapped, read, then refused
    for bad, message in (
        ("loss", "needs CANONICAL=YOURS"),
        ("los=final_loss", "not a canonical"),
        ("loss=nope", "'nope' (given for 'loss') is not in the table"),
    ):
        result = invoke("fit", csv, "--column", bad)
        assert result.exit_code == 2 and message in result.output, result.output


# --------------------------------------------------------------------------- CLI fits (slow)


@pytest.fixture(scope="module")
def cli_loss(tmp_path_factory):
    """A loss posterior written by `bayes-steplaw fit` (the default model) from a CSV with the
    user's names, on sweeps simulated from a known law and surface; 2 x 100 draws, so that
    the gate fails by design."""
    folder = tmp_path_factory.mktemp("loss")
    sweeps, _ = bsl.simulate_sweeps(SIM_SETTINGS, SIM_LAW, seed=4)
    csv = folder / "sweep.csv"
    sweeps = sweeps[["N", "D", "lr", "batch_sequences", "loss", "family"]]
    sweeps.rename(columns={"loss": "final_loss", "batch_sequences": "bs"}).to_csv(csv, index=False)
    out = folder / "loss.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = invoke("fit", csv, "--seq-len", "2048", "--group-col", "family",
                        "--column", "loss=final_loss", "--column", "batch_sequences=bs",
                        "--out", out, "--seed", "1", "--chains", "2", "--draws", "100",
                        "--tune", "200")  # fmt: skip
    return bsl.load(out), out, sweeps, result


@pytest.mark.slow
def test_cli_fit_writes_a_posterior_and_says_it_has_not_converged(cli_loss, tmp_path):
    post, _, sweeps, result = cli_loss
    # 2 x 100 draws cannot reach ESS 400: the command says so and exits 3, after writing
    assert result.exit_code == 3, result.output
    assert "NOT CONVERGED" in result.output and "ESS < 400" in result.output
    assert isinstance(post, bsl.LossPosterior)  # the default model: every run enters
    assert post.metadata["n_runs"] == len(sweeps) and post.metadata["groups"] == ["family"]
    res = post.predict(1e9, 1e10, allow_unconverged=True).median()
    assert isinstance(res, xr.Dataset)
    assert all(np.isfinite(float(res[q])) for q in ("lr", "batch_tokens", "batch_sequences"))
    # without a mapping the loss column is missing: a one-line error that speaks CLI
    csv = tmp_path / "sweep.csv"
    sweeps.rename(columns={"loss": "final_loss"}).to_csv(csv, index=False)
    result = invoke("fit", csv, "--seq-len", "2048")
    assert result.exit_code == 2 and "--column CANONICAL=YOURS" in result.output


@pytest.mark.slow
def test_cli_fit_then_predict_plateau_recommend_with_posterior(cli_loss):
    post, path = cli_loss[:2]
    common = ["--posterior", path, "--allow-unconverged", "--json"]
    pred = json.loads(invoke("predict", "6e8", "2e10", "--group", "moe", *common).stdout)
    want = post.predict(6e8, 2e10, group="moe", allow_unconverged=True).to_dataframe().iloc[0]
    assert pred["lr_median"] == pytest.approx(want["lr_median"])
    assert pred["batch_tokens_upper"] == pytest.approx(want["batch_tokens_upper"])
    res = invoke("plateau", "6e8", "2e10", "--lr", "2e-3", "--batch-tokens", "1M", *common)
    out = json.loads(res.stdout)
    assert out["plateau_probability"] == pytest.approx(
        float(post.plateau_probability(6e8, 2e10, 2e-3, 1e6, allow_unconverged=True))
    )
    assert out["plateau_probability_sweep"] == pytest.approx(
        float(post.plateau_probability(6e8, 2e10, 2e-3, 1e6, reference="sweep",
                                       allow_unconverged=True))
    )  # fmt: skip
    rec = json.loads(invoke("recommend", "6e8", "2e10", *common).stdout)
    assert rec["lr"] == pytest.approx(post.recommend(6e8, 2e10, allow_unconverged=True).lr)
    plan = json.loads(invoke("plan-sweep", "6e8", "2e10", "--runs", "3", *common).stdout)
    want = bsl.plan_sweep(6e8, 2e10, 3, posterior=post, allow_unconverged=True)
    np.testing.assert_allclose([r["lr"] for r in plan["runs"]], want.points["lr"])
    loss = json.loads(invoke("loss", "6e8", "2e10", "--lr", "2e-3", "--batch-tokens", "1M",
                             *common).stdout)  # fmt: skip
    want = post.predict_loss(6e8, 2e10, 2e-3, 1e6, allow_unconverged=True).to_dataframe()
    assert loss["loss_median"] == pytest.approx(want["loss_median"][0])
    # without --allow-unconverged an unconverged posterior is refused in CLI terms
    res = invoke("recommend", "6e8", "2e10", "--posterior", path)
    assert res.exit_code == 2 and "--allow-unconverged" in res.output


@pytest.mark.slow  # builds the pooled loss model's graph twice (about 3 s)
def test_a_user_in_the_papers_setup_can_share_its_lab(released):
    """Pooled runs are another lab's (levels and exponent deviations of their own) unless the
    table says they come from the released lab's setup (``lab="step-law"``): then the graph
    has no lab terms, and the user's family sums to zero with the released families."""
    model = bsl.LossModel()
    for lab, terms in ((None, True), ("step-law", False)):
        mine = user_sweep() if lab is None else user_sweep().assign(lab=lab)
        pooled = bsl.pool_with_released(mine, ("arch",), released=released)
        graph = model.build(pooled).model
        assert ("dev_lr_lab" in graph.named_vars) is terms
        assert ("dev_div_lab" in graph.named_vars) is terms
