"""Your sweep beside the released data: what a sweep can identify, and pooling the two.

The Step Law's exponents (α, β of the lr law, γ of the batch law) are shared by every group of
one lab's setup; each group adds an offset, and another lab's exponents deviate from them by a
partially pooled amount (``LossModel(exponents_vary_by="lab")``, the default). A sweep of a new
architecture that is too small to pin down the exponents on its own (one model size, a handful
of settings) can borrow them from the released dense and MoE sweeps: :func:`pool_with_released`
puts both in one table, so that one fit learns the exponents from everything and the new
architecture's offsets from its own runs.

Naming: your groups become new top-level families named ``user:<value>`` (``user:llama``,
``user:llama/small`` with a second group column). The prefix cannot collide with a released
group (``dense``, ``moe``, ``moe/1in8``, ...), it uses neither of the hierarchy's separators
(``/`` nests, ``@`` crosses), and it keeps a value that happens to be the reserved ``new``
addressable (``user:new``). Each of your groups is a family of its own, a peer of ``dense``
and ``moe``: nothing assumes that two of your architectures resemble each other more than they
resemble the released ones.

:func:`identifiability_problems` says, before any sampling, what a table cannot tell apart;
:func:`batch_unit_warnings` flags batch sizes that are implausible for their unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bayes.design import check_sweeps
from .bayes.hierarchy import NEW
from .datasets.sweeps import setting_ids

USER_PREFIX = "user:"
"""Prefix of your groups in a table pooled with the released data."""
RELEASED_LAB, USER_LAB = "step-law", "user"
"""The ``lab`` of the released runs and, unless your table names its own, of yours."""


class UnidentifiableSweepError(ValueError):
    """A sweep table cannot identify the law's exponents; ``problems`` says what is missing."""

    def __init__(self, problems: list[str], hint: str = ""):
        self.problems = list(problems)
        text = "; ".join(self.problems)
        super().__init__(f"the sweep cannot identify the Step Law: {text}{hint}")


# --------------------------------------------------------------------------- input checks


def _settings(sweeps: pd.DataFrame) -> pd.DataFrame:
    return sweeps.drop_duplicates("setting")


def _distinct(values: np.ndarray) -> np.ndarray:
    # 4 significant digits, as setting ids do: D computed as iterations x batch x seq_len varies
    # in its last digits within one token budget
    return np.unique(np.round(np.log(values), 4))


def identifiability_problems(
    sweeps: pd.DataFrame, *, batch_depends_on_N: bool = False
) -> list[str]:
    """What a sweep table's settings cannot identify; an empty list when nothing is missing.

    The exponents are shared by every group, so it is the table's settings as a whole that
    must vary: at least two distinct N (for α), two distinct D (for β and γ), and ln N and ln D
    not locked together (a sweep with one tokens-per-parameter ratio cannot tell α from β).

    Parameters
    ----------
    sweeps : DataFrame
        A sweep table in the package schema (``N``, ``D`` and ``setting`` columns).
    batch_depends_on_N : bool
        Whether the batch law has an N term too (it then needs the same variation as α).

    Returns
    -------
    list of str
        One sentence per problem, naming the values seen.
    """
    settings = _settings(sweeps)
    n = settings["N"].to_numpy(float)
    d = settings["D"].to_numpy(float)
    if len(settings) == 1:
        return [
            f"it has one setting (N={n[0]:.4g}, D={d[0]:.4g}); locating one optimum is possible, "
            f"but the exponents need settings at several N and several D"
        ]
    problems = []
    ns, ds = _distinct(n), _distinct(d)
    if len(ns) == 1:
        what = "α (and the batch law's N term)" if batch_depends_on_N else "α"
        problems.append(
            f"every setting has the same N ({n[0]:.4g}), so the exponent {what} of N is not "
            f"identified"
        )
    if len(ds) == 1:
        problems.append(
            f"every setting has the same D ({d[0]:.4g}), so the exponents β and γ of D are not "
            f"identified"
        )
    if not problems:
        design = np.column_stack([np.ones(len(n)), np.log(n), np.log(d)])
        design -= np.r_[0.0, design[:, 1:].mean(axis=0)]
        singular = np.linalg.svd(design / np.abs(design).max(axis=0), compute_uv=False)
        if singular[-1] < 1e-6 * singular[0]:
            slope = np.polyfit(np.log(n), np.log(d), 1)[0]
            problems.append(
                f"ln D is a linear function of ln N in every setting (D ∝ N^{slope:.3g}, e.g. "
                f"one tokens-per-parameter ratio), so the exponents α of N and β of D cannot be "
                f"told apart"
            )
    return problems


def between_group_warnings(sweeps: pd.DataFrame, groups: tuple[str, ...] | list[str]) -> list[str]:
    """N or D that vary only between groups: the exponent then rests on the offsets' prior.

    With ``dense`` at one N and ``moe`` at another, the difference of their optima is an N
    effect or a group effect, and only the prior on the group offsets tells them apart.
    """
    groups = [g for g in groups if g in sweeps]
    if not groups:
        return []
    settings = _settings(sweeps)
    path = settings[groups].astype("string").fillna("").agg("/".join, axis=1)
    out = []
    for col, name in (("N", "α"), ("D", "β and γ")):
        overall = len(_distinct(settings[col].to_numpy(float)))
        within = settings.groupby(path.to_numpy())[col].apply(
            lambda v: len(_distinct(v.to_numpy(float)))
        )
        if overall > 1 and within.max() == 1:
            out.append(
                f"{col} varies only between groups ({', '.join(map(str, within.index))}), never "
                f"within one: the exponent {name} is told apart from the group offsets by their "
                f"prior alone; add settings at another {col} in one group, or pool with the "
                f"released data"
            )
    return out


# --------------------------------------------------------------------------- pooling


def _user_labels(
    sweeps: pd.DataFrame, groups: tuple[str, ...] | list[str], prefix: str
) -> tuple[pd.Series, pd.Series]:
    """Family and variant labels of your rows in the pooled table (namespaced)."""
    groups = list(groups)
    if not 1 <= len(groups) <= 2:
        raise ValueError(
            f"pooling with the released data maps your group columns onto its family and "
            f"variant: give one or two group columns (outermost first); got {groups}"
        )
    missing = [g for g in groups if g not in sweeps]
    if missing:
        raise ValueError(
            f"group column(s) {missing} are not in your sweep table; it has {list(sweeps)}"
        )
    values = [sweeps[g].astype("string").str.strip() for g in groups]
    for col, vals in zip(groups, values):
        empty = (vals.isna() | (vals == "")).to_numpy()
        if col == groups[0] and empty.any():
            raise ValueError(
                f"group column {col!r} has empty values in rows "
                f"{np.flatnonzero(empty)[:10].tolist()}: every run needs a group"
            )
        bad = vals.fillna("").str.contains(r"[/@]").to_numpy()
        if bad.any():
            shown = sorted(set(vals[bad]))[:5]
            raise ValueError(
                f"group column {col!r} holds names with '/' or '@' (rows "
                f"{np.flatnonzero(bad)[:10].tolist()}: {shown}); these characters separate "
                f"nested ('/') and crossed ('@') groups, rename those values"
            )
    family = prefix + values[0]
    variant = family.copy()
    if len(groups) == 2:
        own = values[1].notna() & (values[1] != "") & (values[1] != values[0])
        variant = variant.where(~own, values[1])
    return family, variant


def user_group_names(
    sweeps: pd.DataFrame, groups: tuple[str, ...] | list[str] = ("family", "variant"), *,
    prefix: str = USER_PREFIX,
) -> dict[str, str]:  # fmt: skip
    """Your group names (values joined by ``/``) and what they are called once pooled."""
    family, variant = _user_labels(sweeps, groups, prefix)
    groups = list(groups)
    raw = sweeps[groups[0]].astype("string").str.strip()
    if len(groups) == 2:
        second = sweeps[groups[1]].astype("string").str.strip()
        own = (second.fillna("") != "") & (second != raw)
        raw = raw.where(~own, raw + "/" + second)
    pooled = family.where(variant == family, family + "/" + variant)
    return dict(sorted(zip(raw, pooled)))


def pool_with_released(
    sweeps: pd.DataFrame,
    groups: tuple[str, ...] | list[str] = ("family", "variant"),
    *,
    released: pd.DataFrame | None = None,
    prefix: str = USER_PREFIX,
) -> pd.DataFrame:
    """Your sweep and the released dense + MoE sweeps in one table, your groups namespaced.

    Parameters
    ----------
    sweeps : DataFrame
        Your sweep table in the package schema (:func:`bayes_steplaw.read_sweeps`).
    groups : sequence of one or two str
        Your group columns, outermost first. The first becomes the pooled table's ``family``
        (as ``prefix + value``), the second (optional) its ``variant``. Default: your table's
        ``family`` and ``variant`` (``read_sweeps`` fills ``family="dense"`` when the table has
        none, so such a table becomes ``user:dense``).
    released : DataFrame, optional
        The released table to pool with; default :func:`bayes_steplaw.load_sweeps` ``("all")``
        (hold-out studies pass a subset).
    prefix : str
        Namespace of your groups (default :data:`USER_PREFIX`).

    Returns
    -------
    DataFrame
        Released rows first, then yours, with ``family``, ``variant`` and ``setting``
        rewritten for yours, a ``source`` column (``"released"`` or ``"user"``) and a ``lab``
        column (``"step-law"``; yours ``"user"`` unless your table has a ``lab`` column); fit
        it with ``groups=("family", "variant")``.
    """
    if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "/@"):
        raise ValueError(f"prefix must be a non-empty string without '/' or '@'; got {prefix!r}")
    if prefix == NEW:
        raise ValueError(f"prefix {prefix!r} is the reserved name of a never-seen group")
    if released is None:
        from .datasets.sweeps import load_sweeps

        released = load_sweeps("all")
    check_sweeps(sweeps)  # a column missing from yours would be NaN in the pooled table
    family, variant = _user_labels(sweeps, groups, prefix)
    taken = set(released["family"].astype("string")) & set(family)
    if taken:
        raise ValueError(f"your groups {sorted(taken)} collide with released families")
    mine = sweeps.copy()
    mine["family"] = family.to_numpy()
    mine["variant"] = variant.to_numpy()
    mine["recipe"] = mine["recipe"].astype("string") if "recipe" in mine else pd.NA
    mine["source"] = "user"
    # your runs come from your lab's setup: its exponents may differ from the Step Law's
    # (LossModel(exponents_vary_by="lab")); a lab column of your own names your labs
    mine["lab"] = mine["lab"].astype("string").fillna(USER_LAB) if "lab" in mine else USER_LAB
    theirs = released.assign(source="released", lab=RELEASED_LAB)
    pooled = pd.concat([theirs, mine], ignore_index=True)
    for col in ("family", "variant", "recipe", "source", "lab"):
        pooled[col] = pooled[col].astype("string")
    pooled["setting"] = setting_ids(pooled)
    return pooled
