"""Markdown for REPORT.md: tables and the words of a sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd


def join_words(words: list[str]) -> str:
    """The words joined as in a sentence: "a, b and c"."""
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def table(frame: pd.DataFrame) -> str:
    """A GitHub table; floats to 4 significant digits, NaN and NA as empty cells."""

    def cell(value) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return ""
        if isinstance(value, float | np.floating):
            return f"{value:.4g}"
        return str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
