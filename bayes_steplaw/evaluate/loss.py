"""Held-out evaluation of the loss model against least-squares peers, per setting, over all runs.

For every held-out setting of a fold (:func:`bayes_steplaw.evaluate.make_folds`: ``loso``,
``extrapolate``), each method predicts every run of the setting from the fold's training
settings only, and :func:`score_setting` scores it:

``loss_r2``        1 − Σ(y − ŷ)² / Σ(y − ȳ)² over the runs that did not diverge, ŷ the
                   predictive median;
``loss_rmse``      root mean squared error of ŷ over the same runs;
``loss_in_90``     share of those runs inside the 90% predictive interval (the loss a run
                   reports, given that it does not diverge);
``loss_logscore``  mean ln predictive density of their losses (nats; higher is better);
``best_loss_err``  predicted minus observed best loss of the sweep: for the loss model the
                   predictive median of the lowest loss the setting's own grid will report
                   (run noise included, diverged runs do not count), for a peer (a point
                   predictor) the lowest of its predictions over the grid, against the
                   grid's lowest loss; ``best_star_err`` is the same with the method's L*
                   (the surface's bottom, which lies above the luckiest run);
``brier_diverge``  Brier score of the probability of divergence over all runs.

The methods (:data:`METHODS`): ``bayes-loss``, the package's loss model
(:class:`bayes_steplaw.bayes.loss.LossModel`), compiled once on the whole table and refitted
per fold with the held-out runs' weights set to 0; and two peers fitted by least squares
(scipy) to the ln loss of the training runs that did not diverge, each with one offset per
group on its intercept, a homoscedastic normal predictive in ln loss and a logistic
regression of divergence on (ln lr, ln lr², ln B, ln N, ln D):

``peer-chinchilla-bowl``  L = (E_g + A·N^-a + B·D^-b)·(1 + k_lr·(ln lr − ln lr0)² +
                          k_bs·(ln B − ln B0)²), lr0 = F_f·N^γ·D^ζ, B0 = G_f·D^η (Step-Law
                          form optima, per-family F and G);
``peer-quadratic``        ln L = a global quadratic in (ln lr, ln B, ln D, ln N) with all
                          pairwise products.

:func:`fold_rows` scores one fold (tidy rows: what a harness calls); :func:`run` scores the
splits, :func:`summary_tables` / :func:`paired_table` reduce the rows and :func:`to_records`
makes them model-card records; ``bayes-steplaw evaluate-loss`` is the command line.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._format import markdown_table
from ..bayes.loss_model import LossModel
from ..bayes.surface import mark_diverged
from .metrics import paired_bootstrap
from .splits import Fold, make_folds

METHODS = ("bayes-loss", "peer-chinchilla-bowl", "peer-quadratic")
"""Names of the scored methods, as they appear in the ``method`` column."""
PROB = 0.9
METRICS = ("loss_r2", "loss_rmse", "loss_in_90", "loss_logscore", "best_loss_err",
           "best_star_err", "brier_diverge")  # fmt: skip


# --------------------------------------------------------------------------- scores


@dataclass
class SettingForecast:
    """One method's forecast of the runs of one held-out setting (arrays over its runs)."""

    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    log_density: np.ndarray
    p_diverge: np.ndarray
    sweep_best: float
    loss_star: float = float("nan")


def score_setting(runs: pd.DataFrame, forecast: SettingForecast) -> dict:
    """The scores of one forecast of one setting's runs (``runs`` with ``diverged``)."""
    div = runs["diverged"].to_numpy(bool)
    y = runs["loss"].to_numpy(float)[~div]
    yhat = forecast.median[~div]
    resid = y - yhat
    spread = ((y - y.mean()) ** 2).sum()
    inside = (y >= forecast.lower[~div]) & (y <= forecast.upper[~div])
    best = float(y.min())
    return {
        "n_runs": len(runs),
        "n_diverged": int(div.sum()),
        "loss_r2": float(1 - (resid**2).sum() / spread) if spread > 0 else float("nan"),
        "loss_rmse": float(np.sqrt(np.mean(resid**2))),
        "loss_in_90": float(inside.mean()),
        "loss_logscore": float(np.mean(forecast.log_density[~div])),
        "best_loss_err": float(forecast.sweep_best - best),
        "best_star_err": float(forecast.loss_star - best),
        "brier_diverge": float(np.mean((forecast.p_diverge - div) ** 2)),
    }


# --------------------------------------------------------------------------- the peers


def _features(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "lr": np.log(frame["lr"].to_numpy(float)),
        "bs": np.log(frame["batch_tokens"].to_numpy(float)),
        "N": np.log(frame["N"].to_numpy(float)),
        "D": np.log(frame["D"].to_numpy(float)),
    }


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
        return 1 / (1 + np.exp(-self._scale(self._design(frame)) @ self.w))


class Peer:
    """A least-squares peer: ``fit(train)`` then ``forecast(runs, group)``."""

    name = ""

    def fit(self, train: pd.DataFrame) -> Peer:
        ok = train[~train["diverged"]]
        self.groups = sorted(ok["group"].unique())
        self.families = sorted(ok["family"].unique())
        self.centre = {k: v.mean() for k, v in _features(ok).items()}
        self._fit(ok)
        resid = np.log(ok["loss"].to_numpy(float)) - self._mean(ok)
        self.sigma = float(np.sqrt(np.mean(resid**2)))
        self.divergence = _Logistic().fit(train)
        return self

    def _index(self, frame, column, names):
        index = {n: i for i, n in enumerate(names)}
        out = np.array([index.get(str(g), -1) for g in frame[column]])
        if (out < 0).any():
            raise ValueError(f"{self.name}: no training setting of {column} {set(frame[column])}")
        return out

    def forecast(self, runs: pd.DataFrame) -> SettingForecast:
        from scipy import stats

        mu = self._mean(runs)
        z = stats.norm.ppf((1 + PROB) / 2)
        y = np.log(runs["loss"].to_numpy(float))
        logdens = stats.norm.logpdf(y, mu, self.sigma) - y  # density of the loss itself
        p = self.divergence.predict(runs)
        return SettingForecast(
            median=np.exp(mu), lower=np.exp(mu - z * self.sigma), upper=np.exp(mu + z * self.sigma),
            log_density=logdens, p_diverge=p, sweep_best=float(np.exp(mu.min())),
            loss_star=float(np.exp(self._floor(runs.iloc[:1]))[0]),
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
        floor = np.exp(E[gi]) + np.exp(lA - a * u) + np.exp(lB - b * v)
        lr0 = F[fi] + gam * u + zeta * v + self.centre["lr"]
        bs0 = G[fi] + eta * v + self.centre["bs"]
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
        dummies = np.eye(len(self.groups))[gi]
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


# --------------------------------------------------------------------------- one fold


def with_groups(sweeps: pd.DataFrame, diverged: float) -> pd.DataFrame:
    """The sweep table with ``diverged`` and the group name of each run (``group``)."""
    from .splits import setting_table

    out = mark_diverged(sweeps, diverged)
    names = setting_table(sweeps)["group"]
    return out.assign(group=out["setting"].map(names).to_numpy())


def bayes_forecast(post, runs: pd.DataFrame, group: str, seed: int = 0) -> SettingForecast:
    """The loss posterior's forecast of one held-out setting's runs (as a new setting)."""
    N, D = float(runs["N"].iloc[0]), float(runs["D"].iloc[0])
    lr, bs = runs["lr"].to_numpy(float), runs["batch_tokens"].to_numpy(float)
    pred = post.predict_loss(N, D, lr, bs, group=group, seed=seed, allow_unconverged=True)
    frame = pred.to_dataframe(PROB)
    best = post.sweep_best(N, D, lr, bs, group=group, seed=seed)
    star = post.best_loss(N, D, group=group, seed=seed, allow_unconverged=True)
    return SettingForecast(
        median=frame["loss_median"].to_numpy(), lower=frame["loss_lower"].to_numpy(),
        upper=frame["loss_upper"].to_numpy(),
        log_density=post.loss_log_density(N, D, lr, bs, runs["loss"].to_numpy(float),
                                          group=group, seed=seed),
        p_diverge=frame["p_diverge"].to_numpy(), sweep_best=float(np.nanmedian(best)),
        loss_star=float(star.median()["loss_star"]),
    )  # fmt: skip


def fold_rows(
    fold: Fold,
    sweeps: pd.DataFrame,
    *,
    prepared=None,
    model: LossModel | None = None,
    chains: int = 2,
    draws: int = 500,
    tune: int = 500,
    seed: int = 0,
    peers: Sequence[type[Peer]] = PEERS,
) -> tuple[pd.DataFrame, object]:
    """Score every method on one fold: one row per (method, held-out setting).

    ``prepared`` is the loss model compiled on the whole of ``sweeps`` with
    ``weighted=True`` (:meth:`bayes_steplaw.bayes.model.Model.prepare`); without it one is
    compiled here. Returns the rows (columns ``split, fold, method, setting, family, group``
    and :data:`METRICS`) and the fold's loss posterior.
    """
    model = model or (prepared.model if prepared is not None else LossModel())
    if prepared is None:
        prepared = model.prepare(sweeps, weighted=True)
    table = with_groups(sweeps, model.diverged)
    train = set(fold.train)
    weights = prepared.built.design.runs["setting"].isin(train).to_numpy(float)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fold fits are small by design; the gate is recorded
        post = prepared.fit(weights, chains=chains, draws=draws, tune=tune, seed=seed,
                            progressbar=False)  # fmt: skip
    seconds = time.perf_counter() - start
    fitted = [p().fit(table[table["setting"].isin(train)]) for p in peers]
    rows = []
    for setting in fold.test:
        runs = table[table["setting"] == setting].reset_index(drop=True)
        base = {"split": fold.split, "fold": fold.name, "setting": setting,
                "family": str(runs["family"].iloc[0]), "group": fold.groups[setting]}  # fmt: skip
        forecast = bayes_forecast(post, runs, fold.groups[setting], seed)
        # a stuck chain shows in R-hat, not in the gate (small refits never reach ESS 400)
        rows.append(base | {"method": METHODS[0], **score_setting(runs, forecast),
                            "converged": post.converged, "fit_seconds": seconds,
                            "max_r_hat": post.diagnostics.get("max_r_hat")})  # fmt: skip
        for peer in fitted:
            rows.append(base | {"method": peer.name, **score_setting(runs, peer.forecast(runs))})
    return pd.DataFrame(rows), post


# --------------------------------------------------------------------------- tables


def summary_tables(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (split, method, family and all): median loss_r2, mean of the other scores and of
    |best_loss_err|."""
    frames = [rows, rows.assign(family="all")]
    both = pd.concat(frames, ignore_index=True).assign(
        abs_best_loss_err=lambda f: f["best_loss_err"].abs(),
        abs_best_star_err=lambda f: f["best_star_err"].abs(),
    )
    return both.groupby(["split", "method", "family"]).agg(
        settings=("setting", "size"),
        loss_r2_median=("loss_r2", "median"),
        loss_r2_min=("loss_r2", "min"),
        loss_rmse=("loss_rmse", "mean"),
        loss_in_90=("loss_in_90", "mean"),
        loss_logscore=("loss_logscore", "mean"),
        abs_best_loss_err=("abs_best_loss_err", "mean"),
        best_loss_err=("best_loss_err", "mean"),
        abs_best_star_err=("abs_best_star_err", "mean"),
        brier_diverge=("brier_diverge", "mean"),
    )


def paired_table(rows: pd.DataFrame, base: str = METHODS[0], seed: int = 0) -> pd.DataFrame:
    """``base`` minus each peer, per split and score, paired over settings, with a 90%
    bootstrap-over-settings interval (|best_loss_err| compared as absolute errors)."""
    out = []
    scores = {"loss_r2": "loss_r2", "loss_rmse": "loss_rmse", "loss_in_90": "loss_in_90",
              "loss_logscore": "loss_logscore", "abs_best_loss_err": "best_loss_err",
              "brier_diverge": "brier_diverge"}  # fmt: skip
    for split, part in rows.groupby("split"):
        wide = {m: g.set_index("setting") for m, g in part.groupby("method")}
        for peer in [m for m in wide if m != base]:
            for label, col in scores.items():
                a, b = wide[base][col], wide[peer][col].reindex(wide[base].index)
                if label.startswith("abs_"):
                    a, b = a.abs(), b.abs()
                boot = paired_bootstrap((a - b).to_numpy(), seed=seed)
                out.append({"split": split, "comparison": f"{base} - {peer}", "score": label,
                            **boot})  # fmt: skip
    return pd.DataFrame(out).set_index(["split", "comparison", "score"])


def run(
    sweeps: pd.DataFrame | None = None,
    splits: Sequence[str] = ("loso", "extrapolate"),
    *,
    model: LossModel | None = None,
    chains: int = 2,
    draws: int = 500,
    tune: int = 500,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Score the loss model and its peers on every fold of ``splits``; the tidy rows.

    The model is compiled once; each fold samples it with its own run weights.
    """
    from ..datasets.sweeps import load_sweeps

    sweeps = load_sweeps("all") if sweeps is None else sweeps
    model = model or LossModel()
    prepared = model.prepare(sweeps, weighted=True, progressbar=progress)
    folds = [f for split in splits for f in make_folds(sweeps, split, groups=model.groups)]
    rows, start = [], time.perf_counter()
    for i, fold in enumerate(folds):
        part, _ = fold_rows(fold, sweeps, prepared=prepared, chains=chains, draws=draws,
                            tune=tune, seed=seed + i)  # fmt: skip
        rows.append(part)
        if progress:
            done = time.perf_counter() - start
            eta = done / (i + 1) * (len(folds) - i - 1)
            print(f"fold {i + 1}/{len(folds)} ({fold.split}: {fold.name[:40]}) done; "
                  f"{done:.0f} s so far, ETA {eta:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def report(rows: pd.DataFrame) -> str:
    """The summary and paired tables as Markdown."""
    summary = summary_tables(rows).round(4)
    paired = paired_table(rows).round(4)
    return "\n\n".join(
        [
            "## Per split, method and family",
            markdown_table(summary.reset_index()),
            "## Paired differences (90% bootstrap over settings)",
            markdown_table(paired.reset_index()),
        ]
    )


def to_records(rows: pd.DataFrame, title: str | None = None, note: str = "") -> dict:
    """The summary and paired tables as evaluation records (``{"title", "text", "tables"}``,
    the form :func:`bayes_steplaw.bayes.card.evaluation_sections` renders in a model card)."""
    splits = ", ".join(sorted(rows["split"].unique()))
    bayes = rows[rows["method"] == METHODS[0]]
    text = (
        f"Split(s) {splits}: {rows['setting'].nunique()} held-out settings, methods "
        f"{', '.join(METHODS)} (module docstring of bayes_steplaw.evaluate.loss). Per "
        "held-out setting, over all its runs: loss_r2 (median over settings) and loss_rmse of "
        "the predictive median over the runs that did not diverge, loss_in_90 the share of "
        "them inside the 90% predictive interval of the loss a run reports, loss_logscore "
        "their mean log predictive density, best_loss_err the predicted minus the observed "
        "best run of the sweep, brier_diverge over all runs. Loss-model refits: "
        f"{int(bayes['converged'].sum())} of {len(bayes)} passed the convergence gate."
        + (f" {note}" if note else "")
    )
    summary = summary_tables(rows).round(4).reset_index()
    paired = paired_table(rows).round(4).reset_index()
    return {
        "title": title or f"Held-out loss evaluation ({splits})",
        "text": text,
        "tables": {
            "Per split, method and family": summary.to_dict("records"),
            "Paired differences (90% bootstrap over settings)": paired.to_dict("records"),
        },
    }


def gallery_tables(
    post, sweeps: pd.DataFrame, settings: Sequence[str], curve_setting: str, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The data of the loss gallery figure, from a posterior that did not see ``settings``.

    Returns ``runs`` (every run of ``settings`` with its observed loss and the predictive
    median, 90% interval and P(diverge)) and ``curves`` (loss against lr on a fine grid at
    four batch sizes of ``curve_setting``, with the same columns).
    """
    table = with_groups(sweeps, post.metadata["diverged_ratio"])
    parts = []
    for setting in settings:
        runs = table[table["setting"] == setting].reset_index(drop=True)
        group = str(runs["group"].iloc[0])
        frame = post.predict_loss(
            runs["N"].to_numpy(float), runs["D"].to_numpy(float), runs["lr"].to_numpy(float),
            runs["batch_tokens"].to_numpy(float), group=group, seed=seed, allow_unconverged=True,
        ).to_dataframe(PROB)  # fmt: skip
        keep = ["setting", "family", "batch_sequences", "loss", "diverged"]
        parts.append(pd.concat([runs[keep], frame], axis=1))
    runs = pd.concat(parts, ignore_index=True)
    one = table[table["setting"] == curve_setting]
    lr = np.exp(np.linspace(np.log(one["lr"].min()), np.log(one["lr"].max()), 60))
    batches = np.array([64, 256, 1024, 2048]) * float(one["seq_len"].iloc[0])
    curves = post.predict_loss(
        float(one["N"].iloc[0]), float(one["D"].iloc[0]), lr[None, :], batches[:, None],
        group=str(one["group"].iloc[0]), seed=seed, allow_unconverged=True,
    ).to_dataframe(PROB)  # fmt: skip
    return runs, curves.assign(setting=curve_setting)
