"""A posterior file's variables as numpy arrays, read from its netCDF-4 layout with h5py.

A posterior file is netCDF-4 (HDF5 with dimension scales, as ``h5netcdf`` writes it), one
group per InferenceData group. :func:`read_variables` reads it with h5py's public API into
:class:`Variables` (numpy arrays with their dimension names) after checking every shape from
the header: what predictions need, without xarray's netCDF backends or an xarray Dataset (the
first Dataset a process builds imports dask when dask is installed: about half a second of a
one-shot command). :meth:`Variables.to_xarray` builds the Dataset when it is wanted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_SAMPLES = 1_000_000  # chains x draws a posterior of this package can hold
MAX_VALUES = 200_000_000  # values in one variable (1.6 GB of float64)


class PosteriorFileError(RuntimeError):
    """A posterior file cannot be read, or was written by another model version."""


@dataclass(frozen=True)
class Variable:
    """One variable of a group: its dimension names and values."""

    dims: tuple[str, ...]
    values: np.ndarray

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def __len__(self) -> int:
        return len(self.values)


class Variables(Mapping):
    """The variables and coordinates of one InferenceData group as numpy arrays.

    What predictions read, without building an xarray Dataset: the first Dataset a process
    builds imports dask when dask is installed, about half a second of a one-shot command.
    ``posterior[name].values``, ``name in posterior``, ``.sizes`` and ``.data_vars`` work as on
    a Dataset; :meth:`to_xarray` builds the Dataset (summaries, ArviZ, saving).
    """

    def __init__(self, data: dict[str, Variable], coords: dict[str, np.ndarray]):
        self._data, self.coords = data, coords

    @classmethod
    def from_xarray(cls, ds) -> Variables:
        data = {k: Variable(tuple(map(str, v.dims)), v.values) for k, v in ds.data_vars.items()}
        return cls(data, {str(k): ds[k].values for k in ds.coords})

    def __getitem__(self, name: str) -> Variable:
        if name in self._data:
            return self._data[name]
        if name in self.coords:
            return Variable((name,), self.coords[name])
        raise KeyError(name)

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, name) -> bool:
        return name in self._data or name in self.coords

    @property
    def data_vars(self) -> dict[str, Variable]:
        return self._data

    @property
    def sizes(self) -> dict[str, int]:
        out = {k: len(v) for k, v in self.coords.items()}
        for var in self._data.values():
            out.update(zip(var.dims, var.shape))
        return out

    def to_xarray(self):
        import xarray as xr

        return xr.Dataset(
            {k: (v.dims, v.values) for k, v in self._data.items()},
            coords={k: (k, v) for k, v in self.coords.items()},
        )


@contextmanager
def open_posterior_file(path: Path):
    """A posterior file open with h5py, holding a ``posterior`` group; anything that fails
    inside (h5py raises many types for a damaged file) is a PosteriorFileError naming it."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "posterior" not in f:
                raise PosteriorFileError(f"{path} has no posterior group: not ours")
            yield f
    except PosteriorFileError:
        raise
    except Exception as exc:
        raise PosteriorFileError(
            f"{path} is not a readable bayes-steplaw posterior (netCDF) file: {exc}"
        ) from exc


def read_variables(path: Path) -> dict[str, Variables]:
    """The ``posterior`` (and ``sample_stats``) group of a posterior file; every variable's
    size is checked from the header before any is read."""
    with open_posterior_file(path) as f:
        layout = {g: _layout(f[g]) for g in ("posterior", "sample_stats") if g in f}
        _check_sizes(path, layout)
        return {g: _dataset(f[g], *layout[g]) for g in layout}


_PHONY = b"This is a netCDF dimension but not a netCDF variable"


def _layout(group) -> tuple[dict[str, tuple[str, ...]], dict[str, int], set[str]]:
    """Each variable's dimension names, each dimension's size, and the dimensions that are
    coordinates (dimension scales with values of their own), from the header alone."""
    variables, sizes, coords = {}, {}, set()
    for name, ds in group.items():
        if ds.attrs.get("CLASS") == b"DIMENSION_SCALE":
            sizes[name] = ds.shape[0]
            if not bytes(ds.attrs.get("NAME", b"")).startswith(_PHONY):
                coords.add(name)
            continue
        dims = []
        for axis in range(ds.ndim):
            scales = list(ds.dims[axis].values())
            dims.append(scales[0].name.rsplit("/", 1)[-1] if scales else f"dim_{axis}")
        variables[name] = tuple(dims)
    return variables, sizes, coords


def _dataset(group, variables: dict, sizes: dict, coords: set) -> Variables:
    def values(ds):
        arr = ds[()]
        if arr.dtype.kind in "OS":
            arr = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel()],
                           dtype=object).reshape(arr.shape)  # fmt: skip
        if ds.attrs.get("dtype") in (b"bool", "bool"):
            arr = arr.astype(bool)
        return arr

    data = {name: Variable(dims, values(group[name])) for name, dims in variables.items()}
    return Variables(data, {c: values(group[c]) for c in coords})


def _check_sizes(path: Path, layout: dict) -> None:
    variables, sizes, _ = layout["posterior"]
    missing = [d for d in ("chain", "draw") if d not in sizes]
    if missing:
        raise PosteriorFileError(f"{path}: the posterior group lacks the dimension(s) {missing}")
    samples = sizes["chain"] * sizes["draw"]
    if samples == 0:
        raise PosteriorFileError(f"{path}: the posterior holds no draws (0 chains or 0 draws)")
    if samples > MAX_SAMPLES:
        raise PosteriorFileError(
            f"{path}: {samples} samples (chains x draws) exceed the {MAX_SAMPLES} a posterior "
            f"of this package can hold"
        )
    for name, (variables, sizes, _) in layout.items():
        for var, dims in variables.items():
            size = math.prod(sizes.get(d, 1) for d in dims)
            if size > MAX_VALUES:
                raise PosteriorFileError(
                    f"{path}: variable {name}/{var} holds {size} values, more than the "
                    f"{MAX_VALUES} a posterior of this package can hold"
                )
