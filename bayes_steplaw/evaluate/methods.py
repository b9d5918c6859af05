"""The methods a held-out evaluation compares, behind one small protocol.

A **method** has a ``name`` and ``fit(train, context) -> predictor``; the predictor does what
it can of the tasks (:mod:`.protocol`): ``predict(settings) -> MethodPrediction`` (the choice
and the intervals), ``choose(settings, grid)`` (the choice), ``predict_runs(runs) ->
RunForecast`` (the loss and divergence of every run), ``plateau_probability(runs, tol)``.
That is all a user's own method needs::

    class Halfway:
        name = "halfway"

        def fit(self, train, context):
            return self  # learns nothing

        def predict(self, settings):
            return MethodPrediction(
                lr=np.full(len(settings), 1e-3), batch_tokens=np.full(len(settings), 1e6)
            )

``train`` holds the runs of the fold's training settings only. ``settings`` has one row per
held-out setting (``setting, N, D, compute, seq_len, group``, the group columns and
``best_loss``, the setting's best observed loss, there for the published laws that are
functions of the loss; a method that reads it says so with ``uses_loss=True``). ``group`` is
the name a method that knows groups predicts the setting as: its own group under ``loso``,
``extrapolate`` and ``transfer`` with ``k >= 1``, ``"<family>/new"`` or ``"new"`` under
``logo`` and ``transfer`` with ``k = 0``. ``grid`` and ``runs`` hold the held-out runs (with
``group``); ``grid`` without their outcomes, ``runs`` with ``loss`` and ``diverged``, which a
forecast may read for its log density at the observed loss and for nothing else.

A predictor may also offer ``diagnostics`` (a dict: the fit's ``converged``, ``divergences``,
``max_r_hat``, ``sample_seconds``). A method with a ``yardstick(context)`` method (and
``plateau = True``) supplies each setting's L* for the plateau event relative to L*.

The built-in methods (:data:`BUILTIN_METHODS`): ``bayes``, the loss model
(:class:`~bayes_steplaw.bayes.loss_model.LossModel`), every task: the choice is
``recommend`` (the Bayes decision), the intervals ``predict(kind="sweep")``, the loss and
divergence ``predict_loss``, the plateau ``plateau_probability``; ``optimum``, the optimum
model (choice and intervals); ``paper``, the published bootstrap ensemble, and ``ols``, the
paper's recipe refitted per fold (choice and intervals); the least-squares peers
``peer-chinchilla-bowl`` and ``peer-quadratic`` (:mod:`.peers`: loss, divergence and a choice
on the held-out grid); and every evaluable law of the paper's Table 1
(:func:`bayes_steplaw.laws.evaluable_laws`: the choice).

The Bayesian methods never recompile per fold: :func:`prepared_model` builds and compiles each
model structure once per process on the whole sweep table (``weighted=True``) and every fold
samples it with the held-out settings' run weights set to 0.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._validate import DEFAULT_TOL
from ..bootstrap import COEFFICIENT_COLUMNS, BootstrapOLS
from ..laws import PublishedLaw, evaluable_laws
from .protocol import BOUNDS, FoldContext, Method, MethodPrediction, RunForecast

DEFAULT_INTERVAL_KIND = "sweep"
"""``predict(kind=...)`` of the ``optimum`` method's intervals and choice (see
:meth:`bayes_steplaw.StepLawPosterior.predict`): ``"sweep"``, the best run a sweep finds,
which is what the interval task scores (what ``bayes`` was before the loss model took the
name); ``None``: the posterior's ``default_kind``. Read when a fold is fitted. The loss model's
intervals are those of :data:`LOSS_INTERVAL_KIND`."""

LOSS_INTERVAL_KIND = "sweep"
"""``predict(kind=...)`` of the ``bayes`` method's intervals: the best run a grid sweep of the
held-out setting finds, which is what the interval task scores."""

BUILTIN_METHODS = ("bayes", "optimum", "paper", "ols", "peer-chinchilla-bowl", "peer-quadratic")
"""Names of the built-in methods besides the published laws."""

REMOVED = {
    "landscape": "the landscape model was removed: 'bayes' is now the loss model (its "
    "recommend, intervals, loss and plateau probabilities), 'optimum' the optimum model",
    "bayes-loss": "the loss model is now 'bayes'",
}
"""Method names of earlier versions, and what took their place."""


# --------------------------------------------------------------------------- compile once

_PREPARED: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()  # Dask workers run folds in threads of one process


def prepared_model(model, context: FoldContext) -> tuple[Any, float]:
    """The model built and compiled on ``context.sweeps`` once per process (and reused).

    The cache key is the model's kind, its configuration and the data fingerprint, so a
    process that serves several evaluations, or a model with another configuration, never
    gets a model compiled for other data.

    Returns
    -------
    prepared : bayes_steplaw.bayes.model.Prepared
    compile_seconds : float
        Time spent compiling in this call (0 when the cache had it).
    """
    key = (model.kind, json.dumps(model.get_config(), sort_keys=True), context.fingerprint)
    with _LOCK:
        hit = _PREPARED.get(key)
        if hit is not None:
            return hit, 0.0
        start = time.perf_counter()
        hit = model.prepare(context.sweeps, weighted=True)
        _PREPARED[key] = hit
        return hit, time.perf_counter() - start


def clear_prepared() -> None:
    """Forget this process's compiled models (the benchmark's cold-start baseline)."""
    with _LOCK:
        _PREPARED.clear()


def _fit_weighted(model, context: FoldContext):
    """Sample a compiled model with the fold's run weights; the posterior and diagnostics."""
    from ..bayes.sampling import ConvergenceWarning

    prepared, compile_seconds = prepared_model(model, context)
    weights = context.weights(prepared.built.design.runs)
    with warnings.catch_warnings():
        # small per-fold fits often miss ESS 400: recorded per fold in the table instead
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = prepared.fit(weights, **context.sampler())
    diag = post.diagnostics
    return post, {
        "converged": bool(diag["converged"]),
        "divergences": int(diag["divergences"]),
        "max_r_hat": float(diag["max_r_hat"]),
        "sample_seconds": float(post.metadata["sample_seconds"]),
        "compile_seconds": float(compile_seconds),
        "compiled": "compiled" if compile_seconds else "reused",
    }


# --------------------------------------------------------------------------- Bayesian


def _log_draws(post, settings: pd.DataFrame, kind: str, seed: int) -> np.ndarray:
    """Draws (settings, samples, 2) of (ln lr, ln batch tokens) of ``predict(kind=kind)`` for
    each held-out setting, as the group it is predicted as (NaN where a simulated sweep had
    no run alive)."""
    out = None
    for group, idx in settings.groupby("group", sort=False).indices.items():
        rows = settings.iloc[idx]
        pred = post.predict(
            rows["N"].to_numpy(float), rows["D"].to_numpy(float), group=str(group), kind=kind,
            seed=seed, allow_unconverged=True,
        )  # fmt: skip
        d = pred.draws
        with np.errstate(divide="ignore", invalid="ignore"):
            block = np.stack([np.log(d["lr"].values), np.log(d["batch_tokens"].values)], axis=-1)
        block = block.reshape(len(idx), -1, 2)
        if out is None:
            out = np.empty((len(settings), block.shape[1], 2))
        out[idx] = block
    return out if out is not None else np.empty((0, 1, 2))


class StepLawPredictor:
    """Predictions of a fitted Step-Law posterior (the optimum model): intervals and draws of
    ``predict(kind=interval_kind)``; the choice is the median of ``predict(kind=point_kind)``."""

    def __init__(self, post, *, interval_kind, point_kind, masses, seed: int, diag):
        self.post = post
        self.interval_kind = interval_kind or post.default_kind
        self.point_kind = point_kind or self.interval_kind
        self.masses = tuple(masses)
        self.seed = seed
        self.diagnostics = diag

    def predict(self, settings: pd.DataFrame) -> MethodPrediction:
        """Choice, intervals (equal-tailed, from the draws) and (ln lr, ln batch) draws."""
        from ..bayes.predictive import SHORT

        draws = _log_draws(self.post, settings, self.interval_kind, self.seed)
        point = draws
        if self.point_kind != self.interval_kind:
            point = _log_draws(self.post, settings, self.point_kind, self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lr, bs = np.exp(np.nanmedian(point, axis=1)).T
        note = (
            f"equal-tailed intervals of predict(kind={self.interval_kind!r}): "
            f"{SHORT.get(self.interval_kind, self.interval_kind)}; choice: the median of "
            f"predict(kind={self.point_kind!r})"
        )
        return MethodPrediction(lr, bs, draws=draws, note=note)


class OptimumMethod:
    """``optimum``: the optimum model's posterior median, refitted per fold (compiled once).

    Parameters
    ----------
    model : OptimumModel, optional
        The model (default ``OptimumModel(groups)`` with the evaluation's groups).
    interval_kind : str, optional
        ``predict(kind=...)`` of the intervals (default :data:`DEFAULT_INTERVAL_KIND`).
    point_kind : str, optional
        ``predict(kind=...)`` whose median is the choice (default: the intervals' kind: the
        median best run of a sweep).
    name : str
        The method's name in the output.
    """

    cost: ClassVar[int] = 2  # scheduling hint: long tasks are submitted first
    model_class: ClassVar[str] = "optimum"

    def __init__(self, model=None, *, interval_kind=None, point_kind=None, name="optimum"):
        self.model = model
        self.interval_kind = interval_kind
        self.point_kind = point_kind
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r})"

    def make_model(self, groups: tuple[str, ...]):
        """The model this method fits (its own, or the default one on ``groups``)."""
        if self.model is not None:
            return self.model
        from ..bayes.model import model_class

        return model_class(self.model_class)(groups)

    def fit(self, train: pd.DataFrame, context: FoldContext) -> StepLawPredictor:
        """Sample the compiled model with the fold's held-out settings weighted 0."""
        post, diag = _fit_weighted(self.make_model(context.groups), context)
        return StepLawPredictor(
            post, interval_kind=self.interval_kind or DEFAULT_INTERVAL_KIND,
            point_kind=self.point_kind, masses=context.masses, seed=context.seed, diag=diag,
        )  # fmt: skip


class LossPredictor:
    """Every task from one fitted loss posterior (:class:`~bayes_steplaw.bayes.loss.
    LossPosterior`), each answer a reduction of its draws."""

    def __init__(self, post, context: FoldContext, diag: dict):
        self.post = post
        self.masses = tuple(context.masses)
        self.seed = context.seed
        self.tol = context.tol
        self.diagnostics = diag

    def predict(self, settings: pd.DataFrame) -> MethodPrediction:
        """Intervals of ``predict(kind="sweep")`` (equal-tailed, from its draws) and the
        draws for the log score; the choice given here (their median) is what ``choose``
        replaces."""
        draws = _log_draws(self.post, settings, LOSS_INTERVAL_KIND, self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lr, bs = np.exp(np.nanmedian(draws, axis=1)).T
        note = (
            f"equal-tailed intervals of predict(kind={LOSS_INTERVAL_KIND!r}): the best run a grid "
            "sweep of a new setting finds; choice: recommend (the Bayes decision: least "
            "posterior expected loss)"
        )
        return MethodPrediction(lr, bs, draws=draws, note=note)

    def choose(self, settings: pd.DataFrame, grid: pd.DataFrame):
        """``recommend``: the (lr, batch) of least posterior expected loss."""
        lr, bs = np.full(len(settings), np.nan), np.full(len(settings), np.nan)
        for group, idx in settings.groupby("group", sort=False).indices.items():
            rows = settings.iloc[idx]
            rec = self.post.recommend(
                rows["N"].to_numpy(float), rows["D"].to_numpy(float), group=str(group),
                tol=self.tol, seed=self.seed, allow_unconverged=True,
            )  # fmt: skip
            lr[idx] = np.atleast_1d(rec.lr).astype(float).ravel()
            bs[idx] = np.atleast_1d(rec.batch_tokens).astype(float).ravel()
        return lr, bs

    def predict_runs(self, runs: pd.DataFrame) -> RunForecast:
        """``predict_loss`` of every run (median, equal-tailed intervals, P(diverge)),
        ``loss_log_density`` at the observed losses, the median of ``sweep_best`` over each
        setting's runs, and the median of ``best_loss``."""
        n = len(runs)
        median, p_div, logdens = np.empty(n), np.empty(n), np.empty(n)
        intervals = {m: (np.empty(n), np.empty(n)) for m in self.masses}
        sweep_best, star = {}, {}
        keys = ["group", "setting"]
        for (group, setting), idx in runs.groupby(keys, sort=False).indices.items():
            rows = runs.iloc[idx]
            N, D = float(rows["N"].iloc[0]), float(rows["D"].iloc[0])
            lr, bs = rows["lr"].to_numpy(float), rows["batch_tokens"].to_numpy(float)
            kw = {"group": str(group), "seed": self.seed}
            d = self.post.predict_loss(N, D, lr, bs, allow_unconverged=True, **kw).draws
            loss = d["loss"].values.reshape(len(idx), -1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                median[idx] = np.nanmedian(loss, axis=1)
                for m in self.masses:
                    lo, hi = np.nanquantile(loss, [(1 - m) / 2, (1 + m) / 2], axis=1)
                    intervals[m][0][idx], intervals[m][1][idx] = lo, hi
                p_div[idx] = d["p_diverge"].values.reshape(len(idx), -1).mean(axis=1)
                logdens[idx] = self.post.loss_log_density(
                    N, D, lr, bs, rows["loss"].to_numpy(float), **kw
                )
                sweep_best[str(setting)] = float(
                    np.nanmedian(self.post.sweep_best(N, D, lr, bs, **kw))
                )
            best = self.post.best_loss(N, D, allow_unconverged=True, **kw).median()
            star[str(setting)] = float(best["loss_star"])
        return RunForecast(
            median, intervals, logdens, p_div, sweep_best, star,
            note="predict_loss (the loss a run reports, given that it does not diverge)",
        )  # fmt: skip

    def plateau_probability(self, runs: pd.DataFrame, tol: float) -> dict[str, np.ndarray]:
        """Probabilities (run noise included) that each run is within ``tol`` of L*
        (``p_plateau``, ``reference="optimum"``) and of the best run of a sweep (``p_sweep``,
        ``reference="sweep"``)."""
        out = {"p_plateau": np.empty(len(runs)), "p_sweep": np.empty(len(runs))}
        for (group, _), idx in runs.groupby(["group", "setting"], sort=False).indices.items():
            rows = runs.iloc[idx]
            args = [rows[c].to_numpy(float) for c in ("N", "D", "lr", "batch_tokens")]
            kw = {"tol": tol, "group": str(group), "seed": self.seed, "allow_unconverged": True}
            for key, reference in (("p_plateau", "optimum"), ("p_sweep", "sweep")):
                prob = self.post.plateau_probability(*args, reference=reference, **kw)
                out[key][idx] = np.asarray(prob, dtype=float).ravel()
        return out


class BayesMethod(OptimumMethod):
    """``bayes``: the loss model, refitted per fold (compiled once); every task (module
    docstring); its full-data fit is the L* yardstick of the plateau event relative to L*.

    Parameters
    ----------
    model : LossModel, optional
        The model (default ``LossModel(groups)`` with the evaluation's groups).
    name : str
        The method's name in the output.
    """

    cost: ClassVar[int] = 3
    model_class: ClassVar[str] = "loss"
    plateau: ClassVar[bool] = True

    def __init__(self, model=None, *, name="bayes"):
        super().__init__(model, name=name)

    def fit(self, train: pd.DataFrame, context: FoldContext) -> LossPredictor:
        """Sample the compiled model with the fold's held-out settings weighted 0."""
        post, diag = _fit_weighted(self.make_model(context.groups), context)
        return LossPredictor(post, context, diag)

    def yardstick(self, context: FoldContext) -> pd.Series:
        """Each setting's L* (the posterior median of ``loss_star``) from a fit on every
        setting (``context.train`` holds them all).

        In sample by construction: it is the reference of the event "within tol of L*", not
        a prediction, and is used for nothing else. It costs one more fit of the compiled model.
        """
        post, _ = _fit_weighted(self.make_model(context.groups), context)
        star = np.median(post.flat("loss_star"), axis=0)
        return pd.Series(star, index=[str(s) for s in post.posterior["setting"].values])


# --------------------------------------------------------------------------- the paper


class BootstrapPredictor:
    """A bootstrap-OLS ensemble: the mean-coefficient law, percentile intervals, and the
    resamples' predictions as draws."""

    def __init__(self, ols: BootstrapOLS, masses, note: str, diag: dict | None = None):
        self.ols = ols
        self.masses = tuple(masses)
        self.note = note
        self.diagnostics = diag or {}

    def predict(self, settings: pd.DataFrame) -> MethodPrediction:
        """Point law, intervals at every mass and per-resample (ln lr, ln batch) draws."""
        n_, d_ = settings["N"].to_numpy(float), settings["D"].to_numpy(float)
        seq = settings["seq_len"].to_numpy(float)
        intervals = {}
        table = None
        for m in self.masses:
            table = self.ols.predict(n_, d_, seq_len=seq, prob=m)
            intervals[m] = {k: table[k].to_numpy() for k in BOUNDS}
        if table is None:
            table = self.ols.predict(n_, d_, seq_len=seq)
        coef = self.ols.coefficients[list(COEFFICIENT_COLUMNS)].dropna().to_numpy()
        ln_n, ln_d = np.log(n_)[:, None], np.log(d_)[:, None]
        ln_lr = coef[:, 0] + coef[:, 1] * ln_n + coef[:, 2] * ln_d
        ln_bs = coef[:, 3] + coef[:, 4] * ln_d
        draws = np.stack([ln_lr, ln_bs], axis=-1)
        return MethodPrediction(
            table["lr"].to_numpy(), table["batch_tokens"].to_numpy(), intervals, draws,
            note=self.note,
        )  # fmt: skip


class PaperMethod:
    """``paper``: the paper's published constants (its 1000 bootstrap fits; in sample for
    the paper, which fitted them on these and unreleased sweeps)."""

    name = "paper"

    def fit(self, train: pd.DataFrame, context: FoldContext) -> BootstrapPredictor:
        """The published ensemble (nothing is fitted; read once per process)."""
        note = "percentile intervals over the paper's 1000 published bootstrap fits"
        return BootstrapPredictor(_published(), context.masses, note)


@functools.cache
def _published() -> BootstrapOLS:
    return BootstrapOLS.from_published()


class OLSMethod:
    """``ols``: the paper's bootstrap-OLS recipe refitted on the fold's pooled training runs.

    Parameters
    ----------
    threshold : float
        The recipe's plateau filter.
    n_boot : int
        Bootstrap resamples.
    """

    name = "ols"

    def __init__(self, threshold: float = DEFAULT_TOL, n_boot: int = 1000):
        self.threshold = threshold
        self.n_boot = n_boot

    def fit(self, train: pd.DataFrame, context: FoldContext) -> BootstrapPredictor:
        """Run the recipe on ``train`` (seeded by the fold's seed)."""
        from ..bootstrap import DegenerateResampleWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DegenerateResampleWarning)
            ols = BootstrapOLS.fit(train, self.threshold, self.n_boot, seed=context.seed)
        note = (
            f"percentile intervals over {self.n_boot} bootstrap refits of the paper's recipe "
            "on the training runs"
        )
        degenerate = sum(isinstance(w.message, DegenerateResampleWarning) for w in caught)
        return BootstrapPredictor(ols, context.masses, note, {"degenerate_resamples": degenerate})


# --------------------------------------------------------------------------- published laws


class LawMethod:
    """A published law of the paper's Table 1: its point prediction, no intervals.

    A law that is a function of the loss is given each held-out setting's best observed
    loss (``uses_loss`` in the output says so); a law without a learning rate (or batch)
    gives NaN there, so it has no relative loss.
    """

    def __init__(self, law: PublishedLaw):
        if not law.evaluable:
            raise ValueError(f"law {law.name!r} is not evaluable: {law.not_evaluable_reason}")
        self.law = law
        self.name = law.name

    def __repr__(self) -> str:
        return f"LawMethod({self.law.name!r})"

    def __reduce__(self):
        # a PublishedLaw holds a mappingproxy, which does not pickle: a registered law
        # travels to worker processes by its key
        from ..laws import LAWS

        if LAWS.get(self.law.name) is self.law:
            return (_registered_law_method, (self.law.name,))
        return super().__reduce__()

    def fit(self, train: pd.DataFrame, context: FoldContext) -> LawMethod:
        """Nothing to fit: published constants."""
        return self

    def predict(self, settings: pd.DataFrame) -> MethodPrediction:
        """The law at each held-out setting."""
        n = len(settings)
        uses_loss = "loss" in self.law.needs
        kw = {"loss": settings["best_loss"].to_numpy(float)} if uses_loss else {}
        n_, d_ = settings["N"].to_numpy(float), settings["D"].to_numpy(float)
        lr = self.law.lr(n_, d_, **kw)
        bs = self.law.batch_tokens(n_, d_, seq_len=settings["seq_len"].to_numpy(float), **kw)
        lr = np.full(n, np.nan) if lr is None else np.broadcast_to(lr, (n,)).astype(float)
        bs = np.full(n, np.nan) if bs is None else np.broadcast_to(bs, (n,)).astype(float)
        note = f"{self.law.label}: {self.law.lr_formula or 'no lr'}; {self.law.batch_formula or 'no batch'}"  # noqa: E501
        if uses_loss:
            note += " (given the held-out setting's best observed loss)"
        return MethodPrediction(lr, bs, uses_loss=uses_loss, note=note)


def _registered_law_method(name: str) -> LawMethod:
    from ..laws import LAWS

    return LawMethod(LAWS[name])


# --------------------------------------------------------------------------- registry


def method_names() -> list[str]:
    """Names of the built-in methods, in their default order."""
    return [*BUILTIN_METHODS, *evaluable_laws()]


def get_method(name: str) -> Method:
    """A built-in method by name (:func:`method_names`)."""
    from .peers import peer_method

    laws = evaluable_laws()
    makers = {"bayes": BayesMethod, "optimum": OptimumMethod, "paper": PaperMethod,
              "ols": OLSMethod}  # fmt: skip
    if name in makers:
        return makers[name]()
    if name.startswith("peer-") and name in BUILTIN_METHODS:
        return peer_method(name)
    if name in laws:
        return LawMethod(laws[name])
    hint = f" ({REMOVED[name]})" if name in REMOVED else ""
    raise ValueError(f"unknown method {name!r}{hint}; the built-in methods are {method_names()}")


def resolve_methods(methods: Any = None) -> list[Method]:
    """Methods from names, a comma-separated string, method objects, or None (all built-in).

    Raises a ValueError for an unknown name, an object without ``name``/``fit``, or two
    methods of one name.
    """
    if methods is None:
        methods = method_names()
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    out = []
    for m in methods:
        if isinstance(m, str):
            out.append(get_method(m))
        elif isinstance(getattr(m, "name", None), str) and callable(getattr(m, "fit", None)):
            out.append(m)
        else:
            raise ValueError(
                f"a method must be a built-in name ({method_names()}) or an object with a "
                f"string `name` and `fit(train, context)`; got {m!r}"
            )
    names = [m.name for m in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"method names must be unique; repeated: {twice}")
    if not out:
        raise ValueError("no method to evaluate")
    return out


# --------------------------------------------------------------------------- figures


def gallery_tables(
    post, sweeps: pd.DataFrame, settings: list[str], curve_setting: str, seed: int = 0,
    prob: float = 0.9,
) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The data of the loss gallery figure, from a loss posterior that did not see ``settings``.

    Returns ``runs`` (every run of ``settings`` with its observed loss and the predictive
    median, ``prob`` interval and P(diverge)) and ``curves`` (loss against lr on a fine grid
    at four batch sizes of ``curve_setting``, with the same columns).
    """
    from ..bayes.design import DEFAULT_GROUPS
    from .peers import with_groups

    groups = post.metadata.get("groups", DEFAULT_GROUPS)
    table = with_groups(sweeps, groups, post.metadata["diverged_ratio"])
    parts = []
    for setting in settings:
        runs = table[table["setting"] == setting].reset_index(drop=True)
        group = str(runs["group"].iloc[0])
        frame = post.predict_loss(
            runs["N"].to_numpy(float), runs["D"].to_numpy(float), runs["lr"].to_numpy(float),
            runs["batch_tokens"].to_numpy(float), group=group, seed=seed, allow_unconverged=True,
        ).to_dataframe(prob)  # fmt: skip
        keep = ["setting", "family", "batch_sequences", "loss", "diverged"]
        parts.append(pd.concat([runs[keep], frame], axis=1))
    runs = pd.concat(parts, ignore_index=True)
    one = table[table["setting"] == curve_setting]
    lr = np.exp(np.linspace(np.log(one["lr"].min()), np.log(one["lr"].max()), 60))
    batches = np.array([64, 256, 1024, 2048]) * float(one["seq_len"].iloc[0])
    curves = post.predict_loss(
        float(one["N"].iloc[0]), float(one["D"].iloc[0]), lr[None, :], batches[:, None],
        group=str(one["group"].iloc[0]), seed=seed, allow_unconverged=True,
    ).to_dataframe(prob)  # fmt: skip
    return runs, curves.assign(setting=curve_setting)
