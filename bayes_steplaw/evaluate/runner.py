"""Run every (fold, method) of a held-out split through a ``concurrent.futures`` executor.

Each job fits one method on one fold and does what it can of the evaluation's tasks
(:data:`.protocol.TASKS`) for the held-out settings; the parent scores the results
(:mod:`.scoring`) as they arrive. Jobs go to

* this process, with ``workers=1`` (NUTS then uses up to ``chains`` threads);
* a pool of local processes (``spawn``; each fit uses one core), by default;
* a Dask cluster, with ``scheduler="tcp://..."``: the same tasks through
  ``dask.distributed.Client(address).get_executor()`` (the workers need this package);
* any executor passed as ``executor=`` (left running).

Every worker process compiles each model structure once (:func:`.methods.prepared_model`),
so a fold costs sampling only. Long jobs (the Bayesian fits) are submitted first. Each job's
seed is derived from the evaluation's ``seed``, the fold and the method's name, so a run is
reproducible and adding a method changes no other method's numbers.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._validate import DEFAULT_TOL, check_choice, check_count, check_prob, check_tol
from ..bayes.design import DEFAULT_GROUPS, check_sweeps, data_fingerprint
from ..bayes.surface import DIVERGED_RATIO, check_ratio, mark_diverged
from .methods import resolve_methods
from .metrics import DEFAULT_MASSES
from .protocol import (
    FoldContext,
    Method,
    MethodPrediction,
    RunForecast,
    capabilities,
    check_tasks,
)
from .result import Evaluation
from .scoring import score_fold, score_runs
from .splits import DEFAULT_K, DEFAULT_QUANTILE, check_k, make_folds, setting_table

GRID_COLUMNS = ("setting", "N", "D", "lr", "batch_tokens", "batch_sequences", "seq_len",
                "family", "group")  # fmt: skip
"""Columns of the held-out runs a method's ``choose`` sees (no outcome)."""


class EvaluationError(RuntimeError):
    """A method failed on a fold (the message names both)."""


@dataclass
class _Job:
    """One unit of work: a method on a fold (``kind="fold"``) or the L* yardstick fit."""

    kind: str
    index: int
    method: Method
    context: FoldContext
    settings: pd.DataFrame | None = None
    runs: pd.DataFrame | None = None
    grid: pd.DataFrame | None = None


def task_seed(seed: int, fold: int, name: str) -> int:
    """The seed of one (fold, method): stable under adding or reordering methods."""
    seq = np.random.SeedSequence([int(seed), int(fold), zlib.crc32(name.encode())])
    return int(seq.generate_state(1)[0])


def _run_job(job: _Job) -> dict[str, Any]:
    """Fit one method on one fold and do each task it can; runs in a worker.

    A method that raises does not stop the evaluation here: the error comes back as a
    message (with the fold, the method and the task), for the parent to raise or record; a
    task that fails leaves the other tasks' results.
    """
    ctx = job.context
    # recorded, not printed: each distinct message is listed once in the report (the
    # filters in force still apply, so warnings made errors stay errors)
    with warnings.catch_warnings(record=True) as caught:
        start = time.perf_counter()
        out: dict[str, Any] = {"kind": job.kind, "index": job.index, "pid": os.getpid()}
        where = f"method {job.method.name!r} failed on fold {ctx.fold!r} of split {ctx.split!r}"
        try:
            if job.kind == "yardstick":
                out["loss_star"] = job.method.yardstick(ctx)
                out["warnings"] = _messages(caught)
                return out
            train = ctx.sweeps[ctx.sweeps["setting"].isin(ctx.train)]
            predictor = job.method.fit(train, ctx)
        except Exception as exc:
            out["error"] = f"{where}: {_short(exc)}"
            out["warnings"] = _messages(caught)
            return out
        fitted = time.perf_counter()
        can = capabilities(predictor)
        errors, result = [], {"prediction": None, "forecast": None, "plateau": None}
        n, masses, name = len(job.settings), ctx.masses, job.method.name

        def attempt(task: str, call):
            try:
                return call()
            except Exception as exc:
                errors.append(f"{where} ({task}): {_short(exc)}")
                return None

        wanted = set(ctx.tasks) & can
        has_choose = callable(getattr(predictor, "choose", None))
        need_predict = "interval" in wanted or ("choice" in wanted and not has_choose)
        if need_predict and callable(getattr(predictor, "predict", None)):

            def predict():
                pred = predictor.predict(job.settings.copy())
                if not isinstance(pred, MethodPrediction):
                    raise TypeError(f"predict() returned {type(pred).__name__}, not "
                                    "MethodPrediction")  # fmt: skip
                return pred.checked(n, masses, name)

            result["prediction"] = attempt("predict", predict)
        if "choice" in wanted and has_choose:

            def choose():
                lr, bs = predictor.choose(job.settings.copy(), job.grid.copy())
                return MethodPrediction(lr, bs).checked(n, (), name)

            chosen = attempt("choice", choose)
            if chosen is not None:
                pred = result["prediction"]
                if pred is None:
                    nan = np.full(n, np.nan)
                    pred = MethodPrediction(nan, nan, lr_median=nan, batch_tokens_median=nan)
                pred.lr, pred.batch_tokens = chosen.lr, chosen.batch_tokens
                result["prediction"] = pred
        if {"loss", "divergence"} & wanted:

            def predict_runs():
                got = predictor.predict_runs(job.runs.copy())
                if not isinstance(got, RunForecast):
                    raise TypeError(f"predict_runs() returned {type(got).__name__}, not "
                                    "RunForecast")  # fmt: skip
                return got.checked(len(job.runs), masses, name)

            result["forecast"] = attempt("loss", predict_runs)
        if "plateau" in wanted:
            result["plateau"] = attempt(
                "plateau", lambda: predictor.plateau_probability(job.runs.copy(), ctx.tol)
            )
        out.update(
            result,
            diagnostics=dict(getattr(predictor, "diagnostics", None) or {}),
            fit_seconds=fitted - start,
            predict_seconds=time.perf_counter() - fitted,
            warnings=_messages(caught),
        )
        if errors:
            out["error"] = " | ".join(errors)
            out["partial"] = True
        return out


def _short(exc: BaseException, limit: int = 600) -> str:
    """An exception as one line: its type and message, without a backtrace, cut at ``limit``
    characters."""
    lines = []
    for line in str(exc).splitlines():
        if line.strip().lower().startswith("stack backtrace"):
            break
        if line.strip():
            lines.append(line.strip())
    text = f"{type(exc).__name__}: {' / '.join(lines)}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fold_record(fold) -> dict:
    """A fold in the evaluation's metadata."""
    out = {"fold": fold.name, "n_train": len(fold.train), "n_test": len(fold.test)}
    return out | ({"k": fold.k} if fold.k is not None else {})


def _gives_yardstick(method: Method) -> bool:
    """A method with plateau probabilities that also supplies L* (``yardstick``)."""
    return bool(getattr(method, "plateau", False)) and callable(getattr(method, "yardstick", None))


def _messages(caught: list) -> list[str]:
    return sorted({f"{w.category.__name__}: {w.message}" for w in caught})


# --------------------------------------------------------------------------- progress


class _Progress:
    """``done/total fits, elapsed, ETA`` on one line of stderr, on a terminal only."""

    def __init__(self, total: int, label: str, show: bool | None):
        self.total, self.label, self.done = total, label, 0
        self.show = sys.stderr.isatty() if show is None else bool(show)
        self.start = time.perf_counter()
        if self.show:
            self._print()

    @staticmethod
    def _clock(seconds: float) -> str:
        if not math.isfinite(seconds):
            return "?"
        m, s = divmod(round(seconds), 60)
        return f"{m}:{s:02d}"

    def _print(self, end: str = "") -> None:
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        print(
            f"\r{self.label}: {self.done}/{self.total} fits done, elapsed "
            f"{self._clock(elapsed)}, ETA {self._clock(eta)}   ",
            end=end, file=sys.stderr, flush=True,
        )  # fmt: skip

    def step(self) -> None:
        self.done += 1
        if self.show:
            self._print("\n" if self.done == self.total else "")


# --------------------------------------------------------------------------- executors


def _executor(
    workers: int | None, scheduler: str | None, n_tasks: int, chains: int, timeout: float
):
    """(executor or None for in-process, whether we own it, the client to close, cores)."""
    if scheduler is not None:
        try:
            from dask.distributed import Client
        except ImportError:
            raise ImportError(
                "--scheduler needs Dask's distributed scheduler: pip install 'dask[distributed]'"
            ) from None
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
        except OSError as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
        return client.get_executor(pure=False), True, client, 1
    cpus = os.cpu_count() or 1
    if workers is None:
        # one process per `chains` CPUs, each sampling its chains in parallel threads
        workers = max(1, min(cpus // max(chains, 1), n_tasks))
    workers = check_count(workers, "workers")
    if workers == 1:
        return None, False, None, cpus
    import multiprocessing

    # spawn: NUTS runs threads, and forking a process that holds them can deadlock
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    return pool, True, None, 1


def _drive(jobs: list[_Job], executor, progress: _Progress):
    """Yield (job, result) as jobs finish."""
    if executor is None:
        for job in jobs:
            result = _run_job(job)
            progress.step()
            yield job, result
        return
    futures = {executor.submit(_run_job, j): j for j in jobs}
    try:
        for fut in as_completed(futures):
            result = fut.result()
            progress.step()
            yield futures[fut], result
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise


# --------------------------------------------------------------------------- evaluate


def evaluate(
    sweeps: pd.DataFrame | None = None,
    split: str = "loso",
    methods: Sequence[str | Method] | str | None = None,
    tasks: Sequence[str] | str | None = None,
    *,
    groups: Sequence[str] = DEFAULT_GROUPS,
    column: str | None = None,
    quantile: float = DEFAULT_QUANTILE,
    by: str | None = "family",
    k: Sequence[int] = DEFAULT_K,
    masses: Sequence[float] = DEFAULT_MASSES,
    tol: float = DEFAULT_TOL,
    diverged: float = DIVERGED_RATIO,
    chains: int = 2,
    draws: int = 500,
    tune: int = 500,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    executor: Executor | None = None,
    progress: bool | None = None,
    truth: pd.DataFrame | None = None,
    on_error: str = "record",
    connect_timeout: float = 10.0,
) -> Evaluation:
    """Held-out evaluation: every method, every task, on the same folds.

    Every method is fitted on the training settings of every fold of ``split`` and does what
    it can of ``tasks`` for the fold's held-out settings; the results are scored against the
    held-out runs (one row per (split, fold, method, setting) and, for run forecasts and
    plateau probabilities, one per run; see :class:`Evaluation` for the columns and the
    summary tables). A task a method cannot do is skipped for it (NaN), never an error.

    Parameters
    ----------
    sweeps : DataFrame, optional
        A sweep table (:func:`~bayes_steplaw.read_sweeps`); default the released dense + MoE
        sweeps (``load_sweeps("all")``).
    split : {"loso", "logo", "extrapolate", "transfer"}
        Leave one setting out, leave one group out, train on each family's smaller compute
        and test on its largest, or few-shot transfer to each held-out group with its ``k``
        smallest settings in training (:mod:`bayes_steplaw.evaluate.splits`).
    methods : list of str or method objects, or a comma-separated str, optional
        Built-in names (``bayes``: the loss model, the default; ``optimum``, ``paper``,
        ``ols``, ``peer-chinchilla-bowl``, ``peer-quadratic`` and the published laws
        ``steplaw``, ``openai``, ``deepseek``, ``porian``, ``minicpm``), or objects of the
        method protocol (:mod:`bayes_steplaw.evaluate.methods`); default all built-in ones.
    tasks : list of str, or a comma-separated str, optional
        ``choice``, ``interval``, ``loss``, ``divergence``, ``plateau``
        (:data:`~bayes_steplaw.evaluate.TASKS`); default all.
    groups : sequence of str
        Group columns of the models, outermost first.
    column : str, optional
        ``logo`` and ``transfer``: the column whose levels are held out (default the deepest
        group column with levels).
    quantile, by
        ``extrapolate``: train on settings with 6·N·D up to this quantile within each level
        of ``by``.
    k : sequence of int
        ``transfer``: how many of the held-out group's smallest settings (by compute) train.
    masses : sequence of float
        Interval masses whose coverage and width are scored.
    tol : float
        Relative-loss tolerance of the plateau events (and of ``recommend``'s plateau).
    diverged : float
        A held-out run diverged when its loss exceeds this multiple of its setting's lowest
        loss (the loss task scores the runs that did not; the divergence task all of them).
    chains, draws, tune : int
        Size of each Bayesian refit.
    seed : int
        Seed of everything random (fits, new-group draws, bootstrap resamples).
    workers : int, optional
        Local worker processes, each fit sampling on one core (default: one process per
        ``chains`` CPUs; on a 2-core machine with 2 chains that is this process, sampling
        the chains in parallel threads, which compiles each model once); 1 runs in this
        process.
    scheduler : str, optional
        Address of a Dask scheduler to run the jobs on instead (``connect_timeout``
        seconds to reach it).
    executor : concurrent.futures.Executor, optional
        Run the jobs on this executor (not shut down afterwards).
    progress : bool, optional
        Show ``fits done/total`` with an ETA on stderr; default: when stderr is a terminal.
    truth : DataFrame, optional
        The true optimum of simulated settings (``setting, lr_opt, batch_tokens_opt``, as
        :func:`~bayes_steplaw.simulate_sweeps` returns): adds the coverage of the truth.
    on_error : {"record", "raise"}
        A method that fails on a fold (or one of its tasks): its rows are kept without those
        scores, with the message in the ``error`` column and in the report (``"record"``),
        or :class:`EvaluationError` is raised.

    Returns
    -------
    Evaluation
    """
    if sweeps is None:
        from ..datasets.sweeps import load_sweeps

        sweeps = load_sweeps("all")
    sweeps = check_sweeps(sweeps).reset_index(drop=True)
    groups = (groups,) if isinstance(groups, str) else tuple(groups)
    method_list = resolve_methods(methods)
    task_list = check_tasks(tasks)
    masses = tuple(sorted({check_prob(m, "masses") for m in masses}))
    tol = check_tol(tol)
    diverged = check_ratio(diverged)
    ks = check_k(k)
    for value, name in ((chains, "chains"), (draws, "draws")):
        check_count(value, name)
    check_count(tune, "tune", minimum=0)
    check_count(seed, "seed", minimum=0)
    check_choice(on_error, "on_error", ("record", "raise"))
    if truth is not None:
        missing = [c for c in ("setting", "lr_opt", "batch_tokens_opt") if c not in truth]
        if missing:
            raise ValueError(f"truth lacks column(s) {missing}")
    folds = make_folds(sweeps, split, groups=groups, column=column, quantile=quantile, by=by, k=ks)
    settings = setting_table(sweeps, groups)
    fingerprint = data_fingerprint(sweeps)
    marked = mark_diverged(sweeps, diverged)
    runs_by_setting = dict(tuple(marked.groupby("setting", sort=False)))

    def context(fold, test, index, method, cores, train=None) -> FoldContext:
        return FoldContext(
            split=split, fold=fold.name if fold else "full data (L* yardstick)",
            sweeps=sweeps, fingerprint=fingerprint,
            train=frozenset(fold.train if fold else train), test=tuple(test), groups=groups,
            seed=task_seed(seed, index, method.name), chains=chains, draws=draws, tune=tune,
            cores=cores, tol=tol, masses=masses, tasks=task_list, diverged=diverged,
            k=fold.k if fold else None,
        )  # fmt: skip

    own_executor, client = False, None
    if executor is None:
        n_jobs = len(folds) * len(method_list) + 1
        executor, own_executor, client, cores = _executor(
            workers, scheduler, n_jobs, chains, connect_timeout
        )
    else:
        cores = 1
    cores = max(1, min(cores, chains))
    jobs: list[_Job] = []
    for fi, fold in enumerate(folds):
        held = settings.loc[list(fold.test)].reset_index()
        held["group"] = [fold.groups[s] for s in held["setting"]]
        runs = pd.concat([runs_by_setting[s] for s in fold.test], ignore_index=True)
        runs["group"] = runs["setting"].map(dict(fold.groups))
        grid = runs[[c for c in dict.fromkeys((*GRID_COLUMNS, *groups)) if c in runs]]
        for method in method_list:
            ctx = context(fold, fold.test, fi, method, cores)
            jobs.append(_Job("fold", fi, method, ctx, held, runs, grid))
    stick = None
    if "plateau" in task_list:
        stick = next((m for m in method_list if _gives_yardstick(m)), None)
    if stick is not None:
        ctx = context(None, (), len(folds), stick, cores, train=tuple(settings.index))
        jobs.append(_Job("yardstick", -1, stick, ctx))
    # longest first: the Bayesian fits, so the pool's tail is short
    jobs.sort(key=lambda j: -int(getattr(j.method, "cost", 0)))

    rows, run_rows, fits, notes, messages, errors = [], [], [], {}, set(), []
    pending_runs = []
    loss_star = None
    prog = _Progress(len(jobs), f"evaluate {split}", progress)
    try:
        for job, result in _drive(jobs, executor, prog):
            messages.update(result["warnings"])
            if "error" in result:
                if on_error == "raise":
                    raise EvaluationError(result["error"])
                errors.append(result["error"])
            if result["kind"] == "yardstick":
                loss_star = result.get("loss_star")
                continue
            fold = folds[job.index]
            name = job.method.name
            if "error" in result and not result.get("partial"):  # the fit failed: no scores
                result.update(
                    prediction=None, forecast=None, plateau=None, diagnostics={},
                    fit_seconds=np.nan, predict_seconds=np.nan,
                )  # fmt: skip
            pred, forecast = result["prediction"], result["forecast"]
            for part in (pred, forecast):
                if part is not None and part.note:
                    notes.setdefault(name, part.note)
            seconds = result["fit_seconds"] + result["predict_seconds"]
            scored = score_fold(
                split=split, fold=fold.name, method=name, settings=job.settings,
                runs=job.runs, prediction=pred, masses=masses,
                diagnostics=result["diagnostics"], seconds=seconds, truth=truth,
                forecast=forecast, tasks=task_list,
            )  # fmt: skip
            if fold.k is not None:
                scored.insert(4, "k", fold.k)
            scored["error"] = result.get("error", "")
            rows.append(scored)
            if forecast is not None or result["plateau"] is not None:
                pending_runs.append((fold, name, job.runs, forecast, result["plateau"]))
            fits.append(
                {"split": split, "fold": fold.name, "method": name, "pid": result["pid"],
                 "fit_seconds": result["fit_seconds"],
                 "predict_seconds": result["predict_seconds"], **result["diagnostics"]}
            )  # fmt: skip
    finally:
        if own_executor and client is None:
            executor.shutdown(wait=True, cancel_futures=True)
        if client is not None:  # Dask's executor: its futures go with the client
            executor.shutdown(wait=True)
            client.close()
    for fold, name, runs, forecast, plateau in pending_runs:
        try:
            part = score_runs(
                split=split, fold=fold.name, method=name, runs=runs, masses=masses, tol=tol,
                forecast=forecast, plateau=plateau, loss_star=loss_star,
            )  # fmt: skip
        except ValueError as exc:  # plateau probabilities of the wrong size
            if on_error == "raise":
                raise EvaluationError(str(exc)) from None
            errors.append(str(exc))
            continue
        if fold.k is not None:
            part.insert(4, "k", fold.k)
        run_rows.append(part)
    order = {m.name: i for i, m in enumerate(method_list)}
    table = pd.concat(rows, ignore_index=True)
    sort = ["method", *(["k"] if "k" in table else []), "setting"]
    table = table.sort_values(
        sort, key=lambda c: c.map(order) if c.name == "method" else c, kind="stable"
    ).reset_index(drop=True)
    runs_table = pd.concat(run_rows, ignore_index=True) if run_rows else None
    meta = {
        "split": split,
        "methods": [m.name for m in method_list],
        "tasks": list(task_list),
        "notes": notes,
        "groups": list(groups),
        "folds": [_fold_record(f) for f in folds],
        "n_settings_tested": int(table["setting"].nunique()),
        "masses": list(masses),
        "tol": tol,
        "diverged": diverged,
        "sampler": {"chains": chains, "draws": draws, "tune": tune},
        "seed": seed,
        "quantile": quantile if split == "extrapolate" else None,
        "logo_column": column if split in ("logo", "transfer") else None,
        "k": list(ks) if split == "transfer" else None,
        "data_sha256": fingerprint,
        "yardstick": f"full-data fit of {stick.name!r}" if loss_star is not None else None,
        "warnings": sorted(messages),
        "errors": errors,
    }
    return Evaluation(table, runs_table, pd.DataFrame(fits), meta)
