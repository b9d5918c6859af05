"""Sweep loaders and validation.

Expectations come from SOURCE.md, from the released CSV files read here with the csv module,
and from closed forms (the grid 2^(-k/2), tokens = sequences x 2048), never from the package.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import shared_data_dir

from bayes_steplaw.datasets.sweeps import (
    CORE_COLUMNS,
    SweepValidationError,
    SweepWarning,
    load_sweeps,
    near_optimal,
    read_sweeps,
    snap_lr,
)

SHARED = shared_data_dir()
DENSE_CSV = SHARED / "dense_lr_bs_loss.csv"
MOE_CSV = SHARED / "moe_lr_bs_loss.csv"
SEQ = 2048  # SOURCE.md: every released run used 2048-token sequences
MOE_VARIANTS = {"1in8", "1in89", "2in88", "3in8"}  # SOURCE.md


def _raw(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


RAW_DENSE = _raw(DENSE_CSV)
RAW_MOE = _raw(MOE_CSV)


@pytest.fixture(scope="module")
def dense():
    return load_sweeps("dense", SHARED)


@pytest.fixture(scope="module")
def moe():
    return load_sweeps("moe", SHARED)


@pytest.fixture(scope="module")
def both():
    return load_sweeps("all", SHARED)


def _by_run(frame: pd.DataFrame) -> dict[str, pd.Series]:
    return {row["run"]: row for _, row in frame.iterrows()}


# --------------------------------------------------------------------------- released data


def test_row_and_setting_counts(dense, moe, both):
    assert len(RAW_DENSE) == 1911 and len(RAW_MOE) == 708  # SOURCE.md
    assert len(dense) == 1911 and dense["setting"].nunique() == 17
    assert len(moe) == 708 and moe["setting"].nunique() == 16
    assert len(both) == 1911 + 708 and both["setting"].nunique() == 17 + 16
    assert set(both["setting"]) == set(dense["setting"]) | set(moe["setting"])
    assert set(CORE_COLUMNS) <= set(both.columns)


def test_settings_are_the_files_groups(dense, moe):
    # one setting per (N, D) for dense, per (variant, N, D) for MoE, same run counts
    raw_dense = Counter((int(r["N"]), int(r["D"])) for r in RAW_DENSE)
    got = dense.groupby("setting").agg(N=("N", "unique"), D=("D", "unique"), n=("N", "size"))
    assert all(len(v) == 1 for v in got["N"]) and all(len(v) == 1 for v in got["D"])
    assert Counter({(int(r.N[0]), int(r.D[0])): r.n for r in got.itertuples()}) == raw_dense

    raw_moe = Counter((r["moe_name"], int(r["N"]), int(r["D"])) for r in RAW_MOE)
    assert len(raw_moe) == 16
    keys = moe.groupby("setting")[["variant", "N", "D"]].nunique()
    assert (keys == 1).all().all()
    sizes = moe.groupby(["variant", "N", "D"]).size()
    assert {(str(v), int(n), int(d)): c for (v, n, d), c in sizes.items()} == raw_moe


def test_every_row_matches_the_file(dense, moe):
    for raw, frame in ((RAW_DENSE, dense), (RAW_MOE, moe)):
        rows = _by_run(frame)
        assert set(rows) == {r["exp_name"] for r in raw}  # nothing dropped, nothing added
        for r in raw:
            got = rows[r["exp_name"]]
            assert got["N"] == int(r["N"]) and got["D"] == int(r["D"])
            assert got["batch_sequences"] == int(r["bs"])
            assert got["seq_len"] == SEQ
            assert got["batch_tokens"] == int(r["bs"]) * 2048
            assert got["loss"] == float(r["smooth loss"])
            assert got["loss_last"] == float(r["loss"])
            assert got["iterations"] == int(r["ti"])
            assert got["d_model"] == int(r["h"]) and got["d_ff"] == int(r["ffnh"])
            assert got["n_heads"] == int(r["numh"]) and got["n_layers"] == int(r["numl"])


def test_moe_columns(moe):
    rows = _by_run(moe)
    for r in RAW_MOE:
        got = rows[r["exp_name"]]
        assert r["seq_len"] == str(SEQ)
        assert got["N_active"] == int(r["Na"])
        assert got["variant"] == r["moe_name"]
        assert got["n_experts"] == int(r["nume"]) and got["top_k"] == int(r["topk"])
        assert got["d_expert"] == int(r["moeh"]) and got["d_shared_expert"] == int(r["sed"])
        assert got["n_dense_layers"] == int(r["numld"])
    assert np.allclose(moe["N"], 2.15e9, rtol=0.01)  # SOURCE.md: N ~ 2.15e9 for all variants
    assert (moe["N_active"] < moe["N"]).all()
    assert set(moe["family"]) == {"moe"}
    assert set(moe["variant"]) == MOE_VARIANTS


def test_dense_groups(dense, both):
    assert (dense["N_active"] == dense["N"]).all()
    assert set(dense["family"]) == {"dense"} and set(dense["variant"]) == {"dense"}
    moe_arch = ["n_experts", "top_k", "d_expert", "d_shared_expert", "n_dense_layers"]
    assert not set(moe_arch) & set(dense.columns)
    assert both.loc[both["family"] == "dense", moe_arch].isna().all().all()
    assert both.loc[both["family"] == "moe", moe_arch].notna().all().all()


def test_recipe_is_missing(both):
    assert both["recipe"].isna().all()  # SOURCE.md: the recipe groups were not released


def _grid_k(lr: float) -> float:
    return -2.0 * math.log2(lr)


# The file spells 2^-6.5 = 0.011049 as both 0.01105 and 0.0111 (0.01105 rounded half-up to three
# figures), 0.47% away; every other spelling is within 0.2% of its grid value.
LOOSE_SPELLINGS = {"0.0111": 2.0**-6.5}


def test_snapped_lr_is_on_the_grid_and_near_the_file(dense, moe):
    for raw, frame in ((RAW_DENSE, dense), (RAW_MOE, moe)):
        rows = _by_run(frame)
        for r in raw:
            lr = rows[r["exp_name"]]["lr"]
            k = _grid_k(lr)
            assert k == round(k) and lr == 2.0 ** (-round(k) / 2)
            if r["lr"] in LOOSE_SPELLINGS:
                assert lr == LOOSE_SPELLINGS[r["lr"]]
                assert abs(lr / float(r["lr"]) - 1) < 0.005
            else:
                assert abs(lr / float(r["lr"]) - 1) < 0.002, r["lr"]
    # SOURCE.md: the grid spans 2^-12 ... 2^-5.5 for dense runs
    assert dense["lr"].min() >= 2.0**-12 and dense["lr"].max() <= 2.0**-5.5


def test_roundings_of_one_grid_value_agree(dense):
    assert snap_lr([0.000345, 0.0003453])[0] == snap_lr([0.000345, 0.0003453])[1] == 2.0**-11.5
    assert snap_lr([0.00195])[0] == snap_lr([0.001953])[0] == 2.0**-9
    assert snap_lr([0.0156, 0.01562])[0] == 2.0**-6
    # in the loaded table, rows whose file spellings differ but round to one k get one value
    by_spelling = defaultdict(set)
    rows = _by_run(dense)
    for r in RAW_DENSE:
        by_spelling[round(_grid_k(float(r["lr"])))].add(rows[r["exp_name"]]["lr"])
    assert all(len(v) == 1 for v in by_spelling.values())
    assert dense["lr"].nunique() == len(by_spelling)
    assert {"0.000345", "0.0003453"} <= {r["lr"] for r in RAW_DENSE}


def test_snap_leaves_off_grid_values_alone():
    off = np.array([3e-3, 1e-3, 0.0125])  # k = 16.76, 19.93, 12.64: not roundings of the grid
    assert np.array_equal(snap_lr(off), off)
    assert snap_lr([2.0**-8])[0] == 2.0**-8


def test_load_sweeps_rejects_unknown_which():
    with pytest.raises(ValueError, match="dense"):
        load_sweeps("sparse", SHARED)


# --------------------------------------------------------------------------- near_optimal


def _raw_dense_near_optimal(threshold: float) -> set[str]:
    best: dict[tuple[str, str], float] = {}
    for r in RAW_DENSE:
        key = (r["N"], r["D"])
        best[key] = min(best.get(key, math.inf), float(r["smooth loss"]))
    return {
        r["exp_name"]
        for r in RAW_DENSE
        if float(r["smooth loss"]) / best[(r["N"], r["D"])] - 1 < threshold
    }


def test_near_optimal_keeps_129_dense_runs(dense):
    kept = near_optimal(dense)
    assert len(kept) == 129  # SOURCE.md
    assert set(kept["run"]) == _raw_dense_near_optimal(0.0025)
    assert (kept["rel_loss"] < 0.0025).all() and (kept["rel_loss"] >= 0).all()
    assert kept["setting"].nunique() == 17


def test_near_optimal_always_keeps_each_best_run(dense, moe):
    for frame, key in ((dense, ["N", "D"]), (moe, ["variant", "N", "D"])):
        best = set(frame.loc[frame.groupby(key)["loss"].idxmin(), "run"])
        for threshold in (1e-12, 1e-3, 0.0025, 0.05):
            assert best <= set(near_optimal(frame, threshold)["run"])
        assert set(near_optimal(frame, 1e-12)["run"]) == best


@pytest.mark.parametrize("threshold", [0.0, -0.01])
def test_near_optimal_rejects_nonpositive_threshold(dense, threshold):
    with pytest.raises(ValueError, match="threshold"):
        near_optimal(dense, threshold)


# --------------------------------------------------------------------------- read_sweeps

GRID = [2.0**-10, 2.0**-9, 2.0**-8, 2.0**-7]


def _user_table() -> pd.DataFrame:
    """A valid sweep in a user's own column names: 2 settings x 4 runs."""
    return pd.DataFrame(
        {
            "params": [1e8] * 4 + [4e8] * 4,
            "tokens": [2e9] * 4 + [8e9] * 4,
            "peak_lr": GRID * 2,
            "bsz": [64, 64, 128, 128] * 2,
            "final": [3.1, 3.0, 3.05, 3.2, 2.8, 2.7, 2.75, 2.9],
            "note": list("abcdefgh"),
        }
    )


MAP = {"N": "params", "D": "tokens", "lr": "peak_lr", "batch_sequences": "bsz", "loss": "final"}


def _problems(table, columns=MAP, **kw) -> str:
    kw.setdefault("seq_len", 4096)
    with pytest.raises(SweepValidationError) as err:
        read_sweeps(table, columns=columns, **kw)
    return str(err.value)


def test_valid_user_table_round_trips(tmp_path):
    table = _user_table()
    out = read_sweeps(table, columns=MAP, seq_len=4096)
    assert len(out) == len(table)
    assert list(out["N"]) == list(table["params"]) and list(out["D"]) == list(table["tokens"])
    assert list(out["lr"]) == list(table["peak_lr"])  # on the grid already: unchanged
    assert list(out["loss"]) == list(table["final"])
    assert list(out["batch_sequences"]) == list(table["bsz"])
    assert list(out["batch_tokens"]) == [b * 4096 for b in table["bsz"]]
    assert set(out["seq_len"]) == {4096}
    assert list(out["N_active"]) == list(table["params"])
    assert list(out["note"]) == list(table["note"])  # other columns kept
    assert set(out["family"]) == {"dense"} and out["recipe"].isna().all()
    assert out["setting"].nunique() == 2
    assert list(out.columns[: len(CORE_COLUMNS)]) == CORE_COLUMNS
    assert table.columns.tolist() == [*MAP.values(), "note"]  # the input is not modified

    path = tmp_path / "sweep.csv"
    table.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_sweeps(path, columns=MAP, seq_len=4096), out)


def test_read_sweeps_snaps_and_groups():
    table = _user_table()
    table["peak_lr"] = [0.000977, 0.001953, 0.0039, 0.00781] * 2  # roundings of GRID
    table["recipe"] = ["web"] * 4 + ["code"] * 4
    out = read_sweeps(table, columns=MAP, seq_len=4096, family="mine")
    assert list(out["lr"]) == GRID * 2
    assert set(out["family"]) == {"mine"} and list(out["recipe"]) == list(table["recipe"])
    raw = read_sweeps(table, columns=MAP, seq_len=4096, snap=False)
    assert list(raw["lr"]) == list(table["peak_lr"])


def test_released_dense_file_reads_with_a_mapping():
    out = read_sweeps(
        DENSE_CSV, columns={"loss": "smooth loss", "batch_sequences": "bs"}, seq_len=SEQ
    )
    assert len(out) == 1911 and out["setting"].nunique() == 17
    rows = _by_run(out.rename(columns={"exp_name": "run"}))
    for r in RAW_DENSE[:200]:
        got = rows[r["exp_name"]]
        assert got["loss"] == float(r["smooth loss"])
        assert got["loss_original"] == float(r["loss"])  # the shadowed column is kept
        assert got["batch_tokens"] == int(r["bs"]) * 2048


def test_batch_tokens_alone_is_enough():
    table = _user_table().rename(columns={"bsz": "tokens_per_batch"})
    cols = {**MAP, "batch_tokens": "tokens_per_batch"}
    del cols["batch_sequences"]
    # this table's batches (64) are sequences mapped as tokens: legal, but warned about
    with pytest.warns(SweepWarning, match="map it to batch_sequences"):
        out = read_sweeps(table, columns=cols)
    assert list(out["batch_tokens"]) == list(table["tokens_per_batch"])
    assert out["seq_len"].isna().all() and out["batch_sequences"].isna().all()


def test_seq_len_is_derived_from_both_batch_columns():
    table = _user_table()
    table["bt"] = table["bsz"] * 1024
    out = read_sweeps(table, columns={**MAP, "batch_tokens": "bt"})
    assert list(out["batch_sequences"]) == list(table["bsz"])  # kept, not blanked
    assert set(out["seq_len"]) == {1024}


def test_missing_column():
    msg = _problems(
        _user_table().drop(columns="final"), columns={k: v for k, v in MAP.items() if k != "loss"}
    )
    assert "missing required column" in msg and "loss" in msg


def test_missing_batch_columns():
    msg = _problems(_user_table(), columns={k: v for k, v in MAP.items() if k != "batch_sequences"})
    assert "batch_tokens" in msg and "batch_sequences" in msg


def test_mapping_to_absent_column():
    msg = _problems(_user_table(), columns={**MAP, "loss": "smooth loss"})
    assert "'smooth loss'" in msg and "'loss'" in msg and "not in the table" in msg


@pytest.mark.parametrize(
    ("column", "user_column", "rows", "values", "words"),
    [
        ("N", "params", [2], ["abc"], "non-numeric"),
        ("lr", "peak_lr", [5], [np.nan], "missing"),
        ("D", "tokens", [1], [np.inf], "infinite"),
        ("D", "tokens", [3, 4], [-np.inf, np.inf], "infinite"),
        ("loss", "final", [3], [0.0], "> 0"),
        ("batch_sequences", "bsz", [0, 6], [-64, -1], "> 0"),
    ],
)
def test_bad_values_are_named(column, user_column, rows, values, words):
    table = _user_table()
    if any(isinstance(v, str) for v in values):
        table[user_column] = table[user_column].astype(object)
    for row, value in zip(rows, values, strict=True):
        table.loc[row, user_column] = value
    err_rows = ("row " if len(rows) == 1 else "rows ") + ", ".join(map(str, rows))
    msg = _problems(table)
    assert f"column {column!r}" in msg and err_rows in msg and words in msg
    # reported once, in the column where it is (not again in columns derived from it)
    assert msg.count(err_rows) == 1


def test_bad_values_in_a_csv(tmp_path):
    table = _user_table()
    table["bsz"] = table["bsz"].astype(object)
    table.loc[4, "bsz"] = "n/a?"
    table.loc[6, "final"] = np.nan
    path = tmp_path / "sweep.csv"
    table.to_csv(path, index=False)
    with pytest.raises(SweepValidationError) as err:
        read_sweeps(path, columns=MAP, seq_len=4096)
    problems = sorted(err.value.problems)
    assert len(problems) == 2  # every problem at once, nothing else
    assert "'batch_sequences'" in problems[0] and "non-numeric" in problems[0]
    assert "row 4" in problems[0]
    assert "'loss'" in problems[1] and "row 6" in problems[1]


def test_non_numeric_batch_tokens_is_a_validation_error():
    table = _user_table()
    table["bt"] = [str(b * 4096) for b in table["bsz"]]
    table.loc[2, "bt"] = "lots"
    cols = {**MAP, "batch_tokens": "bt"}
    del cols["batch_sequences"]
    msg = _problems(table.drop(columns="bsz"), columns=cols)
    assert "column 'batch_tokens'" in msg and "row 2" in msg and "non-numeric" in msg


def test_inconsistent_batch_columns():
    table = _user_table()
    table["bt"] = table["bsz"] * 4096
    table.loc[7, "bt"] = 1
    msg = _problems(table, columns={**MAP, "batch_tokens": "bt"})
    assert "batch_tokens" in msg and "row 7" in msg


def test_empty_group_name():
    table = _user_table()
    table["family"] = ["dense"] * 8
    table.loc[5, "family"] = None
    msg = _problems(table)
    assert "column 'family'" in msg and "row 5" in msg


def test_duplicate_runs():
    table = pd.concat([_user_table(), _user_table().iloc[[4]]], ignore_index=True)
    table.loc[8, "final"] = 2.71  # a repeated seed: same setting, lr and batch, other loss
    msg = _problems(table)
    assert "duplicate runs" in msg and "lr" in msg and "batch_tokens" in msg
    assert "rows 4, 8" in msg


def test_setting_with_too_few_runs():
    extra = _user_table().iloc[:2].assign(params=2e8)  # a third setting with 2 runs
    table = pd.concat([_user_table(), extra], ignore_index=True)
    msg = _problems(table)
    assert "fewer than 3 runs" in msg and "rows 8, 9" in msg and "N=2e+08" in msg
    assert len(read_sweeps(table, columns=MAP, seq_len=4096, min_runs=2)) == 10


def test_problems_are_all_listed_and_nothing_is_dropped():
    table = _user_table()
    table.loc[1, "peak_lr"] = np.nan
    table.loc[3, "tokens"] = -1.0
    with pytest.raises(SweepValidationError) as err:
        read_sweeps(table, columns=MAP, seq_len=4096)
    problems = sorted(err.value.problems)
    assert len(problems) == 2
    assert "'D'" in problems[0] and "row 3" in problems[0]
    assert "'lr'" in problems[1] and "row 1" in problems[1]


def test_row_numbers_ignore_the_frame_index():
    table = _user_table()
    table.index = range(100, 108)
    table.loc[105, "final"] = 0.0
    msg = _problems(table)
    assert "row 5" in msg and "105" not in msg


@pytest.mark.parametrize(
    "columns",
    [{"loss": "final", "N": "final"}, {"bogus": "final"}],
    ids=["one-column-twice", "unknown-canonical-name"],
)
def test_bad_mappings(columns):
    with pytest.raises(ValueError, match=r"final|bogus"):
        read_sweeps(_user_table(), columns={**MAP, **columns}, seq_len=4096)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        read_sweeps(tmp_path / "nope.csv")
