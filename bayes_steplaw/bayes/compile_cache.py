"""A persistent, per-user cache of nutpie's numba-compiled PyMC models.

``nutpie.compile_pymc_model(model, backend="numba")`` spends most of a fit compiling, and it
redoes all of it in every new process. :func:`compile_nutpie` keys a model by a structural
hash of the graph nutpie compiles (:mod:`._compile_key`: the graph's Ops, wiring and
constants, the parameter layout, the compile options and every library version involved).
The first process with a key compiles as nutpie does, through C callbacks that numba can
cache (:mod:`._nutpie_numba`), into an entry directory named by the key; a later process
with the same key loads the object code and runs neither PyTensor's rewrites nor numba's
compiler (2-3 s instead of 15-90 s for the optimum model on the released data, the longer
when PyTensor's own per-Op cache is cold). The result is nutpie's own ``CompiledPyMCModel``
and samples the same draws for the same seed.

A miss is slow, never wrong: a model the key cannot describe, code numba will not save (the
landscape and loss models: Ops that PyTensor links by address), an entry that does not load
(truncated, deleted, written by a killed process) and anything unexpected while loading all
fall back to compiling. A model whose code numba does not save is remembered per key for a
day, then tried again: until then the cache adds only the hashing (about a second) to
nutpie's own compilation. A miss that is saved may cost a little more than nutpie's own
compilation: numba also writes the object code, and it is loaded back once to check it.

The cache lives in ``$BAYES_STEPLAW_CACHE/nutpie-numba`` (default
``~/.cache/bayes-steplaw/nutpie-numba``), one directory per key, at most
:data:`MAX_ENTRIES` of them (the least recently used go first);
``BAYES_STEPLAW_COMPILE_CACHE=0`` turns it off. Like numba's and PyTensor's own caches it
holds pickles written by numba, so it must be private to the user: a directory that others
can write to (or own) disables the cache, with a warning.

Entries hold the data: arrays given to PyMC as numpy arrays are compiled in, so a new data
set (another sweep table, another plateau threshold) is a new entry; ``pm.Data`` values are
passed at run time and share one.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import _compile_key, _nutpie_numba
from ._compile_key import CACHE_FORMAT, Layout, Uncacheable, model_key

__all__ = ["clear_compile_cache", "compile_cache_dir", "compile_nutpie", "last_compile_info"]

#: Entries kept; the least recently used are removed when a new one is written.
MAX_ENTRIES = 32
#: Seconds after which a directory without a manifest (abandoned by a killed process, or the
#: marker of a model numba could not save) is removed, and such a model tried again.
STALE_SECONDS = 86400
ENV_SWITCH = "BAYES_STEPLAW_COMPILE_CACHE"
SUBDIR = "nutpie-numba"
_MANIFEST = "manifest.json"  # written last: an entry is complete once it exists
_UNCACHEABLE = "uncacheable.json"  # numba does not save this model's code: do not try again
# the sources that shape an entry: an edit to any of them must not load old entries
_CODE = (Path(_compile_key.__file__), Path(_nutpie_numba.__file__), Path(__file__))

_LAST: dict[str, Any] = {}


# --------------------------------------------------------------------------- public API


def compile_cache_dir() -> Path:
    """The directory of the compiled-model cache.

    Returns
    -------
    pathlib.Path
        ``nutpie-numba`` in the user cache directory of bayes-steplaw
        (``$BAYES_STEPLAW_CACHE``, else ``~/.cache/bayes-steplaw`` on Linux, as the data
        registry uses); it need not exist yet.
    """
    from ..datasets.registry import cache_dir

    return cache_dir() / SUBDIR


def clear_compile_cache(cache_dir: str | os.PathLike | None = None) -> int:
    """Remove every cached compiled model.

    Safe while other processes fit: one whose entry disappears compiles again.

    Parameters
    ----------
    cache_dir : path, optional
        The cache directory; default :func:`compile_cache_dir`.

    Returns
    -------
    int
        The number of entries removed.
    """
    root = Path(cache_dir) if cache_dir is not None else compile_cache_dir()
    removed = 0
    if root.is_dir():
        for entry in root.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
    return removed


def last_compile_info() -> dict[str, Any]:
    """What the last :func:`compile_nutpie` of this process did.

    Returns
    -------
    dict
        ``cache`` (``"hit"``, ``"miss"``, ``"off"`` or ``"uncacheable"``), ``seconds`` and
        ``cpu_seconds`` (of the whole call), ``key_seconds`` (hashing the model, when it was
        hashed), ``key`` (or None), ``reason`` (why the cache was not used or an entry not
        loaded, or ``""``) and ``saved`` (whether a miss was written to the cache). Empty
        before the first call.
    """
    return dict(_LAST)


def compile_nutpie(
    model,
    *,
    var_names: Iterable[str] | None = None,
    cache: bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs,
):
    """``nutpie.compile_pymc_model(model, backend="numba", ...)``, cached across processes.

    Parameters
    ----------
    model : pymc.Model
        The model to compile.
    var_names : iterable of str, optional
        Variables to store in the trace (nutpie's ``var_names``); default all.
    cache : bool, optional
        Use the cache; default on unless ``$BAYES_STEPLAW_COMPILE_CACHE`` is ``0``, ``false``,
        ``off`` or ``no``.
    cache_dir : path, optional
        Cache directory; default :func:`compile_cache_dir`.
    **kwargs
        Passed on as in ``nutpie.compile_pymc_model``: ``backend``, ``gradient_backend``,
        ``initial_points``, ``jitter_rvs``, ``default_initialization_strategy``,
        ``freeze_model`` and numba options of the C callbacks. A backend other than numba is
        compiled by nutpie, uncached.

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        What ``nutpie.sample`` accepts; ``with_data`` replaces ``pm.Data`` values.

    Warns
    -----
    RuntimeWarning
        When the cache directory cannot be used safely (others can write to it, it belongs
        to another user, it cannot be created); the model is then compiled uncached.

    Notes
    -----
    Concurrent processes are safe: numba writes every file atomically, an entry is used only
    once its manifest (written last, atomically) exists, and anything unexpected while
    loading falls back to compiling. :func:`last_compile_info` says what happened.
    """
    start, cpu = time.perf_counter(), time.process_time()
    info: dict[str, Any] = {"cache": "off", "key": None, "reason": "", "saved": False}
    try:
        return _compile(model, var_names, cache, cache_dir, kwargs, info)
    finally:
        info["seconds"] = time.perf_counter() - start
        info["cpu_seconds"] = time.process_time() - cpu
        _LAST.clear()
        _LAST.update(info)


# --------------------------------------------------------------------------- driver


def _compile(model, var_names, cache, cache_dir, kwargs, info):
    from nutpie import compile_pymc as ncp

    cfunc_options = dict(kwargs)
    backend = str(cfunc_options.pop("backend", None) or "numba").lower()
    gradient_backend = str(cfunc_options.pop("gradient_backend", None) or "pytensor").lower()
    prep = {
        "initial_points": cfunc_options.pop("initial_points", None),
        "jitter_rvs": cfunc_options.pop("jitter_rvs", None),
        "strategy": cfunc_options.pop("default_initialization_strategy", "support_point"),
        "freeze_model": cfunc_options.pop("freeze_model", None),
    }
    cfunc_options.pop("cache", None)  # numba's own flag: the cache is ours to manage
    var_names = None if var_names is None else list(var_names)

    def nutpie_compile():
        return ncp.compile_pymc_model(
            model,
            backend=backend,
            gradient_backend=gradient_backend,
            initial_points=prep["initial_points"],
            jitter_rvs=prep["jitter_rvs"],
            default_initialization_strategy=prep["strategy"],
            var_names=var_names,
            freeze_model=prep["freeze_model"],
            **cfunc_options,
        )

    reason = _why_off(backend, gradient_backend, cache)
    root = Path(cache_dir) if cache_dir is not None else compile_cache_dir()
    if not reason:
        reason = _unsafe_dir(root)
        if reason:
            warnings.warn(f"compiled-model cache off: {reason}", RuntimeWarning, stacklevel=3)
    if reason:
        info["reason"] = reason
        return nutpie_compile()
    try:
        return _compile_cached(model, var_names, cfunc_options, prep, root, info)
    except Exception as err:
        # the cache uses internals of nutpie, PyTensor and numba: one this module does not know
        # (another version) must not stop a fit. A model's own error is raised again below.
        info.update(cache="off", key=None, saved=False, reason=f"{type(err).__name__}: {err}")
        warnings.warn(
            f"compiled-model cache failed ({info['reason']}); compiling without it",
            RuntimeWarning,
            stacklevel=3,
        )
        return nutpie_compile()


def _compile_cached(model, var_names, cfunc_options, prep, root: Path, info):
    model, point_fn = _nutpie_numba.prepare(model, **prep)
    t_key = time.perf_counter()
    try:
        key, layout, shared = model_key(model, var_names, cfunc_options, _CODE)
    except Uncacheable as err:
        info.update(cache="uncacheable", reason=str(err))
        return _nutpie_numba.compile_uncached(model, point_fn, var_names, cfunc_options)
    info["key"], info["key_seconds"] = key, time.perf_counter() - t_key
    entry = root / key
    known = _read_json(entry / _UNCACHEABLE)
    if known is not None and known.get("key") == key:
        info.update(cache="uncacheable", reason=str(known.get("reason", "")))
        return _nutpie_numba.compile_uncached(model, point_fn, var_names, cfunc_options)

    shared_names = _read_manifest(entry, key, layout, shared)
    if shared_names is not None:
        try:
            compiled = _nutpie_numba.load(
                model, entry, key, layout, shared_names, shared, point_fn, cfunc_options
            )
        except Exception as err:
            info["reason"] = f"entry unusable ({type(err).__name__}); recompiled"
        else:
            info["cache"] = "hit"
            _touch(entry / _MANIFEST)  # the LRU order
            return compiled

    info["cache"] = "miss"
    built = _nutpie_numba.build(model, entry, key, layout, point_fn, var_names, cfunc_options)
    if built.shared_names is not None:
        _write_json(entry / _MANIFEST, _manifest(key, layout, built.shared_names))
        info["saved"] = True
        _prune(root, keep=entry)
    else:
        info["reason"] = info["reason"] or built.why
    if built.uncacheable:
        # drop what numba did save (e.g. the expand callback alone) and remember why; the
        # marker is pruned like an abandoned entry, and the model then tried again
        shutil.rmtree(entry, ignore_errors=True)
        marker = {"format": CACHE_FORMAT, "key": key, "reason": built.why}
        _write_json(entry / _UNCACHEABLE, marker)
    return built.compiled


def _why_off(backend: str, gradient_backend: str, cache: bool | None) -> str:
    """Why the cache cannot or must not be used ('' when it can)."""
    if backend != "numba" or gradient_backend != "pytensor":
        return "not the numba backend"
    if cache is None:
        value = os.environ.get(ENV_SWITCH, "1").strip().lower()
        cache = value not in {"0", "false", "off", "no"}
    if not cache:
        return "disabled"
    import numba

    # our cache locator is then not asked (numba.core.caching.CacheImpl)
    if numba.config.CACHE_LOCATOR_CLASSES or numba.config.DISABLE_JIT:
        return "numba caching overridden (NUMBA_CACHE_LOCATOR_CLASSES or NUMBA_DISABLE_JIT)"
    return ""


# --------------------------------------------------------------------------- files


def _unsafe_dir(root: Path) -> str:
    """Why ``root`` must not hold code that numba will unpickle ('' when it may).

    It must be ours and writable by us alone; its parent must not let others replace it
    (writable by others without the sticky bit).
    """
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        st, parent = root.stat(), root.parent.stat()
    except OSError as err:
        return f"cannot create {root}: {err}"
    if os.name == "posix":
        if st.st_uid != os.getuid():
            return f"{root} belongs to another user"
        if st.st_mode & 0o022:
            return f"{root} is writable by other users (chmod go-w {root})"
        if parent.st_mode & 0o002 and not parent.st_mode & stat.S_ISVTX:
            return f"{root.parent} is writable by everyone without the sticky bit"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable"
    return ""


def _manifest(key: str, layout: Layout, shared_names: list[str]) -> dict:
    return {
        "format": CACHE_FORMAT,
        "key": key,
        "n_dim": layout.n_dim,
        "n_expanded": layout.n_expanded,
        "names": layout.names,
        "shared": shared_names,
    }


def _read_manifest(entry: Path, key: str, layout: Layout, shared) -> list[str] | None:
    """The shared variables' names (in the order the code reads them) when the entry's
    manifest describes this model exactly, else None."""
    manifest = _read_json(entry / _MANIFEST)
    if manifest is None:
        return None
    names = manifest.get("shared")
    expected = _manifest(key, layout, names)
    ok = isinstance(names, list) and all(isinstance(n, str) and n in shared for n in names)
    return names if ok and manifest == expected else None


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict) -> None:
    # atomic: a reader sees the whole file or none
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:  # removed meanwhile by another process: it was loaded all the same
        pass


def _prune(root: Path, keep: Path) -> None:
    """Keep the MAX_ENTRIES most recently used entries (a removed one is compiled again),
    and remove directories without a manifest once they are STALE_SECONDS old."""
    now = time.time()
    used, stale = [], []
    try:
        entries = [e for e in root.iterdir() if e != keep and e.is_dir()]
    except OSError:
        return
    for entry in entries:
        try:
            used.append(((entry / _MANIFEST).stat().st_mtime, entry))
        except OSError:
            try:
                if now - entry.stat().st_mtime > STALE_SECONDS:
                    stale.append(entry)
            except OSError:  # removed meanwhile
                pass
    used.sort()
    for entry in stale + [e for _, e in used[: max(0, len(used) + 1 - MAX_ENTRIES)]]:
        shutil.rmtree(entry, ignore_errors=True)
