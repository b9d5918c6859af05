"""bayes-steplaw: the Step Law of optimal learning rate and batch size, made Bayesian.

The public API. Fitting imports PyMC lazily; loading and predicting never do.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .bootstrap import BootstrapOLS, DegenerateResampleWarning, reproduction_table
from .diagnostics import ConvergenceError, ConvergenceWarning
from .hierarchy import Hierarchy
from .landscape import (
    ExcessLoss,
    LandscapePosterior,
    PlateauRegion,
    Recommendation,
    compare_curvatures,
)
from .logs import LogProblemsError, find_runs, quick_check, read_loss_curve, smooth_final_loss
from .logs import collect as collect_logs
from .model import fit
from .posterior import (
    PosteriorFileError,
    Prediction,
    StepLawPosterior,
    load,
    load_default,
)
from .registry import DataError
from .simulate import Bowl, TrueLaw, simulate_sweeps
from .sweeps import SweepValidationError, load_sweeps, near_optimal, read_sweeps, relative_loss

__all__ = [
    "BootstrapOLS",
    "Bowl",
    "ConvergenceError",
    "ConvergenceWarning",
    "DataError",
    "DegenerateResampleWarning",
    "ExcessLoss",
    "Hierarchy",
    "LandscapePosterior",
    "LogProblemsError",
    "PlateauRegion",
    "PosteriorFileError",
    "Prediction",
    "Recommendation",
    "StepLawPosterior",
    "SweepValidationError",
    "TrueLaw",
    "__version__",
    "collect_logs",
    "compare_curvatures",
    "find_runs",
    "fit",
    "load",
    "load_default",
    "load_sweeps",
    "near_optimal",
    "quick_check",
    "read_loss_curve",
    "read_sweeps",
    "relative_loss",
    "reproduction_table",
    "simulate_sweeps",
    "smooth_final_loss",
]
