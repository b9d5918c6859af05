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
at the largest candidate setting), with a paired bootstrap interval. Where the naive plan
scores better than the search's on the search's own simulations, it is the plan (a note says
so).

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
from .bayes.answers import Surface
from .bayes.preposterior import LIKELIHOODS, Study, nearest

MIN_ESS = 20.0
"""Median effective sample size of the weights below which the plan warns."""
BOOTSTRAP = 2000


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


def naive_runs(table: pd.DataFrame, budget: int, base: Surface) -> list[int]:
    """The naive plan: the ``budget`` candidates of the largest setting (most compute, then
    most N) nearest its predicted optimum: one small grid sweep at the largest affordable
    size."""
    compute = table["N"] * table["D"]
    top = table[np.isclose(compute, compute.max(), rtol=1e-9)]
    return nearest(table, top.index[top["N"] == top["N"].max()], base)[:budget]


# --------------------------------------------------------------------------- the study


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
    notes = [f"the naive plan has only {len(naive)} runs"] if len(naive) < budget else []
    # a greedy search can end below the naive sweep (each step sees one run ahead): the plan is
    # the naive sweep, in the same order, where that scores better on the search's truths
    plans = np.stack([study.loglik(sim, chosen), study.loglik(sim, naive)])
    searched = study.decide(plans, sim["truths"], coarse=True)[0].mean(axis=-1)
    if len(naive) == budget and searched[1] < searched[0]:
        chosen = list(naive)
        notes.append("no plan the greedy search found beat the naive sweep on the search's "
                     "simulations: the plan is the naive sweep")  # fmt: skip
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
