"""The README works as written: its code blocks run, in order, as a new user would run them.

The Python blocks run with the package's own FutureWarnings and DeprecationWarnings as errors;
the shell blocks' ``bayes-steplaw`` commands run as processes, in a folder that holds the
``my_sweep.csv`` the README's own-sweep flow reads: a sweep like the ones a user has (four
small settings swept one factor at a time around a tuned baseline, 4096-token sequences, the
batch in sequences, other column names), drawn from a known truth.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayes_steplaw as bsl
from bayes_steplaw.calibrate import CalibrationWarning, plan_calibration
from bayes_steplaw.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)


def blocks(section: str | None = None) -> list[tuple[str, str]]:
    """The (language, code) blocks of the README, or of one ``## `` / ``### `` section."""
    text = README.read_text()
    if section is not None:
        start = text.index(section)
        ends = [
            e for e in (text.find(m, start + len(section)) for m in ("\n## ", "\n### ")) if e > 0
        ]
        text = text[start : min(ends) if ends else None]
    return BLOCK.findall(text)


def commands(code: str) -> list[list[str]]:
    """The ``bayes-steplaw`` commands of a shell block (continuation lines joined)."""
    joined = code.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.startswith("bayes-steplaw")]


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cli = [sys.executable, "-m", "bayes_steplaw", *args[1:]]
    out = subprocess.run(cli, cwd=cwd, capture_output=True, text=True, timeout=900,
                         env=os.environ.copy())  # fmt: skip
    assert out.returncode == 0, f"{' '.join(args)}\n{out.stdout}\n{out.stderr}"
    return out


def run_python(code: str, cwd: Path, namespace: dict) -> None:
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", category=FutureWarning, module="bayes_steplaw")
            warnings.filterwarnings("error", category=DeprecationWarning, module="bayes_steplaw")
            exec(compile(code, str(README), "exec"), namespace)
    finally:
        os.chdir(here)


def user_sweep(path: Path) -> None:
    """A user's sweep table with their own column names (the README's my_sweep.csv)."""
    settings = pd.DataFrame(
        [("mine", "mine", n, d) for n, d in ((1.2e8, 2.5e9), (1.2e8, 1e10), (3e8, 6e9),
                                             (3e8, 2.4e10))],
        columns=["family", "variant", "N", "D"],
    )  # fmt: skip
    law = bsl.TrueLaw(c=float(__import__("math").log(2e-3)), offsets_lr={}, offsets_bs={})
    sweeps, _ = bsl.simulate_sweeps(settings, law, seed=7, seq_len=4096, design="one-at-a-time")
    table = pd.DataFrame({
        "params": sweeps["N"], "tokens": sweeps["D"], "peak_lr": sweeps["lr"],
        "batch_size": sweeps["batch_sequences"].astype(int), "final_loss": sweeps["loss"],
        "arch": "mine",
    })  # fmt: skip
    table.to_csv(path, index=False)


@pytest.mark.slow  # a dozen CLI processes (~2 s each)
def test_the_use_section_runs(tmp_path):
    namespace: dict = {}
    for language, code in blocks("## Use"):
        if language == "python":
            run_python(code, tmp_path, namespace)
        else:
            for args in commands(code):
                run_cli(args, tmp_path)
    assert (tmp_path / "grid.csv").is_file()
    assert namespace["rec_16m"].cost > 0  # a fixed batch away from the optimum costs loss


@pytest.mark.slow  # one NUTS fit pooled with the released data (~6 minutes)
def test_the_own_sweep_flow_runs_as_written_at_default_settings(tmp_path, released):
    user_sweep(tmp_path / "my_sweep.csv")
    namespace: dict = {}
    for language, code in blocks("### Your own sweeps"):
        if language == "python":
            namespace["bsl"] = bsl
            run_python(code, tmp_path, namespace)
        else:
            for args in commands(code):
                out = run_cli(args, tmp_path)
                if args[1] == "fit":
                    assert "NOT CONVERGED" not in out.stderr
                    said = out.stdout + out.stderr
    mine = bsl.load(tmp_path / "mine.nc")
    assert mine.converged and mine.seq_len == 4096  # the fit remembers the sequence length
    # the fit says what your group is called now, and it has an offset learnt from its runs
    assert "'mine' -> 'user:mine'" in said and "--group user:mine" in said
    assert {"dense", "moe", "moe/1in8", "user:mine"} <= set(mine.groups_seen)
    pooled = mine.metadata["pooled"]
    assert pooled["user_runs"] == len(pd.read_csv(tmp_path / "my_sweep.csv"))
    assert pooled["released_runs"] == len(released)
    assert np.isfinite(mine.compare_offsets("user:mine", "dense").to_numpy()).all()
    # the CLI answers from the file as Python does; the bare name is refused, the pooled one
    # suggested
    path = str(tmp_path / "mine.nc")
    res = CliRunner().invoke(app, ["predict", "7B", "1.4T", "--posterior", path, "--group",
                                   "user:mine", "--json"])  # fmt: skip
    want = bsl.predict(7e9, 1.4e12, group="user:mine", posterior=mine)
    assert json.loads(res.stdout)["lr_median"] == pytest.approx(float(want.median()["lr"]))
    res = CliRunner().invoke(app, ["predict", "7B", "1.4T", "--posterior", path, "--group", "mine"])
    assert res.exit_code == 2 and "names your group 'user:mine'" in res.output
    # calibration runs planned for your lab (its own deviations) lower the expected excess at
    # the target (the pooled plan's scores: benchmarks/bench_calibration.py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        plan = plan_calibration(7e9, 1.4e11, 3, group="user:mine", posterior=mine, seed=0,
                                candidates=pd.DataFrame({"N": [7e8, 7e7], "D": [1.4e10] * 2}),
                                truths=256, search_truths=32)  # fmt: skip
    assert plan.expected_excess_after < plan.expected_excess_before
    assert len(plan.runs) == 3 and (plan.runs["N"] <= 7e8).all()


def test_every_readme_block_is_run_by_a_test():
    """A new block outside the sections above would go unchecked."""
    checked = blocks("## Use") + blocks("### Your own sweeps")
    rest = [b for b in blocks() if b not in checked]
    shell = [code for lang, code in rest if lang == "bash"]
    assert all(not commands(code) or code.startswith("bayes-steplaw evaluate") for code in shell)
    assert not [code for lang, code in rest if lang == "python"]
