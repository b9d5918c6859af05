"""Commands that answer a plan: predict, plateau, recommend, plan-sweep."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated

import typer

from .._validate import DEFAULT_TOL
from ._common import (
    BatchSequencesOpt,
    GroupOpt,
    ImplausibleOpt,
    JsonOpt,
    LossPosteriorOpt,
    ParamsArg,
    PosteriorOpt,
    SeqLenOpt,
    TokensArg,
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
    split_groups,
    write_table,
)
from .loss import loss_summary

# --------------------------------------------------------------------------- predict


def _points(n: str | None, d: str | None, grid: Path | None):
    """The (N, D[, group]) points of a predict call, and whether there is more than one."""
    usage = "give N and D (e.g. 7e9 1.4e12), lists of them (1B,7B 100B,1.4T) or --grid FILE"
    (N, D), group = read_points({"N": n, "D": d}, grid, usage=usage)
    return N, D, group, grid is not None or len(N) > 1


def _bayes_table(post, N, D, group, groups, seq_len, kind, prob, unconverged):
    """Bayes predictions of every point (one group, or a group per point) and the note."""
    import numpy as np
    import pandas as pd

    from ..api import predict as api_predict

    if groups is None:
        result = call(
            api_predict, N, D, group=group, seq_len=seq_len, kind=kind, posterior=post,
            allow_unconverged=unconverged,
        )  # fmt: skip
        return result.to_dataframe(prob=prob), result.describe(prob)
    parts, note = [], ""
    for g, sel in split_groups(groups, group, len(N)):
        result = call(
            api_predict, N[sel], D[sel], group=g, seq_len=seq_len, kind=kind, posterior=post,
            allow_unconverged=unconverged,
        )  # fmt: skip
        parts.append(result.to_dataframe(prob=prob).set_index(np.flatnonzero(sel)))
        note = result.describe(prob).rsplit(", group", 1)[0]
    return pd.concat(parts).sort_index().reset_index(drop=True), note


def _print_one(row, N, D, seq_len, prob, note) -> None:
    pct = f"{prob:.0%}"
    typer.echo(f"N = {N:.4g} parameters, D = {D:.4g} tokens, seq_len = {seq_len}")
    typer.echo(
        f"  peak lr          {row['lr']:.3e}   {pct} [{row['lr_lower']:.3e}, {row['lr_upper']:.3e}]"
    )
    typer.echo(
        f"  batch (tokens)   {row['batch_tokens']:.4g}   {pct} "
        f"[{row['batch_tokens_lower']:.4g}, {row['batch_tokens_upper']:.4g}]"
    )
    typer.echo(
        f"  batch (seqs)     {row['batch_sequences']:.4g}   {pct} "
        f"[{row['batch_sequences_lower']:.4g}, {row['batch_sequences_upper']:.4g}]"
    )
    typer.echo(f"  ({note})")
    for name in ("N", "D"):
        decades = row.get(f"{name}_decades_outside", 0.0)
        if decades > 0:
            typer.echo(
                f"  note: {name} lies {decades:.2f} orders of magnitude outside the fitted data's "
                f"{name} range: this is an extrapolation of the law"
            )


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
    seq_len: SeqLenOpt = 2048,
    method: Annotated[
        str, typer.Option(help="'bayes' (shipped posterior) or 'paper' (published ensemble).")
    ] = "bayes",
    raw: Annotated[
        bool, typer.Option(help="With --method paper: print the upstream tool's exact output.")
    ] = False,
    prob: Annotated[float, typer.Option(help="Credible / percentile interval mass.")] = 0.9,
    group: GroupOpt = "dense",
    kind: Annotated[
        str | None,
        typer.Option(
            help="What the interval is about: 'sweep' (the best run of a grid sweep), "
            "'centre' (the optimum of a new setting) or 'law' (the law itself); default: the "
            "posterior's own (sweep for the shipped one)."
        ),
    ] = None,
    law: Annotated[bool, typer.Option("--law", help="Same as --kind law (old spelling).")] = False,
    posterior: PosteriorOpt = None,
    allow_unconverged: UnconvergedOpt = False,
    allow_implausible: ImplausibleOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Recommend the peak learning rate and batch size for N parameters and D tokens.

    Several points at once: comma-separated values (every N with every D), e.g.
    `predict 1B,7B 100B,1.4T`, or `--grid points.csv` (one point per row); `--out FILE.csv`
    or `--out FILE.json` writes the table.
    """
    from ..api import DEFAULT_KIND

    N, D, groups, many = _points(n, d, grid)
    check_units(allow_implausible, N=N, D=D)
    if not 0 < prob < 1:
        _fail(f"--prob must be between 0 and 1; got {prob}")
    if out is not None:
        check_output_path(out, "--out")
    check_memory(len(N) * 600.0, "--grid", f"predicting {len(N)} points")
    if method == "paper":
        from ..bootstrap import BootstrapOLS

        model = BootstrapOLS.from_published()
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
        kind = "law" if law else (kind or DEFAULT_KIND)
        table, note = _bayes_table(
            post, N, D, group, groups, seq_len, kind, prob, allow_unconverged
        )
    else:
        _fail(f"--method must be 'bayes' or 'paper'; got {method!r}")
    if out is not None:
        write_table(table, out)
    if many:
        if as_json:
            records = json.loads(table.to_json(orient="records", double_precision=15))
            echo_json({"note": note, "predictions": records})
        elif out is None:
            shown = [c for c in table.columns if c not in ("seq_len",)]
            typer.echo(table[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            typer.echo(f"({note})")
        else:
            typer.echo(f"wrote {len(table)} predictions to {out} ({note})")
        return
    row = table.iloc[0]
    if as_json:
        echo_json({"note": note, **{k: _jsonable(v) for k, v in row.items()}})
        return
    _print_one(row, N[0], D[0], seq_len, prob, note)


# --------------------------------------------------------------------------- landscape
# (the landscape commands `plateau`, `recommend` and `plan-sweep` live below this line)


def _check_landscape_args(tol: float, group: str, post) -> None:
    from ..api import check_group

    if not (math.isfinite(tol) and 0 < tol < 1):
        _fail(f"--tol must be a relative loss between 0 and 1 (e.g. {DEFAULT_TOL}); got {tol}")
    try:
        check_group(post, group)
    except (KeyError, ValueError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))


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
    seq_len: SeqLenOpt = 2048,
    tol: Annotated[
        float, typer.Option(help=f"Relative-loss tolerance ({DEFAULT_TOL} = {DEFAULT_TOL:.2%}).")
    ] = DEFAULT_TOL,
    group: GroupOpt = "dense",
    predictive: Annotated[
        bool, typer.Option("--predictive", help="Include run-to-run loss noise.")
    ] = False,
    posterior: PosteriorOpt = None,
    loss_posterior: LossPosteriorOpt = None,
    allow_unconverged: UnconvergedOpt = False,
    allow_implausible: ImplausibleOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Probability that a run at (lr, batch) finishes within TOL of the setting's best loss.

    Also prints the loss the run will report and what its batch costs in loss (loss model).
    """
    from ..api import plateau_probability, recommend

    N, D = _quantities(n, d)
    lr_value = quantity(lr, "--lr")
    bs_value, bs_seqs = batch_arg(batch_tokens, batch_sequences, seq_len, required=True)
    check_units(allow_implausible, N=N, D=D, lr=lr_value, batch_tokens=bs_value,
                batch_sequences=bs_seqs, seq_len=seq_len)  # fmt: skip
    post = load_posterior(posterior, "landscape")
    _check_landscape_args(tol, group, post)
    p = call(
        plateau_probability, N, D, lr_value, bs_value, tol=tol, group=group,
        predictive=predictive, posterior=post, allow_unconverged=allow_unconverged,
    )  # fmt: skip
    rec = call(
        recommend, N, D, group=group, tol=tol, posterior=post, allow_unconverged=allow_unconverged
    )
    notes = extrapolation_notes(post, N, D)
    what = "including run noise" if predictive else "expected loss; run noise excluded"
    loss_lines, loss_record = loss_summary(N, D, lr_value, bs_value, group, loss_posterior)
    if as_json:
        payload = {
            "N": N,
            "D": D,
            "lr": lr_value,
            "batch_tokens": bs_value,
            "tol": tol,
            "group": group,
            "predictive": predictive,
            "plateau_probability": float(p),
            "recommended_lr": float(rec.lr),
            "recommended_batch_tokens": float(rec.batch_tokens),
            "extrapolation": [note.removeprefix("note: ") for note in notes],
            **loss_record,
        }
        echo_json(payload)
        return
    typer.echo(f"N = {N:.4g} parameters, D = {D:.4g} tokens, group {group}")
    typer.echo(f"  lr {lr_value:.3e}, batch {bs_value:.4g} tokens")
    typer.echo(f"  P(loss within {tol:.2%} of the setting's best) = {p:.3f}   ({what})")
    typer.echo(
        f"  (Bayes choice for this setting: lr {rec.lr:.3e}, batch {rec.batch_tokens:.4g} "
        f"tokens, P = {rec.plateau_probability:.3f})"
    )
    for line in loss_lines:
        typer.echo(line)
    for note in notes:
        typer.echo(f"  {note}")


@app.command(context_settings={"ignore_unknown_options": True})
def recommend(
    n: ParamsArg,
    d: TokensArg,
    batch_tokens: Annotated[
        str | None,
        typer.Option("--batch-tokens", help="Fix the batch size (tokens); choose the lr for it."),
    ] = None,
    batch_sequences: BatchSequencesOpt = None,
    tol: Annotated[
        float, typer.Option(help="Relative-loss tolerance of the plateau probability.")
    ] = DEFAULT_TOL,
    group: GroupOpt = "dense",
    seq_len: SeqLenOpt = 2048,
    posterior: PosteriorOpt = None,
    loss_posterior: LossPosteriorOpt = None,
    allow_unconverged: UnconvergedOpt = False,
    allow_implausible: ImplausibleOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The (lr, batch) of least expected relative loss; with --batch-tokens, the best lr.

    Also prints the loss the recommended run will report and what its batch costs in loss.
    """
    from ..api import recommend as api_recommend

    N, D = _quantities(n, d)
    bs_value, bs_seqs = batch_arg(batch_tokens, batch_sequences, seq_len)
    check_units(allow_implausible, N=N, D=D, batch_tokens=bs_value, batch_sequences=bs_seqs,
                seq_len=seq_len)  # fmt: skip
    post = load_posterior(posterior, "landscape")
    _check_landscape_args(tol, group, post)
    rec = call(
        api_recommend, N, D, batch_tokens=bs_value, group=group, tol=tol, seq_len=seq_len,
        posterior=post, allow_unconverged=allow_unconverged,
    )  # fmt: skip
    notes = extrapolation_notes(post, N, D)
    loss_lines, loss_record = loss_summary(
        N, D, float(rec.lr), float(rec.batch_tokens), group, loss_posterior
    )
    if as_json:
        payload = rec.to_dict() | {"extrapolation": [x.removeprefix("note: ") for x in notes]}
        payload |= loss_record
        echo_json(payload)
        return
    typer.echo(f"N = {N:.4g} parameters, D = {D:.4g} tokens, group {group}")
    typer.echo(f"  peak lr          {rec.lr:.3e}")
    fixed = " (fixed)" if rec.fixed_batch else ""
    typer.echo(f"  batch (tokens)   {rec.batch_tokens:.4g}{fixed}")
    typer.echo(f"  batch (seqs)     {rec.batch_sequences:.4g}")
    typer.echo(
        f"  expected excess loss {rec.expected_relative_loss:.3%}; "
        f"P(within {rec.tol:.2%} of the best) = {rec.plateau_probability:.3f}"
    )
    typer.echo(
        f"  (posterior median optimum: lr {rec.lr_median_optimum:.3e}, batch "
        f"{rec.batch_tokens_median_optimum:.4g} tokens; the choice minimises expected loss)"
    )
    for line in loss_lines:
        typer.echo(line)
    for note in notes:
        typer.echo(f"  {note}")


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
    tol: Annotated[
        float, typer.Option(help="Relative-loss tolerance of the plateau probabilities.")
    ] = DEFAULT_TOL,
    seq_len: SeqLenOpt = 2048,
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
    sweep's best relative loss (landscape posterior). Grid values are powers of the steps.
    """
    from ..bayes.sampling import ConvergenceError
    from ..plan import plan_sweep as api_plan

    N, D = _quantities(n, d)
    check_units(allow_implausible, N=N, D=D)
    if out is not None:
        check_output_path(out, "--out")
    for name, value in (("--grid-lr-step", lr_step), ("--grid-batch-step", batch_step)):
        if not (math.isfinite(value) and value > 1):
            _fail(f"{name} must be a grid ratio > 1 (e.g. 1.414 or 2); got {value}")
    if runs < 1:
        _fail(f"--runs must be a positive integer; got {runs}")
    post = load_posterior(posterior, "landscape")
    _check_landscape_args(tol, group, post)
    try:
        plan = api_plan(
            N, D, runs, group=group, lr_step=lr_step, batch_step=batch_step, tol=tol,
            seq_len=seq_len, posterior=post, allow_unconverged=allow_unconverged,
        )  # fmt: skip
    except (ValueError, KeyError) as exc:
        message = str(exc.args[0] if exc.args else exc)
        for name, option in _PLAN_OPTIONS.items():
            message = re.sub(rf"\b{name}\b", option, message)
        _fail(message)
    except ConvergenceError as exc:
        _fail(str(exc).replace("pass allow_unconverged=True", "pass --allow-unconverged"))
    table = plan.to_dataframe()
    if out is not None:
        write_table(table, out)
    if as_json:
        payload = {
            "expected_best_relative_loss": plan.expected_best_relative_loss,
            "prob_any_within_tol": plan.prob_within_tol,
            "n_candidates": plan.n_candidates,
            "runs": json.loads(table.to_json(orient="records", double_precision=15)),
            "extrapolation": [x.removeprefix("note: ") for x in extrapolation_notes(post, N, D)],
        }
        echo_json(payload)
        return
    typer.echo(
        f"N = {N:.4g} parameters, D = {D:.4g} tokens, group {group}: {runs} run(s) from "
        f"{plan.n_candidates} grid points (lr x {lr_step:.4g}, batch x {batch_step:.4g})"
    )
    shown = table[["run", "lr", "batch_tokens", "batch_sequences", "expected_relative_loss",
                   "plateau_probability", "expected_best_relative_loss"]]  # fmt: skip
    typer.echo(
        shown.to_string(
            index=False,
            formatters={
                "lr": "{:.3e}".format,
                "batch_tokens": "{:.4g}".format,
                "batch_sequences": "{:.4g}".format,
                "expected_relative_loss": "{:.3%}".format,
                "plateau_probability": "{:.3f}".format,
                "expected_best_relative_loss": "{:.3%}".format,
            },
        )
    )
    typer.echo(
        f"  expected relative loss of the best run: {plan.expected_best_relative_loss:.3%}; "
        f"P(at least one within {tol:.2%} of the best) = {plan.prob_within_tol:.3f}"
    )
    for note in extrapolation_notes(post, N, D):
        typer.echo(f"  {note}")
    if out is not None:
        typer.echo(f"wrote {out}")
