"""What every command shares: the Typer apps, quantity parsing, path and size checks, one-line
errors."""

import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from .._validate import (
    DEFAULT_TOL,
    UnitSlipWarning,
    split_quantities,
    unit_slips,
)
from .._validate import EXAMPLES as _EXAMPLES
from .._validate import parse_quantity as _parse_quantity

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
    import warnings

    # the commands refuse unit slips themselves (check_units, --allow-implausible); the API's
    # warning about the same values would only repeat it
    warnings.filterwarnings("ignore", category=UnitSlipWarning)


# one grammar for every quantity, Python, CLI and planner page alike (_validate.parse_quantity)
EXAMPLES = {k: v for k, v in _EXAMPLES.items() if not k[0].isalpha() or k in ("N", "D")}
"""Example values of each quantity, for its error message."""

ParamsArg = Annotated[str, typer.Argument(metavar="N", help="Non-embedding parameters (7e9, 7B).")]
TokensArg = Annotated[str, typer.Argument(metavar="D", help="Training tokens (1.4e12, 1.4T).")]


def parse_quantity(text: str, name: str, example: str | None = None) -> float:
    """Parse ``7e9``, ``7B``, ``1.4T``, ``350M``, ``4Mi``, ``3e-4`` into a positive finite float
    (:func:`bayes_steplaw._validate.parse_quantity`: ``K M B/G T`` are decimal, ``Ki Mi Gi Ti``
    binary), raising :class:`typer.BadParameter` with its message.

    ``example`` (default: by ``name`` from :data:`EXAMPLES`) goes into the error message.
    """
    try:
        return _parse_quantity(text, name, example)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


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


def finite_json(payload: Any) -> tuple[Any, list[str]]:
    """``payload`` with every non-finite float (NaN, ±inf) replaced by None, and the paths
    (``predictions[3].lr_upper``) of the values replaced."""
    missing: list[str] = []

    def clean(value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {k: clean(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            missing.append(where)
            return None
        return value

    return clean(payload, ""), missing


def echo_json(payload: dict) -> None:
    """Print ``payload`` as one line of valid JSON: a non-finite number (which ``json.dumps``
    would print as a bare ``NaN`` or ``Infinity``) becomes ``null``, and the field
    ``non_finite`` lists where that happened."""
    import json

    clean, missing = finite_json(payload)
    if missing:
        more = [f"... and {len(missing) - 100} more"] if len(missing) > 100 else []
        clean["non_finite"] = missing[:100] + more
    typer.echo(json.dumps(clean, allow_nan=False, default=str))


# --------------------------------------------------------------------------- shared options

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
GroupOpt = Annotated[
    str, typer.Option("--group", help="Group of the posterior, e.g. dense, moe/1in8, new.")
]
SeqLenOpt = Annotated[
    int | None,
    typer.Option("--seq-len", help="Sequence length in tokens (default: the fit's).", min=1),
]
TolOpt = Annotated[
    float,
    typer.Option(help=f"Relative-loss tolerance of the plateau ({DEFAULT_TOL:.2%})."),
]
ProbOpt = Annotated[float, typer.Option(help="Mass of the intervals.")]
TableSeqLenOpt = Annotated[
    int | None,
    typer.Option(
        "--seq-len",
        help="Sequence length of the runs whose table (or log) does not state one (released: "
        "2048).",
        min=1,
    ),
]
GroupColOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--group-col", help="Group column, outermost first; repeat for nested/crossed groups."
    ),
]
BatchSequencesOpt = Annotated[
    str | None,
    typer.Option(
        "--batch-sequences",
        metavar="SEQS",
        help="Batch size in sequences of --seq-len tokens (512 or 2Ki), instead of --batch-tokens.",
    ),
]
ImplausibleOpt = Annotated[
    bool,
    typer.Option(
        "--allow-implausible",
        help="Answer for values that look like a unit slip (N below 1e6, D below 1e7, a batch "
        "below 8192 tokens or 1 sequence, an lr outside [1e-7, 1]) instead of refusing them.",
    ),
]


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


MAX_POINTS = 1_000_000
"""Most points (settings or runs) one call answers, from a grid file or lists of values."""


def split_values(text: str, name: str) -> list[float]:
    """One quantity, or several separated by commas (``1B,7B``), or a one-line error; a
    likely decimal comma (``1,4T``) is an error naming it
    (:func:`bayes_steplaw._validate.split_quantities`)."""
    try:
        return split_quantities(text, name)
    except ValueError as exc:
        _fail(str(exc))


_CLI_NAMES = {"lr": "--lr", "batch_tokens": "--batch-tokens",
              "batch_sequences": "--batch-sequences", "seq_len": "--seq-len"}  # fmt: skip


def check_units(allowed: bool, **values: Any) -> None:
    """Refuse (exit 2) values that look like a unit slip, naming the slip and
    ``--allow-implausible``, which lets them through (:func:`bayes_steplaw._validate.
    unit_slips`; ``values``: ``N``, ``D``, ``lr``, ``batch_tokens``, ``batch_sequences``,
    ``seq_len``)."""
    if allowed:
        return
    slips = unit_slips(**values, names=_CLI_NAMES)
    if slips:
        text = "; ".join(slips)
        _fail(
            text
            + ("" if text.endswith("?") else ".")
            + " If this is meant, pass --allow-implausible"
        )


def batch_arg(
    batch_tokens: str | None,
    batch_sequences: str | None,
    seq_len: int,
    *,
    several: bool = False,
    required: bool = False,
):
    """The batch of ``--batch-tokens`` or ``--batch-sequences`` (times ``--seq-len``), in
    tokens, and in sequences when it was given so (else None): floats, or with ``several``
    lists (comma-separated values). Both at once is an error (exit 2); neither is None,
    or with ``required`` an error."""
    if batch_tokens is not None and batch_sequences is not None:
        _fail("give --batch-tokens or --batch-sequences, not both")
    if batch_tokens is None and batch_sequences is None:
        if required:
            _fail("give the batch size: --batch-tokens (e.g. 4M) or --batch-sequences with "
                  "--seq-len (e.g. 2048 sequences of 2048 tokens)")  # fmt: skip
        return None, None
    text, option = ((batch_tokens, "--batch-tokens") if batch_sequences is None
                    else (batch_sequences, "--batch-sequences"))  # fmt: skip
    values = split_values(text, option) if several else [quantity(text, option)]
    if batch_sequences is None:
        return (values if several else values[0]), None
    tokens = [v * seq_len for v in values]
    return (tokens, values) if several else (tokens[0], values[0])


def read_points(given: dict[str, Any], grid: Path | None, *, usage: str,
                options: dict[str, str] | None = None):  # fmt: skip
    """The points of a call: the columns of a ``--grid`` file, or every combination of the
    comma-separated values given on the command line.

    ``given`` maps each column (``N``, ``D``, ``lr``, ``batch_tokens``) to its text on the
    command line, to a list of values already read, or to None when not given; ``options``
    names the option of a column in messages; ``usage`` says what to give when values are
    missing. Returns the arrays (flattened, in the order of ``given``) and the grid's
    ``group`` column (None without a grid).
    """
    import numpy as np

    options = options or {}
    labels = [options.get(c, c) for c in given]
    if grid is not None:
        if any(v is not None for v in given.values()):
            _fail(f"give {' '.join(labels)} or --grid FILE, not both")
        return read_grid(grid, tuple(given), options)
    if any(v is None for v in given.values()):
        _fail(usage)
    lists = [v if isinstance(v, list) else split_values(v, options.get(c, c))
             for c, v in given.items()]  # fmt: skip
    size = math.prod(len(v) for v in lists)
    if size > MAX_POINTS:
        counts = " x ".join(f"{len(v)} {label}" for v, label in zip(lists, labels))
        _fail(f"{counts} values exceed {MAX_POINTS} points")
    return [a.ravel() for a in np.meshgrid(*lists, indexing="ij")], None


def split_groups(groups, default: str, n: int):
    """``(group, mask)`` for each group of ``n`` points, in order of first appearance; an
    empty name (or no ``groups`` at all) is ``default``."""
    import numpy as np

    if groups is None:
        yield default, np.ones(n, dtype=bool)
        return
    groups = np.where(groups == "", default, groups)
    for g in dict.fromkeys(groups.tolist()):
        yield g, groups == g


GRID_FIELD_LIMIT = 1 << 20
"""Longest line of a grid file (in characters; a field is at most the csv module's 131072): a
row of quantities and a group name is far shorter, and a longer one is never held whole in
memory nor printed."""


def read_grid(path: Path, columns: tuple[str, ...], options: dict[str, str] | None = None):
    """The quantity columns of a grid CSV (one point per row) and its ``group`` column (or
    None), or a one-line error naming the row, line and column.

    The header names each field once (no empty or repeated name); every row has as many
    fields as the header (a row with one more or one fewer is an error naming its line, never
    a shifted column); blank lines are skipped. A bad cell is quoted as a short preview.
    ``options`` names the CLI option a column stands for, in messages about its values.
    """
    import numpy as np

    from .._io import display_path

    check_input_file(path, "grid file")
    where = f"grid file {display_path(path)}"
    _check_grid_size(path, where)
    wanted, rows = _grid_rows(path, columns, where)
    values = []
    for j, col in enumerate(columns):
        out = np.empty(len(rows))
        name = (options or {}).get(col, col)
        for i, row in enumerate(rows):
            try:
                out[i] = _parse_quantity(row[j], name)
            except ValueError as exc:
                line = _grid_line(path, i, columns, where)
                _fail(f"{where}, row {i} (line {line}), column {col}: {exc}")
        values.append(out)
    group = None
    if "group" in wanted:
        group = np.array([row[len(columns)] for row in rows], dtype=str)
    return values, group


def _check_grid_size(path: Path, where: str) -> None:
    """Refuse at once, from a count of its line ends, a grid of more than :data:`MAX_POINTS`
    rows (a few blank lines aside: those are counted by :func:`_grid_rows`)."""
    import csv

    ends, last = 0, b"\n"
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            ends += block.count(b"\n")
            last = block[-1:]
    lines = ends + (last != b"\n")
    if lines - 1 <= MAX_POINTS:
        return
    count = 0  # more lines than rows allowed: count the rows themselves (blank lines aside)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.reader(fh):
                count += bool(row) and (len(row) > 1 or bool(row[0].strip()))
                if count > MAX_POINTS + 1:
                    _fail(f"{where} has more than {MAX_POINTS} rows; split it (--grid)")
    except (csv.Error, UnicodeDecodeError):
        return  # said by _grid_rows, with its line


def _grid_reader(fh, where: str):
    """A csv reader over the lines of an open grid file, each at most
    :data:`GRID_FIELD_LIMIT` characters and without NUL bytes."""
    import csv

    def lines():
        readline, number = fh.readline, 0
        while True:
            line = readline(GRID_FIELD_LIMIT + 1)
            if not line:
                return
            number += 1
            if len(line) > GRID_FIELD_LIMIT:
                _fail(f"{where}, line {number} is longer than {GRID_FIELD_LIMIT:,} characters; "
                      "not a grid of quantities")  # fmt: skip
            if "\x00" in line:
                _fail(f"{where}, line {number} holds a NUL byte: a binary file, not a CSV table")
            yield line

    return csv.reader(lines(), strict=True)


def _grid_rows(path: Path, columns: tuple[str, ...], where: str, stop: int | None = None):
    """The header's field index of each wanted column, and the wanted fields of every row
    (tuples: ``columns`` then ``group`` when there is one); one-line errors naming the line.
    With ``stop``, the line number of data row ``stop`` instead of the rows."""
    import csv
    from operator import itemgetter

    from .._validate import preview

    header = wanted = get = None
    rows: list[tuple] = []
    reader = None
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = _grid_reader(fh, where)
            for row in reader:
                if header is None or len(row) != len(header):
                    if len(row) < 2 and (not row or not row[0].strip()):
                        continue  # a blank line
                if header is None:
                    header = [field.strip() for field in row]
                    wanted = _grid_header(header, columns, where, reader.line_num)
                    index = list(wanted.values())
                    get = itemgetter(*index) if len(index) > 1 else lambda r, i=index[0]: (r[i],)
                    continue
                if len(row) != len(header):
                    _fail(f"{where}, line {reader.line_num}: {len(row)} fields, but the header "
                          f"has {len(header)} ({', '.join(map(preview, header[:10]))}"
                          f"{', ...' if len(header) > 10 else ''}); quote a field that holds a "
                          "comma")  # fmt: skip
                if stop is not None and len(rows) == stop:
                    return reader.line_num
                if len(rows) >= MAX_POINTS:
                    _fail(f"{where} has more than {MAX_POINTS} rows; split it (--grid)")
                rows.append(get(row))
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 1
        _fail(f"{where}, line {line}: not a readable CSV table ({exc})")
    except UnicodeDecodeError as exc:
        line = f", after line {reader.line_num}" if reader is not None else ""
        _fail(f"{where} is not UTF-8 text{line} (byte {exc.start} of a block); expected a CSV "
              "table")  # fmt: skip
    except OSError as exc:
        _fail(f"{where} cannot be read: {exc.strerror or exc}")
    if header is None:
        _fail(f"{where} is empty; expected a CSV table with a header line")
    if not rows:
        _fail(f"{where} has a header but no rows")
    return wanted, rows


def _grid_line(path: Path, index: int, columns: tuple[str, ...], where: str) -> int:
    """The line of data row ``index`` (blank lines and quoted line breaks counted)."""
    return _grid_rows(path, columns, where, stop=index)


def _grid_header(
    header: list[str], columns: tuple[str, ...], where: str, line: int = 1
) -> dict[str, int]:
    """The field index of each column a grid needs (and ``group``), or a one-line error."""
    from .._validate import preview

    for i, name in enumerate(header):
        if not name:
            _fail(f"{where}, line {line}: field {i + 1} of the header has no name (a table "
                  "written with its index? write it with index=False)")  # fmt: skip
        if name in header[:i]:
            _fail(f"{where}, line {line}: the header names {preview(name)} twice (fields "
                  f"{header.index(name) + 1} and {i + 1}); name each column once")  # fmt: skip
    missing = [c for c in columns if c not in header]
    if missing:
        names = [preview(h, 30) for h in header[:20]]
        more = f" and {len(header) - 20} more" if len(header) > 20 else ""
        _fail(f"{where} lacks column(s) {missing}; it has [{', '.join(names)}]{more}")
    return {c: header.index(c) for c in (*columns, "group") if c in header}


def load_posterior(path: str | None, need: str = "loss"):
    """The posterior in ``path`` (or the shipped loss posterior), or a one-line error.

    ``need``: ``"loss"`` (every command but predict) refuses other models, naming the ``fit``
    that makes the right one; ``"law"`` (predict, compare) takes an optimum posterior too.
    """
    from ..api import resolve_posterior
    from ..bayes.posterior import PosteriorFileError

    try:
        return resolve_posterior(path, need)
    except PosteriorFileError as exc:
        _fail(str(exc), 1 if path is None else 2)


def setup_note(post) -> str:
    """One line on whose setup the answers are for (the posterior's :attr:`setup`)."""
    return f"  (for {post.setup})"


def call(func, *args, options: Mapping[str, str] | None = None, **kwargs):
    """Call the API, its foreseeable errors one-line messages (exit 2) naming the command's
    options: ``options`` maps argument names to them (``{"lr_step": "--grid-lr-step"}``)."""
    import re

    from ..bayes.sampling import ConvergenceError

    try:
        return func(*args, **kwargs)
    except (KeyError, ConvergenceError, ValueError, TypeError) as exc:
        message = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        for name, option in (options or {}).items():
            message = re.sub(rf"(?<![\w-]){name}\b", option, message)
        _fail(message.replace("pass allow_unconverged=True", "pass --allow-unconverged"))


# --------------------------------------------------------------------------- paths


def check_input_file(path: Path, what: str) -> None:
    """A readable, non-empty, text file; else a one-line error (exit 2) naming it and what it
    is (a directory, a FIFO, a device, a link to one: never opened)."""
    from .._io import display_path, input_problem

    problem = input_problem(path)
    if problem is not None:
        _fail(f"{what} {display_path(path)} {problem}; give a CSV file")
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
