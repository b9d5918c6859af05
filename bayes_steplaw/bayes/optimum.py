"""The optimum model: the near-optimal runs' (lr, batch) regressed on (N, D).

For the runs of every setting within ``threshold`` of its best loss (the paper's plateau
filter), the hierarchical Step Law of :mod:`bayes_steplaw.bayes.law` places the setting's
plateau centre ``m[s]``; the runs scatter around it along the plateau, and the best run of the
sweep, the one a user reads off, lies near it:

    plateau runs (all but the best):  ln lr ~ Normal(m_lr[s], σ_run_lr)
    the best run of each setting:     ln lr ~ Normal(m_lr[s] + μ_best_lr, τ_lr[s]),
                                      τ_lr[s]² = σ_best_lr² + Δ_lr[s]² / 12

and the same for ln batch. ``Δ[s]`` is the sweep's grid step at its best run (in ln units):
wherever the optimum is, the best grid run is within half a step of it, a uniform error of
variance Δ²/12; ``σ_best`` is the rest of the scatter (run noise on a flat plateau) and
``μ_best`` how far, on average, the best run sits from the plateau centre (the bowl is steeper
above the optimal lr than below it, so the plateau's centre is not its best point).
``predict(kind="sweep")`` is this distribution for a new setting on a grid of the caller's
steps. Priors: σ_run, σ_best ~ HalfNormal(0.5), μ_best ~ Normal(0, 0.5). PyMC is imported
only to build the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validate import DEFAULT_TOL, check_choice
from ..datasets.sweeps import best_runs, near_optimal
from .design import DEFAULT_GROUPS, build_design, level_dims
from .labs import EXPONENTS_VARY_BY, lab_metadata, lab_of_family, setting_labs
from .law import PRIORS, StepLawPosterior, law_means
from .model import Built, Model

BEST_OFFSET_SD = 0.2  # prior sd of a group's offset of μ_best (ln units)


class OptimumPosterior(StepLawPosterior):
    """Posterior of the optimum model (see :class:`StepLawPosterior` for the predictive)."""

    kind = "optimum"
    version = 2  # 2: the best run of each setting (kind="sweep"); 1: plateau runs only
    readable_versions = (1, 2)

    def card_sections(self) -> list[str]:
        """Model-card sections of the optimum model's own (the law's are shared)."""
        m = self.metadata
        return [
            "## Optimum model",
            "",
            f"Runs within {m['threshold']:.2%} of their setting's minimum loss (the paper's "
            f"plateau filter, {m['n_runs']} runs) scatter around their setting's optimum: "
            "ln lr ~ Normal(m_lr[s], σ_run_lr), ln B ~ Normal(m_bs[s], σ_run_bs), "
            f"σ_run ~ {PRIORS['sigma_run'][0]}({PRIORS['sigma_run'][1]:g})"
            + (
                "; the best run of each setting lies at m[s] + μ_best with scatter "
                "sqrt(σ_best² + Δ²/12), Δ the sweep's grid step (module docstring)."
                if "mu_best_lr" in self.variables
                else "."
            ),
            "",
            *self._candidate_sections(),
        ]

    def _candidate_sections(self) -> list[str]:
        """The table of candidate models tried (``metadata["candidates"]``), losers included."""
        records = self.metadata.get("candidates")
        if not records:
            return []
        import pandas as pd

        from .._format import markdown_table

        frame = pd.DataFrame(records)
        return [
            "## Candidates tried",
            "",
            "Every variant of the optimum model that was scored, with its leave-one-setting-out "
            "numbers (relative loss of the grid run nearest to the choice, ‰; coverage of the "
            "held-out best run by the intervals of the kind shown):",
            "",
            markdown_table(frame.set_index(frame.columns[0])),
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
    best_offsets : {"shared", "group"}
        Whether the best run's mean offset from the plateau centre, μ_best, is one for all
        groups or has zero-sum offsets (sd 0.2) per level of the first group column.
    exponents_vary_by : {"lab", None}
        With runs of two or more labs (a ``lab`` column; a pooled user's runs are the ``user``
        lab), each other lab has levels of its own and deviations of α, β, γ
        (:func:`.labs.lab_terms`), as in the loss model; None: shared.
    """

    kind = "optimum"
    posterior_class = OptimumPosterior

    def __init__(
        self,
        groups: tuple[str, ...] | list[str] = DEFAULT_GROUPS,
        *,
        batch_depends_on_N: bool = False,
        threshold: float = DEFAULT_TOL,
        best_offsets: str = "group",
        exponents_vary_by: str | None = "lab",
    ):
        super().__init__(groups, batch_depends_on_N=batch_depends_on_N)
        self.exponents_vary_by = check_choice(
            exponents_vary_by, "exponents_vary_by", EXPONENTS_VARY_BY
        )
        self.best_offsets = check_choice(best_offsets, "best_offsets", ("shared", "group"))
        if not (isinstance(threshold, (int, float)) and np.isfinite(threshold) and threshold > 0):
            raise ValueError(
                f"threshold must be > 0 (a relative loss, e.g. {DEFAULT_TOL}); got {threshold!r}"
            )
        self.threshold = float(threshold)

    def get_config(self) -> dict:
        """JSON-ready arguments of this model."""
        return {
            **super().get_config(),
            "threshold": self.threshold,
            "best_offsets": self.best_offsets,
            "exponents_vary_by": self.exponents_vary_by,
        }

    def build(self, sweeps: pd.DataFrame, *, weighted: bool = False) -> Built:
        """The PyMC model on the plateau runs and best runs of ``sweeps``."""
        import pymc as pm
        import pytensor.tensor as pt

        runs = near_optimal(sweeps, self.threshold)
        design = build_design(runs, self.groups)
        best = best_runs(sweeps).set_index("setting").loc[design.settings]
        # the plateau run that is its setting's best run enters once, as the best run
        key = ["setting", "lr", "batch_tokens"]
        best_key = best.reset_index()[key].assign(best_row=np.arange(len(best)))
        found = runs[key].merge(best_key, how="left", on=key)["best_row"].to_numpy()
        is_best = ~np.isnan(found)
        plateau = np.flatnonzero(~is_best)
        best_index = np.empty(len(best), dtype=int)  # row of runs holding each setting's best
        best_index[found[is_best].astype(int)] = np.flatnonzero(is_best)
        rs = design.run_setting[plateau]
        coords = {"setting": design.settings, "plateau_run": plateau}
        coords.update(level_dims(design.hierarchy))
        labs, lab_index = setting_labs(runs, design)
        coords["lab"] = labs
        by_lab = len(labs) >= 2 and self.exponents_vary_by is not None
        lab_of = lab_of_family(runs) if by_lab else {}
        levels = design.hierarchy.levels
        by_group = self.best_offsets == "group" and bool(levels) and len(levels[0].labels) > 1
        column = levels[0].column if by_group else None
        dim = f"level_{column}"
        steps = {
            law: best[f"{col}_step"].to_numpy(float) for law, col in (("lr", "lr"), ("bs", "batch"))
        }
        observed = {
            "lr": np.log(best["lr"].to_numpy(float)),
            "bs": np.log(best["batch_tokens"].to_numpy(float)),
        }
        with pm.Model(coords=coords) as model:
            lab = (labs, lab_index, lab_of) if by_lab else None
            m = dict(zip(("lr", "bs"), law_means(design, self.batch_depends_on_N, labs=lab)))
            w = pm.Data("run_weight", np.ones(len(runs))) if weighted else None
            for law, values in (("lr", design.log_lr), ("bs", design.log_bs)):
                s_run = pm.HalfNormal(f"sigma_run_{law}", PRIORS["sigma_run"][1])
                mu = pm.Normal(f"mu_best_{law}", *PRIORS["mu_best"][1:])
                if by_group:
                    off = pm.ZeroSumNormal(f"mu_best_{law}_{column}", BEST_OFFSET_SD, dims=dim)
                    mu = mu + pt.concatenate([off, pt.zeros(1)])[design.setting_levels[:, 0]]
                s_best = pm.HalfNormal(f"sigma_best_{law}", PRIORS["sigma_best"][1])
                scale = pm.math.sqrt(s_best**2 + steps[law] ** 2 / 12.0)
                runs_at, best_at = m[law][rs], m[law] + mu
                if weighted:
                    logp = pm.logp(pm.Normal.dist(runs_at, s_run), values[plateau])
                    logp_best = pm.logp(pm.Normal.dist(best_at, scale), observed[law])
                    pm.Potential(f"runs_{law}", (w[plateau] * logp).sum())
                    pm.Potential(f"best_{law}", (w[best_index] * logp_best).sum())
                else:
                    pm.Normal(
                        f"log_{law}", runs_at, s_run, observed=values[plateau], dims="plateau_run"
                    )
                    pm.Normal(
                        f"best_log_{law}", best_at, scale, observed=observed[law], dims="setting"
                    )
        extra = {
            **lab_metadata(
                design.log_n, design.log_d, labs, lab_index, lab_of, ("lr", "bs"), by_lab
            ),
            "exponents_vary_by": self.exponents_vary_by,
            "threshold": self.threshold,
            "priors": PRIORS,
            "best_offsets_column": column,
            "best_offset_sd": BEST_OFFSET_SD,
            "grid_steps": {
                "lr": float(np.median(steps["lr"])),
                "bs": float(np.median(steps["bs"])),
            },
        }
        return Built(model, design, extra)
