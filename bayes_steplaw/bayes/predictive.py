"""One grammar for every answer: labelled posterior(-predictive) draws and their summaries.

An answer of the package (the optimum, the best run a sweep finds, the loss of a run, the best
loss, ...) is a :class:`Draws`: named quantities, each with one draw per posterior sample at
every point of the inputs broadcast together. The draws are made block by block from per-sample
coefficients, so an answer costs O(points + samples) until it is summarised, and a summary of
many points needs a few blocks of memory at a time (the blocks are worked on one thread per
CPU, :data:`THREADS`, with the numbers of one thread). Every answer is summarised the same way:

* :meth:`Draws.median`, :meth:`Draws.mean`, :meth:`Draws.quantile` and
  :meth:`Draws.interval` (``method="eti"``, equal-tailed, or ``"hdi"``, the narrowest on the
  quantity's own scale) return :class:`xarray.Dataset` objects with the inputs' dimensions;
* :meth:`Draws.to_dataframe` returns one row per point: the inputs, then for each quantity
  ``<name>_median``, ``<name>_lower``, ``<name>_upper`` (the same rule everywhere), then the
  probabilities (``p_diverge``) and how far each point lies outside the fitted data;
* :attr:`Draws.draws` is every draw as an :class:`xarray.Dataset` with a ``sample`` dimension;
* :meth:`Draws.describe` says in words what each interval is about (:data:`ABOUT`).

Inputs given as :class:`xarray.DataArray` keep their dimensions and coordinates (``N`` along
``"N"`` and ``D`` along ``"D"`` give answers over an (N, D) grid); numpy inputs broadcast with
numpy's rules and get dimensions ``point`` (one axis) or ``dim_0``, ``dim_1``, ... .
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._validate import DEFAULT_PROB, MAX_BROADCAST, check_choice, check_prob, positive_array

CHUNK = 256
"""Points per block when draws are made and reduced."""
THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
"""Threads that make and reduce the blocks of an answer of two or more blocks (default: the
CPUs this process may use; 1: one block after another in the calling thread)."""
METHODS = ("eti", "hdi")

ABOUT = {
    "optimum": "the optimum of a new setting: the (lr, batch) of least expected loss, its "
    "uncertainty from the law, the group and the scatter between settings",
    "sweep": "the best run a grid sweep of a new setting will find (lr steps of √2, batch "
    "steps of 2 around the optimum; run noise and divergence included)",
    "law": "the law itself (its optimum without the scatter between settings)",
    "run": "the smoothed final loss a new run will report, given that it does not diverge "
    "(run noise, a new setting's scatter and the fit's uncertainty included)",
    "mean": "the expected final loss of a run (a new setting's scatter and the fit's "
    "uncertainty; no run noise)",
    "best": "the best loss L*(N, D) of a new setting: the bottom of its loss surface (a new "
    "setting's scatter and the law's uncertainty)",
    "best-law": "the best-loss law L*(N, D) itself (its uncertainty only)",
}
"""What an interval of each kind of answer is about, in words (one vocabulary everywhere)."""

SHORT = {
    "optimum": "a new setting's optimum",
    "sweep": "a sweep's best run",
    "law": "the law",
    "run": "the loss a run reports",
    "mean": "a run's expected loss",
    "best": "a setting's best loss L*",
    "best-law": "the best-loss law",
}
"""Short names of the same (legends, table headers)."""


def check_method(method: Any) -> str:
    """An interval method: ``"eti"`` or ``"hdi"``."""
    return check_choice(method, "method", METHODS)


def sorted_quantile(ordered: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each row of sorted draws (numpy's default 'linear' method)."""
    h = (ordered.shape[-1] - 1) * q
    lo = int(np.floor(h))
    hi = min(lo + 1, ordered.shape[-1] - 1)
    return ordered[:, lo] + (h - lo) * (ordered[:, hi] - ordered[:, lo])


def hdi_bounds(ordered: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Narrowest interval holding ``prob`` of each row's sorted draws."""
    n = ordered.shape[-1]
    width = int(np.floor(prob * n))
    if width < 1 or width >= n:
        raise ValueError(f"prob={prob} leaves no interval with {n} draws")
    spans = ordered[:, width:] - ordered[:, : n - width]
    start = np.argmin(np.where(np.isnan(spans), np.inf, spans), axis=1)
    rows = np.arange(ordered.shape[0])
    return ordered[rows, start], ordered[rows, start + width]


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Points:
    """Inputs broadcast together, flattened, with the labels to restore them."""

    values: dict[str, np.ndarray]  # flat, one entry per point
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    coords: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of points."""
        return math.prod(self.shape)

    def unflat(self, flat: np.ndarray):
        """A flat array (points,) as an xarray.DataArray with the inputs' dims and coords."""
        import xarray as xr

        return xr.DataArray(flat.reshape(self.shape), dims=self.dims, coords=self.coords)


def _check_size(named: dict, shape: tuple[int, ...]) -> None:
    """Refuse a broadcast beyond :data:`MAX_BROADCAST` points before anything is allocated."""
    size = math.prod(shape)
    if size > MAX_BROADCAST:
        raise ValueError(
            f"{', '.join(named)} broadcast together to {size:,} points; at most "
            f"{MAX_BROADCAST:,} are answered in one call: split the call"
        )


def points(named: Mapping[str, Any]) -> Points:
    """Check and broadcast named inputs (positive, finite; strings such as ``"7B"`` allowed).

    :class:`xarray.DataArray` inputs broadcast by dimension name and keep their coordinates;
    the others by numpy's rules. Each input becomes a coordinate of the answer.
    """
    labelled = {k: v for k, v in named.items() if type(v).__module__.startswith("xarray")}
    if labelled:
        import xarray as xr

        arrays = {
            k: (v if k in labelled else xr.DataArray(positive_array(v, k)))
            for k, v in named.items()
        }
        for k, v in labelled.items():
            arrays[k] = v.copy(data=positive_array(v.values, k))
        broadcast = xr.broadcast(*arrays.values())
        first = broadcast[0]
        shape, dims = first.shape, first.dims
        _check_size(named, shape)  # broadcast views are free; their copies are not
        coords = {c: first.coords[c] for c in first.coords}
        values = {k: b.values.ravel() for k, b in zip(arrays, broadcast)}
    else:
        raw = {k: positive_array(v, k) for k, v in named.items()}
        try:
            shape = np.broadcast_shapes(*(a.shape for a in raw.values()))
        except ValueError:
            shapes = ", ".join(f"{k} {a.shape}" for k, a in raw.items())
            raise ValueError(
                f"{', '.join(named)} cannot be broadcast together; shapes {shapes}"
            ) from None
        dims = ("point",) if len(shape) == 1 else tuple(f"dim_{i}" for i in range(len(shape)))
        _check_size(named, shape)
        values = {k: np.broadcast_to(a, shape).ravel() for k, a in raw.items()}
        coords = {}
    for k, v in values.items():
        if k not in coords:
            coords[k] = (dims, v.reshape(shape))
    return Points(values, tuple(shape), tuple(dims), coords)


# --------------------------------------------------------------------------- draws


Generator = Callable[[slice], dict[str, np.ndarray]]


def map_blocks(size: int, func: Callable[[slice], Any]) -> Iterator[Any]:
    """``func`` of each block of :data:`CHUNK` points of ``size``, in the blocks' order.

    The blocks must be independent (each draws from its own random stream), so that with two
    or more of them they are worked on :data:`THREADS` threads with the numbers of one
    thread: numpy lets go of the interpreter in its loops and random draws. At most one block
    more than there are threads is held at once.
    """
    blocks = [slice(s, min(s + CHUNK, size)) for s in range(0, size, CHUNK)]
    threads = min(THREADS or 1, len(blocks))
    if threads < 2:
        yield from map(func, blocks)
        return
    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        for block in blocks:
            pending.append(pool.submit(func, block))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class Draws:
    """Posterior(-predictive) draws of named quantities at a set of points.

    Parameters
    ----------
    points : Points
        The inputs, broadcast and flattened.
    generate : callable
        ``generate(block)`` returns, for the points ``block`` (a slice), a dict of arrays of
        shape (points in block, samples): the draws of each quantity, and of each
        probability (draws of a probability, e.g. of divergence, whose mean is the answer).
    quantities : sequence of str
        Names of the quantities summarised by medians and intervals.
    kind : str
        What the answer is (a key of :data:`ABOUT`).
    probabilities : sequence of str
        Names of probabilities, summarised by their posterior mean.
    extra : dict
        Per-point columns carried into :meth:`to_dataframe` (e.g. ``N_decades_outside``).
    derived : dict
        Quantities computed from others after the draws (name -> (source, factor)), e.g.
        ``batch_sequences`` = ``batch_tokens`` / seq_len; summaries scale exactly.
    attrs : dict
        Labels of the answer (``group``, ``seq_len``, ...), kept in every summary.
    """

    def __init__(
        self,
        points: Points,
        generate: Generator,
        quantities: tuple[str, ...],
        kind: str,
        n_samples: int,
        *,
        probabilities: tuple[str, ...] = (),
        extra: dict[str, np.ndarray] | None = None,
        derived: dict[str, tuple[str, float]] | None = None,
        attrs: dict | None = None,
    ):
        self.points = points
        self._generate = generate
        self.quantities = tuple(quantities)
        self.probabilities = tuple(probabilities)
        self.kind = kind
        self.n_samples = int(n_samples)
        self.extra = dict(extra or {})
        self.derived = dict(derived or {})
        self.attrs = {"kind": kind, **(attrs or {})}

    # ------------------------------------------------------------------ basics

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the inputs broadcast together."""
        return self.points.shape

    @property
    def names(self) -> tuple[str, ...]:
        """Every quantity, derived ones included, in table order."""
        out = []
        for q in self.quantities:
            out.append(q)
            out += [d for d, (src, _) in self.derived.items() if src == q]
        return tuple(out)

    def __repr__(self) -> str:
        inputs = ", ".join(self.points.values)
        return (
            f"<Draws of {', '.join(self.names)} ({SHORT.get(self.kind, self.kind)}) at "
            f"{self.points.size} point(s) of ({inputs}); {self.n_samples} samples; "
            f"{', '.join(f'{k}={v!r}' for k, v in self.attrs.items() if k != 'kind')}>"
        )

    def describe(self, prob: float = DEFAULT_PROB) -> str:
        """One sentence saying what the median and the ``prob`` interval are about."""
        prob = check_prob(prob)
        group = f"; group {self.attrs['group']!r}" if "group" in self.attrs else ""
        return (
            f"posterior median and {prob:.0%} interval of {ABOUT.get(self.kind, self.kind)}{group}"
        )

    def _map(self, func: Callable[[dict], Any]) -> Iterator[Any]:
        """``func`` of each block's draws, in the blocks' order (:func:`map_blocks`)."""
        return map_blocks(self.points.size, lambda block: func(self._generate(block)))

    def _reduce(self, summarise: Callable[[np.ndarray], dict[str, np.ndarray]]) -> dict:
        """``summarise`` (sorted draws (points, samples) -> {statistic: per-point values}) of
        each quantity and the mean of each probability, block-wise; returns
        {(name, statistic): flat array}, derived quantities scaled."""

        def reduce(out: dict) -> dict:
            found = {}
            for q in self.quantities:
                for stat, values in summarise(np.sort(out[q], axis=1)).items():
                    found[(q, stat)] = values
            for p in self.probabilities:
                found[(p, "mean")] = out[p].mean(axis=1)
            return found

        parts: dict[tuple[str, str], list[np.ndarray]] = {}
        for found in self._map(reduce):
            for key, values in found.items():
                parts.setdefault(key, []).append(values)
        found = {key: np.concatenate(v) for key, v in parts.items()}
        for d, (src, factor) in self.derived.items():
            for (name, stat), values in list(found.items()):
                if name == src:
                    found[(d, stat)] = values * factor
        return found

    def _dataset(self, found: dict, stat: str, names=None):
        import xarray as xr

        names = self.names if names is None else names
        return xr.Dataset(
            {q: self.points.unflat(found[(q, stat)]) for q in names}, attrs=dict(self.attrs)
        )

    @staticmethod
    def _bounds(prob: float, method: str) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        def summarise(ordered: np.ndarray) -> dict[str, np.ndarray]:
            if method == "hdi":
                lower, upper = hdi_bounds(ordered, prob)
            else:
                lower = sorted_quantile(ordered, (1 - prob) / 2)
                upper = sorted_quantile(ordered, (1 + prob) / 2)
            return {"median": sorted_quantile(ordered, 0.5), "lower": lower, "upper": upper}

        return summarise

    # ------------------------------------------------------------------ summaries

    def median(self):
        """Posterior median of each quantity (an :class:`xarray.Dataset`)."""
        found = self._reduce(lambda o: {"median": sorted_quantile(o, 0.5)})
        return self._dataset(found, "median")

    def quantile(self, q: float):
        """Posterior quantile ``q`` of each quantity (an :class:`xarray.Dataset`)."""
        q = check_prob(q, "q")
        return self._dataset(self._reduce(lambda o: {"q": sorted_quantile(o, q)}), "q")

    def mean(self):
        """Posterior mean of each quantity (an :class:`xarray.Dataset`)."""
        return self._dataset(self._reduce(lambda o: {"mean": o.mean(axis=1)}), "mean")

    def interval(self, prob: float = DEFAULT_PROB, method: str = "eti"):
        """Credible (or predictive) interval of each quantity: an :class:`xarray.Dataset`
        with a ``bound`` dimension (``"lower"``, ``"upper"``).

        ``method="eti"`` (default): equal-tailed; ``"hdi"``: the narrowest interval holding
        ``prob`` of the draws, on the quantity's own scale.
        """
        import xarray as xr

        prob, method = check_prob(prob), check_method(method)
        found = self._reduce(self._bounds(prob, method))
        lower, upper = self._dataset(found, "lower"), self._dataset(found, "upper")
        out = xr.concat([lower, upper], dim=pd.Index(["lower", "upper"], name="bound"))
        out.attrs = dict(self.attrs, prob=prob, method=method)
        return out

    def probability(self):
        """Posterior mean of each probability (``p_diverge``): an :class:`xarray.Dataset`."""
        found = self._reduce(lambda o: {})
        return self._dataset(found, "mean", self.probabilities)

    def to_dataframe(self, prob: float = DEFAULT_PROB, method: str = "eti") -> pd.DataFrame:
        """One row per point: the inputs, ``<quantity>_median``, ``<quantity>_lower``,
        ``<quantity>_upper`` for each quantity, the probabilities and the extra columns."""
        prob, method = check_prob(prob), check_method(method)
        found = self._reduce(self._bounds(prob, method))
        columns = dict(self.points.values)
        columns |= {k: v for k, v in self.attrs.items() if k != "kind" and np.isscalar(v)}
        for q in self.names:
            for stat in ("median", "lower", "upper"):
                columns[f"{q}_{stat}"] = found[(q, stat)]
        columns |= {p: found[(p, "mean")] for p in self.probabilities}
        columns |= self.extra
        return pd.DataFrame(columns)

    @property
    def draws(self):
        """Every draw: an :class:`xarray.Dataset` with the inputs' dims and ``sample``
        (memory: one float per point, sample and quantity)."""
        import xarray as xr

        chunks: dict[str, list] = {q: [] for q in (*self.quantities, *self.probabilities)}
        for out in self._map(lambda out: out):
            for q in chunks:
                chunks[q].append(out[q])
        dims = (*self.points.dims, "sample")
        data = {
            q: (dims, np.concatenate(v).reshape(*self.shape, self.n_samples))
            for q, v in chunks.items()
        }
        for d, (src, factor) in self.derived.items():
            data[d] = (dims, data[src][1] * factor)
        return xr.Dataset(data, coords=self.points.coords, attrs=dict(self.attrs))
