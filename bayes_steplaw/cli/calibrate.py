"""The `plan-calibration` command: the small runs of your setup that most improve the lr and
batch you will choose at a large target; a thin layer over
:func:`bayes_steplaw.calibrate.plan_calibration`."""

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    GroupOpt,
    ImplausibleOpt,
    JsonOpt,
    ParamsArg,
    PosteriorOpt,
    SeqLenOpt,
    TokensArg,
    UnconvergedOpt,
    _fail,
    _quantities,
    app,
    call,
    check_input_file,
    check_output_path,
    check_units,
    echo_json,
    extrapolation_notes,
    load_posterior,
    setup_note,
    warn,
    write_table,
)

_OPTIONS = {"budget": "--budget", "draws": "--draws", "search_truths": "--search-truths",
            "truths": "--truths", "candidates": "--candidates", "seq_len": "--seq-len",
            "likelihood": "--likelihood"}  # fmt: skip


@app.command("plan-calibration")
def plan_calibration(
    n: ParamsArg,
    d: TokensArg,
    group: GroupOpt,
    budget: Annotated[
        int, typer.Option("--budget", help="How many small runs you can afford.", min=1)
    ] = 6,
    posterior: PosteriorOpt = None,
    candidates: Annotated[
        Path | None,
        typer.Option(
            "--candidates",
            metavar="FILE",
            help="CSV of candidate small runs: columns N, D (an lr x batch grid is built "
            "around each setting) or N, D, lr, batch_tokens (or batch_sequences). Default: N "
            "and D each 1/10, 1/30 or 1/100 of the target's.",
        ),
    ] = None,
    seq_len: SeqLenOpt = None,
    draws: Annotated[
        int, typer.Option("--draws", help="Posterior draws the analysis reweights.", min=10)
    ] = 1000,
    truths: Annotated[
        int, typer.Option("--truths", help="Simulated truths of the final scores.", min=2)
    ] = 1024,
    search_truths: Annotated[
        int, typer.Option("--search-truths", help="Simulated truths of the search.", min=2)
    ] = 256,
    likelihood: Annotated[
        str,
        typer.Option(
            "--likelihood",
            help="relative: each setting's loss level integrated out (default); full: each "
            "draw's own best loss too (its weights collapse).",
        ),
    ] = "relative",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulations.", min=0)] = 0,
    allow_unconverged: UnconvergedOpt = False,
    allow_implausible: ImplausibleOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write the plan (.csv or .json).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """K small runs of your setup that most improve the lr and batch you will choose at N, D.

    Preposterior analysis over the posterior's draws: each candidate set of runs is simulated
    under draws taken as the truth, the draws are reweighted by the simulated losses, and the
    Bayes decision at the target is scored under the truth; runs are added greedily. The plan
    is compared, on fresh simulations, with no runs and with one grid sweep of the same size
    at the largest candidate setting.
    """
    import pandas as pd

    from ..calibrate import CalibrationWarning
    from ..calibrate import plan_calibration as api_plan

    N, D = _quantities(n, d)
    check_units(allow_implausible, N=N, D=D)
    if out is not None:
        check_output_path(out, "--out")
    table = None
    if candidates is not None:
        check_input_file(candidates, "--candidates")
        try:
            table = pd.read_csv(candidates)
        except (ValueError, UnicodeDecodeError) as exc:
            _fail(f"--candidates {candidates}: not a readable CSV ({exc})")
    post = load_posterior(posterior)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        plan = call(
            api_plan, N, D, budget, group=group, posterior=post, candidates=table,
            seq_len=seq_len, draws=draws, truths=truths, search_truths=search_truths,
            likelihood=likelihood, seed=seed, allow_unconverged=allow_unconverged,
            options=_OPTIONS,
        )  # fmt: skip
    frame = plan.to_dataframe()
    if out is not None:
        write_table(frame, out)
    notes = extrapolation_notes(post, N, D)
    if as_json:
        echo_json(plan.summary() | {
            "runs": json.loads(frame.to_json(orient="records", double_precision=15)),
            "naive": json.loads(plan.naive.to_json(orient="records", double_precision=15)),
            "extrapolation": [x.removeprefix("note: ") for x in notes], "setup": post.setup,
        })  # fmt: skip
        return
    for w in caught:
        if issubclass(w.category, CalibrationWarning):
            warn(str(w.message))
    typer.echo(
        f"target N = {N:.4g} parameters, D = {D:.4g} tokens, group {plan.group}: {budget} "
        f"calibration run(s) from {plan.n_candidates} candidates"
    )
    shown = frame[["run", "N", "D", "lr", "batch_tokens", "batch_sequences", "compute_fraction",
                   "expected_excess_after"]]  # fmt: skip
    typer.echo(shown.to_string(index=False, formatters={
        "N": "{:.3g}".format, "D": "{:.3g}".format, "lr": "{:.3e}".format,
        "batch_tokens": "{:.4g}".format, "batch_sequences": "{:.4g}".format,
        "compute_fraction": "{:.2e}".format, "expected_excess_after": "{:.4%}".format,
    }))  # fmt: skip
    mean, lo, hi = plan.difference
    pct = f"{plan.prob:.0%}"
    typer.echo(
        f"  expected excess loss at the target: {plan.expected_excess_before:.4%} with no runs, "
        f"{plan.expected_excess_after:.4%} after this plan, {plan.expected_excess_naive:.4%} "
        f"after one grid sweep of {len(plan.naive)} runs at N = {plan.naive['N'].iloc[0]:.3g}, "
        f"D = {plan.naive['D'].iloc[0]:.3g}"
    )
    typer.echo(f"  plan minus that sweep: {mean:+.4%} ({pct} interval {lo:+.4%} to {hi:+.4%}); "
               f"weights' ESS median {plan.ess['median']:.0f} of {plan.n_draws} draws, "
               f"{plan.n_truths} simulated truths")  # fmt: skip
    for note in notes:
        typer.echo(f"  {note}")
    typer.echo(setup_note(post))
    if out is not None:
        typer.echo(f"wrote {out}")
