"""The top-level workflows: thin adapters over the methods of one posterior, and fit.

``bayes_steplaw.predict(7e9, 1.4e12)`` answers from the loss posterior that ships with the
package, loaded on first use and kept for the process; ``posterior=`` takes a path (from
``fit``) or a loaded posterior instead. Each function checks its inputs for likely unit slips
(:func:`bayes_steplaw._validate.check_plausible`), resolves the posterior and the group, and
calls the posterior's method of the same name with the same arguments
(``tests/test_api.py`` checks that the signatures agree). Nothing here imports PyMC or ArviZ,
except :func:`fit`.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from numpy.typing import ArrayLike

from ._validate import DEFAULT_TOL, check_plausible
from .bayes import posterior as posterior_module
from .bayes.answers import SWEEP_GRID, Recommendation
from .bayes.design import DEFAULT_GROUPS
from .bayes.law import StepLawPosterior
from .bayes.loss import LossPosterior
from .bayes.posterior import Posterior
from .bayes.predictive import Draws
from .transfer import USER_PREFIX

if TYPE_CHECKING:
    import pandas as pd

PosteriorLike = str | os.PathLike | Posterior | None

_LOCK = threading.Lock()
_SHIPPED: dict[tuple, Posterior] = {}
_FILES: OrderedDict[tuple, Posterior] = OrderedDict()  # (path, mtime, size) -> posterior
_MAX_FILES = 8


def shipped(model: str = "loss") -> Posterior:
    """The shipped posterior of ``model``, loaded once per process (thread-safe)."""
    # looked up at call time and part of the key: a replaced load_default (a test, an
    # application shipping its own models) is honoured rather than shadowed by the cache
    loader = posterior_module.load_default
    with _LOCK:
        key = (model, loader)
        if key not in _SHIPPED:
            _SHIPPED[key] = loader(model)
        return _SHIPPED[key]


def _from_file(path: str | os.PathLike, cls: type[Posterior]) -> Posterior:
    """A posterior file, kept while it is unchanged (same path, modification time and size)."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
        key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None  # cls.load says what is wrong with the path
    with _LOCK:
        cached = _FILES.get(key) if key else None
        if cached is not None:
            _FILES.move_to_end(key)
    if cached is None:
        cached = cls.load(resolved)  # a file of another kind: the message names `fit --model`
        if key:
            with _LOCK:
                _FILES[key] = cached
                while len(_FILES) > _MAX_FILES:
                    _FILES.popitem(last=False)
    if not isinstance(cached, cls):  # kept from a call that needed less
        return cls.load(resolved)
    return cached


_NEEDS: dict[str, type[Posterior]] = {"law": StepLawPosterior, "loss": LossPosterior}


def resolve_posterior(posterior: PosteriorLike, need: str = "loss") -> StepLawPosterior:
    """The posterior a workflow answers from.

    Parameters
    ----------
    posterior : path, Posterior or None
        None: the shipped loss posterior; a path: that file; a loaded posterior: itself.
    need : {"loss", "law"}
        ``"loss"``: a loss posterior (every answer); ``"law"``: any Step-Law posterior (the
        optimum model's too: :func:`predict` only).

    Raises
    ------
    PosteriorFileError
        The file is unreadable, or holds a model that cannot answer (naming the ``fit
        --model`` that makes one that can).
    TypeError
        A loaded posterior of the wrong kind.
    """
    cls = _NEEDS[need]
    if posterior is None:
        posterior = shipped("loss")
    if isinstance(posterior, Posterior):
        if not isinstance(posterior, cls):
            raise TypeError(
                f"this needs a loss posterior; got a {type(posterior).__name__}. Fit one with "
                f"bayes_steplaw.fit(sweeps) or `bayes-steplaw fit SWEEPS`"
            )
        return posterior
    if isinstance(posterior, (str, os.PathLike)):
        return _from_file(posterior, cls)
    raise TypeError(
        f"posterior must be a path, a loaded posterior or None; got {type(posterior).__name__}"
    )


def check_group(post: Posterior, group: str, prefix: str = USER_PREFIX) -> str:
    """``group`` when the posterior knows it; else a KeyError that suggests the pooled name."""
    try:
        post.hierarchy.resolve(group)
    except KeyError as exc:
        if isinstance(group, str) and not group.startswith(prefix):
            try:
                post.hierarchy.resolve(prefix + group)
            except (KeyError, ValueError):
                pass
            else:
                raise KeyError(
                    f"unknown group {group!r}; this posterior was pooled with the released "
                    f"data and names your group {prefix + group!r}"
                ) from None
        raise exc
    return group


def predict(
    N: ArrayLike,
    D: ArrayLike,
    *,
    group: str = "dense",
    kind: str | None = None,
    seq_len: int | None = None,
    posterior: PosteriorLike = None,
    seed: int = 0,
    allow_unconverged: bool = False,
) -> Draws:
    """The optimal peak learning rate and batch size at (N, D), with their uncertainty.

    Parameters
    ----------
    N, D : float, str or array-like
        Non-embedding parameters and training tokens (``7e9`` or ``"7B"``); broadcast
        together (xarray inputs by dimension name).
    group : str
        ``"dense"``, ``"moe"``, ``"moe/1in8"``, ... or ``"new"``; for a posterior pooled with
        the released data, your groups are ``"user:<name>"``.
    kind : {"optimum", "sweep", "law"}, optional
        What the interval is about: ``"optimum"`` (default), the optimum of a new setting (the
        argmin of its expected loss); ``"sweep"``, the best run a grid sweep of a new setting
        will find; ``"law"``, the law's optimum.
    seq_len : int, optional
        Sequence length, to express the batch in sequences (default: the fit's).
    posterior : path or Posterior, optional
        Default: the shipped loss posterior (loaded once). An optimum posterior answers too.
    seed : int
        Seed of the draws for new groups, setting scatter and simulated sweeps.
    allow_unconverged : bool
        Answer from a posterior that failed its convergence gate.

    Returns
    -------
    Draws
        ``lr``, ``batch_tokens``, ``batch_sequences``: ``.median()``, ``.interval(prob)``,
        ``.to_dataframe(prob)``, ``.describe(prob)``, ``.draws``.

    Examples
    --------
    >>> import bayes_steplaw as bsl
    >>> bsl.predict(7e9, 1.4e12).median()  # doctest: +SKIP
    """
    check_plausible(N=N, D=D)
    post = resolve_posterior(posterior, "law")
    return post.predict(
        N, D, group=check_group(post, group), kind=kind, seq_len=seq_len, seed=seed,
        allow_unconverged=allow_unconverged,
    )  # fmt: skip


def predict_loss(
    N: ArrayLike,
    D: ArrayLike,
    lr: ArrayLike,
    batch_tokens: ArrayLike,
    *,
    group: str = "dense",
    kind: str = "run",
    posterior: PosteriorLike = None,
    seed: int = 0,
    allow_unconverged: bool = False,
) -> Draws:
    """The final loss a run at (lr, batch) will report at (N, D), and its odds of diverging.

    Parameters
    ----------
    N, D, lr, batch_tokens : float, str or array-like
        Setting and run (peak learning rate, batch size in tokens); all four broadcast.
    group : str
        Group name, as in :func:`predict`.
    kind : {"run", "mean"}
        ``"run"``: the smoothed final loss the run will report, run noise included, given
        that it does not diverge; ``"mean"``: its expected value.
    posterior, seed, allow_unconverged
        As in :func:`predict`.

    Returns
    -------
    Draws
        Quantity ``loss``, probability ``p_diverge``.

    Examples
    --------
    >>> import bayes_steplaw as bsl
    >>> bsl.predict_loss(1e9, 2e10, 2e-3, 2**20).to_dataframe()  # doctest: +SKIP
    """
    check_plausible(N=N, D=D, lr=lr, batch_tokens=batch_tokens)
    post = resolve_posterior(posterior)
    return post.predict_loss(
        N, D, lr, batch_tokens, group=check_group(post, group), kind=kind, seed=seed,
        allow_unconverged=allow_unconverged,
    )  # fmt: skip


def best_loss(
    N: ArrayLike,
    D: ArrayLike,
    *,
    group: str = "dense",
    kind: str = "best",
    posterior: PosteriorLike = None,
    seed: int = 0,
    allow_unconverged: bool = False,
) -> Draws:
    """The best loss L*(N, D): the bottom of a setting's loss surface.

    ``kind="best"``: of a new setting (its scatter around the law included); ``"best-law"``:
    of the law itself. Other parameters as in :func:`predict`. Quantity ``loss_star``.
    """
    check_plausible(N=N, D=D)
    post = resolve_posterior(posterior)
    return post.best_loss(
        N, D, group=check_group(post, group), kind=kind, seed=seed,
        allow_unconverged=allow_unconverged,
    )  # fmt: skip


def recommend(
    N: ArrayLike,
    D: ArrayLike,
    *,
    lr: ArrayLike | None = None,
    batch_tokens: ArrayLike | None = None,
    group: str = "dense",
    tol: float = DEFAULT_TOL,
    seq_len: int | None = None,
    posterior: PosteriorLike = None,
    seed: int = 0,
    allow_unconverged: bool = False,
) -> Recommendation:
    """The (lr, batch) of least posterior expected loss (the Bayes decision); with
    ``batch_tokens`` (or ``lr``) fixed, the best lr (batch) for it.

    Returns
    -------
    Recommendation
        ``.lr``, ``.batch_tokens``, ``.expected_excess``, ``.cost``,
        ``.plateau_probability``, ``.p_diverge``, ..., ``.to_dataframe()``, ``.to_dict()``.
    """
    check_plausible(N=N, D=D, lr=lr, batch_tokens=batch_tokens)
    post = resolve_posterior(posterior)
    return post.recommend(
        N, D, lr=lr, batch_tokens=batch_tokens, group=check_group(post, group), tol=tol,
        seq_len=seq_len, seed=seed, allow_unconverged=allow_unconverged,
    )  # fmt: skip


def plateau_probability(
    N: ArrayLike,
    D: ArrayLike,
    lr: ArrayLike,
    batch_tokens: ArrayLike,
    *,
    tol: float = DEFAULT_TOL,
    group: str = "dense",
    reference: str = "optimum",
    sweep_grid: tuple = SWEEP_GRID,
    posterior: PosteriorLike = None,
    seed: int = 0,
    allow_unconverged: bool = False,
):
    """Probability that a run at (lr, batch) lands on the plateau: within ``tol`` of L*
    (``reference="optimum"``) or of the best run of a sweep (``reference="sweep"``).

    Returns an :class:`xarray.DataArray` with the inputs' dimensions; its ``attrs["about"]``
    names the event.
    """
    check_plausible(N=N, D=D, lr=lr, batch_tokens=batch_tokens)
    post = resolve_posterior(posterior)
    return post.plateau_probability(
        N, D, lr, batch_tokens, tol=tol, group=check_group(post, group), reference=reference,
        sweep_grid=sweep_grid, seed=seed, allow_unconverged=allow_unconverged,
    )  # fmt: skip


def batch_cost(
    N: float,
    D: float,
    batch_tokens: ArrayLike,
    *,
    group: str = "dense",
    posterior: PosteriorLike = None,
    seed: int = 0,
    allow_unconverged: bool = False,
) -> pd.DataFrame:
    """What fixed batches cost at one setting: the best lr for each and the increase of the
    expected loss over the best (lr, batch)."""
    check_plausible(N=N, D=D, batch_tokens=batch_tokens)
    post = resolve_posterior(posterior)
    return post.batch_cost(
        N, D, batch_tokens, group=check_group(post, group), seed=seed,
        allow_unconverged=allow_unconverged,
    )  # fmt: skip


def fit(
    sweeps: pd.DataFrame | str | os.PathLike,
    model: str = "loss",
    groups: tuple[str, ...] | list[str] | None = None,
    *,
    with_released: bool = False,
    released: pd.DataFrame | None = None,
    prefix: str = USER_PREFIX,
    columns: dict[str, str] | None = None,
    check: bool = True,
    **kwargs: Any,
) -> Posterior:
    """Fit a model of the hierarchical Step Law, alone or pooled with the released data.

    Parameters
    ----------
    sweeps : DataFrame or path
        Your sweep table. A CSV path, or a table in your own names (``columns``) or without
        the package's derived columns (``batch_tokens`` from ``batch_sequences`` and
        ``seq_len``, ``setting``), is read with :func:`bayes_steplaw.read_sweeps`.
    model : {"loss", "optimum"}
        As in :func:`bayes_steplaw.bayes.model.fit`: ``"loss"`` (default), the model every
        answer uses; ``"optimum"`` for tables of each setting's best runs only.
    groups : sequence of str, optional
        Your group columns, outermost first; default ``("family", "variant")``.
    with_released : bool
        Pool with the released dense + MoE sweeps (:func:`bayes_steplaw.transfer.
        pool_with_released`): the exponents are learned from everything, your groups'
        offsets from your runs. Your groups are then named ``prefix + value``
        (``"user:llama"``); the released ones keep theirs.
    released : DataFrame, optional
        With ``with_released``: the released table to pool with (default: all of it).
    prefix : str
        Namespace of your groups when pooled.
    columns : dict, optional
        Canonical name -> your column name, for a CSV path.
    check : bool
        Refuse, before sampling, a table that cannot identify the exponents
        (:func:`bayes_steplaw.transfer.identifiability_problems`).
    **kwargs
        Sampler settings and model options of :func:`bayes_steplaw.bayes.model.fit`
        (``chains``, ``draws``, ``tune``, ``seed``, ``progressbar``, ``threshold``, ...).

    Returns
    -------
    Posterior
        Its metadata records, under ``"pooled"``, the released rows used and your groups'
        pooled names.

    Raises
    ------
    UnidentifiableSweepError
        With ``check``: what the table cannot identify, and that ``with_released=True``
        supplies it.
    """
    import warnings

    import pandas as pd

    from .bayes.design import SWEEP_COLUMNS
    from .bayes.model import fit as fit_model
    from .bayes.sampling import phase
    from .datasets.sweeps import SweepWarning, read_sweeps
    from .transfer import (
        UnidentifiableSweepError,
        between_group_warnings,
        identifiability_problems,
        pool_with_released,
        user_group_names,
    )

    if not isinstance(sweeps, pd.DataFrame) or columns or not set(SWEEP_COLUMNS) <= set(sweeps):
        # a table outside the package schema (a CSV, your names, batch_sequences with
        # seq_len) is read as read_sweeps reads it: pooled as given, its missing batch_tokens
        # became NaN and every starting point of the sampler failed
        sweeps = read_sweeps(sweeps, columns=columns)  # warns on implausible batch units
    groups = tuple(DEFAULT_GROUPS if groups is None else groups)
    pooled_info = None
    if with_released:
        names = user_group_names(sweeps, groups, prefix=prefix)
        with phase("pooling with the released data", bool(kwargs.get("progressbar", True))):
            table = pool_with_released(sweeps, groups, released=released, prefix=prefix)
        groups = ("family", "variant")
        source = table["source"].to_numpy()
        pooled_info = {
            "prefix": prefix,
            "user_groups": names,
            "user_runs": int((source == "user").sum()),
            "released_runs": int((source == "released").sum()),
        }
    else:
        table = sweeps
    if check:
        problems = identifiability_problems(
            table, batch_depends_on_N=bool(kwargs.get("batch_depends_on_N", False))
        )
        if problems:
            raise UnidentifiableSweepError(
                problems, "; pool with the released data (with_released=True) to borrow them"
            )
        for message in between_group_warnings(table, groups):
            warnings.warn(message, SweepWarning, stacklevel=2)
    post = fit_model(table, model, groups, **kwargs)
    if pooled_info is not None:
        post.metadata["pooled"] = pooled_info
    return post
