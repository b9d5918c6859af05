"""What several figures read from sweep tables and posteriors: groups, spans, thresholds.

No drawing here (that is :mod:`.style`); no matplotlib either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._validate import DEFAULT_TOL

if TYPE_CHECKING:
    from ..bayes.law import StepLawPosterior


def group_of_settings(frame: pd.DataFrame) -> pd.Series:
    """Group name of each row (the setting id up to `` N=``, e.g. ``"moe/1in8"``)."""
    return frame["setting"].astype(str).str.split(" N=", n=1).str[0]


def in_group(frame: pd.DataFrame, group: str) -> np.ndarray:
    """Rows of ``group`` or of one of its sub-groups (``"moe"`` holds ``"moe/1in8"``)."""
    names = group_of_settings(frame)
    return ((names == group) | names.str.startswith(group + "/")).to_numpy()


def resolvable(post: Any, group: str) -> str:
    """The longest prefix of ``group`` the posterior's hierarchy knows (``"moe/1in8"`` ->
    ``"moe"`` for a family-only fit); ``group`` itself for objects without a hierarchy."""
    if not hasattr(post, "hierarchy"):
        return group
    path, *crossed = group.split("@")
    parts = path.split("/")
    for k in range(len(parts), 0, -1):
        name = "/".join(parts[:k]) + "".join(f"@{c}" for c in crossed)
        try:
            post.hierarchy.resolve(name)
            return name
        except KeyError:
            continue
    raise KeyError(f"the posterior knows no group along {group!r}; it has {post.groups_seen}")


def threshold(post: StepLawPosterior | None, value: float | None) -> float:
    """The plateau filter: ``value``, else the posterior's, else the paper's 0.25%."""
    if value is not None:
        return float(value)
    if post is not None and "threshold" in post.metadata:
        return float(post.metadata["threshold"])
    return DEFAULT_TOL


def near_optimal(sweeps: pd.DataFrame, value: float) -> pd.DataFrame:
    """The runs within ``value`` of their setting's best loss."""
    from ..datasets.sweeps import near_optimal as select

    return select(sweeps, value)


def data_span(post: StepLawPosterior, name: str) -> tuple[float, float]:
    """The fitted data's range of ``"N"`` or ``"D"``."""
    lo, hi = post.metadata[f"{name}_range"]
    return float(lo), float(hi)


def inside_data(post: StepLawPosterior, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Which (N, D) points lie within the fitted data's N and D ranges."""
    (n_lo, n_hi), (d_lo, d_hi) = data_span(post, "N"), data_span(post, "D")
    return (N >= n_lo) & (N <= n_hi) & (D >= d_lo) & (D <= d_hi)


def geometric_mean(values: pd.Series) -> float:
    """exp(mean(ln v)): the centre of runs on a log grid (what the optimum law describes)."""
    return float(np.exp(np.log(values).mean()))
