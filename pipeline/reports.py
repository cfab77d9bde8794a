"""Pair a record with its report text: keep the original, produce the cleaned assistant turn.

The record frame's ``report`` column is the original text (PTB-XL's free text; MIMIC's machine
statements joined by newlines). :func:`clean_report` gives the text the model is trained to write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_SPACE = re.compile(r"\s+")


def collapse_spaces(text: str) -> str:
    """Trim and collapse runs of whitespace to one space."""
    return _SPACE.sub(" ", text).strip()


def join_statements(statements: Sequence[str]) -> str:
    """Join machine statements in order, each ending with one full stop."""
    parts = [collapse_spaces(s).rstrip(" .") for s in statements]
    return " ".join(f"{p}." for p in parts if p)


def clean_report(source: str, report: str, statements: Sequence[str] | None) -> str:
    """The cleaned report of one record (empty when the record has no report text)."""
    if source == "mimic" and statements is not None:
        return join_statements(statements)
    return collapse_spaces(report or "")


def word_count(text: str) -> int:
    """Number of words (runs of letters or digits)."""
    return len(re.findall(r"\w+", text))
