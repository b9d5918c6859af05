"""Training-log analysis: parsing, smoothing, run discovery, sweep tables and the CLI.

Every smoothed value is checked against ``ref_smooth``, an explicit Gaussian-kernel convolution
written here with numpy (mirror padding, kernel radius ``int(4 sigma + 0.5)``), not against the
scipy filter the module uses.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayes_steplaw import logs, read_sweeps
from bayes_steplaw.cli import app
from bayes_steplaw.datasets.sweeps import SweepWarning, snap_lr

# ---------------------------------------------------------------------------- helpers

NOISE = [
    "2024-06-18 10:22:33.456 | INFO     | megatron.core.utils:report_memory:88 - [Rank 0] "
    "memory (MB) | allocated: 1234.5 | max allocated: 2345.6\n",
    "some warning without a timestamp: lm loss: 9.9E+00\n",
    "2024-06-18 10:22:33 | INFO     | megatron.core.trainerv2:training_log:412 - iter 5/ 10 | "
    "lm loss: 9.9E+00 |\n",  # no milliseconds: not a loss line
    "\n",
]


def loss_line(it: int, total: int, loss: float | str, only: bool = False) -> str:
    key = "lm loss only" if only else "lm loss"
    value = loss if isinstance(loss, str) else f"{loss:.6E}"
    return (
        f"2024-06-18 10:22:33.123 | INFO     | megatron.core.trainerv2:training_log:412 - "
        f"iter {it:>8d}/{total:>8d} | consumed samples: {it * 736:>10d} | learning rate: "
        f"2.762E-03 | global batch size:   736 | {key}: {value} | loss scale: 1.0 | "
        f"grad norm: 0.512 |\n"
    )


def curve(n: int, interval: int = 10, seed: int = 0, start: int | None = None):
    rng = np.random.default_rng(seed)
    iters = (start or interval) + interval * np.arange(n)
    losses = 2.5 + 3.0 / np.sqrt(iters) + 0.05 * rng.standard_normal(n)
    return iters.astype(np.int64), losses


def write_log(
    path: Path,
    iters,
    losses,
    total: int | None = None,
    only: bool = False,
    tail: str = "",
    noise: bool = True,
) -> Path:
    total = int(iters[-1]) if total is None else total
    parts = []
    for i, (it, loss) in enumerate(zip(iters, losses, strict=True)):
        if noise:
            parts.append(NOISE[i % len(NOISE)])
        value = loss if isinstance(loss, str) else float(f"{loss:.6E}")
        parts.append(loss_line(int(it), total, value, only=only))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts) + tail)
    return path


def ref_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing by explicit convolution, mirror padding (edge value repeated)."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * x**2 / sigma**2)
    kernel /= kernel.sum()
    assert radius < len(values), "the reference pads by mirroring once"
    padded = np.concatenate([values[:radius][::-1], values, values[len(values) - radius :][::-1]])
    return np.array([kernel @ padded[i : i + 2 * radius + 1] for i in range(len(values))])


def ref_final(iters, losses, window=100.0, target=None):
    """Independent smoothed final loss: (value, iteration, sigma)."""
    iters = np.asarray(iters)
    losses = np.array([float(f"{v:.6E}") for v in losses])  # as written to the log
    sigma = min(window, 0.01 * len(losses)) / (iters[1] - iters[0])
    smooth = ref_smooth(losses, sigma)
    idx = len(iters) - 1 if target is None else int(np.nonzero(iters <= target)[0][-1])
    return smooth[idx], int(iters[idx]), sigma


def by_name(frame: pd.DataFrame) -> dict[str, dict]:
    return {row["exp_name"]: row for row in frame.to_dict("records")}


# ---------------------------------------------------------------------------- parsing


def test_parse_loss_lines_reads_loss_lines_only():
    text = (
        NOISE[0]
        + loss_line(10, 100, 3.5)
        + NOISE[1]
        + NOISE[2]
        + loss_line(20, 100, 3.25, only=True)
        + loss_line(30, 100, "nan")
        + loss_line(40, 100, "inf")
        + loss_line(50, 100, "oops")
    )
    iters, totals, losses, bad = logs.parse_loss_lines(text)
    assert iters.tolist() == [10, 20, 30, 40, 50]
    assert totals.tolist() == [100] * 5
    assert losses[:2].tolist() == [3.5, 3.25]
    assert math.isnan(losses[2]) and losses[3] == math.inf and math.isnan(losses[4])
    assert bad == ["oops"]


@pytest.mark.parametrize("block_size", [64, 333, 4096, 1 << 20])
@pytest.mark.parametrize("max_cnt", [1, 7, 150, 10_000])
def test_backward_reader_matches_a_forward_parse(tmp_path, block_size, max_cnt):
    iters, losses = curve(150, interval=3)
    path = write_log(tmp_path / "train_log_0.txt", iters, losses)
    # a line longer than a block, between loss lines
    text = path.read_text().replace(NOISE[0], "x" * 1000 + "\n", 1)
    path.write_text(text)
    f_iters, _, f_losses, _ = logs.parse_loss_lines(text)
    got = logs.read_loss_curve(path, max_cnt, block_size=block_size)
    np.testing.assert_array_equal(got.iters, f_iters[-max_cnt:])
    np.testing.assert_array_equal(got.losses, f_losses[-max_cnt:])
    assert got.total_iter == iters[-1] and not got.truncated


def test_truncated_last_line_is_ignored_and_reported(tmp_path):
    iters, losses = curve(50)
    cut = loss_line(510, 500, 3.0)[:150]  # ends inside the line, no newline
    path = write_log(tmp_path / "train_log_1.txt", iters, losses, tail=cut)
    got = logs.read_loss_curve(path, block_size=128)
    assert got.truncated and got.iters[-1] == 500 and len(got.iters) == 50
    # a cut that keeps a parseable prefix of the value is still ignored
    path.write_text(path.read_text()[: -len(cut)] + loss_line(510, 510, 3.0)[:-40])
    assert logs.read_loss_curve(path).iters[-1] == 500


def test_csv_and_jsonl_exports(tmp_path):
    iters, losses = curve(300, interval=5)
    table = pd.DataFrame({"_step": iters, "train/loss": losses, "lr": 1e-3})
    table.loc[::7, "train/loss"] = np.nan  # sparse tracker history: rows without a loss
    table.to_csv(tmp_path / "a.csv", index=False)
    got = logs.read_loss_curve(tmp_path / "a.csv")
    keep = ~np.isnan(table["train/loss"].to_numpy())
    np.testing.assert_array_equal(got.iters, iters[keep])
    np.testing.assert_allclose(got.losses, losses[keep], rtol=1e-15)
    assert got.total_iter is None

    records = [{"step": int(i), "loss": float(v)} for i, v in zip(iters, losses, strict=True)]
    records[10]["loss"] = float("nan")
    records.insert(5, {"step": 99999, "eval_loss": 1.0})  # another kind of record: skipped
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    got = logs.read_loss_curve(tmp_path / "b.jsonl", max_cnt=100)
    np.testing.assert_array_equal(got.iters, iters[-100:])
    assert math.isnan(logs.read_loss_curve(tmp_path / "b.jsonl").losses[10])

    with pytest.raises(ValueError, match="loss_column 'nope'"):
        logs.read_loss_curve(tmp_path / "a.csv", loss_column="nope")


# ---------------------------------------------------------------------------- smoothing


@pytest.mark.parametrize(
    ("n", "interval", "window", "target"),
    [(2000, 10, 100.0, None), (2000, 1, 100.0, None), (800, 1, 5.0, 700), (300, 2, 100.0, 451)],
)
def test_smooth_final_loss_matches_explicit_convolution(n, interval, window, target):
    iters, losses = curve(n, interval=interval, seed=n)
    losses = np.array([float(f"{v:.6E}") for v in losses])
    got = logs.smooth_final_loss(iters, losses, window=window, target_iter=target)
    value, it, sigma = ref_final(iters, losses, window, target)
    assert got.sigma == pytest.approx(sigma, rel=1e-15)
    assert got.iteration == it
    assert got.loss == pytest.approx(value, rel=1e-12, abs=1e-12)
    smoothed, _ = logs.smooth_losses(iters, losses, window)
    np.testing.assert_allclose(smoothed, ref_smooth(losses, sigma), rtol=1e-12)


def test_smoothing_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="at least 2"):
        logs.smooth_final_loss([10], [3.0])
    with pytest.raises(ValueError, match="log interval"):
        logs.smooth_final_loss([10, 10, 20], [3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="target_iter 5"):
        logs.smooth_final_loss([10, 20, 30], [3.0, 3.0, 3.0], target_iter=5)
    with pytest.raises(ValueError, match="window"):
        logs.smooth_final_loss([10, 20], [3.0, 3.0], window=0)


# ---------------------------------------------------------------------------- finding runs


def test_find_runs_enters_only_matching_folders(tmp_path):
    iters, losses = curve(20)
    base = tmp_path / "base"
    for k in (2, 9, 10):  # numeric order: 10 is the newest
        write_log(base / "sweep_keep" / "run_a" / f"train_log_{k}.txt", iters, losses)
    write_log(base / "sweep_keep" / "inner_keep" / "run_b" / "train_log_0.txt", iters, losses)
    write_log(base / "sweep_keep" / "other" / "train_log_0.txt", iters, losses)  # leaf: no match
    write_log(base / "elsewhere" / "run_c" / "train_log_0.txt", iters, losses)  # parent: no match
    (base / "sweep_keep" / "run_empty").mkdir()
    (base / "sweep_keep" / "run_a" / "checkpoints_run").mkdir()  # run folder with a sub-folder
    (base / "sweep_keep" / "run_a" / "notes.txt").write_text("x")
    skipped = []
    runs = logs.find_runs(base, r"keep|run", on_skip=lambda p, why: skipped.append((p.name, why)))
    assert [r.name for r in runs] == ["run_a", "run_b"]
    assert runs[0].log_file.name == "train_log_10.txt"
    reasons = dict(skipped)
    assert set(reasons) == {"other", "elsewhere", "run_empty", "checkpoints_run"}
    assert "does not match" in reasons["other"] and "no log files" in reasons["run_empty"]


def test_bad_arguments_name_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"base_dir .* does not exist"):
        logs.find_runs(tmp_path / "missing", ".")
    with pytest.raises(ValueError, match=r"pattern '\(' is not a valid regular expression"):
        logs.find_runs(tmp_path, "(")
    with pytest.raises(ValueError, match="target_iter"):
        logs.quick_check(tmp_path, ".", target_iter=0)
    with pytest.raises(ValueError, match=r"name_regex .* no named groups"):
        logs.collect(tmp_path, ".", name_regex="lr.*")
    with pytest.raises(ValueError, match=r"group\(s\) \['foo'\]"):
        logs.collect(tmp_path, ".", name_regex="(?P<foo>x)")


# ---------------------------------------------------------------------------- quick check


@pytest.fixture(scope="module")
def log_tree(tmp_path_factory):
    """A sweep folder with good and broken runs; returns (base, {name: (iters, losses)})."""
    base = tmp_path_factory.mktemp("logs") / "base"
    truth = {}

    def add(name, n=1500, interval=10, group="grp_keep", total=None, **kw):
        iters, losses = curve(n, interval=interval, seed=len(truth))
        write_log(base / group / name / "train_log_3.txt", iters, losses, total=total, **kw)
        truth[name] = (iters, losses)
        return iters, losses

    add("run_good")
    iters, losses = curve(40, seed=99)  # an older, shorter log beside it: ignored
    write_log(base / "grp_keep" / "run_good" / "train_log_1.txt", iters, losses)
    add("run_only", interval=1, only=True)
    add("run_truncated", tail=loss_line(15010, 15010, 2.0)[:120])
    iters, losses = add("run_diverged")
    losses = losses.astype(object)
    losses[-3] = "nan"
    write_log(base / "grp_keep" / "run_diverged" / "train_log_3.txt", iters, losses)
    add("run_early", total=30000)  # planned 30000 iterations, logged up to 15000
    (base / "grp_keep" / "run_empty").mkdir(parents=True)
    (base / "grp_keep" / "run_empty" / "train_log_0.txt").write_text("".join(NOISE))
    add("run_hidden", group="grp_skip")
    return base, truth


def test_quick_check_values_and_problems(log_tree):
    base, truth = log_tree
    frame = logs.quick_check(base, "keep|run", workers=1, progress=False)
    rows = by_name(frame)
    assert list(frame["exp_name"]) == sorted(rows)
    assert set(rows) == {f"run_{k}" for k in "good only truncated diverged early empty".split()}
    for name in ("run_good", "run_only", "run_truncated", "run_early"):
        iters, losses = truth[name]
        value, it, sigma = ref_final(iters, losses)
        row = rows[name]
        assert row["smooth_loss"] == pytest.approx(value, rel=1e-12), name
        assert row["target_iter"] == it == row["final_iter"]
        assert row["sigma"] == pytest.approx(sigma)
        assert row["n_points"] == len(iters)
    assert rows["run_good"]["status"] == "ok" and rows["run_good"]["problems"] == ""
    assert rows["run_good"]["log_file"].endswith("train_log_3.txt")
    assert rows["run_truncated"]["status"] == "warning"
    assert "truncated" in rows["run_truncated"]["problems"]
    assert rows["run_diverged"]["status"] == "failed"
    assert "non-finite" in rows["run_diverged"]["problems"]
    assert "iteration 14980" in rows["run_diverged"]["problems"]
    assert math.isnan(rows["run_diverged"]["smooth_loss"])  # the nan is inside the kernel
    assert rows["run_early"]["status"] == "failed"
    assert (
        "stopped early: last logged iteration 15000 of planned total 30000"
        in (rows["run_early"]["problems"])
    )
    assert rows["run_empty"]["status"] == "failed"
    assert "no loss lines" in rows["run_empty"]["problems"]


def test_quick_check_parallel_equals_serial(log_tree):
    base, _ = log_tree
    serial = logs.quick_check(base, "keep|run", workers=1, progress=False)
    processes = logs.quick_check(base, "keep|run", workers=2, progress=False)
    threads = logs.quick_check(base, "keep|run", workers=2, executor="thread", progress=False)
    pd.testing.assert_frame_equal(serial, processes)
    pd.testing.assert_frame_equal(serial, threads)


def test_a_process_with_other_threads_starts_its_workers_without_forking(log_tree):
    """A fork copies the locks other threads hold (JAX's after a fit): with a second thread
    alive the workers start from a fork server, and read the same losses."""
    import threading

    from bayes_steplaw.logs.analyse import _process_context

    base, _ = log_tree
    serial = logs.quick_check(base, "keep|run", workers=1, progress=False)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert _process_context().get_start_method() in ("forkserver", "spawn")
        processes = logs.quick_check(base, "keep|run", workers=2, progress=False)
    finally:
        stop.set()
        other.join()
    pd.testing.assert_frame_equal(serial, processes)


def test_target_iter_and_max_cnt(log_tree):
    base, truth = log_tree
    frame = logs.quick_check(base, "keep|run_good", target_iter=12345, max_cnt=1000, workers=1)
    row = by_name(frame)["run_good"]
    iters, losses = truth["run_good"]
    value, it, sigma = ref_final(iters[-1000:], losses[-1000:], target=12345)
    assert it == 12340 and row["target_iter"] == 12340 and row["final_iter"] == 15000
    assert row["smooth_loss"] == pytest.approx(value, rel=1e-12)
    assert sigma == 1.0 and row["sigma"] == pytest.approx(1.0)
    # a target beyond the end of the log: the run is short of it
    late = by_name(logs.quick_check(base, "keep|run_good", target_iter=20000, workers=1))
    assert "of target_iter 20000" in late["run_good"]["problems"]
    # a target before the lines read
    early = by_name(logs.quick_check(base, "keep|run_good", target_iter=50, max_cnt=100))
    assert "no logged iteration <= target_iter 50" in early["run_good"]["problems"]


# ---------------------------------------------------------------------------- hyperparameters


@pytest.fixture(scope="module")
def released():
    from bayes_steplaw import DataError, load_sweeps

    try:
        return load_sweeps("dense"), load_sweeps("moe")
    except DataError as exc:  # pragma: no cover - data not available
        pytest.skip(f"released data not available: {exc}")


def test_n_formula_reproduces_released_n(released):
    dense, moe = released
    n, n_active = logs.non_embedding_params(dense["d_model"], dense["d_ff"], dense["n_layers"])
    np.testing.assert_array_equal(n, dense["N"].to_numpy())
    np.testing.assert_array_equal(n_active, n)
    assert logs.non_embedding_params(960, 9368, 7)[0] == 214663680
    cols = ["n_experts", "top_k", "d_expert", "d_shared_expert", "n_dense_layers"]
    n, n_active = logs.non_embedding_params(
        moe["d_model"], moe["d_ff"], moe["n_layers"], *(moe[c] for c in cols)
    )
    np.testing.assert_array_equal(n, moe["N"].to_numpy())
    np.testing.assert_array_equal(n_active, moe["N_active"].to_numpy())


def test_d_formula_reproduces_released_d(released):
    for frame in released:
        args = frame["iterations"], frame["batch_sequences"], frame["seq_len"]
        exact = logs.training_tokens(*args, sig_figs=None)
        assert np.abs(exact / frame["D"].to_numpy() - 1).max() < 0.0025
        np.testing.assert_array_equal(logs.training_tokens(*args), frame["D"].to_numpy())


def test_released_names_parse(released):
    dense, moe = released
    for frame, cols in (
        (dense, ["d_model", "d_ff", "n_heads", "n_layers", "batch_sequences", "iterations"]),
        (moe, ["d_model", "d_ff", "n_layers", "n_experts", "top_k", "d_expert"]),
    ):
        parsed = pd.DataFrame([logs.parse_run_name(r) for r in frame["run"]])
        for col in cols:
            np.testing.assert_array_equal(parsed[col], frame[col].astype(float), err_msg=col)
        np.testing.assert_array_equal(snap_lr(parsed["lr"]), frame["lr"])  # both snapped
    assert set(pd.DataFrame([logs.parse_run_name(r) for r in moe["run"]])["variant"]) == set(
        moe["variant"]
    )


def test_parse_run_name_regex_and_hparams_file(tmp_path, monkeypatch):
    name = "step2v2_0618_h1280_ffnh9472_numh10_numl10_lr1.95E-03_bs512_ti21696_mlr1.00E-05"
    got = logs.parse_run_name(name)
    assert got == {
        "d_model": 1280,
        "d_ff": 9472,
        "n_heads": 10,
        "n_layers": 10,
        "lr": 1.95e-3,
        "batch_sequences": 512.0,
        "iterations": 21696,
        "min_lr": 1e-5,
    }
    assert logs.parse_run_name("exp-lr3e-4-b256", r"lr(?P<lr>[\d.e-]+?)-b(?P<bs>\d+)") == {
        "lr": 3e-4,
        "batch_sequences": 256.0,
    }
    (tmp_path / "hparams.json").write_text(json.dumps({"hidden_size": 512, "lr": "1e-3", "x": 1}))
    assert logs.read_hparams_file(tmp_path / "hparams.json") == {"d_model": 512, "lr": 1e-3}
    (tmp_path / "bad.json").write_text(json.dumps({"numl": 2.5}))
    with pytest.raises(ValueError, match=r"bad\.json: n_layers must be a whole number"):
        logs.read_hparams_file(tmp_path / "bad.json")
    (tmp_path / "hparams.yaml").write_text("h: 64\nbs: 8\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML not importable
    with pytest.raises(ValueError, match="needs PyYAML"):
        logs.read_hparams_file(tmp_path / "hparams.yaml")


# ---------------------------------------------------------------------------- collect


@pytest.fixture(scope="module")
def sweep_tree(tmp_path_factory):
    """Two settings x 3 learning rates named the released way, one setting from hparams files,
    one run that stopped early and one without hyperparameters."""
    base = tmp_path_factory.mktemp("sweep") / "runs"
    truth = {}
    for ti, bs in ((300, 64), (600, 64)):
        for j, lr in enumerate(("1.381e-03", "2.762e-03", "5.524e-03")):
            name = f"step2v2_0618_h64_ffnh176_numh4_numl2_lr{lr}_bs{bs}_ti{ti}_mlr1.00e-05"
            iters, losses = curve(ti // 2, interval=2, seed=ti + j)
            write_log(base / "exp_keep" / name / "train_log_0.txt", iters, losses)
            truth[name] = (iters, losses)
    for j, lr in enumerate((9.766e-04, 1.953e-03, 3.906e-03)):
        name = f"custom_{j}"
        iters, losses = curve(100, interval=5, seed=50 + j)
        run = base / "exp_keep" / name
        write_log(run / "train_log_0.txt", iters, losses, total=500)
        hp = {"lr": lr, "global_batch_size": 16, "N": 1.0e6, "seq_len": 1024}
        (run / "hparams.json").write_text(json.dumps(hp))
        truth[name] = (iters, losses)
    iters, losses = curve(100, interval=2, seed=7)
    name = "step2v2_0618_h64_ffnh176_numh4_numl2_lr1.381e-03_bs64_ti900_mlr1.00e-05"
    write_log(base / "exp_keep" / name / "train_log_0.txt", iters, losses, total=900)
    write_log(base / "exp_keep" / "mystery" / "train_log_0.txt", iters, losses)
    return base, truth


def test_collect_builds_a_valid_sweep(sweep_tree, tmp_path):
    base, truth = sweep_tree
    sweeps = logs.collect(base, "keep|step|custom|myst", seq_len=128, workers=1, progress=False)
    assert len(sweeps) == 9 and sweeps["setting"].nunique() == 3
    excluded = {e["run"]: e["problems"] for e in sweeps.attrs["excluded"]}
    assert "stopped early" in excluded.pop(next(k for k in excluded if "ti900" in k))
    assert excluded.pop("mystery").startswith("unknown hyperparameters: lr, batch size")
    assert not excluded
    rows = {r["run"]: r for r in sweeps.to_dict("records")}
    for name, (iters, losses) in truth.items():
        assert rows[name]["loss"] == pytest.approx(ref_final(iters, losses)[0], rel=1e-12)
    dense = sweeps[sweeps["run"].str.startswith("step")]
    assert (dense["N"] == 2 * (4 * 64**2 + 3 * 64 * 176)).all()
    assert (dense["seq_len"] == 128).all()
    d_expected = np.where(dense["iterations"] == 300, 300 * 64 * 128, 600 * 64 * 128)
    np.testing.assert_array_equal(dense["D"], [float(f"{d:.3g}") for d in d_expected])
    custom = sweeps[sweeps["run"].str.startswith("custom")]
    assert (custom["N"] == 1.0e6).all() and (custom["iterations"] == 500).all()  # from the log
    assert (custom["D"] == 8.19e6).all()  # 500 * 16 * 1024 = 8_192_000 to 3 figures
    assert (custom["seq_len"] == 1024).all()  # the hparams file wins over seq_len=
    assert set(custom["lr"]) == {2.0**-10, 2.0**-9, 2.0**-8}  # snapped to the grid
    out = tmp_path / "sweeps.csv"
    sweeps.to_csv(out, index=False)
    again = read_sweeps(out)
    pd.testing.assert_series_equal(again["loss"], sweeps["loss"])


def test_collect_on_problem_raise_lists_every_run(sweep_tree):
    base, _ = sweep_tree
    with pytest.raises(logs.LogProblemsError) as info:
        logs.collect(base, ".", seq_len=128, workers=1, on_problem="raise")
    assert set(info.value.problems) >= {"mystery"} and len(info.value.problems) == 2


# ---------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_quick_check_tsv_pretty_and_problems(log_tree):
    base, _ = log_tree
    api = by_name(logs.quick_check(base, "keep|run", workers=1))
    result = runner.invoke(
        app, ["logs", "quick-check", str(base), "keep|run", "--no-progress", "--verbose"]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout), sep="\t")
    assert list(table.columns) == ["exp_name", "smooth_loss", "target_iter", "final_iter"]
    assert list(table["exp_name"]) == sorted(api)
    for row in table.to_dict("records"):
        ref = api[row["exp_name"]]["smooth_loss"]
        assert row["smooth_loss"] == pytest.approx(ref, rel=1e-15, nan_ok=True)
    assert re.search(r"^skip .*grp_skip: name does not match", result.stderr, re.M)
    assert re.search(r"^failed: run_diverged: .*non-finite", result.stderr, re.M)
    assert re.search(r"^failed: run_early: stopped early", result.stderr, re.M)
    assert re.search(r"^warning: run_truncated: the last line is truncated", result.stderr, re.M)
    assert "run_good" not in result.stderr

    pretty = runner.invoke(
        app, ["logs", "quick-check", str(base), "keep|good", "--pretty", "--target-iter", "9999"]
    )
    assert pretty.exit_code == 0, pretty.output
    header, line = pretty.stdout.splitlines()
    assert header.split() == ["exp_name", "smooth_loss", "target_iter", "final_iter"]
    assert line.split()[0] == "run_good" and line.split()[2:] == ["9990", "15000"]

    strict = runner.invoke(app, ["logs", "quick-check", str(base), "keep|run", "--strict"])
    assert strict.exit_code == 1


def test_cli_errors_name_the_argument(tmp_path, log_tree):
    base, _ = log_tree
    cases = [
        (["quick-check", str(tmp_path / "nope"), "."], "BASE_DIR"),
        (["quick-check", str(base), "("], "DIR_PATTERN '(' is not a valid regular expression"),
        (["quick-check", str(base), "zzz"], "no runs under"),
        (["collect", str(base), ".", "--out", "x.csv", "--set", "oops"], "--set expects"),
        (["collect", str(base), ".", "--out", "x.csv", "--name-regex", "x"], "--name-regex"),
        (["collect", str(base), ".", "--out", "x.csv", "--set", "foo=1"], "--set has unknown"),
        (["collect", str(base), ".", "--out", "x.csv", "--set", "lr=abc"], "--set: lr must be"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["logs", *args])
        assert result.exit_code != 0 and message in result.stderr, (args, result.output)
        assert "Traceback" not in result.output


def test_cli_collect_writes_a_sweep_read_sweeps_accepts(sweep_tree, tmp_path):
    base, truth = sweep_tree
    out = tmp_path / "sweeps.csv"
    result = runner.invoke(
        app,
        [
            "logs",
            "collect",
            str(base),
            ".",
            "--out",
            str(out),
            "--seq-len",
            "128",
            "--workers",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 9 runs in 3 settings" in result.stderr
    assert re.search(r"^excluded: mystery: unknown hyperparameters", result.stderr, re.M)
    sweeps = read_sweeps(out)
    assert len(sweeps) == 9 and set(sweeps["run"]) == set(truth)
    strict = runner.invoke(
        app, ["logs", "collect", str(base), ".", "--out", str(tmp_path / "s.csv"), "--strict"]
    )
    assert strict.exit_code == 1 and "mystery" in strict.stderr
    assert not (tmp_path / "s.csv").exists()


def test_collect_moe_names_hparams_defaults_and_target_iter(tmp_path):
    base = tmp_path / "moe"
    truth = {}
    for j, lr in enumerate(("1.726e-04", "3.453e-04", "6.905e-04")):
        name = f"step2v2_0801_2in8_moeh96_sed32_h64_ffnh176_numh4_numl3_lr{lr}_bs16_ti400_gg"
        iters, losses = curve(200, interval=2, seed=j)
        write_log(base / name / "train_log_0.txt", iters, losses)
        truth[name] = (iters, losses)
    # the last run states its own seq_len, in YAML when PyYAML is there (it wins over defaults)
    hp = "hparams.yaml" if importlib.util.find_spec("yaml") else "hparams.json"
    (base / name / hp).write_text('{"seq_len": 256}\n')  # valid JSON and valid YAML
    with pytest.warns(SweepWarning, match="same loss"):  # the one-run setting
        sweeps = logs.collect(
            base, "step", defaults={"n_dense_layers": "1", "seq_len": 128}, target_iter=301,
            min_runs=1,
        )  # fmt: skip
    assert len(sweeps) == 3 and set(sweeps["family"]) == {"moe"}
    assert set(sweeps["variant"]) == {"2in8"}
    attn, dense_ffn, moe_ffn = 3 * 4 * 64**2, 3 * 64 * 176, 2 * 3 * 64
    assert (sweeps["N"] == attn + dense_ffn + moe_ffn * (8 * 96 + 32)).all()
    assert (sweeps["N_active"] == attn + dense_ffn + moe_ffn * (2 * 96 + 32)).all()
    assert (sweeps["iterations"] == 301).all() and (sweeps["target_iter"] == 300).all()
    runs = sweeps.set_index("run")
    assert runs.loc[name, "seq_len"] == 256 and (runs.drop(name)["seq_len"] == 128).all()
    assert runs.loc[name, "D"] == float(f"{301 * 16 * 256:.3g}")
    assert sweeps["setting"].nunique() == 2  # the longer sequences make another D
    for row in sweeps.to_dict("records"):
        iters, losses = truth[row["run"]]
        assert row["loss"] == pytest.approx(ref_final(iters, losses, target=301)[0], rel=1e-12)


def test_an_unexpected_error_in_one_run_does_not_stop_the_others(log_tree, monkeypatch):
    base, _ = log_tree
    real = logs.read_loss_curve

    def flaky(path, *args, **kwargs):
        if "run_only" in str(path):
            raise RuntimeError("disk on fire")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(logs.analyse, "read_loss_curve", flaky)
    rows = by_name(logs.quick_check(base, "keep|run", workers=1))
    assert rows["run_only"]["status"] == "failed"
    assert rows["run_only"]["problems"] == "unexpected error: RuntimeError: disk on fire"
    assert rows["run_good"]["status"] == "ok" and len(rows) == 6
