"""Plain-text renderings shared by model cards, reports and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a Markdown table (no optional dependency); floats to ``digits``."""
    cols = [frame.index.name or "", *frame.columns]
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        cells = [f"{v:.{digits}g}" if isinstance(v, (float, np.floating)) else str(v) for v in row]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def format_param(value) -> str:
    """A prior parameter: text as it is, numbers to 4 significant digits."""
    return value if isinstance(value, str) else f"{value:.4g}"
