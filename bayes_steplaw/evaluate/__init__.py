"""Held-out evaluation: how good are a method's answers on settings the fit did not see, next
to the alternatives?

One harness for every question the package answers (:data:`TASKS`): the choice of learning
rate and batch size (``choice``), the intervals around the best run (``interval``), the loss of
every run (``loss``), whether it diverges (``divergence``) and the plateau probabilities
(``plateau``). :func:`evaluate` fits every method on the training settings of every fold of a
split (:mod:`.splits`: ``loso``, ``logo``, ``extrapolate``, ``transfer``), asks it for each
task it can do on the held-out settings and scores the answers (:mod:`.metrics`,
:mod:`.scoring`); it returns an :class:`Evaluation` (:mod:`.result`) with one tidy row per
(split, fold, method, setting), one per held-out run, and the summary tables. Methods follow
one small protocol (:mod:`.protocol`, :mod:`.methods`; the least-squares peers of the loss
model in :mod:`.peers`), so a user's own method is scored on the same folds as the built-in
ones. :mod:`.rows` reads an earlier table back, bounded and checked. Layers, each importing
only those before it: splits, metrics, protocol, methods and peers, scoring, rows, result,
runner.
"""

from .methods import (
    BUILTIN_METHODS,
    DEFAULT_INTERVAL_KIND,
    BayesMethod,
    LawMethod,
    OLSMethod,
    OptimumMethod,
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
from .peers import ChinchillaBowl, PeerMethod, Quadratic
from .protocol import TASKS, FoldContext, Method, MethodPrediction, Predictor, RunForecast
from .result import PAIRED_METRICS, Evaluation
from .rows import MAX_BYTES, MAX_ROWS, RowsError, read_rows
from .runner import EvaluationError, evaluate
from .splits import DEFAULT_K, SPLITS, Fold, make_folds, setting_table

__all__ = [
    "BUILTIN_METHODS",
    "DEFAULT_INTERVAL_KIND",
    "DEFAULT_K",
    "DEFAULT_MASSES",
    "MAX_BYTES",
    "MAX_ROWS",
    "PAIRED_METRICS",
    "SPLITS",
    "TASKS",
    "BayesMethod",
    "ChinchillaBowl",
    "Evaluation",
    "EvaluationError",
    "Fold",
    "FoldContext",
    "LawMethod",
    "Method",
    "MethodPrediction",
    "OLSMethod",
    "OptimumMethod",
    "PaperMethod",
    "PeerMethod",
    "Predictor",
    "Quadratic",
    "RowsError",
    "RunForecast",
    "brier_score",
    "evaluate",
    "get_method",
    "make_folds",
    "method_names",
    "nearest_relative_loss",
    "normal_log_score",
    "paired_bootstrap",
    "read_rows",
    "reliability_table",
    "setting_table",
]
