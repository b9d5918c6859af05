"""Commands that fit or reproduce: fit, compare, reproduce."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .._validate import DEFAULT_TOL
from ._common import PosteriorOpt, _fail, app, call, load_posterior

# --------------------------------------------------------------------------- reproduce


@app.command()
def reproduce(
    threshold: Annotated[float, typer.Option(help="Plateau filter (relative loss).")] = DEFAULT_TOL,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the refit.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the refit's resampling.")] = 0,
) -> None:
    """Paper's Table 2 beside the published ensemble mean and a refit on the released dense runs."""
    from .. import load_sweeps
    from ..bootstrap import BootstrapOLS, reproduction_table

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


# --------------------------------------------------------------------------- fit, compare
# (the optimum-model commands `fit` and `compare` live below this line)


@app.command("fit")
def fit_command(
    sweeps: Annotated[Path, typer.Argument(help="Sweep table (CSV), one row per run.")],
    out: Annotated[Path, typer.Option(help="Where to write the posterior (netCDF).")] = Path(
        "posterior.nc"
    ),
    group_col: Annotated[
        list[str] | None,
        typer.Option(help="Group column, outermost first; repeat for nested/crossed groups."),
    ] = None,
    model: Annotated[str, typer.Option(help="'optimum' or 'landscape'.")] = "optimum",
    threshold: Annotated[float, typer.Option(help="Plateau filter (relative loss).")] = DEFAULT_TOL,
    seq_len: Annotated[
        int | None, typer.Option(help="Sequence length when the table has no seq_len.")
    ] = None,
    sampler: Annotated[str | None, typer.Option(help="nutpie, pymc or numpyro.")] = None,
    chains: Annotated[int, typer.Option(min=1)] = 4,
    draws: Annotated[int, typer.Option(min=1)] = 1000,
    tune: Annotated[int, typer.Option(min=0)] = 1000,
    seed: Annotated[int, typer.Option()] = 0,
    batch_depends_on_n: Annotated[
        bool, typer.Option("--batch-depends-on-n", help="Add δ·ln N to the batch law.")
    ] = False,
) -> None:
    """Fit the hierarchical Step Law to your sweep and write the posterior."""
    import warnings

    from ..bayes.model import fit
    from ..bayes.sampling import ConvergenceWarning
    from ..datasets.sweeps import SweepValidationError, read_sweeps

    try:
        table = read_sweeps(sweeps, seq_len=seq_len)
    except (SweepValidationError, FileNotFoundError) as exc:
        _fail(str(exc))
    groups = tuple(group_col) if group_col else ("family", "variant")
    kwargs = {"threshold": threshold} if model == "optimum" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported below, in full
        try:
            post = fit(
                table,
                model=model,
                groups=groups,
                batch_depends_on_N=batch_depends_on_n,
                sampler=sampler,
                chains=chains,
                draws=draws,
                tune=tune,
                seed=seed,
                progressbar=sys.stderr.isatty(),
                **kwargs,
            )
        except (ValueError, ImportError) as exc:
            _fail(str(exc))
    post.save(out)
    diag = post.diagnostics
    typer.echo(f"wrote {out}: {post}")
    typer.echo(
        f"diagnostics: max R-hat {diag['max_r_hat']:.4f}, min bulk ESS {diag['min_ess_bulk']:.0f}, "
        f"min tail ESS {diag['min_ess_tail']:.0f}, divergences {diag['divergences']}, "
        f"fit {post.metadata['fit_seconds']:.1f} s"
    )
    if not post.converged:
        typer.echo("NOT CONVERGED: " + "; ".join(diag["problems"]), err=True)
        raise typer.Exit(3)


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="Group, e.g. moe or moe/1in8.")],
    b: Annotated[str, typer.Argument(help="Group to compare against, e.g. dense.")],
    posterior: PosteriorOpt = None,
    prob: Annotated[float, typer.Option(help="Interval mass.")] = 0.9,
) -> None:
    """Posterior contrast of the lr and batch offsets of group A against group B."""
    if not 0 < prob < 1:
        _fail(f"--prob must be between 0 and 1; got {prob}")
    post = load_posterior(posterior, "optimum")
    table = call(post.compare_offsets, a, b, prob=prob, scale="ratio")
    typer.echo(table.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(
        f"(ratio of {a}'s optimum to {b}'s at the same N and D: posterior mean, median and "
        f"{prob:.0%} equal-tailed interval; prob_positive = P({a} > {b}))"
    )


@app.command()
def card(
    name: Annotated[str, typer.Argument(help="Shipped model: optimum or landscape.")],
    refit: Annotated[
        bool,
        typer.Option(
            "--refit", help="Fit the model on the released data first and write NAME.nc too."
        ),
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option(help="Folder of NAME.nc and NAME.md; default: models/.")
    ] = None,
) -> None:
    """Write the model card NAME.md of a shipped model (with --refit, its posterior too)."""
    from ..bayes.card import write_model

    if name not in ("optimum", "landscape"):
        _fail(f"NAME must be 'optimum' or 'landscape'; got {name!r}")
    post = call(write_model, name, out_dir, refit=refit, progressbar=sys.stderr.isatty())
    typer.echo(f"wrote the card of {post}")
    if not post.converged:
        raise typer.Exit(1)
