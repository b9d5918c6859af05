"""Held-out evaluation (`bayes_steplaw.evaluate`, `bayes-steplaw evaluate`): one harness, five
tasks.

Splits and metrics against closed-form expectations; the method protocol with plug-in methods
whose answers are known, task by task (choice, interval, loss, divergence, plateau); the
least-squares peers of the loss model; few-shot transfer; the CLI end to end; the Dask executor
on a LocalCluster; and the gold standard on simulated sweeps with a known law: a correct
model's intervals cover the quantity they describe at about their nominal rate, a deliberately
wrong one's do not. One end-to-end check of the loss model (``bayes``) on a tiny table.
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
    TASKS,
    Evaluation,
    EvaluationError,
    MethodPrediction,
    RunForecast,
    brier_score,
    evaluate,
    make_folds,
    nearest_relative_loss,
    normal_log_score,
    paired_bootstrap,
    reliability_table,
)
from bayes_steplaw.evaluate.metrics import inside, r_squared, rmse, width
from bayes_steplaw.evaluate.peers import ChinchillaBowl, PeerPredictor, Quadratic
from bayes_steplaw.evaluate.scoring import score_fold, score_runs
from bayes_steplaw.laws import PAPER_TABLE2

SMALL = bsl.TrueSurface(lr_window=0.8, bs_window=0.8)  # ~36 runs per setting: fast tables


def _sim(settings: list[tuple], seed: int = 0, law=None, surface=SMALL):
    cols = ["family", "variant", "N", "D", "recipe"][: len(settings[0])]
    return bsl.simulate_sweeps(pd.DataFrame(settings, columns=cols), law, surface, seed=seed)


@pytest.fixture(scope="module")
def tiny():
    """4 dense settings and 2 variants x 2 of MoE; no recipe."""
    rows = [("dense", "dense", n, d) for n in (2e8, 6e8) for d in (4e9, 2e10)]
    rows += [("moe", v, 2e9, d) for v in ("a", "b") for d in (4e9, 2e10)]
    sweeps, truth = _sim(rows)
    return sweeps, truth


@pytest.fixture(scope="module")
def pooled():
    """Dense, two MoE variants of three settings, and another lab's family of three."""
    rows = [("dense", "dense", n, 1e10) for n in (2e8, 6e8)]
    rows += [("moe", v, 2e9, d) for v in ("a", "b") for d in (4e9, 2e10, 1e11)]
    rows += [("user:lab", "user:lab", n, d) for n, d in ((1e8, 2e9), (3e8, 6e9), (1e9, 2e10))]
    sweeps, _ = _sim(rows, seed=1)
    return sweeps


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
        assert f.k is None


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
    (pooled_fold,) = make_folds(sweeps, "extrapolate", by=None, quantile=0.5)
    held = sweeps[sweeps["setting"].isin(pooled_fold.test)]
    assert (held["N"] * held["D"]).min() > 4e17  # pooled median of 6ND/6 over 11 settings
    with pytest.raises(ValueError, match="quantile"):
        make_folds(sweeps, "extrapolate", quantile=1.0)
    with pytest.raises(ValueError, match="split must be one of"):
        make_folds(sweeps, "kfold")


def test_transfer_trains_on_each_groups_k_smallest_settings(pooled):
    folds = make_folds(pooled, "transfer", k=(0, 1, 2, 4))
    names = [f.name for f in folds]
    # each MoE variant and the other lab's family, at every k it has settings left for
    assert names == ["moe/a k=0", "moe/b k=0", "user:lab k=0", "moe/a k=1", "moe/b k=1",
                     "user:lab k=1", "moe/a k=2", "moe/b k=2", "user:lab k=2"]  # fmt: skip
    ids = set(pooled["setting"])
    compute = pooled.drop_duplicates("setting").set_index("setting").eval("N * D")
    for f in folds:
        label = f.name.rsplit(" k=", 1)[0]
        members = sorted((s for s in ids if s.startswith(label + " ")), key=compute.get)
        assert f.k == int(f.name.rsplit("=", 1)[1])
        assert list(f.test) == members[f.k :]  # the smallest k train, the rest are tested
        assert set(f.train) == (ids - set(members)) | set(members[: f.k])
        expect = {"moe/a": "moe/new", "moe/b": "moe/new", "user:lab": "new"}[label]
        assert set(f.groups.values()) == {expect if f.k == 0 else label}
    with pytest.raises(ValueError, match="leaves no setting to test"):
        make_folds(pooled, "transfer", k=(3, 4))
    with pytest.raises(ValueError, match="k must be integers"):
        make_folds(pooled, "transfer", k=(-1,))


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


def test_inside_width_r2_rmse():
    got = inside([1.0, 2.0, 3.0, 1.0], [0.5, 2.5, 3.0, np.nan], [1.5, 3.0, 3.0, 2.0])
    assert got.tolist() == [True, False, True, pd.NA]
    np.testing.assert_allclose(width([1.0, 2.0], [1.5, 3.0]), [1.5, 1.5])
    y = np.array([1.0, 2.0, 4.0])
    assert r_squared(y, y) == 1.0 and math.isnan(r_squared([1.0], [1.0]))
    assert r_squared(y, np.full(3, y.mean())) == pytest.approx(0.0)
    assert rmse(y, y + 0.5) == pytest.approx(0.5)


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
    # a draw that is not finite (a simulated sweep whose runs all diverged) is left out
    holed = np.concatenate([d, np.full((1, 1, 2), np.nan)], axis=1)
    assert normal_log_score(holed, np.array([[0.0, 0.0]]))[0] == pytest.approx(expect_origin)


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


def _rows(methods: dict, **fixed) -> pd.DataFrame:
    rows = []
    for method, values in methods.items():
        for i, v in enumerate(values):
            rows.append({"split": "loso", "fold": f"s{i}", "method": method, "setting": f"s{i}",
                         "family": "dense" if i % 2 else "moe", **fixed,
                         **(v if isinstance(v, dict) else {"rel_loss": v})})  # fmt: skip
    return pd.DataFrame(rows)


def test_paired_differences_remove_the_shared_setting_variation():
    # the other method is bayes + 0.1 per mille everywhere, while settings differ by ~1 per
    # mille: paired, the gap is exactly 0.1 per mille with a zero-width interval
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 2e-3, 30)
    frame = _rows(
        {"bayes": base, "other": base + 1e-4, "noise": base + rng.normal(0, 1e-4, 30)},
        uses_loss=False,
    ).assign(log_score=lambda f: -f["rel_loss"])
    ev = Evaluation(frame, meta={"methods": ["bayes", "other", "noise"]})
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
    # one function for every metric: a log score higher by 0.1 is 0.1 better
    logs = ev.paired_differences(metric="log_score").loc[("other", "all")]
    assert logs["mean"] == pytest.approx(-1e-4) and logs["worse"] == 30
    with pytest.raises(ValueError, match="unknown metric"):
        ev.paired_differences(metric="colour")


def test_paired_differences_of_the_loss_scores():
    loss = {
        "bayes": [{"loss_r2": r, "loss_rmse": 0.01, "loss_in_90": c, "best_loss_err": e,
                   "brier_diverge": 0.0} for r, c, e in ((0.9, 0.9, 0.001), (0.8, 0.8, -0.002),
                                                         (0.7, 1.0, 0.0))],
        "peer-quadratic": [{"loss_r2": r, "loss_rmse": 0.01, "loss_in_90": 0.5,
                            "best_loss_err": e, "brier_diverge": 0.0}
                           for r, e in ((0.5, 0.01), (0.6, 0.0), (0.7, -0.01))],
    }  # fmt: skip
    ev = Evaluation(_rows(loss).assign(family="dense"))
    r2 = ev.paired_differences(metric="loss_r2").loc[("peer-quadratic", "dense")]
    assert r2["mean"] == pytest.approx(-0.2) and r2["settings"] == 3
    assert (r2["better"], r2["worse"]) == (0, 2)  # higher R² is better; one tie
    err = ev.paired_differences(metric="abs_best_loss_err").loc[("peer-quadratic", "dense")]
    assert err["mean"] == pytest.approx((0.01 - 0.001 + 0.0 - 0.002 + 0.01 - 0.0) / 3)
    # a coverage is compared by its distance from the nominal mass
    cover = ev.paired_differences(metric="loss_in_90").loc[("peer-quadratic", "dense")]
    assert cover["mean"] == pytest.approx((0.4 - 0.0 + 0.4 - 0.1 + 0.4 - 0.1) / 3)
    summary = ev.paired_summary()
    assert ("loss_r2", "peer-quadratic") in summary.index
    assert summary.loc[("loss_r2", "peer-quadratic"), "mean"] == pytest.approx(-0.2)


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
    # tasks the method cannot do are skipped: NaN, not an error
    assert fixed["loss_r2"].isna().all() and fixed["brier_diverge"].isna().all()
    assert (t["error"] == "").all() and ev.runs is None
    law = t[t["method"] == "steplaw"].set_index("setting").loc[settings]
    n_, d_ = best["N"].loc[settings], best["D"].loc[settings]
    lr = PAPER_TABLE2["lr_coef"] * n_ ** PAPER_TABLE2["alpha"] * d_ ** PAPER_TABLE2["beta"]
    np.testing.assert_allclose(law["lr"], lr, rtol=1e-12)
    assert law["lr_in_90"].isna().all() and law["log_score"].isna().all()
    mini = t[t["method"] == "minicpm"]
    assert mini["uses_loss"].all() and mini["rel_loss"].isna().all()  # no lr: no metric
    assert "best observed loss" in ev.describe()


def test_tasks_choose_the_columns(tiny):
    sweeps, _ = tiny
    ev = evaluate(sweeps, "extrapolate", methods=[Fixed()], tasks="choice", workers=1)
    assert "rel_loss" in ev.table and "lr_in_90" not in ev.table and "loss_r2" not in ev.table
    assert ev.meta["tasks"] == ["choice"]
    ev = evaluate(sweeps, "extrapolate", methods=[Fixed()], tasks=["interval"], workers=1)
    assert "rel_loss" not in ev.table and "lr_in_90" in ev.table
    assert set(TASKS) == {"choice", "interval", "loss", "divergence", "plateau"}
    with pytest.raises(ValueError, match="unknown task"):
        evaluate(sweeps, methods=[Fixed()], tasks="speed", workers=1)


class Broken:
    name = "broken"

    def fit(self, train, context):
        raise RuntimeError("no luck")


class HalfBroken(Fixed):
    """Fits, predicts; its run forecast fails: the other tasks keep their scores."""

    name = "half"

    def predict_runs(self, runs):
        raise RuntimeError("no runs today")


def test_a_failing_method_or_task_is_recorded_or_raised(tiny):
    sweeps, _ = tiny
    ev = evaluate(sweeps, "extrapolate", methods=[Broken(), HalfBroken(), "steplaw"], workers=1)
    broken = ev.table[ev.table["method"] == "broken"]
    assert broken["rel_loss"].isna().all() and broken["error"].str.contains("no luck").all()
    half = ev.table[ev.table["method"] == "half"]
    assert half["rel_loss"].notna().all() and half["loss_r2"].isna().all()
    assert half["error"].str.contains(r"\(loss\): RuntimeError: no runs today").all()
    assert "no luck" in ev.describe()
    with pytest.raises(EvaluationError, match="'broken' failed on fold"):
        evaluate(sweeps, "extrapolate", methods=[Broken()], workers=1, on_error="raise")
    with pytest.raises(ValueError, match="unique"):
        evaluate(sweeps, methods=["steplaw", "steplaw"], workers=1)
    with pytest.raises(ValueError, match="landscape model was removed"):
        evaluate(sweeps, methods=["landscape"], workers=1)


def test_summary_records_are_json_and_render_in_a_model_card(tiny):
    sweeps, _ = tiny
    ev = evaluate(sweeps, "loso", methods=[Fixed(), "ols", "paper"], tasks="choice,interval",
                  workers=1)  # fmt: skip
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
    ev = evaluate(sweeps, "loso", methods="ols,steplaw", tasks="choice,interval", workers=1)
    again = Evaluation.from_csv(ev.to_csv(tmp_path / "r.csv"))
    pd.testing.assert_frame_equal(again.mean_relative_loss(), ev.mean_relative_loss())
    pd.testing.assert_frame_equal(again.coverage(), ev.coverage())
    pd.testing.assert_frame_equal(again.widths(), ev.widths())


def test_seeded_runs_are_reproducible(tiny):
    sweeps, _ = tiny
    kw = {"methods": "ols", "tasks": "choice,interval", "workers": 1}
    a = evaluate(sweeps, "loso", seed=4, **kw).table
    b = evaluate(sweeps, "loso", seed=4, **kw).table
    c = evaluate(sweeps, "loso", seed=5, **kw).table
    cols = ["lr", "lr_lower_90", "log_score"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert not np.allclose(a["lr_lower_90"], c["lr_lower_90"])  # another bootstrap


# --------------------------------------------------------------------------- loss, divergence


def _setting_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The held-out settings of ``runs`` as :func:`score_fold` reads them."""
    rows = []
    for s, part in runs.groupby("setting", sort=False):
        best = part.loc[part["loss"].idxmin()]
        rows.append({"setting": s, "family": "dense", "group": "dense", "N": 1e9, "D": 1e10,
                     "compute": 6e19, "best_lr": best["lr"],
                     "best_batch_tokens": best["batch_tokens"], "best_loss": best["loss"],
                     "n_runs": len(part)})  # fmt: skip
    return pd.DataFrame(rows)


def test_loss_and_divergence_scores_against_hand_computed_values():
    runs = pd.DataFrame({"setting": "s", "lr": [1e-3, 2e-3, 4e-3, 8e-3],
                         "batch_tokens": 1e6, "loss": [2.0, 2.1, 2.3, 6.0],
                         "diverged": [False, False, False, True]})  # fmt: skip
    forecast = RunForecast(
        median=np.array([2.0, 2.2, 2.3, 2.5]),
        intervals={0.9: (np.array([1.9, 2.15, 2.0, 2.0]), np.array([2.1, 2.3, 2.4, 3.0]))},
        log_density=np.array([1.0, 0.0, -1.0, 9.0]),
        p_diverge=np.array([0.0, 0.1, 0.2, 0.6]),
        sweep_best={"s": 1.99},
        loss_star={"s": 2.01},
    ).checked(4, (0.9,), "hand")
    row = score_fold(
        split="loso", fold="s", method="hand", settings=_setting_frame(runs), runs=runs,
        prediction=None, masses=(0.9,), diagnostics={}, seconds=0.0, forecast=forecast,
    ).iloc[0]  # fmt: skip
    ybar = np.mean([2.0, 2.1, 2.3])
    assert row["loss_r2"] == pytest.approx(
        1 - 0.01 / ((2.0 - ybar) ** 2 + (2.1 - ybar) ** 2 + (2.3 - ybar) ** 2)
    )
    assert row["loss_rmse"] == pytest.approx(np.sqrt(0.01 / 3))
    assert row["loss_in_90"] == pytest.approx(2 / 3)
    assert row["loss_logscore"] == pytest.approx(0.0)  # the diverged run is not scored
    assert row["best_loss_err"] == pytest.approx(-0.01)
    assert row["best_star_err"] == pytest.approx(0.01)
    assert row["brier_diverge"] == pytest.approx((0 + 0.01 + 0.04 + 0.16) / 4)
    assert row["n_diverged"] == 1 and math.isnan(row["rel_loss"])  # no choice given
    per_run = score_runs(split="loso", fold="s", method="hand", runs=runs, masses=(0.9,),
                         tol=0.01, forecast=forecast)  # fmt: skip
    assert per_run["p_diverge"].tolist() == [0.0, 0.1, 0.2, 0.6]
    assert per_run["loss_upper_90"].tolist() == [2.1, 2.3, 2.4, 3.0]
    with pytest.raises(ValueError, match="median has 3 values for 4 runs"):
        RunForecast(median=np.ones(3)).checked(4, (0.9,), "hand")


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


def _peer_scores(peer, runs):
    forecast = peer.forecast(runs, (0.9,)).checked(len(runs), (0.9,), peer.name)
    return score_fold(
        split="loso", fold="f", method=peer.name, settings=_setting_frame(runs), runs=runs,
        prediction=None, masses=(0.9,), diagnostics={}, seconds=0.0, forecast=forecast,
    ).iloc[0]  # fmt: skip


def test_quadratic_peer_recovers_a_quadratic_surface():
    rng = np.random.default_rng(0)

    def truth(f):
        z = np.log(f["lr"]) + 7, np.log(f["batch_tokens"]) - 13.5, np.log(f["N"]) - 20
        return np.exp(
            0.8 + 0.01 * z[0] ** 2 + 0.005 * z[1] ** 2 - 0.05 * z[2] + 0.003 * z[0] * z[1]
        )

    data = _peer_data(rng, truth)
    peer = Quadratic().fit(data)
    runs = data[data["setting"] == "s3"].reset_index(drop=True)
    s = _peer_scores(peer, runs)
    assert s["loss_r2"] > 0.999 and s["loss_in_90"] > 0.7
    assert peer.sigma == pytest.approx(1e-4, rel=0.2)
    # its choice: the grid run of lowest predicted loss, the best run of a noiseless bowl
    chosen = PeerPredictor(peer, (0.9,)).choose(runs[["setting"]].drop_duplicates(), runs)
    best = runs.loc[runs["loss"].idxmin()]
    assert (chosen[0][0], chosen[1][0]) == (best["lr"], best["batch_tokens"])


def test_chinchilla_bowl_peer_recovers_its_own_form_and_a_new_group_gets_the_mean():
    rng = np.random.default_rng(1)

    def truth(f):
        floor = 1.6 + 400 / f["N"] ** 0.34 + 400 / f["D"] ** 0.28
        lr0 = 0.5 * f["N"] ** -0.7 * f["D"] ** 0.3
        bs0 = 0.5 * f["D"] ** 0.55
        return floor * (
            1 + 0.01 * np.log(f["lr"] / lr0) ** 2 + 0.006 * np.log(f["batch_tokens"] / bs0) ** 2
        )

    data = _peer_data(rng, truth)
    peer = ChinchillaBowl().fit(data[data["setting"] != "s2"])
    runs = data[data["setting"] == "s2"].reset_index(drop=True)
    assert _peer_scores(peer, runs)["loss_r2"] > 0.99
    # a never-seen group (logo, transfer at k = 0) is predicted at the mean of the groups
    new = runs.assign(group="dense/new", family="other")
    np.testing.assert_allclose(peer._mean(new), peer._mean(runs), rtol=1e-12)


# --------------------------------------------------------------------------- plateau


class Oracle(Fixed):
    """Plateau probabilities known in advance: 0.9 for the best run of each setting, 0.1 for
    the others (p_sweep), 0.5 everywhere (p_plateau); L* = the best run's loss (yardstick)."""

    name = "oracle"
    plateau = True

    def fit(self, train, context):
        self.sweeps = context.sweeps
        return self

    def plateau_probability(self, runs, tol):
        best = runs.groupby("setting")["loss"].transform("min")
        return {"p_sweep": np.where(runs["loss"] == best, 0.9, 0.1),
                "p_plateau": np.full(len(runs), 0.5)}  # fmt: skip

    def yardstick(self, context):
        return context.sweeps.groupby("setting")["loss"].min()


def test_plateau_reliability_and_brier_for_both_events(tiny, tmp_path):
    sweeps, _ = tiny
    ev = evaluate(sweeps, "loso", methods=[Oracle()], tasks="plateau", tol=0.0025, workers=1)
    runs = ev.runs
    assert len(runs) == len(sweeps) and ev.meta["yardstick"] == "full-data fit of 'oracle'"
    rel = runs["loss"] / runs.groupby("setting")["loss"].transform("min") - 1
    np.testing.assert_array_equal(runs["hit_best"], (rel <= 0.0025).astype(float))
    np.testing.assert_array_equal(runs["hit_star"], runs["hit_best"])  # L* = the best run here
    brier = ev.brier()
    expect = np.mean((np.where(rel == 0, 0.9, 0.1) - runs["hit_best"]) ** 2)
    assert brier.loc[("oracle", "best"), "brier"] == pytest.approx(expect)
    assert brier.loc[("oracle", "star"), "brier"] == pytest.approx(
        np.mean((0.5 - runs["hit_star"]) ** 2)
    )
    table = ev.reliability("best").loc["oracle"]
    assert table.loc["[0.8, 0.95)", "runs"] == sweeps["setting"].nunique()  # the best runs
    assert table.loc["[0.8, 0.95)", "observed_fraction"] == 1.0
    per_setting = ev.table.set_index("setting")
    assert per_setting["brier_best"].notna().all() and per_setting["brier_star"].notna().all()
    assert "Plateau reliability: within tol of the sweep's best run" in ev.report()


# --------------------------------------------------------------------------- transfer


class Halved(Fixed):
    """Predicts every setting's best run at half its lr and batch: a bias of 2 exactly."""

    name = "halved"

    def fit(self, train, context):
        self.best = context.sweeps.loc[context.sweeps.groupby("setting")["loss"].idxmin()]
        self.best = self.best.set_index("setting")
        return self

    def predict(self, settings):
        lr = self.best.loc[settings["setting"], "lr"].to_numpy() / 2
        bs = self.best.loc[settings["setting"], "batch_tokens"].to_numpy() / 2
        iv = {"lr_lower": lr / 1.5, "lr_upper": lr * 1.5, "batch_tokens_lower": bs / 3,
              "batch_tokens_upper": bs * 3}  # fmt: skip
        return MethodPrediction(lr, bs, {0.9: iv})


def test_transfer_rows_carry_k_and_the_summary_reports_bias_against_k(pooled):
    ev = evaluate(pooled, "transfer", methods=[Halved(), "steplaw"], k=(0, 1, 2),
                  tasks="choice,interval", workers=1)  # fmt: skip
    t = ev.table
    assert "k" in t and sorted(t["k"].unique()) == [0, 1, 2]
    assert ev.meta["k"] == [0, 1, 2]
    summary = ev.transfer_summary()
    for k, n in ((0, 9), (1, 6), (2, 3)):  # 3 groups of 3 settings, k of each train
        row = summary.loc[("halved", k)]
        assert row["settings"] == n
        assert row["lr bias"] == pytest.approx(2.0) and row["batch bias"] == pytest.approx(2.0)
        assert row["lr 90%"] == 0.0 and row["batch 90%"] == 1.0  # 1.5x misses 2x, 3x holds it
        assert row["lr width 90%"] == pytest.approx(2.25)
    assert "Transfer against k" in ev.report()
    # paired on (fold, setting): a setting tested at several k is paired within each fold
    diff = Evaluation(t, meta=ev.meta, baseline="halved").paired_differences()
    assert diff.loc[("steplaw", "all"), "settings"] == 18


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
    narrow = bsl.TrueSurface(lr_window=0.5, bs_window=0.5)
    sweeps, truth = _sim(CALIBRATION, seed=5, law=law, surface=narrow)
    # one fold holding out 36 of the 48 settings (the split does not matter to a fixed law)
    methods = [KnownLaw(law, "true"), KnownLaw(wrong, "wrong")]
    ev = evaluate(sweeps, "extrapolate", quantile=0.25, methods=methods, workers=1, truth=truth,
                  tasks="interval")  # fmt: skip
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


def test_cli_end_to_end_and_rows_read_back(tiny, tmp_path):
    sweeps, _ = tiny
    csv, out, md = tmp_path / "sweeps.csv", tmp_path / "results.csv", tmp_path / "report.md"
    records, runs = tmp_path / "records.json", tmp_path / "runs.csv"
    sweeps.to_csv(csv, index=False)
    result = invoke(csv, "--split", "extrapolate", "--methods", "paper,ols", "--method",
                    "steplaw,peer-quadratic", "--task", "choice,interval", "--task", "loss",
                    "--out", out, "--report", md, "--runs-out", runs, "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Mean relative loss of the nearest grid run" in result.stdout
    assert "Loss of every held-out run" in result.stdout
    assert "Paired differences" not in result.stdout  # no bayes among the methods
    table = pd.read_csv(out)
    assert set(table["method"]) == {"paper", "ols", "steplaw", "peer-quadratic"}
    required = {"split", "method", "setting", "family", "rel_loss", "lr_in_90", "batch_in_90",
                "lr_width_90", "batch_width_90", "lr_in_50", "lr_in_80", "log_score",
                "loss_r2", "loss_in_90"}  # fmt: skip
    assert required <= set(table) and "brier_diverge" not in table  # divergence not asked for
    assert table["rel_loss"].dropna().between(0, 0.5).all()  # a fraction, not per mille
    assert md.read_text().startswith("# Held-out evaluation: extrapolate")
    assert set(pd.read_csv(runs)["method"]) == {"peer-quadratic"}
    # the rows read back: the same tables, no refit, compared against --baseline
    again = invoke("--rows", out, "--run-rows", runs, "--baseline", "ols", "--records", records)
    assert again.exit_code == 0, again.output
    assert "Paired differences in relative loss vs ols" in again.stdout
    rec = json.loads(records.read_text())
    assert "Loss of every held-out run (per setting, over its runs)" in rec["tables"]
    no_base = invoke("--rows", out)
    assert no_base.exit_code == 2 and "no rows of method 'bayes'" in no_base.output
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
        ((csv, "--task", "speed"), "unknown --task ['speed']"),
        ((csv, "--split", "transfer", "--k", "1,x"), "--k must be integers"),
        ((csv, "--rows", csv), "not both"),
        ((csv, "--run-rows", csv), "--run-rows goes with --rows"),
        ((csv, "--out", tmp_path / "no" / "r.csv"), "does not exist"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
        if args[0] is not bad:  # a sweep table's problems are listed one per line
            assert len(result.output.strip().splitlines()) == 1, result.output


# --------------------------------------------------------------------------- executors


EXECUTOR_RUN = dict(split="loso", methods="ols,paper,steplaw", seed=2, tasks="choice,interval")
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


@pytest.mark.slow
def test_peers_on_every_task_they_can_do(tiny):
    sweeps, _ = tiny
    ev = evaluate(sweeps, "extrapolate", methods="peer-quadratic,peer-chinchilla-bowl,steplaw",
                  workers=1)  # fmt: skip
    peers = ev.table[ev.table["method"].str.startswith("peer-")]
    for col in ("rel_loss", "loss_r2", "loss_in_90", "loss_logscore", "best_loss_err",
                "brier_diverge"):  # fmt: skip
        assert peers[col].notna().all(), col
    assert peers["lr_in_90"].isna().all()  # no intervals for the optimum
    assert ev.runs is not None and ev.runs["p_diverge"].between(0, 1).all()
    assert len(ev.divergence()) and len(ev.loss_scores())


# --------------------------------------------------------------------------- NUTS


@pytest.mark.slow
def test_optimum_intervals_cover_what_they_describe_and_a_wrong_law_does_not(monkeypatch):
    """The gold standard: LOSO refits of the optimum model on sweeps from a known law.

    On nutpie's numba backend, which this test is the one to exercise: one compiled model
    sampled 18 times, where numba's chains run in parallel and JAX's take turns with the GIL
    (this test alone on two cores: 54 s against 151 s with JAX)."""
    monkeypatch.setenv("BAYES_STEPLAW_NUTPIE_BACKEND", "numba")
    # the intervals of the best run of a sweep hold the best run; those of the optimum, the truth
    target = {"optimum": "truth", "sweep": "best"}[DEFAULT_INTERVAL_KIND]
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
        sweeps, "loso", methods=["optimum", KnownLaw(wrong, "wrong")], tasks="choice,interval",
        chains=2, draws=250, tune=250, workers=1, truth=truth, seed=1,
    )  # fmt: skip
    cov = ev.coverage(target)
    n = len(rows)
    for q in ("lr", "batch"):
        assert cov.loc[("optimum", "all"), f"{q} 90%"] >= 0.75, cov  # 18 settings: >= 14 inside
        assert 0.2 <= cov.loc[("optimum", "all"), f"{q} 50%"] <= 0.8, cov
        assert cov.loc[("wrong", "all"), f"{q} 90%"] <= 0.5, cov
    fits = ev.fits[ev.fits["method"] == "optimum"]
    assert len(fits) == n and (fits["compile_seconds"] > 0).sum() == 1  # compiled once
    assert ev.mean_relative_loss().loc["optimum", "all"] < 5  # per mille, a sane choice
    diffs = Evaluation(ev.table, meta=ev.meta, baseline="optimum").paired_differences()
    assert diffs.loc[("wrong", "all"), "settings"] == n


@pytest.mark.slow
def test_the_loss_model_does_every_task_end_to_end(tmp_path):
    """``bayes`` (the loss model) on a tiny table: one held-out fold and the L* yardstick,
    two chains of few draws (the scores are not judged, the plumbing is)."""
    rows = [("dense", "dense", n, d) for n in (2e8, 6e8) for d in (4e9, 2e10)]
    rows += [("moe", v, 2e9, d) for v in ("a", "b") for d in (4e9, 2e10)]
    sweeps, _ = _sim(rows, seed=4, surface=bsl.TrueSurface(lr_window=0.6, bs_window=0.7))
    csv, out, runs = tmp_path / "s.csv", tmp_path / "r.csv", tmp_path / "runs.csv"
    sweeps.to_csv(csv, index=False)
    result = invoke(csv, "--split", "extrapolate", "--methods", "bayes,peer-quadratic",
                    "--draws", "60", "--tune", "60", "--out", out, "--runs-out", runs,
                    "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    bayes = table[table["method"] == "bayes"]
    for col in ("rel_loss", "lr_in_90", "log_score", "loss_r2", "loss_in_90", "best_loss_err",
                "brier_diverge", "brier_best", "brier_star"):  # fmt: skip
        assert bayes[col].notna().all(), col
    assert bayes["error"].isna().all()  # written empty, read back as missing
    per_run = pd.read_csv(runs)
    mine = per_run[per_run["method"] == "bayes"]
    held = sweeps[sweeps["setting"].isin(mine["setting"])]
    assert len(mine) == len(held)
    for col in ("p_plateau", "p_sweep", "p_diverge"):
        assert mine[col].between(0, 1).all(), col
    assert mine["hit_star"].notna().all()  # the yardstick: a full-data fit of the loss model
    assert "Paired differences in the loss scores vs bayes" in result.stdout
    assert "within tol of L*" in result.stdout
