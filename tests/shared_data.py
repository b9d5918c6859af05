"""Where the tests find the shared copy of the released Step Law files."""

import os
from pathlib import Path

import pytest


def shared_data_dir() -> Path:
    """``$BAYES_STEPLAW_DATA`` or ``../shared/data/steplaw``; skips the module when absent."""
    env = os.environ.get("BAYES_STEPLAW_DATA")
    candidates = [Path(env).resolve()] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared/data/steplaw")
    for folder in candidates:
        if (folder / "dense_lr_bs_loss.csv").is_file():
            return folder
    pytest.skip("the shared copy of the Step Law data is not available", allow_module_level=True)
