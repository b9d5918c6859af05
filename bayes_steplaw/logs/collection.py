"""From runs to a validated sweep table: hyperparameters merged, N and D derived, problems
listed."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..datasets.sweeps import (
    CORE_COLUMNS,
    MIN_RUNS_PER_SETTING,
    SweepValidationError,
    read_sweeps,
    setting_ids,
)
from ._defaults import DEFAULT_LOG_PATTERN, DEFAULT_MAX_CNT, DEFAULT_WINDOW, HPARAM_FILES
from ._guards import display_path, preview
from .analyse import Options, check_options, rows_frame, scan
from .architecture import non_embedding_params, training_tokens
from .hparams import HPARAM_KEYS, INT_KEYS, canonical_key, check_name_regex, normalize_hparams


class LogProblemsError(ValueError):
    """Some runs could not be turned into sweep rows; ``problems`` maps each to its reasons."""

    def __init__(self, problems: Mapping[str, str]):
        self.problems = dict(problems)
        lines = "\n".join(f"  - {name}: {why}" for name, why in self.problems.items())
        super().__init__(f"{len(self.problems)} run(s) have problems:\n{lines}")


_NEEDED_COLUMNS = ("lr", "seq_len", "batch_sequences", "batch_tokens", "N", "D", "iterations")


def _parse_defaults(defaults: Mapping[str, Any] | None, seq_len: int | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if defaults:
        unknown = [k for k in defaults if canonical_key(k) not in HPARAM_KEYS]
        if unknown:
            raise ValueError(
                f"defaults has unknown key(s) {preview(unknown, 200)}; expected names among "
                f"{sorted(HPARAM_KEYS)}"
            )
        values.update(normalize_hparams(defaults, "defaults"))
    if seq_len is not None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be a positive number of tokens; got {seq_len}")
        values["seq_len"] = float(seq_len)
    return values


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)


def _derive(frame: pd.DataFrame, d_sig_figs: int | None) -> pd.DataFrame:
    """Fill batch sizes, N, N_active, D and groups where the hyperparameters do not give them."""
    out = frame.copy()
    seq = _column(out, "seq_len")
    bseq = _column(out, "batch_sequences")
    btok = _column(out, "batch_tokens")
    bseq = np.where(np.isnan(bseq), btok / seq, bseq)
    btok = np.where(np.isnan(btok), bseq * seq, btok)
    out["batch_sequences"], out["batch_tokens"] = bseq, btok
    n_calc, na_calc = non_embedding_params(
        _column(out, "d_model"),
        _column(out, "d_ff"),
        _column(out, "n_layers"),
        _column(out, "n_experts"),
        _column(out, "top_k"),
        _column(out, "d_expert"),
        _column(out, "d_shared_expert"),
        _column(out, "n_dense_layers"),
    )
    moe = ~np.isnan(_column(out, "n_experts"))
    n_given = _column(out, "N")
    out["N"] = np.where(np.isnan(n_given), n_calc, n_given)
    # N_active: as given; else the MoE count from the architecture; else (dense) N itself
    na = _column(out, "N_active")
    na = np.where(np.isnan(na) & moe, na_calc, na)
    out["N_active"] = np.where(np.isnan(na), out["N"], na)
    d_given = _column(out, "D")
    d_calc = training_tokens(_column(out, "iterations"), bseq, seq, d_sig_figs)
    out["D"] = np.where(np.isnan(d_given), d_calc, d_given)
    family = out["family"] if "family" in out else pd.Series(pd.NA, index=out.index)
    out["family"] = family.astype("string").fillna(
        pd.Series(np.where(moe, "moe", "dense"), index=out.index, dtype="string")
    )
    variant = out["variant"] if "variant" in out else pd.Series(pd.NA, index=out.index)
    out["variant"] = variant.astype("string").fillna(out["family"])
    if "recipe" not in out:
        out["recipe"] = pd.Series(pd.NA, index=out.index, dtype="string")
    return out


def _missing_reasons(frame: pd.DataFrame) -> pd.Series:
    """Per row, the hyperparameters still unknown and what would give them ("" when none).

    Only root causes are named: a D that is unknown because seq_len is, is not listed again.
    """
    isnan = {col: np.isnan(_column(frame, col)) for col in _NEEDED_COLUMNS}
    missing = {
        "lr": isnan["lr"],
        "seq_len (seq_len= / --seq-len, or in the hyperparameters)": isnan["seq_len"],
        "batch size (bs, batch_sequences or batch_tokens)": isnan["batch_sequences"]
        & isnan["batch_tokens"],
        "N (or d_model, d_ff, n_layers; for MoE also top_k, n_experts, d_expert, "
        "d_shared_expert, n_dense_layers)": isnan["N"],
        "D (or the planned iterations)": isnan["D"] & isnan["iterations"],
    }
    texts = np.array(list(missing), dtype=object)
    table = np.column_stack(list(missing.values()))
    out = pd.Series([", ".join(texts[row]) for row in table], index=frame.index, dtype=object)
    return out.where(out == "", "unknown hyperparameters: " + out)


def collect(
    base_dir: str | os.PathLike,
    pattern: str | re.Pattern[str],
    *,
    seq_len: int | None = None,
    name_regex: str | re.Pattern[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    d_sig_figs: int | None = 3,
    target_iter: int | None = None,
    max_cnt: int = DEFAULT_MAX_CNT,
    window: float = DEFAULT_WINDOW,
    log_pattern: str | re.Pattern[str] = DEFAULT_LOG_PATTERN,
    hparam_files: Sequence[str] = HPARAM_FILES,
    step_column: str | None = None,
    loss_column: str | None = None,
    on_problem: Literal["skip", "raise"] = "skip",
    min_runs: int = MIN_RUNS_PER_SETTING,
    workers: int | None = None,
    executor: Literal["process", "thread"] = "process",
    progress: bool | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
    on_link: Callable[[Path, Path], None] | None = None,
    follow_symlinks: bool = True,
) -> pd.DataFrame:
    """The runs under ``base_dir`` as a validated sweep table (see :func:`read_sweeps`).

    Each run's hyperparameters are merged from, lowest precedence first: ``defaults`` (and
    ``seq_len``), the experiment name (the released naming, see :func:`parse_run_name`, or
    ``name_regex``), and the first of ``hparam_files`` found in the run folder (see
    :func:`read_hparams_file`). Missing quantities are derived:

    - ``batch_tokens = batch_sequences * seq_len`` (or the reverse);
    - ``N`` and ``N_active`` from the architecture, :func:`non_embedding_params`:
      ``N = n_layers * (4 d_model^2 + 3 d_model d_ff)`` for dense models;
    - ``D = iterations * batch_sequences * seq_len`` rounded to ``d_sig_figs`` significant
      figures (3 reproduces the released data; see :func:`training_tokens`), where
      ``iterations`` is the planned total (``ti``, else the ``/total`` of the log lines),
      or ``target_iter`` when one is given (``iterations`` then holds it too);
    - ``family`` ``"moe"`` when experts are given, else ``"dense"``; ``variant`` = family.

    Parameters
    ----------
    seq_len : int, optional
        Sequence length of runs that do not give one (the released runs used 2048).
    name_regex : str, optional
        Regular expression with named groups read from the experiment name instead of the
        released naming (e.g. ``r"lr(?P<lr>[\\d.e-]+)_bs(?P<bs>\\d+)"``).
    defaults : mapping, optional
        Hyperparameters shared by all runs, e.g. ``{"n_dense_layers": 1}``.
    on_problem : {"skip", "raise"}
        Runs with status ``"failed"`` (see :func:`quick_check`) or unknown hyperparameters are
        left out of the table and listed in ``result.attrs["excluded"]`` (``"skip"``), or
        raise :class:`LogProblemsError` (``"raise"``). Warnings stay in the ``problems``
        column of the kept rows.
    min_runs : int
        Passed to :func:`read_sweeps`.
    Other parameters
        As :func:`quick_check`. A folder that matches but cannot be listed is a failed run.

    Returns
    -------
    pandas.DataFrame
        The output of :func:`read_sweeps`: canonical columns, architecture columns,
        ``iterations``, ``loss_last``, ``run`` (experiment name), then ``min_lr`` (when known),
        ``final_iter``, ``target_iter``, ``log_file`` and ``problems``. ``loss`` is the
        smoothed loss. ``attrs["excluded"]`` is a list of ``{"run", "log_file", "problems"}``.

    Raises
    ------
    LogProblemsError
        With ``on_problem="raise"`` when any run has problems.
    SweepValidationError
        The usable runs do not make a valid sweep (e.g. settings with fewer than ``min_runs``;
        the runs excluded from those settings are listed with their reasons, and in the
        error's ``excluded`` attribute).
    ValueError
        No usable runs, or bad arguments (each message names the argument).
    """
    if on_problem not in ("skip", "raise"):
        raise ValueError(f"on_problem must be 'skip' or 'raise'; got {preview(on_problem)}")
    check_options(target_iter, max_cnt, window)
    if d_sig_figs is not None and d_sig_figs < 1:
        raise ValueError(f"d_sig_figs must be >= 1 or None; got {d_sig_figs}")
    rx = check_name_regex(name_regex) if name_regex is not None else None
    opts = Options(
        target_iter,
        max_cnt,
        float(window),
        step_column,
        loss_column,
        hparams=True,
        name_regex=rx,
        defaults=_parse_defaults(defaults, seq_len),
        hparam_files=tuple(hparam_files),
        follow_symlinks=follow_symlinks,
    )
    _, rows = scan(
        base_dir,
        pattern,
        opts,
        log_pattern=log_pattern,
        workers=workers,
        executor=executor,
        progress=progress,
        on_skip=on_skip,
        on_link=on_link,
    )
    if not rows:
        raise ValueError(
            f"no runs under base_dir {display_path(base_dir)!r} whose folders match pattern "
            f"{preview(getattr(pattern, 'pattern', pattern))}"
        )
    frame = rows_frame(rows, HPARAM_KEYS)
    # D is the planned budget: the run's own iteration count, else the log's planned total;
    # with target_iter, the tokens seen by the target
    if target_iter is not None:
        frame["iterations"] = float(target_iter)
    else:
        # as plain floats: a pd.NA total (an export, a folder not listed) cannot fill float64
        planned = frame["total_iter"].to_numpy(dtype=np.float64, na_value=np.nan)
        frame["iterations"] = pd.to_numeric(frame["iterations"]).fillna(
            pd.Series(planned, index=frame.index)
        )
    frame = _derive(frame, d_sig_figs)
    failed = frame["status"].eq("failed").to_numpy()
    missing = _missing_reasons(frame).where(~failed, "")  # a failed run's reason is enough
    usable = ~failed & missing.eq("").to_numpy()
    reasons = frame["problems"].fillna("")
    reasons = reasons + np.where((reasons != "") & (missing != ""), "; ", "") + missing
    excluded = [
        {"run": r.exp_name, "log_file": r.log_file, "problems": why}
        for r, why in zip(frame[~usable].itertuples(), reasons[~usable], strict=True)
    ]
    if on_problem == "raise" and excluded:
        names = [e["run"] for e in excluded]
        raise LogProblemsError(
            {
                e["run"] if names.count(e["run"]) == 1 else e["log_file"]: e["problems"]
                for e in excluded
            }
        )
    kept = frame[usable]
    if kept.empty:
        lines = "\n".join(f"  - {e['run']}: {e['problems']}" for e in excluded)
        raise ValueError(f"none of the {len(frame)} runs is usable:\n{lines}")
    table = kept.rename(columns={"smooth_loss": "loss", "exp_name": "run"})
    keep_cols = [
        *(c for c in CORE_COLUMNS if c != "setting"),  # read_sweeps derives the setting id
        *[c for c in INT_KEYS if c != "iterations" and table[c].notna().any()],
        "iterations",
        "loss_last",
        "run",
        *(["min_lr"] if table["min_lr"].notna().any() else []),
        "final_iter",
        "target_iter",
        "log_file",
        "problems",
    ]
    table = table[keep_cols].copy()
    for col in [c for c in INT_KEYS if c in table]:
        table[col] = pd.to_numeric(table[col]).astype("Int64")
    try:
        sweeps = read_sweeps(table, min_runs=min_runs)
    except SweepValidationError as exc:
        behind = _exclusions_behind(frame, usable, reasons, min_runs)
        if not behind:
            raise
        error = SweepValidationError([*exc.problems, *behind])
        error.excluded = excluded  # type: ignore[attr-defined]
        raise error from None
    sweeps.attrs["excluded"] = excluded
    return sweeps


def _exclusions_behind(
    frame: pd.DataFrame, usable: np.ndarray, reasons: pd.Series, min_runs: int, most: int = 20
) -> list[str]:
    """Why runs were excluded from settings the exclusions left below ``min_runs`` runs.

    A run whose setting is unknown (no N or D) is listed too: it may belong to one of them.
    """
    known = np.isfinite(_column(frame, "N")) & np.isfinite(_column(frame, "D"))
    ids = setting_ids(frame).where(known, "")
    counts = ids[usable].value_counts()
    small = set(counts.index[counts < min_runs])
    if not small:
        return []
    lines = []
    for i in np.flatnonzero(~usable):
        setting = ids.iloc[i]
        if setting in small or setting == "":
            where = f"setting {setting}" if setting else "a setting that is unknown"
            lines.append(
                f"run {frame['exp_name'].iloc[i]} of {where} was excluded: {reasons.iloc[i]}"
            )
    if len(lines) > most:
        lines = [*lines[:most], f"... and {len(lines) - most} more excluded run(s)"]
    return lines
