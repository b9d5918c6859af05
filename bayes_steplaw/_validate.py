"""Argument checks shared by every entry point, and the package-wide defaults.

Each check returns the cleaned value or raises :class:`ValueError` naming the argument, what
was expected and what was given, so the API and the CLI report bad input the same way.

Quantities are read by one rule everywhere (the Python API, the CLI, grid files):
:func:`parse_quantity`. :func:`check_plausible` warns (:class:`UnitSlipWarning`) about values
that are legal numbers but likely typed in the wrong unit; the CLI refuses them unless told
``--allow-implausible``.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
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

MAX_BROADCAST = 10_000_000
"""Most points one call answers once its inputs are broadcast together."""

PREVIEW_CHARS = 60
"""Characters of a quoted value shown in a message (the rest is counted, not printed)."""


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, with the length of what was cut.

    A message that quotes a bad value stays one short line however large the value (a 300 MB
    cell of a CSV file)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    head = repr(text[:limit]) if isinstance(value, str) else text[:limit]
    return f"{head}... ({len(text):,} characters)"


# --------------------------------------------------------------------------- quantities

SUFFIXES = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
"""Decimal suffixes of a quantity (case-insensitive): ``7B`` = 7e9, ``1.4T`` = 1.4e12."""

BINARY_SUFFIXES = {"K": 2.0**10, "M": 2.0**20, "G": 2.0**30, "T": 2.0**40}
"""Binary suffixes, written with an ``i`` (``Ki``, ``Mi``, ``Gi``, ``Ti``): ``4Mi`` = 4,194,304."""

_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
QUANTITY = re.compile(rf"^\s*{_NUMBER}\s*([KMBGT]?)\s*$", re.I)
"""A number with an optional decimal suffix (the grammar the planner page shares)."""
BINARY_QUANTITY = re.compile(rf"^\s*{_NUMBER}\s*([KMGT])i\s*$", re.I)
"""A number with a binary suffix: ``4Mi``, ``1.5Ki``."""
_THOUSANDS = re.compile(r"^\s*[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?\s*(?:[KMBGT]i?)?\s*$", re.I)
_BARE_INTEGER = re.compile(r"^\s*[0-9]+\s*$")
_WITH_UNIT = re.compile(r"^\s*[0-9]+(?:[eE][+-]?[0-9]+\s*(?:[KMBGT]i?)?|\s*[KMBGT]i?)\s*$", re.I)

MAX_QUANTITY_CHARS = 100
"""Longest text read as a quantity: a longer one is refused before any pattern is matched
(the grammar's ``[0-9]*\\.?[0-9]+`` backtracks quadratically on a long run of digits)."""

EXAMPLES = {
    "N": "7e9 or 7B",
    "D": "1.4e12 or 1.4T",
    "--lr": "3e-4",
    "--batch-tokens": "4M or 4194304",
    "lr": "3e-4",
    "batch_tokens": "4M or 4194304",
    "--batch-sequences": "512 or 2Ki",
    "batch_sequences": "512 or 2Ki",
}
"""Example values of each quantity (by its CLI or Python name), for its error message."""


def _match(text: str) -> float | None:
    """The value of ``text`` under the quantity grammar, or None when it does not match."""
    match = QUANTITY.match(text)
    if match:
        return float(match.group(1)) * SUFFIXES[match.group(2).upper()]
    match = BINARY_QUANTITY.match(text)
    if match:
        return float(match.group(1)) * BINARY_SUFFIXES[match.group(2).upper()]
    return None


def _comma_hint(text: str) -> str:
    """Why a comma in one quantity is wrong, with the likely meant spelling ('' if none)."""
    if "," not in text or len(text) > MAX_QUANTITY_CHARS:
        return ""
    if _THOUSANDS.match(text):
        return f" (write it without thousands separators: {text.strip().replace(',', '')})"
    fixed = text.strip().replace(",", ".", 1)
    if "," not in fixed and _match(fixed) is not None:
        return f" (a comma is not a decimal point: use a decimal point, {fixed})"
    return " (a comma is not part of a number)"


def parse_quantity(text: Any, name: str, example: str | None = None) -> float:
    """Parse ``7e9``, ``7B``, ``1.4T``, ``350M``, ``4Mi``, ``3e-4`` into a positive finite float.

    The suffixes (case-insensitive) are decimal, ``K`` = 1e3, ``M`` = 1e6, ``B`` or ``G`` =
    1e9, ``T`` = 1e12, or binary with an ``i``: ``Ki`` = 2^10, ``Mi`` = 2^20, ``Gi`` = 2^30,
    ``Ti`` = 2^40 (so ``4Mi`` tokens = 4,194,304 and ``4M`` = 4,000,000). A decimal comma
    (``1,4T``) is an error that says to use a decimal point; lists of values are split by
    :func:`split_quantities`, never here.

    Parameters
    ----------
    text : str
        The quantity as typed.
    name : str
        How the quantity is called in messages (``N``, ``--lr``, ``batch_tokens``).
    example : str, optional
        Example values for the message (default: by ``name`` from :data:`EXAMPLES`).

    Raises
    ------
    ValueError
        Naming ``name``, the example and a short preview of ``text``.
    """
    example = example or EXAMPLES.get(name, "7e9, 7B or 1.4T")
    text = str(text)
    if len(text) > MAX_QUANTITY_CHARS:  # no number is this long; and no regex sees it
        raise ValueError(f"{name} must be a positive number such as {example}; got {preview(text)}")
    value = _match(text)
    if value is None:
        raise ValueError(
            f"{name} must be a positive number such as {example}; got {preview(text)}"
            + _comma_hint(text)
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {preview(text)}")
    return value


def split_quantities(text: Any, name: str, example: str | None = None) -> list[float]:
    """One quantity, or several separated by commas (``1B,7B``), each by :func:`parse_quantity`.

    A comma that more likely is a decimal comma is an error naming it, not two values:
    ``1,4T`` (a bare integer followed by a value with a suffix or an exponent, which read as
    one number with a decimal point) and a list with a part that is no quantity (``3,0e-4``,
    ``1,000,000``: the message says to use a decimal point, or no thousands separators); so
    is an empty part (``1B,``).
    """
    text = str(text)
    parts = text.split(",")
    if len(parts) == 1:
        return [parse_quantity(text, name, example)]
    shown = preview(text)
    values = []
    for i, part in enumerate(parts, 1):
        if not part.strip():
            raise ValueError(f"{name} {shown}: value {i} of the comma-separated list is empty")
        try:
            values.append(parse_quantity(part, name, example))
        except ValueError as exc:
            if _THOUSANDS.match(text) or len(parts) == 2:
                hint = _comma_hint(text)
                if "separators" in hint or "decimal point" in hint:
                    raise ValueError(
                        f"{name} {shown} is not a list of values ({exc}){hint}"
                    ) from None
            raise ValueError(f"{exc} (value {i} of the list {shown})") from None
    for a, b in itertools.pairwise(parts):
        if _BARE_INTEGER.match(a) and _WITH_UNIT.match(b):
            joined = f"{a.strip()}.{b.strip()}"
            if _match(joined) is not None:
                raise ValueError(
                    f"{name} {shown} is ambiguous: the comma makes {a.strip()!r} and "
                    f"{b.strip()!r} two values. For one value use a decimal point ({joined}); "
                    f"for several, write each in full (e.g. {a.strip()}{_unit(b)},{b.strip()})"
                )
    return values


def _unit(text: str) -> str:
    """The suffix or exponent of a quantity's spelling (``4T`` -> ``T``, ``5e-3`` -> ``e-3``)."""
    match = re.search(r"([eE][+-]?[0-9]+)?\s*([KMBGT]i?)?\s*$", text.strip(), re.I)
    return "".join(g for g in match.groups() if g) if match else ""


# --------------------------------------------------------------------------- arrays


def _parse_elements(raw: np.ndarray, name: str) -> np.ndarray:
    """An array of strings (or of strings and numbers) as floats, each by parse_quantity."""
    flat = raw.ravel()
    out = np.empty(flat.size)
    for i, item in enumerate(flat):
        if isinstance(item, bytes):
            item = item.decode("utf-8", "replace")
        if isinstance(item, str | np.str_):
            out[i] = parse_quantity(item, name)
        elif isinstance(item, bool | np.bool_):
            raise ValueError(f"{name} must be positive and finite numbers; got {item!r}")
        elif isinstance(item, complex | np.complexfloating):
            raise ValueError(f"{name} must be real numbers; got the complex value {item!r}")
        else:
            try:
                out[i] = float(item)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{name} must be positive and finite numbers; got {preview(repr(item))}"
                ) from None
    return out.reshape(raw.shape)


def positive_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a float array whose entries are all finite and > 0.

    Strings are quantities (:func:`parse_quantity`: ``"7B"``, ``"4Mi"``); a complex value, a
    boolean and an empty array are refused.
    """
    if isinstance(value, str):
        return np.asarray(parse_quantity(value, name))
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be positive and finite numbers; got {preview(repr(value))}"
        ) from None
    if raw.dtype == bool:  # True would read as 1.0: a flag is not a size
        raise ValueError(f"{name} must be positive and finite numbers; got {value!r}")
    if raw.dtype.kind == "c":  # numpy would drop the imaginary part with a mere warning
        raise ValueError(
            f"{name} must be real numbers; got complex values such as {raw.ravel()[:1].tolist()}"
        )
    if raw.dtype.kind in "USO":
        arr = _parse_elements(raw, name)
    else:
        try:
            arr = np.asarray(raw, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be positive and finite numbers; got {preview(repr(value))}"
            ) from None
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); give at least one value")
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

    Returns the broadcast arrays (in the order given) and their common shape. More than
    :data:`MAX_BROADCAST` points are refused from the shapes alone, before anything of that
    size is allocated.
    """
    arrays = [positive_array(v, k) for k, v in named.items()]
    shapes = ", ".join(f"{k} {a.shape}" for k, a in zip(named, arrays))
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        raise ValueError(
            f"{', '.join(named)} cannot be broadcast together; shapes {shapes}"
        ) from None
    size = math.prod(shape)
    if size > MAX_BROADCAST:
        raise ValueError(
            f"{', '.join(named)} broadcast together to {size:,} points (shapes {shapes}); at "
            f"most {MAX_BROADCAST:,} are answered in one call: split the call"
        )
    out = np.broadcast_arrays(*arrays)
    return tuple(out), out[0].shape if out else ()


# --------------------------------------------------------------------------- unit slips


class UnitSlipWarning(UserWarning):
    """A value that is a legal number but most likely typed in the wrong unit (``N=7`` for 7
    billion parameters, a batch in sequences given as tokens, an lr in percent). The message
    names the slip and how to say what was meant."""


MIN_PLAUSIBLE_N = 1e6
"""Fewer non-embedding parameters than this is most likely a missing suffix (7 for 7B)."""
MIN_PLAUSIBLE_D = 1e7
"""Fewer training tokens than this is most likely a missing suffix (1.4 for 1.4T)."""
MIN_PLAUSIBLE_BATCH_TOKENS = 8192
"""A batch of fewer tokens than this is most likely a batch in sequences."""
MAX_PLAUSIBLE_BATCH_TOKENS = 2**30
"""A batch of more tokens than this, given in sequences, is most likely a batch in tokens."""
PLAUSIBLE_LR = (1e-7, 1.0)
"""A peak learning rate outside this range is most likely a percent, a log or a typo."""

PYTHON_NAMES = {
    "N": "N",
    "D": "D",
    "lr": "lr",
    "batch_tokens": "batch_tokens",
    "batch_sequences": "batch_sequences",
    "seq_len": "seq_len",
}
"""How :func:`unit_slips` names each quantity (the CLI passes its option names instead)."""


def _offending(value: Any, name: str, bad) -> tuple[np.ndarray, str] | None:
    """The values of ``value`` for which ``bad`` holds, and how to say how many; None when
    there are none or ``value`` is not valid at all (its own check says so later)."""
    if value is None:
        return None
    try:
        arr = positive_array(value, name).ravel()
    except ValueError:
        return None
    mask = bad(arr)
    if not mask.any():
        return None
    count = "" if arr.size == 1 else f" ({int(mask.sum())} of {arr.size} values; the first shown)"
    return arr[mask], count


def _g(value: float) -> str:
    return f"{value:.4g}"


def unit_slips(
    *,
    N: Any = None,
    D: Any = None,
    lr: Any = None,
    batch_tokens: Any = None,
    batch_sequences: Any = None,
    seq_len: Any = DEFAULT_SEQ_LEN,
    names: dict[str, str] | None = None,
) -> list[str]:
    """Messages, one per quantity, about values that are likely typed in the wrong unit.

    Parameters
    ----------
    N, D, lr, batch_tokens : float or array-like, optional
        The quantities as a call received them (None: not given). Values that are not valid
        at all are left to the call's own checks.
    batch_sequences : float or array-like, optional
        When the batch was given in sequences (``batch_tokens`` then is sequences x
        ``seq_len``): a batch below one sequence, or above :data:`MAX_PLAUSIBLE_BATCH_TOKENS`
        tokens, is the slip; a small batch in tokens is not.
    seq_len : int
        The sequence length the batch was converted with, for the messages.
    names : dict, optional
        How to call each quantity (default :data:`PYTHON_NAMES`; the CLI passes ``--lr``,
        ``--batch-tokens``, ``--batch-sequences``...).

    Returns
    -------
    list of str
        Empty when every value is plausible. Thresholds: :data:`MIN_PLAUSIBLE_N`,
        :data:`MIN_PLAUSIBLE_D`, :data:`MIN_PLAUSIBLE_BATCH_TOKENS`,
        :data:`MAX_PLAUSIBLE_BATCH_TOKENS`, :data:`PLAUSIBLE_LR`.
    """
    called = {**PYTHON_NAMES, **(names or {})}
    cli = called["lr"].startswith("--")
    out = []
    found = _offending(N, "N", lambda a: a < MIN_PLAUSIBLE_N)
    if found:
        v = _g(found[0][0])
        out.append(
            f"{called['N']} = {v} parameters is below 1e6{found[1]}: did you mean {v}B or {v}M "
            f"(a suffix: 7B = 7e9)?"
        )
    found = _offending(D, "D", lambda a: a < MIN_PLAUSIBLE_D)
    if found:
        v = _g(found[0][0])
        out.append(
            f"{called['D']} = {v} tokens is below 1e7{found[1]}: did you mean {v}T or {v}B (a "
            f"suffix: 1.4T = 1.4e12)?"
        )
    lo, hi = PLAUSIBLE_LR
    found = _offending(lr, "lr", lambda a: a > hi)
    if found:
        out.append(
            f"{called['lr']} = {_g(found[0][0])} is above {hi:g}{found[1]}: a peak learning "
            f"rate is a small number such as 3e-4, not a percent or a log"
        )
    found = _offending(lr, "lr", lambda a: a < lo)
    if found:
        out.append(
            f"{called['lr']} = {_g(found[0][0])} is below {lo:g}{found[1]}, far below any "
            f"pretraining learning rate: check its exponent (e.g. 3e-4)"
        )
    if batch_sequences is not None:
        found = _offending(batch_sequences, "batch_sequences", lambda a: a < 1)
        if found:
            tokens = "--batch-tokens" if cli else "batch_tokens="
            out.append(
                f"{called['batch_sequences']} = {_g(found[0][0])} is less than one "
                f"sequence{found[1]}: if it counts tokens, give it as {tokens}"
            )
        found = _offending(batch_tokens, "batch_tokens", lambda a: a > MAX_PLAUSIBLE_BATCH_TOKENS)
        if found:
            tokens = "--batch-tokens" if cli else "batch_tokens="
            out.append(
                f"{called['batch_sequences']} at {called['seq_len']} {seq_len} gives batches of "
                f"{_g(found[0][0])} tokens, above 2^30{found[1]}: if it counts tokens, give it "
                f"as {tokens}"
            )
    else:
        found = _offending(batch_tokens, "batch_tokens", lambda a: a < MIN_PLAUSIBLE_BATCH_TOKENS)
        if found:
            v = _g(found[0][0])
            fix = (
                f"give it as {called['batch_sequences']} {v} (converted with "
                f"{called['seq_len']}, default {DEFAULT_SEQ_LEN})"
                if cli
                else f"pass tokens, sequences x seq_len ({called['batch_tokens']}={v} * "
                f"{DEFAULT_SEQ_LEN} at seq_len {DEFAULT_SEQ_LEN})"
            )
            out.append(
                f"{called['batch_tokens']} = {v} tokens is below {MIN_PLAUSIBLE_BATCH_TOKENS}"
                f"{found[1]}, likely a batch in sequences: if so, {fix}"
            )
    return out


def check_plausible(
    *,
    N: Any = None,
    D: Any = None,
    lr: Any = None,
    batch_tokens: Any = None,
    batch_sequences: Any = None,
    seq_len: Any = DEFAULT_SEQ_LEN,
    stacklevel: int = 3,
) -> list[str]:
    """Warn (:class:`UnitSlipWarning`) about values likely typed in the wrong unit.

    One warning per quantity (:func:`unit_slips`); the values are used as given, never
    changed, so a deliberate extreme still gets its answer. ``stacklevel`` 3 points the
    warning at the caller of the function that calls this one (an API function).

    Returns
    -------
    list of str
        The messages warned.
    """
    slips = unit_slips(
        N=N, D=D, lr=lr, batch_tokens=batch_tokens, batch_sequences=batch_sequences,
        seq_len=seq_len,
    )  # fmt: skip
    for message in slips:
        warnings.warn(message, UnitSlipWarning, stacklevel=stacklevel)
    return slips


def batch_tokens_of(
    batch_tokens: Any = None,
    batch_sequences: Any = None,
    seq_len: Any = DEFAULT_SEQ_LEN,
    names: dict[str, str] | None = None,
) -> np.ndarray | None:
    """The batch in tokens, from ``batch_tokens`` or from ``batch_sequences`` x ``seq_len``.

    Returns None when neither is given; giving both is an error naming both.
    """
    called = {**PYTHON_NAMES, **(names or {})}
    if batch_tokens is not None and batch_sequences is not None:
        raise ValueError(
            f"give {called['batch_tokens']} or {called['batch_sequences']}, not both (a batch "
            f"in sequences is converted to tokens with {called['seq_len']})"
        )
    if batch_sequences is not None:
        return positive_array(batch_sequences, called["batch_sequences"]) * check_seq_len(seq_len)
    if batch_tokens is not None:
        return positive_array(batch_tokens, called["batch_tokens"])
    return None


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
