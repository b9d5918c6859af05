"""Hyperparameters of a run: their names, the experiment-name grammar and hparams files.

Keys are canonical names (``d_model``, ``lr``, ``seq_len``...), the released data's short names
(``h``, ``ffnh``, ``bs``, ``ti``...) or Megatron argument names (``hidden_size``,
``global_batch_size``, ``train_iters``...). Hyperparameter files are read as data only: JSON,
or YAML through PyYAML's safe loader with aliases refused (a few hundred bytes of nested
aliases expand to gigabytes), at most ``MAX_HPARAMS_BYTES``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..datasets.sweeps import ARCH_COLUMNS
from ._defaults import MAX_HPARAMS_BYTES, PREVIEW_CHARS
from ._guards import compile_pattern, cut, display_name, open_regular, preview

_KEY_ALIASES = {
    "h": "d_model",
    "hidden_size": "d_model",
    "ffnh": "d_ff",
    "ffn_hidden_size": "d_ff",
    "numh": "n_heads",
    "num_attention_heads": "n_heads",
    "numl": "n_layers",
    "num_layers": "n_layers",
    "bs": "batch_sequences",
    "global_batch_size": "batch_sequences",
    "ti": "iterations",
    "train_iters": "iterations",
    "seq_length": "seq_len",
    "topk": "top_k",
    "moe_router_topk": "top_k",
    "nume": "n_experts",
    "num_experts": "n_experts",
    "moeh": "d_expert",
    "sed": "d_shared_expert",
    "numld": "n_dense_layers",
    "Na": "N_active",
    "mlr": "min_lr",
}
INT_KEYS = (*ARCH_COLUMNS, "iterations")
_FLOAT_KEYS = ("N", "N_active", "D", "lr", "min_lr", "batch_sequences", "batch_tokens", "seq_len")
_STR_KEYS = ("family", "variant", "recipe")
HPARAM_KEYS = (*_FLOAT_KEYS, *INT_KEYS, *_STR_KEYS)

_NUM = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_NAME_TOKENS = [
    (re.compile(r"h(\d+)"), ("d_model",)),
    (re.compile(r"ffnh(\d+)"), ("d_ff",)),
    (re.compile(r"numh(\d+)"), ("n_heads",)),
    (re.compile(r"numl(\d+)"), ("n_layers",)),
    (re.compile(r"lr" + _NUM), ("lr",)),
    (re.compile(r"mlr" + _NUM), ("min_lr",)),
    (re.compile(r"bs(\d+)"), ("batch_sequences",)),
    (re.compile(r"ti(\d+)"), ("iterations",)),
    (re.compile(r"moeh(\d+)"), ("d_expert",)),
    (re.compile(r"sed(\d+)"), ("d_shared_expert",)),
    (re.compile(r"(\d+)in(\d+)"), ("top_k", "n_experts")),
]


def canonical_key(key: str) -> str:
    """Canonical hyperparameter name of ``key`` (released short names and Megatron names)."""
    return _KEY_ALIASES.get(key, key)


def _convert(key: str, value: Any, source: str) -> Any:
    if key in _STR_KEYS:
        if isinstance(value, (dict, list, tuple, set)):
            raise ValueError(f"{source}: {key} must be a name; got {preview(value)}")
        return str(value)
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{source}: {key} must be a number; got {preview(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{source}: {key} must be a number; got {preview(value)}") from None
    if key in INT_KEYS:
        if not number.is_integer():
            raise ValueError(f"{source}: {key} must be a whole number; got {preview(value)}")
        return int(number)
    return number


def normalize_hparams(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Map keys to canonical names and convert values; unknown keys are dropped.

    Raises
    ------
    ValueError
        A known key holds a value of the wrong kind; the message names ``source`` and the key.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        canon = canonical_key(str(key))
        if canon in HPARAM_KEYS:
            out[canon] = _convert(canon, value, source)
    return out


def parse_run_name(name: str, regex: str | re.Pattern[str] | None = None) -> dict[str, Any]:
    """Hyperparameters encoded in an experiment name.

    Parameters
    ----------
    name : str
        Experiment name. Without ``regex`` the released data's naming is read: ``_``-separated
        tokens ``h<d_model>``, ``ffnh<d_ff>``, ``numh<n_heads>``, ``numl<n_layers>``,
        ``lr<lr>``, ``bs<batch_sequences>``, ``ti<iterations>``, ``mlr<min_lr>`` and for MoE
        ``<top_k>in<n_experts>`` (also the ``variant``), ``moeh<d_expert>``,
        ``sed<d_shared_expert>``; other tokens are ignored. E.g.
        ``step2v2_0618_h1280_ffnh9472_numh10_numl10_lr2.762e-03_bs736_ti33171_mlr1.00e-05``.
    regex : str or re.Pattern, optional
        A regular expression searched in the name whose named groups are hyperparameters
        (canonical or short names, e.g. ``(?P<lr>[\\d.e-]+)``). It replaces the built-in
        naming. A name it does not match gives ``{}``.

    Returns
    -------
    dict
        Canonical hyperparameter names to values (``family="moe"`` when experts are named).
    """
    if regex is not None:
        rx = compile_pattern(regex, "name_regex")
        match = rx.search(name)
        if match is None:
            return {}
        found = {k: v for k, v in match.groupdict().items() if v is not None}
        return normalize_hparams(found, f"experiment name {preview(name, 255)}")
    out: dict[str, Any] = {}
    for token in name.split("_"):
        for rx, keys in _NAME_TOKENS:
            m = rx.fullmatch(token)
            if m:
                out.update(zip(keys, m.groups(), strict=True))
                if keys == ("top_k", "n_experts"):
                    out["variant"] = token
                break
    out = normalize_hparams(out, f"experiment name {preview(name, 255)}")
    if "n_experts" in out:
        out.setdefault("family", "moe")
    return out


def check_name_regex(regex: str | re.Pattern[str]) -> re.Pattern[str]:
    """Compile a name regex and check that its named groups are known hyperparameters."""
    rx = compile_pattern(regex, "name_regex")
    groups = list(rx.groupindex)
    if not groups:
        raise ValueError(
            f"name_regex {preview(rx.pattern)} has no named groups; expected groups such as "
            f"(?P<lr>[0-9.e+-]+) and (?P<bs>[0-9]+)"
        )
    unknown = [g for g in groups if canonical_key(g) not in HPARAM_KEYS]
    if unknown:
        raise ValueError(
            f"name_regex group(s) {unknown} are not hyperparameters; expected names among "
            f"{sorted(HPARAM_KEYS)} or the short names {sorted(_KEY_ALIASES)}"
        )
    return rx


class _AliasError(Exception):
    """A YAML alias met while composing (raised inside PyYAML, turned into a ValueError)."""

    def __init__(self, anchor: str, line: int):
        super().__init__(anchor, line)
        self.anchor, self.line = anchor, line


def _yaml_loader():
    """PyYAML and its safe loader, refusing aliases (``*name``, ``<<: *name``)."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _AliasError(str(event.anchor)[:PREVIEW_CHARS], event.start_mark.line + 1)
            return super().compose_node(parent, index)

    return yaml, NoAliasLoader


def _read_limited(path: Path, follow_symlinks: bool) -> str:
    name = display_name(path.name)
    with open_regular(path, follow_symlinks=follow_symlinks) as f:
        data = f.read(MAX_HPARAMS_BYTES + 1)
    if len(data) > MAX_HPARAMS_BYTES:
        raise ValueError(
            f"{name} is larger than {MAX_HPARAMS_BYTES // 1024} KiB; a hyperparameter file "
            f"holds a few dozen values"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not UTF-8 text") from None


def _parse(text: str, path: Path, name: str) -> Any:
    if path.suffix.lower() not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name} is not valid JSON ({cut(str(exc), 300)})") from None
    try:
        yaml, loader = _yaml_loader()
    except ImportError:
        raise ValueError(
            f"{name}: reading YAML needs PyYAML, which is not installed; "
            f"install it or write the file as hparams.json"
        ) from None
    try:
        return yaml.load(text, Loader=loader)
    except _AliasError as exc:
        raise ValueError(
            f"{name} uses a YAML alias (*{exc.anchor}, line {exc.line}); aliases are not "
            f"accepted in hyperparameter files (they can expand without bound): write the "
            f"values out"
        ) from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{name} is not valid YAML ({cut(str(exc), 300)})") from None


def read_hparams_file(path: str | os.PathLike, *, follow_symlinks: bool = True) -> dict[str, Any]:
    """Read a run's hyperparameter file (JSON, or YAML when PyYAML is installed).

    The file is one mapping; keys are canonical names (``d_model``, ``lr``, ``seq_len``...),
    the released data's short names (``h``, ``ffnh``, ``bs``, ``ti``...) or Megatron argument
    names (``hidden_size``, ``global_batch_size``, ``train_iters``...). Other keys are ignored.
    Only a regular file of at most 1 MiB is read; YAML is read with the safe loader and may
    not use aliases.

    Raises
    ------
    ValueError
        The file cannot be parsed, is not a mapping, is too large or too deeply nested,
        uses YAML aliases, or a value has the wrong kind.
    OSError
        The file cannot be read or is not a regular file (a FIFO, a device...).
    """
    path = Path(path)
    name = display_name(path.name)
    text = _read_limited(path, follow_symlinks)
    try:
        data = _parse(text, path, name)
    except RecursionError:
        raise ValueError(f"{name} is nested too deeply to be a hyperparameter file") from None
    if not isinstance(data, dict):
        raise ValueError(f"{name} must hold a mapping of names to values")
    return normalize_hparams(data, name)
