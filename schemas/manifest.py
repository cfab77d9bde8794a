"""The corpus manifest (``manifest.json``): what was built, from what, and how many of each.

Invariant checked by :meth:`Manifest.check_counts`: for every source, records seen = kept + rejected.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class FileEntry(BaseModel):
    """One data file of the corpus, relative to the corpus root."""

    model_config = ConfigDict(extra="forbid")

    path: str
    rows: int
    sha256: str
    source: str | None = None
    split: str | None = None
    records: int | None = None  # distinct input records in a shard (rows >= records)


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
    """Patients per split of one source, counted over the corpus's rows (kept records only);
    ``leaking_patients`` (in more than one split) must be 0.

    ``mode`` is ``folds`` (PTB-XL), ``patient`` (hash of the patient id) or ``meit`` (MEIT's
    record-level split, which leaks patients: ``leaks`` is then true and says so).
    """

    model_config = ConfigDict(extra="forbid")

    patients: dict[str, int]
    leaking_patients: int
    mode: str = "patient"
    leaks: bool = False


class RefreshRecord(BaseModel):
    """What one build or refresh changed, appended to :attr:`Manifest.refreshes`.

    Record ids are ``<source>/<record_id>``; the id lists keep at most ``ID_LIMIT`` entries each
    (the counts are exact). ``written`` are the shards this run wrote, ``removed`` the shards it
    deleted; every other shard kept its bytes.
    """

    model_config = ConfigDict(extra="forbid")

    ID_LIMIT: ClassVar[int] = 1000

    sequence: int  # 1 for the corpus's first build, then one more per build or refresh
    mode: str
    config_changed: bool = False
    added: int = 0
    changed: int = 0
    removed: int = 0
    added_ids: list[str] = Field(default_factory=list)
    changed_ids: list[str] = Field(default_factory=list)
    removed_ids: list[str] = Field(default_factory=list)
    written: list[str] = Field(default_factory=list)
    removed_shards: list[str] = Field(default_factory=list)


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
    tasks: dict[str, int] = Field(default_factory=dict)
    text: dict[str, dict] = Field(default_factory=dict)
    extra_files: list[FileEntry] = Field(default_factory=list)
    fingerprints: FileEntry | None = Field(
        None, description="per-record input fingerprints (header, data, metadata row)"
    )
    fingerprint_modes: dict[str, str] = Field(
        default_factory=dict,
        description="per source, how its fingerprints were made: sha256sums (the dataset's "
        "SHA256SUMS.txt), stat (size and mtime or ETag) or content (every byte)",
    )
    refreshes: list[RefreshRecord] = Field(default_factory=list)
    card: FileEntry | None = Field(None, description="the dataset card (README.md)")

    def listed(self) -> list[FileEntry]:
        """Every file the manifest lists: shards, ledger, MEIT jsonl, fingerprints, card."""
        optional = [e for e in (self.fingerprints, self.card) if e is not None]
        return [*self.files, self.rejections, *self.extra_files, *optional]

    def check_counts(self) -> list[str]:
        """Problems with the counts (empty when seen = kept + rejected everywhere and rows agree)."""
        problems = []
        for name, c in self.counts.items():
            if c.seen != c.kept_total + c.rejected_total:
                problems.append(
                    f"{name}: seen {c.seen} != kept {c.kept_total} + rejected {c.rejected_total}"
                )
            for split, n in c.kept.items():
                records = sum(
                    f.rows if f.records is None else f.records
                    for f in self.files
                    if f.source == name and f.split == split
                )
                if records != n:
                    problems.append(f"{name}/{split}: files hold {records} records, counts say {n}")
        rejected = sum(c.rejected_total for c in self.counts.values())
        if rejected != self.rejections.rows:
            problems.append(
                f"rejection ledger has {self.rejections.rows} rows, counts say {rejected}"
            )
        return problems
