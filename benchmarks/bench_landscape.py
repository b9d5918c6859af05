"""Benchmark: the loss-landscape model on the released dense + MoE sweeps.

Prints measured figures (not a test):

1. posterior-predictive check of the full fit: for every run in the fit's window, the 90%
   predictive interval of its relative loss against the observed one; coverage overall, per
   family and per setting (plus, for information, runs beyond the window the fit never saw);
2. leave-one-setting-out (LOSO) refits, one per setting, run in parallel processes that each
   compile the model once (a ``run_weight`` data vector zeroes the held-out setting's runs;
   nutpie swaps it in without recompiling). From each refit:

   * calibration: every run of the held-out setting gets its predicted plateau probability
     (``predictive=True``: run noise included); binned, against the fraction of those runs
     whose relative loss to the setting's observed minimum is within ``tol`` (reliability
     table);
   * accuracy: ``recommend(N, D)`` for the held-out setting, scored by the paper's metric, the
     relative loss of the nearest run on that setting's grid (in ln lr, ln batch) to the
     setting's minimum. Peers scored the same way: the paper's published constants (in
     sample for the paper) and the paper's bootstrap-OLS recipe refitted on the pooled dense +
     MoE runs without the held-out setting.

Run from the repository root (about 6 minutes on 2 cores with the defaults)::

    BAYES_STEPLAW_DATA=../shared/data/steplaw python benchmarks/bench_landscape.py

``--draws``/``--tune``/``--chains`` set the size of each LOSO refit; ``--posterior`` the full fit
for the predictive check (default: the shipped ``models/landscape.nc``; fitted if missing).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("BAYES_STEPLAW_DATA", str(ROOT.parent / "shared/data/steplaw"))

from bayes_steplaw import DEFAULT_TOL, load_sweeps  # noqa: E402
from bayes_steplaw.bootstrap import BootstrapOLS  # noqa: E402
from bayes_steplaw.datasets.sweeps import group_path, relative_loss  # noqa: E402

BINS = np.array([0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0 + 1e-9])
_STATE: dict = {}


# --------------------------------------------------------------------------- predictive check


def predictive_check(post, sweeps: pd.DataFrame, seed: int = 0) -> None:
    """Coverage of 90% posterior-predictive intervals of every run's relative loss."""
    rng = np.random.default_rng(seed)
    for label, window in (("in the fit's window", None), ("all runs within 10%", 0.10)):
        pred = post.run_predictions(sweeps, window)
        runs = pred["design"].runs
        nu = post.flat("nu")[:, None]
        draws = pred["mu"] + pred["scale"] * rng.standard_t(nu, size=pred["mu"].shape)
        best = runs.groupby("setting")["loss"].transform("min").to_numpy()
        rel_draws = draws / best - 1.0
        lo, med, hi = np.quantile(rel_draws, [0.05, 0.5, 0.95], axis=0)
        obs = runs["rel_loss"].to_numpy()
        inside = (obs >= lo) & (obs <= hi)
        if window is not None:
            unseen = obs > post.metadata["window"]
            print(
                f"  {label}: {inside.mean():.1%} of {len(obs)}; of the {unseen.sum()} runs beyond "
                f"the window (not fitted): {inside[unseen].mean():.1%}"
            )
            continue
        frame = pd.DataFrame(
            {
                "setting": runs["setting"],
                "family": runs["family"],
                "inside": inside,
                "abs_err": np.abs(med - obs),
                "width": hi - lo,
            }
        )
        print(f"  {label}: {inside.mean():.1%} of {len(obs)} runs inside their 90% interval")
        by_family = frame.groupby("family").agg(
            runs=("inside", "size"),
            coverage=("inside", "mean"),
            median_abs_err=("abs_err", "median"),
        )
        print(by_family.to_string(float_format=lambda v: f"{v:.4f}"))
        per = frame.groupby("setting").agg(
            runs=("inside", "size"),
            coverage=("inside", "mean"),
            median_abs_err=("abs_err", "median"),
            median_width=("width", "median"),
        )
        print(per.to_string(float_format=lambda v: f"{v:.4f}"))


# --------------------------------------------------------------------------- LOSO refits


def _init(window: float, curvature: str) -> None:
    """Worker start: build and compile the weighted model once."""
    warnings.simplefilter("ignore")
    from bayes_steplaw import LandscapeModel

    sweeps = load_sweeps("all")
    model = LandscapeModel(window=window, curvature=curvature)
    _STATE.update(sweeps=sweeps, prepared=model.prepare(sweeps, weighted=True))


def _refit(args: tuple[str, int, int, int, int]) -> dict:
    """Refit without one setting (weight 0, no recompilation); return its predictions."""
    setting, chains, draws, tune, seed = args
    prepared, sweeps = _STATE["prepared"], _STATE["sweeps"]
    weights = (prepared.built.design.runs["setting"] != setting).to_numpy(float)
    post = prepared.fit(
        weights, chains=chains, draws=draws, tune=tune, seed=seed, progressbar=False,
        sampler_kwargs={"cores": 1},
    )  # fmt: skip
    diag = post.diagnostics
    held = sweeps[sweeps["setting"] == setting]
    row = held.iloc[0]
    group = group_path(held.iloc[:1], ("family", "variant")).iloc[0]
    kw = {"group": group, "allow_unconverged": True}
    rec = post.recommend(row["N"], row["D"], **kw)
    lr, bs = held["lr"].to_numpy(float), held["batch_tokens"].to_numpy(float)
    n, d = row["N"], row["D"]
    return {
        "setting": setting,
        "seconds": post.metadata["sample_seconds"],
        "divergences": diag["divergences"],
        "max_r_hat": diag["max_r_hat"],
        "rec": (rec.lr, rec.batch_tokens),
        "median": (rec.lr_median_optimum, rec.batch_tokens_median_optimum),
        "p_pred": post.plateau_probability(n, d, lr, bs, tol=TOL, predictive=True, **kw),
        "p_plain": post.plateau_probability(n, d, lr, bs, tol=TOL, **kw),
    }


TOL = DEFAULT_TOL


def nearest_relative_loss(held: pd.DataFrame, lr: float, bs: float) -> float:
    """The paper's metric: relative loss of the grid run nearest (ln lr, ln B) to the choice."""
    rel = relative_loss(held).to_numpy()
    dist = np.hypot(
        np.log(held["lr"].to_numpy()) - np.log(lr), np.log(held["batch_tokens"]) - np.log(bs)
    )
    return float(rel[np.argmin(dist)])


def reliability(prob: np.ndarray, hit: np.ndarray) -> pd.DataFrame:
    """Binned predicted probability against the observed fraction."""
    which = np.digitize(prob, BINS) - 1
    rows = []
    for i in range(len(BINS) - 1):
        sel = which == i
        last = i == len(BINS) - 2
        rows.append(
            {
                "bin": f"[{BINS[i]:.2f}, {min(BINS[i + 1], 1.0):.2f}" + ("]" if last else ")"),
                "runs": int(sel.sum()),
                "mean_predicted": prob[sel].mean() if sel.any() else np.nan,
                "observed_fraction": hit[sel].mean() if sel.any() else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("bin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--window", type=float, default=0.03)
    parser.add_argument("--curvature", default="ND")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N settings.")
    parser.add_argument("--posterior", type=Path, default=ROOT / "models" / "landscape.nc")
    parser.add_argument("--skip-ppc", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    sweeps = load_sweeps("all")

    from bayes_steplaw import LandscapePosterior, fit

    post = LandscapePosterior.load(args.posterior) if args.posterior.is_file() else None
    if not args.skip_ppc:
        if post is not None:
            print(
                f"\n1. Posterior-predictive check of {args.posterior.name} ({post.n_samples} draws)"
            )
        else:
            post = fit(sweeps, model="landscape", progressbar=False)
            print(f"\n1. Posterior-predictive check of a fresh fit ({post.n_samples} draws)")
        predictive_check(post, sweeps)

    settings = sorted(sweeps["setting"].unique())[: args.limit]
    print(
        f"\n2. Leave-one-setting-out: {len(settings)} refits x {args.chains} chains x "
        f"{args.draws} draws ({args.tune} tuning), {args.workers} processes, curvature "
        f"{args.curvature!r}, window {args.window:g}, tol {TOL:g}"
    )
    start = time.perf_counter()
    tasks = [(s, args.chains, args.draws, args.tune, i) for i, s in enumerate(settings)]
    with ProcessPoolExecutor(
        args.workers, initializer=_init, initargs=(args.window, args.curvature)
    ) as pool:
        results = list(pool.map(_refit, tasks))
    wall = time.perf_counter() - start
    print(
        f"  wall {wall:.0f} s; per refit sampling {np.median([r['seconds'] for r in results]):.1f}"
        f" s (median); divergences total {sum(r['divergences'] for r in results)}; worst R-hat "
        f"{max(r['max_r_hat'] for r in results):.3f}"
    )

    published = BootstrapOLS.from_published()
    # reference for the event the probability is defined on: L* of each setting from the
    # full fit (the bottom of its bowl; in sample, used only as the yardstick)
    star = None
    if post is not None:
        star = dict(zip(post.posterior["setting"].values, np.median(post.flat("loss_star"), 0)))
    rows, probs, plain, hits, hits_star = [], [], [], [], []
    for r in results:
        held = sweeps[sweeps["setting"] == r["setting"]]
        n, d = held["N"].iloc[0], held["D"].iloc[0]
        rest = sweeps[sweeps["setting"] != r["setting"]]
        ols = BootstrapOLS.fit(rest, n_boot=1000, seed=0).predict(n, d).iloc[0]
        pub = published.predict(n, d).iloc[0]
        rows.append(
            {
                "setting": r["setting"],
                "family": held["family"].iloc[0],
                "bayes_recommend": nearest_relative_loss(held, *r["rec"]),
                "bayes_median_optimum": nearest_relative_loss(held, *r["median"]),
                "paper_published": nearest_relative_loss(held, pub["lr"], pub["batch_tokens"]),
                "ols_recipe_loso": nearest_relative_loss(held, ols["lr"], ols["batch_tokens"]),
                "lr_ratio_rec_to_best": r["rec"][0] / held.loc[held["loss"].idxmin(), "lr"],
                "bs_ratio_rec_to_best": r["rec"][1]
                / held.loc[held["loss"].idxmin(), "batch_tokens"],
            }
        )
        probs.append(r["p_pred"])
        plain.append(r["p_plain"])
        hits.append((relative_loss(held) <= TOL).to_numpy())
        if star is not None:
            hits_star.append(held["loss"].to_numpy() <= (1 + TOL) * star[r["setting"]])
    table = pd.DataFrame(rows).set_index("setting")
    probs, plain, hits = np.concatenate(probs), np.concatenate(plain), np.concatenate(hits)

    print("\n  Calibration (held-out runs, predictive plateau probability, tol 0.25%):")
    print(reliability(probs, hits).to_string(float_format=lambda v: f"{v:.3f}"))
    brier = np.mean((probs - hits) ** 2)
    print(f"  Brier score {brier:.4f} (climatology {np.mean((hits.mean() - hits) ** 2):.4f})")
    if hits_star:
        hits_star = np.concatenate(hits_star)
        print(
            "\n  Same probabilities against the event they are defined on, loss <= (1 + tol) L*"
            " (L*: the setting's bowl bottom from the full fit, not its noisy observed minimum):"
        )
        print(reliability(probs, hits_star).to_string(float_format=lambda v: f"{v:.3f}"))
    print("\n  Same, without run noise (predictive=False):")
    print(reliability(plain, hits).to_string(float_format=lambda v: f"{v:.3f}"))

    scores = ["bayes_recommend", "bayes_median_optimum", "paper_published", "ols_recipe_loso"]
    print("\n  Accuracy: relative loss (per mille) of the nearest grid run to each choice")
    summary = table.groupby("family")[scores].mean() * 1e3
    summary.loc["all"] = table[scores].mean() * 1e3
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    wins = table["bayes_recommend"] <= table[["paper_published", "ols_recipe_loso"]].min(axis=1)
    print(
        f"  settings where the Bayes choice is at least as good as both peers: "
        f"{wins.sum()}/{len(table)}"
    )
    print("\n  Per setting (relative loss x 1000; ratios of the Bayes choice to the best run):")
    shown = table.copy()
    shown[scores] = shown[scores] * 1e3
    print(shown.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
