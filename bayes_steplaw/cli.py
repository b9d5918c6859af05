"""Command-line interface: a thin layer over the public API.

Heavy libraries (PyMC, PyTensor) are imported only by the commands that fit.
"""

from __future__ import annotations

import json
import math
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

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMBGT]?)\s*$", re.I)


def parse_quantity(text: str, name: str) -> float:
    """Parse ``7e9``, ``7B``, ``1.4T``, ``350M`` into a positive finite float."""
    match = _QUANTITY.match(str(text))
    if not match:
        raise typer.BadParameter(
            f"{name} must be a positive number such as 7e9, 7B or 1.4T; got {text!r}"
        )
    value = float(match.group(1)) * _SUFFIX[match.group(2).upper()]
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"{name} must be a positive finite number; got {text!r}")
    return value


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _quantities(n: str, d: str) -> tuple[float, float]:
    try:
        return parse_quantity(n, "N"), parse_quantity(d, "D")
    except typer.BadParameter as exc:
        _fail(str(exc))


# --------------------------------------------------------------------------- predict


# negative numbers reach parse_quantity (a one-line error) instead of reading as options
@app.command(context_settings={"ignore_unknown_options": True})
def predict(
    n: Annotated[str, typer.Argument(metavar="N", help="Non-embedding parameters (7e9, 7B).")],
    d: Annotated[str, typer.Argument(metavar="D", help="Training tokens (1.4e12, 1.4T).")],
    seq_len: Annotated[int, typer.Option(help="Sequence length in tokens.", min=1)] = 2048,
    method: Annotated[
        str, typer.Option(help="'bayes' (shipped posterior) or 'paper' (published ensemble).")
    ] = "bayes",
    raw: Annotated[
        bool, typer.Option(help="With --method paper: print the upstream tool's exact output.")
    ] = False,
    prob: Annotated[float, typer.Option(help="Credible / percentile interval mass.")] = 0.9,
    group: Annotated[str, typer.Option(help="Group of the posterior, e.g. dense, moe/1in8.")] = (
        "dense"
    ),
    law: Annotated[
        bool, typer.Option("--law", help="Law uncertainty only, without setting-level scatter.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recommend the peak learning rate and batch size for N parameters and D tokens."""
    N, D = _quantities(n, d)
    if not 0 < prob < 1:
        _fail(f"--prob must be between 0 and 1; got {prob}")
    if method == "paper":
        from .bootstrap import BootstrapOLS

        model = BootstrapOLS.from_published()
        if raw:
            typer.echo(model.upstream_line(N, D, seq_len), nl=False)
            return
        table = model.predict(N, D, seq_len=seq_len, prob=prob)
        note = "percentile interval over the 1000 published bootstrap resamples"
    elif method == "bayes":
        if raw:
            _fail("--raw is only available with --method paper")
        from .posterior import load_default

        post = load_default()
        try:
            result = post.predict(N, D, group=group, seq_len=seq_len, kind="law" if law else "run")
        except (KeyError, ValueError) as exc:
            _fail(str(exc.args[0] if exc.args else exc))
        table = result.to_dataframe(prob=prob)
        note = result.describe(prob)
    else:
        _fail(f"--method must be 'bayes' or 'paper'; got {method!r}")
    row = table.iloc[0]
    if as_json:
        typer.echo(json.dumps({"note": note, **{k: _jsonable(v) for k, v in row.items()}}))
        return
    pct = f"{prob:.0%}"
    typer.echo(f"N = {N:.4g} parameters, D = {D:.4g} tokens, seq_len = {seq_len}")
    typer.echo(
        f"  peak lr          {row['lr']:.3e}   {pct} [{row['lr_lower']:.3e}, {row['lr_upper']:.3e}]"
    )
    typer.echo(
        f"  batch (tokens)   {row['batch_tokens']:.4g}   {pct} "
        f"[{row['batch_tokens_lower']:.4g}, {row['batch_tokens_upper']:.4g}]"
    )
    typer.echo(
        f"  batch (seqs)     {row['batch_sequences']:.4g}   {pct} "
        f"[{row['batch_sequences_lower']:.4g}, {row['batch_sequences_upper']:.4g}]"
    )
    typer.echo(f"  ({note})")
    if "extrapolation" in table and isinstance(row.get("extrapolation"), str):
        typer.echo(f"  {row['extrapolation']}")


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return value


# --------------------------------------------------------------------------- reproduce


@app.command()
def reproduce(
    threshold: Annotated[float, typer.Option(help="Plateau filter (relative loss).")] = 0.0025,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the refit.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the refit's resampling.")] = 0,
) -> None:
    """Paper's Table 2 beside the published ensemble mean and a refit on the released dense runs."""
    from . import load_sweeps
    from .bootstrap import BootstrapOLS, reproduction_table

    try:
        table = reproduction_table(
            BootstrapOLS.from_published(),
            BootstrapOLS.fit(load_sweeps("dense"), threshold=threshold, n_boot=n_boot, seed=seed),
        )
    except Exception as exc:  # data errors carry their own instructions
        _fail(str(exc), 1)
    typer.echo(table.to_string(float_format=lambda v: f"{v:.4g}"))
    typer.echo(
        "\nThe published ensemble is reproduced exactly. The refit differs because the paper's "
        "fit also used runs that were not released (e.g. its 60M and 120M models); the released "
        "dense rows alone give the refit column."
    )


# --------------------------------------------------------------------------- data


@data_app.command("path")
def data_path(
    data_dir: Annotated[Path | None, typer.Option(help="Directory searched first.")] = None,
) -> None:
    """Print where each registered file resolves locally (no download)."""
    from .registry import status

    bad = False
    for rec in status(data_dir):
        typer.echo(f"{rec['name']}\t{rec['path'] or '-'}\t{rec['problem'] or 'ok'}")
        bad |= rec["path"] is None
    raise typer.Exit(1 if bad else 0)


@data_app.command("fetch")
def data_fetch(
    data_dir: Annotated[Path | None, typer.Option(help="Directory searched first.")] = None,
) -> None:
    """Find or download every registered file, checking its sha256."""
    from .registry import DataError, fetch, registered_files

    for entry in registered_files():
        try:
            typer.echo(f"{entry.name}\t{fetch(entry.name, data_dir)}")
        except DataError as exc:
            _fail(str(exc), 1)


@data_app.command("verify")
def data_verify(
    data_dir: Annotated[Path | None, typer.Option(help="Directory searched first.")] = None,
) -> None:
    """Check the sha256 of every locally found registered file."""
    from .registry import status

    bad = False
    for rec in status(data_dir):
        verdict = "ok" if rec["ok"] else f"FAILED: {rec['problem']}"
        typer.echo(f"{rec['name']}\t{verdict}")
        bad |= not rec["ok"]
    raise typer.Exit(1 if bad else 0)


# --------------------------------------------------------------------------- logs
# (commands of the `logs` group live below this line)


def main() -> None:
    """Entry point of the ``bayes-steplaw`` script."""
    try:
        app()
    except Exception as exc:  # a one-line message, never a traceback, for foreseeable errors
        from .registry import DataError
        from .sweeps import SweepValidationError

        if isinstance(exc, (DataError, SweepValidationError, FileNotFoundError, ValueError)):
            typer.echo(f"error: {exc}", err=True)
            sys.exit(1)
        raise
