"""Preposterior analysis over the posterior's draws: what runs not yet made would teach.

:class:`Study` takes each posterior draw in turn as the truth, simulates what a set of runs
would report under it, reweights every draw by the likelihood of those outcomes and scores the
Bayes decision at a target under the weights (see :mod:`bayes_steplaw.calibrate`, which plans
calibration runs with it). Pure numpy on the draws of a loss posterior's surfaces.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from .answers import DIVERGED_EXCESS, Surface, search_axis
from .surface import log_sigmoid, run_logpdf, sigmoid

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
IRLS_STEPS = 3
DECISION_STEPS = (math.log(2) / 8, math.log(2) / 4)
"""Grid of the decision at the target (ln lr, ln batch): 1/8 and 1/4 octave."""
_CELLS = 1 << 22  # (candidates x truths x draws) of log-likelihood computed at once


def default_settings(N: float, D: float) -> pd.DataFrame:
    """The default candidate settings: N and D each 1/10, 1/30 or 1/100 of the target's."""
    pairs = [(N * a, D * b) for a in DEFAULT_FRACTIONS for b in DEFAULT_FRACTIONS]
    return pd.DataFrame(pairs, columns=["N", "D"])


def candidate_table(candidates, N: float, D: float, base: Surface, seq_len: int):
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
        self.table = candidate_table(candidates, N, D, self.base, seq_len)
        n_set = int(self.table["setting"].max()) + 1
        self.surfaces = [
            with_setting_scatter(self.base, post, np.random.default_rng([seed, 5, s]))
            for s in range(n_set)
        ]
        target = with_setting_scatter(self.base, post, np.random.default_rng([seed, 6]))
        m_lr, m_bs = target.optimum(np.array([N]), np.array([D]))
        xx, yy = np.meshgrid(
            search_axis(m_lr[0], DECISION_STEPS[0], 1.0),
            search_axis(m_bs[0], DECISION_STEPS[1], 1.5),
            indexing="ij",
        )
        self.grid = np.column_stack([xx.ravel(), yy.ravel()])
        relative = []
        block = max(1, _CELLS // self.S)
        for s in range(0, len(self.grid), block):
            g = self.grid[s : s + block]
            at = target.at(np.full(len(g), N), np.full(len(g), D), g[:, :1], g[:, 1:])
            relative.append(np.nan_to_num(Surface.excess(at), nan=DIVERGED_EXCESS))
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
