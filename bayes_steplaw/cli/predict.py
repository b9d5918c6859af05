"""Commands that answer a plan: predict, plateau, recommend."""

from __future__ import annotations

import json
import math
from typing import Annotated

import typer

from .._validate import DEFAULT_TOL
from ._common import (
    ParamsArg,
    PosteriorOpt,
    TokensArg,
    _fail,
    _jsonable,
    _quantities,
    app,
    call,
    load_posterior,
    parse_quantity,
)

# --------------------------------------------------------------------------- predict


# negative numbers reach parse_quantity (a one-line error) instead of reading as options
@app.command(context_settings={"ignore_unknown_options": True})
def predict(
    n: ParamsArg,
    d: TokensArg,
    seq_len: Annotated[int, typer.Option(help="Sequence length in tokens.", min=1)] = 2048,
    method: Annotated[
        str, typer.Option(help="'bayes' (shipped posterior) or 'paper' (published ensemble).")
    ] = "bayes",
    raw: Annotated[
        bool, typer.Option(help="With --method paper: print the upstream tool's exact output.")
    ] = False,
    prob: Annotated[float, typer.Option(help="Credible / percentile interval mass.")] = 0.9,
    group: Annotated[str, typer.Option(help="Group of the posterior, e.g. dense, moe/1in8.")] = (
        "dense"
    ),
    kind: Annotated[
        str,
        typer.Option(
            help="What the interval is about: 'centre' (the optimum of a new setting) or "
            "'law' (the law itself)."
        ),
    ] = "centre",
    law: Annotated[bool, typer.Option("--law", help="Same as --kind law (old spelling).")] = False,
    posterior: PosteriorOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recommend the peak learning rate and batch size for N parameters and D tokens."""
    N, D = _quantities(n, d)
    if not 0 < prob < 1:
        _fail(f"--prob must be between 0 and 1; got {prob}")
    if method == "paper":
        from ..bootstrap import BootstrapOLS

        model = BootstrapOLS.from_published()
        if raw:
            typer.echo(model.upstream_line(N, D, seq_len), nl=False)
            return
        table = model.predict(N, D, seq_len=seq_len, prob=prob)
        note = "percentile interval over the 1000 published bootstrap resamples"
    elif method == "bayes":
        if raw:
            _fail("--raw is only available with --method paper")
        post = load_posterior(posterior, "optimum")
        kind = "law" if law else kind
        result = call(post.predict, N, D, group=group, seq_len=seq_len, kind=kind)
        table = result.to_dataframe(prob=prob)
        note = result.describe(prob)
    else:
        _fail(f"--method must be 'bayes' or 'paper'; got {method!r}")
    row = table.iloc[0]
    if as_json:
        typer.echo(json.dumps({"note": note, **{k: _jsonable(v) for k, v in row.items()}}))
        return
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


# --------------------------------------------------------------------------- landscape
# (the landscape commands `plateau` and `recommend` live below this line)


def _check_landscape_args(tol: float, group: str, post) -> None:
    if not (math.isfinite(tol) and 0 < tol < 1):
        _fail(f"--tol must be a relative loss between 0 and 1 (e.g. {DEFAULT_TOL}); got {tol}")
    try:
        post.hierarchy.resolve(group)
    except (KeyError, ValueError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))


# negative numbers reach parse_quantity (a one-line error) instead of reading as options
@app.command(context_settings={"ignore_unknown_options": True})
def plateau(
    n: ParamsArg,
    d: TokensArg,
    lr: Annotated[str, typer.Option("--lr", help="Peak learning rate, e.g. 3e-4.")],
    batch_tokens: Annotated[
        str, typer.Option("--batch-tokens", help="Batch size in tokens, e.g. 4M or 4194304.")
    ],
    tol: Annotated[
        float, typer.Option(help=f"Relative-loss tolerance ({DEFAULT_TOL} = {DEFAULT_TOL:.2%}).")
    ] = DEFAULT_TOL,
    group: Annotated[str, typer.Option(help="Group, e.g. dense, moe/1in8, new.")] = "dense",
    predictive: Annotated[
        bool, typer.Option("--predictive", help="Include run-to-run loss noise.")
    ] = False,
    posterior: PosteriorOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Probability that a run at (lr, batch) finishes within TOL of the setting's best loss."""
    N, D = _quantities(n, d)
    try:
        lr_value = parse_quantity(lr, "--lr")
        bs_value = parse_quantity(batch_tokens, "--batch-tokens")
    except typer.BadParameter as exc:
        _fail(str(exc))
    post = load_posterior(posterior, "landscape")
    _check_landscape_args(tol, group, post)
    p = call(
        post.plateau_probability, N, D, lr_value, bs_value, tol=tol, group=group,
        predictive=predictive,
    )  # fmt: skip
    rec = call(post.recommend, N, D, group=group, tol=tol)
    what = "including run noise" if predictive else "expected loss; run noise excluded"
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
        }
        typer.echo(json.dumps(payload))
        return
    typer.echo(f"N = {N:.4g} parameters, D = {D:.4g} tokens, group {group}")
    typer.echo(f"  lr {lr_value:.3e}, batch {bs_value:.4g} tokens")
    typer.echo(f"  P(loss within {tol:.2%} of the setting's best) = {p:.3f}   ({what})")
    typer.echo(
        f"  (Bayes choice for this setting: lr {rec.lr:.3e}, batch {rec.batch_tokens:.4g} "
        f"tokens, P = {rec.plateau_probability:.3f})"
    )


@app.command(context_settings={"ignore_unknown_options": True})
def recommend(
    n: ParamsArg,
    d: TokensArg,
    batch_tokens: Annotated[
        str | None,
        typer.Option("--batch-tokens", help="Fix the batch size (tokens); choose the lr for it."),
    ] = None,
    tol: Annotated[
        float, typer.Option(help="Relative-loss tolerance of the plateau probability.")
    ] = DEFAULT_TOL,
    group: Annotated[str, typer.Option(help="Group, e.g. dense, moe/1in8, new.")] = "dense",
    seq_len: Annotated[int, typer.Option(help="Sequence length in tokens.", min=1)] = 2048,
    posterior: PosteriorOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The (lr, batch) of least expected relative loss; with --batch-tokens, the best lr."""
    N, D = _quantities(n, d)
    bs_value = None
    if batch_tokens is not None:
        try:
            bs_value = parse_quantity(batch_tokens, "--batch-tokens")
        except typer.BadParameter as exc:
            _fail(str(exc))
    post = load_posterior(posterior, "landscape")
    _check_landscape_args(tol, group, post)
    rec = call(post.recommend, N, D, batch_tokens=bs_value, group=group, tol=tol, seq_len=seq_len)
    if as_json:
        typer.echo(json.dumps(rec.to_dict()))
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
