"""Model cards: Markdown from the sections every model supplies, and the shipped models.

``bayes-steplaw card NAME`` renders the card of the shipped posterior ``models/NAME.nc``;
with ``--refit`` it first fits the model on the released dense + MoE data and writes the
posterior too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from .._format import markdown_table
from .._io import write_text
from .._resources import resource_path, source_checkout
from ..bootstrap import PAPER_TABLE2, BootstrapOLS
from ..datasets.registry import registered_files
from ..datasets.sweeps import load_sweeps
from .law import PRIORS, StepLawPosterior
from .model import fit
from .posterior import load

_EXPONENTS = {"alpha": "α (lr ∝ N^α)", "beta": "β (lr ∝ D^β)", "gamma": "γ (B ∝ D^γ)"}


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
        contrasts = ["## MoE − dense offsets", "", markdown_table(cmp), ""]
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
        markdown_table(exponent_table(post, refit)),
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
        markdown_table(main),
        "",
        "### Group offsets and scales",
        "",
        markdown_table(offsets),
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
    sections += [*post.card_sections(), ""]
    if "evaluation" in m:
        sections += [*evaluation_sections(m["evaluation"]), ""]
    sections += ["## Regenerate", "", "```bash", command, "```", ""]
    return "\n".join(sections)


def evaluation_sections(evaluation: dict | list[dict]) -> list[str]:
    """The held-out evaluation tables recorded in a posterior's metadata (``evaluation``: one
    or a list of ``{"title": str, "text": str, "tables": {name: records}}``, as
    :meth:`bayes_steplaw.Evaluation.to_records` writes them)."""
    out = []
    for ev in [evaluation] if isinstance(evaluation, dict) else evaluation:
        out += [f"## {ev.get('title', 'Held-out evaluation')}", "", ev.get("text", ""), ""]
        for name, records in ev.get("tables", {}).items():
            if not records:
                continue
            frame = pd.DataFrame(records)
            out += [f"### {name}", "", markdown_table(frame.set_index(frame.columns[0])), ""]
    return out


def card_command(name: str) -> str:
    """The commands that regenerate a shipped model and its card."""
    splits = ("loso", "extrapolate")
    evaluate = [
        f"bayes-steplaw evaluate --split {s} --out {s}.csv --report {s}.md --records {s}.json"
        for s in splits
    ]
    evaluations = " ".join(f"--evaluation {s}.json" for s in splits)
    return "\n".join([*evaluate, f"bayes-steplaw card {name} --refit {evaluations}"])


def write_card(post: StepLawPosterior, path: str | Path) -> Path:
    """Render ``post``'s card (with the paper's recipe refitted on the released data beside
    it) and write it to ``path``."""
    refit = BootstrapOLS.fit(load_sweeps("all"), seed=0)
    path = Path(path)
    write_text(path, render_card(post, card_command(post.kind), refit))  # atomic
    return path


SHIPPED_DRAWS = 1000
"""At most this many draws ship (the chains thinned evenly; their diagnostics kept)."""


def write_model(
    name: str,
    out_dir: str | Path | None = None,
    *,
    refit: bool = False,
    evaluations: list[dict] | None = None,
    candidates: list[dict] | None = None,
    **fit_kwargs,
) -> StepLawPosterior:
    """Write ``NAME.md`` (and, with ``refit``, first fit and write ``NAME.nc``) in ``out_dir``.

    Without ``refit`` the card is rendered from the posterior already in ``out_dir`` (or the
    shipped one). With it, the model is fitted on the released dense + MoE data at its default
    sampler settings, thinned to at most :data:`SHIPPED_DRAWS` draws. ``evaluations`` (records of
    :meth:`bayes_steplaw.Evaluation.to_records`) replace the posterior's ``evaluation``
    metadata, ``candidates`` (one record per model variant tried, with its scores) its
    ``candidates`` (kept across refits), and the posterior is written again with them.
    """
    if out_dir is None:
        root = source_checkout()
        out_dir = root / "models" if root is not None else resource_path("models")
    out_dir = Path(out_dir)
    path = out_dir / f"{name}.nc"
    if refit:
        sweeps = load_sweeps("all")
        post = fit(sweeps, model=name, **fit_kwargs)
        # every answer reduces each draw over its inputs: ~1000 draws keep a prediction on
        # 10,000 settings near a second, and thinning a chain costs little of its ESS
        step = -(-post.n_samples // SHIPPED_DRAWS)
        if step > 1:
            post = post.thin(step)
        if path.is_file():  # the table of candidates tried is evidence, not part of the fit
            kept = load(path).metadata.get("candidates")
            if kept:
                post.metadata["candidates"] = kept
        post.metadata["package_version"] = __version__
        post.save(path)
    else:
        post = load(path if path.is_file() else resource_path("models", f"{name}.nc"))
    if evaluations or candidates:
        if evaluations:
            post.metadata["evaluation"] = list(evaluations)
        if candidates:
            post.metadata["candidates"] = list(candidates)
        post.save(path)
    write_card(post, out_dir / f"{name}.md")
    return post
