"""Commands that fit or reproduce: fit, compare, reproduce, card."""

import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Annotated

import typer

from .._io import display_path, shell_word
from .._validate import DEFAULT_TOL
from ._common import (
    GroupColOpt,
    PosteriorOpt,
    ProbOpt,
    TableSeqLenOpt,
    _fail,
    app,
    call,
    check_input_file,
    check_memory,
    check_output_path,
    load_posterior,
    warn,
)

# --------------------------------------------------------------------------- reproduce


@app.command()
def reproduce(
    threshold: Annotated[float, typer.Option(help="Plateau filter (relative loss).")] = DEFAULT_TOL,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the refit.", min=1)] = 1000,
    seed: Annotated[
        int, typer.Option(help="Seed of the refit's resampling.", min=0, max=2**32 - 1)
    ] = 0,
) -> None:
    """Paper's Table 2 beside the published ensemble mean and a refit on the released dense runs."""
    from .. import load_sweeps
    from ..bootstrap import BootstrapOLS, reproduction_table
    from ..datasets.sweeps import near_optimal

    try:
        dense = load_sweeps("dense")
        kept = len(near_optimal(dense, threshold))
    except Exception as exc:  # data errors carry their own instructions
        _fail(str(exc), 1)
    # resample indices and counts (n_boot x kept, 8 bytes each) plus the solver's temporaries
    check_memory(n_boot * (kept * 8.0 * 3 + 200), "--n-boot",
                 f"{n_boot} bootstrap resamples of {kept} runs")  # fmt: skip
    try:
        table = reproduction_table(
            BootstrapOLS.from_published(),
            BootstrapOLS.fit(dense, threshold=threshold, n_boot=n_boot, seed=seed),
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

_CLI_MAPPING_HINT = "Map your names with --column CANONICAL=YOURS (e.g. --column loss=final_loss)"


def _column_mapping(items: list[str] | None) -> dict[str, str]:
    """``--column loss=final_loss`` options as ``{"loss": "final_loss"}``."""
    from ..datasets.sweeps import CORE_COLUMNS

    mapping: dict[str, str] = {}
    for item in items or []:
        canon, sep, yours = (part.strip() for part in item.partition("="))
        if not sep or not canon or not yours:
            _fail(f"--column needs CANONICAL=YOURS, e.g. --column loss=final_loss; got {item!r}")
        if canon not in CORE_COLUMNS:
            _fail(
                f"--column {item}: {canon!r} is not a canonical column; canonical names are "
                f"{', '.join(CORE_COLUMNS)}"
            )
        if canon in mapping:
            _fail(f"--column maps {canon!r} twice ({mapping[canon]!r} and {yours!r})")
        mapping[canon] = yours
    return mapping


def _read_table(path: Path, mapping: dict[str, str], seq_len: int | None):
    """The user's sweep in the package schema, or a one-line error in CLI terms (exit 2)."""
    import pandas as pd

    from ..datasets.sweeps import SweepValidationError, read_sweeps

    check_input_file(path, "sweep file")
    try:
        return read_sweeps(path, columns=mapping, seq_len=seq_len)
    except SweepValidationError as exc:
        text = str(exc).replace("Map your names with columns={canonical: yours}.",
                                _CLI_MAPPING_HINT + ".")  # fmt: skip
        _fail(f"{path}: {text.replace('columns= maps', '--column maps')}")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        _fail(f"sweep file {path} is not a readable CSV table: {exc}")
    except (ValueError, FileNotFoundError) as exc:
        _fail(f"{path}: {str(exc).replace('columns= maps', '--column maps')}")


def _fit_memory(n_settings: int, n_runs: int, chains: int, draws: int) -> float:
    """Bytes a fit's draws need: every per-setting and scalar variable, per draw and chain,
    with the sampler's copies (x3), plus a fixed cost per chain."""
    values_per_draw = 8 * n_settings + 64
    return chains * draws * values_per_draw * 8.0 * 3 + chains * 50e6 + n_runs * 1e3


def _existing_converged(path: Path) -> bool:
    """Whether ``path`` holds a posterior that passed its convergence gate."""
    if not path.is_file():
        return False
    from ..bayes.posterior import Posterior, PosteriorFileError

    try:
        return bool(Posterior.load(path).converged)
    except PosteriorFileError:
        return False


def save_or_keep(post, path: Path) -> Path:
    """Save ``post`` to ``path``; if that fails, keep it in the temporary folder and exit 1
    naming both, so a finished fit is never lost to a write error."""
    try:
        return post.save(path)
    except (OSError, RuntimeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        fd, name = tempfile.mkstemp(prefix=f"bayes-steplaw-{path.stem}-", suffix=path.suffix)
        os.close(fd)
        fallback = Path(name)
        try:
            post.save(fallback)
        except (OSError, RuntimeError, ValueError) as exc2:
            fallback.unlink(missing_ok=True)
            _fail(
                f"could not write {path} ({reason}), nor keep the fitted posterior at {fallback} "
                f"({getattr(exc2, 'strerror', None) or exc2})",
                1,
            )
        _fail(f"could not write {path} ({reason}); the fitted posterior was kept at {fallback}", 1)


def pooled_hint(pooled: dict, target: Path) -> str:
    """The line after a pooled fit: the runs pooled, your groups' new names, and a predict
    command to paste. Names are printed escaped (a terminal escape or a bidirectional override
    in a group name neither acts on the terminal nor reorders the line) and quoted for the
    shell (:func:`bayes_steplaw._io.shell_word`), so the command pastes as the real name."""
    names = ", ".join(f"{k!r} -> {v!r}" for k, v in pooled["user_groups"].items())
    first = str(next(iter(pooled["user_groups"].values())))
    line = (
        f"pooled {pooled['user_runs']} of your runs with {pooled['released_runs']} released "
        f"runs; your groups: {names}. Predict with: bayes-steplaw predict N D --posterior "
        f"{shell_word(str(target))} --group {shell_word(first)}"
    )
    if not (first.isprintable() and str(target).isprintable()):
        line += (
            " (a name holds control or bidirectional characters, shown escaped; $'...' is "
            "bash/zsh quoting that pastes as the real name)"
        )
    return line


def _aside(path: Path) -> Path:
    """Where an unconverged fit goes instead of replacing a converged one."""
    return path.with_name(f"{path.stem}.unconverged{path.suffix or '.nc'}")


@app.command("fit")
def fit_command(
    sweeps: Annotated[Path, typer.Argument(help="Sweep table (CSV), one row per run.")],
    out: Annotated[Path, typer.Option(help="Where to write the posterior (netCDF).")] = Path(
        "posterior.nc"
    ),
    group_col: GroupColOpt = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            "--column",
            metavar="CANONICAL=YOURS",
            help="Map one of your column names, e.g. --column loss=final_loss; repeat.",
        ),
    ] = None,
    with_released: Annotated[
        bool,
        typer.Option(
            "--with-released",
            help="Pool with the released dense + MoE sweeps: shared exponents, your groups' "
            "offsets from your runs; your groups become user:<name>.",
        ),
    ] = False,
    model: Annotated[
        str,
        typer.Option(
            help="'loss' (every run; the model every answer uses) or 'optimum' (a table of "
            "each setting's best runs)."
        ),
    ] = "loss",
    threshold: Annotated[
        float, typer.Option(help="Optimum model: plateau filter (relative loss).")
    ] = DEFAULT_TOL,
    seq_len: TableSeqLenOpt = None,
    sampler: Annotated[str | None, typer.Option(help="nutpie, pymc or numpyro.")] = None,
    chains: Annotated[int | None, typer.Option(min=1, help="Default: the model's (4).")] = None,
    draws: Annotated[
        int | None, typer.Option(min=1, help="Draws per chain; default: the model's.")
    ] = None,
    tune: Annotated[
        int | None, typer.Option(min=0, help="Tuning steps per chain; default: the model's.")
    ] = None,
    target_accept: Annotated[
        float | None,
        typer.Option(min=0.5, max=0.999, help="NUTS target acceptance; default: the model's."),
    ] = None,
    max_depth: Annotated[
        int | None, typer.Option(min=1, max=15, help="NUTS tree depth limit; default: the model's.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.", min=0, max=2**32 - 1)] = 0,
    batch_depends_on_n: Annotated[
        bool, typer.Option("--batch-depends-on-n", help="Add δ·ln N to the batch law.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress on stderr (warnings still).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a converged posterior in --out even if unconverged."),
    ] = False,
) -> None:
    """Fit the hierarchical Step Law to your sweep and write the posterior.

    Progress (compiling, sampling, writing) goes to stderr on a terminal, never under --quiet
    or when stderr is redirected. Exit 3: written, but the fit failed its convergence checks.
    """
    from ..api import fit as api_fit
    from ..bayes.sampling import ConvergenceWarning, convergence_advice, phase
    from ..datasets.sweeps import SweepWarning
    from ..transfer import UnidentifiableSweepError

    check_output_path(out, "--out")
    from ..bayes.model import SamplerSettings, model_class, model_kinds

    if model not in model_kinds():
        _fail(f"--model must be one of {model_kinds()}; got {model!r}")
    show = not quiet and sys.stderr.isatty()
    mapping = _column_mapping(column)
    with phase(f"reading {sweeps}", show), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SweepWarning)
        table = _read_table(sweeps, mapping, seq_len)
    for w in caught:
        if issubclass(w.category, SweepWarning):
            warn(str(w.message))
    groups = tuple(group_col) if group_col else ("family", "variant")
    n_settings = table["setting"].nunique() + (33 if with_released else 0)
    # a fit of two or more labs (the released runs pooled in, or a table's own lab column)
    # samples with the model's pooled defaults: the check counts those draws
    from ..bayes.labs import lab_column

    pooled = with_released or lab_column(table).nunique() >= 2
    try:  # sizes a posterior cannot hold are a usage error, before any work
        cls = model_class(model)
        run = SamplerSettings(chains=chains, draws=draws).resolved(
            cls.sampler_defaults | (cls.pooled_sampler_defaults if pooled else {})
        )
    except ValueError as exc:
        _fail(str(exc))
    check_memory(_fit_memory(n_settings, len(table), run.chains, run.draws), "--draws or --chains",
                 f"{run.chains} chain(s) x {run.draws} draws")  # fmt: skip
    kwargs = {"threshold": threshold} if model == "optimum" else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SweepWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported below, in full
        try:
            post = api_fit(
                table,
                model,
                groups,
                with_released=with_released,
                batch_depends_on_N=batch_depends_on_n,
                sampler=sampler,
                chains=chains,
                draws=draws,
                tune=tune,
                seed=seed,
                target_accept=target_accept,
                max_depth=max_depth,
                progressbar=show,
                **kwargs,
            )
        except UnidentifiableSweepError as exc:
            _fail(
                f"{sweeps} cannot identify the Step Law: {'; '.join(exc.problems)}. Add such "
                f"settings, or fit with --with-released to borrow the exponents from the released "
                f"dense + MoE data"
            )
        except (ValueError, ImportError, KeyError) as exc:
            _fail(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc))
        finally:
            for w in caught:
                if issubclass(w.category, SweepWarning):
                    warn(str(w.message))
    target = out
    if not post.converged and not force and _existing_converged(out):
        target = _aside(out)
    with phase(f"writing {target}", show):
        save_or_keep(post, target)
    diag = post.diagnostics
    typer.echo(f"wrote {display_path(target)}: {post}")
    typer.echo(
        f"diagnostics: max R-hat {diag['max_r_hat']:.4f}, min bulk ESS {diag['min_ess_bulk']:.0f}, "
        f"min tail ESS {diag['min_ess_tail']:.0f}, divergences {diag['divergences']}, "
        f"fit {post.metadata['fit_seconds']:.1f} s"
    )
    pooled = post.metadata.get("pooled")
    if pooled:
        typer.echo(pooled_hint(pooled, target))
    if not post.converged:
        typer.echo("NOT CONVERGED: " + "; ".join(diag["problems"]), err=True)
        for line in convergence_advice(post, cli=True):
            typer.echo(f"  try: {line}", err=True)
        if target != out:
            typer.echo(
                f"kept the converged posterior in {out}; this unconverged one went to {target} "
                f"(--force replaces {out})",
                err=True,
            )
        raise typer.Exit(3)


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="Group, e.g. moe or moe/1in8.")],
    b: Annotated[str, typer.Argument(help="Group to compare against, e.g. dense.")],
    posterior: PosteriorOpt = None,
    prob: ProbOpt = 0.9,
) -> None:
    """Posterior contrast of the lr and batch offsets of group A against group B."""
    if not 0 < prob < 1:
        _fail(f"--prob must be between 0 and 1; got {prob}")
    post = load_posterior(posterior, "law")
    call(post.gate, True)  # refuses non-finite draws whatever the convergence
    if not post.converged:
        warn(
            "this posterior failed its convergence checks ("
            + "; ".join(post.diagnostics["problems"])
            + "): the contrast below may be wrong"
        )
    table = call(post.compare_offsets, a, b, prob=prob, scale="ratio")
    typer.echo(table.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(
        f"(ratio of {a}'s optimum to {b}'s at the same N and D: posterior mean, median and "
        f"{prob:.0%} equal-tailed interval; prob_positive = P({a} > {b}))"
    )


@app.command()
def card(
    name: Annotated[str, typer.Argument(help="Shipped model: loss or optimum.")],
    refit: Annotated[
        bool,
        typer.Option(
            "--refit", help="Fit the model on the released data first and write NAME.nc too."
        ),
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of NAME.md (and of NAME.nc with --refit or new records); default: the "
            "current folder. The installed package is never written; to regenerate the "
            "shipped models of a source checkout, give --out-dir models."
        ),
    ] = None,
    evaluation: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="FILE",
            help="Records of a held-out evaluation (`bayes-steplaw evaluate --records FILE`) "
            "to keep in the posterior and show in the card; repeatable.",
        ),
    ] = None,
    candidates: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="JSON list of records, one per model variant tried with its scores, to keep "
            "in the posterior (across refits) and show in the card.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Write the model card NAME.md of a shipped model (with --refit, its posterior too).

    Without --refit the card is rendered from NAME.nc in --out-dir when there is one, else
    from the shipped posterior.
    """
    import json

    from ..bayes.card import write_model

    if name not in ("loss", "optimum"):
        _fail(f"NAME must be 'loss' or 'optimum'; got {name!r}")
    out_dir = Path.cwd() if out_dir is None else out_dir
    if out_dir.exists() and not out_dir.is_dir():
        _fail(f"--out-dir {display_path(out_dir)} is not a folder")
    if not out_dir.exists():
        _fail(f"--out-dir {display_path(out_dir)} does not exist; create it first")
    writes_nc = refit or bool(evaluation) or candidates is not None
    for written in (f"{name}.md", f"{name}.nc")[: 2 if writes_nc else 1]:  # before any work
        check_output_path(out_dir / written, "--out-dir")
    records = []
    for path in evaluation or []:
        check_input_file(path, "--evaluation")
        try:
            records.append(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            _fail(f"--evaluation {path} is not JSON ({exc})")
        if not (isinstance(records[-1], dict) and isinstance(records[-1].get("tables"), dict)):
            _fail(f"--evaluation {path} holds no evaluation records (write it with --records)")
    tried = None
    if candidates is not None:
        check_input_file(candidates, "--candidates")
        try:
            tried = json.loads(candidates.read_text())
        except json.JSONDecodeError as exc:
            _fail(f"--candidates {candidates} is not JSON ({exc})")
        if not (isinstance(tried, list) and tried and all(isinstance(r, dict) for r in tried)):
            _fail(f"--candidates {candidates} must hold a list of records (JSON objects)")
    show = not quiet and sys.stderr.isatty()
    post = call(write_model, name, out_dir, refit=refit, evaluations=records, candidates=tried,
                progressbar=show)  # fmt: skip
    typer.echo(f"wrote the card of {post}")
    if not post.converged:
        raise typer.Exit(1)
