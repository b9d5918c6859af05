"""Held-out evaluation: how good is a choice of learning rate and batch size on settings the
fit did not see, next to the alternatives?

:func:`evaluate` fits every method on the training settings of every fold of a split
(:mod:`.splits`: ``loso``, ``logo``, ``extrapolate``), predicts the held-out settings and
scores the predictions (:mod:`.metrics`, :mod:`.scoring`); it returns an :class:`Evaluation`
(:mod:`.result`) with one tidy row per (split, fold, method, setting) and the summary tables.
Methods follow one small protocol (:mod:`.methods`), so a user's own method is scored on the
same folds as the built-in ones. Layers, each importing only those before it: splits,
metrics, protocol, methods, scoring, result, runner. :mod:`.loss` scores the loss model's
predictions of every run of a held-out setting against least-squares peers, on the same folds.
"""

from .methods import (
    BUILTIN_METHODS,
    DEFAULT_INTERVAL_KIND,
    BayesMethod,
    LandscapeMethod,
    LawMethod,
    OLSMethod,
    PaperMethod,
    get_method,
    method_names,
)
from .metrics import (
    DEFAULT_MASSES,
    brier_score,
    nearest_relative_loss,
    normal_log_score,
    paired_bootstrap,
    reliability_table,
)
from .protocol import FoldContext, Method, MethodPrediction, Predictor
from .result import Evaluation
from .runner import EvaluationError, evaluate
from .splits import SPLITS, Fold, make_folds, setting_table

__all__ = [
    "BUILTIN_METHODS",
    "DEFAULT_INTERVAL_KIND",
    "DEFAULT_MASSES",
    "SPLITS",
    "BayesMethod",
    "Evaluation",
    "EvaluationError",
    "Fold",
    "FoldContext",
    "LandscapeMethod",
    "LawMethod",
    "Method",
    "MethodPrediction",
    "OLSMethod",
    "PaperMethod",
    "Predictor",
    "brier_score",
    "evaluate",
    "get_method",
    "make_folds",
    "method_names",
    "nearest_relative_loss",
    "normal_log_score",
    "paired_bootstrap",
    "reliability_table",
    "setting_table",
]
