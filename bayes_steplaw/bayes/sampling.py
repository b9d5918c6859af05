"""NUTS through PyMC or nutpie, compile-once reuse, and the convergence gate.

A model is compiled once (:func:`compile_model`) and sampled any number of times
(:func:`run_nuts`), with new values of its ``pm.Data`` containers each time, so held-out
refits cost sampling only. :func:`convergence_report` reduces the sampler output to the JSON
the posterior's metadata keeps and the gate reads. PyMC, nutpie and ArviZ are imported only
inside the functions that need them.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import numpy as np

SAMPLERS = ("nutpie", "pymc", "numpyro")
RHAT_MAX = 1.01
ESS_MIN = 400
BFMI_MIN = 0.3


class ConvergenceWarning(UserWarning):
    """A fit did not pass the convergence gate."""


class ConvergenceError(RuntimeError):
    """Predicting from a posterior that did not pass the convergence gate."""


def import_arviz():
    """ArviZ, without the refactor notice it prints on import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


def psis_loo(posterior, log_lik):
    """PSIS-LOO (ArviZ ``ELPDData``, pointwise) of a posterior dataset and its pointwise
    log-likelihood, an array (chain, draw, run)."""
    import xarray as xr

    az = import_arviz()
    ll = xr.Dataset({"loss": (("chain", "draw", "run"), log_lik)})
    return az.loo(az.InferenceData(posterior=posterior, log_likelihood=ll), pointwise=True)


def default_sampler() -> str:
    """``"nutpie"`` when installed, else ``"pymc"``."""
    return "nutpie" if find_spec("nutpie") is not None else "pymc"


def check_sampler(sampler: str | None) -> str:
    """The sampler to use; ImportError when its package is missing."""
    sampler = sampler or default_sampler()
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}; got {sampler!r}")
    if sampler != "pymc" and find_spec(sampler) is None:
        raise ImportError(
            f"sampler={sampler!r} needs the {sampler!r} package; install it or use 'pymc'"
        )
    return sampler


# --------------------------------------------------------------------------- progress


@contextmanager
def phase(message: str, show: bool) -> Iterator[None]:
    """Print ``message`` and, when it ends, its duration, on stderr when ``show``."""
    start = time.perf_counter()
    if show:
        print(f"{message} ...", file=sys.stderr, flush=True)
    yield
    if show:
        print(f"{message}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)


@contextmanager
def _quiet_libraries(progressbar: bool) -> Iterator[None]:
    # PyMC logs its set-up at INFO and PyMC/ArviZ/numba announce refactors and internals on
    # every fit; our own phases and convergence report replace them.
    pymc_log = logging.getLogger("pymc")
    level = pymc_log.level
    if not progressbar:
        pymc_log.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("ignore", message=".*Cannot cache compiled function")
        try:
            yield
        finally:
            pymc_log.setLevel(level)


# --------------------------------------------------------------------------- compile, sample


@dataclass
class Compiled:
    """A model compiled for one sampler; sample it with :func:`run_nuts`."""

    model: Any  # pymc.Model
    sampler: str
    nutpie_model: Any = None  # nutpie's CompiledModel, for sampler="nutpie"
    compile_seconds: float = 0.0


def nutpie_backend() -> str:
    """``"jax"`` when JAX is installed, else ``"numba"``; ``$BAYES_STEPLAW_NUTPIE_BACKEND``
    chooses.

    JAX compiles a loss model's log density in about 5-10 s where numba takes 75-90 s (the
    graph is the same; numba compiles every node as a function of its own). Sampling, numba is
    faster: nutpie calls a JAX log density through Python, so the chains take turns holding
    the GIL (nutpie issue 157), where numba's run in parallel without it. Measured on two
    cores: a 770-run loss model, 2 chains x 600 steps, sampled in 40 s with JAX (45 s on one
    thread) against 14 s with numba; the README's pooled fit (2,663 runs, 4 x 1,700 steps)
    in 313 s against 262 s, plus 89 s of compiling. JAX's own persistent cache
    (``$JAX_COMPILATION_CACHE_DIR``, a JAX setting) keeps the compiled code across processes
    when a user switches it on.
    """
    chosen = os.environ.get("BAYES_STEPLAW_NUTPIE_BACKEND", "").strip().lower()
    if chosen:
        if chosen not in ("jax", "numba"):
            raise ValueError(
                f"BAYES_STEPLAW_NUTPIE_BACKEND must be 'jax' or 'numba'; got {chosen!r}"
            )
        return chosen
    return "jax" if find_spec("jax") is not None else "numba"


def compile_model(
    model, sampler: str | None = None, *, progressbar: bool = False, jitter=None, start=None
) -> Compiled:
    """Compile a PyMC model's log density (and gradient) once for ``sampler``.

    nutpie compiles with JAX when it is installed (:func:`nutpie_backend`), else numba; the
    model's ``pm.Data`` stay replaceable (``with_data``) for refits on other run weights.
    ``jitter``: names of the variables whose starting value is jittered (U(−1, 1) on the
    sampler's scale); None jitters all, as nutpie does; ``start``: starting values of some
    variables (in their own, constrained space). PyMC's own sampler compiles C code that
    PyTensor caches itself.
    """
    sampler = check_sampler(sampler)
    began = time.perf_counter()
    nutpie_model = None
    if sampler == "nutpie":
        import nutpie

        backend = nutpie_backend()
        with phase(f"compiling the model ({backend})", progressbar), _quiet_libraries(progressbar):
            options = {}
            if backend == "jax":
                from pymc.model.transform.optimization import freeze_dims_and_data

                # JAX traces static shapes: freeze the dims, keep the data replaceable
                model = freeze_dims_and_data(model, data=[])
                options = {"gradient_backend": "jax", "freeze_model": False}
            if jitter is not None:
                options["jitter_rvs"] = {model[name] for name in jitter}
            if start:
                options["initial_points"] = dict(start)
            nutpie_model = nutpie.compile_pymc_model(model, backend=backend, **options)
    return Compiled(model, sampler, nutpie_model, time.perf_counter() - began)


def run_nuts(
    compiled: Compiled,
    *,
    chains: int,
    draws: int,
    tune: int,
    seed: int,
    target_accept: float,
    progressbar: bool,
    max_depth: int = 10,
    data: Mapping[str, np.ndarray] | None = None,
    sampler_kwargs: Mapping[str, Any] | None = None,
):
    """Sample a compiled model; ``data`` replaces its ``pm.Data`` values for this run.

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` and ``sample_stats``.
    seconds : float
        Sampling time (compilation excluded).
    """
    kwargs = dict(sampler_kwargs or {})
    start = time.perf_counter()
    with phase(f"sampling {chains} chain(s)", progressbar), _quiet_libraries(progressbar):
        if compiled.sampler == "nutpie":
            import nutpie

            model = compiled.nutpie_model
            if data:
                model = model.with_data(**data)
            try:
                idata = nutpie.sample(
                    model,
                    draws=draws,
                    tune=tune,
                    chains=chains,
                    seed=seed,
                    target_accept=target_accept,
                    maxdepth=max_depth,
                    progress_bar=progressbar,
                    save_warmup=False,
                    **kwargs,
                )
            except RuntimeError as exc:
                if "initialization points failed" not in str(exc):
                    raise
                raise RuntimeError(_start_failure(compiled.model)) from None
        else:
            import pymc as pm

            with compiled.model:
                if data:
                    pm.set_data(dict(data))
                idata = pm.sample(
                    draws=draws,
                    tune=tune,
                    chains=chains,
                    random_seed=seed,
                    progressbar=progressbar,
                    nuts_sampler=compiled.sampler,
                    compute_convergence_checks=False,
                    target_accept=target_accept,
                    cores=min(chains, os.cpu_count() or 1),
                    **({"nuts_sampler_kwargs": kwargs} if kwargs else {}),
                )
    return idata, time.perf_counter() - start


def _start_failure(model) -> str:
    """What to say when no chain can start: the terms of the log density that are not finite
    at the model's initial point (nutpie's own message names none)."""
    try:
        terms = model.point_logps(model.initial_point())
        bad = sorted(name for name, value in terms.items() if not np.isfinite(value))
    except Exception:  # the message must not fail in its turn
        bad = []
    where = f" (not finite at the start: {', '.join(bad)})" if bad else ""
    return (
        f"NUTS could not start: the log density is not finite at any starting point{where}. "
        "Check the table for values no run can have (read_sweeps names each bad row); "
        "with a table that passes, this is a bug: please report it with the table"
    )


# --------------------------------------------------------------------------- the gate


def reported_variables(posterior) -> list[str]:
    """Posterior variables that the gate checks: all but raw (z_, e_) and internal ones."""
    return [v for v in posterior.data_vars if not (v.startswith(("z_", "e_")) or v.endswith("__"))]


def convergence_report(idata) -> dict:
    """R-hat, bulk and tail ESS (worst element per variable), divergences and BFMI.

    Returns a JSON-ready dict with ``converged`` and ``problems`` (one sentence per failure,
    naming the parameters).
    """
    az = import_arviz()
    post = idata.posterior
    names = reported_variables(post)
    n_chains = post.sizes["chain"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-chain R-hat and tiny samples warn
        rhat = az.rhat(post, var_names=names) if n_chains > 1 else None
        bulk = az.ess(post, var_names=names, method="bulk")
        tail = az.ess(post, var_names=names, method="tail")

    def worst(values, reduce) -> float:
        values = np.asarray(values, dtype=float)
        return float(reduce(values)) if np.isfinite(values).any() else float("nan")

    per_var = {
        name: {
            "r_hat": worst(rhat[name].values, np.nanmax) if rhat is not None else float("nan"),
            "ess_bulk": worst(bulk[name].values, np.nanmin),
            "ess_tail": worst(tail[name].values, np.nanmin),
        }
        for name in names
    }
    stats = idata.sample_stats
    divergences = int(stats["diverging"].values.sum()) if "diverging" in stats else 0
    at_limit = (
        float(stats["maxdepth_reached"].values.mean()) if "maxdepth_reached" in stats else 0.0
    )
    bfmi = []
    if "energy" in stats:
        energy = stats["energy"].values
        bfmi = (np.square(np.diff(energy, axis=1)).mean(axis=1) / energy.var(axis=1)).tolist()
    # NaN (a constant variable, or R-hat of one chain) fails no comparison: nothing to judge
    bad_rhat = sorted(n for n, d in per_var.items() if d["r_hat"] > RHAT_MAX)
    bad_ess = sorted(n for n, d in per_var.items() if min(d["ess_bulk"], d["ess_tail"]) < ESS_MIN)
    problems = []
    if bad_rhat:
        problems.append(f"R-hat > {RHAT_MAX} for {', '.join(bad_rhat)}")
    if divergences:
        problems.append(f"{divergences} divergent transition(s)")
    if bad_ess:
        problems.append(f"bulk or tail ESS < {ESS_MIN} for {', '.join(bad_ess)}")
    if at_limit > 0.05:
        problems.append(f"{at_limit:.0%} of the draws stopped at the tree-depth limit")
    low_bfmi = [i for i, b in enumerate(bfmi) if b < BFMI_MIN]
    if low_bfmi:
        problems.append(f"BFMI < {BFMI_MIN} in chain(s) {low_bfmi}")
    finite = list(per_var.values())
    return {
        "converged": not problems,
        "problems": problems,
        "divergences": divergences,
        "max_depth_share": at_limit,
        "bfmi": bfmi,
        "max_r_hat": max((d["r_hat"] for d in finite), default=float("nan")),
        "min_ess_bulk": min((d["ess_bulk"] for d in finite), default=float("nan")),
        "min_ess_tail": min((d["ess_tail"] for d in finite), default=float("nan")),
        "variables": per_var,
    }


def convergence_advice(post, *, cli: bool = False) -> list[str]:
    """What to try when a fit fails the gate, most likely to help first (one line each).

    A small table fitted alone cannot pin the exponents down however long NUTS runs: pooling
    with the released data is the fix. Divergences call for smaller steps (a higher
    target_accept); a chain that stopped at the tree-depth limit for a deeper limit; a low
    R-hat or ESS for longer tuning and more draws.
    """
    meta, diag = post.metadata, post.diagnostics
    name = (lambda opt, arg: opt) if cli else (lambda opt, arg: arg)
    sampler = meta.get("sampler", {})
    out = []
    if not meta.get("pooled") and meta.get("n_settings", 99) < 12:
        out.append(
            f"pool with the released data ({name('--with-released', 'with_released=True')}): "
            f"{meta.get('n_settings')} setting(s) alone leave the exponents to the priors"
        )
    if diag.get("divergences"):
        target = max(0.95, min(0.99, float(sampler.get("target_accept", 0.9)) + 0.05))
        out.append(f"a higher target acceptance ({name('--target-accept', 'target_accept=')}"
                   f"{' ' if cli else ''}{target:g})")  # fmt: skip
    if diag.get("max_depth_share", 0) > 0.05:
        out.append(f"a deeper tree limit ({name('--max-depth', 'max_depth=')}"
                   f"{' ' if cli else ''}10)")  # fmt: skip
    if any(p.startswith(("R-hat", "bulk or tail ESS")) for p in diag.get("problems", [])):
        tune = 2 * int(sampler.get("tune", 500))
        draws = 2 * int(sampler.get("draws", 500))
        if cli:
            out.append(f"longer tuning and more draws (--tune {tune} --draws {draws})")
        else:
            out.append(f"longer tuning and more draws (tune={tune}, draws={draws})")
    return out
