"""bayes-steplaw: the Step Law of optimal learning rate and batch size, made Bayesian.

The public API. Fitting imports PyMC lazily; loading and predicting never do.
"""

from __future__ import annotations

__version__ = "0.3.0"

from ._validate import DEFAULT_PROB, DEFAULT_SEQ_LEN, DEFAULT_TOL, UnitSlipWarning
from .api import (
    batch_cost,
    best_loss,
    fit,
    plateau_probability,
    predict,
    predict_loss,
    recommend,
)
from .bayes.answers import Recommendation
from .bayes.compare import compare_models
from .bayes.hierarchy import Hierarchy
from .bayes.law import StepLawPosterior
from .bayes.loss import LossPosterior
from .bayes.loss_model import LossModel
from .bayes.model import Model
from .bayes.optimum import OptimumModel, OptimumPosterior
from .bayes.posterior import Posterior, PosteriorFileError, load, load_default
from .bayes.predictive import Draws
from .bayes.sampling import ConvergenceError, ConvergenceWarning
from .bootstrap import BootstrapOLS, DegenerateResampleWarning, reproduction_table
from .calibrate import CalibrationPlan, CalibrationWarning, plan_calibration
from .datasets.registry import DataError
from .datasets.simulate import TrueLaw, TrueSurface, simulate_sweeps
from .datasets.sweeps import (
    SweepValidationError,
    SweepWarning,
    load_external,
    load_sweeps,
    near_optimal,
    read_sweeps,
    relative_loss,
)
from .evaluate import Evaluation, MethodPrediction, evaluate
from .logs import LogProblemsError, find_runs, quick_check, read_loss_curve, smooth_final_loss
from .logs import collect as collect_logs
from .plan import SweepPlan, plan_sweep
from .transfer import USER_PREFIX, UnidentifiableSweepError, pool_with_released

__all__ = [
    "DEFAULT_PROB",
    "DEFAULT_SEQ_LEN",
    "DEFAULT_TOL",
    "USER_PREFIX",
    "BootstrapOLS",
    "CalibrationPlan",
    "CalibrationWarning",
    "ConvergenceError",
    "ConvergenceWarning",
    "DataError",
    "DegenerateResampleWarning",
    "Draws",
    "Evaluation",
    "Hierarchy",
    "LogProblemsError",
    "LossModel",
    "LossPosterior",
    "MethodPrediction",
    "Model",
    "OptimumModel",
    "OptimumPosterior",
    "Posterior",
    "PosteriorFileError",
    "Recommendation",
    "StepLawPosterior",
    "SweepPlan",
    "SweepValidationError",
    "SweepWarning",
    "TrueLaw",
    "TrueSurface",
    "UnidentifiableSweepError",
    "UnitSlipWarning",
    "__version__",
    "batch_cost",
    "best_loss",
    "collect_logs",
    "compare_models",
    "evaluate",
    "find_runs",
    "fit",
    "load",
    "load_default",
    "load_external",
    "load_sweeps",
    "near_optimal",
    "plan_calibration",
    "plan_sweep",
    "plateau_probability",
    "pool_with_released",
    "predict",
    "predict_loss",
    "quick_check",
    "read_loss_curve",
    "read_sweeps",
    "recommend",
    "relative_loss",
    "reproduction_table",
    "simulate_sweeps",
    "smooth_final_loss",
]
