"""Model cards rendered through the CLI from the sections each model supplies."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from bayes_steplaw._resources import resource_path
from bayes_steplaw.cli import app

runner = CliRunner()


@pytest.mark.parametrize("name", ["optimum", "landscape"])
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
    own = "## Optimum model" if name == "optimum" else "## Landscape model"
    assert own in text
    # the posterior mean of alpha, as the card prints it (4 significant digits)
    alpha = post.flat("alpha").mean()
    assert f"{alpha:.4g}" in text
    assert f"{post.metadata['n_runs']} runs in {post.metadata['n_settings']} settings" in text
    if name == "landscape":
        assert "PSIS-LOO comparison of curvature variants" in text  # read from metadata
        assert np.isfinite(post.curvature_summary().to_numpy()).all()


def test_card_command_refuses_unknown_models(tmp_path):
    result = runner.invoke(app, ["card", "chinchilla", "--out-dir", str(tmp_path)])
    assert result.exit_code == 2 and "optimum" in result.output
