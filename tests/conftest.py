"""Fixtures shared by the test modules: the released data, the shipped posteriors and one
NUTS fit per model on sweeps simulated from a known truth (fitted once per session)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd
import pytest

# the tests' compiled models and downloads go to a cache of the checkout's own, never the
# user's (kept between local runs for speed; a clean clone starts empty)
os.environ.setdefault(
    "BAYES_STEPLAW_CACHE", str(Path(__file__).resolve().parents[1] / ".test-cache")
)

# the released data's folder as CI gives it (relative to the checkout), absolute: tests that
# run commands in a temporary folder find it too
if os.environ.get("BAYES_STEPLAW_DATA"):
    os.environ["BAYES_STEPLAW_DATA"] = str(Path(os.environ["BAYES_STEPLAW_DATA"]).resolve())

import bayes_steplaw as bsl

FAST = dict(chains=2, draws=400, tune=400, progressbar=False)
"""Sampler settings of the tests' fits: small, so ESS gates fail by design."""

SIM_SETTINGS = pd.DataFrame(
    [("dense", "dense", n, d) for n in (2e8, 6e8, 1.8e9) for d in (4e9, 2e10, 1e11)]
    + [("moe", v, 2e9, d) for v in ("a", "b") for d in (4e9, 2e10)],
    columns=["family", "variant", "N", "D"],
)
"""Nine dense settings and two MoE variants of two settings each."""

SIM_LAW = bsl.TrueLaw(
    offsets_lr={"dense": -0.15, "moe": 0.15, "moe/a": 0.1, "moe/b": -0.1},
    offsets_bs={"dense": 0.1, "moe": -0.1, "moe/a": -0.2, "moe/b": 0.2},
)
"""The known law the simulated sweeps follow."""


def quiet_fit(sweeps: pd.DataFrame, **kwargs):
    """``bsl.fit`` with the tests' sampler settings and without the expected ESS warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bsl.ConvergenceWarning)
        return bsl.fit(sweeps, **{**FAST, **kwargs})


@pytest.fixture(scope="session")
def released() -> pd.DataFrame:
    """The released dense + MoE sweeps."""
    try:
        return bsl.load_sweeps("all")
    except bsl.DataError as exc:  # pragma: no cover - data not available
        pytest.skip(f"released data not available: {exc}")


@pytest.fixture(scope="session")
def shipped_optimum():
    """The shipped optimum posterior (``models/optimum.nc``)."""
    return bsl.load_default("optimum")


@pytest.fixture(scope="session")
def shipped_loss():
    """The shipped loss posterior (``models/loss.nc``): the model every answer uses."""
    return bsl.load_default("loss")


@pytest.fixture(scope="session")
def light_loss(shipped_loss):
    """The shipped loss posterior on 250 of its draws: for property tests that call the
    answers many times (every answer is a reduction of the draws, whatever their number)."""
    return shipped_loss.subsample(250, seed=0)


@pytest.fixture(scope="session")
def simulated_optimum():
    """(sweeps, truth, posterior): the optimum model fitted on SIM_LAW's sweeps."""
    sweeps, truth = bsl.simulate_sweeps(SIM_SETTINGS, SIM_LAW, seed=3)
    return sweeps, truth, quiet_fit(sweeps, model="optimum", seed=3)


# the longest test files first: spread over two processes (``-n 2 --dist loadfile``, the
# README's command) the README's pooled fit (~3 minutes) then runs beside the rest, not after
FIRST = ("test_readme.py", "test_evaluate.py", "test_calibrate.py", "test_labs.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: keeps the rest
