"""nutpie's numba compilation, made cacheable by numba across processes.

``nutpie.compile_pymc_model(model, backend="numba")`` (nutpie 0.16, ``compile_pymc.py``)
wraps PyTensor's jitted log density and its expansion to the stored variables in two
``numba.cfunc`` C callbacks, without ``cache=True``. Even with it numba could not reuse them:
they are closures over a ``Dispatcher``, numba's cache index key pickles the closure cells
(``numba/core/caching.py``, ``Cache._index_key``) and a pickled ``Dispatcher`` carries a fresh
random ``uuid4`` per process (``numba/core/dispatcher.py``), so the key never matches twice.
Linking and re-optimising the whole log density into the callbacks costs seconds even when
every inner function comes from PyTensor's per-Op cache, and nutpie's rewriting and
differentiating the graph (``_make_functions``) a few more.

:func:`build` compiles as nutpie does, through the same callbacks written as module-level
source without closures (the sizes as literals, ``extract`` as a global that numba resolves at
compile time only), with ``cache=True`` and a numba cache locator that puts them in the entry
directory given by the caller, keyed by the model key. :func:`load` rebuilds nutpie's
``CompiledPyMCModel`` from that entry: numba loads the object code, and neither PyTensor nor
numba's compiler runs. Either returns what ``nutpie.compile_pymc_model`` returns, and it
samples the same draws for the same seed.

numba will not save code that holds a "dynamic global", a raw pointer into the process: a
constant array that is neither C- nor F-contiguous or over 1 MB (``numba/core/base.py``,
``make_constant_array``), or an Op that PyTensor links by the address of a Python object (its
scipy.special Cython wrappers, ``pytensor/link/numba/dispatch/cython_support.py``). That is
why :class:`~bayes_steplaw.bayes.design.Design` keeps ``setting_levels`` column-major (each
column a contiguous constant), and why the landscape and loss models (Student-t likelihoods
through ``gammaln``) are not cacheable: :func:`build` reports it, and the caller remembers.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._compile_key import Layout

__all__ = ["BuildResult", "build", "compile_uncached", "load", "prepare"]

# functions compiled from our source -> (key, entry directory), for the numba cache locator
_REGISTERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCATOR_LOCK = threading.Lock()
_LOCATOR_INSTALLED = False

# nutpie's C callbacks (nutpie/compile_pymc.py, _make_c_logp_func and _make_c_expand_func),
# as module-level source instead of closures, with the sizes as literals: numba's cache index
# then hashes only this bytecode, and the global ``extract`` is needed to compile only, so a
# cached callback loads without it.
_LOGP_SRC = """
def logp_numba(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        logp = numba.carray(logp_, ())
        logp_val, grad = extract(x, user_data_)
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:
        return 1
    return 0
"""

_EXPAND_SRC = """
def expand_numba(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_expanded},))
        (values,) = extract(x, user_data_)
        out[...] = values
    except Exception:
        return -2
    return 0
"""

NOT_SAVED = (
    "numba did not save the code: it holds a dynamic global (a strided constant or one over "
    "1 MB, or an Op linked by address such as PyTensor's scipy.special wrappers)"
)


def prepare(model, *, initial_points, jitter_rvs, strategy: str, freeze_model):
    """The model and initial-point function, as ``nutpie.compile_pymc_model`` prepares them."""
    from nutpie import compile_pymc as ncp
    from pymc.initial_point import make_initial_point_fn

    if freeze_model:
        from pymc.model.transform.optimization import freeze_dims_and_data

        model = freeze_dims_and_data(model)
    if strategy == "support_point" and jitter_rvs is None:
        jitter_rvs = set(model.free_RVs)
    point_fn = make_initial_point_fn(
        model=model,
        overrides=initial_points,
        default_strategy=strategy,
        jitter_rvs=jitter_rvs,
        return_transformed=True,
    )
    return model, ncp._wrap_with_lock(point_fn)


def compile_uncached(model, point_fn, var_names, cfunc_options: Mapping[str, Any]):
    """nutpie's own numba compilation of a prepared model."""
    from nutpie import compile_pymc as ncp

    return ncp._compile_pymc_model_numba(
        model=model, pymc_initial_point_fn=point_fn, var_names=var_names, **cfunc_options
    )


class BuildResult(NamedTuple):
    """What :func:`build` made, and whether it went into the entry."""

    compiled: Any  # nutpie.compile_pymc.CompiledPyMCModel
    shared_names: list[str] | None  # the shared variables in the order the code reads them,
    # when the code was saved and loads back; None when not
    why: str  # why not ("" when saved)
    uncacheable: bool  # numba will never save this code: no use trying again


def build(
    model, entry: Path, key: str, layout: Layout, point_fn, var_names, cfunc_options
) -> BuildResult:
    """Compile as nutpie does, saving the callbacks' object code in ``entry``."""
    from nutpie import compile_pymc as ncp

    _install_locator()
    n_dim, n_expanded, logp_pt, expand_pt, flat_point_fn, shape_info = ncp._make_functions(
        model,
        mode="NUMBA",
        compute_grad=True,
        join_expanded=True,
        pymc_initial_point_fn=point_fn,
        var_names=var_names,
    )
    names, _, shapes = shape_info
    # False only if nutpie lays the parameters out otherwise than the key says (a nutpie
    # change this module does not know): compile without the cache then
    consistent = (n_dim, n_expanded, list(names), [tuple(map(int, s)) for s in shapes]) == (
        layout.n_dim,
        layout.n_expanded,
        layout.names,
        layout.shapes,
    )
    # nutpie's own handling of shared variables (_compile_pymc_model_numba)
    shared_vars: dict[str, Any] = {}
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        if shared_vars.setdefault(var.name, var) is not var:
            raise ValueError(f"Shared variables must have unique names: {var.name}")
    data = _shared_data(shared_vars)
    dtype = ncp.make_user_data(shared_vars, data).dtype
    extracts = [
        ncp.make_extraction_fn(fn.vm.jit_fn, data, [v.name for v in fn.get_shared()], dtype)
        for fn in (logp_pt, expand_pt)
    ]
    try:
        # numba looks in its cache before compiling: a damaged file there raises
        logp, expand = _callbacks(layout, key, entry, cfunc_options, extracts, consistent)
    except Exception:
        if not consistent:
            raise
        shutil.rmtree(entry, ignore_errors=True)  # start the entry afresh, once
        logp, expand = _callbacks(layout, key, entry, cfunc_options, extracts)
    compiled = _assemble(
        model,
        (n_dim, n_expanded),
        logp,
        expand,
        flat_point_fn,
        shared_vars,
        shape_info,
        (logp_pt, expand_pt),
    )
    if not consistent:
        why = "nutpie laid the parameters out otherwise than the key says"
        return BuildResult(compiled, None, why, uncacheable=False)
    # numba skips the save of code holding a dynamic global, with a warning that PyTensor,
    # nutpie and our sampler silence
    dynamic = _dynamic_globals(logp, expand)
    if dynamic:
        return BuildResult(compiled, None, NOT_SAVED, uncacheable=True)
    try:  # saved only if it loads back
        _load_callbacks(layout, key, entry, cfunc_options)
    except Exception as err:
        if dynamic is None:  # numba did not say why: assume the worst, as for dynamic globals
            return BuildResult(compiled, None, NOT_SAVED, uncacheable=True)
        # e.g. removed meanwhile by clear_compile_cache: the next process tries again
        why = f"the saved code did not load back ({type(err).__name__})"
        return BuildResult(compiled, None, why, uncacheable=False)
    return BuildResult(compiled, list(shared_vars), "", uncacheable=False)


def load(
    model,
    entry: Path,
    key: str,
    layout: Layout,
    shared_names: list[str],
    shared: Mapping[str, Any],
    point_fn,
    cfunc_options,
):
    """nutpie's CompiledPyMCModel from an entry, without PyTensor's rewrites or numba's
    compiler; raises (numba's TypingError, an unpickling error) when the entry is unusable."""
    from nutpie import compile_pymc as ncp

    _install_locator()
    logp, expand = _load_callbacks(layout, key, entry, cfunc_options)
    shared_vars = {name: shared[name] for name in shared_names}  # the order the code reads
    # the flat initial point and the slices, as nutpie's _make_functions makes them
    flat_point_fn = ncp._rv_dict_to_flat_array_wrapper(
        point_fn, names=layout.names[: layout.n_free], shapes=layout.shapes[: layout.n_free]
    )
    ends = np.cumsum([int(np.prod(s, dtype=int)) for s in layout.shapes]).tolist()
    slices = [slice(start, end) for start, end in zip([0, *ends], ends)]
    shape_info = (list(layout.names), slices, list(layout.shapes))
    return _assemble(
        model,
        (layout.n_dim, layout.n_expanded),
        logp,
        expand,
        flat_point_fn,
        shared_vars,
        shape_info,
    )


# --------------------------------------------------------------------------- internals


def _shared_data(shared_vars: Mapping[str, Any]) -> dict[str, np.ndarray]:
    # read-only C-ordered copies, as nutpie keeps them: the code reads them by address
    data = {n: np.array(v.get_value(), order="C", copy=True) for n, v in shared_vars.items()}
    for value in data.values():
        value.flags.writeable = False
    return data


def _assemble(model, sizes, logp, expand, point_fn, shared_vars, shape_info, pt_fns=(None, None)):
    """nutpie's CompiledPyMCModel, as ``_compile_pymc_model_numba`` builds it; ``sizes`` is
    (n_dim, n_expanded), ``pt_fns`` the PyTensor functions (nutpie never calls them while
    sampling: not rebuilt from an entry)."""
    from nutpie import compile_pymc as ncp

    names, _, shapes = shape_info
    shared_data = _shared_data(shared_vars)
    dims, coords = ncp._prepare_dims_and_coords(model, shape_info)
    return ncp.CompiledPyMCModel(
        _n_dim=sizes[0],
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, shape in zip(names, shapes)},
        compiled_logp_func=logp,
        compiled_expand_func=expand,
        initial_point_func=point_fn,
        shared_data=shared_data,
        user_data=ncp.make_user_data(shared_vars, shared_data),
        n_expanded=sizes[1],
        shape_info=shape_info,
        logp_func=pt_fns[0],
        expand_func=pt_fns[1],
    )


def _callbacks(layout, key, entry, cfunc_options, extracts=(None, None), cache=True):
    """Both C callbacks, compiled (``extracts`` given) or loaded from numba's cache.

    Without ``extracts`` numba can only load them: compiling fails on the missing global, so
    a miss raises (a TypingError) and never yields a callback of some other model.
    ``cache=False`` compiles without reading or writing the entry.
    """
    import numba
    from numba import types

    ptr = types.CPointer(types.double)
    logp_sig = types.int64(types.uint64, ptr, ptr, ptr, types.voidptr)
    expand_sig = types.int64(types.uint64, types.uint64, ptr, ptr, types.voidptr)
    specs = ((_LOGP_SRC, "logp_numba", logp_sig), (_EXPAND_SRC, "expand_numba", expand_sig))
    out = []
    for (src, name, sig), extract in zip(specs, extracts):
        func = _source_function(src, name, layout, key, entry, extract)
        out.append(numba.cfunc(sig, cache=cache, **cfunc_options)(func))
    return out


def _dynamic_globals(*cfuncs) -> bool | None:
    """Whether numba refused to save any of the callbacks (numba's ``check_cachable``); None
    when this numba does not say."""
    try:
        return any(cfunc._library.has_dynamic_globals for cfunc in cfuncs)
    except AttributeError:
        return None


def _load_callbacks(layout: Layout, key: str, entry: Path, cfunc_options):
    logp, expand = _callbacks(layout, key, entry, cfunc_options)
    if not (logp.cache_hits and expand.cache_hits):  # cannot happen without extract; be sure
        raise RuntimeError("not loaded from the cache")
    return logp, expand


def _source_function(src: str, name: str, layout: Layout, key: str, entry: Path, extract):
    """The callback's Python function, registered with our cache locator."""
    import numba

    # ``__name__`` names an importable module: numba rebuilds a cached function's environment
    # by importing it (numba/core/environment.py, ``_rebuild_env``)
    env: dict[str, Any] = {"__name__": __name__, "numba": numba, "np": np}
    if extract is not None:
        env["extract"] = extract
    sizes = {"n_dim": layout.n_dim, "n_expanded": layout.n_expanded}
    exec(compile(src.format(**sizes), f"<bayes_steplaw_{name}>", "exec"), env)
    func = env[name]
    _REGISTERED[func] = (key, str(entry))
    return func


def _install_locator() -> None:
    """Register our cache locator with numba (first in line, once per process)."""
    global _LOCATOR_INSTALLED
    with _LOCATOR_LOCK:
        if not _LOCATOR_INSTALLED:
            from numba.core.caching import CacheImpl

            CacheImpl._locator_classes.insert(0, _make_locator_class())
            _LOCATOR_INSTALLED = True


def _make_locator_class():
    from numba.core.caching import _CacheLocator

    class BayesSteplawLocator(_CacheLocator):
        """Puts the callbacks of :mod:`_nutpie_numba` in their entry directory.

        numba asks each locator in turn; this one answers only for the functions registered
        in ``_REGISTERED`` (ours), as PyTensor's ``NumbaPyTensorCacheLocator`` does for its
        own. The source stamp is the model key: the functions are compiled from generated
        source, with no file whose time stamp could tell a stale entry.
        """

        def __init__(self, py_func, py_file, key, path):
            self._py_func = py_func
            self._py_file = py_file
            self._key = key
            self._path = path

        def ensure_cache_path(self):
            Path(self._path).mkdir(parents=True, exist_ok=True, mode=0o700)
            tempfile.TemporaryFile(dir=self._path).close()

        def get_cache_path(self):
            return str(self._path)

        def get_source_stamp(self):
            return self._key

        def get_disambiguator(self):
            return self._key[:16]  # the directory is already the full key

        @classmethod
        def from_function(cls, py_func, py_file):
            entry = _REGISTERED.get(py_func)
            return None if entry is None else cls(py_func, py_file, *entry)

    return BayesSteplawLocator
