"""The answers a posterior with a bowl gives about a new run: plateau probabilities, excess
loss, the plateau region and the Bayes decision, and their result types.

:class:`PlateauAnswers` is mixed into a posterior class that provides ``bowl(N, D, group,
seed)`` (per-draw geometry at one setting, see :mod:`bayes_steplaw.bayes.bowl`), ``gate`` and
``n_samples``. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .._validate import (
    DEFAULT_PROB,
    DEFAULT_SEQ_LEN,
    DEFAULT_TOL,
    broadcast,
    check_choice,
    check_count,
    check_prob,
    check_seq_len,
    check_tol,
    legacy_positional,
    positive_array,
    renamed,
)
from .bowl import (
    SWEEP_GRID,
    bayes_decision,
    plateau_counts,
    predictive_thresholds,
    quadratic,
    sweep_best_excess,
)


def check_sweep_grid(grid) -> tuple[float, float, int, int]:
    """A sweep grid: two steps (ratios > 1) and two counts (>= 1)."""
    try:
        lr_step, bs_step, n_lr, n_bs = grid
    except (TypeError, ValueError):
        raise ValueError(
            f"sweep_grid must be (lr step, batch step, number of lr values, number of batch "
            f"values), e.g. {SWEEP_GRID}; got {grid!r}"
        ) from None
    for name, step in (("lr step", lr_step), ("batch step", bs_step)):
        if not (isinstance(step, (int, float)) and np.isfinite(step) and step > 1):
            raise ValueError(f"sweep_grid's {name} must be a ratio > 1; got {step!r}")
    return (
        float(lr_step), float(bs_step), check_count(n_lr, "sweep_grid's number of lr values"),
        check_count(n_bs, "sweep_grid's number of batch values"),
    )  # fmt: skip


REFERENCES = ("optimum", "sweep")
"""What a plateau probability's tolerance is relative to (see
:meth:`PlateauAnswers.plateau_probability`)."""


@dataclass
class ExcessLoss:
    """Draws of the relative excess loss ``loss / L* − 1`` of a new run at a set of settings.

    ``draws`` has shape ``shape + (samples,)``; the helpers reduce the last axis.
    """

    draws: np.ndarray
    lr: np.ndarray
    batch_tokens: np.ndarray
    predictive: bool

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the (broadcast) inputs."""
        return self.draws.shape[:-1]

    def mean(self) -> np.ndarray:
        """Posterior (predictive) expected relative loss."""
        return self.draws.mean(axis=-1)

    def median(self) -> np.ndarray:
        """Posterior (predictive) median relative loss."""
        return np.median(self.draws, axis=-1)

    def quantile(self, q) -> np.ndarray:
        """Quantiles, with the quantile axis first (as :func:`numpy.quantile`)."""
        return np.quantile(self.draws, q, axis=-1)

    def interval(self, prob: float = DEFAULT_PROB) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed ``prob`` interval: (lower, upper)."""
        prob = check_prob(prob)
        lo, hi = np.quantile(self.draws, [(1 - prob) / 2, (1 + prob) / 2], axis=-1)
        return lo, hi

    def prob_within(self, tol: float = DEFAULT_TOL) -> np.ndarray:
        """Fraction of draws with relative loss <= ``tol``."""
        return (self.draws <= check_tol(tol)).mean(axis=-1)

    def to_dataframe(self, prob: float = DEFAULT_PROB, tol: float = DEFAULT_TOL) -> pd.DataFrame:
        """One row per input: lr, batch, mean, median, interval and P(<= tol)."""
        lo, hi = self.interval(prob)
        return pd.DataFrame(
            {
                "lr": np.broadcast_to(self.lr, self.shape).ravel(),
                "batch_tokens": np.broadcast_to(self.batch_tokens, self.shape).ravel(),
                "mean": self.mean().ravel(),
                "median": self.median().ravel(),
                "lower": lo.ravel(),
                "upper": hi.ravel(),
                f"prob_within_{tol:g}": self.prob_within(tol).ravel(),
            }
        )


@dataclass
class PlateauRegion:
    """The (lr, batch) settings whose plateau probability is at least ``min_prob``.

    ``probability[i, j]`` is the plateau probability at ``batch_tokens[i]``, ``lr[j]``;
    ``bounds`` gives, per batch size, the smallest and largest grid lr inside the region
    (NaN where none is).
    """

    N: float
    D: float
    group: str
    tol: float
    min_prob: float
    lr: np.ndarray
    batch_tokens: np.ndarray
    probability: np.ndarray
    bounds: pd.DataFrame = field(repr=False)

    @property
    def prob(self) -> float:
        """Old name of :attr:`min_prob`."""
        return self.min_prob

    @property
    def inside(self) -> np.ndarray:
        """Boolean grid: plateau probability >= ``min_prob``."""
        return self.probability >= self.min_prob

    @property
    def empty(self) -> bool:
        """Whether no grid point reaches ``min_prob``."""
        return not self.inside.any()


_REC_FIELDS = (
    "N", "D", "lr", "batch_tokens", "batch_sequences", "expected_relative_loss",
    "plateau_probability", "lr_median_optimum", "batch_tokens_median_optimum",
)  # fmt: skip


@dataclass
class Recommendation:
    """The Bayes decision: the (lr, batch) of least expected relative loss, per setting.

    Numeric fields have the broadcast shape of the inputs (numpy scalars for one setting).
    """

    N: Any
    D: Any
    group: str
    lr: Any
    batch_tokens: Any
    batch_sequences: Any
    fixed_batch: bool
    expected_relative_loss: Any
    plateau_probability: Any
    tol: float
    lr_median_optimum: Any
    batch_tokens_median_optimum: Any

    def to_dataframe(self) -> pd.DataFrame:
        """One row per setting."""
        frame = pd.DataFrame({k: np.ravel(getattr(self, k)) for k in _REC_FIELDS})
        frame.insert(2, "group", self.group)
        return frame.assign(fixed_batch=self.fixed_batch, tol=self.tol)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (lists for several settings)."""

        def plain(v):
            v = np.asarray(v)
            return v.item() if v.ndim == 0 else v.tolist()

        out = {k: plain(getattr(self, k)) if k in _REC_FIELDS else v for k, v in vars(self).items()}
        return out | {"fixed_batch": bool(self.fixed_batch)}


class PlateauAnswers:
    """Where a new run lands on the bowl, for any posterior with a per-draw :meth:`bowl`.

    Mixed into a posterior class that provides ``bowl(N, D, group, seed)`` (per-draw geometry
    at one setting: ``m_lr, m_bs, a, b, h, k, sigma0, sigma1, nu``), ``gate`` and
    ``n_samples``. Every method takes ``(N, D[, lr, batch_tokens])`` broadcast together and a
    keyword ``group`` (``"dense"``, ``"moe/1in8"``, ..., ``"new"``).
    """

    def _settings(self, named: dict) -> tuple[tuple[np.ndarray, ...], tuple, list]:
        """Broadcast ``named`` (N and D first), flatten, and group the points by setting.

        Returns the flat arrays, the broadcast shape and ``[(index, N, D), ...]`` per distinct
        (N, D) (one geometry per setting keeps memory at one float per point and draw).
        """
        arrays, shape = broadcast(named)
        flat = tuple(a.ravel() for a in arrays)
        pairs, inverse = np.unique(np.stack(flat[:2], axis=1), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        return flat, shape, [(np.flatnonzero(inverse == i), n, d) for i, (n, d) in enumerate(pairs)]

    # ------------------------------------------------------------------ public API

    def plateau_probability(
        self,
        N: ArrayLike,
        D: ArrayLike,
        lr: ArrayLike,
        batch_tokens: ArrayLike,
        *args,
        tol: float | None = None,
        group: str | None = None,
        predictive: bool | None = None,
        reference: str = "optimum",
        sweep_grid: tuple = SWEEP_GRID,
        seed: int = 0,
        allow_unconverged: bool = False,
    ):
        """Posterior probability that a new run at (lr, batch) finishes on the plateau.

        Two events, named by ``reference``:

        * ``"optimum"`` (default): the run's final smoothed loss is at most ``(1 + tol)·L*``,
          where ``L*`` is the best loss attainable at this setting (the bottom of its bowl,
          without run noise). With ``predictive=False`` this is P(q(x, y) <= tol): the run's
          *expected* loss lies within ``tol`` of the best, integrating the uncertainty of
          where the optimum is (law and setting scatter) and of the bowl's shape. With
          ``predictive=True`` the run's own noise ``(σ0 + σ1·q)·t_ν`` is added, so the event
          is about the loss the run will actually report (Monte Carlo: one noise draw per
          posterior draw). It does not depend on how many other runs one makes.
        * ``"sweep"``: the run's reported loss is at most ``(1 + tol)`` times the best loss of
          a grid sweep at this setting (``sweep_grid``: lr and batch steps and the number of
          values, centred on the optimum) — the paper's relative loss, what a user who sweeps
          can check. The sweep's best run lies below ``L*`` by the luck of the best of many
          noisy runs, so this event is rarer; run noise is always included.

        Parameters
        ----------
        N, D, lr, batch_tokens : float or array-like
            Settings (non-embedding parameters, training tokens) and runs (peak learning
            rate, batch size in tokens); all four broadcast together.
        tol : float
            Relative-loss tolerance (default :data:`DEFAULT_TOL`, the paper's 0.25%).
        group : str
            Group name (see :attr:`groups_seen`) or ``"new"``; default ``"dense"``.
        predictive : bool
            Include run-to-run loss noise (default False; always with ``"sweep"``).
        reference : {"optimum", "sweep"}
            What the tolerance is relative to (above).
        sweep_grid : (float, float, int, int)
            With ``reference="sweep"``: the sweep's lr step, batch step, number of lr values
            and of batch values (default √2, 2, 11, 7).
        seed : int
            Seed of the setting-scatter (and noise) draws.
        allow_unconverged : bool
            Use a posterior that failed its convergence gate.

        Returns
        -------
        numpy.ndarray or numpy.float64
            Probability with the broadcast shape of the inputs (a scalar for scalars).
        """
        opts = legacy_positional(
            "plateau_probability", args, {"tol": tol, "group": group, "predictive": predictive},
            {"tol": DEFAULT_TOL, "group": "dense", "predictive": False},
        )  # fmt: skip
        tol, group, predictive = check_tol(opts["tol"]), opts["group"], bool(opts["predictive"])
        check_choice(reference, "reference", REFERENCES)
        self.gate(allow_unconverged)
        (_, _, lr_flat, bs_flat), shape, settings = self._settings(
            {"N": N, "D": D, "lr": lr, "batch_tokens": batch_tokens}
        )
        counts = np.empty(lr_flat.size, dtype=np.int64)
        for index, n_, d_ in settings:
            g = self.bowl(n_, d_, group, seed)
            if reference == "sweep":
                # within tol of the sweep's best: relative to L*, (1 + tol)(1 + best) − 1
                best = sweep_best_excess(g, seed, check_sweep_grid(sweep_grid))
                t = predictive_thresholds(g, (1 + tol) * (1 + best) - 1, True, seed)
            else:
                t = predictive_thresholds(g, tol, predictive, seed)
            counts[index] = plateau_counts(g, t, np.log(lr_flat[index]), np.log(bs_flat[index]))
        return (counts / self.n_samples).reshape(shape)[()]

    def relative_loss(
        self,
        N: ArrayLike,
        D: ArrayLike,
        lr: ArrayLike,
        batch_tokens: ArrayLike,
        *args,
        group: str | None = None,
        predictive: bool | None = None,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> ExcessLoss:
        """Draws of the relative excess loss ``loss / L* − 1`` of a new run at (lr, batch).

        Without ``predictive`` the draws are q(x, y), the run's expected excess; with it, one
        noise draw ``(σ0 + σ1·q)·t_ν`` per (input, draw) is added. All four inputs broadcast;
        memory: one float per input and posterior draw.
        """
        opts = legacy_positional(
            "relative_loss", args, {"group": group, "predictive": predictive},
            {"group": "dense", "predictive": False},
        )  # fmt: skip
        group, predictive = opts["group"], bool(opts["predictive"])
        self.gate(allow_unconverged)
        (_, _, lr_flat, bs_flat), shape, settings = self._settings(
            {"N": N, "D": D, "lr": lr, "batch_tokens": batch_tokens}
        )
        q = np.empty((lr_flat.size, self.n_samples))
        for index, n_, d_ in settings:
            g = self.bowl(n_, d_, group, seed)
            x = np.log(lr_flat[index])[:, None] - g["m_lr"]
            y = np.log(bs_flat[index])[:, None] - g["m_bs"]
            q[index] = quadratic(x, y, g["a"], g["b"], g["h"], g["k"])
            if predictive:
                rng = np.random.default_rng([seed, 2])
                noise = rng.standard_t(g["nu"], size=(index.size, self.n_samples))
                q[index] += (g["sigma0"] + g["sigma1"] * q[index]) * noise
        lr_b, bs_b = (a.reshape(shape) for a in (lr_flat, bs_flat))
        return ExcessLoss(q.reshape(*shape, self.n_samples), lr_b, bs_b, predictive)

    def plateau_region(
        self,
        N: ArrayLike,
        D: ArrayLike,
        *args,
        tol: float | None = None,
        min_prob: float | None = None,
        group: str | None = None,
        lr=None,
        batch_tokens=None,
        n_grid: int = 121,
        predictive: bool = False,
        seed: int = 0,
        allow_unconverged: bool = False,
        prob: float | None = None,
    ) -> PlateauRegion:
        """The (lr, batch) settings at one (N, D) whose plateau probability is >= ``min_prob``.

        Parameters
        ----------
        N, D : float
            One setting (a region is a grid per setting).
        tol : float
            Relative-loss tolerance of the plateau (default :data:`DEFAULT_TOL`).
        min_prob : float
            Probability threshold of the region (default 0.9). (``prob=`` is its old name.)
        lr, batch_tokens : array-like, optional
            Grid axes; default ``n_grid`` log-spaced values covering the posterior median
            optimum ×/÷ e^2.5 in lr and e^3 in batch.
        Other parameters as in :meth:`plateau_probability`.
        """
        if prob is not None:
            min_prob = renamed("plateau_region", "prob", "min_prob", prob)
        opts = legacy_positional(
            "plateau_region", args, {"tol": tol, "min_prob": min_prob, "group": group},
            {"tol": DEFAULT_TOL, "min_prob": DEFAULT_PROB, "group": "dense"},
        )  # fmt: skip
        tol, group = check_tol(opts["tol"]), opts["group"]
        min_prob = check_prob(opts["min_prob"], "prob" if prob is not None else "min_prob")
        check_count(n_grid, "n_grid", minimum=2)
        self.gate(allow_unconverged)
        g = self.bowl(N, D, group, seed)
        if lr is None:
            centre = np.median(g["m_lr"])
            lr = np.exp(np.linspace(centre - 2.5, centre + 2.5, n_grid))
        if batch_tokens is None:
            centre = np.median(g["m_bs"])
            batch_tokens = np.exp(np.linspace(centre - 3.0, centre + 3.0, n_grid))
        lr = np.sort(positive_array(lr, "lr").ravel())
        batch_tokens = np.sort(positive_array(batch_tokens, "batch_tokens").ravel())
        p = self.plateau_probability(
            N, D, lr[None, :], batch_tokens[:, None], tol=tol, group=group,
            predictive=predictive, seed=seed, allow_unconverged=True,
        )  # fmt: skip
        inside = p >= min_prob
        lr_grid = np.broadcast_to(lr, p.shape)
        bounds = pd.DataFrame(
            {
                "batch_tokens": batch_tokens,
                "lr_min": np.where(inside, lr_grid, np.inf).min(axis=1),
                "lr_max": np.where(inside, lr_grid, -np.inf).max(axis=1),
                "max_probability": p.max(axis=1),
            }
        )
        bounds.loc[~inside.any(axis=1), ["lr_min", "lr_max"]] = np.nan
        return PlateauRegion(
            float(N), float(D), group, float(tol), min_prob, lr, batch_tokens, p, bounds
        )

    def expected_relative_loss(
        self,
        N: ArrayLike,
        D: ArrayLike,
        lr: ArrayLike,
        batch_tokens: ArrayLike,
        *args,
        group: str | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """Posterior expected q at (lr, batch): the loss the Bayes decision minimises."""
        group = legacy_positional(
            "expected_relative_loss", args, {"group": group}, {"group": "dense"}
        )["group"]
        return self.relative_loss(
            N, D, lr, batch_tokens, group=group, seed=seed, allow_unconverged=True
        ).mean()

    def recommend(
        self,
        N: ArrayLike,
        D: ArrayLike,
        *args,
        batch_tokens: ArrayLike | None = None,
        group: str | None = None,
        tol: float | None = None,
        seq_len: int | None = None,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> Recommendation:
        """The (lr, batch) of least posterior expected relative loss (the Bayes decision).

        E[q] is convex (a mixture of convex bowls), so a quasi-Newton search from the
        posterior median optimum finds its minimum. The asymmetry moves the decision off the
        median optimum: where the high-lr side is steeper, the risk of overshooting costs
        more than undershooting, and the decision shades lr down.

        Parameters
        ----------
        N, D : float or array-like
            Settings; broadcast together (and with ``batch_tokens``).
        batch_tokens : float or array-like, optional
            Fix the batch size (e.g. set by hardware) and choose the best lr for it.
        tol : float
            Tolerance of the reported plateau probability.
        seq_len : int
            Sequence length, to express the batch in sequences.
        """
        opts = legacy_positional(
            "recommend", args,
            {"batch_tokens": batch_tokens, "group": group, "tol": tol, "seq_len": seq_len},
            {"group": "dense", "tol": DEFAULT_TOL, "seq_len": DEFAULT_SEQ_LEN},
        )  # fmt: skip
        batch_tokens, group = opts["batch_tokens"], opts["group"]
        tol, seq_len = check_tol(opts["tol"]), check_seq_len(opts["seq_len"])
        self.gate(allow_unconverged)
        fixed = batch_tokens is not None
        named = {"N": N, "D": D} | ({"batch_tokens": batch_tokens} if fixed else {})
        arrays, shape = broadcast(named)
        points = np.stack([a.ravel() for a in arrays], axis=1)
        rows = np.array(
            [
                bayes_decision(self.bowl(p[0], p[1], group, seed), p[2] if fixed else None)
                for p in points
            ]
        )
        lr, bs, risk, m_lr, m_bs = (rows[:, i].reshape(shape) for i in range(5))
        p = self.plateau_probability(
            arrays[0], arrays[1], lr, bs, tol=tol, group=group, seed=seed, allow_unconverged=True
        )
        return Recommendation(
            N=arrays[0][()], D=arrays[1][()], group=group, lr=lr[()], batch_tokens=bs[()],
            batch_sequences=(bs / seq_len)[()], fixed_batch=fixed,
            expected_relative_loss=risk[()], plateau_probability=p, tol=tol,
            lr_median_optimum=m_lr[()], batch_tokens_median_optimum=m_bs[()],
        )  # fmt: skip
