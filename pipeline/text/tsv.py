"""Reader for the two-column glossary files (``phrase<TAB>replacement``)."""

from __future__ import annotations

import re
from pathlib import Path

_SPACE = re.compile(r"\s+")


def collapse(text: str) -> str:
    """Collapse every whitespace run to one space and strip the ends."""
    return _SPACE.sub(" ", text).strip()


def read_pairs(path: Path, header: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """Read ``key<TAB>value`` rows; ``#`` lines and blank lines are skipped.

    The first non-comment line must equal ``header``. Keys are whitespace-collapsed; a duplicate
    key, a missing value or a third column is an error naming the file and line.
    """
    rows: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    saw_header = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if not saw_header:
            if tuple(f.strip() for f in fields) != header:
                raise ValueError(f"{path}:{number}: expected header {'<TAB>'.join(header)!r}")
            saw_header = True
            continue
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise ValueError(f"{path}:{number}: expected two non-empty tab-separated fields")
        key, value = collapse(fields[0]), collapse(fields[1])
        if key in seen:
            raise ValueError(
                f"{path}:{number}: duplicate entry {key!r} (first at line {seen[key]})"
            )
        seen[key] = number
        rows.append((key, value))
    if not saw_header:
        raise ValueError(f"{path}: no header line")
    return tuple(rows)
