"""The ``loss`` command: the final loss a run will report, its odds of diverging, the best loss."""

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
    ProbOpt,
    SeqLenOpt,
    UnconvergedOpt,
    _fail,
    app,
    batch_arg,
    call,
    check_memory,
    check_output_path,
    check_units,
    echo_json,
    extrapolation_notes,
    load_posterior,
    read_points,
    setup_note,
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
    seq_len: SeqLenOpt = None,
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
    prob: ProbOpt = 0.9,
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
    post = None
    if seq_len is None and batch_sequences is not None:
        # a batch in sequences is converted with the fit's sequence length, as everywhere
        post = load_posterior(posterior)
        seq_len = post.seq_len
    batch, seqs = batch_arg(batch_tokens, batch_sequences, seq_len, several=True)
    N, D, LR, BS, groups = _points(n, d, lr, batch, grid)
    check_units(allow_implausible, N=N, D=D, lr=LR, batch_tokens=BS,
                batch_sequences=None if seqs is None else BS / seq_len,
                **({} if seq_len is None else {"seq_len": seq_len}))  # fmt: skip
    if not 0 < prob < 1:
        _fail(f"--prob must be between 0 and 1; got {prob}")
    if kind not in ("run", "mean"):
        _fail(f"--kind must be 'run' or 'mean'; got {kind!r}")
    if out is not None:
        check_output_path(out, "--out")
    post = post or load_posterior(posterior)
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
    best = call(post.best_loss, N[0], D[0], group=g, seed=seed,
                allow_unconverged=allow_unconverged).to_dataframe(prob).iloc[0]  # fmt: skip
    notes = extrapolation_notes(post, N[0], D[0])
    if as_json:
        payload = {
            "note": note,
            **{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()},
            **{k: float(best[k]) for k in ("loss_star_median", "loss_star_lower",
                                           "loss_star_upper")},
            "extrapolation": [x.removeprefix("note: ") for x in notes],
            "setup": post.setup,
        }  # fmt: skip
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
    typer.echo(
        f"  best loss L*   {best['loss_star_median']:.4f}   {pct} [{best['loss_star_lower']:.4f}, "
        f"{best['loss_star_upper']:.4f}]   (the bottom of this setting's loss surface)"
    )
    for x in notes:
        typer.echo(f"  {x}")
    typer.echo(setup_note(post))
