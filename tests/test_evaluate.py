"""Held-out evaluation (`bayes_steplaw.evaluate`, `bayes-steplaw evaluate`).

Splits and metrics against closed-form expectations; the method protocol with plug-in
methods whose answers are known; the CLI end to end; the Dask executor on a LocalCluster; and
the gold standard on simulated sweeps with a known law: a correct model's intervals cover
the quantity they describe at about their nominal rate, a deliberately wrong one's do not.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

import bayes_steplaw as bsl
from bayes_steplaw.bayes.card import evaluation_sections
from bayes_steplaw.cli import app
from bayes_steplaw.evaluate import (
    DEFAULT_INTERVAL_KIND,
    Evaluation,
    EvaluationError,
    MethodPrediction,
    brier_score,
    evaluate,
    make_folds,
    nearest_relative_loss,
    normal_log_score,
    paired_bootstrap,
    reliability_table,
)
from bayes_steplaw.evaluate.metrics import inside, width
from bayes_steplaw.laws import PAPER_TABLE2

SMALL_BOWL = bsl.Bowl(lr_window=0.8, bs_window=0.8)  # ~5 x 5 runs per setting: fast tables


def _sim(settings: list[tuple], seed: int = 0, law=None, bowl=SMALL_BOWL):
    cols = ["family", "variant", "N", "D", "recipe"][: len(settings[0])]
    return bsl.simulate_sweeps(pd.DataFrame(settings, columns=cols), law, bowl, seed=seed)


@pytest.fixture(scope="module")
def tiny():
    """4 dense settings and 2 variants x 2 of MoE; no recipe."""
    rows = [("dense", "dense", n, d) for n in (2e8, 6e8) for d in (4e9, 2e10)]
    rows += [("moe", v, 2e9, d) for v in ("a", "b") for d in (4e9, 2e10)]
    sweeps, truth = _sim(rows)
    return sweeps, truth


# --------------------------------------------------------------------------- splits


def test_loso_holds_out_each_setting_once_as_its_own_group(tiny):
    sweeps, _ = tiny
    folds = make_folds(sweeps, "loso")
    ids = sorted(sweeps["setting"].unique())
    assert [f.test for f in folds] == [(s,) for s in ids]
    for f in folds:
        assert set(f.train) == set(ids) - set(f.test)
        (s,) = f.test
        assert f.groups[s] == sweeps.loc[sweeps["setting"] == s, "setting"].iloc[0].split(" ")[0]


def test_logo_holds_out_each_variant_as_a_new_variant(tiny):
    sweeps, _ = tiny
    folds = make_folds(sweeps, "logo")  # default: the deepest column with levels, variant
    assert [f.name for f in folds] == ["moe/a", "moe/b"]
    for f, v in zip(folds, "ab"):
        assert sorted(f.test) == sorted(s for s in sweeps["setting"].unique() if f"moe/{v} " in s)
        assert set(f.groups.values()) == {"moe/new"}
        assert all(s.startswith("dense") or f"moe/{v} " not in s for s in f.train)
        assert sum(s.startswith("dense") for s in f.train) == 4  # dense is never held out


def test_logo_by_family_predicts_a_new_family(tiny):
    sweeps, _ = tiny
    folds = make_folds(sweeps, "logo", column="family")
    assert [f.name for f in folds] == ["dense", "moe"]
    assert [len(f.test) for f in folds] == [4, 4]
    assert all(set(f.groups.values()) == {"new"} for f in folds)


def test_logo_by_a_column_the_models_do_not_know():
    rows = [("dense", "dense", n, 1e10, r) for n in (2e8, 6e8) for r in ("web", "code")]
    sweeps, _ = _sim(rows)
    folds = make_folds(sweeps, "logo", column="recipe")
    assert [f.name for f in folds] == ["recipe=code", "recipe=web"]
    for f in folds:
        assert len(f.test) == 2 and len(f.train) == 2
        assert set(f.groups.values()) == {"dense"}  # not a model group: its own group
    with pytest.raises(ValueError, match="not in the sweep table"):
        make_folds(sweeps, "logo", column="colour")


def test_extrapolate_trains_on_each_familys_smallest_compute():
    # dense compute 6·N·D in units of 6e17: 1, 2, 2, 4, 4, 8, 8, 16; the 0.75 quantile is 8
    # (numpy's linear rule at position 5.25 between two 8s), so only N=2e8, D=8e9 is tested;
    # MoE: D = 1, 2, 4 (x 1e9): the quantile is 3 (position 1.5), so D=4e9 is tested
    rows = [("dense", "dense", n, d) for n in (1e8, 2e8) for d in (1e9, 2e9, 4e9, 8e9)]
    rows += [("moe", "moe", 1e9, d) for d in (1e9, 2e9, 4e9)]
    sweeps, _ = _sim(rows)
    (fold,) = make_folds(sweeps, "extrapolate")
    tested = sweeps[sweeps["setting"].isin(fold.test)].drop_duplicates("setting")
    assert sorted(zip(tested["family"], tested["N"], tested["D"])) == [
        ("dense", 2e8, 8e9),
        ("moe", 1e9, 4e9),
    ]
    assert len(fold.train) == 9
    (pooled,) = make_folds(sweeps, "extrapolate", by=None, quantile=0.5)
    assert (
        sweeps.loc[sweeps["setting"].isin(pooled.test), "N"]
        .mul(sweeps.loc[sweeps["setting"].isin(pooled.test), "D"])
        .min()
        > 4e17
    )  # pooled median of 6ND/6 over 11 settings is 4e17
    with pytest.raises(ValueError, match="quantile"):
        make_folds(sweeps, "extrapolate", quantile=1.0)
    with pytest.raises(ValueError, match="split must be one of"):
        make_folds(sweeps, "kfold")


# --------------------------------------------------------------------------- metrics


def _grid(losses: np.ndarray) -> pd.DataFrame:
    lr, bs = np.meshgrid([1e-3, 2e-3, 4e-3], [1e6, 2e6], indexing="ij")
    return pd.DataFrame(
        {"setting": "s", "lr": lr.ravel(), "batch_tokens": bs.ravel(), "loss": losses}
    )


def test_nearest_relative_loss_is_the_papers_metric():
    losses = np.array([2.05, 2.02, 2.00, 2.04, 2.10, 2.08])  # (lr, bs) in C order
    runs = _grid(losses)
    # ln 1.5e-3 is 0.288 from ln 2e-3 and 0.405 from ln 1e-3; ln 1.3e6 is 0.262 from ln 1e6
    assert nearest_relative_loss(runs, 1.5e-3, 1.3e6) == pytest.approx(2.00 / 2.00 - 1)
    assert nearest_relative_loss(runs, 1e-3, 1.9e6) == pytest.approx(2.02 / 2.00 - 1)
    assert nearest_relative_loss(runs, 9e-3, 5e6) == pytest.approx(2.08 / 2.00 - 1)
    assert math.isnan(nearest_relative_loss(runs, float("nan"), 1e6))


def test_inside_and_width():
    got = inside([1.0, 2.0, 3.0, 1.0], [0.5, 2.5, 3.0, np.nan], [1.5, 3.0, 3.0, 2.0])
    assert got.tolist() == [True, False, True, pd.NA]
    np.testing.assert_allclose(width([1.0, 2.0], [1.5, 3.0]), [1.5, 1.5])


def test_normal_log_score_closed_form():
    # four draws (±1, 0), (0, ±1): mean 0, covariance diag(2/3, 2/3) with ddof=1
    d = np.array([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]])
    expect_origin = -math.log(2 * math.pi) - 0.5 * math.log(4 / 9)
    assert normal_log_score(d, np.array([[0.0, 0.0]]))[0] == pytest.approx(expect_origin)
    expect_off = expect_origin - 0.5 * (1.0 / (2 / 3))
    assert normal_log_score(d, np.array([[1.0, 0.0]]))[0] == pytest.approx(expect_off)
    one = normal_log_score(d[..., :1], np.array([[0.5]]))[0]
    assert one == pytest.approx(stats.norm.logpdf(0.5, 0, math.sqrt(2 / 3)))
    flat = np.zeros((1, 4, 2))
    assert np.isnan(normal_log_score(flat, np.zeros((1, 2)))[0])  # singular: no density


def test_reliability_table_and_brier():
    p = np.array([0.0, 0.1, 0.1, 0.5, 0.9, 1.0, 1.0])
    hit = np.array([0, 0, 1, 1, 1, 1, 0])
    table = reliability_table(p, hit)
    assert table.loc["[0, 0.05)", "runs"] == 1
    assert table.loc["[0.05, 0.2)", "observed_fraction"] == pytest.approx(0.5)
    assert table.loc["[0.95, 1]", "runs"] == 2  # 1.0 falls in the closed last bin
    assert np.isnan(table.loc["[0.2, 0.4)", "mean_predicted"])
    assert table["runs"].sum() == len(p)
    assert brier_score(p, hit) == pytest.approx(np.mean((p - hit) ** 2))


def test_paired_bootstrap():
    flat = paired_bootstrap(np.full(12, 0.25))
    assert flat == {"mean": 0.25, "lower": 0.25, "upper": 0.25, "n": 12}
    rng = np.random.default_rng(1)
    diff = rng.normal(0.0, 1.0, 400)
    got = paired_bootstrap(diff, prob=0.9, seed=3)
    se = diff.std(ddof=0) / math.sqrt(diff.size)
    assert got["lower"] == pytest.approx(diff.mean() - 1.645 * se, abs=0.3 * se)
    assert got["upper"] == pytest.approx(diff.mean() + 1.645 * se, abs=0.3 * se)
    assert paired_bootstrap(diff, seed=3) == got  # seeded
    assert paired_bootstrap(np.array([1.0, np.nan]))["n"] == 1
    assert paired_bootstrap(np.array([]))["n"] == 0


def test_paired_differences_remove_the_shared_setting_variation():
    # the other method is bayes + 0.1 per mille everywhere, while settings differ by ~1 per
    # mille: paired, the gap is exactly 0.1 per mille with a zero-width interval
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 2e-3, 30)
    rows = []
    for method, rel in (
        ("bayes", base),
        ("other", base + 1e-4),
        ("noise", base + rng.normal(0, 1e-4, 30)),
    ):
        for i, r in enumerate(rel):
            rows.append({"split": "loso", "fold": f"s{i}", "method": method, "setting": f"s{i}",
                         "family": "dense" if i % 2 else "moe", "rel_loss": r,
                         "log_score": -r, "uses_loss": False})  # fmt: skip
    ev = Evaluation(pd.DataFrame(rows), meta={"methods": ["bayes", "other", "noise"]})
    diffs = ev.paired_differences()
    row = diffs.loc[("other", "all")]
    assert row["mean"] == pytest.approx(0.1)
    assert row["lower 90%"] == pytest.approx(0.1) and row["upper 90%"] == pytest.approx(0.1)
    assert (row["better"], row["worse"], row["settings"]) == (0, 30, 30)
    noise = diffs.loc[("noise", "all")]
    assert noise["lower 90%"] < noise["mean"] < noise["upper 90%"]
    mean = ev.mean_relative_loss()
    assert mean.loc["other", "all"] == pytest.approx(1e3 * (base.mean() + 1e-4))
    assert list(mean.columns) == ["dense", "moe", "all"]


# --------------------------------------------------------------------------- the protocol


class Fixed:
    """A plug-in method that learns nothing: one choice and one interval for every setting."""

    name = "fixed"

    def fit(self, train, context):
        assert not set(train["setting"]) & set(context.test)  # never sees held-out runs
        return self

    def predict(self, settings):
        n = len(settings)
        iv = {
            "lr_lower": np.full(n, 5e-4),
            "lr_upper": np.full(n, 2e-3),
            "batch_tokens_lower": np.full(n, 5e5),
            "batch_tokens_upper": np.full(n, 1e6),
        }
        return MethodPrediction(np.full(n, 1e-3), np.full(n, 7e5), {0.9: iv}, note="fixed")


def test_a_plugin_method_is_scored_on_every_fold_like_the_builtins(tiny):
    sweeps, _ = tiny
    ev = evaluate(sweeps, "loso", methods=[Fixed(), "steplaw", "minicpm"], workers=1)
    t = ev.table
    settings = sorted(sweeps["setting"].unique())
    assert len(t) == 3 * len(settings)
    for col in ("split", "method", "setting", "family", "rel_loss", "lr_in_90", "batch_in_90",
                "lr_width_90", "batch_width_90", "lr", "batch_tokens", "log_score"):  # fmt: skip
        assert col in t
    fixed = t[t["method"] == "fixed"].set_index("setting").loc[settings]
    best = sweeps.loc[sweeps.groupby("setting")["loss"].idxmin()].set_index("setting")
    for s in settings:
        held = sweeps[sweeps["setting"] == s]
        assert fixed.at[s, "rel_loss"] == pytest.approx(nearest_relative_loss(held, 1e-3, 7e5))
        assert bool(fixed.at[s, "lr_in_90"]) == (5e-4 <= best.at[s, "lr"] <= 2e-3)
        assert bool(fixed.at[s, "batch_in_90"]) == (5e5 <= best.at[s, "batch_tokens"] <= 1e6)
    assert (fixed["lr_width_90"] == 4.0).all() and fixed["lr_in_50"].isna().all()
    law = t[t["method"] == "steplaw"].set_index("setting").loc[settings]
    n_, d_ = best["N"].loc[settings], best["D"].loc[settings]
    lr = PAPER_TABLE2["lr_coef"] * n_ ** PAPER_TABLE2["alpha"] * d_ ** PAPER_TABLE2["beta"]
    np.testing.assert_allclose(law["lr"], lr, rtol=1e-12)
    assert law["lr_in_90"].isna().all() and law["log_score"].isna().all()
    mini = t[t["method"] == "minicpm"]
    assert mini["uses_loss"].all() and mini["rel_loss"].isna().all()  # no lr: no metric
    assert "best observed loss" in ev.describe()


class Broken:
    name = "broken"

    def fit(self, train, context):
        raise RuntimeError("no luck")


def test_a_failing_method_is_recorded_or_raised(tiny):
    sweeps, _ = tiny
    ev = evaluate(sweeps, "extrapolate", methods=[Broken(), "steplaw"], workers=1)
    broken = ev.table[ev.table["method"] == "broken"]
    assert broken["rel_loss"].isna().all() and broken["error"].str.contains("no luck").all()
    assert "no luck" in ev.describe()
    with pytest.raises(EvaluationError, match="'broken' failed on fold"):
        evaluate(sweeps, "extrapolate", methods=[Broken()], workers=1, on_error="raise")
    with pytest.raises(ValueError, match="unique"):
        evaluate(sweeps, methods=["steplaw", "steplaw"], workers=1)


def test_summary_records_are_json_and_render_in_a_model_card(tiny):
    sweeps, _ = tiny
    ev = evaluate(sweeps, "loso", methods=[Fixed(), "ols", "paper"], workers=1)
    rec = ev.to_records()
    text = json.dumps(rec, allow_nan=False)  # strict JSON: NaN stored as null
    assert json.loads(text)["tables"]
    card = "\n".join(evaluation_sections(rec))
    assert "### Mean relative loss of the nearest grid run (‰)" in card
    assert "| ols |" in card
    md = ev.to_markdown()
    assert md.startswith("# Held-out evaluation: loso") and "## Coverage" in md


def test_csv_round_trip(tiny, tmp_path):
    sweeps, _ = tiny
    ev = evaluate(sweeps, "loso", methods="ols,steplaw", workers=1)
    again = Evaluation.from_csv(ev.to_csv(tmp_path / "r.csv"))
    pd.testing.assert_frame_equal(again.mean_relative_loss(), ev.mean_relative_loss())
    pd.testing.assert_frame_equal(again.coverage(), ev.coverage())


def test_seeded_runs_are_reproducible(tiny):
    sweeps, _ = tiny
    a = evaluate(sweeps, "loso", methods="ols", workers=1, seed=4).table
    b = evaluate(sweeps, "loso", methods="ols", workers=1, seed=4).table
    c = evaluate(sweeps, "loso", methods="ols", workers=1, seed=5).table
    cols = ["lr", "lr_lower_90", "log_score"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert not np.allclose(a["lr_lower_90"], c["lr_lower_90"])  # another bootstrap


# --------------------------------------------------------------------------- calibration


class KnownLaw:
    """A plug-in method that knows the simulation's law form: predictive of a setting's
    optimum = law (with these exponents) + the true setting scatter, as draws."""

    def __init__(self, law: bsl.TrueLaw, name: str):
        self.law, self.name = law, name

    def fit(self, train, context):
        return self

    def predict(self, settings):
        lr, bs = self.law.optimum(settings["N"].to_numpy(), settings["D"].to_numpy(), "dense")
        z = np.random.default_rng(0).standard_normal((2, 4000))
        draws = np.stack(
            [
                np.log(lr)[:, None] + self.law.sigma_setting_lr * z[0],
                np.log(bs)[:, None] + self.law.sigma_setting_bs * z[1],
            ],
            axis=-1,
        )
        return MethodPrediction(lr, bs, draws=draws, note="the law + setting scatter")


CALIBRATION = [
    ("dense", "dense", n, d) for n in np.geomspace(1e8, 3e9, 8) for d in np.geomspace(3e9, 2e11, 6)
]


def test_coverage_of_the_truth_is_nominal_for_the_true_law_and_not_for_a_wrong_one():
    # settings whose optima are the law plus known setting scatter; the intervals are about
    # that optimum, so they are scored against it (truth=), not against the best run
    law = bsl.TrueLaw(offsets_lr={}, offsets_bs={})
    wrong = bsl.TrueLaw(offsets_lr={}, offsets_bs={}, alpha=law.alpha + 0.3, gamma=law.gamma - 0.2)
    sweeps, truth = _sim(CALIBRATION, seed=5, law=law)
    # one fold holding out 36 of the 48 settings (the split does not matter to a fixed law)
    methods = [KnownLaw(law, "true"), KnownLaw(wrong, "wrong")]
    ev = evaluate(sweeps, "extrapolate", quantile=0.25, methods=methods, workers=1, truth=truth)
    cov = ev.coverage("truth")
    for q in ("lr", "batch"):
        for mass in (50, 80, 90):
            # binomial sd at n = 36 is <= 0.083: about 3 sd either side
            assert abs(cov.loc[("true", "dense"), f"{q} {mass}%"] - mass / 100) < 0.25
        assert cov.loc[("wrong", "dense"), f"{q} 90%"] < 0.5
    assert ev.coverage().loc[("true", "dense"), "lr 90%"] < cov.loc[("true", "dense"), "lr 90%"]


# --------------------------------------------------------------------------- the CLI


def invoke(*args):
    return CliRunner().invoke(app, ["evaluate", *map(str, args)])


def test_cli_end_to_end(tiny, tmp_path):
    sweeps, _ = tiny
    csv, out, md = tmp_path / "sweeps.csv", tmp_path / "results.csv", tmp_path / "report.md"
    sweeps.to_csv(csv, index=False)
    result = invoke(csv, "--split", "loso", "--methods", "paper,ols", "--methods", "steplaw",
                    "--out", out, "--report", md, "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Mean relative loss of the nearest grid run" in result.stdout
    assert "Paired differences" not in result.stdout  # no bayes among the methods
    table = pd.read_csv(out)
    assert len(table) == 3 * sweeps["setting"].nunique()
    assert set(table["method"]) == {"paper", "ols", "steplaw"}
    required = {"split", "method", "setting", "family", "rel_loss", "lr_in_90", "batch_in_90",
                "lr_width_90", "batch_width_90", "lr_in_50", "lr_in_80", "log_score"}  # fmt: skip
    assert required <= set(table)
    assert table["rel_loss"].between(0, 0.5).all()  # a fraction, not per mille
    assert md.read_text().startswith("# Held-out evaluation: loso")
    quiet = invoke(csv, "--methods", "steplaw", "--out", out, "--workers", "1", "--quiet")
    assert quiet.exit_code == 0 and quiet.output == ""


def test_cli_errors(tiny, tmp_path):
    sweeps, _ = tiny
    csv = tmp_path / "sweeps.csv"
    sweeps.to_csv(csv, index=False)
    bad = tmp_path / "bad.csv"
    sweeps.drop(columns=["loss"]).to_csv(bad, index=False)
    for args, message in (
        ((bad,), "loss"),
        ((tmp_path / "missing.csv",), "does not exist"),
        ((csv, "--split", "kfold"), "--split must be one of"),
        ((csv, "--methods", "oracle"), "unknown method 'oracle'"),
        ((csv, "--out", tmp_path / "no" / "r.csv"), "does not exist"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output


# --------------------------------------------------------------------------- executors


EXECUTOR_RUN = dict(split="loso", methods="ols,paper,steplaw", seed=2)
COMPARED = ["method", "setting", "lr", "batch_tokens", "rel_loss", "lr_lower_90", "log_score"]


@pytest.mark.slow
def test_dask_cluster_gives_the_inline_answer(tiny):
    distributed = pytest.importorskip("dask.distributed")
    sweeps, _ = tiny
    inline = evaluate(sweeps, workers=1, **EXECUTOR_RUN).table
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    ) as cluster:
        dask = evaluate(sweeps, scheduler=cluster.scheduler_address, **EXECUTOR_RUN).table
    pd.testing.assert_frame_equal(dask[COMPARED], inline[COMPARED])


def test_an_unreachable_scheduler_is_a_clear_error(tiny):
    pytest.importorskip("dask.distributed")
    with pytest.raises(
        ValueError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:9'"
    ):
        evaluate(tiny[0], scheduler="tcp://127.0.0.1:9", connect_timeout=0.3, **EXECUTOR_RUN)


@pytest.mark.slow
def test_process_pool_gives_the_inline_answer(tiny):
    sweeps, _ = tiny
    inline = evaluate(sweeps, workers=1, **EXECUTOR_RUN).table
    pool = evaluate(sweeps, workers=2, **EXECUTOR_RUN)
    pd.testing.assert_frame_equal(pool.table[COMPARED], inline[COMPARED])
    assert pool.fits["pid"].nunique() >= 1 and os.getpid() not in set(pool.fits["pid"])


# --------------------------------------------------------------------------- NUTS


@pytest.mark.slow
def test_bayes_intervals_cover_what_they_describe_and_a_wrong_law_does_not():
    """The gold standard: LOSO refits of the optimum model on sweeps from a known law."""
    target = {"centre": "truth", "sweep": "best"}.get(DEFAULT_INTERVAL_KIND)
    if target is None:
        pytest.skip(f"no observable target for interval kind {DEFAULT_INTERVAL_KIND!r}")
    rows = [
        ("dense", "dense", n, d)
        for n in np.geomspace(1.5e8, 2e9, 4)
        for d in np.geomspace(4e9, 1e11, 4)
    ]
    rows += [("moe", "moe", 2e9, d) for d in (4e9, 2e10)]
    law = bsl.TrueLaw()
    wrong = bsl.TrueLaw(alpha=law.alpha + 0.3, gamma=law.gamma - 0.2)
    sweeps, truth = bsl.simulate_sweeps(
        pd.DataFrame(rows, columns=["family", "variant", "N", "D"]), law, seed=11
    )
    ev = evaluate(
        sweeps, "loso", methods=["bayes", KnownLaw(wrong, "wrong")], chains=2, draws=250,
        tune=250, workers=1, truth=truth, seed=1,
    )  # fmt: skip
    cov = ev.coverage(target)
    n = len(rows)
    for q in ("lr", "batch"):
        assert cov.loc[("bayes", "all"), f"{q} 90%"] >= 0.75, cov  # 18 settings: >= 14 inside
        assert 0.2 <= cov.loc[("bayes", "all"), f"{q} 50%"] <= 0.8, cov
        assert cov.loc[("wrong", "all"), f"{q} 90%"] <= 0.5, cov
    fits = ev.fits[ev.fits["method"] == "bayes"]
    assert len(fits) == n and (fits["compile_seconds"] > 0).sum() == 1  # compiled once
    assert ev.mean_relative_loss().loc["bayes", "all"] < 5  # per mille, a sane choice
    diffs = ev.paired_differences()
    assert diffs.loc[("wrong", "all"), "settings"] == n


@pytest.mark.slow
def test_landscape_plateau_reliability_end_to_end(tmp_path):
    rows = [("dense", "dense", n, d) for n in (2e8, 6e8, 1.8e9) for d in (4e9, 2e10, 1e11)]
    sweeps, _ = bsl.simulate_sweeps(
        pd.DataFrame(rows, columns=["family", "variant", "N", "D"]), seed=4
    )
    csv, out, runs = tmp_path / "s.csv", tmp_path / "r.csv", tmp_path / "runs.csv"
    sweeps.to_csv(csv, index=False)
    result = invoke(csv, "--split", "extrapolate", "--methods", "landscape,bayes,ols",
                    "--draws", "200", "--tune", "200", "--out", out, "--runs-out", runs,
                    "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Plateau reliability: within tol of the sweep's best run" in result.stdout
    assert "within tol of L*" in result.stdout
    per_run = pd.read_csv(runs)
    held = sweeps[sweeps["setting"].isin(per_run["setting"])]
    assert len(per_run) == len(held) and per_run["p_plateau"].between(0, 1).all()
    assert per_run["hit_best"].sum() >= per_run["setting"].nunique()  # each best run hits
    assert per_run["hit_star"].notna().all()
    table = pd.read_csv(out)
    land = table[table["method"] == "landscape"]
    assert land["brier_best"].between(0, 1).all() and land["brier_star"].notna().all()
