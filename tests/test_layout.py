"""The package's shape: no import circles, modest modules, files of the last release load."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import bayes_steplaw as bsl

PACKAGE = Path(bsl.__file__).resolve().parent
DATA = Path(__file__).parent / "data"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Package modules ``path`` imports (anywhere in it, lazy imports included)."""
    name = _module_name(path)
    base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{parent}.{node.module}" if node.module else parent
            else:
                mod = node.module or ""
            found |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return {m for m in found if m in modules and m != name}


def test_no_module_imports_one_that_imports_it_back():
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    packages = {n for n, p in files.items() if p.name == "__init__.py"}
    # a package's __init__ is its public face: edges into it do not make a layer
    graph = {n: _imports(p, set(files)) - packages for n, p in files.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, ()))
        return False

    circles = sorted((a, b) for a, deps in graph.items() for b in deps if reaches(b, a))
    assert not circles, f"import circles: {circles}"


def test_modules_stay_modest():
    sizes = {_module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    big = {name: n for name, n in sizes.items() if n > 650}
    assert not big, f"modules over 650 lines: {big}"


def test_a_posterior_written_by_the_last_release_loads_and_predicts_the_same():
    """An optimum file written by bayes-steplaw 0.1.0 (tests/data, fitted then on a simulated
    sweep) loads and gives the numbers 0.1.0 gave (tests/data/v0.1_expected.json)."""
    expected = json.loads((DATA / "v0.1_expected.json").read_text())["optimum"]
    post = bsl.load(DATA / "v0.1_optimum.nc")
    assert post.kind == "optimum" and post.metadata["package_version"] == "0.1.0"
    pred = post.predict([3e8, 1e9], [1e10, 5e10], group="moe", allow_unconverged=True)
    assert pred.kind == "optimum"  # the old kind "run"/"centre": the optimum of a new setting
    median = pred.median()
    # 0.1.0 took the mean of the two middle draws of an even count, 0.3 their geometric mean
    # (the median of ln lr): they differ by less than the two draws differ
    np.testing.assert_allclose(median["lr"], expected["median_lr"], rtol=1e-4)
    np.testing.assert_allclose(median["batch_tokens"], expected["median_batch_tokens"], rtol=1e-4)
    lower = pred.interval(0.9, method="hdi")["lr"].sel(bound="lower")
    np.testing.assert_allclose(lower, expected["hdi90_lr_lower"], rtol=1e-12)


def test_a_02_landscape_or_loss_file_is_refused_naming_what_replaces_it(tmp_path):
    """0.3 replaced the landscape and the 0.2 loss model by one loss model: their files are
    refused with a message that says so and how to refit (issue 19, item 1)."""
    import json as _json

    import h5py

    with pytest.raises(bsl.PosteriorFileError, match=r"replaced.*bayes-steplaw fit SWEEPS"):
        bsl.load(DATA / "v0.1_landscape.nc")
    old = tmp_path / "loss_v1.nc"
    old.write_bytes((DATA / "v0.1_optimum.nc").read_bytes())
    with h5py.File(old, "r+") as f:
        meta = _json.loads(f["posterior"].attrs["bayes_steplaw_metadata"])
        meta.update(model="loss", model_version=1)
        f["posterior"].attrs["bayes_steplaw_metadata"] = _json.dumps(meta)
    with pytest.raises(bsl.PosteriorFileError, match=r"'loss' posterior of bayes-steplaw 0\.2"):
        bsl.load(old)
