"""Model cards rendered through the CLI from the sections each model supplies."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from bayes_steplaw._resources import resource_path
from bayes_steplaw.cli import app

runner = CliRunner()


@pytest.mark.parametrize("name", ["optimum", "loss"])
def test_card_command_renders_the_shipped_posterior(name, tmp_path, released):
    shutil.copy(resource_path("models", f"{name}.nc"), tmp_path / f"{name}.nc")
    result = runner.invoke(app, ["card", name, "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = (tmp_path / f"{name}.md").read_text()
    from bayes_steplaw import load

    post = load(tmp_path / f"{name}.nc")
    for section in ("## Data", "## Exponents against the paper", "## Diagnostics", "## Regenerate"):
        assert section in text
    assert f"bayes-steplaw card {name} --refit" in text
    assert {"optimum": "## Optimum model", "loss": "## Loss model"}[name] in text
    # the posterior mean of alpha, as the card prints it (4 significant digits)
    alpha = post.flat("alpha").mean()
    assert f"{alpha:.4g}" in text
    assert f"{post.metadata['n_runs']} runs in {post.metadata['n_settings']} settings" in text
    if name == "loss":  # its own parameters, as the card prints them (posterior means)
        assert "Loss parameters (90% equal-tailed intervals)" in text
        for parameter in ("star_E", "sigma_run", "div_width"):
            assert f"| {parameter} |" in text
            assert f"{post.flat(parameter).mean():.4g}" in text


def test_card_command_refuses_unknown_models(tmp_path):
    result = runner.invoke(app, ["card", "chinchilla", "--out-dir", str(tmp_path)])
    assert result.exit_code == 2 and "optimum" in result.output


def test_card_keeps_the_candidates_tried(tmp_path, released):
    import json

    shutil.copy(resource_path("models", "loss.nc"), tmp_path / "loss.nc")
    tried = [{"candidate": "a quartic bowl", "loss_r2 median": 0.5, "verdict": "lost"}]
    (tmp_path / "c.json").write_text(json.dumps(tried))
    args = ["card", "loss", "--out-dir", str(tmp_path)]
    result = runner.invoke(app, [*args, "--candidates", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "loss.md").read_text()
    assert "## Candidates tried" in text and "a quartic bowl" in text
    from bayes_steplaw import load

    assert load(tmp_path / "loss.nc").metadata["candidates"] == tried
    (tmp_path / "bad.json").write_text('{"candidate": "not a list"}')
    result = runner.invoke(app, [*args, "--candidates", str(tmp_path / "bad.json")])
    assert result.exit_code == 2 and "must hold a list of records" in result.output
