"""CLI on the shipped posterior: predict, compare, fit."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayes_steplaw as bsl
from bayes_steplaw.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def shipped():
    return bsl.load_default()


def test_shipped_posterior_is_converged_and_covers_released_data(shipped):
    assert shipped.converged
    assert shipped.metadata["n_settings"] == 33  # 17 dense + 16 MoE settings (SOURCE.md)
    assert set(shipped.groups_seen) == {
        "dense",
        "moe",
        "moe/1in8",
        "moe/1in89",
        "moe/2in88",
        "moe/3in8",
    }


def test_predict_prints_median_interval_and_what_it_measures(shipped):
    result = runner.invoke(app, ["predict", "7e9", "1.4e12"])
    assert result.exit_code == 0, result.output
    med = shipped.predict(7e9, 1.4e12).median().iloc[0]
    assert f"{med['lr']:.3e}" in result.output
    assert "90%" in result.output
    assert "setting-level scatter" in result.output
    assert "orders of magnitude outside" in result.output  # 1.4e12 > 1e11 tokens in the data


def test_predict_json_law_and_group(shipped):
    result = runner.invoke(
        app, ["predict", "7B", "1.4T", "--group", "moe/1in8", "--json", "--law", "--prob", "0.5"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    expected = shipped.predict(7e9, 1.4e12, group="moe/1in8", kind="law").to_dataframe(0.5)
    assert out["lr"] == pytest.approx(expected["lr"].iloc[0])
    assert out["lr_lower"] == pytest.approx(expected["lr_lower"].iloc[0])
    assert "law's own uncertainty" in out["note"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", "7e9", "1.4e12", "--group", "gpt"], "unknown group 'gpt'"),
        (["predict", "0", "1.4e12"], "N must be"),
        (["predict", "7e9", "1.4e12", "--prob", "1.2"], "--prob"),
        (["compare", "moe", "llama"], "unknown group 'llama'"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_compare_matches_api(shipped):
    result = runner.invoke(app, ["compare", "moe", "dense"])
    assert result.exit_code == 0, result.output
    table = shipped.compare_offsets("moe", "dense")
    assert f"{table.loc['lr', 'prob_positive']:.3f}" in result.output
    assert "P(moe > dense)" in result.output


def test_fit_a_user_csv_writes_a_loadable_posterior(tmp_path):
    sweeps, _ = bsl.simulate_sweeps(seed=2)
    csv = tmp_path / "sweeps.csv"
    user = sweeps[["N", "D", "lr", "batch_sequences", "loss", "family"]].rename(
        columns={"loss": "final_loss"}
    )
    user.to_csv(csv, index=False)
    # the user's column name for the loss is mapped through read_sweeps in the API; the CLI reads
    # canonical names, so a table with a non-canonical loss column is a clear error
    result = runner.invoke(app, ["fit", str(csv), "--seq-len", "2048"])
    assert result.exit_code == 2 and "loss" in result.output
    user.rename(columns={"final_loss": "loss"}).to_csv(csv, index=False)
    out = tmp_path / "post.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.invoke(
            app,
            [
                "fit",
                str(csv),
                "--seq-len",
                "2048",
                "--group-col",
                "family",
                "--out",
                str(out),
                "--chains",
                "2",
                "--draws",
                "100",
                "--tune",
                "200",
            ],
        )
    # 2 x 100 draws cannot reach ESS 400: the command says so and exits 3, after writing
    assert result.exit_code == 3, result.output
    assert "NOT CONVERGED" in result.output and "ESS < 400" in result.output
    post = bsl.load(out)
    assert post.metadata["groups"] == ["family"]
    assert post.metadata["n_runs"] == len(bsl.near_optimal(sweeps))
    res = post.predict(1e9, 1e10, allow_unconverged=True).median()
    assert np.isfinite(res.to_numpy()).all()
    assert isinstance(res, pd.DataFrame)


def test_loading_and_predicting_never_import_pymc():
    import subprocess
    import sys

    code = (
        "import sys, bayes_steplaw as b\n"
        "p = b.load_default().predict(7e9, 1.4e12).to_dataframe()\n"
        "heavy = [m for m in ('pymc', 'pytensor', 'arviz', 'nutpie') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(p['lr'].iloc[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) > 0
