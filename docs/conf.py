"""Sphinx configuration of the bayes-steplaw documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``. The gallery
scripts in ``docs/gallery/`` run at build time on the shipped posteriors; the CLI reference
is generated here from the Typer app's own help texts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

# The released sweep data: CI exports BAYES_STEPLAW_DATA; in a checkout beside the shared data
# folder use that; otherwise the registry finds or downloads the files itself.
if "BAYES_STEPLAW_DATA" not in os.environ:
    shared = (ROOT / ".." / "shared" / "data" / "steplaw").resolve()
    if shared.is_dir():
        os.environ["BAYES_STEPLAW_DATA"] = str(shared)
elif not Path(os.environ["BAYES_STEPLAW_DATA"]).is_absolute():
    # Sphinx reads this file from docs/ and the gallery runs its scripts from docs/gallery: pin
    # a relative path (CI exports ../shared/data/steplaw, relative to the repository root) to
    # the directory the build was started from ($PWD of the shell)
    started = Path(os.environ.get("PWD", str(ROOT)))
    os.environ["BAYES_STEPLAW_DATA"] = str((started / os.environ["BAYES_STEPLAW_DATA"]).resolve())
os.environ["MPLBACKEND"] = "Agg"
os.environ.setdefault("PYTHONHASHSEED", "0")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import bayes_steplaw  # noqa: E402

project = "bayes-steplaw"
author = "the bayes-steplaw developers"
copyright = "2025, the bayes-steplaw developers"
release = bayes_steplaw.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "gallery/README.rst", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
default_role = "literal"

# -- API reference ---------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# -- the gallery -----------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["gallery"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    "reset_modules": ("matplotlib",),
    "matplotlib_animations": False,
    "min_reported_time": 5,
    "capture_repr": ("_repr_html_", "__repr__"),
}

# -- HTML ------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"bayes-steplaw {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}


# -- the planner page (docs/planner.html): the posterior draws it computes from -------------
def _planner_data() -> None:
    from typer.testing import CliRunner

    from bayes_steplaw.cli import app

    out = DOCS / "_static" / "planner.json"
    result = CliRunner().invoke(app, ["export-web", str(out)], env={"COLUMNS": "100"})
    if result.exit_code != 0:
        raise RuntimeError(f"bayes-steplaw export-web {out} failed: {result.output}")


_planner_data()
html_static_path = ["_static"]
html_extra_path = ["planner.html"]
html_show_sourcelink = False


# -- the CLI reference, from the Typer app's help texts ---------------------------------------
def _cli_reference() -> str:
    """reStructuredText of ``--help`` for the app and every (sub)command, in definition order."""
    import typer.core
    import typer.main
    from typer.testing import CliRunner

    from bayes_steplaw.cli import app

    runner = CliRunner()
    root = typer.main.get_command(app)
    env = {"COLUMNS": "96", "NO_COLOR": "1", "TERM": "dumb", "_TYPER_FORCE_DISABLE_TERMINAL": "1"}
    blocks: list[str] = []

    def walk(command, path: list[str]) -> None:
        result = runner.invoke(app, [*path, "--help"], env=env, terminal_width=96)
        if result.exit_code != 0:
            raise RuntimeError(f"bayes-steplaw {' '.join(path)} --help failed: {result.output}")
        title = "bayes-steplaw " + " ".join(path) if path else "bayes-steplaw"
        level = "=-~"[min(len(path), 2)]
        lines = [line.rstrip() for line in result.output.strip("\n").splitlines()]
        body = "\n".join("   " + line if line else "" for line in lines)
        blocks.append(f".. _cli-{'-'.join(path) or 'main'}:\n\n{title}\n{level * len(title)}\n")
        blocks.append(f".. code-block:: text\n\n{body.rstrip()}\n")
        for name, sub in getattr(command, "commands", {}).items():
            if not getattr(sub, "hidden", False):
                walk(sub, [*path, name])

    rich = typer.core.HAS_RICH
    typer.core.HAS_RICH = False  # plain click formatting: no boxes, no colour codes
    try:
        walk(root, [])
    finally:
        typer.core.HAS_RICH = rich
    return "\n".join(blocks)


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


_write_if_changed(DOCS / "generated" / "cli_reference.inc", _cli_reference())


# -- outputs quoted in the user guide, computed from the shipped posterior at build time --------
def _cli_output(*args: str) -> str:
    from typer.testing import CliRunner

    from bayes_steplaw.cli import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "100", "NO_COLOR": "1"})
    if result.exit_code != 0:
        raise RuntimeError(f"bayes-steplaw {' '.join(args)} failed: {result.output}")
    lines = [f"$ bayes-steplaw {' '.join(args)}", *result.output.rstrip().splitlines()]
    return ".. code-block:: console\n\n" + "\n".join(f"   {line}".rstrip() for line in lines) + "\n"


def _python_output(*steps: str, setup: str = "") -> str:
    """A pycon block: each step's source, then what it printed (run in one namespace)."""
    import contextlib
    import io

    namespace: dict = {}
    exec(setup, namespace)
    lines: list[str] = []
    for step in steps:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(step, "<docs>", "exec"), namespace)
        for i, line in enumerate(step.strip().splitlines()):
            lines.append((">>> " if i == 0 else "... ") + line)
        lines += [line.rstrip() for line in buffer.getvalue().rstrip().splitlines()]
    return ".. code-block:: pycon\n\n" + "\n".join(f"   {ln}".rstrip() for ln in lines) + "\n"


_OUTPUTS = {
    "predict": lambda: _cli_output("predict", "7e9", "1.4e12"),
    "predict_law": lambda: _cli_output("predict", "7e9", "1.4e12", "--kind", "law"),
    "recommend": lambda: _cli_output("recommend", "7e9", "1.4e12", "--batch-tokens", "16Mi"),
    "predict_paper": lambda: _cli_output("predict", "7e9", "1.4e12", "--method", "paper"),
    "predict_raw": lambda: _cli_output("predict", "7e9", "1.4e12", "--method", "paper", "--raw"),
    "reproduce": lambda: _cli_output("reproduce"),
    "compare": lambda: _cli_output("compare", "moe", "dense"),
    "python_predict": lambda: _python_output(
        "from bayes_steplaw import load_default",
        "post = load_default('loss')",
        "pred = post.predict(7e9, 1.4e12)  # N parameters, D tokens",
        "print(pred.median())",
        "print(pred.interval(0.9))",
        "print(pred.describe())",
        "print(post.predict(7e9, 1.4e12, kind='law').to_dataframe(0.9).T)",
        setup="import pandas as pd\n"
        "pd.set_option('display.width', 140, 'display.max_columns', 20,\n"
        "              'display.float_format', '{:.4g}'.format)",
    ),
}
for _name, _make in _OUTPUTS.items():
    _write_if_changed(DOCS / "generated" / f"{_name}.inc", _make())


def _prior_table(priors: dict, title: str) -> str:
    """A list-table of a PRIORS mapping: name -> (distribution, *parameters)."""
    rows = [f".. list-table:: {title}", "   :header-rows: 1", "   :widths: 30 70", ""]
    rows += ["   * - parameter", "     - prior"]
    for name, spec in priors.items():
        dist, *params = spec
        shown = ", ".join(f"{p:.4g}" if isinstance(p, float) else str(p) for p in params)
        rows += [f"   * - ``{name}``", f"     - {dist}({shown})"]
    return "\n".join(rows) + "\n"


def _priors() -> str:
    from bayes_steplaw.bayes.labs import LAB_LEVEL_SD, LAB_LEVELS, LAB_PRIORS
    from bayes_steplaw.bayes.law import PRIORS
    from bayes_steplaw.bayes.surface import LOSS_PRIORS

    return (
        _prior_table(PRIORS, "The Step Law of the optima (natural-log scale)")
        + "\n"
        + _prior_table(LOSS_PRIORS, "The loss surface, the best loss, the noise, divergence")
        + "\n"
        + _prior_table({f"sigma_lab_{k}": v for k, v in LAB_PRIORS.items()}
                       | {f"sigma_lab_{k}": ("Fixed", LAB_LEVEL_SD) for k in LAB_LEVELS},
                       "Spread between labs (Fixed: a fixed sd, not learned)")
    )  # fmt: skip


_write_if_changed(DOCS / "generated" / "priors.inc", _priors())


def _demo_logs(base: Path) -> None:
    """A few small Megatron-style training logs in the released naming, for the logs page."""
    import numpy as np

    rng = np.random.default_rng(0)
    for lr, bs in [(1.381e-3, 256), (1.953e-3, 256), (2.762e-3, 256), (1.953e-3, 512)]:
        total = 2000 * 256 // bs  # the same token budget D for every run
        name = f"step2v2_h1280_ffnh9472_numh10_numl10_lr{lr:.3e}_bs{bs}_ti{total}_mlr1.00e-05"
        folder = base / name
        folder.mkdir(parents=True, exist_ok=True)
        floor = 2.30 + 40 * (np.log(lr / 2e-3)) ** 2 / 1e3 + 0.004 * (bs == 512)
        lines = []
        for it in range(10, total + 1, 10):
            loss = floor + 6.0 * np.exp(-it / 150) + 0.01 * rng.standard_normal()
            lines.append(
                f"2024-06-18 10:22:33.123 | INFO     | megatron.core.trainerv2:training_log:412 - "
                f"iter {it:8d}/{total:8d} | consumed samples: {it * bs:10d} | "
                f"lm loss: {loss:.6E} | grad norm: 0.512 |"
            )
        (folder / "train_log_0.txt").write_text("\n".join(lines) + "\n")


def _logs_outputs() -> dict[str, str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "runs"
        _demo_logs(base)
        old = Path.cwd()
        os.chdir(tmp)
        try:
            return {
                "logs_quick_check": _cli_output(
                    "logs", "quick-check", "runs", "step2v2", "--pretty"
                ),
                "logs_collect": _python_output(
                    "from bayes_steplaw import collect_logs",
                    "sweep = collect_logs('runs', 'step2v2', seq_len=2048, min_runs=1)",
                    "print(sweep[['N', 'D', 'lr', 'batch_tokens', 'loss', 'setting']])",
                    setup="import pandas as pd\n"
                    "pd.set_option('display.width', 140, 'display.max_columns', 20,\n"
                    "              'display.float_format', '{:.4g}'.format)",
                ),
            }
        finally:
            os.chdir(old)


for _name, _text in _logs_outputs().items():
    _write_if_changed(DOCS / "generated" / f"{_name}.inc", _text)
