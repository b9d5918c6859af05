"""Convergence diagnostics of a NUTS fit, reduced to JSON for the posterior's metadata."""

from __future__ import annotations

import warnings

import numpy as np

RHAT_MAX = 1.01
ESS_MIN = 400


class ConvergenceWarning(UserWarning):
    """A fit did not pass the convergence gate."""


class ConvergenceError(RuntimeError):
    """Predicting from a posterior that did not pass the convergence gate."""


def _import_arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # ArviZ announces its refactor on import
        import arviz as az
    return az


def reported_variables(posterior) -> list[str]:
    """Posterior variables that the gate checks: all but raw (z_, e_) and internal ones."""
    return [v for v in posterior.data_vars if not (v.startswith(("z_", "e_")) or v.endswith("__"))]


def convergence_report(idata) -> dict:
    """R-hat, bulk and tail ESS (worst element per variable), divergences and BFMI.

    Returns a JSON-ready dict with ``converged`` and ``problems`` (one sentence per failure,
    naming the parameters).
    """
    az = _import_arviz()
    post = idata.posterior
    names = reported_variables(post)
    n_chains = post.sizes["chain"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-chain R-hat and tiny samples warn
        rhat = az.rhat(post, var_names=names) if n_chains > 1 else None
        bulk = az.ess(post, var_names=names, method="bulk")
        tail = az.ess(post, var_names=names, method="tail")
    per_var = {}
    for name in names:
        r = float(np.nanmax(rhat[name].values)) if rhat is not None else float("nan")
        per_var[name] = {
            "r_hat": r,
            "ess_bulk": float(np.nanmin(bulk[name].values)),
            "ess_tail": float(np.nanmin(tail[name].values)),
        }
    stats = idata.sample_stats
    divergences = int(stats["diverging"].values.sum()) if "diverging" in stats else 0
    bfmi = []
    if "energy" in stats:
        energy = stats["energy"].values
        bfmi = (np.square(np.diff(energy, axis=1)).mean(axis=1) / energy.var(axis=1)).tolist()
    bad_rhat = sorted(n for n, d in per_var.items() if d["r_hat"] > RHAT_MAX)
    bad_ess = sorted(n for n, d in per_var.items() if min(d["ess_bulk"], d["ess_tail"]) < ESS_MIN)
    problems = []
    if bad_rhat:
        problems.append(f"R-hat > {RHAT_MAX} for {', '.join(bad_rhat)}")
    if divergences:
        problems.append(f"{divergences} divergent transition(s)")
    if bad_ess:
        problems.append(f"bulk or tail ESS < {ESS_MIN} for {', '.join(bad_ess)}")
    low_bfmi = [i for i, b in enumerate(bfmi) if b < 0.3]
    if low_bfmi:
        problems.append(f"BFMI < 0.3 in chain(s) {low_bfmi}")
    return {
        "converged": not problems,
        "problems": problems,
        "divergences": divergences,
        "bfmi": bfmi,
        "max_r_hat": max((d["r_hat"] for d in per_var.values()), default=float("nan")),
        "min_ess_bulk": min((d["ess_bulk"] for d in per_var.values()), default=float("nan")),
        "min_ess_tail": min((d["ess_tail"] for d in per_var.values()), default=float("nan")),
        "variables": per_var,
    }
