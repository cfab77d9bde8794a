"""Vocabulary and n-gram frequencies of report text: the tool used to curate the glossaries."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_WORD = re.compile(r"[^\s]+")


def tokens(text: str) -> list[str]:
    """Whitespace tokens of one report, lower-cased, outer punctuation (``,.;:!``) removed."""
    out = (t.strip(",.;:!").lower() for t in _WORD.findall(text))
    return [t for t in out if t]


def ngram_counts(texts: Iterable[str], n: int = 1) -> Counter[str]:
    """Count the word n-grams (joined by one space) over many reports."""
    if n < 1:
        raise ValueError("n must be >= 1")
    counts: Counter[str] = Counter()
    for text in texts:
        words = tokens(text)
        counts.update(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    return counts


def format_counts(counts: Counter[str], top: int = 50) -> str:
    """The ``top`` most frequent entries as ``count<TAB>ngram`` lines."""
    return "\n".join(f"{c}\t{g}" for g, c in counts.most_common(top))
