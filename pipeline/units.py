"""The build's records: what discovery found, a unit of work (one shard), and what a unit produced.

Dataclasses only. A :class:`WorkUnit` is a small reference (source, split, shard, key and the path of
its rows file, which the plan writes), never metadata rows or arrays, so it travels cheaply to any
worker process or as a Prefect parameter; a :class:`UnitResult` is also the unit's completion
record on disk.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import polars as pl

from pipeline.sources import Source
from schemas import Rejection, SplitAudit, shard_path


@dataclass(frozen=True)
class SourceInput:
    """One source's records after discovery: kept for processing, and rejected on metadata."""

    source: Source
    root: str
    records: pl.DataFrame
    rejections: tuple[Rejection, ...]
    audit: SplitAudit
    seen: int

    @property
    def name(self) -> str:
        return self.source.name


@dataclass(frozen=True)
class WorkUnit:
    """Everything a worker needs to write one shard: a few names and paths, never rows or arrays.

    Its metadata rows are in ``rows_file`` (Arrow IPC, written by the plan); the worker reads them.
    """

    source: Source
    root: str
    split: str
    index: int
    count: int
    key: str
    n_records: int
    rows_file: str = field(compare=False)  # where a plan put them; the key names the rows

    @property
    def records(self) -> tuple[dict, ...]:
        """The unit's metadata rows, read from its rows file (one read per call)."""
        return tuple(pl.read_ipc(self.rows_file).to_dicts())

    @property
    def name(self) -> str:
        """The source's name."""
        return self.source.name

    @property
    def relpath(self) -> str:
        """The shard's path relative to the corpus root."""
        return shard_path(self.source.name, self.split, self.index, self.count)


@dataclass
class TextStats:
    """Report languages and translation coverage of a set of records (summed over units)."""

    languages: dict[str, int] = field(default_factory=dict)
    foreign_tokens: int = 0
    translated_tokens: int = 0
    incomplete_reports: int = 0
    untranslated: dict[str, int] = field(default_factory=dict)
    dropped_statements: int = 0

    @classmethod
    def total(cls, parts: Iterable["TextStats"]) -> "TextStats":
        """The sum of ``parts``."""
        languages: Counter = Counter()
        untranslated: Counter = Counter()
        out = cls()
        for p in parts:
            languages.update(p.languages)
            untranslated.update(p.untranslated)
            out.foreign_tokens += p.foreign_tokens
            out.translated_tokens += p.translated_tokens
            out.incomplete_reports += p.incomplete_reports
            out.dropped_statements += p.dropped_statements
        out.languages = dict(sorted(languages.items()))
        out.untranslated = dict(sorted(untranslated.items()))
        return out

    def summary(self, top: int = 20) -> dict:
        """The manifest's ``text`` entry of one source."""
        foreign = self.foreign_tokens
        ranked = sorted(self.untranslated.items(), key=lambda kv: (-kv[1], kv[0]))
        return {
            "languages": dict(sorted(self.languages.items())),
            "translation_coverage": round(self.translated_tokens / foreign, 6) if foreign else None,
            "foreign_tokens": foreign,
            "translated_tokens": self.translated_tokens,
            "incompletely_translated_reports": self.incomplete_reports,
            "top_untranslated": [[tok, n] for tok, n in ranked[:top]],
            "dropped_statements": self.dropped_statements,
        }


@dataclass
class UnitResult:
    """What a unit produced; also its completion record on disk."""

    key: str
    source: str
    split: str
    path: str
    rows: int
    sha256: str
    inputs: int
    size: int = 0  # the shard's bytes; with sha256, what a rerun checks before trusting it
    kept: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    templates: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    text: TextStats = field(default_factory=TextStats)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "UnitResult":
        data = json.loads(text)
        data["rejections"] = [Rejection(**r) for r in data["rejections"]]
        data["text"] = TextStats(**data["text"]) if data.get("text") else TextStats()
        return cls(**data)
