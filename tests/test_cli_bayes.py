"""CLI on the shipped loss posterior (the one every answer uses): predict, compare, fit."""

import json

import pytest
from typer.testing import CliRunner

import bayes_steplaw as bsl
from bayes_steplaw.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def shipped(shipped_loss):
    """What the commands answer from without --posterior."""
    return shipped_loss


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
    med = shipped.predict(7e9, 1.4e12).median()
    assert f"{float(med['lr']):.3e}" in result.output
    assert "90%" in result.output
    # the default interval is about the optimum of a new setting, and says so
    assert "the optimum of a new setting" in result.output
    assert "orders of magnitude outside" in result.output  # 1.4e12 > 1e11 tokens in the data


def test_predict_json_law_and_group(shipped):
    result = runner.invoke(
        app,
        [
            "predict",
            "7B",
            "1.4T",
            "--group",
            "moe/1in8",
            "--json",
            "--kind",
            "law",
            "--prob",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    expected = shipped.predict(7e9, 1.4e12, group="moe/1in8", kind="law").to_dataframe(0.5)
    assert out["lr_median"] == pytest.approx(expected["lr_median"].iloc[0])
    assert out["lr_lower"] == pytest.approx(expected["lr_lower"].iloc[0])
    assert out["group"] == "moe/1in8"
    assert "the law itself" in out["note"]


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


def test_predict_kind_option_matches_the_api(shipped):
    for kind in ("optimum", "law", "sweep"):
        result = runner.invoke(app, ["predict", "1e9", "2e10", "--kind", kind, "--json"])
        assert result.exit_code == 0, result.output
        want = shipped.predict(1e9, 2e10, kind=kind).to_dataframe().iloc[0]
        assert json.loads(result.stdout)["lr_upper"] == pytest.approx(want["lr_upper"])
    default = json.loads(runner.invoke(app, ["predict", "1e9", "2e10", "--json"]).stdout)
    assert default["lr_upper"] == pytest.approx(
        shipped.predict(1e9, 2e10, kind="optimum").to_dataframe()["lr_upper"][0]
    )
    bad = runner.invoke(app, ["predict", "1e9", "2e10", "--kind", "centre"])
    assert bad.exit_code == 2 and "kind must be one of" in bad.output


@pytest.mark.slow  # a fresh interpreter
def test_version_and_python_m():
    import subprocess
    import sys

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"bayes-steplaw {bsl.__version__}"
    out = subprocess.run(
        [sys.executable, "-m", "bayes_steplaw", "--version"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == f"bayes-steplaw {bsl.__version__}"


@pytest.mark.parametrize(
    "args, example",
    [
        (["plateau", "1e9", "1e10", "--lr", "abc", "--batch-tokens", "1M"], "such as 3e-4"),
        (["plateau", "1e9", "1e10", "--lr", "1e-3", "--batch-tokens", "x"], "such as 4M"),
        (["recommend", "1e9", "x"], "such as 1.4e12 or 1.4T"),
    ],
)
def test_quantity_errors_give_an_example_of_their_own_kind(args, example):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and example in result.output, result.output


def test_wrong_kind_of_posterior_file_names_the_fit_that_makes_one():
    from bayes_steplaw._resources import resource_path

    path = str(resource_path("models", "optimum.nc"))
    for args in (["plateau", "1e9", "1e10", "--lr", "1e-3", "--batch-tokens", "1M"],
                 ["plan-sweep", "1e9", "1e10"]):  # fmt: skip
        result = runner.invoke(app, [*args, "--posterior", path])
        assert result.exit_code == 2 and "fit SWEEPS --model loss" in result.output


@pytest.mark.slow
def test_loading_and_predicting_never_import_pymc():
    import subprocess
    import sys

    code = (
        "import sys, bayes_steplaw as b\n"
        "p = b.predict(7e9, 1.4e12).to_dataframe()\n"
        "b.predict_loss(1e9, 2e10, 2e-3, 2**20).median()\n"
        "heavy = [m for m in ('pymc', 'pytensor', 'arviz', 'nutpie') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(p['lr_median'].iloc[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) > 0
