"""Command-line interface: a thin layer over the public API.

Heavy libraries (PyMC, PyTensor) are imported only by the commands that fit.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="bayes-steplaw",
    help="Optimal learning rate and batch size for LLM pretraining, with uncertainty.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Locate, download and verify the released Step Law data.")
logs_app = typer.Typer(help="Turn training logs into smoothed losses and sweep tables.")
app.add_typer(data_app, name="data")
app.add_typer(logs_app, name="logs")

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMBGT]?)\s*$", re.I)


ParamsArg = Annotated[str, typer.Argument(metavar="N", help="Non-embedding parameters (7e9, 7B).")]
TokensArg = Annotated[str, typer.Argument(metavar="D", help="Training tokens (1.4e12, 1.4T).")]


def parse_quantity(text: str, name: str) -> float:
    """Parse ``7e9``, ``7B``, ``1.4T``, ``350M`` into a positive finite float."""
    match = _QUANTITY.match(str(text))
    if not match:
        raise typer.BadParameter(
            f"{name} must be a positive number such as 7e9, 7B or 1.4T; got {text!r}"
        )
    value = float(match.group(1)) * _SUFFIX[match.group(2).upper()]
    if not math.isfinite(value) or value <= 0:
        raise typer.BadParameter(f"{name} must be a positive finite number; got {text!r}")
    return value


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _quantities(n: str, d: str) -> tuple[float, float]:
    try:
        return parse_quantity(n, "N"), parse_quantity(d, "D")
    except typer.BadParameter as exc:
        _fail(str(exc))


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
    law: Annotated[
        bool, typer.Option("--law", help="Law uncertainty only, without setting-level scatter.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recommend the peak learning rate and batch size for N parameters and D tokens."""
    N, D = _quantities(n, d)
    if not 0 < prob < 1:
        _fail(f"--prob must be between 0 and 1; got {prob}")
    if method == "paper":
        from .bootstrap import BootstrapOLS

        model = BootstrapOLS.from_published()
        if raw:
            typer.echo(model.upstream_line(N, D, seq_len), nl=False)
            return
        table = model.predict(N, D, seq_len=seq_len, prob=prob)
        note = "percentile interval over the 1000 published bootstrap resamples"
    elif method == "bayes":
        if raw:
            _fail("--raw is only available with --method paper")
        from .posterior import load_default

        result = _predict(load_default(), N, D, group, seq_len, "law" if law else "run")
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


def _predict(post, N, D, group, seq_len, kind):
    """``post.predict`` with foreseeable errors turned into one-line messages."""
    from .diagnostics import ConvergenceError

    try:
        return post.predict(N, D, group=group, seq_len=seq_len, kind=kind)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    except (ValueError, ConvergenceError) as exc:
        _fail(str(exc))


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return value


# --------------------------------------------------------------------------- reproduce


@app.command()
def reproduce(
    threshold: Annotated[float, typer.Option(help="Plateau filter (relative loss).")] = 0.0025,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the refit.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the refit's resampling.")] = 0,
) -> None:
    """Paper's Table 2 beside the published ensemble mean and a refit on the released dense runs."""
    from . import load_sweeps
    from .bootstrap import BootstrapOLS, reproduction_table

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
    threshold: Annotated[float, typer.Option(help="Plateau filter (relative loss).")] = 0.0025,
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

    from .diagnostics import ConvergenceWarning
    from .model import fit
    from .sweeps import SweepValidationError, read_sweeps

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
    posterior: Annotated[
        Path | None, typer.Option(help="Posterior file; default: the shipped model.")
    ] = None,
    prob: Annotated[float, typer.Option(help="Interval mass.")] = 0.9,
) -> None:
    """Posterior contrast of the lr and batch offsets of group A minus group B."""
    from .posterior import PosteriorFileError, load, load_default

    if not 0 < prob < 1:
        _fail(f"--prob must be between 0 and 1; got {prob}")
    try:
        post = load(posterior) if posterior else load_default()
        table = post.compare_offsets(a, b, prob=prob)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    except (ValueError, PosteriorFileError) as exc:
        _fail(str(exc))
    typer.echo(table.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(
        f"(difference of log offsets, {prob:.0%} equal-tailed interval; ratio = exp(median): "
        f"{a}'s optimum over {b}'s at the same N and D; prob_positive = P({a} > {b}))"
    )


# --------------------------------------------------------------------------- landscape
# (the landscape commands `plateau` and `recommend` live below this line)


def _landscape_posterior():
    """The shipped landscape posterior, or a one-line error (exit 1)."""
    from .posterior import PosteriorFileError, load_default

    try:
        return load_default("landscape")
    except PosteriorFileError as exc:
        _fail(str(exc), 1)


def _check_landscape_args(tol: float, group: str, post) -> None:
    if not (math.isfinite(tol) and 0 < tol < 1):
        _fail(f"--tol must be a relative loss between 0 and 1 (e.g. 0.0025); got {tol}")
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
    tol: Annotated[float, typer.Option(help="Relative-loss tolerance (0.0025 = 0.25%).")] = 0.0025,
    group: Annotated[str, typer.Option(help="Group, e.g. dense, moe/1in8, new.")] = "dense",
    predictive: Annotated[
        bool, typer.Option("--predictive", help="Include run-to-run loss noise.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Probability that a run at (lr, batch) finishes within TOL of the setting's best loss."""
    N, D = _quantities(n, d)
    try:
        lr_value = parse_quantity(lr, "--lr")
        bs_value = parse_quantity(batch_tokens, "--batch-tokens")
    except typer.BadParameter as exc:
        _fail(str(exc))
    post = _landscape_posterior()
    _check_landscape_args(tol, group, post)
    try:
        p = post.plateau_probability(N, D, lr_value, bs_value, tol, group, predictive)
        rec = post.recommend(N, D, group=group, tol=tol)
    except (KeyError, ValueError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))
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
            "plateau_probability": p,
            "recommended_lr": rec.lr,
            "recommended_batch_tokens": rec.batch_tokens,
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
    tol: Annotated[float, typer.Option(help="Tolerance of the plateau probability.")] = 0.0025,
    group: Annotated[str, typer.Option(help="Group, e.g. dense, moe/1in8, new.")] = "dense",
    seq_len: Annotated[int, typer.Option(help="Sequence length in tokens.", min=1)] = 2048,
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
    post = _landscape_posterior()
    _check_landscape_args(tol, group, post)
    try:
        rec = post.recommend(N, D, bs_value, group=group, tol=tol, seq_len=seq_len)
    except (KeyError, ValueError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))
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


# --------------------------------------------------------------------------- data


@data_app.command("path")
def data_path(
    data_dir: Annotated[Path | None, typer.Option(help="Directory searched first.")] = None,
) -> None:
    """Print where each registered file resolves locally (no download)."""
    from .registry import status

    bad = False
    for rec in status(data_dir):
        typer.echo(f"{rec['name']}\t{rec['path'] or '-'}\t{rec['problem'] or 'ok'}")
        bad |= rec["path"] is None
    raise typer.Exit(1 if bad else 0)


@data_app.command("fetch")
def data_fetch(
    data_dir: Annotated[Path | None, typer.Option(help="Directory searched first.")] = None,
) -> None:
    """Find or download every registered file, checking its sha256."""
    from .registry import DataError, fetch, registered_files

    for entry in registered_files():
        try:
            typer.echo(f"{entry.name}\t{fetch(entry.name, data_dir)}")
        except DataError as exc:
            _fail(str(exc), 1)


@data_app.command("verify")
def data_verify(
    data_dir: Annotated[Path | None, typer.Option(help="Directory searched first.")] = None,
) -> None:
    """Check the sha256 of every locally found registered file."""
    from .registry import status

    bad = False
    for rec in status(data_dir):
        verdict = "ok" if rec["ok"] else f"FAILED: {rec['problem']}"
        typer.echo(f"{rec['name']}\t{verdict}")
        bad |= not rec["ok"]
    raise typer.Exit(1 if bad else 0)


# --------------------------------------------------------------------------- logs
# (commands of the `logs` group live below this line)


_LOG_PATTERN_HELP = "File names (full match) that are logs; the largest number <k> is read."


def _logs_args(base_dir: Path, dir_pattern: str, log_pattern: str) -> None:
    """Check the arguments shared by the logs commands; exit with a one-line error."""
    if not base_dir.exists():
        _fail(f"BASE_DIR {str(base_dir)!r} does not exist; expected a directory of run folders")
    if not base_dir.is_dir():
        _fail(f"BASE_DIR {str(base_dir)!r} is a file; expected a directory of run folders")
    for name, value in (("DIR_PATTERN", dir_pattern), ("--log-pattern", log_pattern)):
        try:
            re.compile(value)
        except re.error as exc:
            _fail(
                f"{name} {value!r} is not a valid regular expression ({exc}); expected a "
                f"Python regular expression such as 'step2v2_.*'"
            )


def _skip_printer(verbose: bool):
    if not verbose:
        return None

    def on_skip(folder: Path, reason: str) -> None:
        typer.echo(f"skip {folder}: {reason}", err=True)

    return on_skip


def _report_runs(frame) -> None:
    """One stderr line per run that has a problem."""
    for row in frame[frame["status"] != "ok"].itertuples():
        typer.echo(f"{row.status}: {row.exp_name}: {row.problems}", err=True)


_Base = Annotated[Path, typer.Argument(metavar="BASE_DIR", help="Folder searched for run folders.")]
_Pattern = Annotated[
    str,
    typer.Argument(
        metavar="DIR_PATTERN",
        help="Regular expression: only folders whose name it matches (re.search) are entered.",
    ),
]
_TargetIter = Annotated[
    int | None,
    typer.Option(help="Smoothed loss at the last logged iteration <= this one.", min=1),
]
_MaxCnt = Annotated[int, typer.Option(help="Loss lines read from the end of each log.", min=2)]
_Window = Annotated[float, typer.Option(help="Smoothing window in iterations.", min=0.0)]
_Workers = Annotated[
    int | None, typer.Option(help="Parallel worker processes (default: one per CPU).", min=1)
]
_Progress = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress", help="Progress bar on stderr (default: on a terminal only)."
    ),
]
_Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="List skipped folders.")]
_LogPattern = Annotated[str, typer.Option(help=_LOG_PATTERN_HELP)]
_Strict = Annotated[bool, typer.Option("--strict", help="Exit with 1 when any run has a problem.")]


@logs_app.command("quick-check")
def logs_quick_check(
    base_dir: _Base,
    dir_pattern: _Pattern,
    target_iter: _TargetIter = None,
    max_cnt: _MaxCnt = 32768,
    window: _Window = 100.0,
    pretty: Annotated[bool, typer.Option("--pretty", help="Aligned table, not TSV.")] = False,
    verbose: _Verbose = False,
    workers: _Workers = None,
    progress: _Progress = None,
    log_pattern: _LogPattern = r"train_log_(\d+)\.(?:txt|log|csv|jsonl)",
    strict: _Strict = False,
) -> None:
    """Smoothed final training loss of every run: one row per run, sorted by name.

    Problems (no loss lines, nan/inf, a truncated last line, stopped early) go to stderr.
    """
    from .logs import quick_check

    _logs_args(base_dir, dir_pattern, log_pattern)
    if window <= 0:
        _fail(f"--window must be > 0 iterations; got {window}")
    try:
        frame = quick_check(
            base_dir,
            dir_pattern,
            target_iter=target_iter,
            max_cnt=max_cnt,
            window=window,
            log_pattern=log_pattern,
            workers=workers,
            progress=progress,
            on_skip=_skip_printer(verbose),
        )
    except (OSError, ValueError) as exc:
        _fail(str(exc), 1)
    if frame.empty:
        _fail(
            f"no runs under {str(base_dir)!r}: no folder whose name matches "
            f"'{dir_pattern}' holds logs named like '{log_pattern}' (see --verbose)",
            1,
        )
    show = frame.sort_values("exp_name", kind="stable", ignore_index=True)[
        ["exp_name", "smooth_loss", "target_iter", "final_iter"]
    ]
    if pretty:
        text = show.astype(object).where(show.notna(), "-")
        text["smooth_loss"] = [v if v == "-" else f"{v:.6f}" for v in text["smooth_loss"]]
        typer.echo(text.to_string(index=False))
    else:
        typer.echo(show.to_csv(index=False, sep="\t", na_rep=""), nl=False)
    _report_runs(frame)
    if strict and (frame["status"] != "ok").any():
        raise typer.Exit(1)


@logs_app.command("collect")
def logs_collect(
    base_dir: _Base,
    dir_pattern: _Pattern,
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep table (CSV) to write.")],
    seq_len: Annotated[
        int | None,
        typer.Option(help="Sequence length of runs that do not state one (released: 2048).", min=1),
    ] = None,
    name_regex: Annotated[
        str | None,
        typer.Option(
            help="Read hyperparameters from the experiment name with this regex's named groups "
            "(e.g. 'lr(?P<lr>[0-9.e-]+)_bs(?P<bs>[0-9]+)') instead of the released naming."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="A hyperparameter shared by all runs, e.g. --set n_dense_layers=1 (repeatable).",
        ),
    ] = None,
    d_sig_figs: Annotated[
        int,
        typer.Option(
            help="Round D = iterations x batch x seq_len to this many significant "
            "figures, as the released data (0: exact).",
            min=0,
        ),
    ] = 3,
    min_runs: Annotated[int, typer.Option(help="Fewest runs per setting.", min=1)] = 3,
    target_iter: _TargetIter = None,
    max_cnt: _MaxCnt = 32768,
    window: _Window = 100.0,
    verbose: _Verbose = False,
    workers: _Workers = None,
    progress: _Progress = None,
    log_pattern: _LogPattern = r"train_log_(\d+)\.(?:txt|log|csv|jsonl)",
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail, writing nothing, when any run has a problem.")
    ] = False,
) -> None:
    """Write the runs as a sweep table in the package schema (read it with read_sweeps).

    Hyperparameters: the experiment name (released naming, or --name-regex), hparams.json.

    Unless given: N = n_layers (4 d_model^2 + 3 d_model d_ff), D = iterations x bs x seq_len.

    Runs with problems are left out of the table and listed on stderr.
    """
    from .logs import LogProblemsError, check_name_regex, collect
    from .sweeps import SweepValidationError

    _logs_args(base_dir, dir_pattern, log_pattern)
    if window <= 0:
        _fail(f"--window must be > 0 iterations; got {window}")
    if name_regex is not None:
        try:
            check_name_regex(name_regex)
        except ValueError as exc:
            _fail(str(exc).replace("name_regex", "--name-regex", 1))
    defaults: dict[str, str] = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            _fail(f"--set expects KEY=VALUE, e.g. --set n_dense_layers=1; got {item!r}")
        defaults[key.strip()] = value.strip()
    try:
        sweeps = collect(
            base_dir,
            dir_pattern,
            seq_len=seq_len,
            name_regex=name_regex,
            defaults=defaults,
            d_sig_figs=d_sig_figs or None,
            target_iter=target_iter,
            max_cnt=max_cnt,
            window=window,
            log_pattern=log_pattern,
            on_problem="raise" if strict else "skip",
            min_runs=min_runs,
            workers=workers,
            progress=progress,
            on_skip=_skip_printer(verbose),
        )
    except (LogProblemsError, SweepValidationError) as exc:
        _fail(str(exc), 1)
    except (OSError, ValueError) as exc:
        message = str(exc)
        if message.startswith("defaults"):  # the API's name for what --set gives
            message = "--set" + message.removeprefix("defaults")
        _fail(message, 1)
    sweeps.to_csv(out, index=False)
    for row in sweeps[sweeps["problems"].fillna("") != ""].itertuples():
        typer.echo(f"warning: {row.run}: {row.problems}", err=True)
    for item in sweeps.attrs.get("excluded", []):
        typer.echo(f"excluded: {item['run']}: {item['problems']}", err=True)
    n_excluded = len(sweeps.attrs.get("excluded", []))
    typer.echo(
        f"wrote {len(sweeps)} runs in {sweeps['setting'].nunique()} settings to {out}"
        + (f"; {n_excluded} run(s) excluded" if n_excluded else ""),
        err=True,
    )


def main() -> None:
    """Entry point of the ``bayes-steplaw`` script."""
    try:
        app()
    except Exception as exc:  # a one-line message, never a traceback, for foreseeable errors
        from .registry import DataError
        from .sweeps import SweepValidationError

        if isinstance(exc, (DataError, SweepValidationError, FileNotFoundError, ValueError)):
            typer.echo(f"error: {exc}", err=True)
            sys.exit(1)
        raise
