"""The model interface: configure, build, compile, fit; one class per model kind.

In the spirit of scikit-learn's estimators, a model object holds only its configuration
(``get_config``, recorded in the posterior's metadata as ``config``); :meth:`Model.fit` turns a
sweep table into a posterior. :meth:`Model.prepare` builds and compiles once so that refits on
other weights of the same runs (held-out folds) cost sampling only. Model modules subclass
:class:`Model` with a ``kind``; the subclass registers itself, and :func:`fit` finds it by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import __version__
from .._validate import check_count, check_prob
from .design import DEFAULT_GROUPS, Design, check_sweeps, data_fingerprint, design_metadata
from .posterior import Posterior
from .sampling import (
    Compiled,
    compile_model,
    convergence_report,
    import_arviz,
    phase,
    run_nuts,
)

_MODELS: dict[str, type[Model]] = {}


def model_kinds() -> list[str]:
    """The model kinds :func:`fit` knows, the default first."""
    return sorted(_MODELS, key=lambda k: k != "loss")


def model_class(kind: str) -> type[Model]:
    """The model class registered for a kind (``"loss"``, ``"optimum"``)."""
    if kind not in _MODELS:
        raise ValueError(f"model must be one of {list(_MODELS)}; got {kind!r}")
    return _MODELS[kind]


@dataclass
class Built:
    """A model's PyMC graph on one sweep table, and what the fit records about it."""

    model: Any  # pymc.Model
    design: Design
    extra: dict = field(default_factory=dict)  # metadata of the model's own
    sampler_kwargs: dict = field(default_factory=dict)  # nutpie options the model needs
    jitter: tuple[str, ...] | None = None  # variables whose start is jittered (None: all)
    start: dict | None = None  # starting values of some variables (constrained space)
    sampler_defaults: dict = field(default_factory=dict)  # this table's, over the model's


SAMPLER_DEFAULTS = {"chains": 4, "draws": 1000, "tune": 1000, "target_accept": 0.95,
                    "max_depth": 10}  # fmt: skip
"""Sampler settings of a fit unless the model or the caller says otherwise."""


@dataclass
class SamplerSettings:
    """How NUTS runs; ``seed`` makes a fit reproducible. ``None``: the model's default
    (:attr:`Model.sampler_defaults`, else :data:`SAMPLER_DEFAULTS`)."""

    sampler: str | None = None
    chains: int | None = None
    draws: int | None = None
    tune: int | None = None
    seed: int = 0
    target_accept: float | None = None
    max_depth: int | None = None
    progressbar: bool = True
    sampler_kwargs: dict | None = None

    def resolved(self, defaults: dict) -> SamplerSettings:
        """These settings with every ``None`` taken from ``defaults``, checked."""
        given = {k: v for k, v in vars(self).items() if v is not None}
        out = SamplerSettings(**{**SAMPLER_DEFAULTS, **defaults, **given})
        check_count(out.chains, "chains")
        check_count(out.draws, "draws")
        check_count(out.tune, "tune", minimum=0)
        check_count(out.max_depth, "max_depth")
        check_count(out.seed, "seed", minimum=0)
        check_prob(out.target_accept, "target_accept")
        # a posterior this large cannot be saved or loaded (Posterior.MAX_SAMPLES); say so now
        from .variables import MAX_SAMPLES

        if out.chains * out.draws > MAX_SAMPLES:
            raise ValueError(
                f"chains x draws = {out.chains * out.draws} exceeds the {MAX_SAMPLES} samples "
                f"a posterior can hold; use fewer --draws or --chains"
            )
        return out


class Model:
    """Base class of the models; subclasses set ``kind``, ``version`` and implement
    :meth:`build` (and list their own arguments in :meth:`get_config`)."""

    kind: ClassVar[str | None] = None
    posterior_class: ClassVar[type[Posterior]]
    sampler_defaults: ClassVar[dict] = {}  # the model's own defaults (SamplerSettings)
    pooled_sampler_defaults: ClassVar[dict] = {}  # over those, for runs of two or more labs

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            _MODELS[cls.kind] = cls

    def __init__(
        self, groups: tuple[str, ...] | list[str] = DEFAULT_GROUPS, *, batch_depends_on_N=False
    ):
        if isinstance(groups, str):
            groups = (groups,)
        self.groups = tuple(groups)
        self.batch_depends_on_N = bool(batch_depends_on_N)

    def get_config(self) -> dict:
        """JSON-ready arguments of this model (what ``type(self)(**config)`` rebuilds)."""
        return {"groups": list(self.groups), "batch_depends_on_N": self.batch_depends_on_N}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @property
    def version(self) -> int:
        """Version of the model's definition, recorded in every posterior file."""
        return self.posterior_class.version

    def build(self, sweeps: pd.DataFrame, *, weighted: bool = False) -> Built:
        """The PyMC model of ``sweeps``; ``weighted`` adds a ``run_weight`` data vector that
        multiplies each run's log-likelihood (1 by default), for refits without recompiling."""
        raise NotImplementedError

    def prepare(
        self,
        sweeps: pd.DataFrame,
        *,
        weighted: bool = False,
        sampler: str | None = None,
        progressbar: bool = False,
    ) -> Prepared:
        """Build and compile once; :meth:`Prepared.fit` then samples (with run weights)."""
        sweeps = check_sweeps(sweeps)
        import_arviz()  # before PyMC imports it: ArviZ's refactor notice is not ours to print
        built = self.build(sweeps, weighted=weighted)
        compiled = compile_model(
            built.model, sampler, progressbar=progressbar, jitter=built.jitter, start=built.start
        )
        return Prepared(self, sweeps, built, compiled)

    def fit(self, sweeps: pd.DataFrame, **settings) -> Posterior:
        """Fit by NUTS; ``settings`` as in :class:`SamplerSettings`.

        Returns
        -------
        Posterior
            Warns (naming the parameters) when R-hat > 1.01, any transition diverged or an
            ESS < 400; such a posterior only predicts with ``allow_unconverged=True``.
        """
        given = SamplerSettings(**settings)
        given.resolved(self.sampler_defaults)  # checked before any work
        prepared = self.prepare(sweeps, sampler=given.sampler, progressbar=given.progressbar)
        return prepared.fit(settings=given)


@dataclass
class Prepared:
    """A model built and compiled on one sweep table, ready to sample (see :meth:`fit`)."""

    model: Model
    sweeps: pd.DataFrame
    built: Built
    compiled: Compiled

    def fit(
        self,
        weights: np.ndarray | None = None,
        *,
        settings: SamplerSettings | None = None,
        **kwargs,
    ) -> Posterior:
        """Sample; ``weights`` (one per run of ``built.design.runs``) need ``weighted=True``.

        A run of weight 0 leaves the likelihood: held-out refits set a setting's runs to 0.
        """
        run = (settings or SamplerSettings(**kwargs)).resolved(
            {**self.model.sampler_defaults, **self.built.sampler_defaults}
        )
        data = None
        if weights is not None:
            weights = np.asarray(weights, dtype=float)
            n_runs = len(self.built.design.runs)
            if weights.shape != (n_runs,) or not np.isfinite(weights).all() or (weights < 0).any():
                raise ValueError(
                    f"weights must be {n_runs} finite non-negative numbers, one per run; "
                    f"got shape {weights.shape}"
                )
            if "run_weight" not in self.compiled.model.named_vars:
                raise ValueError("weights need a model prepared with weighted=True")
            data = {"run_weight": weights}
        kwargs = {**self.built.sampler_kwargs, **(run.sampler_kwargs or {})}
        if self.compiled.sampler != "nutpie":
            kwargs = dict(run.sampler_kwargs or {})  # the model's own options are nutpie's
        idata, seconds = run_nuts(
            self.compiled,
            chains=run.chains,
            draws=run.draws,
            tune=run.tune,
            seed=run.seed,
            target_accept=run.target_accept,
            max_depth=run.max_depth,
            progressbar=run.progressbar,
            data=data,
            sampler_kwargs=kwargs,
        )
        with phase("checking convergence", run.progressbar):
            diagnostics = convergence_report(idata)
        model = self.model
        metadata = {
            "model": model.kind,
            "model_version": model.version,
            **design_metadata(self.built.design, model.groups),
            "batch_depends_on_N": model.batch_depends_on_N,
            "config": model.get_config(),
            "package_version": __version__,
            "data_sha256": data_fingerprint(self.sweeps),
            "sampler": {
                "name": self.compiled.sampler,
                "chains": run.chains,
                "draws": run.draws,
                "tune": run.tune,
                "target_accept": run.target_accept,
                "max_depth": run.max_depth,
            },
            "seed": run.seed,
            "seq_len": fitted_seq_len(self.sweeps),
            "fit_seconds": round(seconds + self.compiled.compile_seconds, 3),
            "sample_seconds": round(seconds, 3),
            "diagnostics": diagnostics,
            **self.built.extra,
        }
        if weights is not None:
            runs = self.built.design.runs
            held = runs.loc[weights == 0, "setting"].unique().tolist()
            metadata["held_out_settings"] = [str(s) for s in held]
            # the data a fold was fitted on span its trained settings only: what its
            # extrapolation notes and the surface's shape (held beyond them) refer to
            trained = runs.loc[weights > 0]
            for axis in ("N", "D"):
                metadata[f"{axis}_range"] = [float(trained[axis].min()), float(trained[axis].max())]
        kept = {name: getattr(idata, name) for name in ("posterior", "sample_stats")}
        # unconstrained copies (``*_log__``) are sampler internals and the raw z/e draws are
        # restated by the offsets and setting effects they build: neither is a parameter to keep
        internal = [
            v for v in kept["posterior"].data_vars if v.endswith("__") or v.startswith(("z_", "e_"))
        ]
        post_ds = kept["posterior"].drop_vars(internal)
        used = {d for v in post_ds.data_vars.values() for d in v.dims}
        kept["posterior"] = post_ds.drop_vars([c for c in post_ds.coords if c not in used])
        post = model.posterior_class(kept, metadata)
        post.warn_if_unconverged()
        return post


def fitted_seq_len(sweeps: pd.DataFrame) -> int:
    """The most common sequence length of a table's runs (2048 when it has none); of the
    user's runs in a table pooled with the released data, whose setup the fit answers for."""
    if "source" in sweeps and (sweeps["source"] == "user").any():
        sweeps = sweeps[sweeps["source"] == "user"]
    if "seq_len" not in sweeps or sweeps["seq_len"].isna().all():
        return 2048
    return int(sweeps["seq_len"].dropna().astype(int).mode().iloc[0])


def fit(
    sweeps: pd.DataFrame,
    model: str = "loss",
    groups: tuple[str, ...] | list[str] = DEFAULT_GROUPS,
    *,
    batch_depends_on_N: bool = False,
    sampler: str | None = None,
    chains: int | None = None,
    draws: int | None = None,
    tune: int | None = None,
    seed: int = 0,
    target_accept: float | None = None,
    max_depth: int | None = None,
    progressbar: bool = True,
    sampler_kwargs: dict | None = None,
    **model_kwargs,
) -> Posterior:
    """Fit a model of the hierarchical Step Law by NUTS.

    Parameters
    ----------
    sweeps : DataFrame
        A sweep table in the package schema (:func:`load_sweeps` or :func:`read_sweeps`).
    model : {"loss", "optimum"}
        ``"loss"`` (default) the loss of every run over (N, D, lr, batch, group), divergence
        included (:class:`~bayes_steplaw.bayes.loss_model.LossModel`): every answer of the package
        comes from it. ``"optimum"`` regresses the near-optimal runs' (lr, batch) on (N, D)
        (:class:`~bayes_steplaw.bayes.optimum.OptimumModel`), for tables that hold only each
        setting's best runs.
    groups : sequence of str
        Group columns, outermost first; nested or crossed is read off the data.
    batch_depends_on_N : bool
        Add δ·(ln N − ln N0) to the batch law.
    sampler : {"nutpie", "pymc", "numpyro"}, optional
        NUTS implementation; default nutpie when installed.
    chains, draws, tune, seed, target_accept, max_depth, progressbar
        Sampler settings; ``None`` takes the model's default (``model_class(model)
        .sampler_defaults``). ``seed`` makes the fit reproducible; ``progressbar`` also prints
        the fit's phases.
    sampler_kwargs : dict, optional
        Passed to the sampler (nutpie's ``sample`` or PyMC's ``nuts_sampler_kwargs``).
    **model_kwargs
        The model's own options (see each model class).

    Returns
    -------
    Posterior
        A :class:`~bayes_steplaw.bayes.loss.LossPosterior` or
        :class:`~bayes_steplaw.bayes.optimum.OptimumPosterior`.
    """
    estimator = model_class(model)(groups, batch_depends_on_N=batch_depends_on_N, **model_kwargs)
    return estimator.fit(
        sweeps, sampler=sampler, chains=chains, draws=draws, tune=tune, seed=seed,
        target_accept=target_accept, max_depth=max_depth, progressbar=progressbar,
        sampler_kwargs=sampler_kwargs,
    )  # fmt: skip
