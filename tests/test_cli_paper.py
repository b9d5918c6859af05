"""`bayes-steplaw predict --method paper` and `bayes-steplaw reproduce`."""

from __future__ import annotations

import io
import os
import re
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_steplaw.cli import app
from bayes_steplaw.datasets.registry import fetch

runner = CliRunner()


def upstream_text(N: float, D: float, seq_len: int) -> str:
    """The upstream tool's `pred-opt-lr-bs N D seq_len` output, rebuilt here with pandas."""
    params = pd.read_csv(fetch("1004_fitted_lr_bs_scaling_model_parameters.csv"))
    df = pd.DataFrame([{"N": float(N), "D": float(D), "seq_len": int(seq_len)}])
    x = np.log(df[["N", "D"]].to_numpy())
    lr_coef = np.array([params["lr_coefN"].mean(), params["lr_coefD"].mean()])
    df["lr"] = np.exp(x @ lr_coef + params["lr_intercept"].mean())
    df["bs"] = np.exp(
        x[:, 1:] @ np.array([params["bs_coefD"].mean()]) + params["bs_intercept"].mean()
    )
    df["lr"] = df["lr"].apply(lambda v: f"{v:.3e}")
    df["bs_in_sample"] = df.eval("bs/seq_len")
    buf = io.StringIO()
    with redirect_stdout(buf):
        print(df[["N", "D", "seq_len", "lr", "bs", "bs_in_sample"]].to_csv(sep=" ", index=False))
    return buf.getvalue()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_raw_output_is_the_upstream_text():
    result = invoke("predict", "7e9", "1.4e12", "--method", "paper", "--raw")
    assert result.exit_code == 0, result.output
    assert result.stdout == upstream_text(7e9, 1.4e12, 2048)
    assert "9.347e-04" in result.stdout.split(os.linesep)[1]


def test_raw_output_other_seq_len():
    result = invoke("predict", "1e9", "2e11", "--method", "paper", "--raw", "--seq-len", "4096")
    assert result.exit_code == 0, result.output
    assert result.stdout == upstream_text(1e9, 2e11, 4096)


@pytest.mark.parametrize("raw", [True, False])
def test_suffixes_give_the_same_answer(raw):
    flags = ["--method", "paper"] + (["--raw"] if raw else [])
    a = invoke("predict", "7B", "1.4T", *flags)
    b = invoke("predict", "7e9", "1.4e12", *flags)
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("0", "1.4e12"),
        ("7e9", "0"),
        ("-7e9", "1.4e12"),
        ("7e9", "-1.4e12"),
        ("nan", "1.4e12"),
        ("7e9", "nan"),
        ("abc", "1.4e12"),
        ("7e9", "abc"),
    ],
)
@pytest.mark.parametrize("raw", [True, False])
def test_bad_quantities_exit_2_with_one_line(args, raw):
    flags = ["--method", "paper"] + (["--raw"] if raw else [])
    result = invoke("predict", *args, *flags)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_summary_prints_lr_and_batches_with_90_percent_interval():
    result = invoke("predict", "7e9", "1.4e12", "--method", "paper")
    assert result.exit_code == 0, result.output
    out = result.stdout
    lr_line = next(line for line in out.splitlines() if "peak lr" in line)
    assert re.search(r"9\.347e-04\s+90% \[\S+, \S+\]", lr_line), lr_line
    lo, hi = (float(v) for v in re.search(r"\[(\S+), (\S+)\]", lr_line).groups())
    assert lo < 9.347e-4 < hi
    tokens = next(line for line in out.splitlines() if "batch (tokens)" in line)
    seqs = next(line for line in out.splitlines() if "batch (seqs)" in line)
    assert "90%" in tokens and "90%" in seqs
    # the point batch equals the upstream tool's bs (tokens) and bs_in_sample (sequences)
    values = upstream_text(7e9, 1.4e12, 2048).split(os.linesep)[1].split(" ")
    assert float(tokens.split()[2]) == pytest.approx(float(values[4]), rel=1e-3)
    assert float(seqs.split()[2]) == pytest.approx(float(values[5]), rel=1e-3)
    assert "published bootstrap resamples" in out


def test_summary_prob_changes_interval_label():
    result = invoke("predict", "7e9", "1.4e12", "--method", "paper", "--prob", "0.5")
    assert result.exit_code == 0, result.output
    assert "50% [" in result.stdout


def test_reproduce_prints_three_columns_and_why():
    result = invoke("reproduce", "--n-boot", "200")
    assert result.exit_code == 0, result.output
    out = result.stdout
    header = out.splitlines()[0].split()
    assert header == ["paper_table2", "published_ensemble_mean", "refit_released_dense"]
    for name in ("lr_coef", "alpha", "beta", "bs_coef", "gamma"):
        assert re.search(rf"^{name}\s", out, re.M), name
    alpha = next(line for line in out.splitlines() if line.startswith("alpha")).split()
    assert float(alpha[1]) == -0.713 and round(float(alpha[2]), 3) == -0.713
    assert "not released" in out and "refit" in out


def test_paper_method_answers_many_points():
    import json

    from bayes_steplaw import BootstrapOLS

    result = invoke("predict", "1B,7B", "1T", "--method", "paper", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["predictions"]
    want = BootstrapOLS.from_published().predict([1e9, 7e9], 1e12)
    assert [r["lr"] for r in rows] == pytest.approx(want["lr"].tolist())
    result = invoke("predict", "1B,7B", "1T", "--method", "paper", "--raw")
    assert result.exit_code == 2 and "--raw prints one point" in result.output
