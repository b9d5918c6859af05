"""The data design both models share: runs indexed by setting and group level.

A :class:`Design` holds the arrays of one fit, independent of PyMC: the centred ln N and ln D
of every setting, each setting's group levels, and each run's setting, ln lr and ln batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..datasets.sweeps import CORE_COLUMNS, _rows
from .hierarchy import Hierarchy

DEFAULT_GROUPS = ("family", "variant")
"""Group columns of a fit unless told otherwise, outermost first."""

SWEEP_COLUMNS = ("N", "D", "lr", "batch_tokens", "loss", "setting")
"""Columns every model needs from a sweep table."""


@dataclass(frozen=True)
class Design:
    """Arrays of one fit, independent of PyMC."""

    hierarchy: Hierarchy
    settings: list[str]
    log_n: np.ndarray  # per setting, centred
    log_d: np.ndarray  # per setting, centred
    setting_levels: np.ndarray  # (n_settings, n_levels) level index, -1 for none
    run_setting: np.ndarray  # (n_runs,) setting index of each run
    log_lr: np.ndarray  # (n_runs,)
    log_bs: np.ndarray  # (n_runs,)
    log_n0: float
    log_d0: float
    runs: pd.DataFrame  # the runs used, with rel_loss


def check_sweeps(sweeps: Any) -> pd.DataFrame:
    """A sweep table with every column a model needs, else a ValueError naming the missing."""
    if not isinstance(sweeps, pd.DataFrame):
        raise TypeError(f"sweeps must be a pandas DataFrame; got {type(sweeps).__name__}")
    missing = [c for c in SWEEP_COLUMNS if c not in sweeps]
    if missing:
        raise ValueError(
            f"sweeps lacks column(s) {missing}; load it with load_sweeps or read_sweeps"
        )
    # a NaN, an inf or a value <= 0 makes the log density NaN at every start, and nutpie's
    # "All initialization points failed" names no column
    bad = []
    for col in SWEEP_COLUMNS[:-1]:
        values = pd.to_numeric(sweeps[col], errors="coerce").to_numpy(float)
        wrong = ~(np.isfinite(values) & (values > 0))
        if wrong.any():
            bad.append(f"column {col!r}: missing, non-finite or <= 0 in {_rows(wrong)}")
    if bad:
        raise ValueError(
            f"sweeps holds values no model can fit: {'; '.join(bad)} (read_sweeps checks a "
            "table and says what is wrong with each row)"
        )
    return sweeps


def data_fingerprint(sweeps: pd.DataFrame) -> str:
    """sha256 of the canonical columns of a sweep table (row order included)."""
    cols = [c for c in CORE_COLUMNS if c in sweeps]
    return hashlib.sha256(sweeps[cols].to_csv(index=False).encode()).hexdigest()


def build_design(
    runs: pd.DataFrame,
    groups: tuple[str, ...] | list[str],
    log_n0: float | None = None,
    log_d0: float | None = None,
) -> Design:
    """Index a table of runs (already filtered) by setting and group level.

    ``log_n0``, ``log_d0`` centre ln N and ln D; by default the mean over the settings.
    """
    settings_frame = runs.drop_duplicates("setting").sort_values("setting").reset_index(drop=True)
    hierarchy, levels = Hierarchy.from_frame(settings_frame, groups)
    settings = settings_frame["setting"].tolist()
    log_n = np.log(settings_frame["N"].to_numpy(float))
    log_d = np.log(settings_frame["D"].to_numpy(float))
    log_n0 = float(log_n.mean()) if log_n0 is None else log_n0
    log_d0 = float(log_d.mean()) if log_d0 is None else log_d0
    lookup = {s: i for i, s in enumerate(settings)}
    return Design(
        hierarchy=hierarchy,
        settings=settings,
        log_n=log_n - log_n0,
        log_d=log_d - log_d0,
        # column-major: each column, indexed into a PyMC graph, is then a contiguous constant,
        # which numba (through PyTensor's numba backend) can cache across processes; a strided
        # view is lowered as a pointer into this process and defeats every cache
        setting_levels=np.asfortranarray(levels),
        run_setting=runs["setting"].map(lookup).to_numpy(int),
        log_lr=np.log(runs["lr"].to_numpy(float)),
        log_bs=np.log(runs["batch_tokens"].to_numpy(float)),
        log_n0=log_n0,
        log_d0=log_d0,
        runs=runs,
    )


def level_dims(hierarchy: Hierarchy) -> dict[str, list[str]]:
    """Coordinate name and labels of every group column's offsets."""
    return {f"level_{lev.column}": list(lev.labels) for lev in hierarchy.levels}


def design_metadata(design: Design, groups: tuple[str, ...] | list[str]) -> dict:
    """The part of a posterior's metadata that describes its data design."""
    settings = design.runs.drop_duplicates("setting")
    return {
        "groups": list(groups),
        "hierarchy": design.hierarchy.to_dict(),
        "log_n0": design.log_n0,
        "log_d0": design.log_d0,
        "N_range": [float(settings["N"].min()), float(settings["N"].max())],
        "D_range": [float(settings["D"].min()), float(settings["D"].max())],
        "n_runs": len(design.runs),
        "n_settings": len(design.settings),
    }
