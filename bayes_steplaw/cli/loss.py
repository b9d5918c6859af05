"""The ``loss`` command: the final loss a run will report, its odds of diverging, the best loss."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    BatchSequencesOpt,
    GroupOpt,
    ImplausibleOpt,
    JsonOpt,
    PosteriorOpt,
    SeqLenOpt,
    UnconvergedOpt,
    _fail,
    app,
    batch_arg,
    call,
    check_input_file,
    check_memory,
    check_output_path,
    check_units,
    echo_json,
    extrapolation_notes,
    read_points,
    split_groups,
    write_table,
)

GRID_COLUMNS = ("N", "D", "lr", "batch_tokens")


def _points(n, d, lr, batch_tokens, grid):
    """The runs of a call: a grid file, or every combination of the listed values."""
    usage = ("give N and D with --lr and --batch-tokens (e.g. 1e9 2e10 --lr 2e-3 --batch-tokens "
             "1M; comma-separated lists give every combination) or --grid FILE")  # fmt: skip
    given = dict(zip(GRID_COLUMNS, (n, d, lr, batch_tokens)))
    options = {"lr": "--lr", "batch_tokens": "--batch-tokens"}
    values, group = read_points(given, grid, usage=usage, options=options)
    return (*values, group)


def load_loss_posterior(path: str | None):
    """The loss posterior in ``path`` (or the shipped ``models/loss.nc``), or a one-line error."""
    from ..bayes.loss import LossPosterior
    from ..bayes.posterior import PosteriorFileError, load_default

    try:
        post = LossPosterior.load(path) if path is not None else load_default("loss")
    except PosteriorFileError as exc:
        _fail(str(exc), 1 if path is None else 2)
    if not isinstance(post, LossPosterior):
        _fail(f"the shipped 'loss' model is a {type(post).__name__}, not a loss posterior", 1)
    return post


def _table(post, N, D, lr, bs, group, groups, kind, prob, unconverged, seed):
    """Predictions of every run (one group, or one per run) and the note on the interval."""
    import numpy as np
    import pandas as pd

    parts, note = [], ""
    for g, sel in split_groups(groups, group, len(N)):
        pred = call(
            post.predict_loss, N[sel], D[sel], lr[sel], bs[sel], group=str(g), kind=kind,
            seed=seed, allow_unconverged=unconverged,
        )  # fmt: skip
        parts.append(pred.to_dataframe(prob).set_index(np.flatnonzero(sel)))
        note = pred.describe(prob).rsplit("; group", 1)[0]
    return pd.concat(parts).sort_index().reset_index(drop=True), note


# negative numbers reach parse_quantity (a one-line error) instead of reading as options
@app.command(context_settings={"ignore_unknown_options": True})
def loss(
    n: Annotated[
        str | None, typer.Argument(metavar="N", help="Non-embedding parameters (7e9, 7B).")
    ] = None,
    d: Annotated[str | None, typer.Argument(metavar="D", help="Training tokens (1.4T).")] = None,
    lr: Annotated[
        str | None, typer.Option("--lr", help="Peak learning rate (2e-3); several: 1e-3,2e-3.")
    ] = None,
    batch_tokens: Annotated[
        str | None,
        typer.Option("--batch-tokens", help="Batch size in tokens (1M or 1048576); several."),
    ] = None,
    batch_sequences: BatchSequencesOpt = None,
    seq_len: SeqLenOpt = 2048,
    grid: Annotated[
        Path | None,
        typer.Option(
            "--grid",
            metavar="FILE",
            help="CSV of runs: columns N, D, lr, batch_tokens (optional: group).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Write the table to FILE (.csv or .json)."),
    ] = None,
    group: GroupOpt = "dense",
    kind: Annotated[
        str,
        typer.Option(
            help="'run': the loss the run will report (run noise included, given that it does "
            "not diverge); 'mean': its expected value."
        ),
    ] = "run",
    prob: Annotated[float, typer.Option(help="Predictive interval mass.")] = 0.9,
    seed: Annotated[
        int, typer.Option(help="Seed of the predictive draws.", min=0, max=2**32 - 1)
    ] = 0,
    posterior: PosteriorOpt = None,
    allow_unconverged: UnconvergedOpt = False,
    allow_implausible: ImplausibleOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Predict the final loss of a run at (lr, batch) for N parameters and D tokens.

    Also prints the probability that the run diverges and the setting's best loss L*.
    Several runs: comma-separated values (every combination of N, D, --lr and
    --batch-tokens) or `--grid runs.csv` (one run per row); `--out FILE.csv` writes the table.
    """
    batch, seqs = batch_arg(batch_tokens, batch_sequences, seq_len, several=True)
    N, D, LR, BS, groups = _points(n, d, lr, batch, grid)
    check_units(allow_implausible, N=N, D=D, lr=LR, batch_tokens=BS, seq_len=seq_len,
                batch_sequences=None if seqs is None else BS / seq_len)  # fmt: skip
    if not 0 < prob < 1:
        _fail(f"--prob must be between 0 and 1; got {prob}")
    if kind not in ("run", "mean"):
        _fail(f"--kind must be 'run' or 'mean'; got {kind!r}")
    if out is not None:
        check_output_path(out, "--out")
    post = load_loss_posterior(posterior)
    # a block of draws per 256 runs, plus the table: about 100 bytes per run and draw / 256
    check_memory(len(N) * 200.0 + 256 * post.n_samples * 80.0, "--grid", f"{len(N)} runs")
    table, note = _table(post, N, D, LR, BS, group, groups, kind, prob, allow_unconverged, seed)
    if out is not None:
        write_table(table, out)
    if len(table) > 1:
        if as_json:
            records = json.loads(table.to_json(orient="records", double_precision=15))
            echo_json({"note": note, "predictions": records})
        elif out is None:
            shown = [c for c in table.columns if not c.endswith("_outside")]
            typer.echo(table[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            typer.echo(f"({note})")
        else:
            typer.echo(f"wrote {len(table)} predictions to {out} ({note})")
        return
    row = table.iloc[0]
    g = str(row["group"])
    best = call(post.best_loss, N[0], D[0], group=g, seed=seed, allow_unconverged=allow_unconverged)
    b_lo, b_hi = best.interval(prob)
    notes = extrapolation_notes(post, N[0], D[0])
    if as_json:
        payload = {
            "note": note,
            **{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()},
            "best_loss_median": float(best.median()),
            "best_loss_lower": float(b_lo),
            "best_loss_upper": float(b_hi),
            "best_loss_note": best.describe(prob),
            "extrapolation": [x.removeprefix("note: ") for x in notes],
        }
        echo_json(payload)
        return
    pct = f"{prob:.0%}"
    typer.echo(f"N = {N[0]:.4g} parameters, D = {D[0]:.4g} tokens, group {g}")
    typer.echo(f"  lr {LR[0]:.3e}, batch {BS[0]:.4g} tokens")
    typer.echo(
        f"  final loss     {row['loss_median']:.4f}   {pct} [{row['loss_lower']:.4f}, "
        f"{row['loss_upper']:.4f}]   ({note})"
    )
    typer.echo(f"  P(diverges)    {row['p_diverge']:.3f}")
    about = best.describe(prob).split(" of ", 1)[1]
    typer.echo(
        f"  best loss L*   {float(best.median()):.4f}   {pct} [{float(b_lo):.4f}, "
        f"{float(b_hi):.4f}]   ({about})"
    )
    for x in notes:
        typer.echo(f"  {x}")


def loss_summary(N: float, D: float, lr: float, batch_tokens: float, group: str,
                 path: str | None, prob: float = 0.9) -> tuple[list[str], dict]:  # fmt: skip
    """Lines and a JSON record of the loss model's view of one run, for ``recommend`` and
    ``plateau``: the loss the run will report, its odds of diverging, and what its batch
    costs against the best (lr, batch) of the setting. Without a loss posterior for the group,
    one line says why."""
    from ..api import best_loss, check_group, predict_loss, resolve_posterior
    from ..bayes.posterior import PosteriorFileError

    try:
        post = resolve_posterior(path, "loss")
        check_group(post, group)
    except (PosteriorFileError, KeyError, TypeError) as exc:
        reason = str(exc.args[0] if exc.args else exc)
        return [f"  (no loss prediction: {reason})"], {"loss": None}
    pred = predict_loss(N, D, lr, batch_tokens, group=group, posterior=post,
                        allow_unconverged=True).to_dataframe(prob).iloc[0]  # fmt: skip
    cost = post.batch_cost(N, D, batch_tokens, group=group, prob=prob).iloc[0]
    star = best_loss(N, D, group=group, posterior=post, allow_unconverged=True)
    pct = f"{prob:.0%}"
    lines = [
        f"  final loss       {pred['loss_median']:.4f}   {pct} [{pred['loss_lower']:.4f}, "
        f"{pred['loss_upper']:.4f}]   (the smoothed final loss this run will report, given "
        f"that it does not diverge; P(diverges) = {pred['p_diverge']:.3f})",
        f"  best loss L*     {float(star.median()):.4f}   (the bottom of this setting's loss "
        "surface)",
        f"  batch cost       {cost['cost_mean']:+.4f} in expected loss at the best lr for this "
        f"batch ({cost['lr']:.3e}), {pct} [{cost['cost_lower']:+.4f}, {cost['cost_upper']:+.4f}]"
        f", against the best (lr {cost['best_lr']:.3e}, batch {cost['best_batch_tokens']:.4g})",
    ]
    record = {
        "loss_median": float(pred["loss_median"]),
        "loss_lower": float(pred["loss_lower"]),
        "loss_upper": float(pred["loss_upper"]),
        "p_diverge": float(pred["p_diverge"]),
        "best_loss_median": float(star.median()),
        "batch_cost_mean": float(cost["cost_mean"]),
        "batch_cost_lower": float(cost["cost_lower"]),
        "batch_cost_upper": float(cost["cost_upper"]),
        "loss_prob": prob,
    }
    return lines, {"loss": record}


@app.command("evaluate-loss")
def evaluate_loss(
    split: Annotated[
        str, typer.Option(help="loso, extrapolate, or both separated by a comma.")
    ] = "loso,extrapolate",
    out: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write the tidy rows (CSV) here.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write the tables as Markdown here.")
    ] = None,
    records: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Write the tables as records for `card loss --evaluation FILE`."
        ),
    ] = None,
    rows: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Score nothing: read the tidy rows of an earlier run."),
    ] = None,
    chains: Annotated[int, typer.Option(min=1, help="Chains of each refit.")] = 2,
    draws: Annotated[int, typer.Option(min=1, help="Draws per chain of each refit.")] = 500,
    tune: Annotated[int, typer.Option(min=0, help="Tuning steps per chain.")] = 500,
    seed: Annotated[int, typer.Option(min=0, help="Seed of everything random.")] = 0,
    surface: Annotated[str, typer.Option(help="Candidate surface: bowl, skew or full.")] = "full",
    best_law: Annotated[
        str, typer.Option(help="Candidate best-loss law: chinchilla or chinchilla-power.")
    ] = "chinchilla-power",
    shape_terms: Annotated[
        str, typer.Option(help="Shape parameters linear or quadratic in ln N, ln D.")
    ] = "quadratic",
    noise: Annotated[
        str, typer.Option(help="Run noise: hetero, hetero-tails or constant.")
    ] = "hetero-tails",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Score the loss model and two least-squares peers on held-out settings of the released
    data: every run of each held-out setting (loss_r2, loss_in_90, best_loss_err, ...).

    Each fold refits the loss model (minutes per fold on two cores: the whole of loso takes
    about an hour); --rows re-renders the tables of an earlier --out.
    """
    import pandas as pd

    from .._io import write_csv, write_text
    from ..evaluate import loss as loss_evaluation

    splits = [s.strip() for s in split.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("loso", "extrapolate")]
    if bad or not splits:
        _fail(f"--split takes loso and/or extrapolate; got {split!r}")
    for path, name in ((out, "--out"), (report, "--report"), (records, "--records")):
        if path is not None:
            check_output_path(path, name)
    if rows is not None:
        check_input_file(rows, "--rows")
        try:
            table = pd.read_csv(rows)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            _fail(f"--rows {rows} is not a readable CSV table: {exc}")
        missing = [c for c in ("split", "method", "setting", *loss_evaluation.METRICS)
                   if c not in table]  # fmt: skip
        if missing:
            _fail(f"--rows {rows} lacks column(s) {missing}: write it with evaluate-loss --out")
    else:
        from ..bayes.loss import LossModel

        try:
            model = LossModel(surface=surface, best_law=best_law, shape_terms=shape_terms,
                              noise=noise)  # fmt: skip
        except ValueError as exc:
            _fail(str(exc))
        table = call(loss_evaluation.run, splits=splits, model=model, chains=chains,
                     draws=draws, tune=tune, seed=seed, progress=not quiet)  # fmt: skip
    if out is not None:
        write_csv(table, out, name="--out")
    text = loss_evaluation.report(table)
    if report is not None:
        write_text(report, text + "\n", name="--report")
    if records is not None:
        write_text(records, json.dumps(loss_evaluation.to_records(table), indent=1, default=float),
                   name="--records")  # fmt: skip
    typer.echo(text)
