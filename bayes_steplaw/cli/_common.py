"""What every command shares: the Typer apps, quantity parsing, path and size checks, one-line
errors."""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="bayes-steplaw",
    help="Optimal learning rate and batch size for LLM pretraining, with uncertainty.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Locate, download and verify the released Step Law data.")
logs_app = typer.Typer(help="Turn training logs into smoothed losses and sweep tables.")
app.add_typer(data_app, name="data")
app.add_typer(logs_app, name="logs")


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"bayes-steplaw {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = None,
) -> None:
    """Optimal learning rate and batch size for LLM pretraining, with uncertainty."""


_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMBGT]?)\s*$", re.I)
EXAMPLES = {
    "N": "7e9 or 7B",
    "D": "1.4e12 or 1.4T",
    "--lr": "3e-4",
    "--batch-tokens": "4M or 4194304",
}
"""Example values of each quantity, for its error message."""

ParamsArg = Annotated[str, typer.Argument(metavar="N", help="Non-embedding parameters (7e9, 7B).")]
TokensArg = Annotated[str, typer.Argument(metavar="D", help="Training tokens (1.4e12, 1.4T).")]


def parse_quantity(text: str, name: str, example: str | None = None) -> float:
    """Parse ``7e9``, ``7B``, ``1.4T``, ``350M``, ``3e-4`` into a positive finite float.

    ``example`` (default: by ``name`` from :data:`EXAMPLES`) goes into the error message.
    """
    example = example or EXAMPLES.get(name, "7e9, 7B or 1.4T")
    match = _QUANTITY.match(str(text))
    if not match:
        raise typer.BadParameter(
            f"{name} must be a positive number such as {example}; got {text!r}"
        )
    value = float(match.group(1)) * _SUFFIX[match.group(2).upper()]
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"{name} must be a positive finite number; got {text!r}")
    return value


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """A one-line warning on stderr."""
    typer.echo(f"warning: {message}", err=True)


def _quantities(n: str, d: str) -> tuple[float, float]:
    try:
        return parse_quantity(n, "N"), parse_quantity(d, "D")
    except typer.BadParameter as exc:
        _fail(str(exc))


def quantity(text: str, name: str) -> float:
    """:func:`parse_quantity`, exiting 2 with its message."""
    try:
        return parse_quantity(text, name)
    except typer.BadParameter as exc:
        _fail(str(exc))


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return value


UnconvergedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unconverged", help="Answer from a posterior that failed its convergence checks."
    ),
]

PosteriorOpt = Annotated[
    str | None,
    typer.Option(
        "--posterior", metavar="FILE", help="Posterior file (from `fit`); default: the shipped one."
    ),
]


LossPosteriorOpt = Annotated[
    str | None,
    typer.Option(
        "--loss-posterior",
        metavar="FILE",
        help="Loss posterior for the predicted loss lines; default: the shipped one.",
    ),
]

MAX_POINTS = 1_000_000
"""Most points (settings or runs) one call answers, from a grid file or lists of values."""


def split_values(text: str, name: str) -> list[float]:
    """One quantity, or several separated by commas (``1B,7B``), or a one-line error."""
    try:
        return [parse_quantity(p, name) for p in str(text).split(",")]
    except typer.BadParameter as exc:
        _fail(str(exc))


def read_grid(path: Path, columns: tuple[str, ...], options: dict[str, str] | None = None):
    """The quantity columns of a grid CSV (one point per row) and its ``group`` column (or
    None), or a one-line error naming the row, line and column. ``options`` names the CLI
    option a column stands for, in messages about its values."""
    import numpy as np
    import pandas as pd

    check_input_file(path, "grid file")
    try:
        frame = pd.read_csv(path, dtype=str, nrows=MAX_POINTS + 1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        _fail(f"grid file {path} is not a readable CSV table: {exc}")
    if len(frame) > MAX_POINTS:
        _fail(f"grid file {path} has more than {MAX_POINTS} rows; split it (--grid)")
    missing = [c for c in columns if c not in frame]
    if missing:
        _fail(f"grid file {path} lacks column(s) {missing}; it has {list(frame.columns)}")
    if frame.empty:
        _fail(f"grid file {path} has a header but no rows")
    values = []
    for col in columns:
        out = np.empty(len(frame))
        for i, text in enumerate(frame[col]):
            try:
                out[i] = parse_quantity(text, (options or {}).get(col, col))
            except typer.BadParameter as exc:
                _fail(f"grid file {path}, row {i} (line {i + 2}), column {col}: {exc}")
        values.append(out)
    group = frame["group"].fillna("").to_numpy(str) if "group" in frame else None
    return values, group


def load_posterior(path: str | None, kind: str):
    """The posterior in ``path`` (or the shipped one), or a one-line error.

    ``kind``: ``"landscape"`` (plateau, recommend, plan-sweep) refuses other models, naming
    the ``fit --model`` that makes the right one; ``"law"`` (predict, compare) takes either
    model, ``"optimum"`` by default.
    """
    from ..api import resolve_posterior
    from ..bayes.posterior import PosteriorFileError

    try:
        return resolve_posterior(path, "landscape" if kind == "landscape" else "law")
    except PosteriorFileError as exc:
        _fail(str(exc), 1 if path is None else 2)


def call(func, *args, **kwargs):
    """Call the API, turning its foreseeable errors into one-line messages (exit 2)."""
    from ..bayes.sampling import ConvergenceError

    try:
        return func(*args, **kwargs)
    except KeyError as exc:
        _fail(str(exc.args[0] if exc.args else exc))
    except ConvergenceError as exc:
        _fail(str(exc).replace("pass allow_unconverged=True", "pass --allow-unconverged"))
    except (ValueError, TypeError) as exc:
        _fail(str(exc))


# --------------------------------------------------------------------------- paths


def check_input_file(path: Path, what: str) -> None:
    """A readable, non-empty, text file; else a one-line error (exit 2) naming it."""
    if path.is_dir():
        _fail(f"{what} {path} is a directory; give a CSV file")
    if not path.exists():
        _fail(f"{what} {path} does not exist")
    if not path.is_file():
        _fail(f"{what} {path} is not a regular file (a FIFO or device?); give a CSV file")
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        _fail(f"{what} {path} cannot be read: {exc.strerror or exc}")
    if not head.strip():
        _fail(f"{what} {path} is empty; expected a CSV table with a header line")
    if b"\x00" in head:
        _fail(f"{what} {path} is a binary file, not a CSV table")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the 8 KB boundary
            _fail(f"{what} {path} is not UTF-8 text (byte {exc.start}); expected a CSV table")


def check_output_path(path: Path, option: str) -> None:
    """An output path that can be written (:func:`bayes_steplaw._io.check_output_path`),
    checked before any work: else exit 2 with the path and the reason."""
    from .._io import OutputPathError
    from .._io import check_output_path as check

    try:
        check(path, option)
    except OutputPathError as exc:
        _fail(str(exc))


# --------------------------------------------------------------------------- memory


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable; the address-space limit
    when one is set and smaller)."""
    available = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 8 << 30
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            available = min(available, soft)
    except (ImportError, ValueError, OSError):
        pass
    return available


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def check_memory(nbytes: float, option: str, what: str) -> None:
    """Refuse up front (exit 2, naming ``option``) work whose estimate exceeds half the memory
    available: an allocation failure later is a crash, not a message."""
    budget = available_memory() / 2
    if nbytes > budget:
        _fail(
            f"{what} would need about {_gib(nbytes)} of memory; {_gib(budget)} is the most "
            f"this machine can spare (half of what is available): use a smaller {option}"
        )


# --------------------------------------------------------------------------- tables out


def write_table(frame, path: Path, option: str = "--out") -> None:
    """Write a table as CSV (``.csv``, formulas escaped) or JSON records (``.json``),
    atomically (:mod:`bayes_steplaw._io`); a failure is a one-line error (exit 1)."""
    from .._io import OutputPathError, write_csv, write_json_records

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        _fail(f"{option} {path}: the name must end in .csv or .json")
    try:
        (write_csv if suffix == ".csv" else write_json_records)(frame, path, name=option)
    except OutputPathError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"could not write {path}: {exc.strerror or exc}; nothing was replaced", 1)


# --------------------------------------------------------------------------- notes


def extrapolation_notes(post, N, D) -> list[str]:
    """One line per quantity that lies outside the fitted data's range, in decades."""
    import numpy as np

    notes = []
    for name, value in (("N", N), ("D", D)):
        lo, hi = post.metadata[f"{name}_range"]
        v = np.log10(np.asarray(value, dtype=float))
        decades = float(np.max(np.maximum(np.maximum(v - math.log10(hi), math.log10(lo) - v), 0)))
        if decades > 0:
            notes.append(
                f"note: {name} lies {decades:.2f} orders of magnitude outside the fitted data's "
                f"{name} range [{lo:.3g}, {hi:.3g}]: this is an extrapolation of the law"
            )
    return notes


def silence_unraisable() -> None:
    """Drop the 'Exception ignored in ...' noise h5py/h5netcdf print when a half-opened file
    is collected after a clean error; other unraisable exceptions are reported as usual."""
    default = sys.unraisablehook

    def hook(unraisable):
        where = f"{unraisable.object!r} {type(unraisable.exc_value).__module__}"
        if "h5netcdf" in where or "h5py" in where:
            return
        default(unraisable)

    sys.unraisablehook = hook
