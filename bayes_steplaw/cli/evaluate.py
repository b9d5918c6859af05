"""The held-out evaluation command: ``bayes-steplaw evaluate``."""

import json
from pathlib import Path
from typing import Annotated

import typer

from .._validate import DEFAULT_TOL
from ._common import GroupColOpt, TableSeqLenOpt, _fail, app, check_output_path


def _names(values: list[str] | None) -> list[str] | None:
    """``--method a,b --method c`` as one list (None: the default)."""
    if not values:
        return None
    return [m.strip() for v in values for m in v.split(",") if m.strip()]


def _k(text: str) -> tuple[int, ...]:
    """``--k 0,1,2,4`` as integers, or a one-line error."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = None
    if not values or any(v < 0 for v in values):
        _fail(f"--k must be integers >= 0 separated by commas (e.g. 0,1,2,4); got {text!r}")
    return tuple(values)


@app.command("evaluate")
def evaluate_command(
    sweeps: Annotated[
        Path | None,
        typer.Argument(help="Sweep table (CSV), one row per run; default: the released data."),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="loso (leave one setting out), logo (one group), extrapolate (the largest "
            "compute) or transfer (a group from its k smallest settings)."
        ),
    ] = "loso",
    methods: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            "--methods",
            help="Methods, comma-separated or repeated (default all: bayes, optimum, paper, "
            "ols, peer-chinchilla-bowl, peer-quadratic, steplaw, openai, deepseek, porian, "
            "minicpm).",
        ),
    ] = None,
    tasks: Annotated[
        list[str] | None,
        typer.Option(
            "--task",
            "--tasks",
            help="Tasks, comma-separated or repeated (default all: choice, interval, loss, "
            "divergence, plateau). A method that cannot do a task is skipped for it.",
        ),
    ] = None,
    k: Annotated[
        str,
        typer.Option(
            "--k", help="transfer: how many of the held-out group's smallest settings train."
        ),
    ] = "0,1,2,4",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the tidy table: one row per fold, method, setting (default "
            "evaluation.csv; with --rows, only when given)."
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the summary tables as Markdown here.")
    ] = None,
    runs_out: Annotated[
        Path | None,
        typer.Option(
            help="Also write one row per held-out run (run forecasts, plateau probabilities)."
        ),
    ] = None,
    records: Annotated[
        Path | None,
        typer.Option(
            help="Also write the summary tables as JSON records here (what `bayes-steplaw card "
            "NAME --evaluation FILE` puts into a model card)."
        ),
    ] = None,
    rows: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Fit nothing: re-read the table of an earlier --out (checked, at most 64 MiB "
            "and 100,000 rows) and render its summaries.",
        ),
    ] = None,
    run_rows: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="With --rows: the per-run table of its --runs-out."),
    ] = None,
    baseline: Annotated[
        str, typer.Option(help="The method the paired differences are taken against.")
    ] = "bayes",
    group_col: GroupColOpt = None,
    logo_col: Annotated[
        str | None,
        typer.Option(
            help="logo, transfer: the column whose levels are held out (default the deepest)."
        ),
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
    """Held-out evaluation of every method on every task, on the same folds.

    Writes one row per (split, fold, method, setting) to --out (rel_loss as a fraction), then
    prints the summary tables: the choice (mean relative loss per family), the intervals
    (coverage against nominal, widths, log scores), the loss of every run (R², RMSE, coverage,
    log score), divergence and plateau probabilities (reliability, Brier scores), paired
    differences against --baseline with bootstrap intervals, and under --split transfer
    coverage, width and bias against k. Nothing is written before every input is read and
    checked.
    """
    from .._io import OutputPathError, write_csv, write_text
    from ..evaluate import SPLITS, EvaluationError, RowsError, evaluate
    from ..evaluate.protocol import check_tasks
    from ..evaluate.result import Evaluation

    if split not in SPLITS:
        _fail(f"--split must be one of {list(SPLITS)}; got {split!r}")
    if not 0 < quantile < 1:
        _fail(f"--quantile must be between 0 and 1; got {quantile}")
    ks = _k(k)
    try:
        task_list = check_tasks(_names(tasks))
    except ValueError as exc:
        _fail(str(exc).replace("task(s)", "--task"))
    if rows is None and run_rows is not None:
        _fail("--run-rows goes with --rows (the per-run table of the same evaluation)")
    if rows is not None and sweeps is not None:
        _fail("give a sweep table to evaluate or --rows FILE to re-render, not both")
    if rows is None and out is None:
        out = Path("evaluation.csv")
    outputs = (("--out", out), ("--report", report), ("--runs-out", runs_out),
               ("--records", records))  # fmt: skip
    for option, path in outputs:
        if path is not None:
            check_output_path(path, option)  # before any work: the result must have a place
    if rows is not None:
        try:
            result = Evaluation.from_csv(rows, run_rows, baseline=baseline)
        except RowsError as exc:
            _fail(str(exc))
        repeated = result.table.attrs.get("repeated_rows", 0)
        if repeated and not quiet:
            typer.echo(f"note: {repeated} repeated row(s) of {rows} counted once", err=True)
    else:
        table = None
        if sweeps is not None:
            from ..datasets.sweeps import SweepValidationError, read_sweeps

            try:
                table = read_sweeps(sweeps, seq_len=seq_len)
            except (SweepValidationError, FileNotFoundError, ValueError) as exc:
                _fail(str(exc))
        try:
            result = evaluate(
                table, split, _names(methods), task_list,
                groups=tuple(group_col) if group_col else ("family", "variant"),
                column=logo_col, quantile=quantile, k=ks, tol=tol, chains=chains, draws=draws,
                tune=tune, seed=seed, workers=workers, scheduler=scheduler,
                progress=False if quiet else None,
            )  # fmt: skip
        except (ValueError, ImportError, KeyError) as exc:
            _fail(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc))
        except EvaluationError as exc:
            _fail(str(exc), 1)
        result.baseline = baseline
    # everything rendered before anything is written: a failure leaves no partial output
    texts = {}
    if report is not None:
        texts["--report"] = result.to_markdown() + "\n"
    if records is not None:
        try:
            texts["--records"] = json.dumps(result.to_records(), indent=1, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:
            _fail(f"the summary tables cannot be written as JSON records: {exc}", 1)
    if runs_out is not None and result.runs is None:
        typer.echo(
            f"no method forecast runs or gave plateau probabilities: {runs_out} not written",
            err=True,
        )
    try:
        if out is not None:
            write_csv(result.table, out, name="--out")  # atomic, formulas escaped
        if runs_out is not None and result.runs is not None:
            write_csv(result.runs, runs_out, name="--runs-out")
        if report is not None:
            write_text(report, texts["--report"], name="--report")
        if records is not None:
            write_text(records, texts["--records"], name="--records")
    except OutputPathError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"could not write the results: {exc.strerror or exc}", 1)
    for message in result.meta.get("errors", []):
        typer.echo(f"warning: {message} (its rows have no scores)", err=True)
    if quiet:
        return
    typer.echo(result.report())
    written = [f"{out} ({len(result.table)} rows)"] if out is not None else []
    written += [str(p) for p in (report, runs_out, records) if p is not None and p.exists()]
    if written:
        typer.echo("wrote " + ", ".join(written))
