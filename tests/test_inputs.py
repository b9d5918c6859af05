"""The input and output layer (issues 20 and 22): one quantity grammar for Python and the CLI,
unit slips refused or warned about, batches in sequences, shared CLI options, grid files read
strictly, valid JSON, atomic and checked output paths, clean messages.

Parsing and checking functions are tested directly (fast); a few CLI calls check the wiring,
most of them refused before any posterior is loaded. Hostile files are bounded in time by an
alarm (or run in a subprocess with a timeout and an address-space limit).
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import stat
import subprocess
import sys
import typing
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import bayes_steplaw as bsl
from bayes_steplaw import _io, _validate
from bayes_steplaw.cli import _common, app

runner = CliRunner()
LIMIT_BYTES = 3 << 30  # address space of the subprocesses: a runaway allocation fails fast
ROOT = os.geteuid() == 0


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


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


def cli(*args, timeout: float = 60, limit: int | None = LIMIT_BYTES):
    """Run ``python -m bayes_steplaw ARGS`` bounded in time and memory."""

    def bound():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "bayes_steplaw", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=bound,
    )


def exits(func, *args, **kwargs) -> int:
    """The exit code of a CLI helper that fails with ``typer.Exit``."""
    with pytest.raises(typer.Exit) as info:
        func(*args, **kwargs)
    return info.value.exit_code


# --------------------------------------------------------------------------- 1. quantities


@pytest.mark.parametrize(
    "text, value",
    [
        ("7B", 7e9),
        ("7b", 7e9),
        ("7G", 7e9),
        ("1.4T", 1.4e12),
        ("350M", 350e6),
        ("4M", 4_000_000),
        ("4Mi", 4_194_304),
        ("4mi", 4_194_304),
        ("2Ki", 2048),
        ("1.5Ki", 1536),
        ("1Gi", 2**30),
        ("1Ti", 2**40),
        (" 3e-4 ", 3e-4),
        ("1e3K", 1e6),
    ],
)
def test_quantity_suffixes_are_decimal_or_binary(text, value):
    assert _validate.parse_quantity(text, "N") == value
    assert _common.parse_quantity(text, "N") == value  # the CLI's rule is the same one


@pytest.mark.parametrize("text", ["7Bi", "abc", "-7e9", "nan", "inf", "=1+2", "7 B B", ""])
def test_bad_quantities_are_refused_by_both(text):
    with pytest.raises(ValueError, match="N must be a positive"):
        _validate.parse_quantity(text, "N")
    with pytest.raises(typer.BadParameter, match="N must be a positive"):
        _common.parse_quantity(text, "N")


def test_the_suffix_rule_is_documented():
    doc = _validate.parse_quantity.__doc__
    assert "``Mi`` = 2^20" in doc and "4,194,304" in doc and "``T`` = 1e12" in doc
    rst = (Path(__file__).parents[1] / "docs" / "cli.rst").read_text()
    assert "4Mi" in rst and "4,194,304" in rst and "decimal point" in rst


def test_python_accepts_quantity_strings(shipped_optimum):
    assert _validate.positive_array("7B", "N") == 7e9
    np.testing.assert_array_equal(_validate.positive_array(["7B", 1e9], "N"), [7e9, 1e9])
    assert _validate.scalar("4Mi", "batch_tokens") == 4_194_304
    text = bsl.predict("7B", "1.4T", posterior=shipped_optimum).to_dataframe()
    number = bsl.predict(7e9, 1.4e12, posterior=shipped_optimum).to_dataframe()
    pd.testing.assert_frame_equal(text, number)
    with pytest.raises(ValueError, match="N must be a positive number such as 7e9 or 7B"):
        bsl.predict("seven", 1.4e12, posterior=shipped_optimum)


@pytest.mark.parametrize(
    "text, words",
    [
        ("1,4T", ["use a decimal point", "1.4T"]),
        ("3,0e-4", ["use a decimal point", "3.0e-4"]),
        ("1,000,000", ["without thousands separators", "1000000"]),
    ],
)
def test_a_comma_in_one_quantity_names_the_slip(text, words):
    with pytest.raises(ValueError) as info:
        _validate.parse_quantity(text, "D")
    assert all(w in str(info.value) for w in words), info.value


@pytest.mark.parametrize(
    "text, words",
    [
        ("1,4T", ["ambiguous", "decimal point (1.4T)", "1T,4T"]),
        ("7B,1,4T", ["ambiguous", "1.4T"]),
        ("2,5e-3", ["ambiguous", "2.5e-3"]),
        ("3,0e-4", ["not a list of values", "3.0e-4"]),
        ("1,000,000", ["thousands separators"]),
        ("1B,", ["value 2", "empty"]),
        ("1B,x", ["value 2 of the list", "'x'"]),
    ],
)
def test_lists_refuse_a_likely_decimal_comma(text, words):
    with pytest.raises(ValueError) as info:
        _validate.split_quantities(text, "D")
    assert all(w in str(info.value) for w in words), info.value


@pytest.mark.parametrize(
    "text, values",
    [
        ("1B,7B", [1e9, 7e9]),
        ("100B,1.4T", [1e11, 1.4e12]),
        ("1048576,2097152", [1048576, 2097152]),
        ("128,256", [128, 256]),
        ("1Mi,2Mi", [2**20, 2**21]),
        ("7B", [7e9]),
    ],
)
def test_lists_of_full_values_still_split(text, values):
    assert _validate.split_quantities(text, "D") == values


def test_cli_refuses_a_decimal_comma_instead_of_answering_two_points():
    result = invoke("predict", "7B", "1,4T")
    assert result.exit_code == 2, result.output
    assert "1.4T" in result.output and "decimal point" in result.output


def test_long_quantities_are_quoted_as_a_preview():
    with pytest.raises(ValueError) as info:
        _validate.parse_quantity("x" * 1_000_000, "N")
    message = str(info.value)
    assert len(message) < 200 and "(1,000,000 characters)" in message


# --------------------------------------------------------------------------- 2. unit slips


@pytest.mark.parametrize(
    "values, words",
    [
        ({"N": 7}, ["N = 7 parameters", "did you mean 7B"]),
        ({"N": [7e9, 350]}, ["350", "1 of 2 values"]),
        ({"D": 1.4}, ["D = 1.4 tokens", "1.4T"]),
        ({"lr": 3}, ["lr = 3 is above 1", "not a percent"]),
        ({"lr": 1e-9}, ["below 1e-07", "exponent"]),
        ({"batch_tokens": 512}, ["batch_tokens = 512 tokens", "sequences", "512 * 2048"]),
        ({"batch_tokens": 256, "batch_sequences": 0.125}, ["less than one sequence"]),
        ({"batch_tokens": 2**31, "batch_sequences": 2**20}, ["above 2^30", "batch_tokens="]),
    ],
)
def test_unit_slips_name_the_slip(values, words):
    slips = _validate.unit_slips(**values)
    assert len(slips) == 1 and all(w in slips[0] for w in words), slips


@pytest.mark.parametrize(
    "values",
    [
        {"N": 7e9, "D": 1.4e12, "lr": 3e-4, "batch_tokens": 4e6},
        {"N": "7B", "D": "1.4T", "lr": "3e-4", "batch_tokens": "4Mi"},
        {"N": 1e6, "D": 1e7, "lr": 1.0, "batch_tokens": 8192},  # the thresholds themselves
        {"batch_tokens": 4096, "batch_sequences": 2},  # small, but said in sequences
        {"N": -1, "D": "abc", "lr": [], "batch_tokens": None},  # invalid: their own checks say
    ],
)
def test_plausible_values_are_no_slip(values):
    assert _validate.unit_slips(**values) == []


def test_unit_slip_warning_is_a_user_warning_at_the_top_level():
    assert issubclass(bsl.UnitSlipWarning, UserWarning)
    assert "UnitSlipWarning" in bsl.__all__
    with pytest.warns(bsl.UnitSlipWarning, match="did you mean 7B") as caught:
        _validate.check_plausible(N=7, stacklevel=2)
    assert caught[0].filename == __file__


def test_the_api_warns_at_the_callers_line_and_still_answers(shipped_optimum, light_loss):
    with pytest.warns(bsl.UnitSlipWarning, match="N = 7 parameters") as caught:
        pred = bsl.predict(7, 1.4e12, posterior=shipped_optimum)
    assert caught[0].filename == __file__  # the user's line, not the package's
    assert np.isfinite(pred.median()["lr"]).all()  # a deliberate extreme is not blocked
    with pytest.warns(bsl.UnitSlipWarning, match="batch_tokens = 512 tokens") as caught:
        p = bsl.plateau_probability(1e9, 2e10, 1e-3, 512, posterior=light_loss)
    assert caught[0].filename == __file__ and 0 <= float(p) <= 1
    with pytest.warns(bsl.UnitSlipWarning, match="lr = 3 is above 1"):
        bsl.plateau_probability(1e9, 2e10, 3, 1e6, posterior=light_loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bsl.UnitSlipWarning)
        bsl.predict(7e9, 1.4e12, posterior=shipped_optimum)  # plausible: no warning


@pytest.mark.parametrize(
    "args, words",
    [
        (["predict", "7", "1.4T"], ["did you mean 7B"]),
        (["predict", "7B", "1.4"], ["did you mean 1.4T"]),
        (["plateau", "7B", "1.4T", "--lr", "3", "--batch-tokens", "4M"], ["--lr = 3"]),
        (
            ["plateau", "1B", "20B", "--lr", "1e-3", "--batch-tokens", "512"],
            ["--batch-sequences 512"],
        ),
        (
            ["plateau", "1B", "20B", "--lr", "1e-3", "--batch-sequences", "0.5"],
            ["less than one sequence", "--batch-tokens"],
        ),
        (["recommend", "1B", "20B", "--batch-tokens", "1024"], ["--batch-sequences 1024"]),
        (["plan-sweep", "7", "20B"], ["did you mean 7B"]),
        (["loss", "1B", "20B", "--lr", "1e-3,30", "--batch-tokens", "1M"], ["1 of 2 values"]),
        (["loss", "1B", "20B", "--lr", "1e-3", "--batch-sequences", "4Mi"], ["above 2^30"]),
    ],
)
def test_the_cli_refuses_unit_slips_naming_the_flag(args, words):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "If this is meant, pass --allow-implausible" in result.output
    assert all(w in result.output for w in words), result.output
    assert "Traceback" not in result.output


def test_allow_implausible_proceeds_without_a_python_warning():
    result = invoke("predict", "7", "1.4T", "--allow-implausible", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["N"] == 7.0
    assert "UnitSlipWarning" not in result.output


# --------------------------------------------------------------------------- 3. batch in sequences


def test_batch_arg_converts_sequences_and_refuses_both():
    assert _common.batch_arg("4M", None, 2048) == (4e6, None)
    assert _common.batch_arg(None, "512", 2048) == (512 * 2048, 512)
    assert _common.batch_arg(None, "2Ki", 4096) == (2048 * 4096, 2048)
    assert _common.batch_arg(None, "1,2", 1024, several=True) == ([1024, 2048], [1, 2])
    assert _common.batch_arg(None, None, 2048) == (None, None)
    assert exits(_common.batch_arg, None, None, 2048, required=True) == 2
    assert exits(_common.batch_arg, "4M", "512", 2048) == 2
    with pytest.raises(ValueError, match="not both"):
        _validate.batch_tokens_of(batch_tokens=4e6, batch_sequences=512)
    assert _validate.batch_tokens_of(batch_sequences=512, seq_len=4096) == 512 * 4096


@pytest.mark.parametrize("command", ["plateau", "recommend", "loss"])
def test_batch_sequences_is_offered_where_a_batch_is_asked(command):
    result = invoke(command, "--help")
    assert "--batch-sequences" in result.output and "--seq-len" in result.output
    args = ["1B", "20B", "--batch-tokens", "1M", "--batch-sequences", "512"]
    if command != "recommend":
        args += ["--lr", "1e-3"]
    result = invoke(command, *args)
    assert result.exit_code == 2 and "not both" in result.output, result.output


@pytest.mark.slow  # two plateau calls on the shipped loss posterior (~2 s)
def test_plateau_in_sequences_equals_plateau_in_tokens():
    seqs = invoke("plateau", "1B", "20B", "--lr", "1e-3", "--batch-sequences", "256",
                  "--seq-len", "4096", "--json")  # fmt: skip
    tokens = invoke("plateau", "1B", "20B", "--lr", "1e-3", "--batch-tokens", "1Mi", "--json")
    assert seqs.exit_code == 0 and tokens.exit_code == 0, seqs.output + tokens.output
    assert json.loads(seqs.stdout) == json.loads(tokens.stdout)


# --------------------------------------------------------------------------- 4. options once

_ALIASES = {
    "--json": ("JsonOpt",),
    "--group": ("GroupOpt",),
    "--seq-len": ("SeqLenOpt", "TableSeqLenOpt"),
    "--group-col": ("GroupColOpt",),
    "--batch-sequences": ("BatchSequencesOpt",),
    "--allow-implausible": ("ImplausibleOpt",),
    "--prob": ("ProbOpt",),
}


def _commands(typer_app):
    for info in typer_app.registered_commands:
        yield info.callback
    for group in typer_app.registered_groups:
        yield from _commands(group.typer_instance)


def test_shared_options_are_declared_once():
    """Every command's --json, --group, --seq-len... is one of the aliases in _common."""
    seen = {option: 0 for option in _ALIASES}
    for callback in _commands(app):
        hints = typing.get_type_hints(callback, include_extras=True)
        for param, hint in hints.items():
            option = f"--{param.replace('_', '-')}" if param != "as_json" else "--json"
            if option not in _ALIASES:
                continue
            aliases = [getattr(_common, name) for name in _ALIASES[option]]
            assert any(hint == alias for alias in aliases), (callback.__name__, param)
            seen[option] += 1
    # predict, plateau, recommend, plan-sweep, loss, plan-calibration; fit, evaluate, logs
    # collect; compare (--prob)
    assert seen == {"--json": 6, "--group": 6, "--seq-len": 9, "--group-col": 2,
                    "--batch-sequences": 3, "--allow-implausible": 6, "--prob": 5}  # fmt: skip


def test_help_of_shared_options_is_kept():
    from typer.main import get_command

    commands = get_command(app).commands

    def option_help(command: str, option: str) -> str:
        params = commands[command].params
        return next(p.help for p in params if option in getattr(p, "opts", ()))

    for command in ("predict", "plateau", "recommend", "plan-sweep", "loss"):
        assert "dense, moe/1in8" in option_help(command, "--group")
        assert option_help(command, "--json") == "Print JSON."
        # batches in sequences are converted with the fit's sequence length unless told
        assert (
            option_help(command, "--seq-len") == "Sequence length in tokens (default: the fit's)."
        )
    for command in ("fit", "evaluate"):
        assert "outermost first" in option_help(command, "--group-col")
        assert "does not state one" in option_help(command, "--seq-len")


def test_one_point_reader_for_lists_and_grids(tmp_path):
    (n, d), group = _common.read_points({"N": "1B,7B", "D": "100B,1.4T"}, None, usage="give")
    assert list(zip(n, d)) == [(1e9, 1e11), (1e9, 1.4e12), (7e9, 1e11), (7e9, 1.4e12)]
    assert group is None
    (n, lr), _ = _common.read_points({"N": "1B", "lr": [1e-3, 2e-3]}, None, usage="give")
    assert list(lr) == [1e-3, 2e-3] and list(n) == [1e9, 1e9]
    grid = tmp_path / "g.csv"
    grid.write_text("N,D,group\n1e9,2e10,moe\n7B,1.4T,\n")
    (n, d), group = _common.read_points({"N": None, "D": None}, grid, usage="give")
    assert list(n) == [1e9, 7e9] and list(group) == ["moe", ""]
    assert exits(_common.read_points, {"N": "1B", "D": None}, grid, usage="give") == 2
    assert exits(_common.read_points, {"N": "1B", "D": None}, None, usage="give") == 2
    many = ",".join(["1e9"] * 1001)
    assert exits(_common.read_points, {"N": many, "D": many}, None, usage="give") == 2


def test_one_group_splitting_helper():
    groups = np.array(["moe", "", "dense", "moe", ""])
    got = [(g, list(np.flatnonzero(m))) for g, m in _common.split_groups(groups, "dense", 5)]
    assert got == [("moe", [0, 3]), ("dense", [1, 2, 4])]
    got = [(g, m.tolist()) for g, m in _common.split_groups(None, "new", 2)]
    assert got == [("new", [True, True])]
    from bayes_steplaw.cli import loss, predict

    for module in (loss, predict):  # each command reads its points through the shared reader
        source = Path(module.__file__).read_text()
        assert "read_points(" in source and "split_groups(" in source
        assert "np.meshgrid" not in source and "dict.fromkeys(groups" not in source


# --------------------------------------------------------------------------- 5. grid files


def _grid_error(path: Path, capsys, columns=("N", "D")) -> str:
    with deadline(10):
        assert exits(_common.read_grid, path, columns) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "content, words",
    [
        ("N,D,lr,batch_tokens\n1e9,2e10,2e-3,1M,5\n", ["line 2", "5 fields", "header has 4"]),
        ("N,D,lr,batch_tokens\n1e9,2e10,2e-3\n", ["line 2", "3 fields"]),
        ("N,D\n1e9,2e10\n\n1e9,2e10,7\n", ["line 4", "3 fields"]),
        ("N,D,N\n1e9,2e10,3e9\n", ["names 'N' twice", "fields 1 and 3"]),
        (",N,D\n0,1e9,2e10\n", ["field 1 of the header has no name", "index=False"]),
        ('N,D\n"1e9,2e10\n', ["line", "not a readable CSV"]),
    ],
)
def test_grid_rows_must_match_the_header(tmp_path, capsys, content, words):
    path = tmp_path / "g.csv"
    path.write_text(content)
    err = _grid_error(
        path, capsys, ("N", "D", "lr", "batch_tokens") if "lr" in content else ("N", "D")
    )
    assert all(w in err for w in words), err


def test_grid_with_a_shifted_row_is_refused_by_the_cli(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,D,lr,batch_tokens\n1e9,2e10,2e-3,1M,5\n")
    result = invoke("loss", "--grid", path)
    assert result.exit_code == 2 and "line 2: 5 fields" in result.output, result.output


def test_grid_reads_quoted_fields_blank_lines_and_a_bom(tmp_path):
    path = tmp_path / "g.csv"
    path.write_bytes('\ufeffN, D ,group\n\n1e9,2e10,"moe/1in8"\n7B,1.4T,"a,b"\n'.encode())
    (n, d), group = _common.read_grid(path, ("N", "D"))
    assert list(n) == [1e9, 7e9] and list(d) == [2e10, 1.4e12]
    assert list(group) == ["moe/1in8", "a,b"]


def test_a_huge_bad_cell_is_quoted_as_a_preview(tmp_path, capsys):
    path = tmp_path / "g.csv"
    path.write_text("N,D\n1e9," + "9" * 100_000 + "x\n")
    err = _grid_error(path, capsys)
    assert len(err) < 400 and "(100,001 characters)" in err and "row 0 (line 2)" in err, err
    path.write_text("N,D\n1e9," + "9" * 2_000_000 + "\n")  # longer than a line may be
    err = _grid_error(path, capsys)
    assert len(err) < 400 and "line 2 is longer than" in err, err


@pytest.mark.parametrize(
    "content, words",
    [
        (b"N,D\n" + b"1e9,2e10\n" * 2000 + b"\x00,\x01binary", ["line 2002", "NUL"]),
        (b"N,D\n" + b"1e9,2e10\n" * 2000 + b"\xff\xfe1e9,2e10\n", ["not UTF-8"]),
        (b"N,D\n1e9,nan\n", ["row 0 (line 2), column D"]),
        (b"N,D\n1e9,inf\n", ["column D"]),
        (b"N,D\n0,2e10\n", ["column N", "positive finite"]),
        (b"N,D\n=HYPERLINK(1),2e10\n", ["column N", "'=HYPERLINK(1)'"]),
        (b"\x00\x01\x02" * 100, ["binary"]),
        (b"N,D\n", ["no rows"]),
        (b"", ["is empty"]),
    ],
    ids=[
        "binary-tail",
        "not-utf8-tail",
        "nan",
        "inf",
        "zero",
        "formula",
        "binary",
        "no-rows",
        "empty",
    ],
)
def test_grid_files_that_hold_no_grid_name_the_place(tmp_path, capsys, content, words):
    path = tmp_path / "g.csv"
    path.write_bytes(content)
    err = _grid_error(path, capsys)
    assert all(w in err for w in words) and len(err) < 600, err


def test_grid_paths_that_are_no_file_are_never_opened(tmp_path, capsys):
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    assert "FIFO" in _grid_error(fifo, capsys)
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    err = _grid_error(zero, capsys)
    assert "character device" in err and "symbolic link to /dev/zero" in err
    assert "is a directory" in _grid_error(tmp_path, capsys)


@pytest.mark.slow  # writes and reads a 9 MB file
def test_over_a_million_rows_are_refused_within_seconds(tmp_path, capsys):
    import time

    path = tmp_path / "big.csv"
    path.write_text("N,D\n" + "1e9,2e10\n" * (_common.MAX_POINTS + 1))
    start = time.perf_counter()
    err = _grid_error(path, capsys)
    assert time.perf_counter() - start < 3
    assert f"more than {_common.MAX_POINTS} rows" in err


@pytest.mark.slow  # a subprocess, bounded in time and memory
def test_a_300_mb_cell_gives_one_short_line(tmp_path):
    path = tmp_path / "g.csv"
    with path.open("w") as fh:
        fh.write("N,D\n1e9,")
        block = "9" * (1 << 20)
        for _ in range(300):
            fh.write(block)
        fh.write("\n")
    result = cli("predict", "--grid", path, timeout=60, limit=1 << 30)
    assert result.returncode == 2 and len(result.stderr) < 400, result.stderr[:400]
    assert "line 2 is longer than" in result.stderr


# --------------------------------------------------------------------------- 6. JSON


def test_json_never_holds_a_bare_nan():
    payload = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": np.float64("-inf")}}
    payload["e"] = np.float32(2.5)
    clean, missing = _common.finite_json(payload)
    assert clean == {"a": None, "b": [1.0, None], "c": {"d": None}, "e": 2.5}
    assert missing == ["a", "b[1]", "c.d"]


def test_echo_json_says_which_fields_were_not_finite(capsys):
    _common.echo_json({"lr": float("nan"), "rows": [{"x": 1.0}, {"x": float("inf")}]})
    text = capsys.readouterr().out

    def refuse(name):
        raise ValueError(f"bare {name} in JSON")

    data = json.loads(text, parse_constant=refuse)
    assert data == {"lr": None, "rows": [{"x": 1.0}, {"x": None}],
                    "non_finite": ["lr", "rows[1].x"]}  # fmt: skip


def test_every_json_output_goes_through_the_helper():
    folder = Path(_common.__file__).parent
    for path in folder.glob("*.py"):
        source = path.read_text()
        helper = 1 if path.name == "_common.py" else 0  # echo_json itself
        assert source.count("typer.echo(json.dumps") == helper, path.name


# --------------------------------------------------------------------------- 7. output paths


def test_write_text_is_atomic_and_keeps_the_mode(tmp_path):
    path = tmp_path / "card.md"
    path.write_text("old")
    path.chmod(0o640)
    assert _io.write_text(path, "new\n") == path
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.md"]  # no temporary left

    class Boom(Exception):
        pass

    with pytest.raises(Boom), _io.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise Boom
    assert path.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["card.md"]


def test_write_text_refuses_what_is_no_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with deadline(10), pytest.raises(_io.OutputPathError, match="FIFO"):
        _io.write_text(fifo, "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(_io.OutputPathError, match="is not a folder"):
        _io.write_text(tmp_path / "file" / "out.md", "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_evaluation_tables_are_written_through_the_atomic_helper(tmp_path):
    from bayes_steplaw.evaluate.result import Evaluation

    table = pd.DataFrame({"split": ["loso"], "method": ["=cmd()"], "setting": ["s"]})
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with deadline(10), pytest.raises(_io.OutputPathError, match="FIFO"):
        Evaluation(table).to_csv(fifo)  # pandas would block on the FIFO
    out = Evaluation(table).to_csv(tmp_path / "e.csv")
    assert pd.read_csv(out)["method"].tolist() == ["'=cmd()"]  # a formula is escaped
    root = Path(bsl.__file__).parent
    for name in ("bayes/card.py", "cli/evaluate.py", "evaluate/result.py", "cli/loss.py",
                 "web.py"):  # fmt: skip
        source = (root / name).read_text()
        assert ".write_text(" not in source and "os.replace" not in source, name
        assert not re.search(r"\.to_csv\([^)]*index=False", source), name  # pandas' own


@pytest.mark.parametrize("kind", ["fifo", "device", "file-as-folder", "directory"])
def test_export_web_checks_its_output_before_any_work(tmp_path, kind):
    out = tmp_path / "planner.json"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "device":
        out.symlink_to("/dev/null")
    elif kind == "file-as-folder":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "planner.json"
    else:
        out.mkdir()
    with deadline(20):
        result = invoke("export-web", out, "--optimum", tmp_path / "missing.nc")
    # refused for the path, before the (missing) posterior is even looked at
    assert result.exit_code == 2, result.output
    words = {"fifo": "FIFO", "device": "character device", "file-as-folder": "is not a folder",
             "directory": "is a directory"}[kind]  # fmt: skip
    assert words in result.output and "missing.nc" not in result.output, result.output
    if kind == "fifo":
        assert stat.S_ISFIFO(out.stat().st_mode)
    if kind == "device":
        assert out.is_symlink() and os.readlink(out) == "/dev/null"


def test_python_export_web_checks_the_path_first(tmp_path):
    from bayes_steplaw.web import export_web

    fifo = tmp_path / "p.json"
    os.mkfifo(fifo)

    class NotUsed:
        """Any use of the posteriors would fail: the path must be refused first."""

    with deadline(10), pytest.raises(_io.OutputPathError, match="FIFO"):
        export_web(fifo, NotUsed(), NotUsed())


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders")
def test_export_web_into_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    result = invoke("export-web", folder / "p.json")
    assert result.exit_code == 2 and "cannot write in" in result.output


# --------------------------------------------------------------------------- 8. card


def test_card_without_out_dir_writes_here_never_into_the_package(tmp_path, monkeypatch, released):
    from bayes_steplaw._resources import resource_path

    shipped = resource_path("models", "optimum.md")
    before = shipped.stat().st_mtime_ns if shipped.exists() else None
    data = os.environ.get("BAYES_STEPLAW_DATA")
    if data:  # a relative data folder would not survive the change of folder
        monkeypatch.setenv("BAYES_STEPLAW_DATA", str(Path(data).resolve()))
    monkeypatch.chdir(tmp_path)
    result = invoke("card", "optimum")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "optimum.md").is_file()
    after = shipped.stat().st_mtime_ns if shipped.exists() else None
    assert after == before
    assert "current folder" in invoke("card", "--help").output


def test_card_out_dir_is_checked_before_any_work(tmp_path):
    result = invoke("card", "optimum", "--out-dir", tmp_path / "missing")
    assert result.exit_code == 2 and "does not exist" in result.output
    (tmp_path / "optimum.md").mkdir()
    result = invoke("card", "optimum", "--out-dir", tmp_path)
    assert result.exit_code == 2 and "is a directory" in result.output


# --------------------------------------------------------------------------- 9. names


@pytest.mark.parametrize(
    "name", ["user:llama", "user:it's mine", "user:\x1b[2Jclear", "user:\u202eevil", "user:a\nb"]
)
def test_the_pooled_hint_escapes_names_and_pastes_back(tmp_path, name):
    from bayes_steplaw.cli.fit import pooled_hint

    pooled = {"user_groups": {name.removeprefix("user:"): name}, "user_runs": 9,
              "released_runs": 2619}  # fmt: skip
    line = pooled_hint(pooled, tmp_path / "post.nc")
    assert line.isprintable(), repr(line)  # no escape, override or newline reaches the terminal
    word = line.split("--group ", 1)[1].split(" (a name holds")[0]
    out = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, timeout=10)
    assert out.stdout.decode() == name  # pasted, the command names the real group
    assert ("control or bidirectional" in line) == (not name.isprintable())


def test_display_name_escapes_controls_and_bidi_overrides():
    for raw in ("a\x1b[2Jb", "a\u202eb", "a\u2066b", "a\x00b"):
        shown = _io.display_name(raw)
        assert shown.isprintable() and shown != raw


# --------------------------------------------------------------------------- 10. messages


@pytest.mark.parametrize(
    "args",
    [
        ["loss", "1B", "20B", "--lr", "1e-3", "--batch-tokens", "1M", "--seed", "-1"],
        ["fit", "sweep.csv", "--seed", "-1"],
        ["reproduce", "--seed", "-1"],
        ["export-web", "p.json", "--seed", "-1"],
    ],
)
def test_a_negative_seed_names_the_option(args):
    result = invoke(*args)
    assert result.exit_code == 2 and "--seed" in result.output, result.output


def test_posterior_paths_that_are_no_file_say_what_they_are(tmp_path):
    from bayes_steplaw.bayes.posterior import Posterior, PosteriorFileError

    fifo = tmp_path / "fifo.nc"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.nc"
    zero.symlink_to("/dev/zero")
    dangling = tmp_path / "dangling.nc"
    dangling.symlink_to(tmp_path / "gone.nc")
    cases = {
        fifo: "FIFO",
        zero: "character device, not a regular file (a symbolic link to /dev/zero)",
        dangling: "symbolic link to a missing file",
        tmp_path / "no.nc": "does not exist",
        tmp_path: "is a directory",
    }
    for path, words in cases.items():
        with deadline(10), pytest.raises(PosteriorFileError) as info:
            Posterior.load(path)
        assert words in str(info.value) and "does not exist" not in str(info.value).replace(
            words, ""
        ), info.value
    with deadline(20):
        result = invoke("predict", "1e9", "1e10", "--posterior", fifo)
    assert result.exit_code == 2 and "FIFO" in result.output, result.output


def test_python_refuses_empty_complex_and_huge_inputs(shipped_optimum):
    with pytest.raises(ValueError, match="N is empty"):
        bsl.predict([], [], posterior=shipped_optimum)
    with pytest.raises(ValueError, match="complex"):
        bsl.predict(7e9 + 1j, 1.4e12, posterior=shipped_optimum)
    with pytest.raises(ValueError, match="complex"):
        _validate.positive_array(np.array([1e9, 2e9], dtype=complex), "N")
    with pytest.raises(ValueError, match="100,000,000 points"):
        _validate.broadcast({"N": np.full((10**4, 1), 1e9), "D": np.full((1, 10**4), 1e10)})
    assert _validate.broadcast({"N": np.full((10, 1), 1e9), "D": np.ones(10) * 1e10})[1] == (
        10,
        10,
    )


@pytest.mark.slow  # a subprocess, bounded in time and memory
def test_a_huge_broadcast_is_refused_before_numpy_allocates():
    code = (
        "import numpy as np, bayes_steplaw as bsl\n"
        "try:\n"
        "    bsl.predict(np.full((10**5, 1), 1e9), np.full((1, 10**5), 1e10))\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc)\n"
    )

    def bound():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=90, preexec_fn=bound)  # fmt: skip
    assert "refused:" in out.stdout and "10,000,000,000 points" in out.stdout, out.stderr[-2000:]


# --------------------------------------------------------------------------- 11. equal losses


def test_a_table_whose_losses_are_all_equal_warns(tmp_path):
    from conftest import SIM_LAW, SIM_SETTINGS

    sweeps, _ = bsl.simulate_sweeps(SIM_SETTINGS, SIM_LAW, seed=3)
    flat = sweeps.assign(loss=2.5)
    with pytest.warns(bsl.SweepWarning, match="every run has the same loss"):
        bsl.read_sweeps(flat)
    one = sweeps.copy()
    first = one["setting"] == one["setting"].iloc[0]
    one.loc[first, "loss"] = 3.0
    with pytest.warns(bsl.SweepWarning, match="carries no information on where its optimum"):
        bsl.read_sweeps(one)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bsl.SweepWarning)
        bsl.read_sweeps(sweeps)
