"""The `export-web` command: the planner page's JSON data from the shipped posteriors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._common import _fail, app, call, check_output_path, load_posterior


@app.command("export-web")
def export_web(
    out: Annotated[
        Path, typer.Argument(metavar="OUT.json", help="JSON file to write, for docs/planner.html.")
    ],
    draws: Annotated[
        int, typer.Option(help="Posterior draws exported per model (a few thousand at most).")
    ] = 2000,
    seed: Annotated[
        int,
        typer.Option(help="Seed of the thinning and the new-group draws.", min=0, max=2**32 - 1),
    ] = 0,
    optimum: Annotated[
        str | None,
        typer.Option(metavar="FILE", help="Optimum posterior file; default: the shipped one."),
    ] = None,
    landscape: Annotated[
        str | None,
        typer.Option(metavar="FILE", help="Landscape posterior file; default: the shipped one."),
    ] = None,
) -> None:
    """Write the posterior draws the planner page (docs/planner.html) computes from.

    The page reads _static/planner.json beside it; the docs build runs `bayes-steplaw
    export-web docs/_static/planner.json`. Its numbers equal those of predict, plateau and
    recommend on the same thinned draws (Posterior.subsample(draws, seed)).
    """
    from .._io import display_path
    from ..web import export_web as write

    if not 10 <= draws <= 5000:
        _fail(f"--draws must be between 10 and 5000 (the page stays small); got {draws}")
    check_output_path(out, "OUT.json")  # before any work: the result must have a place
    post = load_posterior(optimum, "law")
    land = load_posterior(landscape, "landscape")
    # the page opens with predict's default kind (bayes_steplaw.api.DEFAULT_KIND)
    try:
        path = call(write, out, post, land, n_draws=draws, seed=seed)
    except OSError as exc:  # late: a full disk, the folder removed meanwhile
        _fail(f"could not write {display_path(out)}: {exc.strerror or exc}; nothing was "
              "replaced", 1)  # fmt: skip
    size = path.stat().st_size
    typer.echo(
        f"wrote {display_path(path)} ({size / 1e6:.2f} MB, {min(draws, post.n_samples)} draws "
        "per model)"
    )
    for item in json.loads(path.read_text())["kinds_unavailable"]:
        typer.echo(f"  kind {item['name']!r} left out: {item['reason']}")
