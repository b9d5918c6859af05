"""Plan calibration runs: the few small runs of your own setup that most improve the lr and
batch you will choose at a large target (Bayesian experimental design over the posterior).

At the target (N, D) of a group, the Bayes decision (:func:`bayes_steplaw.bayes.answers.
decide`) is the (lr, batch) of least posterior expected loss; its *expected excess* is the
posterior mean of its expected loss relative to each draw's L*, minus 1 (a diverged run counted
at 1.5·L*). Small runs, once observed, move the posterior and so the decision. Their value is
found by preposterior analysis, reweighting the posterior's own draws: take a draw as the
truth, simulate what the runs report under it (divergence, else a loss with run noise), weight
every other draw by the likelihood of those outcomes (divergence log-odds and
:func:`~bayes_steplaw.bayes.surface.run_logpdf`), take the Bayes decision under the weights,
score its excess under the truth, and average over truths.

Candidates are small settings of the group (N at most 1/10 of the target's, compute 6ND at most
1%) with a grid of lrs (steps of √2) and batches (steps of 2) around each one's predicted
optimum. Runs are chosen greedily (as :func:`bayes_steplaw.plan_sweep` chooses a sweep's): one
more run at a setting the plan has, or a new setting's first two runs. The plan is scored on
fresh simulations against no runs and against the naive plan (one grid sweep of as many runs
at the largest candidate setting), with a paired bootstrap interval.

Each setting (every candidate setting, and the target) draws its own scatter around the law on
one surface that shares everything else of the draw (the group's offsets, its lab's exponents,
its shape; a new group's draws included): the small runs teach what the target shares with
them, never its own setting effect (one realisation per draw: a pseudo-marginal likelihood).
Each setting's loss level is integrated out (flat prior on its log; Laplace's method with the
model's Student-t run noise; ``likelihood="relative"``): a run pins the level to its run noise,
far tighter than the draws agree on it, and the model's full likelihood (``"full"``) then
puts the weight on the one or two draws whose level happens to match, a level that says next to
nothing about the lr and batch to choose. The runs' losses relative to one another weigh the
draws, so a setting enters a plan with two runs.

When the effective sample size of the weights (``1 / Σ w²``) collapses, the weighted decision
rests on a few draws and understates what the runs teach; the plan warns, and a refit with
simulated runs is the honest check. Pure numpy on the posterior's draws.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._validate import (
    DEFAULT_PROB,
    check_choice,
    check_count,
    check_plausible,
    check_prob,
    check_seq_len,
    scalar,
)
from .api import PosteriorLike, check_group, resolve_posterior
from .bayes.answers import DIVERGED_EXCESS, Surface
from .bayes.surface import log_sigmoid, run_logpdf, sigmoid

MAX_N_FRACTION = 0.1
"""A candidate's N is at most this fraction of the target's (10x below)."""
MAX_COMPUTE_FRACTION = 0.01
"""A candidate's compute 6ND is at most this fraction of the target's."""
DEFAULT_FRACTIONS = (1 / 10, 1 / 30, 1 / 100)
"""Default candidate settings: N and D each this fraction of the target's (every pair)."""
LR_STEPS = (-2, -1, 0, 1, 2)
"""Default candidate lrs: these powers of √2 around a setting's predicted optimum."""
BATCH_STEPS = (-1, 0, 1)
"""Default candidate batches: these powers of 2 around a setting's predicted optimum."""
LR_STEP, BATCH_STEP = math.log(2) / 2, math.log(2)
DECISION_STEPS = (math.log(2) / 8, math.log(2) / 4)
"""Grid of the decision at the target (ln lr, ln batch): 1/8 and 1/4 octave."""
MIN_ESS = 20.0
"""Median effective sample size of the weights below which the plan warns."""
IRLS_STEPS, BOOTSTRAP = 3, 2000
_CELLS = 1 << 22  # (candidates x truths x draws) of log-likelihood computed at once


class CalibrationWarning(UserWarning):
    """The reweighting that scores a calibration plan rests on few posterior draws."""


@dataclass
class CalibrationPlan:
    """K small runs of a group's own setup, chosen to improve the decision at a target.

    ``runs`` has one row per run, in the order the greedy search chose them: ``N``, ``D``,
    ``lr``, ``batch_tokens``, ``batch_sequences``, ``compute_fraction`` (its 6ND over the
    target's) and ``expected_excess_after``: the expected excess at the target after this run
    and those before it (scored on fresh simulations). ``naive`` lists the naive plan's runs.
    Scalars: ``expected_excess_before`` (no runs), ``expected_excess_after`` (the plan),
    ``expected_excess_naive`` (the naive plan), each the posterior expected relative excess
    loss of the Bayes decision at the target; ``difference`` (plan minus naive) and
    ``improvement`` (before minus plan), each ``(mean, lower, upper)`` with a paired bootstrap
    interval over the simulated truths; ``ess`` (median, 10% quantile and minimum of the
    weights' effective sample size under the plan, of ``n_draws``); ``per_truth``, one row per
    simulated truth (``draw``, the excess ``before``, ``after`` and ``naive``, ``ess``), for
    pooling comparisons over several plans.
    """

    N: float
    D: float
    group: str
    budget: int
    seq_len: int
    runs: pd.DataFrame
    naive: pd.DataFrame
    expected_excess_before: float
    expected_excess_after: float
    expected_excess_naive: float
    difference: tuple[float, float, float]
    improvement: tuple[float, float, float]
    prob: float
    ess: dict
    n_draws: int
    n_truths: int
    n_candidates: int
    notes: list[str]
    per_truth: pd.DataFrame | None = None

    def to_dataframe(self) -> pd.DataFrame:
        """The runs with the target's N, D and group in front."""
        front = pd.DataFrame({"run": np.arange(1, len(self.runs) + 1), "target_N": self.N,
                              "target_D": self.D, "group": self.group})  # fmt: skip
        return pd.concat([front, self.runs.reset_index(drop=True)], axis=1)

    def summary(self) -> dict:
        """The plan's scalars, JSON-ready."""
        return {
            "N": self.N, "D": self.D, "group": self.group, "budget": self.budget,
            "expected_excess_before": self.expected_excess_before,
            "expected_excess_after": self.expected_excess_after,
            "expected_excess_naive": self.expected_excess_naive,
            "difference_vs_naive": dict(zip(("mean", "lower", "upper"), self.difference)),
            "improvement_vs_before": dict(zip(("mean", "lower", "upper"), self.improvement)),
            "prob": self.prob, "ess": self.ess, "n_draws": self.n_draws,
            "n_truths": self.n_truths, "n_candidates": self.n_candidates, "notes": self.notes,
        }  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"CalibrationPlan(N={self.N:.4g}, D={self.D:.4g}, group={self.group!r}, "
            f"budget={self.budget}, expected_excess_before={self.expected_excess_before:.4%}, "
            f"expected_excess_after={self.expected_excess_after:.4%}, "
            f"expected_excess_naive={self.expected_excess_naive:.4%}, "
            f"ess_median={self.ess['median']:.0f} of {self.n_draws})"
        )


# --------------------------------------------------------------------------- candidates


def default_settings(N: float, D: float) -> pd.DataFrame:
    """The default candidate settings: N and D each 1/10, 1/30 or 1/100 of the target's."""
    pairs = [(N * a, D * b) for a in DEFAULT_FRACTIONS for b in DEFAULT_FRACTIONS]
    return pd.DataFrame(pairs, columns=["N", "D"])


def _candidate_table(candidates, N: float, D: float, base: Surface, seq_len: int):
    """Candidate runs (N, D, ln lr, ln batch, batch_sequences, setting index), checked."""
    if candidates is None:
        candidates = default_settings(N, D)
    if not isinstance(candidates, pd.DataFrame):
        raise ValueError(
            f"candidates must be a DataFrame with columns N and D (settings; an lr x batch "
            f"grid is built around each) or N, D, lr and batch_tokens or batch_sequences "
            f"(runs); got {type(candidates).__name__}"
        )
    frame = candidates.reset_index(drop=True).copy()
    missing = [c for c in ("N", "D") if c not in frame]
    if missing:
        raise ValueError(f"candidates lack column(s) {missing}; they have {list(frame.columns)}")
    if "batch_tokens" not in frame and "batch_sequences" in frame:
        frame["batch_tokens"] = frame["batch_sequences"] * seq_len
    given = [c for c in ("lr", "batch_tokens") if c in frame]
    if len(given) == 1:
        raise ValueError("candidates give lr without a batch (or a batch without lr): give "
                         "both, or neither to have a grid built around each setting")  # fmt: skip
    for col in ["N", "D", *given]:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(float)
        if not (np.isfinite(values) & (values > 0)).all():
            raise ValueError(f"candidates' column {col!r} must hold positive finite numbers")
        frame[col] = values
    if frame.empty:
        raise ValueError("candidates is empty")
    big_n = frame["N"] > MAX_N_FRACTION * N * (1 + 1e-9)
    big_c = frame["N"] * frame["D"] > MAX_COMPUTE_FRACTION * N * D * (1 + 1e-9)
    if (big_n | big_c).any():
        rows = np.flatnonzero((big_n | big_c).to_numpy())[:10].tolist()
        raise ValueError(
            f"candidate rows {rows} are not small runs: a calibration run has N at most "
            f"{MAX_N_FRACTION:g} x the target's ({MAX_N_FRACTION * N:.4g}) and compute 6ND at "
            f"most {MAX_COMPUTE_FRACTION:g} x the target's"
        )
    settings = frame[["N", "D"]].drop_duplicates().reset_index(drop=True)
    rows = []
    for s, (n, d) in enumerate(settings.itertuples(index=False)):
        mine = frame[(frame["N"] == n) & (frame["D"] == d)]
        if given:
            for lr, bs in zip(mine["lr"], mine["batch_tokens"]):
                rows.append((n, d, math.log(lr), math.log(bs), bs / seq_len, s))
            continue
        m_lr, m_bs = base.optimum(np.array([n]), np.array([d]))
        c_lr = round(float(np.median(m_lr)) / LR_STEP) * LR_STEP  # on the grid of 2^(k/2)
        c_seq = round((float(np.median(m_bs)) - math.log(seq_len)) / BATCH_STEP) * BATCH_STEP
        for i in LR_STEPS:
            for j in BATCH_STEPS:
                seqs = max(1.0, math.exp(c_seq + j * BATCH_STEP))
                rows.append((n, d, c_lr + i * LR_STEP, math.log(seqs * seq_len), seqs, s))
    table = pd.DataFrame(rows, columns=["N", "D", "log_lr", "log_bs", "batch_sequences",
                                        "setting"])  # fmt: skip
    return table.drop_duplicates(["setting", "log_lr", "log_bs"]).reset_index(drop=True)


def nearest(table: pd.DataFrame, rows, base: Surface) -> list[int]:
    """Candidate rows of one setting, nearest its predicted optimum first (in grid steps:
    lr steps of √2, batch steps of 2; ties by lr, then batch)."""
    sub = table.loc[list(rows)]
    m_lr, m_bs = base.optimum(sub["N"].to_numpy()[:1], sub["D"].to_numpy()[:1])
    dist = np.hypot((sub["log_lr"] - np.median(m_lr)) / LR_STEP,
                    (sub["log_bs"] - np.median(m_bs)) / BATCH_STEP)  # fmt: skip
    order = np.lexsort((sub["log_bs"].to_numpy(), sub["log_lr"].to_numpy(), dist.to_numpy()))
    return sub.index.to_numpy()[order].tolist()


def naive_runs(table: pd.DataFrame, budget: int, base: Surface) -> list[int]:
    """The naive plan: the ``budget`` candidates of the largest setting (most compute, then
    most N) nearest its predicted optimum: one small grid sweep at the largest affordable
    size."""
    compute = table["N"] * table["D"]
    top = table[np.isclose(compute, compute.max(), rtol=1e-9)]
    return nearest(table, top.index[top["N"] == top["N"].max()], base)[:budget]


# --------------------------------------------------------------------------- the study


def with_setting_scatter(base: Surface, post, rng: np.random.Generator) -> Surface:
    """The surfaces of one new setting: ``base`` (a ``law=True`` surface, every group-level
    draw in it) plus a new setting's scatter of the optimum and of L*, drawn from ``rng``, as
    :meth:`~bayes_steplaw.LossPosterior.coefficients` adds it."""
    n = base.n_samples
    coef = dict(base.coef)
    for key, law in (("m_lr", "lr"), ("m_bs", "bs")):
        terms = np.array(coef[key], dtype=float, copy=True)
        terms[0] = terms[0] + post.flat(f"sigma_setting_{law}") * rng.standard_normal(n)
        coef[key] = terms
    scatter = post.flat("sigma_setting_star") * rng.standard_normal(n)
    coef["star_scale"] = np.asarray(coef["star_scale"], dtype=float) * np.exp(scatter)
    return dataclasses.replace(base, coef=coef)


def _axis(values: np.ndarray, step: float, half_width: float) -> np.ndarray:
    lo, mid, hi = np.quantile(values, [0.005, 0.5, 0.995])
    lo, hi = min(lo, mid - half_width), max(hi, mid + half_width)
    return lo + step * np.arange(math.ceil((hi - lo) / step) + 1)


LIKELIHOODS = ("relative", "full")
"""How the simulated losses weigh the draws: ``"relative"`` integrates each setting's loss level
out (only the runs' losses relative to one another inform), ``"full"`` uses each draw's own
L* (the model's likelihood as it is)."""


class Study:
    """The preposterior analysis of calibration runs at one target (module docstring).

    ``excess`` (decision grid x draws) holds each draw's expected loss of each candidate
    decision at the target minus its L* (at most 0.5·L*: a run that ends above 1.5·L* counts as
    diverged), ``relative`` the same over L*.
    """

    def __init__(self, post, group: str, N: float, D: float, candidates, seq_len: int,
                 seed: int, likelihood: str = "relative"):  # fmt: skip
        self.post, self.N, self.D, self.seed, self.likelihood = post, N, D, seed, likelihood
        self.base = post.surface(group, seed=seed, law=True)
        self.S = self.base.n_samples
        self.table = _candidate_table(candidates, N, D, self.base, seq_len)
        n_set = int(self.table["setting"].max()) + 1
        self.surfaces = [
            with_setting_scatter(self.base, post, np.random.default_rng([seed, 5, s]))
            for s in range(n_set)
        ]
        target = with_setting_scatter(self.base, post, np.random.default_rng([seed, 6]))
        m_lr, m_bs = target.optimum(np.array([N]), np.array([D]))
        xx, yy = np.meshgrid(_axis(m_lr[0], DECISION_STEPS[0], 1.0),
                             _axis(m_bs[0], DECISION_STEPS[1], 1.5), indexing="ij")  # fmt: skip
        self.grid = np.column_stack([xx.ravel(), yy.ravel()])
        relative = []
        block = max(1, _CELLS // self.S)
        for s in range(0, len(self.grid), block):
            g = self.grid[s : s + block]
            at = target.at(np.full(len(g), N), np.full(len(g), D), g[:, :1], g[:, 1:])
            with np.errstate(invalid="ignore", over="ignore"):
                rel = Surface.expected(at) / at["loss_star"] - 1.0
            relative.append(np.minimum(np.nan_to_num(rel, nan=DIVERGED_EXCESS), DIVERGED_EXCESS))
        self.relative = np.concatenate(relative)
        star = target.at(np.array([N]), np.array([D]), m_lr[:, :1], m_bs[:, :1])["loss_star"]
        # the weighted decisions in float32, on excesses of ~1e-3 (precise there)
        self.excess = (self.relative * star.reshape(1, -1)).astype(np.float32)
        # the search ranks plans on every other grid value of each axis (a quarter of the cost)
        coarse = np.zeros(xx.shape, dtype=bool)
        coarse[::2, ::2] = True
        self.coarse = np.flatnonzero(coarse.ravel())
        # per candidate: its setting, and the per-draw prediction of the run
        self.setting = self.table["setting"].to_numpy()
        self.pred = {k: np.empty((len(self.table), self.S)) for k in ("q", "logit", "rel")}
        for s, idx in self.table.groupby("setting").indices.items():
            at = self._at(s, idx)
            with np.errstate(invalid="ignore", over="ignore"):
                self.pred["q"][idx] = at["q"]
                self.pred["logit"][idx] = at["logit"]
                self.pred["rel"][idx] = at["scale"] / at["loc"]  # scale relative to loc
        # for the level-free likelihood: a run's location and scale in units of the level
        q, rel = self.pred["q"], self.pred["rel"]
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            self.pred["possible"] = np.isfinite(q) & np.isfinite(rel) & (rel > 0)
            fine = self.pred["possible"]
            self.pred["prec"] = np.where(fine, 1.0 / np.where(fine, rel, 1.0) ** 2, 0.0)
            self.pred["log1q"] = np.where(fine, np.log1p(np.where(fine, q, 0.0)), 0.0)
            loc1 = np.where(fine, 1.0 + np.where(fine, q, 0.0), 1.0)
            self.pred["loc1"] = loc1.astype(np.float32)
            self.pred["scale1"] = np.where(fine, loc1 * np.where(fine, rel, 1.0), 1.0).astype(
                np.float32)  # fmt: skip
            self.pred["q32"] = np.where(fine, q, 0.0).astype(np.float32)
        self.noise32 = [{k: np.asarray(v, dtype=np.float32) for k, v in surf.noise.items()}
                        for surf in self.surfaces]  # fmt: skip

    def _at(self, s: int, idx) -> dict:
        sub = self.table.iloc[idx]
        return self.surfaces[s].at(
            sub["N"].to_numpy(), sub["D"].to_numpy(), sub["log_lr"].to_numpy()[:, None],
            sub["log_bs"].to_numpy()[:, None],
        )  # fmt: skip

    def simulate(self, rows, truths: np.ndarray, rng: np.random.Generator) -> dict:
        """Outcomes of the candidate runs ``rows`` under each truth: ``loss`` and ``dead``
        (runs, truths), and ``div`` (runs, truths, draws): each draw's log-probability of the
        run's divergence or not (float32); for ``likelihood="full"`` also ``alive``, the log
        density of the loss of a run that did not diverge under each draw (0 if it did)."""
        rows = np.asarray(rows)
        table = self.table.iloc[rows]
        out = {"rows": rows, "truths": truths, "loss": np.empty((len(rows), len(truths))),
               "dead": np.empty((len(rows), len(truths)), dtype=bool)}  # fmt: skip
        for s, idx in table.groupby("setting").indices.items():
            surf = self.surfaces[s]
            at = self._at(s, rows[idx])
            loss = surf.reported(at, rng)[:, truths]
            dead = rng.random(loss.shape) < sigmoid(at["logit"][:, truths])
            out["loss"][idx] = np.where(np.isfinite(loss), loss, np.inf)
            out["dead"][idx] = dead | ~np.isfinite(loss)
        logit = self.pred["logit"][rows][:, None, :]
        out["div"] = np.where(out["dead"][:, :, None], log_sigmoid(logit),
                              log_sigmoid(-logit)).astype(np.float32)  # fmt: skip
        if self.likelihood == "full":
            alive = np.zeros(out["div"].shape, dtype=np.float32)
            for s, idx in table.groupby("setting").indices.items():
                at = self._at(s, rows[idx])
                with np.errstate(all="ignore"):
                    ll = run_logpdf(out["loss"][idx][:, :, None], at["loc"][:, None, :],
                                    at["scale"][:, None, :], at["q"][:, None, :],
                                    self.surfaces[s].noise)  # fmt: skip
                ll = np.where(np.isnan(ll), -np.inf, ll)
                alive[idx] = np.where(out["dead"][idx][:, :, None], 0.0, ll)
            out["alive"] = alive
        return out

    def level_free(self, sim: dict, members: list[int]) -> np.ndarray:
        """Log-likelihood (truths, draws) of the losses of the runs ``members`` (positions in
        ``sim``, all of one setting) with the setting's loss level integrated out.

        A flat prior on the level's log h; given h, a run reports a loss around
        ``e^h·(1 + q)`` with scale ``e^h·(σ0 + σ1·q)`` (:func:`.bayes.surface.run_logpdf`).
        Laplace's method: the integrand's peak from the runs' log-space residuals (precision
        ``((1 + q) / (σ0 + σ1·q))²``, reweighted for Student-t tails), the exact density there
        and the t's curvature around it (within 0.5 nats of the integral, checked in
        ``tests/test_calibrate.py``).
        One run alone is then (nearly) the same under every draw: it carries no information on
        the optimum, only two or more runs of a setting do.
        """
        rows = sim["rows"][members]
        alive = ~sim["dead"][members][:, :, None]  # (runs, truths, 1)
        ok = self.pred["possible"][rows][:, None, :] & alive
        # the level's peak h, from log-space residuals (float64: precisions are ~1e6) by
        # iteratively reweighted least squares for Student-t noise of the draw's ν
        prec = np.where(ok, self.pred["prec"][rows][:, None, :], 0.0)
        nu = self.surfaces[self.setting[rows[0]]].noise["nu"]
        with np.errstate(invalid="ignore", divide="ignore"):
            resid = np.log(sim["loss"][members])[:, :, None] - self.pred["log1q"][rows][:, None, :]
            resid = np.where(ok, resid, 0.0)
            u = prec
            for _ in range(IRLS_STEPS + 1):
                total = u.sum(axis=0)
                level = np.where(total > 0, (u * resid).sum(axis=0) / np.where(total > 0, total, 1),
                                 0.0)  # fmt: skip
                z2 = (resid - level) ** 2 * prec
                u = prec * (nu + 1) / (nu + z2)
            # the curvature of the t log-density at the peak (at least a tenth of the normal's)
            weight = prec.sum(axis=0)
            weight = np.maximum((prec * (nu + 1) * (nu - z2) / (nu + z2) ** 2).sum(axis=0),
                                0.1 * weight)  # fmt: skip
            # each run's density at the peak, in units of the level (float32: values near 1),
            # p(y | e^h·loc, e^h·scale) = p(y·e^-h | loc, scale)·e^-h
            ratio = (sim["loss"][members][:, :, None] * np.exp(-level)).astype(np.float32)
            at = {k: self.pred[k][rows][:, None, :] for k in ("loc1", "scale1", "q32")}
            ll = run_logpdf(ratio, at["loc1"], at["scale1"], at["q32"],
                            self.noise32[self.setting[rows[0]]])  # fmt: skip
            ll = np.where(alive, np.where(ok, ll, -np.inf), 0.0).sum(axis=0)
            out = ll - alive.sum(axis=0) * level + 0.5 * (math.log(2 * math.pi) - np.log(weight))
        out = np.where(alive.any(axis=0), out, 0.0)
        return np.where(np.isnan(out), -np.inf, out).astype(np.float32)

    def loglik(self, sim: dict, members: list[int]) -> np.ndarray:
        """Log-likelihood (truths, draws) of the outcomes of the runs ``members`` (positions in
        ``sim``)."""
        if not members:
            return np.zeros(sim["div"].shape[1:], dtype=np.float32)
        return next(self.extended(sim, list(members[:-1]), [[members[-1]]]))

    def decide(self, loglik: np.ndarray, truths: np.ndarray, coarse: bool = False):
        """Per truth: the relative excess (under the truth) of the Bayes decision of the draws
        weighted by ``loglik`` (..., truths, draws), the truth itself left out, and the
        weights' ESS; both (..., truths). ``coarse``: decisions on every other grid value."""
        shape = loglik.shape[:-1]
        logw = loglik.reshape(-1, len(truths), self.S).astype(np.float32, copy=True)
        logw[:, np.arange(len(truths)), truths] = -np.inf
        top = logw.max(axis=2, keepdims=True)
        lost = ~np.isfinite(top[..., 0])  # no draw could have produced the outcomes
        if lost.any():  # then the draws stay as they were: the runs teach nothing
            logw[lost] = 0.0
            b, t = np.nonzero(lost)
            logw[b, t, truths[t]] = -np.inf
            top[lost] = 0.0
        w = np.exp(logw - top)
        w /= w.sum(axis=2, keepdims=True)
        grid = self.coarse if coarse else slice(None)
        pick = np.argmin(w.reshape(-1, self.S) @ self.excess[grid].T, axis=1)
        pick = np.arange(len(self.grid))[grid][pick].reshape(w.shape[:2])
        ess = 1.0 / np.sum(np.square(w, dtype=float), axis=2)
        ess[lost] = 0.0
        return self.relative[pick, truths].reshape(shape), ess.reshape(shape)

    def extended(self, sim: dict, chosen: list[int], options: list[list[int]]):
        """Log-likelihoods (truths, draws) of the runs ``chosen`` plus each option (one or
        more runs of one setting; positions in ``sim``), one after another: only the option's
        setting is recomputed."""
        settings = self.setting[sim["rows"]]
        parts = {}
        for s in np.unique(settings[chosen]) if chosen else []:
            members = [m for m in chosen if settings[m] == s]
            parts[s] = (self.level_free(sim, members) if self.likelihood == "relative"
                        else sim["alive"][members].sum(axis=0))  # fmt: skip
        zero = np.zeros(sim["div"].shape[1:], dtype=np.float32)
        total = zero + (sim["div"][chosen].sum(axis=0) if chosen else 0.0)
        total += sum(parts.values(), zero)
        for option in options:
            added = total + sim["div"][option].sum(axis=0)
            if self.likelihood == "full":
                yield added + sim["alive"][option].sum(axis=0)
                continue
            s = settings[option[0]]
            members = [m for m in chosen if settings[m] == s] + list(option)
            yield added - parts.get(s, zero) + self.level_free(sim, members)

    def score(self, sim: dict, chosen: list[int], options: list[list[int]]) -> np.ndarray:
        """Mean excess of the decision after the runs ``chosen`` plus each option (positions
        in ``sim``), decided on the coarse grid."""
        out = np.empty(len(options))
        chunk = max(1, _CELLS // (len(sim["truths"]) * self.S))
        lls = self.extended(sim, chosen, options)
        for c in range(0, len(options), chunk):
            block = [next(lls) for _ in options[c : c + chunk]]
            excess = self.decide(np.stack(block), sim["truths"], coarse=True)[0]
            out[c : c + len(block)] = excess.mean(axis=1)
        return out

    def greedy(self, budget: int, sim: dict) -> list[int]:
        """Runs (positions in ``sim``, which simulates every candidate) added greedily, each
        step the option of least expected excess after the runs chosen so far. An option is
        one more run at a setting the plan has, or, while two runs are left, a new setting's
        first two runs: the one nearest its predicted optimum and any other. (A setting's
        first run alone says next to nothing about the optimum, its level being unknown;
        offered alone, it would be chosen for the noise of its score.)"""
        chosen: list[int] = []
        by_setting = {s: np.flatnonzero(self.setting[sim["rows"]] == s)
                      for s in np.unique(self.setting[sim["rows"]])}  # fmt: skip
        centres = {s: nearest(self.table, sim["rows"][idx], self.base)[0]
                   for s, idx in by_setting.items()}  # fmt: skip
        centres = {s: int(np.flatnonzero(sim["rows"] == c)[0]) for s, c in centres.items()}
        while len(chosen) < budget:
            have = {int(self.setting[sim["rows"][c]]) for c in chosen}
            options = [[int(c)] for s in have for c in by_setting[s] if c not in chosen]
            if budget - len(chosen) >= 2:
                for s, idx in by_setting.items():
                    if s not in have:
                        options += [[centres[s], int(c)] for c in idx if c != centres[s]]
            if not options or self.likelihood == "full":  # a lone run informs: any run
                options = [[int(c)] for c in range(len(sim["rows"])) if c not in chosen]
            chosen += options[int(np.argmin(self.score(sim, chosen, options)))]
        return chosen


def _runs_frame(table: pd.DataFrame, rows: list[int], target_compute: float) -> pd.DataFrame:
    runs = table.iloc[rows]
    return pd.DataFrame({
        "N": runs["N"].to_numpy(), "D": runs["D"].to_numpy(), "lr": np.exp(runs["log_lr"]),
        "batch_tokens": np.exp(runs["log_bs"]), "batch_sequences": runs["batch_sequences"],
        "compute_fraction": (runs["N"] * runs["D"]).to_numpy() / target_compute,
    }).reset_index(drop=True)  # fmt: skip


def _interval(values: np.ndarray, prob: float, rng: np.random.Generator):
    """Mean of paired differences and its bootstrap percentile interval."""
    idx = rng.integers(0, len(values), (BOOTSTRAP, len(values)))
    means = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - prob) / 2, (1 + prob) / 2])
    return float(values.mean()), float(lo), float(hi)


def plan_calibration(
    N,
    D,
    budget: int = 6,
    *,
    group: str,
    posterior: PosteriorLike = None,
    candidates: pd.DataFrame | None = None,
    seq_len: int | None = None,
    draws: int = 1000,
    truths: int = 1024,
    search_truths: int = 256,
    prob: float = DEFAULT_PROB,
    likelihood: str = "relative",
    seed: int = 0,
    allow_unconverged: bool = False,
) -> CalibrationPlan:
    """The ``budget`` small runs of your setup that most lower the expected loss excess of the
    lr and batch you will choose at the target (N, D), once they are observed.

    Parameters
    ----------
    N, D : float or str
        The target: non-embedding parameters and training tokens of the large run.
    budget : int
        K, how many small runs you can afford.
    group : str
        Your group in the posterior (``"user:<name>"`` in a posterior pooled with the released
        data; any group it knows, or ``"new"``).
    posterior : path or LossPosterior, optional
        Default: the shipped loss posterior.
    candidates : DataFrame, optional
        The small runs to choose from: columns ``N`` and ``D`` (settings; a grid of 5 lrs in
        steps of √2 by 3 batches in steps of 2 is built around each one's predicted optimum),
        or ``N``, ``D``, ``lr`` and ``batch_tokens`` (or ``batch_sequences``) for the runs
        themselves. Each must have N at most 1/10 of the target's and compute 6ND at most 1%
        of it. Default: N and D each 1/10, 1/30 or 1/100 of the target's (9 settings, 135
        runs).
    seq_len : int, optional
        Sequence length of your runs, for batches in sequences (default: the fit's).
    draws : int
        Posterior draws the analysis reweights (a random subset; all when fewer).
    truths : int
        Simulated truths of the final scores (with replacement when there are fewer draws):
        the excess is heavy-tailed (a decision that diverges costs 50%), its mean needs many.
    search_truths : int
        Simulated truths of the greedy search (others), deciding on a grid half as fine.
    prob : float
        Mass of the paired bootstrap intervals.
    likelihood : {"relative", "full"}
        ``"relative"`` (default): each setting's loss level integrated out, the runs' losses
        relative to one another (and their divergence) weigh the draws; ``"full"``: the
        model's likelihood as it is, whose weights collapse (module docstring).
    seed : int
        Seed of the draws' subset, the new settings' scatter, the truths and the run noise.
    allow_unconverged : bool
        Plan from a posterior that failed its convergence gate.

    Returns
    -------
    CalibrationPlan
        ``.runs`` (in the order chosen), ``.expected_excess_before`` / ``_after`` /
        ``_naive``, ``.difference`` (plan minus naive, paired), ``.improvement``, ``.ess``,
        ``.to_dataframe()``, ``.summary()``.

    Warns
    -----
    CalibrationWarning
        When the median effective sample size of the weights falls below 20 draws: the
        reweighting then understates what the runs teach; refit with simulated runs to check.
    """
    check_plausible(N=N, D=D)
    N, D = scalar(N, "N"), scalar(D, "D")
    budget = check_count(budget, "budget")
    draws = check_count(draws, "draws", 10)
    n_truths = check_count(truths, "truths", 2)
    n_search = check_count(search_truths, "search_truths", 2)
    prob = check_prob(prob)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    post = resolve_posterior(posterior)
    group = check_group(post, group)
    post.gate(allow_unconverged)
    seq_len = check_seq_len(post.seq_len if seq_len is None else seq_len)
    likelihood = check_choice(likelihood, "likelihood", LIKELIHOODS)
    post = post.subsample(draws, seed=seed)
    study = Study(post, group, N, D, candidates, seq_len, seed, likelihood)
    table = study.table
    if budget > len(table):
        raise ValueError(f"budget ({budget}) exceeds the {len(table)} candidate runs")
    rng = np.random.default_rng([seed, 7])
    # choose on one set of simulated truths, score on another (fresh truths and noise): a
    # search scored on its own simulations looks better than it is
    pick = np.sort(rng.choice(study.S, min(n_search, study.S), replace=False))
    sim = study.simulate(np.arange(len(table)), pick, rng)
    chosen = [int(sim["rows"][c]) for c in study.greedy(budget, sim)]
    naive = naive_runs(table, budget, study.base)
    rows = sorted(set(chosen) | set(naive))
    fresh = np.sort(rng.choice(study.S, n_truths, replace=n_truths > study.S))
    sim = study.simulate(np.asarray(rows), fresh, rng)
    where = {r: i for i, r in enumerate(rows)}
    plan_sets = [[where[c] for c in chosen[: k + 1]] for k in range(len(chosen))]
    lls = [study.loglik(sim, m) for m in [[], *plan_sets, [where[c] for c in naive]]]
    before, _ = study.decide(lls[0], fresh)
    cumulative = [float(study.decide(ll, fresh)[0].mean()) for ll in lls[1:-1]]
    after, ess = study.decide(lls[-2], fresh)
    naive_after, _ = study.decide(lls[-1], fresh)
    boot = np.random.default_rng([seed, 8])
    notes = [f"the naive plan has only {len(naive)} runs"] if len(naive) < budget else []
    ess_summary = {"median": float(np.median(ess)), "q10": float(np.quantile(ess, 0.1)),
                   "min": float(ess.min())}  # fmt: skip
    if ess_summary["median"] < MIN_ESS:
        message = (f"the weights' effective sample size has collapsed (median "
                   f"{ess_summary['median']:.1f} of {study.S} draws): the reweighted posterior "
                   f"rests on a few draws and understates what the runs teach; use more draws, "
                   f"or check the plan by refitting with simulated runs")  # fmt: skip
        notes.append(message)
        warnings.warn(message, CalibrationWarning, stacklevel=2)
    frame = _runs_frame(table, chosen, N * D).assign(expected_excess_after=cumulative)
    return CalibrationPlan(
        N=N, D=D, group=group, budget=budget, seq_len=seq_len, runs=frame,
        naive=_runs_frame(table, naive, N * D),
        expected_excess_before=float(before.mean()), expected_excess_after=cumulative[-1],
        expected_excess_naive=float(naive_after.mean()),
        difference=_interval(after - naive_after, prob, boot),
        improvement=_interval(before - after, prob, boot), prob=prob, ess=ess_summary,
        n_draws=study.S, n_truths=n_truths, n_candidates=len(table), notes=notes,
        per_truth=pd.DataFrame({"draw": fresh, "before": before, "after": after,
                                "naive": naive_after, "ess": ess}),
    )  # fmt: skip
