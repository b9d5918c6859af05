"""The `export-web` command: the planner page's JSON data from one loss posterior."""

from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    PosteriorOpt,
    UnconvergedOpt,
    _fail,
    app,
    call,
    check_output_path,
    load_posterior,
)

_GONE = typer.Option(hidden=True, metavar="FILE")


@app.command("export-web")
def export_web(
    out: Annotated[
        Path, typer.Argument(metavar="OUT.json", help="JSON file to write, for docs/planner.html.")
    ],
    draws: Annotated[
        int, typer.Option(help="Posterior draws exported (a few thousand at most).")
    ] = 1000,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the thinning and of each surface's draws.", min=0, max=2**32 - 1
        ),
    ] = 0,
    posterior: PosteriorOpt = None,
    allow_unconverged: UnconvergedOpt = False,
    optimum: Annotated[str | None, _GONE] = None,
    landscape: Annotated[str | None, _GONE] = None,
) -> None:
    """Write the posterior draws the planner page (docs/planner.html) computes from.

    The page reads _static/planner.json beside it; the docs build runs `bayes-steplaw
    export-web docs/_static/planner.json`. `--posterior FILE` exports your own loss posterior
    (from `fit`): its groups fill the page's group menu. The page's numbers equal those of
    recommend, plateau, predict --kind optimum|law and loss on the same thinned draws
    (Posterior.subsample(draws, seed)) with the same seed.
    """
    from .._io import display_path
    from ..web import MAX_DRAWS
    from ..web import export_web as write

    if not 10 <= draws <= MAX_DRAWS:
        _fail(f"--draws must be between 10 and {MAX_DRAWS} (the page stays small); got {draws}")
    check_output_path(out, "OUT.json")  # before any work: the result must have a place
    if optimum is not None or landscape is not None:
        _fail(
            "export-web exports one loss posterior now (the optimum and landscape posteriors "
            "are no longer used): pass it with --posterior FILE"
        )
    post = load_posterior(posterior)
    n = min(draws, post.n_samples)
    try:
        # the path, not the loaded posterior: the page names the file (loaded once, cached)
        path = call(write, out, posterior, n_draws=draws, seed=seed,
                    allow_unconverged=allow_unconverged)  # fmt: skip
    except OSError as exc:  # late: a full disk, the folder removed meanwhile
        _fail(f"could not write {display_path(out)}: {exc.strerror or exc}; nothing was "
              "replaced", 1)  # fmt: skip
    size = path.stat().st_size
    groups = ", ".join(post.groups_seen)
    typer.echo(
        f"wrote {display_path(path)} ({size / 1e6:.2f} MB, {n} draws of the loss posterior; "
        f"groups {groups} and new)"
    )
