"""Fitted posteriors: save, load, predict and compare, without importing PyMC.

A posterior file is an ArviZ-layout netCDF file (one netCDF group per InferenceData group)
whose ``posterior`` group carries the fit's JSON metadata in the attribute
``bayes_steplaw_metadata``. ArviZ can open it (``arviz.from_netcdf``); this module reads it with
xarray alone so that loading and predicting stay light.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import __version__
from ._resources import resource_path
from .diagnostics import ConvergenceError, ConvergenceWarning
from .hierarchy import Hierarchy

if TYPE_CHECKING:  # xarray is imported where used: `predict --method paper` stays light
    import xarray as xr

METADATA_ATTR = "bayes_steplaw_metadata"
_KINDS = ("run", "law")
_CHUNK = 512  # points per block when reducing (point x sample) draws


class PosteriorFileError(RuntimeError):
    """A posterior file cannot be read, or was written by another model version."""


def _as_points(N, D) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Broadcast N and D, check them, and flatten to points."""
    try:
        n_arr, d_arr = np.broadcast_arrays(np.asarray(N, dtype=float), np.asarray(D, dtype=float))
    except ValueError as exc:
        raise ValueError(f"N and D must broadcast together: {exc}") from None
    for name, arr in (("N", n_arr), ("D", d_arr)):
        bad = ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            raise ValueError(
                f"{name} must be positive and finite; got {arr.ravel()[bad.ravel()][:5].tolist()}"
            )
    return n_arr.ravel(), d_arr.ravel(), n_arr.shape


def _decades_outside(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """How many orders of magnitude each value lies outside [lo, hi] (0 inside)."""
    return np.maximum.reduce([np.log10(values / hi), np.log10(lo / values), np.zeros_like(values)])


def _sorted_quantile(ordered: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each row of sorted draws (numpy's default 'linear' method)."""
    h = (ordered.shape[-1] - 1) * q
    lo = int(np.floor(h))
    hi = min(lo + 1, ordered.shape[-1] - 1)
    return ordered[:, lo] + (h - lo) * (ordered[:, hi] - ordered[:, lo])


def _hdi_bounds(sorted_draws: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Narrowest interval holding ``prob`` of each row's sorted draws."""
    n = sorted_draws.shape[-1]
    width = int(np.floor(prob * n))
    if width < 1 or width >= n:
        raise ValueError(f"prob={prob} leaves no interval with {n} draws")
    spans = sorted_draws[:, width:] - sorted_draws[:, : n - width]
    start = np.argmin(spans, axis=1)
    rows = np.arange(sorted_draws.shape[0])
    return sorted_draws[rows, start], sorted_draws[rows, start + width]


@dataclass
class Prediction:
    """Posterior-predictive draws of the optimal lr and batch size at a set of points.

    Draws are generated lazily from per-sample coefficients: ``ln lr[p, s] = a_lr[s] +
    b_lr[s]·x[p] + c_lr[s]·y[p]`` (x, y the centred ln N and ln D), so ``predict`` itself costs
    O(points + samples) and reductions run block-wise over points.
    """

    N: np.ndarray
    D: np.ndarray
    seq_len: int
    group: str
    kind: str
    shape: tuple[int, ...]
    x: np.ndarray  # centred ln N per point
    y: np.ndarray  # centred ln D per point
    coef_lr: np.ndarray  # (3, samples): intercept, ln N, ln D slopes
    coef_bs: np.ndarray  # (3, samples)
    N_decades_outside: np.ndarray
    D_decades_outside: np.ndarray

    @property
    def n_samples(self) -> int:
        """Number of posterior samples per point."""
        return self.coef_lr.shape[1]

    def _log_block(self, which: str, sl: slice) -> np.ndarray:
        coef = self.coef_lr if which == "lr" else self.coef_bs
        design = np.stack([np.ones_like(self.x[sl]), self.x[sl], self.y[sl]], axis=1)
        return design @ coef

    def _summarise(self, prob: float | None = None, kind: str = "hdi") -> dict[str, np.ndarray]:
        """Median and (optionally) interval bounds of the log draws, one sort per block.

        numpy's SIMD sort beats a partition for the several order statistics needed here;
        quantiles interpolate linearly between order statistics, as ``numpy.quantile`` does.
        """
        if prob is not None and not 0 < prob < 1:
            raise ValueError(f"prob must be between 0 and 1; got {prob}")
        if kind not in ("hdi", "eti"):
            raise ValueError(f"kind must be 'hdi' or 'eti'; got {kind!r}")
        stats: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(self.x), _CHUNK):
            sl = slice(start, start + _CHUNK)
            for which in ("lr", "bs"):
                ordered = np.sort(self._log_block(which, sl), axis=1)
                found = {which: _sorted_quantile(ordered, 0.5)}
                if prob is not None:
                    if kind == "eti":
                        lo = _sorted_quantile(ordered, (1 - prob) / 2)
                        hi = _sorted_quantile(ordered, (1 + prob) / 2)
                    else:
                        lo, hi = _hdi_bounds(ordered, prob)
                    found |= {f"{which}_lower": lo, f"{which}_upper": hi}
                for key, values in found.items():
                    stats.setdefault(key, []).append(values)
        return {key: np.exp(np.concatenate(parts)) for key, parts in stats.items()}

    def _frame(self, stats: dict[str, np.ndarray], suffixes: tuple[str, ...]) -> pd.DataFrame:
        columns = {}
        for suffix in suffixes:
            lr, bs = stats[f"lr{suffix}"], stats[f"bs{suffix}"]
            columns |= {
                f"lr{suffix}": lr,
                f"batch_tokens{suffix}": bs,
                f"batch_sequences{suffix}": bs / self.seq_len,
            }
        order = [f"{q}{s}" for q in ("lr", "batch_tokens", "batch_sequences") for s in suffixes]
        return pd.DataFrame(columns)[order]

    def median(self) -> pd.DataFrame:
        """Posterior median of ``lr``, ``batch_tokens`` and ``batch_sequences`` per point."""
        return self._frame(self._summarise(), ("",))

    def interval(self, prob: float = 0.9, kind: str = "hdi") -> pd.DataFrame:
        """Credible interval per point.

        ``kind="eti"`` is the equal-tailed interval; ``kind="hdi"`` the highest-density
        interval of the log quantity (the narrowest interval in ratio terms), mapped back.
        Columns: ``lr_lower, lr_upper, batch_tokens_lower, batch_tokens_upper,
        batch_sequences_lower, batch_sequences_upper``.
        """
        return self._frame(self._summarise(prob, kind), ("_lower", "_upper"))

    @property
    def draws(self) -> xr.Dataset:
        """All draws as an xarray Dataset with dims ``point`` x ``sample``."""
        import xarray as xr

        everything = slice(None)
        lr = np.exp(self._log_block("lr", everything))
        bs = np.exp(self._log_block("bs", everything))
        coords = {"N": ("point", self.N), "D": ("point", self.D)}
        dims = ("point", "sample")
        return xr.Dataset(
            {
                "lr": (dims, lr),
                "batch_tokens": (dims, bs),
                "batch_sequences": (dims, bs / self.seq_len),
            },
            coords=coords,
            attrs={"group": self.group, "kind": self.kind, "seq_len": self.seq_len},
        )

    def describe(self, prob: float = 0.9) -> str:
        """One sentence saying what the intervals measure."""
        what = (
            "the optimum a new run will see (law uncertainty plus setting-level scatter)"
            if self.kind == "run"
            else "the law's own uncertainty (no setting-level scatter)"
        )
        return f"posterior median and {prob:.0%} credible interval of {what}, group {self.group!r}"

    def extrapolation(self) -> pd.DataFrame:
        """Orders of magnitude each point lies outside the fitted data's N and D ranges."""
        return pd.DataFrame(
            {
                "N_decades_outside": self.N_decades_outside,
                "D_decades_outside": self.D_decades_outside,
            }
        )

    def to_dataframe(self, prob: float = 0.9, kind: str = "hdi") -> pd.DataFrame:
        """Inputs, medians, intervals and extrapolation in one table, one row per point."""
        stats = self._summarise(prob, kind)
        inputs = pd.DataFrame(
            {"N": self.N, "D": self.D, "seq_len": self.seq_len, "group": self.group}
        )
        return pd.concat(
            [
                inputs,
                self._frame(stats, ("",)),
                self._frame(stats, ("_lower", "_upper")),
                self.extrapolation(),
            ],
            axis=1,
        )


class StepLawPosterior:
    """A fitted hierarchical Step Law: posterior draws plus the metadata of the fit.

    Build one with :func:`bayes_steplaw.fit`, :meth:`load` or :func:`load_default`.
    """

    def __init__(self, groups: dict[str, xr.Dataset], metadata: dict):
        self.groups = groups
        self.metadata = metadata
        self.hierarchy = Hierarchy.from_dict(metadata["hierarchy"])
        self._flat: dict[str, np.ndarray] = {}

    @classmethod
    def from_datasets(cls, groups: dict[str, xr.Dataset], metadata: dict) -> StepLawPosterior:
        """Wrap InferenceData groups and metadata in the posterior class of the model."""
        if metadata.get("model") == "landscape":
            from .landscape import LandscapePosterior

            return LandscapePosterior(groups, metadata)
        return cls(groups, metadata)

    # ------------------------------------------------------------------ basics

    @property
    def posterior(self) -> xr.Dataset:
        """The ``posterior`` group (dims ``chain``, ``draw`` and the parameter dims)."""
        return self.groups["posterior"]

    @property
    def idata(self):
        """The posterior as an ``arviz.InferenceData`` (imports ArviZ)."""
        from .diagnostics import _import_arviz

        return _import_arviz().InferenceData(**self.groups)

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
        """Group names accepted by :meth:`predict`, besides ``"new"``."""
        return self.hierarchy.group_names()

    def warn_if_unconverged(self) -> None:
        """Emit a :class:`ConvergenceWarning` naming what failed, if anything did."""
        if not self.converged:
            warnings.warn(
                "the fit did not converge: "
                + "; ".join(self.diagnostics["problems"])
                + ". Refit with more draws/tune or a higher target_accept; predict() needs "
                "allow_unconverged=True on this posterior.",
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

    @property
    def n_samples(self) -> int:
        """Chains x draws."""
        return self.posterior.sizes["chain"] * self.posterior.sizes["draw"]

    def flat(self, name: str) -> np.ndarray:
        """A posterior variable with chain and draw stacked into a leading sample axis."""
        if name not in self._flat:
            da = self.posterior[name]
            values = da.values.reshape(self.n_samples, *da.shape[2:])
            self._flat[name] = values
        return self._flat[name]

    # ------------------------------------------------------------------ offsets

    def _offset(self, law: str, group: str, rng: np.random.Generator | None) -> np.ndarray:
        """Offset draws of one law for a group; new levels drawn from their population."""
        index = self.hierarchy.resolve(group)
        total = np.zeros(self.n_samples)
        for lev, k in zip(self.hierarchy.levels, index):
            if k >= 0:
                total = total + self.flat(f"a_{law}_{lev.column}")[:, k]
            elif k == -2:
                if rng is None:
                    raise ValueError(f"group {group!r} has no offset of its own to compare")
                sigma = self.flat(f"sigma_{law}_{lev.column}")
                total = total + sigma * rng.standard_normal(self.n_samples)
        return total

    def compare_offsets(self, a: str, b: str, prob: float = 0.9) -> pd.DataFrame:
        """Posterior contrast of the lr and batch offsets of group ``a`` minus group ``b``.

        Returns
        -------
        DataFrame
            Rows ``lr`` and ``batch_tokens``; columns ``mean`` and ``lower``/``upper`` (equal-
            tailed ``prob`` interval) of the log-offset difference, ``ratio`` (exp of its
            median: how many times larger ``a``'s optimum is), and ``prob_positive`` = P(a > b).
        """
        if not 0 < prob < 1:
            raise ValueError(f"prob must be between 0 and 1; got {prob}")
        rows = {}
        for law, label in (("lr", "lr"), ("bs", "batch_tokens")):
            diff = self._offset(law, a, None) - self._offset(law, b, None)
            lo, hi = np.quantile(diff, [(1 - prob) / 2, (1 + prob) / 2])
            rows[label] = {
                "mean": diff.mean(),
                "lower": lo,
                "upper": hi,
                "ratio": float(np.exp(np.median(diff))),
                "prob_positive": float((diff > 0).mean()),
            }
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = f"{a} - {b} (log scale)"
        return out

    # ------------------------------------------------------------------ predict

    def law_coefficients(self, group: str, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample (intercept, ln N slope, ln D slope) of the lr and batch laws."""
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}; got {kind!r}")
        rng = np.random.default_rng(seed)
        a_lr = self.flat("c") + self._offset("lr", group, rng)
        a_bs = self.flat("d") + self._offset("bs", group, rng)
        if kind == "run":
            a_lr = a_lr + self.flat("sigma_setting_lr") * rng.standard_normal(self.n_samples)
            a_bs = a_bs + self.flat("sigma_setting_bs") * rng.standard_normal(self.n_samples)
        delta = self.flat("delta") if "delta" in self.posterior else np.zeros(self.n_samples)
        coef_lr = np.stack([a_lr, self.flat("alpha"), self.flat("beta")])
        coef_bs = np.stack([a_bs, delta, self.flat("gamma")])
        return coef_lr, coef_bs

    def predict(
        self,
        N,
        D,
        group: str = "dense",
        seq_len: int = 2048,
        kind: str = "run",
        *,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> Prediction:
        """Posterior-predictive optimal lr and batch size at (N, D).

        Parameters
        ----------
        N, D : float or array-like
            Non-embedding parameters and training tokens; broadcast together.
        group : str
            ``"dense"``, ``"moe"``, ``"moe/1in8"``, ... (see :attr:`groups_seen`); ``"new"`` for
            a never-seen architecture drawn from the group population (wider intervals).
        seq_len : int
            Sequence length, to express the batch in sequences.
        kind : {"run", "law"}
            ``"run"`` (default) includes setting-level scatter: where a new run's optimum will
            be. ``"law"`` is the uncertainty of the law itself.
        seed : int
            Seed of the draws for new groups and setting scatter.
        allow_unconverged : bool
            Predict even when the fit failed its convergence gate.
        """
        if not self.converged and not allow_unconverged:
            raise ConvergenceError(
                "this posterior failed its convergence checks ("
                + "; ".join(self.diagnostics["problems"])
                + "); pass allow_unconverged=True to predict anyway"
            )
        if not (isinstance(seq_len, (int, np.integer)) and seq_len > 0):
            raise ValueError(f"seq_len must be a positive integer; got {seq_len!r}")
        n, d, shape = _as_points(N, D)
        coef_lr, coef_bs = self.law_coefficients(group, kind, seed)
        meta = self.metadata
        return Prediction(
            N=n,
            D=d,
            seq_len=int(seq_len),
            group=group,
            kind=kind,
            shape=shape,
            x=np.log(n) - meta["log_n0"],
            y=np.log(d) - meta["log_d0"],
            coef_lr=coef_lr,
            coef_bs=coef_bs,
            N_decades_outside=_decades_outside(n, *meta["N_range"]),
            D_decades_outside=_decades_outside(d, *meta["D_range"]),
        )

    # ------------------------------------------------------------------ summaries

    def summary(self, prob: float = 0.9) -> pd.DataFrame:
        """Mean, sd, equal-tailed interval, R-hat and ESS of the exponents, intercepts,
        scales and every group offset (setting effects left out)."""
        diag = self.diagnostics["variables"]
        rows = []
        q = [(1 - prob) / 2, (1 + prob) / 2]
        for name in self.posterior.data_vars:
            if name.startswith("z_") or name in ("u", "v"):
                continue
            values = self.flat(name)
            labels = [""]
            if values.ndim == 2:
                dim = self.posterior[name].dims[-1]
                labels = [str(v) for v in self.posterior[name][dim].values]
            values = values.reshape(self.n_samples, -1)
            for i, label in enumerate(labels):
                col = values[:, i]
                lo, hi = np.quantile(col, q)
                rows.append(
                    {
                        "parameter": f"{name}[{label}]" if label else name,
                        "mean": col.mean(),
                        "sd": col.std(ddof=1),
                        "lower": lo,
                        "upper": hi,
                        "r_hat": diag.get(name, {}).get("r_hat", np.nan),
                        "ess_bulk": diag.get(name, {}).get("ess_bulk", np.nan),
                        "ess_tail": diag.get(name, {}).get("ess_tail", np.nan),
                    }
                )
        return pd.DataFrame(rows).set_index("parameter")

    def published_form(self, group: str = "dense") -> dict[str, float]:
        """Posterior-median constants in the paper's form ``lr = C·N^α·D^β``, ``B = E·D^γ``."""
        coef_lr, coef_bs = self.law_coefficients(group, "law", 0)
        n0, d0 = self.metadata["log_n0"], self.metadata["log_d0"]
        log_c = coef_lr[0] - coef_lr[1] * n0 - coef_lr[2] * d0
        log_e = coef_bs[0] - coef_bs[1] * n0 - coef_bs[2] * d0
        return {
            "lr_coefficient": float(np.exp(np.median(log_c))),
            "alpha": float(np.median(coef_lr[1])),
            "beta": float(np.median(coef_lr[2])),
            "bs_coefficient": float(np.exp(np.median(log_e))),
            "gamma": float(np.median(coef_bs[2])),
        }

    # ------------------------------------------------------------------ I/O

    def save(self, path: str | os.PathLike) -> Path:
        """Write the posterior as ArviZ-layout netCDF with the metadata as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.unlink(missing_ok=True)
        meta = {
            **self.metadata,
            "package_version": self.metadata.get("package_version", __version__),
        }
        for i, (name, ds) in enumerate(self.groups.items()):
            ds = ds.copy()
            ds.attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float))}
            if name == "posterior":
                ds.attrs[METADATA_ATTR] = json.dumps(meta)
            encoding = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars}
            ds.to_netcdf(
                tmp, group=name, mode="w" if i == 0 else "a", engine="h5netcdf", encoding=encoding
            )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> StepLawPosterior:
        """Read a posterior written by :meth:`save`.

        Raises
        ------
        PosteriorFileError
            The file is missing, unreadable or corrupted, lacks the metadata, or was written
            for another model version.
        """
        import xarray as xr

        from .model import MODEL_VERSIONS

        path = Path(path)
        if not path.is_file():
            raise PosteriorFileError(f"posterior file {path} does not exist")
        groups = {}
        try:
            for name in ("posterior", "sample_stats"):
                try:
                    with xr.open_dataset(path, group=name, engine="h5netcdf") as ds:
                        groups[name] = ds.load()
                except OSError as exc:
                    if name == "posterior" or "not found" not in str(exc).lower():
                        raise
        except Exception as exc:  # h5py and netCDF raise many types for a damaged file
            raise PosteriorFileError(
                f"{path} is not a readable bayes-steplaw posterior (netCDF) file: {exc}"
            ) from exc
        raw = groups["posterior"].attrs.pop(METADATA_ATTR, None)
        if raw is None:
            raise PosteriorFileError(f"{path} has no {METADATA_ATTR} attribute: not ours")
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PosteriorFileError(f"{path}: its metadata is not valid JSON ({exc})") from exc
        model, version = meta.get("model"), meta.get("model_version")
        if model not in MODEL_VERSIONS or version != MODEL_VERSIONS[model]:
            raise PosteriorFileError(
                f"{path} holds model {model!r} version {version!r}; this package "
                f"(bayes-steplaw {__version__}) reads {MODEL_VERSIONS}. Refit with "
                f"bayes_steplaw.fit or use the package version that wrote it "
                f"({meta.get('package_version', 'unknown')})."
            )
        return cls.from_datasets(groups, meta)


def load(path: str | os.PathLike) -> StepLawPosterior:
    """Load a posterior file written by :meth:`StepLawPosterior.save`."""
    return StepLawPosterior.load(path)


def load_default(model: str = "optimum") -> StepLawPosterior:
    """The posterior fitted on the released dense + MoE data that ships with the package.

    Parameters
    ----------
    model : {"optimum", "landscape"}
    """
    path = resource_path("models", f"{model}.nc")
    if not path.is_file():
        raise PosteriorFileError(
            f"no shipped posterior for model {model!r} (looked for {path}); "
            f"shipped models are written by `python -m bayes_steplaw.models`"
        )
    return StepLawPosterior.load(path)
