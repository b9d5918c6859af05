"""The Bayesian models of the Step Law: one module per model on one interface.

Layers, each importing only those above it: :mod:`.hierarchy` and :mod:`.design` (the data
design the models share), :mod:`.sampling` (NUTS, compile-once reuse, the convergence gate),
:mod:`.posterior` (the base posterior: netCDF I/O, metadata, gating, summaries, the registry of
model kinds), :mod:`.predictive` (the one result grammar), :mod:`.model` (the model interface
and :func:`fit`), :mod:`.law` (the hierarchical Step Law the models share), :mod:`.surface`
(the loss surface, written once for numpy and PyTensor), then the models: :mod:`.optimum` and
the loss model (:mod:`.loss_model`, its posterior :mod:`.loss` with the reductions of
:mod:`.answers`), and on top :mod:`.compare` and :mod:`.card`.
"""

from .law import StepLawPosterior
from .loss import LossPosterior
from .loss_model import LossModel
from .model import Model, fit
from .optimum import OptimumModel, OptimumPosterior
from .posterior import Posterior, PosteriorFileError, load, load_default
from .predictive import Draws

__all__ = [
    "Draws",
    "LossModel",
    "LossPosterior",
    "Model",
    "OptimumModel",
    "OptimumPosterior",
    "Posterior",
    "PosteriorFileError",
    "StepLawPosterior",
    "fit",
    "load",
    "load_default",
]
