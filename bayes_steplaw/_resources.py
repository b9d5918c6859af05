"""Locate files that ship with the package (registry, fitted models).

In a wheel they live in ``bayes_steplaw/_resources/``; in a source checkout or an
editable install they live at the repository top level (``data/``, ``models/``).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_ROOT = _PACKAGE_DIR.parent


def source_checkout() -> Path | None:
    """Return the repository root when running from a source checkout, else None."""
    if (_SOURCE_ROOT / "pyproject.toml").is_file() and (_SOURCE_ROOT / "data").is_dir():
        return _SOURCE_ROOT
    return None


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource_path("models", "optimum.nc")``.

    ``data/registry.json`` is shipped as ``registry.json``.
    """
    installed = _PACKAGE_DIR / "_resources" / Path(*parts)
    if installed.exists():
        return installed
    root = source_checkout()
    if root is not None:
        rel = Path("data", *parts) if parts == ("registry.json",) else Path(*parts)
        return root / rel
    return installed
