"""Model comparison by PSIS-LOO: rank candidate fits of the same runs."""

from __future__ import annotations

import warnings

import pandas as pd

from .landscape import CURVATURES, LandscapePosterior
from .model import fit
from .sampling import import_arviz

_LOO_COLUMNS = (
    "rank", "elpd_loo", "p_loo", "elpd_diff", "se", "dse", "weight", "pareto_k_high", "converged",
)  # fmt: skip


def loo_records(table: pd.DataFrame) -> list[dict]:
    """A comparison table as JSON-ready records (for a posterior's metadata)."""
    out = table.reset_index().rename(columns={"index": table.index.name or "candidate"})
    keep = [out.columns[0], *[c for c in _LOO_COLUMNS if c in out]]
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
        for rec in out[keep].to_dict("records")
    ]


def compare_curvatures(
    sweeps: pd.DataFrame,
    curvatures: tuple[str, ...] | list[str] = CURVATURES,
    *,
    groups: tuple[str, ...] | list[str] = ("family", "variant"),
    fitted: dict[str, LandscapePosterior] | None = None,
    **fit_kwargs,
) -> tuple[pd.DataFrame, dict[str, LandscapePosterior]]:
    """Fit the landscape's curvature variants and rank them by PSIS-LOO (``arviz.compare``).

    Parameters
    ----------
    sweeps : DataFrame
        One sweep table; every variant sees the same runs (same ``window``).
    curvatures : sequence of str
        Variants to compare (:data:`~bayes_steplaw.bayes.landscape.CURVATURES`).
    fitted : dict, optional
        Posteriors already fitted on ``sweeps``, by variant, reused instead of refitted.
    **fit_kwargs
        Passed to :func:`bayes_steplaw.fit` (window, sampler settings, ...).

    Returns
    -------
    table : DataFrame
        ``arviz.compare`` output indexed by variant, plus ``pareto_k_high`` (runs with k > 0.7)
        and ``converged``.
    posteriors : dict
        The fitted posteriors by variant.
    """
    az = import_arviz()
    posts = dict(fitted or {})
    loos = {}
    for name in curvatures:
        if name not in posts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unconverged variants are reported in the table
                posts[name] = fit(
                    sweeps, model="landscape", groups=groups, curvature=name, **fit_kwargs
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pareto-k warnings are counted in the table
            loos[name] = posts[name].loo(sweeps)
    table = az.compare(loos)
    table["pareto_k_high"] = [int((loos[n].pareto_k.values > 0.7).sum()) for n in table.index]
    table["converged"] = [posts[n].converged for n in table.index]
    table.index.name = "curvature"
    return table, posts
