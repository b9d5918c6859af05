"""The `data` commands: where the released files are, download, verify."""

from pathlib import Path
from typing import Annotated

import typer

from ._common import _fail, data_app

# The group's help is set here, beside the commands it describes (an explicit callback help
# takes precedence over the ``Typer(help=...)`` in _common).
DATA_HELP = """Locate, download and verify the released Step Law data.

Each file is looked for in --data-dir, then in $BAYES_STEPLAW_DATA, in data/ of a source
checkout and in the user cache; only then is it downloaded into the cache, and kept only
when its size and sha256 match the registry. An entry named like a data file that is not a
regular file (a FIFO, a device, a directory) is reported and skipped, never read.

\b
Environment:
  BAYES_STEPLAW_DATA     a directory holding the released CSV files (searched first)
  BAYES_STEPLAW_CACHE    where downloads are kept (default: the user cache directory,
                         ~/.cache/bayes-steplaw on Linux)
  BAYES_STEPLAW_URL      base address to download from instead of the pinned upstream
                         commit, e.g. a mirror (http:// or https://)
  BAYES_STEPLAW_OFFLINE  1, true or yes: never download; a missing file is an error
  BAYES_STEPLAW_TIMEOUT  seconds one download may take in all (default 300)
"""


@data_app.callback(help=DATA_HELP)
def data_group() -> None:
    """The ``data`` group (its help is ``DATA_HELP``)."""


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
