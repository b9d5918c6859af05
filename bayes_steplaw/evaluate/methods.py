"""The methods a held-out evaluation compares, behind one small protocol.

A **method** has a ``name`` and ``fit(train, context) -> predictor``; a **predictor** has
``predict(settings) -> MethodPrediction``. That is all a user's own method needs::

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
the name a method that knows groups predicts the setting as: its own group under ``loso`` and
``extrapolate``, ``"<family>/new"`` or ``"new"`` under ``logo``.

Optional extras a predictor may offer: interval bounds at each mass of ``context.masses``
(else equal-tailed ones are taken from its draws), ``draws`` of (ln lr, ln batch) for the log
score, ``plateau_probability(runs, tol)`` (one probability per held-out run, for the
reliability tables; set ``plateau = True`` on the method) and ``diagnostics`` (a dict: the
fit's ``converged``, ``divergences``, ``max_r_hat``, ``sample_seconds``). A method with a
``yardstick(context)`` method supplies each setting's L* for the second plateau event.

The built-in methods: ``bayes`` (the package's default choice: the optimum model's posterior
median), ``landscape`` (the landscape model's ``recommend``), ``paper`` (the published
bootstrap ensemble), ``ols`` (the paper's recipe refitted on the fold's training runs) and
every evaluable law of the paper's Table 1 (:func:`bayes_steplaw.laws.evaluable_laws`).

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
from .protocol import BOUNDS, FoldContext, Method, MethodPrediction

DEFAULT_INTERVAL_KIND = None
"""``predict(kind=...)`` of the Bayesian methods' intervals and choices (see
:meth:`bayes_steplaw.StepLawPosterior.predict`); ``None``: each posterior's
``default_kind`` (``"sweep"`` for the optimum model, the best run a sweep finds; ``"centre"``
for the landscape). Read when a fold is fitted."""

BUILTIN_METHODS = ("bayes", "landscape", "paper", "ols")
"""Names of the built-in methods besides the published laws."""


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


class StepLawPredictor:
    """Predictions of a fitted Step-Law posterior: medians, intervals and draws of
    ``predict(kind=interval_kind)``; the choice is the median of ``predict(kind=point_kind)``."""

    def __init__(self, post, *, interval_kind, point_kind, masses, seed: int, diag):
        self.post = post
        self.interval_kind = interval_kind or post.default_kind
        self.point_kind = point_kind or post.default_kind
        self.masses = tuple(masses)
        self.seed = seed
        self.diagnostics = diag

    def _predict(self, rows: pd.DataFrame, group: str, kind: str):
        return self.post.predict(
            rows["N"].to_numpy(float), rows["D"].to_numpy(float), group=group, kind=kind,
            seed=self.seed, allow_unconverged=True,
        )  # fmt: skip

    def _choice(self, rows: pd.DataFrame, group: str, pred) -> tuple[np.ndarray, np.ndarray]:
        if self.point_kind != self.interval_kind:
            pred = self._predict(rows, group, self.point_kind)
        med = pred.median()
        return med["lr"].to_numpy(), med["batch_tokens"].to_numpy()

    def predict(self, settings: pd.DataFrame) -> MethodPrediction:
        """Choice, intervals at every mass and (ln lr, ln batch) draws per held-out setting."""
        n = len(settings)
        lr, bs = np.empty(n), np.empty(n)
        intervals = {m: {k: np.empty(n) for k in BOUNDS} for m in self.masses}
        draws = None
        for group, idx in settings.groupby("group", sort=False).indices.items():
            rows = settings.iloc[idx]
            pred = self._predict(rows, str(group), self.interval_kind)
            lr[idx], bs[idx] = self._choice(rows, str(group), pred)
            for m in self.masses:
                iv = pred.interval(m, method="eti")
                for k in BOUNDS:
                    intervals[m][k][idx] = iv[k].to_numpy()
            d = pred.draws
            block = np.stack([np.log(d["lr"].values), np.log(d["batch_tokens"].values)], axis=-1)
            if draws is None:
                draws = np.empty((n, block.shape[1], 2))
            draws[idx] = block
        from ..bayes.law import describe_kind

        note = f"equal-tailed intervals of {describe_kind(self.interval_kind)}"
        return MethodPrediction(lr, bs, intervals, draws, note=note)


class BayesMethod:
    """``bayes``: the optimum model's posterior median, refitted per fold (compiled once).

    Parameters
    ----------
    model : OptimumModel, optional
        The model (default ``OptimumModel(groups)`` with the evaluation's groups).
    interval_kind : str, optional
        ``predict(kind=...)`` of the intervals (default :data:`DEFAULT_INTERVAL_KIND`).
    point_kind : str, optional
        ``predict(kind=...)`` whose median is the choice (default: the posterior's
        ``default_kind``: the median best run of a sweep for the optimum model).
    name : str
        The method's name in the output.
    """

    cost: ClassVar[int] = 2  # scheduling hint: long tasks are submitted first
    model_class: ClassVar[str] = "optimum"

    def __init__(self, model=None, *, interval_kind=None, point_kind=None, name="bayes"):
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

    def _predictor(self, post, context, diag):
        return StepLawPredictor(
            post, interval_kind=self.interval_kind or DEFAULT_INTERVAL_KIND,
            point_kind=self.point_kind, masses=context.masses, seed=context.seed, diag=diag,
        )  # fmt: skip

    def fit(self, train: pd.DataFrame, context: FoldContext) -> StepLawPredictor:
        """Sample the compiled model with the fold's held-out settings weighted 0."""
        post, diag = _fit_weighted(self.make_model(context.groups), context)
        return self._predictor(post, context, diag)


class LandscapePredictor(StepLawPredictor):
    """The landscape posterior's ``recommend`` as the choice, its plateau probabilities."""

    def _choice(self, rows, group, pred):
        rec = self.post.recommend(
            rows["N"].to_numpy(float), rows["D"].to_numpy(float), group=group, seed=self.seed,
            allow_unconverged=True,
        )  # fmt: skip
        return np.atleast_1d(rec.lr).astype(float), np.atleast_1d(rec.batch_tokens).astype(float)

    def predict(self, settings: pd.DataFrame) -> MethodPrediction:
        """As :class:`StepLawPredictor`, the choice being ``recommend``'s Bayes decision."""
        out = super().predict(settings)
        out.note += "; choice: recommend (least posterior expected relative loss)"
        return out

    def plateau_probability(self, runs: pd.DataFrame, tol: float) -> dict[str, np.ndarray]:
        """Predictive probabilities (run noise included) that each run is within ``tol`` of
        L* (``p_plateau``) and of the best run of a sweep (``p_sweep``)."""
        out = {"p_plateau": np.empty(len(runs)), "p_sweep": np.empty(len(runs))}
        for (group, _), idx in runs.groupby(["group", "setting"], sort=False).indices.items():
            rows = runs.iloc[idx]
            args = [rows[c].to_numpy(float) for c in ("N", "D", "lr", "batch_tokens")]
            kw = {"tol": tol, "group": str(group), "seed": self.seed, "allow_unconverged": True}
            out["p_plateau"][idx] = self.post.plateau_probability(*args, predictive=True, **kw)
            out["p_sweep"][idx] = self.post.plateau_probability(*args, reference="sweep", **kw)
        return out


class LandscapeMethod(BayesMethod):
    """``landscape``: the landscape model's ``recommend``, refitted per fold (compiled once);
    its plateau probabilities feed the reliability tables, its full-data fit the L* yardstick."""

    cost: ClassVar[int] = 3
    model_class: ClassVar[str] = "landscape"
    plateau: ClassVar[bool] = True

    def __init__(self, model=None, *, interval_kind=None, point_kind=None, name="landscape"):
        super().__init__(model, interval_kind=interval_kind, point_kind=point_kind, name=name)

    def _predictor(self, post, context, diag):
        return LandscapePredictor(
            post, interval_kind=self.interval_kind or DEFAULT_INTERVAL_KIND,
            point_kind=self.point_kind, masses=context.masses, seed=context.seed, diag=diag,
        )  # fmt: skip

    def yardstick(self, context: FoldContext) -> pd.Series:
        """Each setting's L* (posterior median bowl bottom) from a fit on every setting.

        In sample by construction: it is the reference of the event "within tol of L*", not
        a prediction, and is used for nothing else.
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
    laws = evaluable_laws()
    makers = {
        "bayes": BayesMethod,
        "landscape": LandscapeMethod,
        "paper": PaperMethod,
        "ols": OLSMethod,
    }
    if name in makers:
        return makers[name]()
    if name in laws:
        return LawMethod(laws[name])
    raise ValueError(f"unknown method {name!r}; the built-in methods are {method_names()}")


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
