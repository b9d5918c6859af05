"""Sweep tables: the released Step Law data and users' own sweeps in one tidy schema.

One row is one training run. Canonical columns (units in the name or below):

``N``               non-embedding parameters (for MoE the total)
``N_active``        active non-embedding parameters (= ``N`` for dense models)
``D``               training tokens
``lr``              peak learning rate
``batch_sequences`` batch size in sequences
``batch_tokens``    batch size in tokens (= ``batch_sequences * seq_len``)
``seq_len``         sequence length in tokens
``loss``            smoothed final training loss (the paper's metric)
``family``          architecture family, e.g. ``dense`` or ``moe``
``variant``         sub-group within the family (MoE sparsity variant; ``family`` when none)
``recipe``          data recipe (missing when not recorded)
``setting``         one id per (family, variant, recipe, N, D): the runs that share an optimum
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .registry import fetch

CORE_COLUMNS = [
    "N",
    "N_active",
    "D",
    "lr",
    "batch_sequences",
    "batch_tokens",
    "seq_len",
    "loss",
    "family",
    "variant",
    "recipe",
    "setting",
]
GROUP_COLUMNS = ("family", "variant", "recipe")
NUMERIC_COLUMNS = ("N", "N_active", "D", "lr", "batch_sequences", "batch_tokens", "seq_len", "loss")
MIN_RUNS_PER_SETTING = 3
NEW = "new"
"""The group name of a never-seen group (``"new"``, ``"moe/new"``): reserved."""
SEPARATORS = ("/", "@")
"""Join nested (``moe/1in8``) and crossed (``dense@code``) levels in a group name."""

_DENSE_RENAME = {
    "h": "d_model",
    "ffnh": "d_ff",
    "numh": "n_heads",
    "numl": "n_layers",
    "ti": "iterations",
    "loss": "loss_last",
    "smooth loss": "loss",
    "exp_name": "run",
    "bs": "batch_sequences",
}
_MOE_RENAME = {
    **_DENSE_RENAME,
    "topk": "top_k",
    "nume": "n_experts",
    "moeh": "d_expert",
    "sed": "d_shared_expert",
    "numld": "n_dense_layers",
    "Na": "N_active",
    "moe_name": "variant",
}
ARCH_COLUMNS = [  # architecture columns of the schema, in order
    "d_model",
    "d_ff",
    "n_heads",
    "n_layers",
    "n_experts",
    "top_k",
    "d_expert",
    "d_shared_expert",
    "n_dense_layers",
]
_EXTRA_COLUMNS = ["iterations", "loss_last", "run"]


MAX_BATCH_TOKENS = 2**30
"""Largest plausible batch (1.07e9 tokens): published pretraining batches are tens of millions."""

MIN_BATCH_TOKENS = 256
"""Smallest plausible batch in tokens; below it the column most likely counts sequences."""


class SweepWarning(UserWarning):
    """A sweep table holds values that are legal but implausible (e.g. the batch's unit)."""


class SweepValidationError(ValueError):
    """A sweep table failed validation; ``problems`` lists every issue found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the sweep table has {len(self.problems)} problem(s):\n{lines}")


def snap_lr(lr: np.ndarray | pd.Series, tol: float = 0.02) -> np.ndarray:
    """Snap learning rates to the grid 2^(-k/2) when they are roundings of a grid value.

    The released files spell one grid value in several roundings (0.000345 and 0.0003453);
    values farther than ``tol`` (in units of k) from the grid are returned unchanged.
    """
    lr = np.asarray(lr, dtype=float)
    k = -2.0 * np.log2(lr)
    k_round = np.round(k)
    return np.where(np.abs(k - k_round) <= tol, 2.0 ** (-k_round / 2.0), lr)


def setting_ids(frame: pd.DataFrame) -> pd.Series:
    """Readable id of each row's setting: group path, N and D.

    N and D enter with 4 significant digits, on purpose: runs of one token budget whose D was
    computed as iterations x batch x seq_len differ in the last digits and still share their
    setting. Two settings closer than that (N = 1.0001e9 and 1.0002e9) are one setting.
    """
    recipe = frame["recipe"].astype("string").fillna("")
    path = group_path(frame, ("family", "variant")) + np.where(recipe != "", "@" + recipe, "")
    return path + " N=" + _fmt(frame["N"]) + " D=" + _fmt(frame["D"])


def _fmt(values: pd.Series) -> pd.Series:
    return values.map(lambda v: f"{v:.4g}")


def group_path(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> pd.Series:
    """Nested group name of each row: values of ``columns`` joined by ``/``.

    A level that repeats its parent (``variant == family`` for dense rows) is not repeated,
    so dense rows are ``"dense"`` and MoE rows ``"moe/1in8"``.
    """
    parts = [frame[c].astype("string").fillna("") for c in columns]
    out = parts[0].copy()
    prev = parts[0]
    for part in parts[1:]:
        extend = (part != "") & (part != prev)
        out = out.where(~extend, out + "/" + part)
        prev = part
    return out


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Derive the remaining canonical columns and order them."""
    frame["setting"] = setting_ids(frame)
    first = [c for c in CORE_COLUMNS if c in frame]
    rest = [c for c in [*ARCH_COLUMNS, *_EXTRA_COLUMNS] if c in frame]
    others = [c for c in frame.columns if c not in first and c not in rest]
    return frame[first + rest + others].reset_index(drop=True)


def _load_dense(data_dir) -> pd.DataFrame:
    raw = pd.read_csv(fetch("dense_lr_bs_loss.csv", data_dir))
    out = raw.rename(columns=_DENSE_RENAME)[
        ["N", "D", "lr", "batch_sequences", "loss", *ARCH_COLUMNS[:4], *_EXTRA_COLUMNS]
    ].copy()
    out["N_active"] = out["N"]
    out["seq_len"] = 2048  # SOURCE.md: every released dense run used 2048-token sequences
    out["family"] = "dense"
    out["variant"] = "dense"
    return out


def _load_moe(data_dir) -> pd.DataFrame:
    raw = pd.read_csv(fetch("moe_lr_bs_loss.csv", data_dir))
    out = raw.rename(columns=_MOE_RENAME)[
        [
            "N",
            "N_active",
            "D",
            "lr",
            "batch_sequences",
            "seq_len",
            "loss",
            "variant",
            *ARCH_COLUMNS,
            *_EXTRA_COLUMNS,
        ]
    ].copy()
    out["family"] = "moe"
    return out


def load_sweeps(which: str = "all", data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Load the released Step Law sweeps as one tidy table.

    Parameters
    ----------
    which : {"dense", "moe", "all"}
        Which sweep to load.
    data_dir : path, optional
        Directory holding the released CSV files (see :mod:`bayes_steplaw.datasets.registry`).

    Returns
    -------
    pandas.DataFrame
        One row per run with the canonical columns of :mod:`bayes_steplaw.datasets.sweeps`, the
        architecture columns (``d_model, d_ff, n_heads, n_layers`` and for MoE ``n_experts,
        top_k, d_expert, d_shared_expert, n_dense_layers``), ``iterations``, ``loss_last``
        (last raw loss) and ``run`` (the experiment name). ``lr`` is snapped to the grid.
    """
    loaders = {"dense": [_load_dense], "moe": [_load_moe], "all": [_load_dense, _load_moe]}
    if which not in loaders:
        raise ValueError(f"which must be one of 'dense', 'moe', 'all'; got {which!r}")
    frame = pd.concat([load(data_dir) for load in loaders[which]], ignore_index=True)
    frame["batch_tokens"] = frame["batch_sequences"] * frame["seq_len"]
    frame["lr"] = snap_lr(frame["lr"])
    frame["recipe"] = pd.Series(pd.NA, index=frame.index, dtype="string")
    for col in ("family", "variant"):
        frame[col] = frame[col].astype("string")
    int_cols = [c for c in ARCH_COLUMNS if c in frame]
    frame[int_cols] = frame[int_cols].astype("Int64")
    return _finish(frame)


EXTERNAL = {
    "marin-nadamw": {
        "file": "marin_nadamw.csv",
        "columns": {"loss": "final_c4en_loss"},
        "about": "Marin's NAdamW sweeps (Wen, Hall, Ma, Liang 2025, arXiv:2509.02046; "
        "Apache-2.0 source, data/marin_nadamw.md): 55 runs in 18 settings, Llama models of "
        "134M-1.2B non-embedding parameters, 4096-token sequences, final C4-en validation loss",
    },
}
"""Other labs' sweep tables that ship with the package (``data/<file>``, its provenance in
``data/<stem>.md``): name -> file, column mapping into the schema, one line about it."""


def load_external(name: str = "marin-nadamw", *, min_runs: int = 1) -> pd.DataFrame:
    """Another lab's sweep table, shipped with the package, read as a user's table is.

    The committed copy goes through :func:`read_sweeps` with its column mapping (for
    ``"marin-nadamw"``: ``{"loss": "final_c4en_loss"}``), so its rows have the canonical
    columns and one group, ``family = variant = name``; pooled with the released data
    (:func:`bayes_steplaw.pool_with_released`, ``fit(..., with_released=True)``) it becomes
    ``user:<name>``, as a user's group does, and its ``lab`` column (``"marin"``) names the lab
    whose setup its runs share. Diverged runs keep their reported loss: the package's rule
    (loss above 1.5x the setting's lowest) marks them when a model is fitted.

    Parameters
    ----------
    name : str
        One of :data:`EXTERNAL` (``"marin-nadamw"``).
    min_runs : int
        Keep the settings with at least this many runs. The default 1 keeps the single tuned
        runs (they inform the best loss, not where the optimum is); 3 keeps the settings
        whose sweeps can locate an optimum, as :func:`read_sweeps` asks of a user's table.

    Returns
    -------
    pandas.DataFrame
        The canonical columns, then the file's own (``lab``, ``optimizer``, ``model_tag``,
        ``chinchilla_mult``, ``sweep_axis``, ``is_best_config``, ``source_diverged``,
        ``source_file``, ``entry``, ...). Cite the source named in ``data/<stem>.md``.
    """
    from .._resources import resource_path

    if name not in EXTERNAL:
        raise ValueError(f"unknown external sweep table {name!r}; known: {sorted(EXTERNAL)}")
    if isinstance(min_runs, bool) or not isinstance(min_runs, (int, np.integer)) or min_runs < 1:
        raise ValueError(f"min_runs must be an integer >= 1; got {min_runs!r}")
    entry = EXTERNAL[name]
    path = resource_path("data", entry["file"])
    # single-run settings are meant here: the table is read with min_runs=1, and the warning
    # that such a setting's losses are all equal is left to the settings that are kept
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SweepWarning)
        frame = read_sweeps(path, columns=entry["columns"], min_runs=1)
    counts = frame.groupby("setting")["lr"].transform("size").to_numpy()
    frame = frame[counts >= min_runs].reset_index(drop=True)
    several = frame.groupby("setting")["lr"].transform("size").to_numpy() > 1
    for message in batch_unit_warnings(frame) + constant_loss_warnings(frame[several]):
        warnings.warn(message, SweepWarning, stacklevel=2)
    return frame


def _rows(mask: np.ndarray, limit: int = 10) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in idx[:limit])
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"row{'s' if len(idx) > 1 else ''} {shown}{more}"


def read_sweeps(
    source: str | os.PathLike | pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    *,
    seq_len: int | None = None,
    family: str | None = None,
    snap: bool = True,
    min_runs: int = MIN_RUNS_PER_SETTING,
) -> pd.DataFrame:
    """Read and validate a user's sweep into the package schema.

    Parameters
    ----------
    source : path or DataFrame
        A CSV file (or a DataFrame) with one row per training run.
    columns : mapping, optional
        Canonical name -> your column name, e.g. ``{"loss": "smooth loss", "N": "params"}``.
        Columns already named canonically need no entry.
    seq_len : int, optional
        Sequence length for every row when the table has no ``seq_len`` column.
    family : str, optional
        Family for every row when the table has no ``family`` column (default ``"dense"``).
    snap : bool
        Snap learning rates that are roundings of the 2^(-k/2) grid onto it.
    min_runs : int
        Fewest runs a setting needs for its optimum to be located.

    Returns
    -------
    pandas.DataFrame
        The canonical columns first, then every other column of the input, unchanged (a column
        whose name a ``columns=`` entry takes over, e.g. ``loss`` beside ``{"loss": "smooth
        loss"}``, is kept as ``loss_original``).

    Raises
    ------
    SweepValidationError
        Listing every problem with its column and row numbers (0-based data rows; the CSV line
        is the row number + 2). Required: ``N``, ``D``, ``lr``, ``loss`` and either
        ``batch_tokens`` or ``batch_sequences`` with ``seq_len``.
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"sweep file {path} does not exist")
        frame = pd.read_csv(path)
    frame = frame.reset_index(drop=True)
    mapping = dict(columns or {})
    unknown = [k for k in mapping if k not in CORE_COLUMNS]
    if unknown:
        raise ValueError(
            f"columns= maps unknown canonical name(s) {unknown}; canonical names are {CORE_COLUMNS}"
        )
    targets = list(mapping.values())
    shared = sorted({c for c in targets if targets.count(c) > 1})
    if shared:
        raise ValueError(
            f"columns= maps several canonical names to the same column(s) {shared}; "
            f"map each of your columns once"
        )
    absent = [
        f"column {col!r} (given for {canon!r}) is not in the table; "
        f"the table has {list(frame.columns)}"
        for canon, col in mapping.items()
        if col not in frame
    ]
    if absent:
        raise SweepValidationError(absent)
    # A canonical name already taken by another, unmapped column (the released files have both
    # `loss` and `smooth loss`): keep that column under a new name rather than a duplicate label.
    renames = {v: k for k, v in mapping.items()}
    for canon in mapping:
        if canon in frame and canon not in renames:
            keep = f"{canon}_original"
            while keep in frame or keep in renames.values():
                keep += "_"
            renames[canon] = keep
    frame = frame.rename(columns=renames)

    problems: list[str] = []
    if "seq_len" not in frame and seq_len is not None:
        frame["seq_len"] = seq_len
    required = ["N", "D", "lr", "loss"]
    missing = [c for c in required if c not in frame]
    if "batch_tokens" not in frame and not {"batch_sequences", "seq_len"} <= set(frame):
        missing.append("batch_tokens (or batch_sequences with seq_len)")
    if missing:
        problems.append(
            f"missing required column(s): {', '.join(missing)}; the table has "
            f"{list(frame.columns)}. Map your names with columns={{canonical: yours}}."
        )
        raise SweepValidationError(problems)

    # Validate the columns the table supplies before deriving any from them, so that one bad
    # value is reported once, in the column where it is, and arithmetic never meets strings.
    for col in [c for c in NUMERIC_COLUMNS if c in frame]:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad_type = values.isna().to_numpy() & frame[col].notna().to_numpy()
        if bad_type.any():
            problems.append(f"column {col!r}: non-numeric values in {_rows(bad_type)}")
        arr = values.to_numpy(dtype=float)
        missing_vals = frame[col].isna().to_numpy()
        if missing_vals.any():
            problems.append(f"column {col!r}: missing values in {_rows(missing_vals)}")
        nonfinite = ~np.isfinite(arr) & ~np.isnan(arr)
        if nonfinite.any():
            problems.append(f"column {col!r}: infinite values in {_rows(nonfinite)}")
        nonpos = np.isfinite(arr) & (arr <= 0)
        if nonpos.any():
            problems.append(f"column {col!r}: values not > 0 in {_rows(nonpos)}")
        frame[col] = arr
    for col in [c for c in ("family", "variant") if c in frame]:
        empty = (frame[col].astype("string").fillna("").str.strip() == "").to_numpy(dtype=bool)
        if empty.any():
            problems.append(f"column {col!r}: empty group names in {_rows(empty)}")
    for col in [c for c in GROUP_COLUMNS if c in frame]:
        bad = unqueryable(frame[col]).to_numpy()
        if bad.any():
            names = sorted(set(frame.loc[bad, col].astype(str)))[:5]
            problems.append(
                f"column {col!r}: group names {names} in {_rows(bad)} could never be queried "
                f"('/' and '@' join nested and crossed groups, 'new' means a never-seen group)"
            )
    if not problems and {"batch_tokens", "batch_sequences", "seq_len"} <= set(frame):
        product = frame["batch_sequences"] * frame["seq_len"]
        clash = ~np.isclose(frame["batch_tokens"], product, rtol=1e-9, atol=0)
        if clash.any():
            problems.append(
                f"columns 'batch_tokens', 'batch_sequences', 'seq_len': batch_tokens is not "
                f"batch_sequences * seq_len in {_rows(clash)}"
            )
    if problems:
        raise SweepValidationError(problems)

    if "batch_sequences" not in frame and {"batch_tokens", "seq_len"} <= set(frame):
        frame["batch_sequences"] = frame["batch_tokens"] / frame["seq_len"]
    if "batch_tokens" not in frame:
        frame["batch_tokens"] = frame["batch_sequences"] * frame["seq_len"]
    if "seq_len" not in frame and "batch_sequences" in frame:
        frame["seq_len"] = frame["batch_tokens"] / frame["batch_sequences"]
    # batch_tokens alone is enough; sequence columns then stay unknown (NaN), not invented
    if "seq_len" not in frame:
        frame["batch_sequences"] = np.nan
        frame["seq_len"] = np.nan
    if "N_active" not in frame:
        frame["N_active"] = frame["N"]
    if "family" not in frame:
        frame["family"] = family or "dense"
    if "variant" not in frame:
        frame["variant"] = frame["family"]
    if "recipe" not in frame:
        frame["recipe"] = pd.NA

    if snap:
        frame["lr"] = snap_lr(frame["lr"])
    for col in GROUP_COLUMNS:
        frame[col] = frame[col].astype("string")
    frame["setting"] = setting_ids(frame)

    dup = frame.duplicated(["setting", "lr", "batch_tokens"], keep=False).to_numpy()
    if dup.any():
        problems.append(
            f"duplicate runs (same setting, lr and batch_tokens) in {_rows(dup, 20)}; "
            f"keep one row per run (average repeated seeds yourself if that is intended)"
        )
    counts = frame.groupby("setting")["lr"].transform("size").to_numpy()
    few = counts < min_runs
    if few.any():
        names = sorted(set(frame.loc[few, "setting"]))
        problems.append(
            f"setting(s) with fewer than {min_runs} runs, too few to locate an optimum: "
            f"{names} ({_rows(few)})"
        )
    if problems:
        raise SweepValidationError(problems)
    for message in batch_unit_warnings(frame) + constant_loss_warnings(frame):
        warnings.warn(message, SweepWarning, stacklevel=2)
    return _finish(frame)


def unqueryable(values: pd.Series) -> pd.Series:
    """Which group values no group name could select: holding a separator, or ``new``."""
    text = values.astype("string").fillna("")
    bad = text.str.strip().str.lower() == NEW
    for sep in SEPARATORS:
        bad |= text.str.contains(sep, regex=False)
    return bad.fillna(False).astype(bool)


def constant_loss_warnings(sweeps: pd.DataFrame) -> list[str]:
    """Losses that carry no information: the same in every run of the table, or of a setting.

    A fit learns where the loss is lowest; a setting whose runs all report one loss says
    nothing about that (a constant column, a loss column mapped to the wrong field).
    """
    if "loss" not in sweeps:
        return []
    loss = pd.to_numeric(sweeps["loss"], errors="coerce")
    if loss.isna().all():
        return []
    if loss.nunique() == 1:
        return [
            f"every run has the same loss ({loss.dropna().iloc[0]:.6g}): the losses carry no "
            f"information on the optimum; check that the loss column holds each run's final "
            f"loss (fit --column loss=YOURS, or columns={{'loss': yours}})"
        ]
    if "setting" not in sweeps:
        return []
    flat = loss.groupby(sweeps["setting"]).nunique()
    flat = sorted(flat[flat == 1].index.astype(str))
    if not flat:
        return []
    more = f" and {len(flat) - 5} more" if len(flat) > 5 else ""
    return [
        f"setting(s) {flat[:5]}{more}: every run of the setting has the same loss, which "
        f"carries no information on where its optimum is"
    ]


def batch_unit_warnings(sweeps: pd.DataFrame) -> list[str]:
    """Batch sizes (and learning rates) that are implausible for their unit.

    A ``batch_sequences`` column that holds tokens gives batches of billions of tokens; a
    ``batch_tokens`` column that holds sequences gives batches of a few hundred tokens. Both
    are legal numbers, so they are warnings, each naming the likely cause and the fix.
    """
    out = []

    def rows(mask: np.ndarray) -> str:
        idx = np.flatnonzero(mask)
        more = f" and {len(idx) - 5} more" if len(idx) > 5 else ""
        return f"row{'s' if len(idx) > 1 else ''} {', '.join(map(str, idx[:5]))}{more}"

    tokens = pd.to_numeric(sweeps.get("batch_tokens"), errors="coerce")
    if tokens is not None:
        tokens = tokens.to_numpy(float)
        big = tokens > MAX_BATCH_TOKENS
        if big.any():
            out.append(
                f"batches of up to {np.nanmax(tokens):.3g} tokens ({rows(big)}) are far above "
                f"any published pretraining batch (tens of millions of tokens): if your batch "
                f"column counts tokens, map it to batch_tokens, not batch_sequences "
                f"(fit --column batch_tokens=YOURS, or columns={{'batch_tokens': yours}})"
            )
        small = tokens < MIN_BATCH_TOKENS
        if small.any():
            out.append(
                f"batches of only {np.nanmin(tokens):.3g} tokens ({rows(small)}): if your batch "
                f"column counts sequences, map it to batch_sequences and give --seq-len"
            )
    lr = pd.to_numeric(sweeps.get("lr"), errors="coerce")
    if lr is not None:
        lr = lr.to_numpy(float)
        odd = (lr > 1.0) | (lr < 1e-7)
        if odd.any():
            out.append(
                f"peak learning rates outside [1e-7, 1] ({rows(odd)}, e.g. {lr[odd][0]:.3g}): "
                f"the lr column should hold the learning rate itself, not its log or a percent"
            )
    return out


def relative_loss(sweeps: pd.DataFrame) -> pd.Series:
    """Each run's loss relative to its setting's minimum: ``loss / min(loss) - 1``."""
    best = sweeps.groupby("setting")["loss"].transform("min")
    return sweeps["loss"] / best - 1.0


def best_runs(sweeps: pd.DataFrame) -> pd.DataFrame:
    """The best run of every setting, with the sweep's grid steps around it.

    Returns one row per setting (in setting order) with the run's columns plus ``lr_step`` and
    ``batch_step``: the local spacing, in natural-log units, of the setting's distinct learning
    rates and batch sizes at the best run (the mean of the gaps to its neighbours; 0 when the
    sweep has a single value). The best run of a sweep lies within about half a step of
    wherever the optimum is, which is part of how far it can land from the optimum.
    """
    best = sweeps.loc[sweeps.groupby("setting", sort=True)["loss"].idxmin()].reset_index(drop=True)
    steps = {}
    for column, name in (("lr", "lr_step"), ("batch_tokens", "batch_step")):
        grids = sweeps.groupby("setting", sort=True)[column].agg(lambda v: np.unique(np.log(v)))
        values = np.log(best[column].to_numpy(float))
        steps[name] = [_local_step(g, v) for g, v in zip(grids, values)]
    return best.assign(**steps)


def _local_step(grid: np.ndarray, value: float) -> float:
    """Mean gap between ``value`` and its neighbours on a sorted grid (0 for a single value)."""
    i = int(np.argmin(np.abs(grid - value)))
    gaps = np.diff(grid[max(i - 1, 0) : i + 2])
    return float(gaps.mean()) if gaps.size else 0.0


def near_optimal(sweeps: pd.DataFrame, threshold: float = 0.0025) -> pd.DataFrame:
    """The paper's plateau filter: runs within ``threshold`` relative loss of their setting's best.

    The comparison is strict (``rel_loss < threshold``), as in the upstream fitting code; the
    setting's best run always passes. A ``rel_loss`` column is added.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 (a relative loss, e.g. 0.0025); got {threshold}")
    rel = relative_loss(sweeps)
    out = sweeps.assign(rel_loss=rel)
    return out[rel.to_numpy() < threshold].reset_index(drop=True)
