"""The key of a compiled nutpie model: a structural hash of the graph nutpie compiles.

:func:`model_key` describes a PyMC model by what determines the machine code nutpie's numba
backend makes of it, and nothing else, so that two processes building the same model get the
same key and any change that could change the code gives another:

* the value of every constant in the graph: data passed to PyMC as numpy arrays is baked into
  the object code, so a different data set is a different key;
* the name and type (dtype, rank, static shape), not the value, of every shared variable
  (``pm.Data``): nutpie passes those at run time, so ``CompiledPyMCModel.with_data`` and a new
  model with other ``pm.Data`` values of the same rank share a key;
* every Op with its props (or its full instance state), the graph's wiring and every output
  type, of the log density and of the stored deterministics, before PyTensor's rewrites;
* the names, shapes and dtypes of the free parameters and the stored variables (the
  "structure": groups, number of settings);
* nutpie's options that change the code (``var_names``, numba options, ``check_bounds``),
  PyTensor's and numba's configuration, the CPU, the versions of Python, numpy, numba,
  llvmlite, PyTensor, PyMC, nutpie and bayes-steplaw, and the source of the modules that write
  and read the cache entries.

Anything the description cannot capture without loss (an unknown object, an inner graph, a
closure) raises :class:`Uncacheable`: such a model is compiled without the cache rather than
risk sharing a key with a different one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CACHE_FORMAT", "Layout", "Uncacheable", "model_key"]

#: Bump when the layout of an entry changes (the modules' sources are in the key too; the
#: number keeps entries apart if the files are restored to an older state).
CACHE_FORMAT = 2

# Code from these packages is identified by name: their versions are in the key. Anything else
# (a user's own Op, say) is identified by name and by the hash of its module's source file, so
# that editing it between two runs cannot bring back code compiled from the old version.
_VERSIONED = ("builtins", "numpy", "scipy", "pytensor", "pymc", "nutpie", "numba")
_DISTRIBUTIONS = ("numpy", "numba", "llvmlite", "pytensor", "pymc", "nutpie", "bayes-steplaw")
_PYTENSOR_FLAGS = (
    "floatX",
    "numba__fastmath",
    "optimizer_excluding",
    "optimizer_including",
    "optimizer_requiring",
    "cast_policy",
    "compute_test_value",
)
_NUMBA_FLAGS = ("OPT", "BOUNDSCHECK", "DEBUGINFO_DEFAULT", "CPU_NAME", "CPU_FEATURES")
_MODULE_HASHES: dict[str, str] = {}


class Uncacheable(Exception):
    """The model holds something the structural key cannot describe."""


@dataclass(frozen=True)
class Layout:
    """How nutpie lays the parameters out: the free ones (``n_free`` variables, ``n_dim``
    numbers) first, then the stored deterministics (``n_expanded`` numbers in all)."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    n_free: int
    n_dim: int
    n_expanded: int


def model_key(
    model, var_names: list[str] | None, cfunc_options: Mapping[str, Any], code: Iterable[Path]
) -> tuple[str, Layout, dict[str, Any]]:
    """Key, parameter layout and shared variables (by name) of the graph nutpie would compile.

    Parameters
    ----------
    model : pymc.Model
        The model, after nutpie's preparation (``freeze_model``).
    var_names : list of str or None
        nutpie's ``var_names`` (the stored variables); None for all.
    cfunc_options : mapping
        Options of the numba C callbacks.
    code : iterable of Path
        Source files whose content shapes an entry (the cache's own modules).

    Raises
    ------
    Uncacheable
        When the model holds something the key cannot describe.
    """
    from nutpie import compile_pymc as ncp

    shapes = ncp._compute_shapes(model)
    # the same order and selection as nutpie's _make_functions
    free = [(model.rvs_to_values[rv].name, str(rv.dtype)) for rv in model.free_RVs]
    free_names = {name for name, _ in free}
    remaining = [v for v in model.unobserved_value_vars if v.name not in free_names]
    if var_names is not None:
        wanted = set(var_names)
        remaining = [v for v in remaining if v.name in wanted]
    names = [name for name, _ in free] + [v.name for v in remaining]
    all_shapes = [tuple(int(s) for s in shapes[name]) for name in names]
    sizes = [int(np.prod(s, dtype=int)) for s in all_shapes]
    layout = Layout(
        names=names,
        shapes=all_shapes,
        n_free=len(free),
        n_dim=sum(sizes[: len(free)]),
        n_expanded=sum(sizes),
    )
    graph, shared = _graph_digest(model, [model.logp(), *remaining])
    payload = {
        "versions": _versions(code),
        "environment": _environment(),
        "layout": asdict(layout),
        "dtypes": [dtype for _, dtype in free],
        "var_names": None if var_names is None else sorted(var_names),
        "check_bounds": bool(model.check_bounds),
        "cfunc_options": repr(_canon(dict(cfunc_options))),
        "graph": graph,
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return key, layout, shared


def _versions(code: Iterable[Path]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version, "cache_format": str(CACHE_FORMAT)}
    for dist in _DISTRIBUTIONS:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "?"
    # an editable install keeps its version while its code changes
    for path in sorted(Path(p) for p in code):
        out[f"source:{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _environment() -> dict[str, Any]:
    import llvmlite.binding as llvm
    import numba
    import pytensor

    cfg = pytensor.config
    return {
        # the options PyTensor itself keys its C code by, and those that change its rewrites
        "pytensor_config": cfg.get_config_hash(),
        "pytensor_flags": {f: str(getattr(cfg, f, None)) for f in _PYTENSOR_FLAGS},
        "numba_config": {n: str(getattr(numba.config, n, None)) for n in _NUMBA_FLAGS},
        # numba's index key has the CPU too; in ours, one entry directory is one machine type
        "cpu": [llvm.get_process_triple(), llvm.get_host_cpu_name()],
        "cpu_features": llvm.get_host_cpu_features().flatten(),
    }


def _graph_digest(model, outputs) -> tuple[str, dict[str, Any]]:
    """sha256 of a canonical description of the graph from the value variables to outputs.

    Every node is (Op, its inputs' positions, its outputs' types); a root is a constant (type
    and value), a shared variable (name and type: its value is passed at run time) or a value
    variable (name and type). Variable names elsewhere and PyTensor's auto-names, tags and
    identities are left out: they differ between processes and do not change the code.
    """
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import graph_inputs, io_toposort

    value_vars = set(model.value_vars)
    inputs = list(graph_inputs(outputs))
    index: dict[Any, int] = {}
    op_memo: dict[int, Any] = {}  # an Op object is usually shared by many nodes
    shared: dict[str, Any] = {}
    h = hashlib.sha256()

    def emit(item) -> None:
        h.update(repr(item).encode())
        h.update(b"\n")

    for var in inputs:
        if isinstance(var, Constant):
            emit(("const", _canon(var.type), _canon(var.data)))
        elif isinstance(var, SharedVariable):
            if not var.name or (var.name in shared and shared[var.name] is not var):
                raise Uncacheable(f"shared variable without a unique name: {var!r}")
            shared[var.name] = var
            emit(("shared", var.name, _canon(var.type)))
        elif var in value_vars:
            emit(("value", var.name, _canon(var.type)))
        else:
            raise Uncacheable(f"free input {var!r} is not a value variable")
        index[var] = len(index)
    for node in io_toposort(inputs, outputs):
        op_key = op_memo.get(id(node.op))
        if op_key is None:
            op_key = op_memo[id(node.op)] = _canon(node.op)
        emit(
            (
                "node",
                op_key,
                tuple(index[i] for i in node.inputs),
                tuple(_canon(o.type) for o in node.outputs),
            )
        )
        for out in node.outputs:
            index[out] = len(index)
    emit(("outputs", tuple(index[o] for o in outputs)))
    return h.hexdigest(), shared


def _qualified(obj) -> tuple[str, ...]:
    module = getattr(obj, "__module__", None) or "?"
    name = (module, getattr(obj, "__qualname__", None) or obj.__name__)
    if module.split(".")[0] in _VERSIONED:
        return name
    digest = _MODULE_HASHES.get(module)
    if digest is None:
        path = getattr(sys.modules.get(module), "__file__", None)
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except (TypeError, OSError) as err:
            raise Uncacheable(f"no source file for {module}.{name[1]}") from err
        _MODULE_HASHES[module] = digest
    return (*name, digest)


def _canon(obj, depth: int = 0):
    """A repr-stable, lossless description of an Op, Type, prop or constant value.

    Raises Uncacheable for anything it cannot describe without loss (a closure, an inner
    graph, an unknown object).
    """
    import types as pytypes

    from pytensor.graph.basic import Apply, Variable
    from pytensor.graph.fg import FunctionGraph

    if depth > 25:
        raise Uncacheable("object nested too deeply")
    d = depth + 1
    if obj is None or isinstance(obj, (bool, int, str, bytes)):
        return obj
    if isinstance(obj, float):
        return ("float", obj.hex())
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise Uncacheable("object array constant")
        # tobytes() is in C order whatever the memory layout: the values, not the strides
        return ("ndarray", obj.dtype.str, obj.shape, hashlib.sha256(obj.tobytes()).hexdigest())
    if isinstance(obj, np.generic):
        return ("npscalar", obj.dtype.str, obj.tobytes().hex())
    if isinstance(obj, np.dtype):
        return ("dtype", obj.str, str(obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(_canon(x, d) for x in obj))
    if isinstance(obj, Mapping):
        items = [(_canon(k, d), _canon(v, d)) for k, v in obj.items()]
        return ("map", tuple(sorted(items, key=repr)))
    if isinstance(obj, (set, frozenset)):
        return ("set", tuple(sorted((_canon(x, d) for x in obj), key=repr)))
    if isinstance(obj, slice):
        return ("slice", _canon(obj.start, d), _canon(obj.stop, d), _canon(obj.step, d))
    if isinstance(obj, type):
        return ("class", *_qualified(obj))
    if isinstance(obj, np.ufunc):
        return ("ufunc", obj.__name__)
    if isinstance(obj, pytypes.FunctionType):
        if obj.__closure__ or "<" in obj.__qualname__:
            raise Uncacheable(f"function {obj.__qualname__} is a closure or lambda")
        return ("function", *_qualified(obj))
    if isinstance(obj, (pytypes.BuiltinFunctionType, pytypes.MethodType)):
        raise Uncacheable(f"callable {obj!r}")
    if isinstance(obj, (Variable, Apply, FunctionGraph)):
        raise Uncacheable(f"inner graph in {type(obj).__name__}")
    props = getattr(type(obj), "__props__", None)
    if props is not None:
        # PyTensor's contract: an Op (or Type) is identified by its class and its props
        return (
            "props",
            *_qualified(type(obj)),
            tuple((p, _canon(getattr(obj, p), d)) for p in props),
        )
    if hasattr(obj, "__dict__"):
        # e.g. scalar Ops and their output-type rules: class and full instance state
        state = dict(vars(obj))
        for cls in type(obj).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            for slot in (slots,) if isinstance(slots, str) else slots:
                if slot not in ("__dict__", "__weakref__"):
                    state[f"slot:{slot}"] = getattr(obj, slot, "<unset>")
        return ("object", *_qualified(type(obj)), _canon(state, d))
    raise Uncacheable(f"cannot describe {type(obj).__name__}")
