"""The hierarchical Step Law and its NUTS fit.

For the near-optimal runs of every setting (the paper's plateau filter),

    ln lr = c + α·(ln N − ln N0) + β·(ln D − ln D0) + a_lr[group] + u[setting] + ε
    ln B  = d + γ·(ln D − ln D0) [+ δ·(ln N − ln N0)] + a_bs[group] + v[setting] + ε'

with α, β, γ (and δ) shared by every group, group offsets with partial pooling (one population
scale per group column, non-centred), setting effects u, v for the runs that share one optimum,
and run-level scatter ε, ε' along the loss plateau. N0 and D0 are the geometric means of the
data's settings, so c and d are the law at the centre of the data.

Priors (natural-log scale):

    c ~ Normal(ln 1e-3, 2.5)     d ~ Normal(ln 1e6, 2.5)       (lr 1e-3, batch 1e6 tokens)
    α, β, γ, δ ~ Normal(0, 1)
    group scales ~ Gamma(2, rate 4)   (mean 0.5; kept off zero, see below)
    setting scales, run scales ~ HalfNormal(0.5)

The group scales are estimated from a handful of groups (two families here); a prior that
allows, but does not pile up at, zero keeps the sampler out of the funnel between a scale and
its offsets, and keeps predictions for a never-seen group honestly wide.

PyMC is imported only inside the functions that build or sample a model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .hierarchy import Hierarchy
from .sweeps import CORE_COLUMNS, near_optimal

MODEL_VERSIONS = {"optimum": 1, "landscape": 1}
PRIORS = {
    "c": ("Normal", float(np.log(1e-3)), 2.5),
    "d": ("Normal", float(np.log(1e6)), 2.5),
    "alpha": ("Normal", 0.0, 1.0),
    "beta": ("Normal", 0.0, 1.0),
    "gamma": ("Normal", 0.0, 1.0),
    "delta": ("Normal", 0.0, 1.0),
    "sigma_group": ("Gamma", 2.0, 4.0),
    "sigma_setting": ("HalfNormal", 0.5),
    "sigma_run": ("HalfNormal", 0.5),
}
SAMPLERS = ("nutpie", "pymc", "numpyro")


@dataclass(frozen=True)
class Design:
    """Arrays of one fit, independent of PyMC."""

    hierarchy: Hierarchy
    settings: list[str]
    log_n: np.ndarray  # per setting, centred
    log_d: np.ndarray  # per setting, centred
    setting_levels: np.ndarray  # (n_settings, n_levels) level index, -1 for none
    run_setting: np.ndarray  # (n_runs,) setting index of each run
    log_lr: np.ndarray  # (n_runs,)
    log_bs: np.ndarray  # (n_runs,)
    log_n0: float
    log_d0: float
    runs: pd.DataFrame  # the runs used, with rel_loss


def data_fingerprint(sweeps: pd.DataFrame) -> str:
    """sha256 of the canonical columns of a sweep table (row order included)."""
    cols = [c for c in CORE_COLUMNS if c in sweeps]
    return hashlib.sha256(sweeps[cols].to_csv(index=False).encode()).hexdigest()


def build_design(
    runs: pd.DataFrame, groups: tuple[str, ...] | list[str], log_n0=None, log_d0=None
) -> Design:
    """Index a table of runs (already filtered) by setting and group level."""
    settings_frame = runs.drop_duplicates("setting").sort_values("setting").reset_index(drop=True)
    hierarchy, levels = Hierarchy.from_frame(settings_frame, groups)
    settings = settings_frame["setting"].tolist()
    log_n = np.log(settings_frame["N"].to_numpy(float))
    log_d = np.log(settings_frame["D"].to_numpy(float))
    log_n0 = float(log_n.mean()) if log_n0 is None else log_n0
    log_d0 = float(log_d.mean()) if log_d0 is None else log_d0
    lookup = {s: i for i, s in enumerate(settings)}
    return Design(
        hierarchy=hierarchy,
        settings=settings,
        log_n=log_n - log_n0,
        log_d=log_d - log_d0,
        setting_levels=levels,
        run_setting=runs["setting"].map(lookup).to_numpy(int),
        log_lr=np.log(runs["lr"].to_numpy(float)),
        log_bs=np.log(runs["batch_tokens"].to_numpy(float)),
        log_n0=log_n0,
        log_d0=log_d0,
        runs=runs,
    )


def level_dims(hierarchy: Hierarchy) -> dict[str, list[str]]:
    """Coordinate name and labels of every group column's offsets."""
    return {f"level_{lev.column}": list(lev.labels) for lev in hierarchy.levels}


def group_offsets(pm, pt, name: str, design: Design, centered: bool = False):
    """Sum of the level offsets of every setting for one law (``lr`` or ``bs``).

    The offsets of the levels under one parent are ``sigma * z`` with ``z`` a zero-sum normal
    (non-centred): the intercept, or the parent's offset, is the siblings' mean and is not
    traded off against them. A level without siblings gets no offset: it is not identified
    apart from its parent. ``centered=True`` samples the zero-sum offsets with scale ``sigma``
    directly (for data that pin the offsets down, as in the landscape model).
    """
    total = 0.0
    for j, lev in enumerate(design.hierarchy.levels):
        sigma = pm.Gamma(f"sigma_{name}_{lev.column}", *PRIORS["sigma_group"][1:])
        parents = np.asarray(lev.parents)
        pieces, order = [], []
        siblings = np.unique(parents)
        for k, parent in enumerate(siblings):
            members = np.flatnonzero(parents == parent)
            order.extend(members)
            if len(members) == 1:
                pieces.append(pt.zeros(1))
            else:
                label = lev.column if len(siblings) == 1 else f"{lev.column}_{k}"
                if centered:
                    pieces.append(pm.ZeroSumNormal(f"e_{name}_{label}", sigma, shape=len(members)))
                else:
                    z = pm.ZeroSumNormal(f"e_{name}_{label}", 1.0, shape=len(members))
                    pieces.append(sigma * z)
        stacked = pt.concatenate(pieces)[np.argsort(order)]
        offset = pm.Deterministic(f"a_{name}_{lev.column}", stacked, dims=f"level_{lev.column}")
        padded = pt.concatenate([offset, pt.zeros(1)])  # index -1 picks the zero
        total = total + padded[design.setting_levels[:, j]]
    return total


def law_means(pm, pt, design: Design, batch_depends_on_N: bool, centered: bool = False):
    """Setting-level optima (log lr, log batch tokens) of the hierarchical law.

    ``centered=True`` samples the setting optima ``m_lr``, ``m_bs`` (``u``, ``v`` then follow
    from them) and the group offsets directly: right when every setting's own runs pin its
    optimum down, as in the landscape model, where the non-centred form makes NUTS trees ~15x
    deeper and funnels the family scale.
    """
    c = pm.Normal("c", *PRIORS["c"][1:])
    d = pm.Normal("d", *PRIORS["d"][1:])
    alpha = pm.Normal("alpha", *PRIORS["alpha"][1:])
    beta = pm.Normal("beta", *PRIORS["beta"][1:])
    gamma = pm.Normal("gamma", *PRIORS["gamma"][1:])
    off_lr = group_offsets(pm, pt, "lr", design, centered)
    off_bs = group_offsets(pm, pt, "bs", design, centered)
    mu_lr = c + alpha * design.log_n + beta * design.log_d + off_lr
    mu_bs = d + gamma * design.log_d + off_bs
    if batch_depends_on_N:
        mu_bs = mu_bs + pm.Normal("delta", *PRIORS["delta"][1:]) * design.log_n
    sigma_u = pm.HalfNormal("sigma_setting_lr", PRIORS["sigma_setting"][1])
    sigma_v = pm.HalfNormal("sigma_setting_bs", PRIORS["sigma_setting"][1])
    if centered:
        m_lr = pm.Normal("m_lr", mu_lr, sigma_u, dims="setting")
        m_bs = pm.Normal("m_bs", mu_bs, sigma_v, dims="setting")
        pm.Deterministic("u", m_lr - mu_lr, dims="setting")
        pm.Deterministic("v", m_bs - mu_bs, dims="setting")
        return m_lr, m_bs
    u = pm.Deterministic("u", sigma_u * pm.Normal("z_u", 0.0, 1.0, dims="setting"), dims="setting")
    v = pm.Deterministic("v", sigma_v * pm.Normal("z_v", 0.0, 1.0, dims="setting"), dims="setting")
    return mu_lr + u, mu_bs + v


def build_optimum_model(design: Design, batch_depends_on_N: bool = False):
    """The PyMC model of the optimum law on ``design``."""
    import pymc as pm
    import pytensor.tensor as pt

    coords = {"setting": design.settings, "run": np.arange(len(design.log_lr))}
    coords.update(level_dims(design.hierarchy))
    with pm.Model(coords=coords) as model:
        m_lr, m_bs = law_means(pm, pt, design, batch_depends_on_N)
        s_lr = pm.HalfNormal("sigma_run_lr", PRIORS["sigma_run"][1])
        s_bs = pm.HalfNormal("sigma_run_bs", PRIORS["sigma_run"][1])
        pm.Normal("log_lr", m_lr[design.run_setting], s_lr, observed=design.log_lr, dims="run")
        pm.Normal("log_bs", m_bs[design.run_setting], s_bs, observed=design.log_bs, dims="run")
    return model


def design_metadata(
    model: str, design: Design, groups: tuple[str, ...] | list[str], batch_depends_on_N: bool
) -> dict:
    """The part of a posterior's metadata that describes the model and its data design."""
    settings = design.runs.drop_duplicates("setting")
    return {
        "model": model,
        "model_version": MODEL_VERSIONS[model],
        "groups": list(groups),
        "hierarchy": design.hierarchy.to_dict(),
        "batch_depends_on_N": bool(batch_depends_on_N),
        "log_n0": design.log_n0,
        "log_d0": design.log_d0,
        "N_range": [float(settings["N"].min()), float(settings["N"].max())],
        "D_range": [float(settings["D"].min()), float(settings["D"].max())],
        "n_runs": len(design.runs),
        "n_settings": len(design.settings),
    }


def default_sampler() -> str:
    """``"nutpie"`` when installed, else ``"pymc"``."""
    return "nutpie" if find_spec("nutpie") is not None else "pymc"


def sample(
    model,
    *,
    sampler: str | None,
    chains: int,
    draws: int,
    tune: int,
    seed: int,
    target_accept: float,
    progressbar: bool,
    sampler_kwargs: dict | None = None,
):
    """Run NUTS on a PyMC model; returns (InferenceData, seconds, sampler name)."""
    import pymc as pm

    sampler = sampler or default_sampler()
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}; got {sampler!r}")
    needs = {"nutpie": "nutpie", "numpyro": "numpyro"}.get(sampler)
    if needs and find_spec(needs) is None:
        raise ImportError(
            f"sampler={sampler!r} needs the {needs!r} package; install it or use 'pymc'"
        )
    kwargs: dict[str, Any] = dict(
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        progressbar=progressbar,
        model=model,
        nuts_sampler=sampler,
        compute_convergence_checks=False,
        target_accept=target_accept,
    )
    if sampler == "pymc":
        kwargs["cores"] = min(chains, os.cpu_count() or 1)
    if sampler_kwargs:
        kwargs["nuts_sampler_kwargs"] = dict(sampler_kwargs)
    start = time.perf_counter()
    # PyMC logs its sampler set-up at INFO; a quiet fit (no progress bar) stays quiet
    pymc_log = logging.getLogger("pymc")
    level = pymc_log.level
    if not progressbar:
        pymc_log.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # PyMC/ArviZ announce refactors and sampler internals on every fit; our own
        # convergence report replaces them.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("ignore", message=".*Cannot cache compiled function")  # numba
        try:
            idata = pm.sample(**kwargs)
        finally:
            pymc_log.setLevel(level)
    return idata, time.perf_counter() - start, sampler


def fit(
    sweeps: pd.DataFrame,
    model: str = "optimum",
    groups: tuple[str, ...] | list[str] = ("family", "variant"),
    *,
    threshold: float = 0.0025,
    batch_depends_on_N: bool = False,
    sampler: str | None = None,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    seed: int = 0,
    target_accept: float = 0.95,
    progressbar: bool = True,
    sampler_kwargs: dict | None = None,
    **model_kwargs,
):
    """Fit the hierarchical Step Law by NUTS.

    Parameters
    ----------
    sweeps : DataFrame
        A sweep table in the package schema (:func:`load_sweeps` or :func:`read_sweeps`).
    model : {"optimum", "landscape"}
        ``"optimum"`` regresses the near-optimal runs' (lr, batch) on (N, D); ``"landscape"``
        models the loss bowl around each optimum (see :mod:`bayes_steplaw.landscape`).
    groups : sequence of str
        Group columns, outermost first; nested or crossed is read off the data.
    threshold : float
        Plateau filter of the optimum model: runs within this relative loss of their setting's
        best are used.
    batch_depends_on_N : bool
        Add δ·(ln N − ln N0) to the batch law.
    sampler : {"nutpie", "pymc", "numpyro"}, optional
        NUTS implementation; default nutpie when installed.
    chains, draws, tune, seed, target_accept, progressbar
        Sampler settings; ``seed`` makes the fit reproducible. The default target_accept of
        0.95 is what the released data need to sample without divergences (the family scale
        is estimated from two families).
    sampler_kwargs : dict, optional
        Passed to the external sampler (``nuts_sampler_kwargs`` of :func:`pymc.sample`).

    Returns
    -------
    StepLawPosterior
        Warns (naming the parameters) when R-hat > 1.01, any transition diverged or an
        ESS < 400; such a posterior only predicts with ``allow_unconverged=True``.
    """
    from .diagnostics import convergence_report
    from .posterior import StepLawPosterior

    if model not in MODEL_VERSIONS:
        raise ValueError(f"model must be one of {list(MODEL_VERSIONS)}; got {model!r}")
    for name, value in {"chains": chains, "draws": draws}.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if tune < 0:
        raise ValueError(f"tune must be >= 0; got {tune!r}")
    missing = [c for c in ("N", "D", "lr", "batch_tokens", "loss", "setting") if c not in sweeps]
    if missing:
        raise ValueError(
            f"sweeps lacks column(s) {missing}; load it with load_sweeps or read_sweeps"
        )
    if model == "landscape":
        from .landscape import build_landscape

        pm_model, design, extra = build_landscape(
            sweeps, groups, batch_depends_on_N=batch_depends_on_N, **model_kwargs
        )
        # the model's own nutpie options (recorded in the metadata); the caller's win
        if extra.get("nutpie_kwargs") and (sampler or default_sampler()) == "nutpie":
            sampler_kwargs = {**extra["nutpie_kwargs"], **(sampler_kwargs or {})}
    else:
        if model_kwargs:
            raise TypeError(f"unexpected keyword argument(s) {sorted(model_kwargs)}")
        runs = near_optimal(sweeps, threshold)
        design = build_design(runs, groups)
        pm_model = build_optimum_model(design, batch_depends_on_N)
        extra = {"threshold": threshold}
    idata, seconds, used = sample(
        pm_model,
        sampler=sampler,
        chains=chains,
        draws=draws,
        tune=tune,
        seed=seed,
        target_accept=target_accept,
        progressbar=progressbar,
        sampler_kwargs=sampler_kwargs,
    )
    diagnostics = convergence_report(idata)
    metadata = {
        **design_metadata(model, design, groups, batch_depends_on_N),
        "package_version": __version__,
        "data_sha256": data_fingerprint(sweeps),
        "sampler": {
            "name": used,
            "chains": chains,
            "draws": draws,
            "tune": tune,
            "target_accept": target_accept,
        },
        "seed": seed,
        "fit_seconds": round(seconds, 3),
        "priors": PRIORS,
        "diagnostics": diagnostics,
        **extra,
    }
    groups_out = {
        name: getattr(idata, name) for name in ("posterior", "sample_stats") if name in idata
    }
    # unconstrained copies (``*_log__``) are sampler internals and the raw z/e draws are
    # restated by the offsets and setting effects they build: neither is a parameter to keep
    internal = [
        v
        for v in groups_out["posterior"].data_vars
        if v.endswith("__") or v.startswith(("z_", "e_"))
    ]
    groups_out["posterior"] = groups_out["posterior"].drop_vars(internal)
    post = StepLawPosterior.from_datasets(groups_out, metadata)
    post.warn_if_unconverged()
    return post
