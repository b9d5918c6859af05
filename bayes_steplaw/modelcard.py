"""Fit a shipped model on the released data and write its posterior and model card.

Run from a source checkout::

    python -m bayes_steplaw.modelcard optimum
    python -m bayes_steplaw.modelcard landscape

Each writes ``models/NAME.nc`` (the posterior) and ``models/NAME.md`` (the model card).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from ._resources import source_checkout
from .bootstrap import PAPER_TABLE2, BootstrapOLS
from .model import PRIORS, fit
from .posterior import StepLawPosterior
from .registry import registered_files
from .sweeps import load_sweeps

_EXPONENTS = {"alpha": "α (lr ∝ N^α)", "beta": "β (lr ∝ D^β)", "gamma": "γ (B ∝ D^γ)"}


def _table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a Markdown table (no optional dependency)."""
    cols = [frame.index.name or "", *frame.columns]
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        cells = [f"{v:.{digits}g}" if isinstance(v, (float, np.floating)) else str(v) for v in row]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def _priors() -> str:
    rows = []
    for name, spec in PRIORS.items():
        dist, *params = spec
        rows.append(f"- `{name}` ~ {dist}({', '.join(f'{p:.4g}' for p in params)})")
    return "\n".join(rows)


def exponent_table(
    post: StepLawPosterior, refit: BootstrapOLS | None = None, prob: float = 0.9
) -> pd.DataFrame:
    """Exponents with their credible intervals beside the paper's Table 2, the published
    ensemble and (optionally) the paper's recipe refitted on the same data."""
    summary = post.summary(prob)
    q = [(1 - prob) / 2, (1 + prob) / 2]

    def _exponents(ols: BootstrapOLS) -> dict[str, np.ndarray]:
        coef = ols.coefficients
        return {"alpha": coef["lr_coefN"], "beta": coef["lr_coefD"], "gamma": coef["bs_coefD"]}

    ens = _exponents(BootstrapOLS.from_published())
    ref = _exponents(refit) if refit is not None else None
    rows = {}
    for name, label in _EXPONENTS.items():
        if name not in summary.index:
            continue
        s = summary.loc[name]
        lo, hi = np.quantile(ens[name], q)
        rows[label] = {
            "posterior mean": s["mean"],
            f"{prob:.0%} lower": s["lower"],
            f"{prob:.0%} upper": s["upper"],
            "paper Table 2": PAPER_TABLE2[name],
            "published ensemble": float(np.mean(ens[name])),
            f"ensemble {prob:.0%}": f"[{lo:.3f}, {hi:.3f}]",
        }
        if ref is not None:
            rlo, rhi = np.nanquantile(ref[name], q)
            rows[label]["OLS recipe on these data"] = float(np.nanmean(ref[name]))
            rows[label][f"its bootstrap {prob:.0%}"] = f"[{rlo:.3f}, {rhi:.3f}]"
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "exponent"
    return out


def render_card(post: StepLawPosterior, command: str, refit: BootstrapOLS | None = None) -> str:
    """The Markdown model card of a fitted posterior (``refit``: the paper's recipe on the
    same data, for comparison)."""
    m = post.metadata
    diag = post.diagnostics
    files = "\n".join(f"- `{f.name}` (sha256 `{f.sha256}`)" for f in registered_files()[:2])
    summary = post.summary(0.9)
    offsets = summary[summary.index.str.startswith(("a_", "sigma_"))]
    main = summary.loc[
        [p for p in ("c", "d", "alpha", "beta", "gamma", "delta") if p in summary.index]
    ]
    contrasts = []
    families = [g for g in post.groups_seen if "/" not in g and not g.startswith("@")]
    if {"moe", "dense"} <= set(families):
        cmp = post.compare_offsets("moe", "dense")
        contrasts = ["## MoE − dense offsets", "", _table(cmp), ""]
    sections = [
        f"# Model card: `{m['model']}` (model version {m['model_version']})",
        "",
        "Fitted posterior of the hierarchical Bayesian Step Law on the released Step Law sweeps, "
        f"written by bayes-steplaw {m.get('package_version', __version__)}.",
        "",
        "## Data",
        "",
        f"{m['n_runs']} runs in {m['n_settings']} settings used "
        f"(groups {', '.join(post.groups_seen)}); N from {m['N_range'][0]:.3g} to "
        f"{m['N_range'][1]:.3g}, D from {m['D_range'][0]:.3g} to {m['D_range'][1]:.3g} tokens. "
        f"Fingerprint of the sweep table: `{m['data_sha256']}`. Released files:",
        "",
        files,
        "",
        "## Priors (natural-log scale, ln N and ln D centred at the data's geometric means "
        f"N0 = {np.exp(m['log_n0']):.4g}, D0 = {np.exp(m['log_d0']):.4g})",
        "",
        _priors(),
        "",
        "## Exponents against the paper",
        "",
        _table(exponent_table(post, refit)),
        "",
        "The released rows are not all the paper fitted (SOURCE.md), so the published "
        "ensemble and a fit on the released data differ. Bootstrap intervals come from "
        "resampling runs as if independent; the posterior's also carry the scatter between "
        "settings (runs of one setting share one optimum), which that resampling ignores.",
        "",
        "Posterior-median law for dense models, in the paper's form: "
        + ", ".join(f"{k} = {v:.4g}" for k, v in post.published_form("dense").items())
        + ".",
        "",
        "## Posterior summary (90% equal-tailed intervals)",
        "",
        _table(main),
        "",
        "### Group offsets and scales",
        "",
        _table(offsets),
        "",
        *contrasts,
        "## Diagnostics",
        "",
        f"- converged: **{diag['converged']}** "
        + (f"({'; '.join(diag['problems'])})" if diag["problems"] else ""),
        f"- max R-hat {diag['max_r_hat']:.4f}; min bulk ESS {diag['min_ess_bulk']:.0f}; "
        f"min tail ESS {diag['min_ess_tail']:.0f}; divergences {diag['divergences']}; "
        f"BFMI per chain {', '.join(f'{b:.2f}' for b in diag['bfmi'])}",
        f"- sampler {m['sampler']['name']}: {m['sampler']['chains']} chains x "
        f"{m['sampler']['draws']} draws ({m['sampler']['tune']} tuning), target_accept "
        f"{m['sampler']['target_accept']}, seed {m['seed']}; fit time {m['fit_seconds']:.1f} s "
        f"(compilation included) on a 2-core machine",
        "",
    ]
    extra = getattr(post, "card_sections", None)
    if callable(extra):
        sections += [*extra(), ""]
    sections += ["## Regenerate", "", "```bash", command, "```", ""]
    return "\n".join(sections)


def write_model(name: str, out_dir: str | Path | None = None, **fit_kwargs) -> StepLawPosterior:
    """Fit model ``name`` on the released dense + MoE data; write ``NAME.nc`` and ``NAME.md``."""
    if out_dir is None:
        root = source_checkout()
        if root is None:
            raise RuntimeError("run this from a source checkout, or pass out_dir")
        out_dir = root / "models"
    out_dir = Path(out_dir)
    sweeps = load_sweeps("all")
    post = fit(sweeps, model=name, **fit_kwargs)
    post.metadata["package_version"] = __version__
    post.save(out_dir / f"{name}.nc")
    command = f"python -m bayes_steplaw.modelcard {name}"
    refit = BootstrapOLS.fit(sweeps, seed=0)
    (out_dir / f"{name}.md").write_text(render_card(post, command, refit))
    return post


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m bayes_steplaw.modelcard NAME``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=["optimum", "landscape"])
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    post = write_model(args.name, args.out_dir, progressbar=sys.stderr.isatty())
    print(post)
    return 0 if post.converged else 1


if __name__ == "__main__":
    raise SystemExit(main())
