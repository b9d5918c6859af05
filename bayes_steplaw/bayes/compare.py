"""Model comparison by PSIS-LOO: rank candidate fits of the same runs."""

from __future__ import annotations

import warnings

import pandas as pd

from .loss import LossPosterior
from .loss_model import LossModel
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


def compare_models(
    sweeps: pd.DataFrame,
    candidates: dict[str, LossModel | dict],
    *,
    fitted: dict[str, LossPosterior] | None = None,
    **fit_kwargs,
) -> tuple[pd.DataFrame, dict[str, LossPosterior]]:
    """Fit candidate loss models on the same runs and rank them by PSIS-LOO (``arviz.compare``).

    In-sample LOO ranks how well each candidate predicts a left-out run of a seen setting;
    the held-out splits (:func:`bayes_steplaw.evaluate`) judge new settings. Both go in a card.

    Parameters
    ----------
    sweeps : DataFrame
        One sweep table; every candidate sees the same runs.
    candidates : dict
        Name -> a :class:`~bayes_steplaw.bayes.loss_model.LossModel`, or the keyword arguments
        of one (``{"surface": "bowl"}``).
    fitted : dict, optional
        Posteriors already fitted on ``sweeps``, by name, reused instead of refitted.
    **fit_kwargs
        Sampler settings passed to :meth:`LossModel.fit`.

    Returns
    -------
    table : DataFrame
        ``arviz.compare`` output indexed by candidate, plus ``pareto_k_high`` (runs with
        k > 0.7) and ``converged``.
    posteriors : dict
        The fitted posteriors by candidate.
    """
    az = import_arviz()
    posts = dict(fitted or {})
    loos = {}
    for name, model in candidates.items():
        if name not in posts:
            model = model if isinstance(model, LossModel) else LossModel(**model)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unconverged candidates are reported
                posts[name] = model.fit(sweeps, **fit_kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pareto-k warnings are counted in the table
            loos[name] = posts[name].loo(sweeps)
    table = az.compare(loos)
    table["pareto_k_high"] = [int((loos[n].pareto_k.values > 0.7).sum()) for n in table.index]
    table["converged"] = [posts[n].converged for n in table.index]
    table.index.name = "candidate"
    return table, posts
