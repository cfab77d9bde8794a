"""Completion records: a unit that finished writes ``_build/<shard path>.json`` after its shard.

A rerun (or a refresh) keeps a unit whose completion record has the same key as the plan's unit
and whose shard is still there, so a killed build resumes where it stopped. Nothing here trusts
the disk beyond that: a record that does not parse, or belongs to another plan, is ignored.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.shards import write_text_atomic
from pipeline.units import UnitResult, WorkUnit
from schemas import PROGRESS_DIR


def completion_path(out: Path, unit: WorkUnit) -> Path:
    """Where a unit's completion record lives."""
    return Path(out) / PROGRESS_DIR / f"{unit.relpath}.json"


def finished_result(out: Path, unit: WorkUnit) -> UnitResult | None:
    """The stored result of a unit already done under the same plan, if its shard is intact."""
    done = completion_path(out, unit)
    if not done.is_file():
        return None
    try:
        result = UnitResult.from_json(done.read_text())
    except (ValueError, TypeError, KeyError):
        return None
    if result.key != unit.key:
        return None
    if result.rows and not (Path(out) / result.path).is_file():
        return None
    return result


def record_completion(out: Path, unit: WorkUnit, result: UnitResult) -> None:
    """Write a unit's completion record (atomically, after its shard)."""
    write_text_atomic(completion_path(out, unit), result.to_json())
