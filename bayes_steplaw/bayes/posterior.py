"""The base posterior: netCDF I/O, metadata, the convergence gate, summaries, model kinds.

A posterior file is an ArviZ-layout netCDF file (one netCDF group per InferenceData group)
whose ``posterior`` group carries the fit's JSON metadata in the attribute
``bayes_steplaw_metadata``; the metadata's ``model`` field names the model kind and picks the
class that reads it. ArviZ can open the file (``arviz.from_netcdf``); this module reads it with
xarray alone so that loading and predicting stay light.

Each model module subclasses :class:`Posterior` with a ``kind`` and a ``version``; the subclass
registers itself, so this module never imports a model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from .. import __version__
from .._io import display_path, input_problem, new_file_mode
from .._resources import resource_path
from .._validate import DEFAULT_PROB, check_prob
from .hierarchy import Hierarchy
from .sampling import ConvergenceError, ConvergenceWarning, convergence_advice, import_arviz
from .variables import (
    PosteriorFileError,
    Variables,
    open_posterior_file,
    read_variables,
)

if TYPE_CHECKING:  # xarray is imported where used: `predict --method paper` stays light
    import xarray as xr

METADATA_ATTR = "bayes_steplaw_metadata"
MAX_METADATA_BYTES = 10_000_000

_KINDS: dict[str, type[Posterior]] = {}

RELEASED_SETUP = (
    "the Step Law paper's setup (AdamW, warm-up then cosine decay to 1e-5, 2048-token "
    "sequences, its data and tokenizer); for yours, pool your sweeps: fit --with-released"
)
"""Whose setup the answers of a posterior fitted on the released sweeps are for."""
RELEASED_SHA256 = "146c41198316ab9f276342e58723ab438f3f0239188139764ca4343bea5554de"
"""Fingerprint (``data_fingerprint``) of the released dense + MoE sweep table."""


def model_versions() -> dict[str, int]:
    """Model kinds this package writes, with the version of each."""
    return {kind: cls.version for kind, cls in _KINDS.items()}


def readable_versions() -> dict[str, tuple[int, ...]]:
    """Model kinds this package reads, with the versions of each."""
    return {kind: cls.readable_versions or (cls.version,) for kind, cls in _KINDS.items()}


def posterior_class(kind: str) -> type[Posterior]:
    """The posterior class registered for a model kind."""
    if kind not in _KINDS:
        raise ValueError(f"model must be one of {list(_KINDS)}; got {kind!r}")
    return _KINDS[kind]


# --------------------------------------------------------------------------- metadata schema

_COMMON_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "model_version": int,
    "hierarchy": dict,
    "log_n0": (int, float),
    "log_d0": (int, float),
    "N_range": list,
    "D_range": list,
    "n_runs": int,
    "n_settings": int,
    "diagnostics": dict,
}
_DIAGNOSTIC_FIELDS: dict[str, type | tuple[type, ...]] = {
    "converged": bool,
    "problems": list,
    "variables": dict,
}


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"str": "a string", "int": "an integer", "float": "a number", "list": "a list"}
    names |= {"dict": "an object", "bool": "true or false"}
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)


def check_metadata(meta: Any, where: str, extra: dict | None = None) -> dict:
    """Validate the shape of a posterior's metadata; PosteriorFileError names the field."""

    def fail(field: str, expected: str, value: Any) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise PosteriorFileError(
            f"{where}: metadata field {field!r} must be {expected}; got {shown}"
        )

    if not isinstance(meta, dict):
        fail("(top level)", "a JSON object", type(meta).__name__)
    for fields, scope, prefix in (
        ({**_COMMON_FIELDS, **(extra or {})}, meta, ""),
        (_DIAGNOSTIC_FIELDS, meta.get("diagnostics"), "diagnostics."),
    ):
        for name, kind in fields.items():
            if name not in scope:
                raise PosteriorFileError(f"{where}: metadata lacks the field {prefix + name!r}")
            value = scope[name]
            ok = isinstance(value, kind) and not (kind in (int, (int, float)) and value is True)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                fail(prefix + name, _type_name(kind), value)
    for name in ("N_range", "D_range"):
        rng = meta[name]
        if not (
            len(rng) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in rng)
            and rng[0] <= rng[1]
        ):
            fail(name, "[low, high], two positive numbers", rng)
    groups = meta.get("groups", [])
    if not (isinstance(groups, list) and all(isinstance(g, str) for g in groups)):
        fail("groups", "a list of column names", groups)
    if not all(isinstance(p, str) for p in meta["diagnostics"]["problems"]):
        fail("diagnostics.problems", "a list of strings", meta["diagnostics"]["problems"])
    try:
        Hierarchy.from_dict(meta["hierarchy"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        fail("hierarchy", f"a group hierarchy ({exc})", meta["hierarchy"])
    return meta


# --------------------------------------------------------------------------- the base class


class Posterior:
    """Posterior draws of one fitted model plus the metadata of the fit.

    Subclasses set ``kind`` and ``version`` (which registers them for :func:`load`),
    ``metadata_fields`` (their own required metadata), ``save_drop`` (variables restated by
    others, left out of saved files) and implement the model's predictive methods.
    """

    kind: ClassVar[str | None] = None
    version: ClassVar[int] = 0  # what this package writes
    readable_versions: ClassVar[tuple[int, ...]] = ()  # what it reads (default: version)
    metadata_fields: ClassVar[dict[str, Any]] = {}
    save_drop: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            _KINDS[cls.kind] = cls

    def __init__(self, groups: dict[str, xr.Dataset | Variables], metadata: dict):
        self._groups = dict(groups)
        self.metadata = metadata
        self.hierarchy = Hierarchy.from_dict(metadata["hierarchy"])
        self._flat: dict[str, np.ndarray] = {}
        self._nonfinite: list[str] | None = None

    @classmethod
    def from_datasets(cls, groups: dict[str, xr.Dataset], metadata: dict) -> Posterior:
        """Wrap InferenceData groups and metadata in the posterior class of their model."""
        return _KINDS.get(metadata.get("model"), cls)(groups, metadata)

    # ------------------------------------------------------------------ basics

    def thin(self, step: int) -> Posterior:
        """The same posterior keeping every ``step``-th draw of each chain (its convergence
        diagnostics stay those of the full chains; ``metadata["thinned"]`` records ``step``)."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"step must be a positive integer; got {step!r}")
        groups = {k: ds.isel(draw=slice(None, None, step)) for k, ds in self.groups.items()}
        thinned = self.metadata.get("thinned", 1) * step
        return type(self)(groups, {**self.metadata, "thinned": thinned})

    @property
    def groups(self) -> dict[str, xr.Dataset]:
        """The InferenceData groups as xarray Datasets (built on first use)."""
        for name, group in self._groups.items():
            if isinstance(group, Variables):
                self._groups[name] = group.to_xarray()
        return self._groups

    @property
    def posterior(self) -> xr.Dataset:
        """The ``posterior`` group (dims ``chain``, ``draw`` and the parameter dims)."""
        return self.groups["posterior"]

    @property
    def variables(self) -> Variables:
        """The ``posterior`` group's variables as numpy arrays (what predictions read)."""
        group = self._groups["posterior"]
        if not isinstance(group, Variables):
            if not hasattr(self, "_variables"):
                self._variables = Variables.from_xarray(group)
            return self._variables
        return group

    @property
    def idata(self):
        """The posterior as an ``arviz.InferenceData`` (imports ArviZ)."""
        return import_arviz().InferenceData(**self.groups)

    @property
    def setup(self) -> str:
        """Whose training setup the answers are for, in words (``metadata["setup"]`` when the
        fit recorded one)."""
        if self.metadata.get("setup"):
            return str(self.metadata["setup"])
        if self.metadata.get("pooled"):
            return ("the setups of the sweeps it was fitted on: the Step Law paper's for the "
                    "released groups, yours for the user: groups")  # fmt: skip
        if self.metadata.get("data_sha256") == RELEASED_SHA256:
            return RELEASED_SETUP
        return "the setup of the sweeps it was fitted on"

    @property
    def diagnostics(self) -> dict:
        """Convergence report of the fit (R-hat, ESS, divergences, BFMI)."""
        return self.metadata["diagnostics"]

    @property
    def converged(self) -> bool:
        """Whether the fit passed the gate (R-hat <= 1.01, no divergence, ESS >= 400)."""
        return bool(self.diagnostics["converged"])

    @property
    def groups_seen(self) -> list[str]:
        """Group names the predictive methods accept, besides ``"new"``."""
        return self.hierarchy.group_names()

    @property
    def n_samples(self) -> int:
        """Chains x draws."""
        sizes = self.variables.sizes
        return sizes["chain"] * sizes["draw"]

    def flat(self, name: str) -> np.ndarray:
        """A posterior variable with chain and draw stacked into a leading sample axis."""
        if name not in self._flat:
            if name not in self.variables:
                raise PosteriorFileError(
                    f"this {self.kind} posterior lacks the variable {name!r}: the file is damaged "
                    "or was not written by this package; refit it"
                )
            da = self.variables[name]
            if da.dtype.kind not in "fiu":
                raise PosteriorFileError(
                    f"this {self.kind} posterior's variable {name!r} holds {da.dtype} values, not "
                    "numbers: the file is damaged; refit it"
                )
            self._flat[name] = da.values.reshape(self.n_samples, *da.shape[2:])
        return self._flat[name]

    def subsample(self, n_samples: int, seed: int = 0) -> Posterior:
        """The same posterior on ``n_samples`` draws picked without replacement (one chain).

        For light exports (the planner page) and quick checks; diagnostics and metadata are
        those of the full fit.
        """
        from .._validate import check_count

        n_samples = check_count(n_samples, "n_samples")
        if n_samples >= self.n_samples:
            return self
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(self.n_samples, n_samples, replace=False))
        stacked = self.posterior.stack(sample=("chain", "draw")).isel(sample=pick)
        stacked = stacked.drop_vars(["sample", "chain", "draw"]).rename(sample="draw")
        post = stacked.expand_dims(chain=[0]).transpose("chain", "draw", ...)
        post = post.assign_coords(draw=np.arange(n_samples))
        return type(self)({"posterior": post}, self.metadata)

    def gate(self, allow_unconverged: bool) -> None:
        """Refuse to answer from a posterior that failed its convergence gate, unless asked."""
        if not self.converged and not allow_unconverged:
            advice = convergence_advice(self)
            raise ConvergenceError(
                "this posterior failed its convergence checks ("
                + "; ".join(self.diagnostics["problems"])
                + ")"
                + (f"; refit with {'; or '.join(advice)}" if advice else "")
                + "; or pass allow_unconverged=True to use it anyway"
            )
        if self._nonfinite is None:
            self._nonfinite = [
                v for v, da in self.variables.data_vars.items()
                if da.dtype.kind not in "fiub" or not np.isfinite(da.values).all()
            ]  # fmt: skip
        if self._nonfinite:
            raise ConvergenceError(
                f"this posterior has non-finite or non-numeric draws of {self._nonfinite}: the "
                "file is damaged; refit it"
            )

    def warn_if_unconverged(self) -> None:
        """Emit a :class:`ConvergenceWarning` naming what failed, if anything did."""
        if not self.converged:
            advice = convergence_advice(self)
            warnings.warn(
                "the fit did not converge: "
                + "; ".join(self.diagnostics["problems"])
                + (f". Refit with {'; or '.join(advice)}" if advice else "")
                + ". Predicting needs allow_unconverged=True on this posterior.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"<{type(self).__name__} model={m['model']!r} v{m['model_version']} "
            f"settings={m['n_settings']} runs={m['n_runs']} groups={self.groups_seen} "
            f"samples={self.n_samples} converged={self.converged}>"
        )

    # ------------------------------------------------------------------ summaries

    def summary(self, prob: float = DEFAULT_PROB, *, settings: bool = False) -> pd.DataFrame:
        """Mean, sd, equal-tailed interval, R-hat and ESS of every parameter.

        Raw sampler variables (``z_*``) are left out, and so are per-setting variables (those
        with a ``setting`` dimension) unless ``settings=True``.
        """
        prob = check_prob(prob)
        diag = self.diagnostics["variables"]
        q = [(1 - prob) / 2, (1 + prob) / 2]
        rows = []
        for name, da in self.posterior.data_vars.items():
            if name.startswith("z_") or (not settings and "setting" in da.dims):
                continue
            values = self.flat(name).reshape(self.n_samples, -1)
            labels = [""]
            if da.ndim > 2:
                labels = [str(v) for v in da[da.dims[-1]].values]
            lo, hi = np.quantile(values, q, axis=0)
            for i, label in enumerate(labels):
                rows.append(
                    {
                        "parameter": f"{name}[{label}]" if label else name,
                        "mean": values[:, i].mean(),
                        "sd": values[:, i].std(ddof=1),
                        "lower": lo[i],
                        "upper": hi[i],
                        "r_hat": diag.get(name, {}).get("r_hat", np.nan),
                        "ess_bulk": diag.get(name, {}).get("ess_bulk", np.nan),
                        "ess_tail": diag.get(name, {}).get("ess_tail", np.nan),
                    }
                )
        return pd.DataFrame(rows).set_index("parameter")

    # ------------------------------------------------------------------ I/O

    def save(self, path: str | os.PathLike) -> Path:
        """Write the posterior as ArviZ-layout netCDF with the metadata as JSON.

        The file is written to a unique temporary file beside ``path`` and renamed over it, so
        a reader sees the old file or the new one, never a part, and concurrent writers do not
        collide (the last complete one wins).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            **self.metadata,
            "package_version": self.metadata.get("package_version", __version__),
        }
        groups = dict(self.groups)
        drop = [v for v in self.save_drop if v in groups["posterior"]]
        groups["posterior"] = groups["posterior"].drop_vars(drop)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            for i, (name, ds) in enumerate(groups.items()):
                ds = ds.copy()
                ds.attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float))}
                if name == "posterior":
                    ds.attrs[METADATA_ATTR] = json.dumps(meta)
                encoding = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars}
                ds.to_netcdf(
                    tmp, group=name, mode="w" if i == 0 else "a", engine="h5netcdf",
                    encoding=encoding,
                )  # fmt: skip
            # mkstemp makes the file private (0600); give it the mode any new file would get
            os.chmod(tmp, new_file_mode())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Posterior:
        """Read a posterior written by :meth:`save`.

        Called on a subclass (``LandscapePosterior.load``), the file must hold that kind.

        Raises
        ------
        PosteriorFileError
            The file is missing, unreadable or corrupted, lacks or has malformed metadata,
            holds more draws than a posterior of this package can, or was written for another
            model version or kind.
        """
        path = Path(path)
        problem = input_problem(path)  # never opens a FIFO or a device
        if problem:
            raise PosteriorFileError(f"posterior file {display_path(path)} {problem}")
        groups, meta = _read_cached(path)
        kind = meta["model"]
        found = _KINDS[kind]
        if not issubclass(found, cls):
            raise PosteriorFileError(
                f"{path} holds a {kind!r} posterior, but a {cls.kind or cls.__name__!r} one is "
                f"needed here; fit one with `bayes-steplaw fit SWEEPS --model {cls.kind}`"
            )
        return found(groups, meta)


_READ_CACHE: OrderedDict[tuple, tuple[dict, str]] = OrderedDict()
_READ_CACHE_SIZE = 4
_READ_LOCK = threading.Lock()


def _read_cached(path: Path) -> tuple[dict[str, xr.Dataset], dict]:
    """:func:`_read`, remembered for the same file content (its path and a hash of its bytes).

    Reading and decompressing a posterior is most of the cost of a CLI call or of a test that
    loads the shipped models, while hashing its bytes costs a hundredth of that; an edited
    file (even within one clock tick, at the same size) is a new entry. The draws are never
    modified in place, so the datasets are shared; every caller gets its own metadata.
    """
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    key = (str(path.resolve()), digest.hexdigest())
    with _READ_LOCK:
        hit = _READ_CACHE.get(key)
        if hit is not None:
            _READ_CACHE.move_to_end(key)
    if hit is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # h5py's notices on a damaged file
            groups, meta = _read(path)
        hit = (groups, json.dumps(meta))
        with _READ_LOCK:
            _READ_CACHE[key] = hit
            while len(_READ_CACHE) > _READ_CACHE_SIZE:
                _READ_CACHE.popitem(last=False)
    groups, meta_text = hit
    return dict(groups), json.loads(meta_text)


def _read_metadata(path: Path) -> dict:
    """The file's metadata, checked, read from its header alone (before any variable)."""
    with open_posterior_file(path) as f:
        raw = f["posterior"].attrs.get(METADATA_ATTR)
    if raw is None:
        raise PosteriorFileError(f"{path} has no {METADATA_ATTR} attribute: not ours")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or len(raw) > MAX_METADATA_BYTES:
        raise PosteriorFileError(f"{path}: its metadata is not a JSON text of sane size")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise PosteriorFileError(f"{path}: its metadata is not valid JSON ({exc})") from exc
    _check_kind(path, meta)
    return check_metadata(meta, str(path), _KINDS[meta["model"]].metadata_fields)


def _read(path: Path) -> tuple[dict[str, Variables], dict]:
    """Check the metadata, then read the variables (:func:`.variables.read_variables`)."""
    meta = _read_metadata(path)
    return read_variables(path), meta


def _check_kind(path: Path, meta: Any) -> None:
    """The file's model kind and version must be ones this package reads."""
    if not isinstance(meta, dict):
        raise PosteriorFileError(f"{path}: its metadata is not a JSON object")
    kind, version = meta.get("model"), meta.get("model_version")
    if kind == "landscape" or (kind == "loss" and version == 1):
        raise PosteriorFileError(
            f"{path} holds a {kind!r} posterior of bayes-steplaw 0.2, which 0.3 replaced: one "
            f"loss model now answers every question (the optimum, the loss of a run, plateau "
            f"probabilities, recommendations). Refit it from the same sweeps with "
            f"`bayes-steplaw fit SWEEPS` (model 'loss', the default), or use the shipped one"
        )
    versions = readable_versions()
    if not isinstance(kind, str) or kind not in versions or version not in versions[kind]:
        package = meta.get("package_version", "unknown")
        raise PosteriorFileError(
            f"{path} holds model {str(kind)[:40]!r} version {str(version)[:20]}; this package "
            f"(bayes-steplaw {__version__}) reads {versions}. Refit with "
            f"bayes_steplaw.fit or use the package version that wrote it ({str(package)[:20]})."
        )


def load(path: str | os.PathLike) -> Posterior:
    """Load a posterior file written by :meth:`Posterior.save` (any model kind)."""
    return Posterior.load(path)


def load_default(model: str = "loss") -> Posterior:
    """The posterior fitted on the released dense + MoE data that ships with the package.

    Parameters
    ----------
    model : {"loss", "optimum"}
        The loss model (every answer; the default) or the optimum model (the law fitted to
        each setting's best run).
    """
    path = resource_path("models", f"{model}.nc")
    if not path.is_file():
        raise PosteriorFileError(
            f"no shipped posterior for model {model!r} (looked for {path}); "
            f"shipped models are written by `bayes-steplaw card {model} --refit`"
        )
    return Posterior.load(path)
