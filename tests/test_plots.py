"""The plotting functions: they return Figures/Axes with the expected artists, log axes where
quantities span decades, and labels with units. They run on the shipped posterior."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection, PolyCollection, QuadMesh
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from bayes_steplaw import BootstrapOLS, load_default, load_sweeps, plots
from bayes_steplaw.bootstrap import PAPER_TABLE2

# the plots speak the current API: any deprecated spelling they used would fail here
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")


@pytest.fixture(scope="module")
def post():
    return load_default()


@pytest.fixture(scope="module")
def sweeps():
    return load_sweeps("all")


@pytest.fixture(scope="module")
def published():
    return BootstrapOLS.from_published()


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _labels(ax: Axes) -> str:
    return f"{ax.get_xlabel()} | {ax.get_ylabel()}"


def test_palette_is_okabe_ito():
    assert len(set(plots.PALETTE)) == len(plots.PALETTE) == 8
    assert set(plots.PALETTE) == set(plots.OKABE_ITO.values())
    assert set(plots.ROLE_COLORS.values()) - {"#7f7f7f"} <= set(plots.OKABE_ITO.values())
    assert plots.si(2.147e8) == "215M" and plots.si(1.4e12) == "1.4T"


def test_exponent_pairs(post, published):
    fig = plots.exponent_pairs(post, bootstrap={"published": published}, paper=PAPER_TABLE2)
    assert isinstance(fig, Figure)
    axes = np.array(fig.axes).reshape(3, 3)
    assert not axes[0, 1].axison and not axes[0, 2].axison  # upper triangle hidden
    # scatter panels hold the posterior and the ensemble; the paper's star is a line marker
    assert len(axes[1, 0].collections) == 2
    assert any(line.get_marker() == "*" for line in axes[1, 0].lines)
    assert "α" in axes[2, 0].get_xlabel() or "alpha" in axes[2, 0].get_xlabel()
    texts = [t.get_text() for t in axes[0, 2].get_legend().get_texts()]
    assert texts == ["Bayesian posterior", "published", "paper Table 2"]


@pytest.mark.parametrize("against", ["D", "N"])
def test_optimum_scaling_lr(post, sweeps, against):
    ax = plots.optimum_scaling(post, sweeps, against=against)
    assert isinstance(ax, Axes)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "learning rate" in ax.get_ylabel()
    assert ("tokens" if against == "D" else "parameters") in ax.get_xlabel()
    n_lines = 5 if against == "D" else 4  # five dense N values; four D values by default
    assert len(ax.lines) == n_lines
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) >= 2 * n_lines  # 50% and 90% band per line (+ extrapolation shading)
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 2  # near-optimal runs and setting means
    assert len(points[1].get_offsets()) == 17  # one mean per dense setting
    assert len(ax.figure.axes) == 2  # the colorbar


def test_optimum_scaling_kind(post):
    """``kind`` goes to predict as it is; the legend says what the bands are about, and a new
    setting's optimum (law + setting scatter) has wider bands than the law."""

    def widest_band(ax):
        verts = ax.collections[0].get_paths()[0].vertices  # the 90% band of the first line
        return np.ptp(np.log(verts[:, 1]))

    law = plots.optimum_scaling(post, at=[5e8])
    centre = plots.optimum_scaling(post, at=[5e8], kind="centre")
    assert law.get_legend().get_title().get_text() == "intervals of the law"
    assert "a new setting's optimum" in centre.get_legend().get_title().get_text()
    assert widest_band(centre) > widest_band(law)
    with pytest.raises(ValueError, match="kind"):
        plots.optimum_scaling(post, kind="nonsense")


def test_optimum_scaling_batch_single_line(post, sweeps):
    ax = plots.optimum_scaling(post, sweeps, quantity="batch_tokens", against="D")
    assert len(ax.lines) == 1  # no delta: the batch law is the same for every N
    assert "batch size (tokens)" in ax.get_ylabel()
    assert len(ax.figure.axes) == 1
    assert to_hex(ax.lines[0].get_color()) == plots.ROLE_COLORS["posterior"].lower()
    with pytest.raises(ValueError, match="quantity"):
        plots.optimum_scaling(post, quantity="loss")


def test_delta_posterior(post):
    with pytest.raises(ValueError, match="batch_depends_on_N"):
        plots.delta_posterior(post)


def test_group_offsets_and_contrast(post):
    fig = plots.group_offsets(post)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax = fig.axes[0]
    n_rows = len(post.groups_seen) + 1  # + a never-seen architecture
    assert len(ax.get_yticklabels()) == n_rows
    assert len(ax.lines) == 3 * n_rows + 1  # outer bar, inner bar, median per row; line at 1
    assert ax.get_xscale() == "log"
    fig = plots.offset_contrast(post, "moe", "dense")
    p = post.compare_offsets("moe", "dense").loc["lr", "prob_positive"]
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(f"P(moe > dense) = {p:.2f}" in t for t in texts)


def test_setting_optima(post, sweeps):
    fig = plots.setting_optima(post, sweeps)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert "observed" in ax.get_ylabel()
        # one errorbar container per group, each with all that group's settings
        n = sum(len(c[0].get_xdata()) for c in ax.containers)
        assert n == post.metadata["n_settings"]
    with pytest.raises(ValueError, match="not in the sweep table"):
        plots.setting_optima(post, sweeps[sweeps["family"] == "dense"])


def test_interval_comparison(post, published):
    N = np.geomspace(1e8, 1e11, 12)
    fig = plots.interval_comparison(post, {"published": published}, N, 100 * N)
    assert len(fig.axes) == 4
    bottom = fig.axes[2]
    assert len(bottom.lines) == 3  # posterior law, posterior centre, published
    widths = {line.get_label(): line.get_ydata() for line in bottom.lines}
    law, centre = widths["posterior: the law"], widths["posterior: a new setting's optimum"]
    assert np.all(centre >= law - 1e-9)
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    assert "D = 100 N" in bottom.get_xlabel()


def test_plan_without_landscape(post, published):
    fig = plots.plan(post, 7e9, 1.4e12, bootstrap=published)
    assert len(fig.axes) == 2
    lr_ax = fig.axes[0]
    assert lr_ax.get_xscale() == "log" and "learning rate" in lr_ax.get_xlabel()
    assert len(lr_ax.lines) == 2  # median and paper
    paper_lr = published.predict(7e9, 1.4e12)["lr"].iloc[0]
    assert np.isclose(lr_ax.lines[1].get_xdata()[0], paper_lr)
    # the title says what the distributions are about, and follows kind
    assert "a new setting" in fig.get_suptitle()
    law = plots.plan(post, 7e9, 1.4e12, kind="law")
    assert "the law's own uncertainty" in law.get_suptitle()
    median_law = post.predict(7e9, 1.4e12, kind="law").median()["lr"].iloc[0]
    assert np.isclose(law.axes[0].lines[0].get_xdata()[0], median_law)


def test_landscape_map_observed(sweeps, published, post):
    setting = "dense N=1.074e+09 D=2e+10"
    ax = plots.landscape_map(sweeps, setting, bootstrap=published, optimum=post)
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert _labels(ax) == "peak learning rate | batch size (tokens)"
    assert [line.get_marker() for line in ax.lines] == ["*", "X", "P"]
    best = sweeps[sweeps["setting"] == setting].nsmallest(1, "loss").iloc[0]
    assert ax.lines[0].get_xdata()[0] == best["lr"]
    with pytest.raises(ValueError, match="no runs"):
        plots.landscape_map(sweeps, "dense N=1 D=1")


@pytest.fixture(scope="module")
def landscape():
    return load_default("landscape")


def test_landscape_overlays(sweeps, post, published, landscape):
    setting = "dense N=1.074e+09 D=2e+10"
    ax = plots.landscape_map(sweeps, setting, landscape=landscape)
    assert len(ax.collections) >= 2  # the heatmap and the plateau contours
    assert [line.get_marker() for line in ax.lines] == ["*", "D"]
    rec = landscape.recommend(1073741824, 2e10)
    assert ax.lines[1].get_xdata()[0] == pytest.approx(rec.lr)
    fig = plots.plan(
        post, 7e9, 1.4e12, landscape=landscape, batch_tokens=4194304, bootstrap=published
    )
    assert len(fig.axes) == 4  # lr, batch, plateau panel and its colorbar
    panel = fig.axes[2]
    assert panel.get_xscale() == panel.get_yscale() == "log"
    markers = [line.get_marker() for line in panel.lines]
    assert markers == ["D", "None", "s", "X"]  # recommendation, fixed batch line, fixed, paper
    assert panel.lines[2].get_ydata()[0] == pytest.approx(4194304)


@pytest.mark.slow
def test_relative_loss_check(sweeps, landscape):
    ax = plots.relative_loss_check(landscape, sweeps)
    assert "observed relative loss" in ax.get_ylabel() and "%" in ax.get_xlabel()
    n = sum(len(c[0].get_xdata()) for c in ax.containers)
    assert n == len(landscape.run_design(sweeps).runs)  # every fitted run, none dropped


# --------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def evaluation():
    from bayes_steplaw.evaluate import Evaluation

    data = Path(__file__).resolve().parents[1] / "docs" / "gallery" / "data"
    return Evaluation.from_csv(data / "evaluation_loso.csv", runs=data / "evaluation_loso_runs.csv")


def test_evaluation_figures(evaluation):
    ax = plots.relative_loss_by_setting(evaluation, ["bayes", "ols"])
    marker_lines = [line for line in ax.lines if line.get_linestyle() == "None"]
    assert len(marker_lines) == 2
    n_settings = evaluation.table["setting"].nunique()
    assert all(len(line.get_xdata()) == n_settings for line in marker_lines)
    # the y values are the table's relative losses in per mille
    bayes = evaluation.table[evaluation.table["method"] == "bayes"]
    np.testing.assert_allclose(
        np.sort(marker_lines[0].get_ydata()), np.sort(bayes["rel_loss"] * 1e3)
    )
    fig = plots.coverage_against_nominal(evaluation, ["bayes"])
    lr_axis = fig.axes[0]
    (curve,) = [line for line in lr_axis.lines if line.get_label() == "bayes"]
    np.testing.assert_allclose(
        curve.get_ydata(), [bayes[f"lr_in_{m}"].mean() for m in (50, 80, 90)]
    )
    ax = plots.reliability_diagram(evaluation)
    labels = [line.get_label() for line in ax.lines]
    assert any("reference='sweep'" in label for label in labels)
    with pytest.raises(ValueError, match="not in this evaluation"):
        plots.relative_loss_by_setting(evaluation, ["nope"])
