"""Defaults and resource limits of the log tool, in one place."""

from __future__ import annotations

DEFAULT_MAX_CNT = 32768
"""Loss lines read from the end of each log."""

DEFAULT_WINDOW = 100.0
"""Smoothing window in iterations."""

DEFAULT_LOG_PATTERN = r"train_log_(\d+)\.(?:txt|log|csv|jsonl)"
"""File names (full match) that are logs; the first all-digit group orders them."""

HPARAM_FILES = ("hparams.json", "hparams.yaml", "hparams.yml")
"""Hyperparameter files looked for in a run folder, first found wins."""

BLOCK_SIZE = 1 << 20
"""Bytes read per step (backwards for text logs, forwards for exports)."""

MAX_LINE_BYTES = 1 << 20
"""Longest line read (1 MiB). A longer one (say, the gap of NUL bytes a crash leaves) is
skipped and counted, so a reader holds at most about a line and a block in memory."""

MAX_HPARAMS_BYTES = 1 << 20
"""Largest hyperparameter file read (1 MiB); such files hold a few dozen values."""

MAX_EXPORT_KEYS = 10_000
"""Most distinct keys in a JSON Lines export (a loss curve has a handful)."""

PREVIEW_CHARS = 60
"""Longest quoted value in a message; longer ones are cut to a preview."""
