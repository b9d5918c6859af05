"""Command-line interface: a thin layer over the public API, one module per command group.

Heavy libraries (PyMC, PyTensor) are imported only by the commands that fit.
"""

from __future__ import annotations

import sys

import typer

from . import data, fit, logs, predict  # noqa: F401  (each module registers its commands)
from ._common import app, parse_quantity

__all__ = ["app", "main", "parse_quantity"]


def main() -> None:
    """Entry point of the ``bayes-steplaw`` script."""
    try:
        app()
    except Exception as exc:  # a one-line message, never a traceback, for foreseeable errors
        from ..datasets.registry import DataError
        from ..datasets.sweeps import SweepValidationError

        if isinstance(exc, (DataError, SweepValidationError, FileNotFoundError, ValueError)):
            typer.echo(f"error: {exc}", err=True)
            sys.exit(1)
        raise
