"""The `data` commands: where the released files are, download, verify."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import _fail, data_app

# --------------------------------------------------------------------------- data


@data_app.command("path")
def data_path(
    data_dir: Annotated[Path | None, typer.Option(help="Directory searched first.")] = None,
) -> None:
    """Print where each registered file resolves locally (no download)."""
    from ..datasets.registry import status

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
    from ..datasets.registry import DataError, fetch, registered_files

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
    from ..datasets.registry import status

    bad = False
    for rec in status(data_dir):
        verdict = "ok" if rec["ok"] else f"FAILED: {rec['problem']}"
        typer.echo(f"{rec['name']}\t{verdict}")
        bad |= not rec["ok"]
    raise typer.Exit(1 if bad else 0)
