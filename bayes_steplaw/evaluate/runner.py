"""Run every (fold, method) of a held-out split through a ``concurrent.futures`` executor.

Each task fits one method on one fold and predicts its held-out settings; the parent scores
the predictions (:mod:`.scoring`) as they arrive. Tasks go to

* this process, with ``workers=1`` (NUTS then uses up to ``chains`` threads);
* a pool of local processes (``spawn``; each fit uses one core), by default;
* a Dask cluster, with ``scheduler="tcp://..."``: the same tasks through
  ``dask.distributed.Client(address).get_executor()`` (the workers need this package);
* any executor passed as ``executor=`` (left running).

Every worker process compiles each model structure once (:func:`.methods.prepared_model`),
so a fold costs sampling only. Long tasks (the Bayesian fits) are submitted first. Each task's
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
from .methods import resolve_methods
from .metrics import DEFAULT_MASSES
from .protocol import FoldContext, Method, MethodPrediction
from .result import Evaluation
from .scoring import score_fold, score_plateau
from .splits import DEFAULT_QUANTILE, make_folds, setting_table


class EvaluationError(RuntimeError):
    """A method failed on a fold (the message names both)."""


@dataclass
class _Task:
    """One unit of work: a method on a fold (``kind="fold"``) or the L* yardstick fit."""

    kind: str
    index: int
    method: Method
    context: FoldContext
    settings: pd.DataFrame | None = None
    runs: pd.DataFrame | None = None


def task_seed(seed: int, fold: int, name: str) -> int:
    """The seed of one (fold, method): stable under adding or reordering methods."""
    seq = np.random.SeedSequence([int(seed), int(fold), zlib.crc32(name.encode())])
    return int(seq.generate_state(1)[0])


def _run_task(task: _Task) -> dict[str, Any]:
    """Fit, predict (and plateau-probe) one task; runs in a worker.

    A method that raises does not stop the evaluation here: the error comes back as a
    message (with the fold and method), for the parent to raise or record.
    """
    ctx = task.context
    # recorded, not printed: each distinct message is listed once in the report (the
    # filters in force still apply, so warnings made errors stay errors)
    with warnings.catch_warnings(record=True) as caught:
        start = time.perf_counter()
        out: dict[str, Any] = {"kind": task.kind, "index": task.index, "pid": os.getpid()}
        try:
            if task.kind == "yardstick":
                out["loss_star"] = task.method.yardstick(ctx)
                out["warnings"] = _messages(caught)
                return out
            train = ctx.sweeps[ctx.sweeps["setting"].isin(ctx.train)]
            predictor = task.method.fit(train, ctx)
            fitted = time.perf_counter()
            pred = predictor.predict(task.settings.copy())
            if not isinstance(pred, MethodPrediction):
                raise TypeError(f"predict() returned {type(pred).__name__}, not MethodPrediction")
            pred = pred.checked(len(task.settings), ctx.masses, task.method.name)
            plateau = None
            if callable(getattr(predictor, "plateau_probability", None)):
                plateau = predictor.plateau_probability(task.runs.copy(), ctx.tol)
        except Exception as exc:
            out["error"] = (
                f"method {task.method.name!r} failed on fold {ctx.fold!r} of split "
                f"{ctx.split!r}: {type(exc).__name__}: {exc}"
            )
            out["warnings"] = _messages(caught)
            return out
        out.update(
            prediction=pred,
            plateau=plateau,
            diagnostics=dict(getattr(predictor, "diagnostics", None) or {}),
            fit_seconds=fitted - start,
            predict_seconds=time.perf_counter() - fitted,
            warnings=_messages(caught),
        )
        return out


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


def _drive(tasks: list[_Task], executor, progress: _Progress):
    """Yield (task, result) as tasks finish."""
    if executor is None:
        for task in tasks:
            result = _run_task(task)
            progress.step()
            yield task, result
        return
    futures = {executor.submit(_run_task, t): t for t in tasks}
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
    *,
    methods: Sequence[str | Method] | str | None = None,
    groups: Sequence[str] = DEFAULT_GROUPS,
    column: str | None = None,
    quantile: float = DEFAULT_QUANTILE,
    by: str | None = "family",
    masses: Sequence[float] = DEFAULT_MASSES,
    tol: float = DEFAULT_TOL,
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
    """Held-out evaluation of methods that choose the learning rate and batch size.

    Every method is fitted on the training settings of every fold of ``split`` and predicts
    the fold's held-out settings; the predictions are scored against each held-out setting's
    runs (one row per (split, fold, method, setting); see :class:`Evaluation` for the columns
    and the summary tables).

    Parameters
    ----------
    sweeps : DataFrame, optional
        A sweep table (:func:`~bayes_steplaw.read_sweeps`); default the released dense + MoE
        sweeps (``load_sweeps("all")``).
    split : {"loso", "logo", "extrapolate"}
        Leave one setting out, leave one group out, or train on each family's smaller
        compute and test on its largest (:mod:`bayes_steplaw.evaluate.splits`).
    methods : list of str or method objects, or a comma-separated str, optional
        Built-in names (``bayes``, ``landscape``, ``paper``, ``ols`` and the published laws
        ``steplaw``, ``openai``, ``deepseek``, ``porian``, ``minicpm``), or objects of the
        method protocol (:mod:`bayes_steplaw.evaluate.methods`); default all built-in ones.
    groups : sequence of str
        Group columns of the Bayesian models, outermost first.
    column : str, optional
        ``logo``: the column whose levels are held out (default the deepest group column).
    quantile, by
        ``extrapolate``: train on settings with 6·N·D up to this quantile within each level
        of ``by``.
    masses : sequence of float
        Interval masses whose coverage and width are scored.
    tol : float
        Relative-loss tolerance of the plateau events.
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
        Address of a Dask scheduler to run the tasks on instead (``connect_timeout``
        seconds to reach it).
    executor : concurrent.futures.Executor, optional
        Run the tasks on this executor (not shut down afterwards).
    progress : bool, optional
        Show ``fits done/total`` with an ETA on stderr; default: when stderr is a terminal.
    truth : DataFrame, optional
        The true optimum of simulated settings (``setting, lr_opt, batch_tokens_opt``, as
        :func:`~bayes_steplaw.simulate_sweeps` returns): adds the coverage of the truth.
    on_error : {"record", "raise"}
        A method that fails on a fold: its rows are kept without scores, with the message in
        the ``error`` column and in the report (``"record"``), or :class:`EvaluationError`
        is raised.

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
    masses = tuple(sorted({check_prob(m, "masses") for m in masses}))
    tol = check_tol(tol)
    for value, name in ((chains, "chains"), (draws, "draws")):
        check_count(value, name)
    check_count(tune, "tune", minimum=0)
    check_count(seed, "seed", minimum=0)
    check_choice(on_error, "on_error", ("record", "raise"))
    if truth is not None:
        missing = [c for c in ("setting", "lr_opt", "batch_tokens_opt") if c not in truth]
        if missing:
            raise ValueError(f"truth lacks column(s) {missing}")
    folds = make_folds(sweeps, split, groups=groups, column=column, quantile=quantile, by=by)
    settings = setting_table(sweeps, groups)
    fingerprint = data_fingerprint(sweeps)
    runs_by_setting = dict(tuple(sweeps.groupby("setting", sort=False)))

    def context(fold_name, train, test, index, method, cores) -> FoldContext:
        return FoldContext(
            split=split, fold=fold_name, sweeps=sweeps, fingerprint=fingerprint,
            train=frozenset(train), test=tuple(test), groups=groups,
            seed=task_seed(seed, index, method.name), chains=chains, draws=draws, tune=tune,
            cores=cores, tol=tol, masses=masses,
        )  # fmt: skip

    own_executor, client = False, None
    if executor is None:
        n_tasks = len(folds) * len(method_list) + 1
        executor, own_executor, client, cores = _executor(
            workers, scheduler, n_tasks, chains, connect_timeout
        )
    else:
        cores = 1
    cores = max(1, min(cores, chains))
    tasks: list[_Task] = []
    for fi, fold in enumerate(folds):
        held = settings.loc[list(fold.test)].reset_index()
        held["group"] = [fold.groups[s] for s in held["setting"]]
        runs = pd.concat([runs_by_setting[s] for s in fold.test], ignore_index=True)
        runs["group"] = runs["setting"].map(dict(fold.groups))
        for method in method_list:
            ctx = context(fold.name, fold.train, fold.test, fi, method, cores)
            tasks.append(_Task("fold", fi, method, ctx, held, runs))
    stick = next((m for m in method_list if _gives_yardstick(m)), None)
    if stick is not None:
        all_ids = tuple(settings.index)
        ctx = context("full data (L* yardstick)", all_ids, (), len(folds), stick, cores)
        tasks.append(_Task("yardstick", -1, stick, ctx))
    # longest first: the Bayesian fits, so the pool's tail is short
    tasks.sort(key=lambda t: -int(getattr(t.method, "cost", 0)))

    rows, plateau, fits, notes, messages, errors = [], [], [], {}, set(), []
    pending_plateau = []
    loss_star = None
    prog = _Progress(len(tasks), f"evaluate {split}", progress)
    try:
        for task, result in _drive(tasks, executor, prog):
            messages.update(result["warnings"])
            if "error" in result:
                if on_error == "raise":
                    raise EvaluationError(result["error"])
                errors.append(result["error"])
            if result["kind"] == "yardstick":
                loss_star = result.get("loss_star")
                continue
            fold = folds[task.index]
            name = task.method.name
            if "error" in result:  # recorded: the fold's rows without scores
                nan = np.full(len(task.settings), np.nan)
                result.update(
                    prediction=MethodPrediction(nan, nan), plateau=None, diagnostics={},
                    fit_seconds=np.nan, predict_seconds=np.nan,
                )  # fmt: skip
            pred: MethodPrediction = result["prediction"]
            if pred.note:
                notes.setdefault(name, pred.note)
            seconds = result["fit_seconds"] + result["predict_seconds"]
            scored = score_fold(
                split=split, fold=fold.name, method=name, settings=task.settings,
                runs=task.runs, prediction=pred, masses=masses,
                diagnostics=result["diagnostics"], seconds=seconds, truth=truth,
            )  # fmt: skip
            scored["error"] = result.get("error", "")
            rows.append(scored)
            if result["plateau"] is not None:
                pending_plateau.append((fold, name, task.runs, result["plateau"]))
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
    for fold, name, runs, prob in pending_plateau:
        plateau.append(
            score_plateau(
                split=split, fold=fold.name, method=name, runs=runs, prob=prob, tol=tol,
                loss_star=loss_star,
            )
        )  # fmt: skip
    order = {m.name: i for i, m in enumerate(method_list)}
    table = pd.concat(rows, ignore_index=True)
    table = table.sort_values(
        ["method", "setting"], key=lambda c: c.map(order) if c.name == "method" else c
    ).reset_index(drop=True)
    runs_table = pd.concat(plateau, ignore_index=True) if plateau else None
    meta = {
        "split": split,
        "methods": [m.name for m in method_list],
        "notes": notes,
        "groups": list(groups),
        "folds": [{"fold": f.name, "n_train": len(f.train), "n_test": len(f.test)} for f in folds],
        "n_settings_tested": int(table["setting"].nunique()),
        "masses": list(masses),
        "tol": tol,
        "sampler": {"chains": chains, "draws": draws, "tune": tune},
        "seed": seed,
        "quantile": quantile if split == "extrapolate" else None,
        "logo_column": column if split == "logo" else None,
        "data_sha256": fingerprint,
        "yardstick": "full-data landscape fit" if loss_star is not None else None,
        "warnings": sorted(messages),
        "errors": errors,
    }
    return Evaluation(table, runs_table, pd.DataFrame(fits), meta)
