"""What every command shares: the Typer apps, quantity parsing and one-line errors."""

from __future__ import annotations

import math
import re
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


ParamsArg = Annotated[str, typer.Argument(metavar="N", help="Non-embedding parameters (7e9, 7B).")]
TokensArg = Annotated[str, typer.Argument(metavar="D", help="Training tokens (1.4e12, 1.4T).")]


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


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return value


PosteriorOpt = Annotated[
    str | None,
    typer.Option(
        "--posterior", metavar="FILE", help="Posterior file (from `fit`); default: the shipped one."
    ),
]


def load_posterior(path: str | None, kind: str):
    """The posterior in ``path`` (or the shipped ``kind`` model), or a one-line error.

    A file holding another model kind than the command needs is refused, naming the
    ``fit --model`` that makes the right one.
    """
    from ..bayes.posterior import PosteriorFileError, load_default, posterior_class

    try:
        if path is None:
            return load_default(kind)
        return posterior_class(kind).load(path)
    except PosteriorFileError as exc:
        _fail(str(exc), 1 if path is None else 2)


def call(func, *args, **kwargs):
    """Call the API, turning its foreseeable errors into one-line messages (exit 2)."""
    from ..bayes.sampling import ConvergenceError

    try:
        return func(*args, **kwargs)
    except KeyError as exc:
        _fail(str(exc.args[0] if exc.args else exc))
    except (ValueError, ConvergenceError) as exc:
        _fail(str(exc))
