"""Another lab's sweeps shipped as data: Marin's NAdamW runs (data/marin_nadamw.*), read through
the user's schema and column mapping, diverged runs as the package marks them, pooled under
the user's naming, shipped in the wheel."""

from __future__ import annotations

import hashlib
import re
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_steplaw as bsl
from bayes_steplaw.bayes.surface import mark_diverged
from bayes_steplaw.datasets.sweeps import CORE_COLUMNS, EXTERNAL, load_external

ROOT = Path(__file__).resolve().parents[1]
CSV, NOTE = ROOT / "data" / "marin_nadamw.csv", ROOT / "data" / "marin_nadamw.md"
SOURCE = ROOT.parent / "shared" / "data" / "external" / "marin_nadamw.csv"


@pytest.fixture(scope="module")
def marin() -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading the shipped table warns about nothing
        return load_external("marin-nadamw")


def test_the_derived_file_is_the_one_its_note_describes():
    digest = hashlib.sha256(CSV.read_bytes()).hexdigest()
    note = NOTE.read_text()
    assert digest in note, "data/marin_nadamw.csv changed: update its sha256 in the .md"
    # provenance and licence travel with the copy
    for needed in ("arXiv:2509.02046", "Apache-2.0", "229375800f1fc74c2c059f7dbbac1b4b151a3155",
                   "Wen, Hall, Ma, Liang"):  # fmt: skip
        assert needed in note


def test_it_reads_through_the_users_schema_and_mapping(marin):
    assert list(marin.columns[: len(CORE_COLUMNS)]) == CORE_COLUMNS
    assert len(marin) == 55 and marin["setting"].nunique() == 18
    assert set(marin["family"]) == {"marin-nadamw"} and set(marin["variant"]) == {"marin-nadamw"}
    assert (marin["seq_len"] == 4096).all()
    assert np.allclose(marin["batch_tokens"], marin["batch_sequences"] * 4096)
    # the same table, read as a user reads theirs
    raw = pd.read_csv(CSV)
    # (read_sweeps says the single-run settings carry no information on their optimum;
    # load_external keeps them on purpose and says nothing)
    with pytest.warns(bsl.SweepWarning, match="same loss"):
        mine = bsl.read_sweeps(CSV, columns=EXTERNAL["marin-nadamw"]["columns"], min_runs=1)
    pd.testing.assert_frame_equal(mine, marin)
    assert np.array_equal(marin["loss"].to_numpy(), raw["final_c4en_loss"].to_numpy())
    # provenance columns kept
    for col in ("lab", "model_tag", "sweep_axis", "is_best_config", "source_file", "entry"):
        assert col in marin


def test_the_values_are_the_sources(marin):
    if not SOURCE.is_file():
        pytest.skip("the shared transcription is not on this machine")
    src = pd.read_csv(SOURCE)
    for ours, theirs in (("N", "N"), ("D", "D"), ("lr", "lr"), ("loss", "loss"),
                         ("batch_sequences", "batch_sequences"), ("entry", "entry")):  # fmt: skip
        assert np.array_equal(marin[ours].to_numpy(), src[theirs].to_numpy()), ours


def test_diverged_runs_keep_their_loss_and_the_package_marks_exactly_them(marin):
    marked = mark_diverged(marin)["diverged"].to_numpy()
    assert marked.sum() == 8
    assert np.array_equal(marked, marin["source_diverged"].to_numpy() == 1)
    assert marin.loc[marked, "loss"].max() == pytest.approx(34467.60546875)


def test_min_runs_drops_single_run_settings():
    three = load_external("marin-nadamw", min_runs=3)
    assert three["setting"].nunique() == 12 and len(three) == 49
    assert three.groupby("setting").size().min() >= 3
    with pytest.raises(ValueError, match="min_runs"):
        load_external("marin-nadamw", min_runs=0)
    with pytest.raises(ValueError, match="unknown external"):
        load_external("marin")


def test_pooled_it_is_a_user_group_of_its_own_lab(marin, released):
    pooled = bsl.pool_with_released(marin, ("family",), released=released)
    mine = pooled[pooled["source"] == "user"]
    assert set(mine["family"]) == {"user:marin-nadamw"}
    assert set(pooled.loc[pooled["source"] == "released", "family"]) == {"dense", "moe"}
    if "lab" in pooled:  # the lab column names whose setup the runs share
        assert set(mine["lab"].astype(str)) == {"marin"}


def test_the_wheel_ships_the_files():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for name in ("marin_nadamw.csv", "marin_nadamw.md"):
        assert shipped[f"data/{name}"] == f"bayes_steplaw/_resources/data/{name}"
    # the released Step Law files are never shipped nor committed
    assert not any(re.search(r"lr_bs_loss|fitted_lr_bs", k) for k in shipped)


def test_a_pooled_fit_remembers_the_users_sequence_length(marin, released):
    from bayes_steplaw.bayes.model import fitted_seq_len

    pooled = bsl.pool_with_released(marin, ("family",), released=released)
    assert fitted_seq_len(released) == 2048
    assert fitted_seq_len(pooled) == 4096  # Marin's, though most pooled runs are 2048's
