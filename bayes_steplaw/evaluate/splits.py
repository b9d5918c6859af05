"""Held-out splits of a sweep table: which settings train a fold and which it tests.

A *setting* (one ``setting`` id: one (N, D) of one group) is the unit held out. Three splits:

``loso``
    leave one setting out: one fold per setting; the held-out setting is predicted as its own
    group (``"dense"``, ``"moe/1in8"``), whose other settings stay in training.
``logo``
    leave one group out: one fold per level of a group column (by default the deepest group
    column that has levels of its own: each MoE variant of the released data, while dense,
    which has no variant of its own, stays in every training set). The held-out settings are
    predicted as a never-seen level of that column: ``"<parent>/new"`` (``"moe/new"``) or
    ``"new"`` at the top; a crossed column (``recipe``) as ``"...@new"``. A column that is not
    a group of the model can be held out too; its settings are then predicted as their own
    group, which the model never distinguished from the rest.
``extrapolate``
    what a scaling law is for: within each family (``by``), the settings whose compute
    ``6·N·D`` is at most the family's ``quantile`` (default 0.75, numpy's linear
    interpolation over the family's settings) train, the rest are tested; one fold.
``transfer``
    few-shot transfer to a group: for each group ``logo`` holds out and each ``k`` (default
    0, 1, 2, 4), the group's ``k`` smallest settings by compute (ties by setting id) join
    the training data and its other settings are tested, predicted as that group (``k >=
    1``) or as a never-seen one as under ``logo`` (``k = 0``). A group with ``k`` settings or
    fewer has no fold at that ``k``. Each fold carries its ``k``.

The groups ``logo`` and ``transfer`` hold out: each level of ``column`` (by default the deepest
group column with levels: each MoE variant of the released data) and, with the default column,
each top-level family of a table pooled with the released data (``user:<name>``,
:mod:`bayes_steplaw.transfer`: another lab's group) that has no level of its own there.

Everything here is pandas and numpy: folds are plain data, cheap to send to worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from .._validate import check_choice
from ..bayes.design import DEFAULT_GROUPS, check_sweeps
from ..bayes.hierarchy import NEW, Hierarchy

SPLITS = ("loso", "logo", "extrapolate", "transfer")
"""The held-out splits :func:`make_folds` knows."""

DEFAULT_QUANTILE = 0.75
"""Compute quantile of the training settings under ``extrapolate``."""

DEFAULT_K = (0, 1, 2, 4)
"""Settings of the held-out group that train a ``transfer`` fold (its smallest by compute)."""


@dataclass(frozen=True)
class Fold:
    """One held-out fold.

    Attributes
    ----------
    split : str
        ``"loso"``, ``"logo"``, ``"extrapolate"`` or ``"transfer"``.
    name : str
        The fold's id: the held-out setting (``loso``), the held-out group (``logo``), a
        description of the held-out compute range (``extrapolate``), or the group and ``k``
        (``transfer``: ``"moe/1in8 k=2"``).
    train, test : tuple of str
        Setting ids that train the fold and those it tests (disjoint).
    groups : mapping
        For each test setting, the group name a method that knows groups predicts it as.
    k : int or None
        ``transfer``: how many of the held-out group's settings train (None otherwise).
    """

    split: str
    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    groups: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    k: int | None = None

    def __post_init__(self):
        overlap = set(self.train) & set(self.test)
        if overlap:
            raise ValueError(f"fold {self.name!r}: settings both trained and tested: {overlap}")
        if not self.train:
            raise ValueError(f"fold {self.name!r} of split {self.split!r} has no training setting")
        if not self.test:
            raise ValueError(f"fold {self.name!r} of split {self.split!r} has no test setting")
        missing = [s for s in self.test if s not in self.groups]
        if missing:
            raise ValueError(f"fold {self.name!r}: no prediction group for {missing}")
        object.__setattr__(self, "groups", MappingProxyType(dict(self.groups)))

    def __reduce__(self):  # MappingProxyType does not pickle; folds travel to workers
        return (Fold, (self.split, self.name, self.train, self.test, dict(self.groups), self.k))


# --------------------------------------------------------------------------- settings


def setting_table(sweeps: pd.DataFrame, groups: Sequence[str] = DEFAULT_GROUPS) -> pd.DataFrame:
    """One row per setting: what a method may know about a held-out setting, and its best run.

    Parameters
    ----------
    sweeps : DataFrame
        A sweep table in the package schema.
    groups : sequence of str
        Group columns of the models, outermost first.

    Returns
    -------
    DataFrame
        Indexed by ``setting`` (sorted), columns ``N, D, compute`` (6·N·D), ``seq_len``,
        ``group`` (the group name the models resolve the setting to), the group columns,
        ``n_runs``, ``best_lr``, ``best_batch_tokens`` and ``best_loss`` (of the run with the
        lowest loss).
    """
    sweeps = check_sweeps(sweeps)
    groups = list(groups)
    best = sweeps.loc[sweeps.groupby("setting")["loss"].idxmin()].set_index("setting")
    best = best.sort_index()
    out = pd.DataFrame(index=best.index)
    out["N"] = best["N"].astype(float)
    out["D"] = best["D"].astype(float)
    out["compute"] = 6.0 * out["N"] * out["D"]
    out["seq_len"] = best["seq_len"] if "seq_len" in best else 2048
    for col in dict.fromkeys(["family", *groups]):
        if col in best:
            out[col] = best[col]
    names, _, _ = group_names(best.reset_index(), groups)
    out["group"] = names
    out["n_runs"] = sweeps.groupby("setting").size().reindex(out.index)
    out["best_lr"] = best["lr"].astype(float)
    out["best_batch_tokens"] = best["batch_tokens"].astype(float)
    out["best_loss"] = best["loss"].astype(float)
    return out


def group_names(
    frame: pd.DataFrame, groups: Sequence[str]
) -> tuple[list[str], Hierarchy, np.ndarray]:
    """The group name of each row as a fitted model resolves it, with the hierarchy.

    The name is the path of the deepest nested level the row has (``"moe/1in8"``; labels of
    nested levels are paths already) followed by ``"@value"`` for each crossed level.
    """
    hierarchy, index = Hierarchy.from_frame(frame, list(groups))
    names = []
    fallback = frame[groups[0]].astype(str).tolist() if groups else ["dense"] * len(frame)
    for i in range(len(frame)):
        names.append(_name(hierarchy, index[i], fallback[i]))
    return names, hierarchy, index


def _name(hierarchy: Hierarchy, row: np.ndarray, fallback: str, new_at: int | None = None) -> str:
    """Group name of one row's level indices; ``new_at`` replaces that level by a new one."""
    path = ""
    crossed = []
    for j, lev in enumerate(hierarchy.levels):
        k = row[j]
        if lev.kind == "nested":
            if new_at is not None and j > new_at and path.endswith(NEW):
                continue  # below a new level nothing is known
            if j == new_at:
                parent = lev.parents[k] if k >= 0 else path
                path = f"{parent}/{NEW}" if parent else NEW
            elif k >= 0:
                path = lev.labels[k]
        elif j == new_at:
            crossed.append(f"@{NEW}")
        elif k >= 0:
            crossed.append(f"@{lev.labels[k]}")
    return (path or fallback) + "".join(crossed)


# --------------------------------------------------------------------------- the splits


def loso_folds(settings: pd.DataFrame) -> list[Fold]:
    """One fold per setting of a :func:`setting_table`; the held-out one keeps its group."""
    ids = list(settings.index)
    return [
        Fold("loso", s, tuple(x for x in ids if x != s), (s,), {s: settings.at[s, "group"]})
        for s in ids
    ]


def held_out_groups(
    sweeps: pd.DataFrame, groups: Sequence[str] = DEFAULT_GROUPS, column: str | None = None
) -> list[tuple[str, tuple[str, ...], dict[str, str]]]:
    """The groups ``logo`` and ``transfer`` hold out, one at a time (module docstring).

    Returns
    -------
    list of (label, settings, as_new)
        The group's label, its setting ids, and for each the group name it is predicted as
        when the group is never seen (``"moe/new"``, ``"new"``; its own group for a column
        the models do not know as a group).
    """
    from ..transfer import USER_PREFIX

    settings = setting_table(sweeps, groups)
    frame = settings.reset_index()
    names, hierarchy, index = group_names(frame, list(groups))
    columns = [lev.column for lev in hierarchy.levels]
    default = column is None
    if column is None:
        if not columns:
            raise ValueError(
                "splits 'logo' and 'transfer' need a group column with at least one level; the "
                f"groups {list(groups)} have none in these data"
            )
        column = columns[-1]
    ids = list(settings.index)
    units = []
    if column in columns:
        j = columns.index(column)
        lev = hierarchy.levels[j]
        for k, label in enumerate(lev.labels):
            rows = np.flatnonzero(index[:, j] == k)
            as_new = {ids[r]: _name(hierarchy, index[r], names[r], new_at=j) for r in rows}
            units.append((label, tuple(ids[r] for r in rows), as_new))
        if default and j > 0 and columns[0] in frame:
            # another lab's family (pooled with the released data) with no level of its own
            top = hierarchy.levels[0]
            for k, label in enumerate(top.labels):
                rows = np.flatnonzero((index[:, 0] == k) & (index[:, j] < 0))
                if not str(label).startswith(USER_PREFIX) or not len(rows):
                    continue
                as_new = {ids[r]: _name(hierarchy, index[r], names[r], new_at=0) for r in rows}
                units.append((label, tuple(ids[r] for r in rows), as_new))
        return units
    if column not in sweeps:
        raise ValueError(
            f"held-out group column {column!r} is not in the sweep table; group columns with "
            f"levels here: {columns}"
        )
    values = sweeps.drop_duplicates("setting").set_index("setting")[column].reindex(ids)
    for value in sorted(values.dropna().astype(str).unique()):
        test = tuple(s for s in ids if str(values[s]) == value and pd.notna(values[s]))
        own = {s: settings.at[s, "group"] for s in test}
        units.append((f"{column}={value}", test, own))
    return units


def logo_folds(
    sweeps: pd.DataFrame, groups: Sequence[str] = DEFAULT_GROUPS, column: str | None = None
) -> list[Fold]:
    """One fold per held-out group (:func:`held_out_groups`; default: each level of the
    deepest group column with levels).

    The held-out settings are predicted as a new level of that column (module docstring).
    Settings with no level of their own in the column (dense under ``variant``) are never
    held out.
    """
    ids = list(setting_table(sweeps, groups).index)
    folds = []
    for label, test, as_new in held_out_groups(sweeps, groups, column):
        train = tuple(s for s in ids if s not in as_new)
        folds.append(Fold("logo", label, train, test, as_new))
    return folds


def check_k(k) -> tuple[int, ...]:
    """``transfer``'s numbers of training settings: distinct integers >= 0, sorted."""
    values = [k] if isinstance(k, (int, np.integer)) and not isinstance(k, bool) else k
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"k must be integers >= 0 (e.g. 0, 1, 2, 4); got {k!r}") from None
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"k must be integers >= 0 (e.g. 0, 1, 2, 4); got {v!r}")
    if not values:
        raise ValueError("k must name at least one number of training settings (e.g. 0, 1, 2, 4)")
    return tuple(sorted({int(v) for v in values}))


def transfer_folds(
    sweeps: pd.DataFrame,
    groups: Sequence[str] = DEFAULT_GROUPS,
    column: str | None = None,
    k: Sequence[int] = DEFAULT_K,
) -> list[Fold]:
    """For each held-out group (:func:`held_out_groups`) and each ``k``: the group's ``k``
    smallest settings by compute 6·N·D (ties by setting id) train with every other group, its
    other settings are tested (as its own group for ``k >= 1``, as a never-seen one for ``k =
    0``). A group with ``k`` settings or fewer has no fold at that ``k``."""
    ks = check_k(k)
    settings = setting_table(sweeps, groups)
    ids = list(settings.index)
    units = held_out_groups(sweeps, groups, column)
    folds = []
    for kk in ks:
        for label, members, as_new in units:
            order = sorted(members, key=lambda s: (settings.at[s, "compute"], s))
            if len(order) <= kk:
                continue
            shots, test = order[:kk], tuple(order[kk:])
            train = tuple(s for s in ids if s not in as_new or s in shots)
            named = {s: (as_new[s] if kk == 0 else settings.at[s, "group"]) for s in test}
            folds.append(Fold("transfer", f"{label} k={kk}", train, test, named, k=kk))
    if not folds:
        sizes = ", ".join(f"{label} ({len(m)})" for label, m, _ in units)
        raise ValueError(
            f"transfer with k={list(ks)} leaves no setting to test: every held-out group has "
            f"at most {max(ks)} settings ({sizes})"
        )
    return folds


def extrapolate_folds(
    settings: pd.DataFrame, quantile: float = DEFAULT_QUANTILE, by: str | None = "family"
) -> list[Fold]:
    """Train on each family's smallest-compute settings (up to ``quantile``), test on the rest.

    Ties at the boundary train. A family with a single setting only trains.
    """
    if not (isinstance(quantile, (int, float)) and math.isfinite(quantile) and 0 < quantile < 1):
        raise ValueError(f"quantile must be between 0 and 1 (exclusive); got {quantile!r}")
    if by is not None and by not in settings:
        raise ValueError(f"extrapolate groups by {by!r}, which the sweep table lacks")
    keys = settings[by] if by is not None else pd.Series("all", index=settings.index)
    cut = settings.groupby(keys)["compute"].transform(lambda c: np.quantile(c.to_numpy(), quantile))
    # compare in log space with a relative margin: 6·N·D of equal settings is bit-identical,
    # and the quantile of equal values is that value
    train_mask = settings["compute"] <= cut * (1 + 1e-12)
    train = tuple(settings.index[train_mask])
    test = tuple(settings.index[~train_mask])
    name = f"compute above the {quantile:g} quantile" + (f" per {by}" if by else "")
    if not test:
        raise ValueError(f"extrapolate at quantile {quantile:g} leaves no setting to test")
    return [Fold("extrapolate", name, train, test, {s: settings.at[s, "group"] for s in test})]


def make_folds(
    sweeps: pd.DataFrame,
    split: str = "loso",
    *,
    groups: Sequence[str] = DEFAULT_GROUPS,
    column: str | None = None,
    quantile: float = DEFAULT_QUANTILE,
    by: str | None = "family",
    k: Sequence[int] = DEFAULT_K,
) -> list[Fold]:
    """The folds of a held-out split of a sweep table.

    Parameters
    ----------
    sweeps : DataFrame
        A sweep table in the package schema (:func:`~bayes_steplaw.load_sweeps`,
        :func:`~bayes_steplaw.read_sweeps`).
    split : {"loso", "logo", "extrapolate", "transfer"}
        The split (module docstring).
    groups : sequence of str
        Group columns of the models, outermost first (name the held-out settings' groups).
    column : str, optional
        ``logo`` and ``transfer``: the column whose levels are held out one at a time.
    quantile : float
        ``extrapolate`` only: the compute quantile up to which settings train.
    by : str or None
        ``extrapolate`` only: the column within whose levels the quantile is taken
        (``None``: over all settings).
    k : sequence of int
        ``transfer`` only: how many of the held-out group's smallest settings train.

    Returns
    -------
    list of Fold
    """
    split = check_choice(split, "split", SPLITS)
    if split == "logo":
        return logo_folds(sweeps, groups, column)
    if split == "transfer":
        return transfer_folds(sweeps, groups, column, k)
    settings = setting_table(sweeps, groups)
    if len(settings) < 2:
        raise ValueError(
            f"a held-out split needs at least 2 settings; the table has {len(settings)}"
        )
    if split == "loso":
        return loso_folds(settings)
    return extrapolate_folds(settings, quantile, by)
