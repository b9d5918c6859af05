"""The `logs` commands: quick-check and collect."""

from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import TableSeqLenOpt, _fail, logs_app

# --------------------------------------------------------------------------- logs
# (commands of the `logs` group live below this line)


_LOG_PATTERN_HELP = "File names (full match) that are logs; the largest number <k> is read."


def _logs_args(base_dir: Path, dir_pattern: str, log_pattern: str, window: float) -> None:
    """Check the arguments shared by the logs commands; exit with a one-line error."""
    from ..logs._guards import compile_pattern, display_path

    shown = display_path(base_dir)
    if not base_dir.exists():
        _fail(f"BASE_DIR {shown!r} does not exist; expected a directory of run folders")
    if not base_dir.is_dir():
        _fail(f"BASE_DIR {shown!r} is a file; expected a directory of run folders")
    for name, value in (("DIR_PATTERN", dir_pattern), ("--log-pattern", log_pattern)):
        try:
            compile_pattern(value, name)
        except ValueError as exc:
            _fail(str(exc))
    if window <= 0:
        _fail(f"--window must be > 0 iterations; got {window}")


def _printers(verbose: bool) -> dict[str, Any]:
    """``on_skip`` and ``on_link`` callbacks that print under --verbose (names escaped)."""
    if not verbose:
        return {"on_skip": None, "on_link": None}
    from ..logs._guards import display_path

    def on_skip(folder: Path, reason: str) -> None:
        typer.echo(f"skip {display_path(folder)}: {reason}", err=True)

    def on_link(link: Path, target: Path) -> None:
        typer.echo(
            f"link {display_path(link)} -> {display_path(target)}: outside BASE_DIR, "
            f"followed (--no-follow to skip links)",
            err=True,
        )

    return {"on_skip": on_skip, "on_link": on_link}


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
_Verbose = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="List skipped folders and symbolic links that leave BASE_DIR."
    ),
]
_NoFollow = Annotated[
    bool,
    typer.Option(
        "--no-follow",
        help="Do not follow symbolic links: linked folders are not entered, linked logs and "
        "hparams files are not read (the run is reported).",
    ),
]
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
    no_follow: _NoFollow = False,
    strict: _Strict = False,
) -> None:
    """Smoothed final training loss of every run: one row per run, sorted by name.

    Problems (no loss lines, nan/inf, a truncated last line, stopped early, a log that is not
    a regular file, a folder that cannot be listed) go to stderr.
    """
    from .._io import escape_formulas
    from ..logs import quick_check

    _logs_args(base_dir, dir_pattern, log_pattern, window)
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
            follow_symlinks=not no_follow,
            **_printers(verbose),
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
    else:  # TSV is what ends up in spreadsheets: escape names that would run as formulas
        typer.echo(escape_formulas(show).to_csv(index=False, sep="\t", na_rep=""), nl=False)
    _report_runs(frame)
    if strict and (frame["status"] != "ok").any():
        raise typer.Exit(1)


@logs_app.command("collect")
def logs_collect(
    base_dir: _Base,
    dir_pattern: _Pattern,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Sweep table (CSV) to write; checked before any work, replaced atomically.",
        ),
    ],
    seq_len: TableSeqLenOpt = None,
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
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress bar, no summary, no per-run warnings (they stay in the "
            "table's problems column); excluded runs and errors are still printed.",
        ),
    ] = False,
    workers: _Workers = None,
    progress: _Progress = None,
    log_pattern: _LogPattern = r"train_log_(\d+)\.(?:txt|log|csv|jsonl)",
    no_follow: _NoFollow = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail, writing nothing, when any run has a problem.")
    ] = False,
) -> None:
    """Write the runs as a sweep table in the package schema (read it with read_sweeps).

    Hyperparameters: the experiment name (released naming, or --name-regex), hparams.json.

    Unless given: N = n_layers (4 d_model^2 + 3 d_model d_ff), D = iterations x bs x seq_len.

    Runs with problems are left out of the table and listed on stderr. Text cells that a
    spreadsheet would run as formulas (starting with = + - @) are written with a leading '.
    """
    from .._io import OutputPathError, check_output_path, write_csv
    from ..datasets.sweeps import SweepValidationError
    from ..logs import LogProblemsError, check_name_regex, collect

    _logs_args(base_dir, dir_pattern, log_pattern, window)
    try:
        check_output_path(out, "--out")  # before any work: the result must have a place
    except OutputPathError as exc:
        _fail(str(exc))
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
            progress=False if quiet else progress,
            follow_symlinks=not no_follow,
            **_printers(verbose),
        )
    except (LogProblemsError, SweepValidationError) as exc:
        _fail(str(exc), 1)
    except (OSError, ValueError) as exc:
        message = str(exc)
        if message.startswith("defaults"):  # the API's name for what --set gives
            message = "--set" + message.removeprefix("defaults")
        _fail(message, 1)
    try:
        write_csv(sweeps, out, name="--out")
    except OSError as exc:  # late: a full disk, the folder removed meanwhile
        reason = exc.strerror or str(exc)
        _fail(f"cannot write --out {str(out)!r} ({reason}); nothing was replaced there", 1)
    if not quiet:
        for row in sweeps[sweeps["problems"].fillna("") != ""].itertuples():
            typer.echo(f"warning: {row.run}: {row.problems}", err=True)
    for item in sweeps.attrs.get("excluded", []):
        typer.echo(f"excluded: {item['run']}: {item['problems']}", err=True)
    n_excluded = len(sweeps.attrs.get("excluded", []))
    if not quiet:
        typer.echo(
            f"wrote {len(sweeps)} runs in {sweeps['setting'].nunique()} settings to {out}"
            + (f"; {n_excluded} run(s) excluded" if n_excluded else ""),
            err=True,
        )
