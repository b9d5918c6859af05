"""Training logs -> smoothed final losses -> sweep tables.

The Step Law paper's metric is the *smoothed* final training loss of each run. This package
finds the runs under a folder, reads the end of each run's loss curve, smooths it and reports
the final smoothed loss (:func:`quick_check`), or turns the runs into a sweep table in the
package schema that :func:`bayes_steplaw.read_sweeps` accepts (:func:`collect`).

One module per idea, each depending only on those above it:

===============================  ===============================================================
``_defaults``, ``_guards``       defaults and limits; bounded messages, printable names, regular
                                 files only, length-capped lines
``curve``                        the :class:`LossCurve` record
``text``, ``exports``            Megatron text logs (read backwards); CSV and JSON Lines exports
``reading``                      :func:`read_loss_curve`, whatever the format
``smoothing``                    :func:`smooth_losses`, :func:`smooth_final_loss`
``discover``                     :func:`find_runs`
``hparams``, ``architecture``    hyperparameter names, run names, hparams files; N and D
``analyse``                      one run's row, many runs in parallel, :func:`quick_check`
``collection``                   :func:`collect`: the sweep table
===============================  ===============================================================

Layout of the runs
------------------
Every folder below ``base_dir`` is entered only when its name matches the user's regular
expression (:func:`re.search`, anywhere in the name). A folder that holds files named like
``train_log_<k>.txt`` is a run; its name is the experiment name and the file with the largest
``k`` is read. (The upstream tool only looks at leaf folders, so a run folder that also holds,
say, a ``checkpoints/`` folder is silently missed there; here it is still a run.)

Loss lines
----------
Megatron-style text logs, one line per logged iteration (wrapped here)::

    2024-06-18 10:22:33.123 | INFO     | megatron.core.trainerv2:training_log:412 - iter
        100/   66342 | ... | lm loss: 3.412345E+00 | ...

(``lm loss only:`` is accepted too; other lines are ignored). Logs are read from the end, in
blocks, and reading stops after ``max_cnt`` loss lines. Loss curves exported by experiment
trackers as CSV or JSON Lines (a step and a loss column) are read as well.

Smoothing
---------
A Gaussian filter over the logged points, ``sigma = min(window, 0.01 * n_points) /
log_interval`` points, scipy's ``mode="reflect"`` and ``truncate=4.0``, as in the upstream
tool; see :func:`smooth_losses` and the module ``smoothing``.

Hostile trees
-------------
Only regular files are read (a FIFO, a device or a link to one is a failed run, never opened
for long); lines longer than 1 MiB are skipped and counted, so memory stays bounded and time
linear; names that are not printable UTF-8 are escaped; hyperparameter files are parsed as
data only (JSON, or safe YAML without aliases, at most 1 MiB); every value quoted in a message
is cut to a short preview; a folder that cannot be listed is a failed run, not a silence.
"""

from __future__ import annotations

from ._defaults import (
    BLOCK_SIZE,
    DEFAULT_LOG_PATTERN,
    DEFAULT_MAX_CNT,
    DEFAULT_WINDOW,
    HPARAM_FILES,
)
from .analyse import Status, quick_check
from .architecture import non_embedding_params, training_tokens
from .collection import LogProblemsError, collect
from .curve import LossCurve
from .discover import Run, find_runs
from .hparams import (
    HPARAM_KEYS,
    canonical_key,
    check_name_regex,
    normalize_hparams,
    parse_run_name,
    read_hparams_file,
)
from .reading import read_loss_curve
from .smoothing import SmoothedLoss, smooth_final_loss, smooth_losses
from .text import parse_loss_lines

__all__ = [
    "DEFAULT_LOG_PATTERN",
    "DEFAULT_MAX_CNT",
    "DEFAULT_WINDOW",
    "HPARAM_FILES",
    "HPARAM_KEYS",
    "LogProblemsError",
    "LossCurve",
    "Run",
    "SmoothedLoss",
    "check_name_regex",
    "collect",
    "find_runs",
    "non_embedding_params",
    "parse_loss_lines",
    "parse_run_name",
    "quick_check",
    "read_hparams_file",
    "read_loss_curve",
    "smooth_final_loss",
    "smooth_losses",
    "training_tokens",
]

# public before the split too, though not in __all__
_ALSO_PUBLIC = (BLOCK_SIZE, Status, canonical_key, normalize_hparams)

# the public classes keep the module they had before the split: the name in reprs, in pickles
# sent to worker processes and in the docs (one canonical place per object)
for _cls in (LogProblemsError, LossCurve, Run, SmoothedLoss):
    _cls.__module__ = __name__
del _cls
