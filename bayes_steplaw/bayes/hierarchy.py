"""Group structure of a fit: which offsets exist, how they nest or cross, and how names resolve.

The caller picks group columns, e.g. ``("family", "variant", "recipe")``. A column whose every
level sits inside exactly one level of the columns before it is *nested* (its levels are named
by their path, ``"moe/1in8"``); any other column is *crossed* (levels named by value, joined
to a group name with ``@``: ``"dense@code"``). A nested level that merely repeats its parent
(``variant == family`` for dense rows) gets no offset of its own.

Each column contributes one vector of offsets with its own population scale, so the offset of
a group is the sum of the offsets along its path plus those of its crossed levels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..datasets.sweeps import NEW, unqueryable


def check_group_values(frame: pd.DataFrame, columns) -> None:
    """ValueError naming the group values that could never be queried, and where they are."""
    problems = []
    for col in columns:
        bad = unqueryable(frame[col])
        if bad.any():
            values = sorted(set(frame.loc[bad, col].astype(str)))
            rows = ", ".join(map(str, frame.index[bad.to_numpy()][:10]))
            problems.append(f"column {col!r}: {values} (rows {rows})")
    if problems:
        raise ValueError(
            "group names that could never be queried: " + "; ".join(problems) + ". '/' and '@' "
            "join nested and crossed groups in a group name and 'new' stands for a never-seen "
            "group: rename these values (e.g. 'dense-moe', 'new-arch')"
        )


@dataclass(frozen=True)
class Level:
    """One group column of the hierarchy."""

    column: str
    kind: str  # "nested" or "crossed"
    labels: tuple[str, ...]
    parents: tuple[str, ...]  # path of each label's parent; "" at the top and for crossed


@dataclass(frozen=True)
class Hierarchy:
    """The offsets a fit estimates, and how group names map onto them."""

    levels: tuple[Level, ...]

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, columns: tuple[str, ...] | list[str]
    ) -> tuple[Hierarchy, np.ndarray]:
        """Build the hierarchy of ``columns`` and return it with each row's level indices.

        Returns
        -------
        hierarchy : Hierarchy
        index : ndarray of int, shape (n_rows, n_levels)
            Index of each row's level in every column, -1 where the row has no offset there
            (a missing value, or a nested value that repeats its parent).
        """
        columns = list(columns)
        missing = [c for c in columns if c not in frame]
        if missing:
            raise ValueError(
                f"group column(s) {missing} are not in the sweep table; it has {list(frame)}"
            )
        if not columns:
            return cls(()), np.zeros((len(frame), 0), dtype=int)
        check_group_values(frame, columns)
        levels: list[Level] = []
        index_columns: list[np.ndarray] = []
        parent_path: pd.Series | None = None  # path of the deepest nested level so far
        for j, col in enumerate(columns):
            values = frame[col].astype("string")
            present = values.notna().to_numpy() & (values.fillna("") != "").to_numpy()
            nested = parent_path is None or _nests(values[present], parent_path[present])
            if nested:
                if parent_path is None:
                    own, names = present, values
                else:
                    repeats = (values == frame[columns[j - 1]].astype("string")).fillna(False)
                    own = present & ~repeats.to_numpy()
                    names = parent_path + "/" + values
                labels = sorted(set(names[own]))
                lookup = {name: i for i, name in enumerate(labels)}
                idx = np.array([lookup.get(n, -1) if o else -1 for n, o in zip(names, own)])
                parent_of = {} if parent_path is None else dict(zip(names[own], parent_path[own]))
                parents = tuple(parent_of.get(lab, "") for lab in labels)
                # rows without an own level keep their parent's path
                parent_path = names if parent_path is None else names.where(own, parent_path)
                kind = "nested"
            else:
                labels = sorted(set(values[present]))
                lookup = {name: i for i, name in enumerate(labels)}
                idx = np.array([lookup[v] if p else -1 for v, p in zip(values, present)])
                parents = ("",) * len(labels)
                kind = "crossed"
            if labels:  # a column that never adds a level (variant == family) has no offsets
                levels.append(Level(col, kind, tuple(labels), parents))
                index_columns.append(idx)
        index = (
            np.column_stack(index_columns)
            if index_columns
            else np.zeros((len(frame), 0), dtype=int)
        )
        return cls(tuple(levels)), index

    # ------------------------------------------------------------------ naming

    @property
    def nested(self) -> list[int]:
        """Positions of the nested levels."""
        return [j for j, lev in enumerate(self.levels) if lev.kind == "nested"]

    @property
    def crossed(self) -> list[int]:
        """Positions of the crossed levels."""
        return [j for j, lev in enumerate(self.levels) if lev.kind == "crossed"]

    def group_names(self) -> list[str]:
        """Every name ``resolve`` accepts, besides ``"new"``."""
        names = [lab for j in self.nested for lab in self.levels[j].labels]
        for j in self.crossed:
            names += [f"@{lab}" for lab in self.levels[j].labels]
        return names

    def resolve(self, group: str) -> np.ndarray:
        """Level indices of a group name; -1 means 'no offset', -2 'a new level'.

        ``"moe/1in8"`` selects the ``moe`` family offset and the ``1in8`` variant offset;
        ``"moe"`` the family offset alone (the family's centre); ``"new"`` a never-seen level
        at the top; ``"moe/new"`` a never-seen variant of the MoE family; ``"dense@code"`` adds
        the crossed ``code`` level; ``"@new"`` a never-seen crossed level.
        """
        if not isinstance(group, str) or not group:
            raise ValueError(f"group must be a non-empty string; got {group!r}")
        out = np.full(len(self.levels), -1, dtype=int)
        path, *crossed = group.split("@")
        nested = self.nested
        if path:
            parts = path.split("/")
            if len(parts) > len(nested):
                raise KeyError(self._unknown(group))
            prefix = ""
            for depth, part in enumerate(parts):
                j = nested[depth]
                level = self.levels[j]
                if part == NEW:
                    out[j] = -2
                    if depth != len(parts) - 1:
                        raise KeyError(self._unknown(group))
                    break
                name = f"{prefix}/{part}" if prefix else part
                if name in level.labels:
                    out[j] = level.labels.index(name)
                elif depth and prefix == part:
                    pass  # "dense/dense": a level that repeats its parent has no offset
                else:
                    raise KeyError(self._unknown(group))
                prefix = name
        for value in crossed:
            placed = False
            for j in self.crossed:
                if value == NEW and out[j] == -1:
                    out[j] = -2
                    placed = True
                    break
                if value in self.levels[j].labels:
                    out[j] = self.levels[j].labels.index(value)
                    placed = True
                    break
            if not placed:
                raise KeyError(self._unknown(group))
        return out

    def _unknown(self, group: str) -> str:
        known = ", ".join(repr(n) for n in self.group_names())
        return (
            f"unknown group {group!r}; known groups: {known}; or 'new' for a never-seen "
            f"architecture (and 'FAMILY/new' for a never-seen variant of a known family)"
        )

    # ------------------------------------------------------------------ (de)serialise

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "levels": [
                {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(lev).items()}
                for lev in self.levels
            ]
        }

    @classmethod
    def from_dict(cls, spec: dict) -> Hierarchy:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(
                Level(lev["column"], lev["kind"], tuple(lev["labels"]), tuple(lev["parents"]))
                for lev in spec["levels"]
            )
        )


def _nests(child: pd.Series, parent: pd.Series) -> bool:
    """True when every child value occurs under exactly one parent value."""
    if child.empty:
        return True
    return bool((pd.DataFrame({"c": child, "p": parent}).groupby("c")["p"].nunique() <= 1).all())
