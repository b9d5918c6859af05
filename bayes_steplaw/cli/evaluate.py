"""The held-out evaluation command: ``bayes-steplaw evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .._validate import DEFAULT_TOL
from ._common import GroupColOpt, TableSeqLenOpt, _fail, app, check_output_path


def _methods(values: list[str] | None) -> list[str] | None:
    """``--methods a,b --methods c`` as one list (None: every built-in method)."""
    if not values:
        return None
    return [m.strip() for v in values for m in v.split(",") if m.strip()]


@app.command("evaluate")
def evaluate_command(
    sweeps: Annotated[
        Path | None,
        typer.Argument(help="Sweep table (CSV), one row per run; default: the released data."),
    ] = None,
    split: Annotated[
        str, typer.Option(help="loso (leave one setting out), logo (one group) or extrapolate.")
    ] = "loso",
    out: Annotated[
        Path, typer.Option(help="Where to write the tidy table: one row per fold, method, setting.")
    ] = Path("evaluation.csv"),
    report: Annotated[
        Path | None, typer.Option(help="Also write the summary tables as Markdown here.")
    ] = None,
    runs_out: Annotated[
        Path | None,
        typer.Option(help="Also write the per-run plateau probabilities (landscape) here."),
    ] = None,
    records: Annotated[
        Path | None,
        typer.Option(
            help="Also write the summary tables as JSON records here (what `bayes-steplaw card "
            "NAME --evaluation FILE` puts into a model card)."
        ),
    ] = None,
    methods: Annotated[
        list[str] | None,
        typer.Option(
            help="Methods, comma-separated or repeated (default all: bayes, landscape, paper, "
            "ols, steplaw, openai, deepseek, porian, minicpm)."
        ),
    ] = None,
    group_col: GroupColOpt = None,
    logo_col: Annotated[
        str | None,
        typer.Option(help="logo: the column whose levels are held out (default the deepest)."),
    ] = None,
    quantile: Annotated[
        float, typer.Option(help="extrapolate: train on compute 6ND up to this quantile.")
    ] = 0.75,
    tol: Annotated[float, typer.Option(help="Plateau tolerance (relative loss).")] = DEFAULT_TOL,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Local worker processes (default: one per `chains` CPUs)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Run the folds on this Dask scheduler instead."),
    ] = None,
    chains: Annotated[int, typer.Option(min=1, help="Chains of each Bayesian refit.")] = 2,
    draws: Annotated[int, typer.Option(min=1, help="Draws per chain of each refit.")] = 500,
    tune: Annotated[int, typer.Option(min=0, help="Tuning steps per chain.")] = 500,
    seed: Annotated[int, typer.Option(min=0, help="Seed of everything random.")] = 0,
    seq_len: TableSeqLenOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress and no summary tables.")
    ] = False,
) -> None:
    """Held-out evaluation of the Bayesian choices beside the paper's recipe and published laws.

    Writes one row per (split, fold, method, setting) to --out (rel_loss as a fraction), then
    prints the summary tables: mean relative loss per family, interval coverage against
    nominal, widths, paired differences against `bayes` with bootstrap intervals, log scores
    and plateau reliability.
    """
    from .._io import write_csv, write_text
    from ..datasets.sweeps import SweepValidationError, read_sweeps
    from ..evaluate import SPLITS, EvaluationError, evaluate

    if split not in SPLITS:
        _fail(f"--split must be one of {list(SPLITS)}; got {split!r}")
    if not 0 < quantile < 1:
        _fail(f"--quantile must be between 0 and 1; got {quantile}")
    table = None
    if sweeps is not None:
        try:
            table = read_sweeps(sweeps, seq_len=seq_len)
        except (SweepValidationError, FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
    for option, path in (("--out", out), ("--report", report), ("--runs-out", runs_out),
                         ("--records", records)):  # fmt: skip
        if path is not None:
            check_output_path(path, option)  # before any work: the result must have a place
    try:
        result = evaluate(
            table,
            split,
            methods=_methods(methods),
            groups=tuple(group_col) if group_col else ("family", "variant"),
            column=logo_col,
            quantile=quantile,
            tol=tol,
            chains=chains,
            draws=draws,
            tune=tune,
            seed=seed,
            workers=workers,
            scheduler=scheduler,
            progress=False if quiet else None,
        )
    except (ValueError, ImportError, KeyError) as exc:
        _fail(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc))
    except EvaluationError as exc:
        _fail(str(exc), 1)
    result.to_csv(out)  # atomic (bayes_steplaw._io)
    if report is not None:
        write_text(report, result.to_markdown() + "\n", name="--report")
    if records is not None:
        write_text(records, json.dumps(result.to_records(), indent=1) + "\n", name="--records")
    if runs_out is not None:
        if result.runs is None:
            typer.echo(f"no method gave plateau probabilities: {runs_out} not written", err=True)
        else:
            write_csv(result.runs, runs_out, name="--runs-out")
    for message in result.meta.get("errors", []):
        typer.echo(f"warning: {message} (its rows have no scores)", err=True)
    if quiet:
        return
    typer.echo(result.report())
    written = [f"{out} ({len(result.table)} rows)"]
    written += [str(p) for p in (report, runs_out, records) if p is not None and p.exists()]
    typer.echo("wrote " + ", ".join(written))
