"""Least-squares peers of the loss model: the loss of every run, fitted without a posterior.

Two peers, each fitted by least squares (scipy) to the ln loss of the training runs that did
not diverge, with one offset per group on its intercept, a homoscedastic normal predictive in
ln loss and a logistic regression of divergence on (ln lr, ln lr², ln B, ln N, ln D):

``peer-chinchilla-bowl``  L = (E_g + A·N^-a + B·D^-b)·(1 + k_lr·(ln lr − ln lr0)² +
                          k_bs·(ln B − ln B0)²), lr0 = F_f·N^γ·D^ζ, B0 = G_f·D^η (Step-Law
                          form optima, per-family F and G);
``peer-quadratic``        ln L = a global quadratic in (ln lr, ln B, ln D, ln N) with all
                          pairwise products.

A group (or family) the training runs do not have, a never-seen group of ``logo`` or
``transfer`` with ``k = 0``, gets the mean of the fitted groups' offsets. The peers do the
loss and divergence tasks (:meth:`PeerPredictor.predict_runs`) and the choice
(:meth:`PeerPredictor.choose`: of the held-out sweep's grid, the run of lowest predicted loss
among those predicted more likely to survive than to diverge); they give no intervals for the
optimum and no plateau probabilities.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from ..bayes.surface import mark_diverged
from .protocol import FoldContext, RunForecast


def _features(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "lr": np.log(frame["lr"].to_numpy(float)),
        "bs": np.log(frame["batch_tokens"].to_numpy(float)),
        "N": np.log(frame["N"].to_numpy(float)),
        "D": np.log(frame["D"].to_numpy(float)),
    }


def _padded(values: np.ndarray) -> np.ndarray:
    """``values`` with their mean appended: index -1 (an unknown level) picks the mean."""
    values = np.asarray(values)
    return np.append(values, values.mean()) if values.size else np.zeros(1)


class _Logistic:
    """Divergence of a run as a logistic regression on (ln lr, ln lr², ln B, ln N, ln D)."""

    def fit(self, frame: pd.DataFrame) -> _Logistic:
        from scipy.optimize import minimize

        X = self._design(frame)
        self.mean, self.sd = X[:, 1:].mean(axis=0), X[:, 1:].std(axis=0) + 1e-12
        X = self._scale(X)
        t = frame["diverged"].to_numpy(float)

        def nll(w):  # a weak ridge keeps separable data (no divergence at all) finite
            z = X @ w
            p = 1 / (1 + np.exp(-z))
            return np.sum(np.logaddexp(0, z) - t * z) + 0.5e-2 * w @ w, X.T @ (p - t) + 1e-2 * w

        self.w = minimize(nll, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B").x
        return self

    def _design(self, frame):
        f = _features(frame)
        return np.column_stack(
            [np.ones(len(frame)), f["lr"], f["lr"] ** 2, f["bs"], f["N"], f["D"]]
        )

    def _scale(self, X):
        return np.column_stack([X[:, 0], (X[:, 1:] - self.mean) / self.sd])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        z = self._scale(self._design(frame)) @ self.w
        return np.exp(-np.logaddexp(0.0, -z))


class Peer:
    """A least-squares peer: ``fit(train)`` on runs with ``diverged``, ``group`` and
    ``family``, then ``forecast(runs, masses)``."""

    name = ""

    def fit(self, train: pd.DataFrame) -> Peer:
        ok = train[~train["diverged"].astype(bool)]
        if len(ok) < 2:
            raise ValueError(f"{self.name}: fewer than 2 training runs that did not diverge")
        self.groups = sorted(ok["group"].astype(str).unique())
        self.families = sorted(ok["family"].astype(str).unique())
        self.centre = {k: v.mean() for k, v in _features(ok).items()}
        self._fit(ok)
        resid = np.log(ok["loss"].to_numpy(float)) - self._mean(ok)
        self.sigma = float(np.sqrt(np.mean(resid**2)))
        self.divergence = _Logistic().fit(train)
        return self

    @staticmethod
    def _index(frame: pd.DataFrame, column: str, names: list[str]) -> np.ndarray:
        """Position of each row's level in ``names``; -1 for a level not fitted (the mean)."""
        index = {n: i for i, n in enumerate(names)}
        return np.array([index.get(str(g), -1) for g in frame[column]], dtype=int)

    def forecast(self, runs: pd.DataFrame, masses=(0.9,)) -> RunForecast:
        """Predictive median, intervals at ``masses``, log density at the observed loss,
        P(diverge) of each run; per setting the lowest predicted loss over its runs and L*."""
        from scipy import stats

        mu = self._mean(runs)
        intervals = {}
        for mass in masses:
            z = stats.norm.ppf((1 + mass) / 2)
            intervals[mass] = (np.exp(mu - z * self.sigma), np.exp(mu + z * self.sigma))
        y = np.log(runs["loss"].to_numpy(float))
        with np.errstate(all="ignore"):
            logdens = stats.norm.logpdf(y, mu, self.sigma) - y  # density of the loss itself
        sweep_best, star = {}, {}
        for setting, idx in runs.groupby("setting", sort=False).indices.items():
            sweep_best[str(setting)] = float(np.exp(mu[idx].min()))
            star[str(setting)] = float(np.exp(self._floor(runs.iloc[idx[:1]]))[0])
        return RunForecast(
            median=np.exp(mu), intervals=intervals, log_density=logdens,
            p_diverge=self.divergence.predict(runs), sweep_best=sweep_best, loss_star=star,
        )  # fmt: skip


class ChinchillaBowl(Peer):
    """Peer (a): a Chinchilla law times a quadratic bowl around Step-Law-form optima."""

    name = "peer-chinchilla-bowl"

    def _unpack(self, p):
        g, f = len(self.groups), len(self.families)
        E, rest = p[:g], p[g:]
        lA, a, lB, b, k_lr, k_bs, gam, zeta, eta = rest[:9]
        F, G = rest[9 : 9 + f], rest[9 + f : 9 + 2 * f]
        return E, lA, a, lB, b, k_lr, k_bs, gam, zeta, eta, F, G

    def _parts(self, frame, p):
        f = _features(frame)
        E, lA, a, lB, b, k_lr, k_bs, gam, zeta, eta, F, G = self._unpack(p)
        u, v = f["N"] - self.centre["N"], f["D"] - self.centre["D"]
        gi = self._index(frame, "group", self.groups)
        fi = self._index(frame, "family", self.families)
        floor = np.exp(_padded(E)[gi]) + np.exp(lA - a * u) + np.exp(lB - b * v)
        lr0 = _padded(F)[fi] + gam * u + zeta * v + self.centre["lr"]
        bs0 = _padded(G)[fi] + eta * v + self.centre["bs"]
        bowl = np.exp(k_lr) * (f["lr"] - lr0) ** 2 + np.exp(k_bs) * (f["bs"] - bs0) ** 2
        return floor, bowl

    def _fit(self, ok):
        from scipy.optimize import least_squares

        y = np.log(ok["loss"].to_numpy(float))
        g, f = len(self.groups), len(self.families)
        p0 = np.concatenate(
            [np.full(g, np.log(1.5)), [np.log(0.4), 0.3, np.log(0.4), 0.3, np.log(0.004),
             np.log(0.004), -0.7, 0.3, 0.55], np.zeros(f), np.zeros(f)]
        )  # fmt: skip

        def resid(p):
            floor, bowl = self._parts(ok, p)
            return np.log(floor) + np.log1p(bowl) - y

        self.p = least_squares(resid, p0, method="trf", max_nfev=20000).x

    def _mean(self, frame):
        floor, bowl = self._parts(frame, self.p)
        return np.log(floor) + np.log1p(bowl)

    def _floor(self, frame):
        return np.log(self._parts(frame, self.p)[0])


class Quadratic(Peer):
    """Peer (b): ln loss as a quadratic in (ln lr, ln B, ln D, ln N), all pairwise products,
    with an intercept per group."""

    name = "peer-quadratic"
    _KEYS = ("lr", "bs", "D", "N")

    def _X(self, frame):
        f = _features(frame)
        z = [f[k] - self.centre[k] for k in self._KEYS]
        cols = [*z]
        cols += [z[i] * z[j] for i in range(4) for j in range(i, 4)]
        gi = self._index(frame, "group", self.groups)
        g = len(self.groups)
        dummies = np.vstack([np.eye(g), np.full((1, g), 1.0 / g)])[gi]  # -1: the mean
        return np.column_stack([dummies, *cols])

    def _fit(self, ok):
        from scipy.linalg import lstsq

        self.coef = lstsq(self._X(ok), np.log(ok["loss"].to_numpy(float)))[0]

    def _mean(self, frame):
        return self._X(frame) @ self.coef

    def _floor(self, frame):  # the quadratic's minimum over (ln lr, ln B) at this (N, D)
        from scipy.optimize import minimize

        row = frame.iloc[:1]

        def at(p):
            r = row.assign(lr=np.exp(p[0]), batch_tokens=np.exp(p[1]))
            return float(self._mean(r)[0])

        start = [np.log(row["lr"].iloc[0]), np.log(row["batch_tokens"].iloc[0])]
        res = minimize(at, start, method="Nelder-Mead")
        return np.array([res.fun])


PEERS = (ChinchillaBowl, Quadratic)


def with_groups(runs: pd.DataFrame, groups, diverged: float) -> pd.DataFrame:
    """Runs with ``diverged`` (loss above ``diverged`` x its setting's lowest), ``group`` (the
    name the models resolve each setting to) and ``family`` (``"all"`` when absent)."""
    from .splits import setting_table

    out = mark_diverged(runs, diverged)
    if "group" not in out:
        names = setting_table(runs, groups)["group"]
        out = out.assign(group=out["setting"].map(names).to_numpy())
    if "family" not in out:
        out = out.assign(family="all")
    return out


class PeerPredictor:
    """A fitted peer behind the evaluation's protocol: ``choose`` and ``predict_runs``."""

    def __init__(self, peer: Peer, masses):
        self.peer = peer
        self.masses = tuple(masses)
        self.diagnostics: dict = {}

    def predict_runs(self, runs: pd.DataFrame) -> RunForecast:
        """The loss and divergence of every held-out run (:meth:`Peer.forecast`)."""
        out = self.peer.forecast(_with_family(runs), self.masses)
        out.note = "normal predictive in ln loss around a least-squares surface"
        return out

    def choose(self, settings: pd.DataFrame, grid: pd.DataFrame):
        """Per held-out setting, the grid run of lowest predicted loss among those predicted
        more likely to survive than to diverge (all of them when none is)."""
        grid = _with_family(grid)
        mu = self.peer._mean(grid)
        alive = self.peer.divergence.predict(grid) < 0.5
        lr, bs = np.full(len(settings), np.nan), np.full(len(settings), np.nan)
        where = grid.groupby("setting", sort=False).indices
        for i, s in enumerate(settings["setting"]):
            idx = where.get(s)
            if idx is None:
                continue
            keep = idx[alive[idx]] if alive[idx].any() else idx
            at = keep[np.argmin(mu[keep])]
            lr[i] = grid["lr"].iloc[at]
            bs[i] = grid["batch_tokens"].iloc[at]
        return lr, bs


def _with_family(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if "family" in frame else frame.assign(family="all")


class PeerMethod:
    """A least-squares peer (``peer-chinchilla-bowl``, ``peer-quadratic``) as a method of the
    evaluation: fitted on the fold's training runs (quick: no sampling)."""

    cost: ClassVar[int] = 1

    def __init__(self, peer: type[Peer]):
        self.peer = peer
        self.name = peer.name

    def __repr__(self) -> str:
        return f"PeerMethod({self.peer.__name__})"

    def fit(self, train: pd.DataFrame, context: FoldContext) -> PeerPredictor:
        """Least squares on the training runs that did not diverge (module docstring)."""
        table = with_groups(train, context.groups, context.diverged)
        return PeerPredictor(self.peer().fit(table), context.masses)


def peer_method(name: str) -> PeerMethod:
    """A peer by name."""
    for peer in PEERS:
        if peer.name == name:
            return PeerMethod(peer)
    raise ValueError(f"unknown peer {name!r}; the peers are {[p.name for p in PEERS]}")
