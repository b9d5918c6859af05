"""Command-line interface: a thin layer over the public API, one module per command group.

Heavy libraries (PyMC, PyTensor) are imported only by the commands that fit.
"""

import sys

import typer

from . import calibrate, data, evaluate, fit, logs, loss, predict, web  # noqa: F401  (each module registers its commands)
from ._common import app, parse_quantity, silence_unraisable

__all__ = ["app", "main", "parse_quantity"]


def main() -> None:
    """Entry point of the ``bayes-steplaw`` script (and of ``python -m bayes_steplaw``)."""
    silence_unraisable()
    try:
        app(prog_name="bayes-steplaw")
    except Exception as exc:  # a one-line message, never a traceback, for foreseeable errors
        from ..bayes.posterior import PosteriorFileError
        from ..datasets.registry import DataError
        from ..datasets.sweeps import SweepValidationError

        foreseeable = (DataError, SweepValidationError, PosteriorFileError, FileNotFoundError,
                       ValueError)  # fmt: skip
        if isinstance(exc, foreseeable):
            typer.echo(f"error: {exc}", err=True)
            sys.exit(1)
        raise
