"""The optimum model: the near-optimal runs' (lr, batch) regressed on (N, D).

For the runs of every setting within ``threshold`` of its best loss (the paper's plateau
filter), the hierarchical Step Law of :mod:`bayes_steplaw.bayes.law` places the setting's
optimum and the runs scatter around it along the plateau:

    ln lr = m_lr[s] + ε,   ln B = m_bs[s] + ε',   ε ~ Normal(0, σ_run_lr), ε' ~ Normal(0, σ_run_bs)

with σ_run ~ HalfNormal(0.5). PyMC is imported only to build the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validate import DEFAULT_TOL
from ..datasets.sweeps import near_optimal
from .design import DEFAULT_GROUPS, build_design, level_dims
from .law import PRIORS, StepLawPosterior, law_means
from .model import Built, Model


class OptimumPosterior(StepLawPosterior):
    """Posterior of the optimum model (see :class:`StepLawPosterior` for the predictive)."""

    kind = "optimum"
    version = 1

    def card_sections(self) -> list[str]:
        """Model-card sections of the optimum model's own (the law's are shared)."""
        m = self.metadata
        return [
            "## Optimum model",
            "",
            f"Runs within {m['threshold']:.2%} of their setting's minimum loss (the paper's "
            f"plateau filter, {m['n_runs']} runs) scatter around their setting's optimum: "
            "ln lr ~ Normal(m_lr[s], σ_run_lr), ln B ~ Normal(m_bs[s], σ_run_bs), "
            f"σ_run ~ {PRIORS['sigma_run'][0]}({PRIORS['sigma_run'][1]:g}).",
        ]


class OptimumModel(Model):
    """The optimum model of the hierarchical Step Law.

    Parameters
    ----------
    groups : sequence of str
        Group columns, outermost first; nested or crossed is read off the data.
    batch_depends_on_N : bool
        Add δ·(ln N − ln N0) to the batch law.
    threshold : float
        Plateau filter: runs within this relative loss of their setting's best are used.
    """

    kind = "optimum"
    posterior_class = OptimumPosterior

    def __init__(
        self,
        groups: tuple[str, ...] | list[str] = DEFAULT_GROUPS,
        *,
        batch_depends_on_N: bool = False,
        threshold: float = DEFAULT_TOL,
    ):
        super().__init__(groups, batch_depends_on_N=batch_depends_on_N)
        if not (isinstance(threshold, (int, float)) and np.isfinite(threshold) and threshold > 0):
            raise ValueError(
                f"threshold must be > 0 (a relative loss, e.g. {DEFAULT_TOL}); got {threshold!r}"
            )
        self.threshold = float(threshold)

    def get_config(self) -> dict:
        """JSON-ready arguments of this model."""
        return {**super().get_config(), "threshold": self.threshold}

    def build(self, sweeps: pd.DataFrame, *, weighted: bool = False) -> Built:
        """The PyMC model on the plateau runs of ``sweeps``."""
        import pymc as pm

        runs = near_optimal(sweeps, self.threshold)
        design = build_design(runs, self.groups)
        coords = {"setting": design.settings, "run": np.arange(len(design.log_lr))}
        coords.update(level_dims(design.hierarchy))
        rs = design.run_setting
        with pm.Model(coords=coords) as model:
            m_lr, m_bs = law_means(design, self.batch_depends_on_N)
            s_lr = pm.HalfNormal("sigma_run_lr", PRIORS["sigma_run"][1])
            s_bs = pm.HalfNormal("sigma_run_bs", PRIORS["sigma_run"][1])
            if weighted:
                w = pm.Data("run_weight", np.ones(len(runs)), dims="run")
                logp = pm.logp(pm.Normal.dist(m_lr[rs], s_lr), design.log_lr) + pm.logp(
                    pm.Normal.dist(m_bs[rs], s_bs), design.log_bs
                )
                pm.Potential("runs_weighted", (w * logp).sum())
            else:
                pm.Normal("log_lr", m_lr[rs], s_lr, observed=design.log_lr, dims="run")
                pm.Normal("log_bs", m_bs[rs], s_bs, observed=design.log_bs, dims="run")
        return Built(model, design, {"threshold": self.threshold, "priors": PRIORS})
