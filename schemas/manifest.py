"""The corpus manifest (``manifest.json``): what was built, from what, and how many of each.

Invariant checked by :meth:`Manifest.check_counts`: for every source, records seen = kept + rejected.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FileEntry(BaseModel):
    """One data file of the corpus, relative to the corpus root."""

    model_config = ConfigDict(extra="forbid")

    path: str
    rows: int
    sha256: str
    source: str | None = None
    split: str | None = None


class SourceCounts(BaseModel):
    """Record counts of one source."""

    model_config = ConfigDict(extra="forbid")

    seen: int = 0
    kept: dict[str, int] = Field(default_factory=dict)
    rejected: dict[str, int] = Field(default_factory=dict)
    synthetic: bool = False

    @property
    def kept_total(self) -> int:
        return sum(self.kept.values())

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class SplitAudit(BaseModel):
    """Patients per split of one source; ``leaking_patients`` (in more than one split) must be 0."""

    model_config = ConfigDict(extra="forbid")

    patients: dict[str, int]
    leaking_patients: int


class Manifest(BaseModel):
    """Everything needed to check and reproduce a corpus, written as ``manifest.json``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str
    config: dict
    config_hash: str
    lead_order: list[str]
    fs: int
    n_samples: int
    files: list[FileEntry]
    rejections: FileEntry
    counts: dict[str, SourceCounts]
    splits: dict[str, SplitAudit] = Field(default_factory=dict)
    templates: dict[str, int] = Field(default_factory=dict)

    def check_counts(self) -> list[str]:
        """Problems with the counts (empty when seen = kept + rejected everywhere and rows agree)."""
        problems = []
        for name, c in self.counts.items():
            if c.seen != c.kept_total + c.rejected_total:
                problems.append(
                    f"{name}: seen {c.seen} != kept {c.kept_total} + rejected {c.rejected_total}"
                )
            for split, n in c.kept.items():
                rows = sum(f.rows for f in self.files if f.source == name and f.split == split)
                if rows != n:
                    problems.append(f"{name}/{split}: files hold {rows} rows, counts say {n}")
        rejected = sum(c.rejected_total for c in self.counts.values())
        if rejected != self.rejections.rows:
            problems.append(f"rejection ledger has {self.rejections.rows} rows, counts say {rejected}")
        return problems
