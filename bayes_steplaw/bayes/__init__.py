"""The Bayesian models of the Step Law: one module per model on one interface.

Layers, each importing only those above it: :mod:`.hierarchy` and :mod:`.design` (the data
design both models share), :mod:`.sampling` (NUTS, compile-once reuse, the convergence gate),
:mod:`.posterior` (the base posterior: netCDF I/O, metadata, gating, summaries, the registry of
model kinds), :mod:`.model` (the model interface and :func:`fit`), :mod:`.law` (the hierarchical
Step Law both models share), then the models :mod:`.optimum` and :mod:`.landscape` (whose
geometry is :mod:`.bowl`), and on top :mod:`.compare` and :mod:`.card`.
"""

from .landscape import LandscapeModel, LandscapePosterior
from .law import Prediction, StepLawPosterior
from .model import Model, fit
from .optimum import OptimumModel, OptimumPosterior
from .posterior import Posterior, PosteriorFileError, load, load_default

__all__ = [
    "LandscapeModel",
    "LandscapePosterior",
    "Model",
    "OptimumModel",
    "OptimumPosterior",
    "Posterior",
    "PosteriorFileError",
    "Prediction",
    "StepLawPosterior",
    "fit",
    "load",
    "load_default",
]
