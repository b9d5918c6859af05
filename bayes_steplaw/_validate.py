"""Argument checks shared by every entry point, and the package-wide defaults.

Each check returns the cleaned value or raises :class:`ValueError` naming the argument, what
was expected and what was given, so the API and the CLI report bad input the same way.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_TOL = 0.0025
"""Relative-loss tolerance of the plateau: the paper's 0.25% of a setting's best loss."""

DEFAULT_PROB = 0.9
"""Default mass of every credible / predictive interval."""

DEFAULT_SEQ_LEN = 2048
"""Sequence length of the released sweeps, used to express batches in sequences."""


def positive_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a float array whose entries are all finite and > 0."""
    try:
        raw = np.asarray(value)
        if raw.dtype == bool:  # True would read as 1.0: a flag is not a size
            raise TypeError(name)
        arr = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be positive and finite numbers; got {value!r}") from None
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        shown = arr[bad].ravel()[:5].tolist()
        count = f"{int(bad.sum())} of {arr.size} values are not, e.g. " if arr.ndim else ""
        raise ValueError(f"{name} must be positive and finite; {count}got {shown}")
    return arr


def scalar(value: Any, name: str) -> float:
    """A single positive finite number."""
    arr = positive_array(value, name)
    if arr.size != 1:
        raise ValueError(f"{name} must be a single number here; got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def broadcast(named: dict[str, Any]) -> tuple[tuple[np.ndarray, ...], tuple[int, ...]]:
    """Check positive arrays and broadcast them together.

    Returns the broadcast arrays (in the order given) and their common shape.
    """
    arrays = [positive_array(v, k) for k, v in named.items()]
    try:
        out = np.broadcast_arrays(*arrays)
    except ValueError:
        shapes = ", ".join(f"{k} {a.shape}" for k, a in zip(named, arrays))
        raise ValueError(
            f"{', '.join(named)} cannot be broadcast together; shapes {shapes}"
        ) from None
    return tuple(out), out[0].shape if out else ()


def check_prob(prob: Any, name: str = "prob") -> float:
    """A probability strictly between 0 and 1."""
    if isinstance(prob, bool) or not isinstance(prob, numbers.Real):
        raise ValueError(f"{name} must be between 0 and 1; got {prob!r}")
    p = float(prob)
    if not 0 < p < 1:
        raise ValueError(f"{name} must be between 0 and 1 (exclusive); got {prob!r}")
    return p


def check_tol(tol: Any) -> float:
    """A positive relative-loss tolerance below 1."""
    if (
        isinstance(tol, bool)
        or not isinstance(tol, numbers.Real)
        or not math.isfinite(tol)
        or not 0 < tol < 1
    ):
        raise ValueError(
            f"tol must be a positive relative loss below 1 (e.g. {DEFAULT_TOL}); got {tol!r}"
        )
    return float(tol)


def check_seq_len(value: Any) -> int:
    """A positive integral sequence length."""
    if isinstance(value, bool):
        raise ValueError(f"seq_len must be a positive integer; got {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    else:
        try:
            num = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"seq_len must be a positive integer; got {value!r}") from None
        if not math.isfinite(num) or num != math.floor(num):
            raise ValueError(f"seq_len must be a positive integer; got {value!r}")
        out = int(num)
    if out <= 0:
        raise ValueError(f"seq_len must be a positive integer; got {value!r}")
    return out


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")
    return value


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (sampler sizes, grid sizes)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}; got {value!r}")
    return int(value)


def legacy_positional(
    func: str, args: tuple, given: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """Resolve keyword arguments that an old signature took by position.

    ``given`` holds the keyword values the caller passed (None when not passed), in the order
    the old signature took them by position; ``args`` are the positional values after the
    ones that stay positional. Positional use still works for one release, with a
    FutureWarning; a name given both ways is an error. Returns every name's value, the
    default where neither was given.
    """
    names = list(given)
    if len(args) > len(names):
        raise TypeError(f"{func}() takes at most {len(names)} extra positional arguments")
    mapped = dict(zip(names, args))
    twice = sorted(k for k in mapped if given[k] is not None)
    if twice:
        raise TypeError(f"{func}() got multiple values for {twice}")
    if mapped:
        warnings.warn(
            f"passing {', '.join(mapped)} to {func}() by position is deprecated and will stop "
            f"working in the next release; pass {', '.join(f'{k}=' for k in mapped)} by keyword",
            FutureWarning,
            stacklevel=3,
        )
    values = {**given, **mapped}
    return {k: defaults.get(k) if v is None else v for k, v in values.items()}


def renamed(func: str, old: str, new: str, value: Any) -> Any:
    """Warn that argument ``old`` of ``func`` is now ``new``; return the value."""
    warnings.warn(
        f"{func}(): argument {old!r} is now {new!r}; the old name stops working in the next "
        "release",
        FutureWarning,
        stacklevel=3,
    )
    return value
