"""The dataset registry: where the released Step Law files are and how to get them.

Resolution order for a registered file:

1. an explicit ``data_dir`` argument,
2. the directory in ``$BAYES_STEPLAW_DATA``,
3. ``data/`` of a source checkout,
4. the user cache (``$BAYES_STEPLAW_CACHE`` or the platform cache directory),
5. a download from the pinned upstream address into the cache, checked against its sha256.

Files found locally are hash-checked too: a copy that differs from the registered
release is an error, never a silent substitute.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .._resources import resource_path, source_checkout

ENV_DATA = "BAYES_STEPLAW_DATA"
ENV_CACHE = "BAYES_STEPLAW_CACHE"
ENV_URL = "BAYES_STEPLAW_URL"
ENV_OFFLINE = "BAYES_STEPLAW_OFFLINE"


class DataError(RuntimeError):
    """A registered data file could not be found, read or verified."""


@dataclass(frozen=True)
class RegisteredFile:
    """One file of the registry."""

    name: str
    sha256: str
    url: str
    rows: int
    description: str


@cache
def _registry() -> dict[str, RegisteredFile]:
    spec = json.loads(resource_path("registry.json").read_text())
    base = spec["base_url"]
    return {
        name: RegisteredFile(name, f["sha256"], base + name, f["rows"], f["description"])
        for name, f in spec["files"].items()
    }


def registered_files() -> list[RegisteredFile]:
    """List the files in the registry."""
    return list(_registry().values())


def _entry(name: str) -> RegisteredFile:
    reg = _registry()
    if name not in reg:
        raise DataError(f"{name!r} is not a registered file; known files: {', '.join(reg)}.")
    return reg[name]


def cache_dir() -> Path:
    """The user cache directory (``$BAYES_STEPLAW_CACHE`` overrides the platform default)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("bayes-steplaw"))


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _local_candidates(data_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    places: list[tuple[str, Path]] = []
    if data_dir is not None:
        places.append(("explicit data_dir", Path(data_dir).expanduser()))
    if os.environ.get(ENV_DATA):
        places.append((f"${ENV_DATA}", Path(os.environ[ENV_DATA]).expanduser()))
    root = source_checkout()
    if root is not None:
        places.append(("source checkout data/", root / "data"))
    places.append(("user cache", cache_dir()))
    return places


def _check(path: Path, entry: RegisteredFile, where: str) -> Path:
    try:
        digest = sha256(path)
    except OSError as exc:
        raise DataError(
            f"{entry.name}: found in {where} at {path} but it cannot be read ({exc}). "
            f"Fix its permissions or remove it so that it can be fetched again."
        ) from exc
    if digest != entry.sha256:
        raise DataError(
            f"{entry.name}: the copy in {where} at {path} has sha256 {digest}, "
            f"expected {entry.sha256}. It is not the registered release: replace it with "
            f"the file from {entry.url}, or remove it so that it can be fetched again."
        )
    return path


def locate(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """Return the verified local path of a registered file, or None when none is found."""
    entry = _entry(name)
    for where, folder in _local_candidates(data_dir):
        path = folder / name
        if path.exists():
            return _check(path, entry, where)
    return None


def fetch(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Return a verified local path of a registered file, downloading it if needed.

    Parameters
    ----------
    name : str
        File name as in the registry, e.g. ``"dense_lr_bs_loss.csv"``.
    data_dir : path, optional
        A directory searched before every other place.
    download : bool
        Allow the download step. Also disabled by ``BAYES_STEPLAW_OFFLINE=1``.

    Raises
    ------
    DataError
        The file is missing everywhere and cannot be downloaded, a local copy has the wrong
        hash or cannot be read, or the download does not match the registered sha256.
    """
    entry = _entry(name)
    found = locate(name, data_dir)
    if found is not None:
        return found
    searched = "; ".join(f"{w}: {p}" for w, p in _local_candidates(data_dir))
    how = (
        f"Supply it by setting {ENV_DATA} to a directory that holds {name}, by passing "
        f"data_dir=..., or by running `bayes-steplaw data fetch` while online."
    )
    offline = os.environ.get(ENV_OFFLINE, "").lower() in {"1", "true", "yes"}
    if not download or offline:
        raise DataError(
            f"{name} was not found and downloading is disabled. Searched {searched}. {how}"
        )
    url = os.environ.get(ENV_URL, "").rstrip("/")
    url = f"{url}/{name}" if url else entry.url
    import pooch

    target = cache_dir()
    try:
        path = pooch.retrieve(
            url, known_hash=f"sha256:{entry.sha256}", fname=name, path=target, progressbar=False
        )
    except ValueError as exc:
        # pooch reports a hash mismatch as a ValueError (and removes the bad download itself);
        # requests' bad-URL errors and pooch's unknown-protocol error are ValueErrors too.
        if "hash" not in str(exc).lower():
            raise DataError(
                f"{name} was not found locally and the download from {url} failed ({exc}). "
                f"Searched {searched}. {how}"
            ) from exc
        raise DataError(
            f"{name}: the download from {url} does not match the registered sha256 "
            f"{entry.sha256}; nothing was cached. {exc}"
        ) from exc
    except Exception as exc:  # network errors of every kind
        raise DataError(
            f"{name} was not found locally and the download from {url} failed ({exc}). "
            f"Searched {searched}. {how}"
        ) from exc
    return Path(path)


def status(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """One record per registered file: where it resolves locally and whether it verifies."""
    out = []
    for entry in registered_files():
        rec = {"name": entry.name, "path": None, "ok": False, "problem": None}
        try:
            path = locate(entry.name, data_dir)
        except DataError as exc:
            rec["problem"] = str(exc)
        else:
            rec["path"] = None if path is None else str(path)
            rec["ok"] = path is not None
            rec["problem"] = None if path is not None else "not found locally"
        out.append(rec)
    return out
