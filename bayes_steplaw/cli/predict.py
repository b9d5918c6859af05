"""Commands that answer a plan: predict, recommend, plateau, plan-sweep; thin layers over the
API, which calls the one posterior's methods."""

import json
from pathlib import Path
from typing import Annotated

import typer

from .._validate import DEFAULT_TOL
from ._common import (
    BatchSequencesOpt,
    GroupOpt,
    ImplausibleOpt,
    JsonOpt,
    ParamsArg,
    PosteriorOpt,
    ProbOpt,
    SeqLenOpt,
    TokensArg,
    TolOpt,
    UnconvergedOpt,
    _fail,
    _jsonable,
    _quantities,
    app,
    batch_arg,
    call,
    check_memory,
    check_output_path,
    check_units,
    echo_json,
    extrapolation_notes,
    load_posterior,
    quantity,
    read_points,
    setup_note,
    split_groups,
    write_table,
)


def _check_prob(prob: float) -> None:
    if not 0 < prob < 1:
        _fail(f"--prob must be between 0 and 1; got {prob}")


def _checked_group(post, group: str) -> str:
    from ..api import check_group

    try:
        return check_group(post, group)
    except (KeyError, ValueError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))


def _seq_len(post, seq_len: int | None) -> int:
    return post.seq_len if seq_len is None else seq_len


# --------------------------------------------------------------------------- predict


def _bayes_table(post, N, D, group, groups, seq_len, kind, prob, unconverged):
    """Predictions of every point (one group, or a group per point) and the note."""
    import numpy as np
    import pandas as pd

    from ..api import predict as api_predict

    parts, note = [], ""
    for g, sel in split_groups(groups, group, len(N)):
        result = call(
            api_predict, N[sel], D[sel], group=str(g), seq_len=seq_len, kind=kind,
            posterior=post, allow_unconverged=unconverged,
        )  # fmt: skip
        parts.append(result.to_dataframe(prob).set_index(np.flatnonzero(sel)))
        note = result.describe(prob).rsplit("; group", 1)[0]
    return pd.concat(parts).sort_index().reset_index(drop=True), note


def _print_one(row, prob: float, note: str) -> None:
    pct = f"{prob:.0%}"
    typer.echo(
        f"N = {row['N']:.4g} parameters, D = {row['D']:.4g} tokens, seq_len = {row['seq_len']}"
    )
    for label, q, fmt in (("peak lr", "lr", ".3e"), ("batch (tokens)", "batch_tokens", ".4g"),
                          ("batch (seqs)", "batch_sequences", ".4g")):  # fmt: skip
        typer.echo(
            f"  {label:16s} {row[f'{q}_median']:{fmt}}   {pct} "
            f"[{row[f'{q}_lower']:{fmt}}, {row[f'{q}_upper']:{fmt}}]"
        )
    if "loss_median" in row:
        typer.echo(f"  its final loss   {row['loss_median']:.4f}   {pct} "
                   f"[{row['loss_lower']:.4f}, {row['loss_upper']:.4f}]")  # fmt: skip
    typer.echo(f"  ({note})")


# negative numbers reach parse_quantity (a one-line error) instead of reading as options
@app.command(context_settings={"ignore_unknown_options": True})
def predict(
    n: Annotated[
        str | None,
        typer.Argument(
            metavar="N", help="Non-embedding parameters (7e9, 7B); several: 1B,7B (commas)."
        ),
    ] = None,
    d: Annotated[
        str | None,
        typer.Argument(metavar="D", help="Training tokens (1.4e12, 1.4T); several: 100B,1.4T."),
    ] = None,
    grid: Annotated[
        Path | None,
        typer.Option(
            "--grid", metavar="FILE", help="CSV of points: columns N and D (optional: group)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Write the table to FILE (.csv or .json)."),
    ] = None,
    seq_len: SeqLenOpt = None,
    method: Annotated[
        str, typer.Option(help="'bayes' (the posterior) or 'paper' (published ensemble).")
    ] = "bayes",
    raw: Annotated[
        bool, typer.Option(help="With --method paper: print the upstream tool's exact output.")
    ] = False,
    prob: ProbOpt = 0.9,
    group: GroupOpt = "dense",
    kind: Annotated[
        str | None,
        typer.Option(
            help="What the interval is about: 'optimum' (the optimum of a new setting; "
            "default), 'sweep' (the best run a grid sweep finds) or 'law' (the law itself)."
        ),
    ] = None,
    posterior: PosteriorOpt = None,
    allow_unconverged: UnconvergedOpt = False,
    allow_implausible: ImplausibleOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The peak learning rate and batch size for N parameters and D tokens, with intervals.

    Several points at once: comma-separated values (every N with every D), e.g.
    `predict 1B,7B 100B,1.4T`, or `--grid points.csv` (one point per row); `--out FILE.csv`
    or `--out FILE.json` writes the table.
    """
    usage = "give N and D (e.g. 7e9 1.4e12), lists of them (1B,7B 100B,1.4T) or --grid FILE"
    (N, D), groups = read_points({"N": n, "D": d}, grid, usage=usage)
    many = grid is not None or len(N) > 1
    check_units(allow_implausible, N=N, D=D)
    _check_prob(prob)
    if out is not None:
        check_output_path(out, "--out")
    check_memory(len(N) * 600.0, "--grid", f"predicting {len(N)} points")
    post = None
    if method == "paper":
        from ..bootstrap import BootstrapOLS

        model = BootstrapOLS.from_published()
        seq_len = seq_len or 2048
        if raw:
            if many:
                _fail("--raw prints one point; drop it for several points")
            typer.echo(model.upstream_line(N[0], D[0], seq_len), nl=False)
            return
        if groups is not None:
            _fail("the grid file's group column needs --method bayes")
        table = model.predict(N, D, seq_len=seq_len, prob=prob)
        note = "percentile interval over the 1000 published bootstrap resamples"
    elif method == "bayes":
        if raw:
            _fail("--raw is only available with --method paper")
        post = load_posterior(posterior, "law")
        table, note = _bayes_table(post, N, D, group, groups, _seq_len(post, seq_len), kind,
                                   prob, allow_unconverged)  # fmt: skip
    else:
        _fail(f"--method must be 'bayes' or 'paper'; got {method!r}")
    if out is not None:
        write_table(table, out)
    setup = post.setup if post is not None else "the Step Law paper's setup (published fit)"
    if many:
        if as_json:
            records = json.loads(table.to_json(orient="records", double_precision=15))
            echo_json({"note": note, "setup": setup, "predictions": records})
        elif out is None:
            typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            typer.echo(f"({note}; for {setup})")
        else:
            typer.echo(f"wrote {len(table)} predictions to {out} ({note})")
        return
    row = table.iloc[0]
    if as_json:
        echo_json({"note": note, "setup": setup, **{k: _jsonable(v) for k, v in row.items()}})
        return
    if method == "paper":
        row = row.rename({c: f"{c}_median" for c in ("lr", "batch_tokens", "batch_sequences")})
    _print_one(row, prob, note)
    for note_line in extrapolation_notes(post, N[0], D[0]) if post is not None else []:
        typer.echo(f"  {note_line}")
    typer.echo(f"  (for {setup})")


# --------------------------------------------------------------------------- one run


def run_lines(post, N, D, lr, batch, group, prob, unconverged, seed: int = 0):
    """Lines and a JSON record of what the posterior says of one run: the loss it reports,
    its probability of diverging, both plateau probabilities, L*, and what its batch costs."""
    pct = f"{prob:.0%}"
    pred = call(post.predict_loss, N, D, lr, batch, group=group, seed=seed,
                allow_unconverged=unconverged).to_dataframe(prob).iloc[0]  # fmt: skip
    star = call(post.best_loss, N, D, group=group, seed=seed,
                allow_unconverged=unconverged).to_dataframe(prob).iloc[0]  # fmt: skip
    lines = [
        f"  final loss       {pred['loss_median']:.4f}   {pct} [{pred['loss_lower']:.4f}, "
        f"{pred['loss_upper']:.4f}]   (the smoothed final loss the run will report, given "
        "that it does not diverge)",
        f"  P(diverges)      {pred['p_diverge']:.3f}",
        f"  best loss L*     {star['loss_star_median']:.4f}   {pct} "
        f"[{star['loss_star_lower']:.4f}, {star['loss_star_upper']:.4f}]   (the bottom of this "
        "setting's loss surface)",
    ]
    record = {
        "loss_median": float(pred["loss_median"]), "loss_lower": float(pred["loss_lower"]),
        "loss_upper": float(pred["loss_upper"]), "p_diverge": float(pred["p_diverge"]),
        "loss_star_median": float(star["loss_star_median"]),
        "loss_star_lower": float(star["loss_star_lower"]),
        "loss_star_upper": float(star["loss_star_upper"]), "prob": prob,
    }  # fmt: skip
    return lines, record


def _cost_line(rec) -> str:
    return (
        f"  batch cost       {rec.cost:+.4f} in expected loss ({rec.cost / rec.expected_loss:+.2%})"
        f" against the best (lr {rec.best_lr:.3e}, batch {rec.best_batch_tokens:.4g} tokens)"
    )


# negative numbers reach parse_quantity (a one-line error) instead of reading as options
@app.command(context_settings={"ignore_unknown_options": True})
def plateau(
    n: ParamsArg,
    d: TokensArg,
    lr: Annotated[str, typer.Option("--lr", help="Peak learning rate, e.g. 3e-4.")],
    batch_tokens: Annotated[
        str | None,
        typer.Option("--batch-tokens", help="Batch size in tokens, e.g. 4M or 4194304."),
    ] = None,
    batch_sequences: BatchSequencesOpt = None,
    seq_len: SeqLenOpt = None,
    tol: TolOpt = DEFAULT_TOL,
    group: GroupOpt = "dense",
    prob: ProbOpt = 0.9,
    posterior: PosteriorOpt = None,
    allow_unconverged: UnconvergedOpt = False,
    allow_implausible: ImplausibleOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Will a run at (lr, batch) land on the plateau? Both plateau probabilities, the loss it
    will report, its odds of diverging, L* and what its batch costs, from one posterior."""
    from ..api import plateau_probability, recommend

    N, D = _quantities(n, d)
    lr_value = quantity(lr, "--lr")
    post = load_posterior(posterior)
    seq = _seq_len(post, seq_len)
    bs_value, bs_seqs = batch_arg(batch_tokens, batch_sequences, seq, required=True)
    check_units(allow_implausible, N=N, D=D, lr=lr_value, batch_tokens=bs_value,
                batch_sequences=bs_seqs, seq_len=seq)  # fmt: skip
    _check_prob(prob)
    group = _checked_group(post, group)
    p = {
        ref: float(call(plateau_probability, N, D, lr_value, bs_value, tol=tol, group=group,
                        reference=ref, posterior=post, allow_unconverged=allow_unconverged))
        for ref in ("optimum", "sweep")
    }  # fmt: skip
    rec = call(recommend, N, D, batch_tokens=bs_value, group=group, tol=tol, seq_len=seq,
               posterior=post, allow_unconverged=allow_unconverged)  # fmt: skip
    lines, record = run_lines(post, N, D, lr_value, bs_value, group, prob, allow_unconverged)
    notes = extrapolation_notes(post, N, D)
    if as_json:
        echo_json({
            "N": N, "D": D, "lr": lr_value, "batch_tokens": bs_value, "tol": tol,
            "group": group, "plateau_probability": p["optimum"],
            "plateau_probability_sweep": p["sweep"], **record,
            "best_lr_for_this_batch": rec.lr, "batch_cost": rec.cost,
            "best_lr": rec.best_lr, "best_batch_tokens": rec.best_batch_tokens,
            "extrapolation": [x.removeprefix("note: ") for x in notes], "setup": post.setup,
        })  # fmt: skip
        return
    typer.echo(f"N = {N:.4g} parameters, D = {D:.4g} tokens, group {group}")
    typer.echo(f"  lr {lr_value:.3e}, batch {bs_value:.4g} tokens ({bs_value / seq:.4g} "
               f"sequences of {seq})")  # fmt: skip
    typer.echo(f"  P(expected loss within {tol:.2%} of L*, no divergence)        "
               f"= {p['optimum']:.3f}")  # fmt: skip
    typer.echo(f"  P(reported loss within {tol:.2%} of a grid sweep's best run) = {p['sweep']:.3f}")
    for line in lines:
        typer.echo(line)
    typer.echo(f"  best lr for this batch {rec.lr:.3e}")
    typer.echo(_cost_line(rec))
    for note in notes:
        typer.echo(f"  {note}")
    typer.echo(setup_note(post))


@app.command(context_settings={"ignore_unknown_options": True})
def recommend(
    n: ParamsArg,
    d: TokensArg,
    lr: Annotated[
        str | None, typer.Option("--lr", help="Fix the learning rate; choose the batch for it.")
    ] = None,
    batch_tokens: Annotated[
        str | None,
        typer.Option("--batch-tokens", help="Fix the batch size (tokens); choose the lr for it."),
    ] = None,
    batch_sequences: BatchSequencesOpt = None,
    tol: TolOpt = DEFAULT_TOL,
    group: GroupOpt = "dense",
    seq_len: SeqLenOpt = None,
    prob: ProbOpt = 0.9,
    posterior: PosteriorOpt = None,
    allow_unconverged: UnconvergedOpt = False,
    allow_implausible: ImplausibleOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The (lr, batch) of least expected loss (the Bayes decision); with --batch-tokens (or
    --lr) fixed, the best lr (batch) for it. Also the loss the run will report, its odds of
    diverging, L* and what a fixed batch costs, from one posterior."""
    from ..api import recommend as api_recommend

    N, D = _quantities(n, d)
    post = load_posterior(posterior)
    seq = _seq_len(post, seq_len)
    lr_value = None if lr is None else quantity(lr, "--lr")
    bs_value, bs_seqs = batch_arg(batch_tokens, batch_sequences, seq)
    check_units(allow_implausible, N=N, D=D, lr=lr_value, batch_tokens=bs_value,
                batch_sequences=bs_seqs, seq_len=seq)  # fmt: skip
    _check_prob(prob)
    group = _checked_group(post, group)
    rec = call(api_recommend, N, D, lr=lr_value, batch_tokens=bs_value, group=group, tol=tol,
               seq_len=seq, posterior=post, allow_unconverged=allow_unconverged)  # fmt: skip
    lines, record = run_lines(post, N, D, rec.lr, rec.batch_tokens, group, prob,
                              allow_unconverged)  # fmt: skip
    notes = extrapolation_notes(post, N, D)
    if as_json:
        payload = rec.to_dict() | record | {"setup": post.setup}
        echo_json(payload | {"extrapolation": [x.removeprefix("note: ") for x in notes]})
        return
    fixed = set(rec.fixed)
    typer.echo(f"N = {N:.4g} parameters, D = {D:.4g} tokens, group {group}")
    typer.echo(f"  peak lr          {rec.lr:.3e}{' (fixed)' if 'lr' in fixed else ''}")
    typer.echo(f"  batch (tokens)   {rec.batch_tokens:.4g}"
               f"{' (fixed)' if 'batch_tokens' in fixed else ''}")  # fmt: skip
    typer.echo(f"  batch (seqs)     {rec.batch_sequences:.4g} of {seq} tokens")
    typer.echo(
        f"  expected excess loss {rec.expected_excess:.3%} over L* (a diverged run counted at "
        f"+50%); P(expected loss within {rec.tol:.2%} of L*) = {rec.plateau_probability:.3f}"
    )
    for line in lines:
        typer.echo(line)
    if fixed:
        typer.echo(_cost_line(rec))
    typer.echo(
        f"  (median optimum: lr {rec.lr_median_optimum:.3e}, batch "
        f"{rec.batch_tokens_median_optimum:.4g} tokens; the choice minimises expected loss)"
    )
    for note in notes:
        typer.echo(f"  {note}")
    typer.echo(setup_note(post))


_PLAN_OPTIONS = {"lr_step": "--grid-lr-step", "batch_step": "--grid-batch-step", "runs": "--runs"}


@app.command("plan-sweep", context_settings={"ignore_unknown_options": True})
def plan_sweep(
    n: ParamsArg,
    d: TokensArg,
    runs: Annotated[int, typer.Option("--runs", help="How many runs the sweep can afford.")] = 4,
    lr_step: Annotated[
        float, typer.Option("--grid-lr-step", help="Ratio between neighbouring grid lrs.")
    ] = 2**0.5,
    batch_step: Annotated[
        float, typer.Option("--grid-batch-step", help="Ratio between neighbouring grid batches.")
    ] = 2.0,
    group: GroupOpt = "dense",
    tol: TolOpt = DEFAULT_TOL,
    seq_len: SeqLenOpt = None,
    posterior: PosteriorOpt = None,
    allow_unconverged: UnconvergedOpt = False,
    allow_implausible: ImplausibleOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write the plan (.csv or .json).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """K (lr, batch) runs at N, D chosen to make the best of them as good as possible.

    Greedy: each run added is the grid point of largest posterior expected improvement of the
    sweep's best relative loss. Grid values are powers of the steps (2^(k/2) lrs and
    power-of-two batches by default).
    """
    from ..plan import plan_sweep as api_plan

    N, D = _quantities(n, d)
    check_units(allow_implausible, N=N, D=D)
    if out is not None:
        check_output_path(out, "--out")
    post = load_posterior(posterior)
    group = _checked_group(post, group)
    plan = call(
        api_plan, N, D, runs, group=group, lr_step=lr_step, batch_step=batch_step, tol=tol,
        seq_len=_seq_len(post, seq_len), posterior=post, allow_unconverged=allow_unconverged,
        options=_PLAN_OPTIONS,
    )  # fmt: skip
    table = plan.to_dataframe()
    if out is not None:
        write_table(table, out)
    notes = extrapolation_notes(post, N, D)
    if as_json:
        echo_json({
            "expected_best_relative_loss": plan.expected_best_relative_loss,
            "prob_any_within_tol": plan.prob_within_tol, "n_candidates": plan.n_candidates,
            "runs": json.loads(table.to_json(orient="records", double_precision=15)),
            "extrapolation": [x.removeprefix("note: ") for x in notes], "setup": post.setup,
        })  # fmt: skip
        return
    typer.echo(
        f"N = {N:.4g} parameters, D = {D:.4g} tokens, group {group}: {runs} run(s) from "
        f"{plan.n_candidates} grid points (lr x {lr_step:.4g}, batch x {batch_step:.4g})"
    )
    shown = table[["run", "lr", "batch_tokens", "batch_sequences", "expected_relative_loss",
                   "plateau_probability", "expected_best_relative_loss"]]  # fmt: skip
    typer.echo(shown.to_string(index=False, formatters={
        "lr": "{:.3e}".format, "batch_tokens": "{:.4g}".format,
        "batch_sequences": "{:.4g}".format, "expected_relative_loss": "{:.3%}".format,
        "plateau_probability": "{:.3f}".format, "expected_best_relative_loss": "{:.3%}".format,
    }))  # fmt: skip
    typer.echo(
        f"  expected relative loss of the best run: {plan.expected_best_relative_loss:.3%}; "
        f"P(at least one within {tol:.2%} of L*) = {plan.prob_within_tol:.3f}"
    )
    for note in notes:
        typer.echo(f"  {note}")
    typer.echo(setup_note(post))
    if out is not None:
        typer.echo(f"wrote {out}")
