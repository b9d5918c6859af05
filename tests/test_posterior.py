"""Posterior-predictive maths, I/O and gating, checked on posteriors with known draws.

The posteriors here are built by hand from draws whose distribution is known, so every
expected value below is a closed form, not an output of the code under test.
"""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from bayes_steplaw import ConvergenceError, PosteriorFileError, StepLawPosterior, load
from bayes_steplaw.bayes.hierarchy import Hierarchy

LOG_N0, LOG_D0 = np.log(1e9), np.log(1e10)
TRUE = {"c": np.log(1e-3), "d": np.log(2e6), "alpha": -0.7, "beta": 0.3, "gamma": 0.55}
OFFSETS_LR = {"dense": -0.1, "moe": 0.1, "moe/a": 0.2, "moe/b": -0.2}
OFFSETS_BS = {"dense": 0.05, "moe": -0.05, "moe/a": -0.3, "moe/b": 0.3}


def make_posterior(
    n_draws=4000, sd=0.0, sigma_setting=(0.0, 0.0), sigma_group=0.0, converged=True, seed=0
):
    """A hand-made posterior: every parameter N(true value, sd) across draws."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"family": ["dense", "moe", "moe"], "variant": ["dense", "a", "b"]})
    hierarchy, _ = Hierarchy.from_frame(frame, ("family", "variant"))

    def draws(value, *shape):
        return (value + sd * rng.standard_normal((1, n_draws, *shape))).astype(float)

    fam = hierarchy.levels[0].labels
    var = hierarchy.levels[1].labels
    data = {name: (("chain", "draw"), draws(v)) for name, v in TRUE.items()}
    for law, offsets in (("lr", OFFSETS_LR), ("bs", OFFSETS_BS)):
        data[f"a_{law}_family"] = (
            ("chain", "draw", "level_family"),
            np.stack([draws(offsets[f]) for f in fam], axis=-1),
        )
        data[f"a_{law}_variant"] = (
            ("chain", "draw", "level_variant"),
            np.stack([draws(offsets[v]) for v in var], axis=-1),
        )
        for col in ("family", "variant"):
            data[f"sigma_{law}_{col}"] = (("chain", "draw"), np.full((1, n_draws), sigma_group))
    data["sigma_setting_lr"] = (("chain", "draw"), np.full((1, n_draws), sigma_setting[0]))
    data["sigma_setting_bs"] = (("chain", "draw"), np.full((1, n_draws), sigma_setting[1]))
    posterior = xr.Dataset(data, coords={"level_family": list(fam), "level_variant": list(var)})
    meta = {
        "model": "optimum",
        "model_version": 1,
        "hierarchy": hierarchy.to_dict(),
        "log_n0": LOG_N0,
        "log_d0": LOG_D0,
        "N_range": [1e8, 1e10],
        "D_range": [1e9, 1e11],
        "n_runs": 10,
        "n_settings": 3,
        "diagnostics": {
            "converged": converged,
            "problems": [] if converged else ["3 divergent transition(s)"],
            "variables": {},
        },
    }
    return StepLawPosterior({"posterior": posterior}, meta)


def bound(interval, q: str, which: str) -> float:
    """One bound of a one-point interval (an xarray Dataset with a ``bound`` dim)."""
    return float(interval[q].sel(bound=which))


def ratio(interval, q: str) -> np.ndarray:
    """upper / lower of each point's interval of ``q``."""
    return (interval[q].sel(bound="upper") / interval[q].sel(bound="lower")).values.ravel()


def law(N, D, group):
    parts = group.split("/")
    paths = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    x, y = np.log(N) - LOG_N0, np.log(D) - LOG_D0
    lr = TRUE["c"] + TRUE["alpha"] * x + TRUE["beta"] * y + sum(OFFSETS_LR[p] for p in paths)
    bs = TRUE["d"] + TRUE["gamma"] * y + sum(OFFSETS_BS[p] for p in paths)
    return np.exp(lr), np.exp(bs)


@pytest.mark.parametrize("group", ["dense", "moe", "moe/a", "moe/b"])
def test_point_posterior_predicts_the_law_exactly(group):
    post = make_posterior()
    N = np.array([[1e8], [7e9]])
    D = np.array([1e9, 1.4e12, 3e10])
    res = post.predict(N, D, group=group, kind="law", seq_len=4096)
    lr, bs = law(*np.broadcast_arrays(N, D), group)
    med = res.median()
    np.testing.assert_allclose(med["lr"], lr, rtol=1e-12)
    np.testing.assert_allclose(med["batch_tokens"], bs, rtol=1e-12)
    np.testing.assert_allclose(med["batch_sequences"], bs / 4096, rtol=1e-12)
    assert res.shape == (2, 3) and med["lr"].dims == ("dim_0", "dim_1")
    assert res.draws["lr"].dims == ("dim_0", "dim_1", "sample")
    assert dict(res.draws.sizes) == {"dim_0": 2, "dim_1": 3, "sample": 4000}


def test_setting_scatter_widens_run_predictions_by_the_known_amount():
    s_lr, s_bs = 0.2, 0.1
    post = make_posterior(n_draws=40000, sigma_setting=(s_lr, s_bs))
    z = stats.norm.ppf(0.95)
    run = post.predict(7e9, 1.4e12, kind="optimum").interval(0.9, method="eti")
    lr, _ = law(7e9, 1.4e12, "dense")
    np.testing.assert_allclose(ratio(run, "lr"), np.exp(2 * z * s_lr), rtol=0.02)
    np.testing.assert_allclose(ratio(run, "batch_tokens"), np.exp(2 * z * s_bs), rtol=0.02)
    np.testing.assert_allclose(np.sqrt(bound(run, "lr", "upper") * bound(run, "lr", "lower")),
                               lr, rtol=0.01)  # fmt: skip
    law_only = post.predict(7e9, 1.4e12, kind="law").interval(0.9)
    np.testing.assert_allclose(ratio(law_only, "lr"), 1.0, rtol=1e-12)


def test_hdi_of_symmetric_draws_matches_eti_and_is_never_wider():
    # sd 0.01 of each coefficient: lr draws of sd 1-2.5%, near enough symmetric on their scale
    post = make_posterior(n_draws=20000, sd=0.01)
    res = post.predict([1e9, 1e10], [1e10, 1e11], kind="law")
    hdi, eti = res.interval(0.9, "hdi"), res.interval(0.9, "eti")
    for q in ("lr", "batch_tokens", "batch_sequences"):
        np.testing.assert_allclose(hdi[q], eti[q], rtol=0.02)
        # the hdi is the narrowest on the quantity's own scale: never wider than the eti
        width = hdi[q].sel(bound="upper") - hdi[q].sel(bound="lower")
        assert (width <= eti[q].sel(bound="upper") - eti[q].sel(bound="lower") + 1e-15).all()
    with pytest.raises(ValueError, match="method must be one of"):
        res.interval(0.9, "mode")
    with pytest.raises(ValueError, match="prob must be between 0 and 1"):
        res.interval(1.5)


def test_new_group_is_wider_than_a_seen_group():
    post = make_posterior(sigma_group=0.3)
    seen = post.predict(1e9, 1e10, group="moe", kind="law").interval(0.9, "eti")
    new = post.predict(1e9, 1e10, group="new", kind="law").interval(0.9, "eti")
    new_variant = post.predict(1e9, 1e10, group="moe/new", kind="law").interval(0.9, "eti")
    width = lambda t: float(np.log(ratio(t, "lr"))[0])  # noqa: E731
    assert width(seen) < 1e-9
    np.testing.assert_allclose(width(new), 2 * stats.norm.ppf(0.95) * 0.3, rtol=0.05)
    np.testing.assert_allclose(width(new_variant), width(new), rtol=0.05)


def test_unknown_group_lists_the_known_ones():
    post = make_posterior()
    with pytest.raises(KeyError, match="known groups: 'dense', 'moe', 'moe/a', 'moe/b'"):
        post.predict(1e9, 1e10, group="gpt")


@pytest.mark.parametrize("bad", [0.0, -1e9, np.nan, np.inf])
def test_bad_inputs_are_named(bad):
    post = make_posterior()
    with pytest.raises(ValueError, match="N must be positive and finite"):
        post.predict(bad, 1e10)
    with pytest.raises(ValueError, match="D must be positive and finite"):
        post.predict(1e9, [1e10, bad])
    with pytest.raises(ValueError, match="seq_len"):
        post.predict(1e9, 1e10, seq_len=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        post.predict(1e9, 1e10, kind="new-run")


def test_extrapolation_is_reported_in_decades():
    post = make_posterior()  # data ranges N 1e8..1e10, D 1e9..1e11
    table = post.predict([1e9, 1e12, 1e7], [1e10, 1e13, 1e10]).to_dataframe()
    np.testing.assert_allclose(table["N_decades_outside"], [0, 2, 1])
    np.testing.assert_allclose(table["D_decades_outside"], [0, 2, 0])
    assert list(table.columns[:4]) == ["N", "D", "group", "seq_len"]


def test_unconverged_posterior_needs_opt_in():
    post = make_posterior(converged=False)
    with pytest.raises(ConvergenceError, match="allow_unconverged=True"):
        post.predict(1e9, 1e10)
    assert post.predict(1e9, 1e10, allow_unconverged=True).n_samples == 4000


def test_compare_offsets_closed_form():
    post = make_posterior(sd=0.1, n_draws=40000)
    table = post.compare_offsets("moe/a", "dense")
    diff_lr = OFFSETS_LR["moe"] + OFFSETS_LR["moe/a"] - OFFSETS_LR["dense"]
    # moe/a sums two offsets and dense one, each with sd 0.1 independently
    sd = 0.1 * np.sqrt(3)
    assert table.loc["lr", "mean"] == pytest.approx(diff_lr, abs=0.01)
    assert table.loc["lr", "prob_positive"] == pytest.approx(
        stats.norm.sf(0, diff_lr, sd), abs=0.01
    )
    assert table.loc["lr", "upper"] == pytest.approx(diff_lr + 1.645 * sd, abs=0.02)
    with pytest.raises(ValueError, match="no offset of its own"):
        post.compare_offsets("new", "dense")


def test_netcdf_roundtrip_is_exact_and_readable_by_arviz(tmp_path):
    import arviz as az

    post = make_posterior(sd=0.1)
    path = post.save(tmp_path / "post.nc")
    back = load(path)
    xr.testing.assert_equal(back.posterior, post.posterior)
    assert back.metadata == post.metadata | {"package_version": back.metadata["package_version"]}
    pd.testing.assert_frame_equal(
        back.predict(3e9, 3e11).to_dataframe(), post.predict(3e9, 3e11).to_dataframe()
    )
    idata = az.from_netcdf(path)
    assert "alpha" in idata.posterior


def test_file_errors(tmp_path):
    with pytest.raises(PosteriorFileError, match="does not exist"):
        load(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(PosteriorFileError, match="not a readable"):
        load(junk)
    post = make_posterior()
    path = post.save(tmp_path / "p.nc")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PosteriorFileError):
        load(truncated)
    future = make_posterior()
    future.metadata["model_version"] = 99
    with pytest.raises(PosteriorFileError, match="version 99"):
        load(future.save(tmp_path / "future.nc"))
    plain = tmp_path / "plain.nc"
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf(plain, group="posterior", engine="h5netcdf")
    with pytest.raises(PosteriorFileError, match="not ours"):
        load(plain)
    bad_json = make_posterior()
    p = bad_json.save(tmp_path / "bad.nc")
    ds = xr.open_dataset(p, group="posterior", engine="h5netcdf").load()
    ds.attrs["bayes_steplaw_metadata"] = "{not json"
    ds.to_netcdf(tmp_path / "bad2.nc", group="posterior", engine="h5netcdf")
    with pytest.raises(PosteriorFileError, match="not valid JSON"):
        load(tmp_path / "bad2.nc")
    json.dumps(post.metadata)  # metadata stays JSON-serialisable
