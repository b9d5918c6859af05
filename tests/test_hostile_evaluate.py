"""Hostile inputs to ``bayes-steplaw evaluate --rows`` and to the evaluation's outputs (issue
22): every file is refused early, with one line naming the line and the column, before any
output is written; sizes are bounded; names cannot break the outputs.

Reading rows that could allocate or hang runs bounded in time (``signal.alarm``) and memory
(``tracemalloc`` in process; ``resource.setrlimit(RLIMIT_AS)`` in a subprocess for the CLI).
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_steplaw.cli import app
from bayes_steplaw.evaluate import MAX_BYTES, MAX_ROWS, Evaluation, RowsError, read_rows
from bayes_steplaw.evaluate import rows as rows_module

LIMIT_BYTES = 1 << 30  # address space of the CLI subprocess: it must not need more


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging) if the body takes longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def invoke(*args):
    return CliRunner().invoke(app, ["evaluate", *map(str, args)])


def one_line_error(result, *words):
    """Exit 2, one line of output, naming ``words``."""
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for w in words:
        assert w in result.output, (w, result.output)


def valid_rows(methods=("bayes", "ols"), settings=3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for m in methods:
        for i in range(settings):
            rows.append({"split": "loso", "fold": f"s{i}", "method": m, "setting": f"s{i}",
                         "family": "dense", "rel_loss": rng.uniform(0, 2e-3),
                         "lr_in_90": bool(i % 2), "lr_width_90": 2.0,
                         "loss_r2": rng.uniform(0.5, 1)})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def outputs(tmp_path):
    """Existing output files, which a refused evaluation must leave as they were."""
    paths = {"--out": tmp_path / "out.csv", "--report": tmp_path / "report.md",
             "--records": tmp_path / "records.json"}  # fmt: skip
    for p in paths.values():
        p.write_text("old\n")
    return paths


def refused_before_writing(rows_file: Path, outputs: dict, *words):
    args = [a for option, path in outputs.items() for a in (option, path)]
    result = invoke("--rows", rows_file, *args)
    one_line_error(result, *words)
    for path in outputs.values():
        assert path.read_text() == "old\n", path  # nothing was written
        assert not list(path.parent.glob(f".{path.name}.*.tmp"))  # no temporary file left


# --------------------------------------------------------------------------- size


def write_million_rows(path: Path) -> None:
    with path.open("w") as fh:
        fh.write("split,fold,method,setting,family,rel_loss\n")
        fh.write("".join(f"loso,f{i},bayes,s{i},dense,0.001\n" for i in range(1_000_000)))


def test_a_million_rows_are_refused_after_at_most_max_rows(tmp_path, monkeypatch):
    big = tmp_path / "big.csv"
    write_million_rows(big)
    assert big.stat().st_size < MAX_BYTES  # small rows: the row bound, not the size, refuses
    with deadline(20), pytest.raises(RowsError, match=f"more than {MAX_ROWS:,} rows"):
        read_rows(big)
    # the rows are read one at a time: memory follows the bound, not the file (37 MB here)
    monkeypatch.setattr(rows_module, "MAX_ROWS", 2000)
    tracemalloc.start()
    try:
        with deadline(20), pytest.raises(RowsError, match="more than 2,000 rows"):
            read_rows(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"reading 2,000 rows took {peak / 2**20:.1f} MiB"


@pytest.mark.slow  # a subprocess, bounded in time and memory
def test_the_cli_refuses_a_million_rows_within_a_gib(tmp_path, outputs):
    big = tmp_path / "big.csv"
    write_million_rows(big)

    def bound():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))

    out = subprocess.run(
        [sys.executable, "-m", "bayes_steplaw", "evaluate", "--rows", str(big),
         "--out", str(outputs["--out"]), "--report", str(outputs["--report"])],
        capture_output=True, text=True, timeout=120, preexec_fn=bound,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"more than {MAX_ROWS:,} rows" in out.stderr and out.stderr.count("\n") == 1
    assert outputs["--out"].read_text() == "old\n"


def test_a_file_above_the_size_bound_is_refused_without_reading_it(tmp_path, outputs):
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: nothing is on disk, nothing is read
    with deadline(10):
        refused_before_writing(huge, outputs, "64.0 MiB", "at most 64 MiB")


def test_a_line_longer_than_the_bound_is_refused(tmp_path):
    long = tmp_path / "long.csv"
    long.write_text("split,fold,method,setting,family\n" + "x" * (2 << 20) + "\n")
    with deadline(10), pytest.raises(RowsError, match="line 2 is longer than 1,048,576"):
        read_rows(long)


def test_a_fifo_is_refused_without_blocking(tmp_path, outputs):
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    with deadline(10):
        refused_before_writing(fifo, outputs, "FIFO")


def test_an_output_fifo_is_refused_before_any_work(tmp_path):
    rows = tmp_path / "rows.csv"
    valid_rows().to_csv(rows, index=False)
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    with deadline(10):
        one_line_error(invoke("--rows", rows, "--out", fifo), "--out", "FIFO")


# --------------------------------------------------------------------------- hostile rows


def write(frame_or_text, path: Path) -> Path:
    if isinstance(frame_or_text, str):
        path.write_text(frame_or_text)
    else:
        frame_or_text.to_csv(path, index=False)
    return path


def test_a_string_in_a_metric_column_names_its_line_and_column(tmp_path, outputs):
    rows = valid_rows().astype({"rel_loss": object})
    rows.loc[2, "rel_loss"] = "=1+1"  # data row 3: line 4
    refused_before_writing(write(rows, tmp_path / "r.csv"), outputs,
                           "line 4, column rel_loss", "'=1+1' is not a number")  # fmt: skip


def test_garbage_in_a_yes_no_column_names_its_line_and_column(tmp_path, outputs):
    rows = valid_rows().astype({"lr_in_90": object})
    rows.loc[0, "lr_in_90"] = "maybe"
    refused_before_writing(write(rows, tmp_path / "r.csv"), outputs,
                           "line 2, column lr_in_90", "not True or False")  # fmt: skip


def test_a_header_only_file_is_refused(tmp_path, outputs):
    path = write("split,fold,method,setting,family,rel_loss\n", tmp_path / "r.csv")
    refused_before_writing(path, outputs, "has a header but no rows")
    refused_before_writing(write("", tmp_path / "empty.csv"), outputs, "is empty")


def test_rows_without_the_packages_method_or_with_one_method_are_refused(tmp_path, outputs):
    path = write(valid_rows(("ols", "paper")), tmp_path / "r.csv")
    refused_before_writing(path, outputs, "no rows of method 'bayes'", "--baseline",
                           "'ols', 'paper'")  # fmt: skip
    path = write(valid_rows(("bayes",)), tmp_path / "one.csv")
    refused_before_writing(path, outputs, "one method only ('bayes')")
    # another baseline is a choice, not an error
    assert invoke("--rows", tmp_path / "r.csv", "--baseline", "ols").exit_code == 0


def test_a_duplicated_header_is_refused(tmp_path, outputs):
    text = valid_rows().to_csv(index=False)
    header, rest = text.split("\n", 1)
    twice = write(header + ",rel_loss\n" + rest.replace("\n", ",0\n"), tmp_path / "twice.csv")
    refused_before_writing(twice, outputs, "line 1", "names 'rel_loss' twice", "fields 6 and 10")
    lines = text.splitlines()
    again = write("\n".join([*lines[:3], lines[0], *lines[3:]]) + "\n", tmp_path / "again.csv")
    refused_before_writing(again, outputs, "line 4 repeats the header")


def test_a_ragged_row_binary_or_non_utf8_file_is_refused(tmp_path, outputs):
    text = valid_rows().to_csv(index=False)
    lines = text.splitlines()
    ragged = write("\n".join([*lines[:2], lines[2] + ",extra", *lines[3:]]) + "\n",
                   tmp_path / "ragged.csv")  # fmt: skip
    refused_before_writing(ragged, outputs, "line 3: 10 fields, but the header has 9")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(text.encode() + b"\x00\x01\x02\n")
    refused_before_writing(binary, outputs, "NUL byte")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(text.replace("dense", "d\xe9nse").encode("latin-1"))
    refused_before_writing(latin, outputs, "not UTF-8 text")
    missing = write(valid_rows().drop(columns="method"), tmp_path / "missing.csv")
    refused_before_writing(missing, outputs, "lacks column(s) ['method']")


def test_repeated_rows_count_once_and_conflicting_ones_are_refused(tmp_path, outputs):
    rows = valid_rows()
    doubled = pd.concat([rows, rows.iloc[[0, 0, 0]]], ignore_index=True)
    table = read_rows(write(doubled, tmp_path / "doubled.csv"))
    assert len(table) == len(rows) and table.attrs["repeated_rows"] == 3
    ev = Evaluation(table)
    mean = rows.groupby("method")["rel_loss"].mean() * 1000
    assert ev.mean_relative_loss()["dense"].to_dict() == pytest.approx(mean.to_dict())
    # the Python API too: a row given twice is one row
    assert len(Evaluation(doubled).table) == len(rows)
    result = invoke("--rows", tmp_path / "doubled.csv", "--out", tmp_path / "once.csv")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "once.csv")) == len(rows)
    conflict = pd.concat([rows, rows.iloc[[1]].assign(rel_loss=0.5)], ignore_index=True)
    path = write(conflict, tmp_path / "conflict.csv")
    refused_before_writing(path, outputs, "line 8 scores (split, fold, method, setting)",
                           "as line 3 does")  # fmt: skip


# --------------------------------------------------------------------------- the outputs


HOSTILE = ('=HYPERLINK("http://x")', "a|b\n# not a heading", "\x1b[2Jclear")


def test_outputs_escape_formulas_markdown_and_terminal_controls(tmp_path):
    rows = valid_rows(("bayes", *HOSTILE))
    path = write(rows, tmp_path / "r.csv")
    out, report, records = tmp_path / "o.csv", tmp_path / "r.md", tmp_path / "r.json"
    result = invoke("--rows", path, "--out", out, "--report", report, "--records", records)
    assert result.exit_code == 0, result.output
    # --out: a text cell a spreadsheet would run is written as text
    written = pd.read_csv(out)
    assert '\'=HYPERLINK("http://x")' in set(written["method"])
    assert not (written["method"].str.startswith("=")).any()
    # --report: a name cannot break a table or start a heading
    md = report.read_text()
    assert not re.search(r"^# not a heading", md, flags=re.M)
    tables = re.findall(r"(?m)^## (.+)\n\n((?:\|[^\n]*\n)+)", md)
    assert tables
    for _, table in tables:
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in table.strip().splitlines()}
        assert len(widths) == 1, table  # every row has as many cells as the header
    assert "a\\|b # not a heading" in md
    # --records: rendered into model cards, escaped alike; strict JSON
    text = records.read_text()
    assert "NaN" not in text and "a\\\\|b # not a heading" in text
    # the terminal: no escape sequence reaches it
    assert "\x1b" not in result.output and "\\x1b[2Jclear" in result.output


def test_the_python_api_writes_through_the_atomic_helper(tmp_path):
    ev = Evaluation(valid_rows(("bayes", "=cmd()")))
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    from bayes_steplaw._io import OutputPathError

    with deadline(10), pytest.raises(OutputPathError, match="FIFO"):
        ev.to_csv(fifo)  # pandas itself would block on the FIFO
    out = ev.to_csv(tmp_path / "e.csv")
    assert "'=cmd()" in set(pd.read_csv(out)["method"])
