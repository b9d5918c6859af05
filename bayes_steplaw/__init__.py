"""bayes-steplaw: the Step Law of optimal learning rate and batch size, made Bayesian."""

from __future__ import annotations

__version__ = "0.1.0"

from .registry import DataError
from .sweeps import SweepValidationError, load_sweeps, near_optimal, read_sweeps, relative_loss

__all__ = [
    "DataError",
    "SweepValidationError",
    "__version__",
    "load_sweeps",
    "near_optimal",
    "read_sweeps",
    "relative_loss",
]
