"""The paper's bootstrap-OLS fit of the Step Law: its published ensemble, and refits.

The Step Law paper fits two ordinary-least-squares regressions on the near-optimal runs of its
sweeps,

.. math::

    \\ln \\eta^* = c + \\alpha \\ln N + \\beta \\ln D, \\qquad \\ln B^* = d + \\gamma \\ln D

(peak learning rate :math:`\\eta^*`, batch size :math:`B^*` in tokens), over 1000 bootstrap
resamples of those runs, and publishes the mean-coefficient law (its Table 2:
``lr = 1.79 N^-0.713 D^0.307``, ``bs = 0.58 D^0.571``).

:class:`BootstrapOLS` holds such an ensemble, one row of coefficients per resample:

* :meth:`BootstrapOLS.from_published` loads the 1000 resamples the paper released and reproduces
  the upstream tool (``fit_tool.py pred-opt-lr-bs``) exactly, digit for digit
  (:meth:`BootstrapOLS.upstream_line`);
* :meth:`BootstrapOLS.fit` runs the same recipe on any sweep table, vectorised over resamples.

The recipe run on the released dense sweeps does not give the published constants: the paper's
fit also used runs that were not released (e.g. its 60M and 120M models). The published
ensemble is reproduced exactly; a refit on the released rows is a different, honest number
(:func:`reproduction_table` puts the two side by side).

This module imports neither PyMC nor ArviZ nor xarray, and pandas only where it returns a
DataFrame, so that ``bayes-steplaw predict --method paper`` starts quickly.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validate import check_prob, check_seq_len, positive_array, scalar
from .datasets.registry import DataError, fetch
from .laws import PAPER_TABLE2
from .ols import bootstrap_ols, resample_indices, row_counts, weighted_ols

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COEFFICIENT_COLUMNS",
    "CONSTANTS",
    "PAPER_TABLE2",
    "PUBLISHED_FILE",
    "BootstrapOLS",
    "DegenerateResampleWarning",
    "bootstrap_ols",
    "reproduction_table",
    "resample_indices",
]

PUBLISHED_FILE = "1004_fitted_lr_bs_scaling_model_parameters.csv"
"""Registered name of the paper's published ensemble (1000 bootstrap OLS fits)."""

COEFFICIENT_COLUMNS = ("lr_intercept", "lr_coefN", "lr_coefD", "bs_intercept", "bs_coefD")
"""Columns of :attr:`BootstrapOLS.coefficients`, as in the published file."""

CONSTANTS = ("lr_coef", "alpha", "beta", "bs_coef", "gamma")
"""The five constants of the paper's Table 2, ``lr = lr_coef N^alpha D^beta`` and
``bs = bs_coef D^gamma`` (tokens); ``lr_coef`` and ``bs_coef`` are exp() of mean intercepts."""

PREDICT_COLUMNS = (
    "N",
    "D",
    "seq_len",
    "lr",
    "lr_lower",
    "lr_upper",
    "batch_tokens",
    "batch_tokens_lower",
    "batch_tokens_upper",
    "batch_sequences",
    "batch_sequences_lower",
    "batch_sequences_upper",
)
SWEEP_COLUMNS = ("N", "D", "lr", "batch_tokens", "loss", "setting")
"""Columns :meth:`BootstrapOLS.fit` needs (the canonical schema of
:mod:`bayes_steplaw.datasets.sweeps`)."""

_UPSTREAM_HEADER = "N D seq_len lr bs bs_in_sample"
_CHUNK_CELLS = 1 << 22  # points x resamples evaluated at once in predict()


class DegenerateResampleWarning(UserWarning):
    """Some bootstrap resamples had a singular design and were left out (NaN rows)."""


# --------------------------------------------------------------------------- the ensemble


class BootstrapOLS:
    """An ensemble of bootstrap OLS fits of the Step Law, one row of coefficients per resample.

    ``ln lr = lr_intercept + lr_coefN ln N + lr_coefD ln D`` and
    ``ln bs_tokens = bs_intercept + bs_coefD ln D``. The point law is the mean-coefficient law
    (the paper's); intervals are percentiles of the resamples' predictions.

    Build one with :meth:`from_published` (the paper's released ensemble) or :meth:`fit`
    (the paper's recipe on a sweep table).

    Parameters
    ----------
    coefficients : array_like, shape (n_boot, 5), or DataFrame
        Columns in the order of :data:`COEFFICIENT_COLUMNS` (a DataFrame must carry those
        names). Rows that are all NaN mark failed (singular) resamples and are left out of
        means and intervals.
    source : str
        Where the ensemble comes from, for display.

    Attributes
    ----------
    source : str
        Description of the ensemble's origin.
    kept : pandas.DataFrame or None
        The near-optimal runs the fit used (refits only), with a ``rel_loss`` column.
    indices : numpy.ndarray or None
        ``(n_boot, n_kept)`` rows of :attr:`kept` drawn in each resample (refits only).
    threshold, seed
        The refit's settings (None for the published ensemble).
    """

    def __init__(self, coefficients: Any, *, source: str = "user-supplied") -> None:
        if hasattr(coefficients, "columns"):
            missing = [c for c in COEFFICIENT_COLUMNS if c not in coefficients.columns]
            if missing:
                raise ValueError(
                    f"coefficients lack column(s) {missing}; expected {list(COEFFICIENT_COLUMNS)}"
                )
            coefficients = coefficients[list(COEFFICIENT_COLUMNS)].to_numpy(dtype=float)
        arr = np.asarray(coefficients, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != len(COEFFICIENT_COLUMNS) or arr.shape[0] < 1:
            raise ValueError(
                f"coefficients must have shape (n_boot, {len(COEFFICIENT_COLUMNS)}); "
                f"got {arr.shape}"
            )
        nan = np.isnan(arr)
        partial = nan.any(axis=1) & ~nan.all(axis=1)
        if partial.any() or np.isinf(arr).any():
            raise ValueError("coefficients must be finite, or NaN across a whole failed row")
        failed = nan.all(axis=1)
        if failed.all():
            raise ValueError("every resample failed (all coefficient rows are NaN)")
        # One contiguous 1-D array per column: column means then sum in numpy's pairwise order,
        # exactly as pandas' Series.mean() does in the upstream tool.
        self._coef = np.ascontiguousarray(arr.T)
        self._failed = failed
        self.source = source
        self.kept: pd.DataFrame | None = None
        self.indices: np.ndarray | None = None
        self.threshold: float | None = None
        self.seed: int | None = None

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_published(cls, data_dir: str | os.PathLike | None = None) -> BootstrapOLS:
        """Load the paper's published ensemble of 1000 bootstrap fits.

        Parameters
        ----------
        data_dir : path, optional
            Directory holding ``1004_fitted_lr_bs_scaling_model_parameters.csv``; otherwise the
            registry's resolution order applies (see :mod:`bayes_steplaw.datasets.registry`).

        Returns
        -------
        BootstrapOLS

        Raises
        ------
        DataError
            The file cannot be found, verified or parsed.
        """
        path = fetch(PUBLISHED_FILE, data_dir)
        try:
            with open(path, newline="") as fh:
                rows = list(csv.reader(fh))
        except OSError as exc:  # pragma: no cover - fetch() has just read it
            raise DataError(f"{PUBLISHED_FILE}: cannot read {path} ({exc})") from exc
        if not rows or tuple(rows[0]) != COEFFICIENT_COLUMNS:
            raise DataError(
                f"{PUBLISHED_FILE} at {path}: header {rows[0] if rows else None} is not "
                f"{list(COEFFICIENT_COLUMNS)}"
            )
        try:
            values = [[float(x) for x in row] for row in rows[1:] if row]
        except ValueError as exc:
            raise DataError(f"{PUBLISHED_FILE} at {path}: non-numeric entry ({exc})") from exc
        model = cls(np.array(values), source=f"published ensemble ({PUBLISHED_FILE})")
        if model.n_failed:
            raise DataError(f"{PUBLISHED_FILE} at {path}: {model.n_failed} rows are missing")
        return model

    @classmethod
    def fit(
        cls,
        sweeps: pd.DataFrame,
        threshold: float = 0.0025,
        n_boot: int = 1000,
        seed: int | None = 0,
    ) -> BootstrapOLS:
        """Run the paper's bootstrap-OLS recipe on a sweep table.

        Within each setting keep the runs whose loss is within ``threshold`` relative loss of the
        setting's minimum (:func:`bayes_steplaw.datasets.sweeps.near_optimal`, strict ``<``);
        pool the kept runs; draw ``n_boot`` resamples of them with replacement; in each, regress
        ``ln lr`` on ``(ln N, ln D)`` and ``ln batch_tokens`` on ``ln D`` by OLS. All resamples
        are solved at once (batched normal equations), without a Python loop.

        Parameters
        ----------
        sweeps : pandas.DataFrame
            One row per run with columns ``N, D, lr, batch_tokens, loss, setting`` (the
            canonical schema; :func:`bayes_steplaw.load_sweeps` and
            :func:`bayes_steplaw.read_sweeps` produce it). ``N`` is the (total) parameter count.
        threshold : float
            Plateau filter, a relative loss (0.0025 = 0.25%, the paper's).
        n_boot : int
            Number of bootstrap resamples.
        seed : int or None
            Seed of the resampling (``numpy.random.default_rng``).

        Returns
        -------
        BootstrapOLS
            With :attr:`kept`, :attr:`indices`, :attr:`threshold` and :attr:`seed` set.

        Raises
        ------
        SweepValidationError
            A required column is missing (named) or holds non-positive / non-finite values.
        ValueError
            The kept runs cannot identify the law (e.g. all from one ``N`` or one ``D``, or
            ``ln N`` and ``ln D`` collinear), or every resample is singular.

        Warns
        -----
        DegenerateResampleWarning
            Some resamples were singular; their rows are NaN and they are left out of the
            means and intervals (see :attr:`n_failed`).
        """
        from .datasets.sweeps import SweepValidationError, near_optimal

        if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 1:
            raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
        if not hasattr(sweeps, "columns"):
            raise TypeError(f"sweeps must be a pandas DataFrame; got {type(sweeps).__name__}")
        missing = [c for c in SWEEP_COLUMNS if c not in sweeps.columns]
        if missing:
            raise SweepValidationError(
                [
                    f"missing required column {c!r} (BootstrapOLS.fit needs "
                    f"{', '.join(SWEEP_COLUMNS)}); the table has {list(sweeps.columns)}"
                    for c in missing
                ]
            )
        problems = []
        for col in ("N", "D", "lr", "batch_tokens", "loss"):
            try:
                values = np.asarray(sweeps[col], dtype=float)
            except (TypeError, ValueError):
                problems.append(f"column {col!r}: non-numeric values")
                continue
            bad = ~(np.isfinite(values) & (values > 0))
            if bad.any():
                rows = np.flatnonzero(bad)
                shown = ", ".join(str(i) for i in rows[:10])
                more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
                problems.append(
                    f"column {col!r}: values must be positive and finite; rows {shown}{more} "
                    f"are not"
                )
        if sweeps["setting"].isna().any():
            problems.append("column 'setting': missing values")
        if problems:
            raise SweepValidationError(problems)
        if len(sweeps) == 0:
            raise SweepValidationError(["the sweep table has no rows"])

        kept = near_optimal(sweeps, threshold)
        lnN = np.log(kept["N"].to_numpy(dtype=float))
        lnD = np.log(kept["D"].to_numpy(dtype=float))
        X_lr = np.column_stack([lnN, lnD])
        y_lr = np.log(kept["lr"].to_numpy(dtype=float))
        X_bs = lnD[:, None]
        y_bs = np.log(kept["batch_tokens"].to_numpy(dtype=float))
        n = len(kept)

        ones = np.ones((1, n))
        _, ok_lr = weighted_ols(X_lr, y_lr, ones)
        _, ok_bs = weighted_ols(X_bs, y_bs, ones)
        if not (ok_lr[0] and ok_bs[0]):
            raise ValueError(_unidentified(kept, threshold, lr_ok=bool(ok_lr[0])))

        indices = resample_indices(n, n_boot, seed)
        counts = row_counts(indices, n)
        lr_coef, ok1 = weighted_ols(X_lr, y_lr, counts)
        bs_coef, ok2 = weighted_ols(X_bs, y_bs, counts)
        coef = np.concatenate([lr_coef, bs_coef], axis=1)
        failed = ~(ok1 & ok2)
        coef[failed] = np.nan
        if failed.all():
            raise ValueError(
                f"all {n_boot} bootstrap resamples of the {n} kept runs have a singular design; "
                f"the kept runs span too few distinct (N, D) settings to fit the law"
            )
        if failed.any():
            warnings.warn(
                f"{int(failed.sum())} of {n_boot} bootstrap resamples had a singular design "
                f"(too few distinct N or D among the drawn runs); their coefficient rows are NaN "
                f"and they are left out of the means and intervals",
                DegenerateResampleWarning,
                stacklevel=2,
            )
        model = cls(
            coef,
            source=f"refit on {n} kept runs of {len(sweeps)} (threshold {threshold:g}, "
            f"{n_boot} resamples, seed {seed})",
        )
        model.kept = kept
        model.indices = indices
        model.threshold = float(threshold)
        model.seed = seed
        return model

    # ----------------------------------------------------------------- ensemble summaries

    @property
    def coefficients(self) -> pd.DataFrame:
        """One row per resample, columns :data:`COEFFICIENT_COLUMNS` (NaN rows: failed)."""
        import pandas as pd

        frame = pd.DataFrame(self._coef.T.copy(), columns=list(COEFFICIENT_COLUMNS))
        frame.index.name = "resample"
        return frame

    @property
    def n_boot(self) -> int:
        """Number of resamples, failed ones included."""
        return int(self._coef.shape[1])

    @property
    def n_failed(self) -> int:
        """Number of resamples whose design was singular (NaN rows)."""
        return int(self._failed.sum())

    @property
    def failed(self) -> np.ndarray:
        """Boolean mask of the failed (singular) resamples."""
        return self._failed.copy()

    @property
    def n_kept(self) -> int | None:
        """Number of near-optimal runs the refit used (None for the published ensemble)."""
        return None if self.kept is None else len(self.kept)

    def _valid(self) -> np.ndarray:
        """Coefficients of the successful resamples, shape (5, n_valid), rows contiguous."""
        if not self._failed.any():
            return self._coef
        return np.ascontiguousarray(self._coef[:, ~self._failed])

    def mean_coefficients(self) -> dict[str, float]:
        """Mean of each coefficient over the successful resamples (the paper's point law).

        Each column is averaged as a contiguous 1-D array, which sums in the same order as
        pandas' ``Series.mean()`` in the upstream tool, so the result is bit-identical to it.
        """
        valid = self._valid()
        return {name: float(valid[j].mean()) for j, name in enumerate(COEFFICIENT_COLUMNS)}

    def table2(self) -> dict[str, float]:
        """The five constants of the paper's Table 2 from this ensemble.

        Returns
        -------
        dict
            ``lr_coef`` = exp(mean ``lr_intercept``), ``alpha`` = mean ``lr_coefN``,
            ``beta`` = mean ``lr_coefD``, ``bs_coef`` = exp(mean ``bs_intercept``) (tokens),
            ``gamma`` = mean ``bs_coefD``.
        """
        m = self.mean_coefficients()
        return {
            "lr_coef": math.exp(m["lr_intercept"]),
            "alpha": m["lr_coefN"],
            "beta": m["lr_coefD"],
            "bs_coef": math.exp(m["bs_intercept"]),
            "gamma": m["bs_coefD"],
        }

    def __repr__(self) -> str:
        t = self.table2()
        failed = f", {self.n_failed} failed" if self.n_failed else ""
        return (
            f"BootstrapOLS({self.source}; {self.n_boot} resamples{failed}; "
            f"lr = {t['lr_coef']:.4g} N^{t['alpha']:.4g} D^{t['beta']:.4g}, "
            f"bs = {t['bs_coef']:.4g} D^{t['gamma']:.4g} tokens)"
        )

    # ----------------------------------------------------------------- prediction

    def _mean_law(self, lnN: np.ndarray, lnD: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ln lr and ln batch_tokens of the mean-coefficient law.

        The operations and their order are those of scikit-learn's ``LinearRegression.predict``
        on one row in the upstream tool (``x @ coef + intercept``), so results agree bit for bit.
        """
        m = self.mean_coefficients()
        log_lr = (lnN * m["lr_coefN"] + lnD * m["lr_coefD"]) + m["lr_intercept"]
        log_bs = lnD * m["bs_coefD"] + m["bs_intercept"]
        return log_lr, log_bs

    def upstream_line(self, N: float, D: float, seq_len: int) -> str:
        """The exact text the upstream ``fit_tool.py pred-opt-lr-bs N D seq_len`` prints.

        That tool prints ``DataFrame.to_csv(sep=" ", index=False)`` through ``print()``: the
        header ``N D seq_len lr bs bs_in_sample``, one line of values (``N`` and ``D`` as
        floats, ``lr`` as ``%.3e``, ``bs`` the batch size in tokens, ``bs_in_sample`` =
        ``bs / seq_len``) and the newline ``print()`` adds. This builds the same text without
        pandas.

        Parameters
        ----------
        N : float
            Non-embedding parameters.
        D : float
            Training tokens.
        seq_len : int
            Sequence length in tokens (a positive integer, as upstream).

        Returns
        -------
        str
            Two lines, each ended by the platform line separator, then ``"\\n"``.

        Examples
        --------
        >>> print(BootstrapOLS.from_published().upstream_line(7e9, 1.4e12, 2048), end="")
        ... # doctest: +SKIP
        N D seq_len lr bs bs_in_sample
        7000000000.0 1400000000000.0 2048 9.347e-04 ...
        """
        n_val = scalar(N, "N")
        d_val = scalar(D, "D")
        seq = check_seq_len(seq_len)
        # one-element arrays, as the upstream Series: the same numpy log/exp loops
        log_lr, log_bs = self._mean_law(np.log(np.array([n_val])), np.log(np.array([d_val])))
        lr = float(np.exp(log_lr)[0])
        bs = float(np.exp(log_bs)[0])
        # pandas writes float columns with repr() (shortest round-trip), ints with str()
        values = [repr(n_val), repr(d_val), str(seq), f"{lr:.3e}", repr(bs), repr(bs / seq)]
        return f"{_UPSTREAM_HEADER}{os.linesep}{' '.join(values)}{os.linesep}\n"

    def predict(self, N: Any, D: Any, seq_len: Any = 2048, prob: float = 0.9) -> pd.DataFrame:
        """Optimal peak learning rate and batch size, with percentile intervals.

        Parameters
        ----------
        N, D : float or array_like
            Non-embedding parameters and training tokens; broadcast against each other and
            ``seq_len``.
        seq_len : float or array_like
            Sequence length in tokens (only converts tokens to sequences).
        prob : float
            Mass of the central percentile interval, in (0, 1).

        Returns
        -------
        pandas.DataFrame
            One row per broadcast point, columns ``N, D, seq_len``, then ``lr``,
            ``batch_tokens`` and ``batch_sequences``, each with ``_lower`` / ``_upper``. The
            point values are the mean-coefficient law (the paper's, identical to the upstream
            tool); the bounds are the ``(1 - prob) / 2`` and ``(1 + prob) / 2`` percentiles of
            the successful resamples' predictions (linear interpolation on the log scale).
        """
        import pandas as pd

        p = check_prob(prob)
        n_arr, d_arr, s_arr = (
            positive_array(v, name) for v, name in ((N, "N"), (D, "D"), (seq_len, "seq_len"))
        )
        try:
            n_arr, d_arr, s_arr = (a.ravel() for a in np.broadcast_arrays(n_arr, d_arr, s_arr))
        except ValueError:
            raise ValueError(
                f"N, D and seq_len cannot be broadcast together; shapes {np.shape(N)}, "
                f"{np.shape(D)}, {np.shape(seq_len)}"
            ) from None
        lnN, lnD = np.log(n_arr), np.log(d_arr)
        log_lr, log_bs = self._mean_law(lnN, lnD)
        lr_band, bs_band = self._bands(lnN, lnD, p)
        tokens = np.exp(log_bs)
        tokens_band = np.exp(bs_band)
        integral = bool(np.all(s_arr == np.floor(s_arr)) and np.all(s_arr < 2.0**53))
        seq_col = s_arr.astype(np.int64) if integral else s_arr
        return pd.DataFrame(
            {
                "N": n_arr,
                "D": d_arr,
                "seq_len": seq_col,
                "lr": np.exp(log_lr),
                "lr_lower": np.exp(lr_band[0]),
                "lr_upper": np.exp(lr_band[1]),
                "batch_tokens": tokens,
                "batch_tokens_lower": tokens_band[0],
                "batch_tokens_upper": tokens_band[1],
                "batch_sequences": tokens / s_arr,
                "batch_sequences_lower": tokens_band[0] / s_arr,
                "batch_sequences_upper": tokens_band[1] / s_arr,
            },
            columns=list(PREDICT_COLUMNS),
        )

    def _bands(
        self, lnN: np.ndarray, lnD: np.ndarray, prob: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Percentiles of ln lr and ln batch_tokens over the resamples, each (2, n_points)."""
        c = self._valid()
        q = [(1 - prob) / 2, (1 + prob) / 2]
        n_points, k = lnN.size, c.shape[1]
        lr_band = np.empty((2, n_points))
        bs_band = np.empty((2, n_points))
        step = max(1, _CHUNK_CELLS // k)
        for start in range(0, n_points, step):  # bounds memory; loops over points, not resamples
            sl = slice(start, start + step)
            a, b = lnN[sl, None], lnD[sl, None]
            lr_band[:, sl] = np.quantile(c[0] + a * c[1] + b * c[2], q, axis=1)
            bs_band[:, sl] = np.quantile(c[3] + b * c[4], q, axis=1)
        return lr_band, bs_band


def _unidentified(kept: pd.DataFrame, threshold: float, lr_ok: bool) -> str:
    """Why the kept runs cannot identify the law, in words."""
    n_N, n_D = kept["N"].nunique(), kept["D"].nunique()
    n_set = kept[["N", "D"]].drop_duplicates().shape[0]
    head = (
        f"the {len(kept)} runs kept by the plateau filter (threshold {threshold:g}) cannot "
        f"identify the law: "
    )
    if n_D < 2:
        return head + f"they all have the same D ({kept['D'].iloc[0]:.4g}), so no D exponent"
    if not lr_ok and n_N < 2:
        return head + (
            f"they all have the same N ({kept['N'].iloc[0]:.4g}), so no N exponent for the lr law "
            f"(for MoE sweeps with one total N, fit a shared exponent with group offsets instead)"
        )
    return head + (
        f"ln N and ln D are collinear among them ({n_set} distinct (N, D) settings, {n_N} N "
        f"values, {n_D} D values); vary N and D independently"
    )


def reproduction_table(published: BootstrapOLS, refit: BootstrapOLS) -> pd.DataFrame:
    """The paper's Table 2 beside the published ensemble's mean and a refit.

    Parameters
    ----------
    published : BootstrapOLS
        The published ensemble (:meth:`BootstrapOLS.from_published`).
    refit : BootstrapOLS
        A refit on the released dense sweeps (:meth:`BootstrapOLS.fit` on
        ``load_sweeps("dense")``).

    Returns
    -------
    pandas.DataFrame
        Indexed by :data:`CONSTANTS` (``lr_coef`` = exp(mean lr intercept), ``alpha``,
        ``beta``, ``bs_coef`` = exp(mean bs intercept), ``gamma``), with columns
        ``paper_table2``, ``published_ensemble_mean`` and ``refit_released_dense``. The
        published ensemble's mean agrees with the paper's constants to the digits printed (the
        paper's 1.79 is 1.797 truncated); the refit differs because the paper's fit also used
        runs that were not released.
    """
    import pandas as pd

    for name, model in (("published", published), ("refit", refit)):
        if not isinstance(model, BootstrapOLS):
            raise TypeError(f"{name} must be a BootstrapOLS; got {type(model).__name__}")
    columns: Mapping[str, Mapping[str, float]] = {
        "paper_table2": PAPER_TABLE2,
        "published_ensemble_mean": published.table2(),
        "refit_released_dense": refit.table2(),
    }
    table = pd.DataFrame({k: [v[c] for c in CONSTANTS] for k, v in columns.items()})
    table.index = pd.Index(list(CONSTANTS), name="constant")
    return table
