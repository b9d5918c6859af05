"""The plotting functions: they return real matplotlib Figures/Axes, log axes where quantities
span decades, labels with units, and what they draw is what the posteriors answer (the decision
drawn is ``recommend``'s, the contours come from ``expected_loss`` and ``plateau_probability``,
the bands from ``predict``). They run on the shipped posteriors and on the gallery's held-out
fold posterior."""

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
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from bayes_steplaw import BootstrapOLS, load, load_default, load_sweeps, plots
from bayes_steplaw.bayes.predictive import ABOUT, SHORT
from bayes_steplaw.bootstrap import PAPER_TABLE2
from bayes_steplaw.plots.surface import EXCESS_LEVELS

# the plots speak the current API: any deprecated spelling they used would fail here
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

GALLERY_DATA = Path(__file__).resolve().parents[1] / "docs" / "gallery" / "data"


@pytest.fixture(scope="module")
def post():
    return load_default("optimum")


@pytest.fixture(scope="module")
def sweeps():
    return load_sweeps("all")


@pytest.fixture(scope="module")
def published():
    return BootstrapOLS.from_published()


@pytest.fixture(scope="module")
def heldout():
    """The gallery's leave-one-setting-out fold of the loss model (plot_12): a posterior that
    never saw its held-out setting's runs."""
    return load(GALLERY_DATA / "loss_fold_loso.nc")


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _labels(ax: Axes) -> str:
    return f"{ax.get_xlabel()} | {ax.get_ylabel()}"


def _legend_texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _contours(ax: Axes) -> list[ContourSet]:
    return [c for c in ax.collections if isinstance(c, ContourSet)]


def _vertices(contour: ContourSet) -> np.ndarray:
    return np.concatenate([p.vertices for p in contour.get_paths() if len(p.vertices)])


def _inside(contour: ContourSet, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which points lie inside the closed paths of a contour, in ln coordinates."""
    from matplotlib.path import Path as MPath

    inside = np.zeros(len(x), bool)
    for path in contour.get_paths():
        for poly in path.to_polygons(closed_only=False):
            if len(poly) > 2:
                inside ^= MPath(np.log(poly)).contains_points(np.column_stack([x, y]))
    return inside


def test_palette_is_okabe_ito():
    assert len(set(plots.PALETTE)) == len(plots.PALETTE) == 8
    assert set(plots.PALETTE) == set(plots.OKABE_ITO.values())
    assert set(plots.ROLE_COLORS.values()) - {"#7f7f7f"} <= set(plots.OKABE_ITO.values())
    assert plots.si(2.147e8) == "215M" and plots.si(1.4e12) == "1.4T"


def test_kind_labels_are_the_package_vocabulary():
    from bayes_steplaw.bayes.law import KIND_NAMES
    from bayes_steplaw.plots.style import kind_label

    for kind, name in KIND_NAMES.items():
        assert kind_label(kind) == name == SHORT[kind]
    assert kind_label("run") == SHORT["run"]
    assert kind_label("centre") == "kind='centre'"  # the old name is no kind any more


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
    """``kind`` goes to predict as it is; the legend names the quantity and what the bands are
    about, the line is predict's median, and a new setting's optimum (law + setting scatter)
    has wider bands than the law."""

    def widest_band(ax):
        verts = ax.collections[0].get_paths()[0].vertices  # the 90% band of the first line
        return np.ptp(np.log(verts[:, 1]))

    law = plots.optimum_scaling(post, at=[5e8])
    optimum = plots.optimum_scaling(post, at=[5e8], kind="optimum")
    title = law.get_legend().get_title().get_text()
    assert title == "optimal peak learning rate: intervals of the law"
    assert SHORT["optimum"] in optimum.get_legend().get_title().get_text()
    assert widest_band(optimum) > widest_band(law)
    line = law.lines[0]
    D = line.get_xdata()
    median = post.predict(5e8, D, kind="law", allow_unconverged=True).median()["lr"].values
    np.testing.assert_allclose(line.get_ydata(), median, rtol=1e-12)
    with pytest.raises(ValueError, match="kind"):
        plots.optimum_scaling(post, kind="centre")  # the old name of "optimum"


def test_optimum_scaling_batch_single_line(post, sweeps):
    ax = plots.optimum_scaling(post, sweeps, quantity="batch_tokens", against="D")
    assert len(ax.lines) == 1  # no delta: the batch law is the same for every N
    assert "batch size (tokens)" in ax.get_ylabel()
    assert len(ax.figure.axes) == 1
    assert to_hex(ax.lines[0].get_color()) == plots.ROLE_COLORS["posterior"].lower()
    with pytest.raises(ValueError, match="quantity"):
        plots.optimum_scaling(post, quantity="loss")


def test_law_figures_take_the_loss_posterior(light_loss, sweeps):
    """The loss posterior is a Step-Law posterior: the law's figures draw its answers."""
    ax = plots.optimum_scaling(light_loss, sweeps, at=[5e8], kind="law")
    line = ax.lines[0]
    median = light_loss.predict(5e8, line.get_xdata(), kind="law").median()["lr"].values
    np.testing.assert_allclose(line.get_ydata(), median, rtol=1e-12)
    band = light_loss.predict(5e8, line.get_xdata(), kind="law").interval(0.9)["lr"]
    verts = ax.collections[0].get_paths()[0].vertices[:, 1]  # the 90% band, lower then upper
    assert np.isclose(verts.min(), float(band.sel(bound="lower").min()), rtol=1e-9)
    assert np.isclose(verts.max(), float(band.sel(bound="upper").max()), rtol=1e-9)
    fig = plots.group_offsets(light_loss)
    assert len(fig.axes[0].get_yticklabels()) == len(light_loss.groups_seen) + 1


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
    # the dense row's median is the dense law's offset over the intercept
    coef_lr, _ = post.law_coefficients("dense", "law", 0)
    dense = post.groups_seen.index("dense")
    medians = [line for line in ax.lines if line.get_marker() == "o"]
    assert np.isclose(
        medians[dense].get_xdata()[0], np.exp(np.median(coef_lr[0] - post.flat("c"))), rtol=1e-9
    )
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


def test_setting_optima_of_the_loss_posterior(light_loss, sweeps):
    """A loss posterior keeps each fitted setting's optimum: the points are its medians."""
    fig = plots.setting_optima(light_loss, sweeps)
    ax = fig.axes[0]
    x = np.sort(np.concatenate([c[0].get_xdata() for c in ax.containers]))
    expected = np.sort(np.exp(np.median(light_loss.flat("m_lr"), axis=0)))
    np.testing.assert_allclose(x, expected, rtol=1e-9)


def test_interval_comparison(post, published):
    N = np.geomspace(1e8, 1e11, 12)
    fig = plots.interval_comparison(post, {"published": published}, N, 100 * N)
    assert len(fig.axes) == 4
    bottom = fig.axes[2]
    assert len(bottom.lines) == 3  # posterior law, posterior optimum, published
    widths = {line.get_label(): line.get_ydata() for line in bottom.lines}
    law, new = widths["posterior: the law"], widths[f"posterior: {SHORT['optimum']}"]
    assert np.all(new >= law - 1e-9)
    iv = post.predict(N, 100 * N, kind="law").interval(0.9)["lr"]
    np.testing.assert_allclose(
        law, (iv.sel(bound="upper") / iv.sel(bound="lower")).values, rtol=1e-9
    )
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    assert "D = 100 N" in bottom.get_xlabel()


def test_plan_without_surface(post, published):
    fig = plots.plan(post, 7e9, 1.4e12, bootstrap=published)
    assert len(fig.axes) == 2
    lr_ax = fig.axes[0]
    assert lr_ax.get_xscale() == "log" and "learning rate" in lr_ax.get_xlabel()
    assert SHORT["optimum"] in lr_ax.get_xlabel()  # the axis names the quantity
    assert len(lr_ax.lines) == 2  # median and paper
    paper_lr = published.predict(7e9, 1.4e12)["lr"].iloc[0]
    assert np.isclose(lr_ax.lines[1].get_xdata()[0], paper_lr)
    # the title says what the distributions are about, and follows kind
    assert ABOUT["optimum"] in fig.get_suptitle()
    law = plots.plan(post, 7e9, 1.4e12, kind="law")
    assert ABOUT["law"] in law.get_suptitle()
    median_law = float(post.predict(7e9, 1.4e12, kind="law").median()["lr"])
    assert np.isclose(law.axes[0].lines[0].get_xdata()[0], median_law)
    with pytest.raises(ValueError, match="kind"):
        plots.plan(post, 7e9, 1.4e12, kind="centre")


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
    law = post.predict(1073741824, 2e10, kind="law", allow_unconverged=True).median()
    assert np.isclose(ax.lines[2].get_xdata()[0], float(law["lr"]))
    assert f"median of {SHORT['law']}" in _legend_texts(ax)
    with pytest.raises(ValueError, match="no runs"):
        plots.landscape_map(sweeps, "dense N=1 D=1")


def test_landscape_map_overlays(sweeps, light_loss):
    setting = "dense N=1.074e+09 D=2e+10"
    ax = plots.landscape_map(sweeps, setting, loss=light_loss)
    assert [line.get_marker() for line in ax.lines] == ["*", "D"]
    rec = light_loss.recommend(1073741824, 2e10, group="dense")
    assert ax.lines[1].get_xdata()[0] == pytest.approx(rec.lr)
    assert ax.lines[1].get_ydata()[0] == pytest.approx(rec.batch_tokens)
    # the solid contour is plateau_probability = 0.9 (reference="optimum") at its vertices
    (top,) = [c for c in _contours(ax) if c.levels[0] == 0.9]
    v = _vertices(top)[::7]
    p = light_loss.plateau_probability(1073741824, 2e10, v[:, 0], v[:, 1]).values
    assert np.median(np.abs(p - 0.9)) < 0.1


def test_plan_with_the_loss_surface(light_loss, published):
    batch = 4194304
    fig = plots.plan(
        light_loss, 7e9, 1.4e12, loss=light_loss, batch_tokens=batch, bootstrap=published
    )
    assert len(fig.axes) == 4  # lr, batch, the surface panel and its colorbar
    panel = fig.axes[2]
    assert panel.get_xscale() == panel.get_yscale() == "log"
    markers = [line.get_marker() for line in panel.lines]
    # the optimum's median, the decision, the fixed batch's line and square, the paper's
    assert markers == ["P", "D", "None", "s", "X"]
    rec = light_loss.recommend(7e9, 1.4e12)
    fixed = light_loss.recommend(7e9, 1.4e12, batch_tokens=batch)
    assert panel.lines[1].get_xdata()[0] == pytest.approx(rec.lr)
    assert panel.lines[3].get_xdata()[0] == pytest.approx(fixed.lr)
    assert panel.lines[3].get_ydata()[0] == pytest.approx(batch)
    # the histograms' median is predict's, from the same posterior
    median = float(light_loss.predict(7e9, 1.4e12, kind="optimum").median()["lr"])
    assert fig.axes[0].lines[0].get_xdata()[0] == pytest.approx(median)


# --------------------------------------------------------------------------- loss_surface


@pytest.fixture(scope="module")
def surface(heldout, sweeps):
    """loss_surface of the held-out setting of the gallery's fold posterior, with its runs."""
    (setting,) = heldout.metadata["held_out_settings"]
    runs = sweeps[sweeps["setting"] == setting]
    N, D = float(runs["N"].iloc[0]), float(runs["D"].iloc[0])
    ax = plots.loss_surface(heldout, N, D, runs=runs, batch_tokens=2**21, allow_unconverged=True)
    yield ax, runs, N, D
    plt.close(ax.figure)


def test_loss_surface_axes_and_legend(surface):
    ax, *_ = surface
    assert isinstance(ax, Axes) and isinstance(ax.figure, Figure)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert _labels(ax) == "peak learning rate | batch size (tokens)"
    assert len(ax.figure.axes) == 2  # the colorbar of the expected loss
    texts = _legend_texts(ax)
    assert f"90% region of {SHORT['optimum']}" in texts
    assert any(t.startswith("plateau: P(within 0.25% of L*) ≥ 0.9") for t in texts)


def test_loss_surface_decisions_are_recommends(surface, heldout):
    ax, _, N, D = surface
    kw = dict(group="dense", allow_unconverged=True)
    rec = heldout.recommend(N, D, **kw)
    fixed = heldout.recommend(N, D, batch_tokens=2**21, **kw)
    (diamond,) = [line for line in ax.lines if line.get_marker() == "D"]
    assert diamond.get_xdata()[0] == pytest.approx(rec.lr, rel=1e-12)
    assert diamond.get_ydata()[0] == pytest.approx(rec.batch_tokens, rel=1e-12)
    (square,) = [line for line in ax.lines if line.get_marker() == "s"]
    assert square.get_xdata()[0] == pytest.approx(fixed.lr, rel=1e-12)
    assert square.get_ydata()[0] == 2**21
    cost = float(fixed.expected_loss) / float(rec.expected_loss) - 1
    assert any(f"(+{cost:.2%} expected loss)" in t for t in _legend_texts(ax))


def test_loss_surface_contours_are_expected_loss(surface, heldout):
    """The filled contours' levels: the grid's least expected loss, then the decision's
    expected loss times (1 + each excess level); the grid is recomputed from the axes."""
    ax, _, N, D = surface
    filled = [c for c in _contours(ax) if c.filled]
    assert len(filled) == 1
    lr = np.exp(np.linspace(*np.log(ax.get_xlim()), 51))
    bs = np.exp(np.linspace(*np.log(ax.get_ylim()), 51))
    LR, BS = np.meshgrid(lr, bs)
    expected = heldout.expected_loss(N, D, LR, BS, allow_unconverged=True)
    base = float(heldout.recommend(N, D, allow_unconverged=True).expected_loss)
    levels = filled[0].levels
    assert levels[0] == pytest.approx(min(expected.min(), base), rel=1e-9)
    np.testing.assert_allclose(levels[1:], base * (1 + np.array(EXCESS_LEVELS)), rtol=1e-12)
    # the decision is the least expected loss: no grid point is meaningfully below it
    assert expected.min() >= base * (1 - 1e-5)


def test_loss_surface_regions(surface, heldout):
    """The blue dashed contour holds ~90% of predict(kind="optimum")'s draws; the orange one
    is plateau_probability = 0.9 along its vertices."""
    ax, _, N, D = surface
    kw = dict(group="dense", allow_unconverged=True)
    lines = [c for c in _contours(ax) if not c.filled]
    (region,) = [c for c in lines if to_hex(c.get_edgecolor()[0]) == "#0072b2"]
    (plateau,) = [c for c in lines if to_hex(c.get_edgecolor()[0]) == "#e69f00"]
    assert plateau.levels[0] == 0.9
    draws = heldout.predict(N, D, kind="optimum", **kw).draws
    x, y = np.log(draws["lr"].values), np.log(draws["batch_tokens"].values)
    share = _inside(region, x, y).mean()
    assert abs(share - 0.9) < 0.03
    v = _vertices(plateau)[::5]
    p = heldout.plateau_probability(N, D, v[:, 0], v[:, 1], **kw).values
    assert np.median(np.abs(p - 0.9)) < 0.05
    # one posterior: the decision lies inside the optimum's region and the plateau
    rec = heldout.recommend(N, D, **kw)
    point = (np.array([np.log(rec.lr)]), np.array([np.log(rec.batch_tokens)]))
    assert _inside(region, *point)[0] and _inside(plateau, *point)[0]


def test_loss_surface_runs(surface, heldout):
    ax, runs, *_ = surface
    (scatter,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    loss = runs["loss"].to_numpy()
    diverged = loss > heldout.metadata["diverged_ratio"] * loss.min()
    assert len(scatter.get_offsets()) == (~diverged).sum()
    # each run is filled with its observed loss, on the expected loss's colour bands
    np.testing.assert_allclose(np.sort(scatter.get_array()), np.sort(loss[~diverged]))
    (crosses,) = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(crosses.get_xdata()) == diverged.sum() > 0
    (star,) = [line for line in ax.lines if line.get_marker() == "*"]
    best = runs.loc[runs["loss"].idxmin()]
    assert star.get_xdata()[0] == best["lr"] and star.get_ydata()[0] == best["batch_tokens"]


def test_loss_surface_refuses(heldout, sweeps):
    kw = dict(allow_unconverged=True)
    with pytest.raises(ValueError, match="one setting"):
        plots.loss_surface(heldout, 4e8, 2e10, runs=sweeps[sweeps["family"] == "dense"], **kw)
    with pytest.raises(ValueError, match="plateau_level"):
        plots.loss_surface(heldout, 4e8, 2e10, plateau_level=1.5, **kw)
    with pytest.raises(ValueError, match="columns"):
        plots.loss_surface(heldout, 4e8, 2e10, runs=sweeps[["lr"]].head(), **kw)


@pytest.mark.slow
def test_relative_loss_check(sweeps, shipped_loss):
    ax = plots.relative_loss_check(shipped_loss, sweeps)
    assert "observed relative loss" in ax.get_ylabel() and "%" in ax.get_xlabel()
    n = sum(len(c[0].get_xdata()) for c in ax.containers)
    runs = shipped_loss.run_design(sweeps).runs
    assert n == (~runs["diverged"]).sum()  # every run that did not diverge, none dropped


# --------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def evaluation():
    from bayes_steplaw.evaluate import Evaluation

    return Evaluation.from_csv(
        GALLERY_DATA / "evaluation_loso.csv", runs=GALLERY_DATA / "evaluation_loso_runs.csv"
    )


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
