"""Few-shot transfer: how many small sweeps of my architecture do I need?

What it measures: the loss model's predictions for a new architecture as it is given more of
its own settings. Hold out one MoE variant of the released data; it plays a user's new
architecture. The fit (the loss model, :class:`bayes_steplaw.LossModel`, the default of
:func:`bayes_steplaw.fit`) sees the released data without that variant, plus k of the
variant's 4 settings (smallest compute first), pooled as ``fit(..., with_released=True)`` pools
them: the variant becomes a new family ``user:<variant>`` of its own lab (``lab="user"``), with
its own offsets and partially pooled deviations of the exponents. The variant's remaining
(larger) settings are then predicted:

* k = 0: no run of the variant; the prediction is for a never-seen family (group ``new``,
  and, for a user who knows it is an MoE, ``moe/new``);
* k = 1, 2, 3: ``user:<variant>`` learnt from its k smallest settings;
* k = 4: every setting seen, the largest predicted in sample (a reference).

For each predicted setting: whether the 90% interval of ``kind="sweep"`` (the best run a grid
sweep will find) holds the setting's observed best run, in lr and in batch; the interval's
width (upper / lower); and the paper's metric, the relative loss of the grid run nearest to
the posterior median (distance in grid steps: √2 in lr, 2 in batch). Every variant is held out
in turn. The baseline is the paper's published (dense) law, which knows no variant: the script
prints its relative loss over each k's. Goal: coverage near the nominal 90% at every k, widths
that shrink with k, and a relative loss below the paper law's from k = 1.

Refits reuse one compiled model per variant (``LossModel.prepare(weighted=True)``: the
variant's unseen settings get weight 0, which leaves their runs out of the likelihood), so the
fits cost sampling only. 20 NUTS fits: tens of minutes on two cores. Writes
``docs/gallery/data/transfer.json`` for the gallery (``--out`` elsewhere).

Run: ``python benchmarks/bench_transfer.py [--draws 500] [--out docs/gallery/data/transfer.json]``
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_steplaw as bsl

GROUPS = ("family", "variant")
PROB = 0.9
STEPS = (2**0.5, 2.0)  # the released grids' lr and batch steps


def nearest_run_loss(setting: pd.DataFrame, lr: float, batch: float) -> float:
    """Relative loss of the run of ``setting`` nearest to (lr, batch), in grid steps."""
    rel = setting["loss"] / setting["loss"].min() - 1.0
    dist = np.hypot(
        np.log(setting["lr"] / lr) / math.log(STEPS[0]),
        np.log(setting["batch_tokens"] / batch) / math.log(STEPS[1]),
    )
    return float(rel.to_numpy()[np.argmin(dist.to_numpy())])


def score(post, setting: pd.DataFrame, group: str, k: int, variant: str, label: str) -> dict:
    """Coverage, width and nearest-run relative loss of one predicted setting."""
    n, d = float(setting["N"].iloc[0]), float(setting["D"].iloc[0])
    pred = post.predict(n, d, group=group, kind="sweep", allow_unconverged=True)
    row = pred.to_dataframe(PROB).iloc[0]
    best = setting.loc[setting["loss"].idxmin()]
    return {
        "variant": variant,
        "k": k,
        "label": label,
        "group": group,
        "D": d,
        "lr_covered": bool(row["lr_lower"] <= best["lr"] <= row["lr_upper"]),
        "batch_covered": bool(
            row["batch_tokens_lower"] <= best["batch_tokens"] <= row["batch_tokens_upper"]
        ),
        "lr_width": float(row["lr_upper"] / row["lr_lower"]),
        "batch_width": float(row["batch_tokens_upper"] / row["batch_tokens_lower"]),
        "relative_loss": nearest_run_loss(setting, row["lr_median"], row["batch_tokens_median"]),
    }


def run(draws: int, seed: int, ks: tuple[int, ...] = (0, 1, 2, 3, 4)) -> tuple[pd.DataFrame, dict]:
    released = bsl.load_sweeps("all")
    moe = released[released["family"] == "moe"]
    settings = {"chains": 2, "draws": draws, "tune": draws, "seed": seed, "progressbar": False}
    rows, fits = [], []
    paper = bsl.BootstrapOLS.from_published()
    for variant in sorted(moe["variant"].unique()):
        held = moe[moe["variant"] == variant]
        base = released[released["variant"] != variant]
        order = (
            held.drop_duplicates("setting")
            # float: N * D of the released files' int64 columns overflows int64
            .assign(compute=lambda f: 6.0 * f["N"].astype(float) * f["D"].astype(float))
            .sort_values("compute")["setting"]
            .tolist()
        )
        # the paper's law: one point per setting, the same whatever k
        for sid in order:
            s = held[held["setting"] == sid]
            p = paper.predict(float(s["N"].iloc[0]), float(s["D"].iloc[0])).iloc[0]
            rows.append(
                {"variant": variant, "k": -1, "label": "paper law", "group": "dense",
                 "D": float(s["D"].iloc[0]), "lr_covered": np.nan, "batch_covered": np.nan,
                 "lr_width": np.nan, "batch_width": np.nan,
                 "relative_loss": nearest_run_loss(s, p["lr"], p["batch_tokens"])}
            )  # fmt: skip
        # k = 0: the released data without the variant; the variant is a never-seen group
        if 0 in ks:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                post0 = bsl.fit(base, groups=GROUPS, **settings)
            fits.append({"variant": variant, "k": 0, "seconds": time.perf_counter() - start,
                         "max_r_hat": post0.diagnostics["max_r_hat"]})  # fmt: skip
            for sid in order:
                s = held[held["setting"] == sid]
                rows.append(score(post0, s, "new", 0, variant, "0: new family"))
                rows.append(score(post0, s, "moe/new", 0, variant, "0: moe/new"))
        seen_k = [kk for kk in ks if kk >= 1]
        if seen_k:
            # k >= 1: the variant pooled as the user's own family, compiled once
            user = held.assign(arch=variant)
            pooled = bsl.pool_with_released(user, ("arch",), released=base)
            group = bsl.USER_PREFIX + variant
            start = time.perf_counter()
            prepared = bsl.LossModel(GROUPS).prepare(pooled, weighted=True)
            compile_s = time.perf_counter() - start
            runs = prepared.built.design.runs
            mine = pooled.loc[pooled["source"] == "user", "setting"]
            user_setting = dict(zip(user["setting"], mine))
            for k in seen_k:
                seen = {user_setting[sid] for sid in order[:k]}
                is_user = runs["source"].to_numpy() == "user"
                weights = np.where(is_user & ~runs["setting"].isin(seen).to_numpy(), 0.0, 1.0)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    post = prepared.fit(weights, **settings)
                seconds = time.perf_counter() - start + (compile_s if k == seen_k[0] else 0)
                fits.append(
                    {"variant": variant, "k": k, "max_r_hat": post.diagnostics["max_r_hat"],
                     "seconds": seconds}
                )  # fmt: skip
                targets = order[k:] if k < 4 else order[-1:]
                label = f"{k}: user group" if k < 4 else "4: in sample"
                for sid in targets:
                    rows.append(score(post, held[held["setting"] == sid], group, k, variant, label))
        print(
            f"{variant}: done ({sum(f['seconds'] for f in fits if f['variant'] == variant):.0f} s)"
        )
    rows = pd.DataFrame(rows)
    rows["largest"] = rows["D"] == rows.groupby("variant")["D"].transform("max")
    return rows, {"fits": fits}


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per k (and label): coverage, median widths, relative loss of the nearest run."""
    out = rows.groupby(["k", "label"], sort=True).agg(
        targets=("relative_loss", "size"),
        lr_coverage=("lr_covered", "mean"),
        batch_coverage=("batch_covered", "mean"),
        lr_width=("lr_width", "median"),
        batch_width=("batch_width", "median"),
        relative_loss_mean=("relative_loss", "mean"),
        relative_loss_median=("relative_loss", "median"),
    )
    largest = rows[rows["largest"]].groupby(["k", "label"])["relative_loss"].mean()
    return out.assign(relative_loss_largest=largest).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500, help="draws (and tune) per chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--k", default="0,1,2,3,4", help="settings seen, comma-separated (0 to 4; default all)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/gallery/data/transfer.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    ks = tuple(sorted({int(v) for v in args.k.split(",")}))
    rows, extra = run(args.draws, args.seed, ks)
    table = summarise(rows)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    paper = table.loc[table["label"] == "paper law", "relative_loss_mean"].iloc[0]
    print("\nbaseline: the paper law's mean relative loss over each k's (x > 1: the fit is better)")
    for _, row in table[table["k"] >= 0].iterrows():
        print(f"  {row['label']:<16} {paper / row['relative_loss_mean']:6.2f}x")
    total = time.perf_counter() - start
    print(f"\n{len(extra['fits'])} fits (2 chains x {args.draws} draws), {total:.0f} s in all; "
          f"max R-hat over fits {max(f['max_r_hat'] for f in extra['fits']):.3f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "description": "bench_transfer.py: hold out one MoE variant, give the fit (loss model) k "
        "of its settings (smallest first), predict the rest; kind='sweep', 90% intervals",
        "model": "loss",
        "package_version": bsl.__version__,
        "draws": args.draws,
        "summary": json.loads(table.to_json(orient="records")),
        "rows": json.loads(rows.to_json(orient="records")),
        "fits": extra["fits"],
        "seconds": round(total, 1),
    }
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
