"""The build: discover records, plan work units (one per shard), process units, finalise.

Every input record ends either in a shard row or in the rejection ledger with a reason. A unit
writes its shard atomically and then a completion record under ``_build/``; a rerun skips units
whose completion record matches the plan, so a killed build resumes where it stopped. The CLI and
the Prefect flow both call these functions.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from pipeline import __version__
from pipeline.conditioning import Loaded, condition, load_one
from pipeline.config import BuildConfig
from pipeline.errors import InputError, RecordRejected
from pipeline.rows import UnitTools, text_rejection, text_stats, to_table
from pipeline.shards import (
    ShardWriter,
    sha256_file,
    shard_bucket,
    shard_count,
    shard_name,
    write_text_atomic,
)
from pipeline.sources.mimic import prepare_mimic
from pipeline.sources.ptbxl import prepare_ptbxl
from pipeline.splits import SplitAudit, assign_splits, audit_splits, split_mode
from pipeline.storage import Location, as_location
from pipeline.wfdb_io import resolve_record
from schemas import SCHEMA_VERSION, SPLITS, corpus_schema

PROGRESS_DIR = "_build"


@dataclass(frozen=True)
class Rejection:
    """One rejected input record."""

    source: str
    record_id: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class SourceInput:
    """One source's records after discovery: kept for processing, and rejected on metadata."""

    name: str
    root: str
    records: pl.DataFrame
    rejections: tuple[Rejection, ...]
    audit: SplitAudit
    seen: int


@dataclass(frozen=True)
class WorkUnit:
    """Everything a worker needs to write one shard: paths and metadata rows, never arrays."""

    source: str
    root: str
    split: str
    index: int
    count: int
    records: tuple[dict, ...]
    key: str

    @property
    def relpath(self) -> str:
        """The shard's path relative to the corpus root."""
        return f"{self.source}/{shard_name(self.split, self.index, self.count)}"


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
    kept: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    templates: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    text: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "UnitResult":
        data = json.loads(text)
        data["rejections"] = [Rejection(**r) for r in data["rejections"]]
        return cls(**data)


# ---------------------------------------------------------------- discovery


def metadata_rejection(row: dict, source: str, root: Location) -> Rejection | None:
    """Reject a record on its metadata alone (no split, no record path, bad path), else None.

    Report text is checked later, in the worker that cleans it (translation runs in parallel).
    """
    rid = row["record_id"]
    if row.get("split") is None:
        return Rejection(
            source, rid, "no_split", f"no split for strat_fold={row.get('strat_fold')}"
        )
    if not row["path"]:
        return Rejection(source, rid, "missing_file", "no record path in the metadata")
    try:
        resolve_record(root, row["path"])
    except RecordRejected as exc:
        return Rejection(source, rid, exc.reason, exc.detail)
    return None


def discover_source(name: str, root: Location, cfg: BuildConfig) -> SourceInput:
    """List one source's records, assign patient-level splits, reject on metadata, audit."""
    if name == "ptbxl":
        frame = prepare_ptbxl(root, cfg.ptbxl_records, cfg.limit)
    elif name == "mimic":
        frame = prepare_mimic(root, cfg.limit)
    else:
        raise ValueError(f"unknown source {name!r}")
    frame = assign_splits(frame, name, cfg.split)
    mode = split_mode(name, cfg.split)
    rejections, keep = [], []
    for row in frame.iter_rows(named=True):
        rej = metadata_rejection(row, name, as_location(root))
        keep.append(rej is None)
        if rej is not None:
            rejections.append(rej)
    kept = frame.filter(pl.Series(keep, dtype=pl.Boolean)) if frame.height else frame
    audit = audit_splits(kept, mode)
    if audit.leaking_patients and not audit.leaks_by_design:
        raise InputError(f"{name}: {audit.leaking_patients} patients fall in more than one split")
    return SourceInput(name, str(root), kept, tuple(rejections), audit, frame.height)


def discover(cfg: BuildConfig) -> list[SourceInput]:
    """All configured sources, in a fixed order."""
    roots = {"ptbxl": cfg.ptbxl, "mimic": cfg.mimic}
    return [discover_source(n, as_location(r), cfg) for n, r in roots.items() if r is not None]


# ---------------------------------------------------------------- planning


def unit_key(
    cfg: BuildConfig,
    source: str,
    split: str,
    index: int,
    count: int,
    records: Sequence[dict],
    fingerprints: Sequence[str] = (),
) -> str:
    """Fingerprint of everything a unit's output depends on (config, code version, its records).

    ``fingerprints`` are the records' input fingerprints (header, data and metadata row, see
    :mod:`pipeline.refresh`), so a changed waveform file changes the key and the shard is redone.
    """
    payload = json.dumps(
        [
            cfg.content_hash(),
            __version__,
            SCHEMA_VERSION,
            source,
            split,
            index,
            count,
            records,
            list(fingerprints),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def plan_units(
    cfg: BuildConfig, sources: Sequence[SourceInput], fingerprints: Mapping[str, str] | None = None
) -> list[WorkUnit]:
    """One unit per (source, split, shard); a record's shard is a stable hash bucket of its id.

    With ``cfg.shards_per_split`` the bucket count is fixed, so a record's shard never depends on
    the other records (what incremental refresh needs); empty buckets get no unit. ``fingerprints``
    (row id -> input fingerprint) are computed here when not given.
    """
    from pipeline.refresh import input_fingerprints

    if fingerprints is None:
        fingerprints = input_fingerprints(sources)
    units = []
    for src in sources:
        for split in SPLITS:
            rows = src.records.filter(pl.col("split") == split).to_dicts()
            if not rows:
                continue
            count = cfg.shards_per_split or shard_count(len(rows), cfg.records_per_shard)
            buckets: dict[int, list[dict]] = {i: [] for i in range(count)}
            for row in rows:
                buckets[shard_bucket(f"{src.name}/{row['record_id']}", count)].append(row)
            for index, members in buckets.items():
                if not members:
                    continue
                prints = [fingerprints.get(f"{src.name}/{m['record_id']}", "") for m in members]
                key = unit_key(cfg, src.name, split, index, count, members, prints)
                units.append(WorkUnit(src.name, src.root, split, index, count, tuple(members), key))
    return units


# ---------------------------------------------------------------- processing


def chunks(items: Sequence[dict], size: int) -> Iterator[Sequence[dict]]:
    """Consecutive slices of at most ``size`` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def completion_path(out: Path, unit: WorkUnit) -> Path:
    """Where a unit's completion record lives."""
    return out / PROGRESS_DIR / f"{unit.relpath}.json"


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
    if result.rows and not (out / result.path).is_file():
        return None
    return result


def process_unit(unit: WorkUnit, cfg: BuildConfig, out: Path) -> UnitResult:
    """Read, check, condition, render and write one shard; resume-safe and atomic."""
    out = Path(out)
    previous = finished_result(out, unit)
    if previous is not None:
        return previous
    tools = UnitTools.load(cfg, unit)
    rejections: list[Rejection] = []

    def reject(row: dict, reason: str, detail: str) -> None:
        rejections.append(Rejection(unit.source, row["record_id"], reason, detail))

    root = as_location(unit.root)
    shard = out / unit.relpath
    kept = 0
    with ShardWriter(shard, corpus_schema(cfg.signal.n_samples)) as writer:
        for batch in chunks(unit.records, cfg.batch_size):
            groups: dict[tuple[float, int], list[Loaded]] = {}
            for row in batch:
                verdict = text_rejection(row, unit.source, tools)
                if verdict is not None:
                    reject(row, *verdict)
                    continue
                try:
                    loaded = load_one(root, row, cfg)
                except RecordRejected as exc:
                    reject(row, exc.reason, exc.detail)
                    continue
                groups.setdefault((loaded.fs, loaded.signal.shape[1]), []).append(loaded)
            for group in groups.values():
                conditioned = condition(group, cfg, reject)
                if conditioned is not None:
                    kept += len(conditioned.rows)
                    writer.write(to_table(conditioned, unit, cfg, tools))
    rows = writer.rows
    if rows == 0:
        shard.unlink(missing_ok=True)
    result = UnitResult(
        key=unit.key,
        source=unit.source,
        split=unit.split,
        path=unit.relpath,
        rows=rows,
        sha256=sha256_file(shard) if rows else "",
        inputs=len(unit.records),
        kept=kept,
        rejections=sorted(rejections, key=lambda r: r.record_id),
        templates=dict(sorted(tools.templates.items())),
        tasks=dict(sorted(tools.tasks.items())),
        text=text_stats(
            [tools.texts[r["record_id"]] for r in unit.records if r["record_id"] in tools.texts]
        ),
    )
    write_text_atomic(completion_path(out, unit), result.to_json())
    return result


def worker_count(cfg: BuildConfig) -> int:
    """Worker processes to use: the config's, or all cores."""
    return cfg.workers or os.cpu_count() or 1


@contextmanager
def local_executor(cfg: BuildConfig) -> Iterator[Executor | None]:
    """A spawn process pool of :func:`worker_count` workers, or None when one worker is asked."""
    workers = worker_count(cfg)
    if workers == 1:
        yield None
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def run_units(
    units: Sequence[WorkUnit],
    cfg: BuildConfig,
    out: Path,
    on_done: Callable[[UnitResult], None] | None = None,
    executor: Executor | None = None,
) -> list[UnitResult]:
    """Process every unit: on ``executor`` when given (any ``concurrent.futures.Executor``, e.g.
    a Dask ``Client.get_executor()``), else in a local process pool when more than one worker is
    configured, else in this process."""
    if executor is None and len(units) > 1 and worker_count(cfg) > 1:
        with local_executor(cfg) as pool:
            return run_units(units, cfg, out, on_done, pool)
    results: list[UnitResult] = []
    if executor is None:
        for unit in units:
            results.append(process_unit(unit, cfg, out))
            if on_done:
                on_done(results[-1])
        return results
    # Largest units first so the pool does not end waiting on one big straggler.
    order = sorted(units, key=lambda u: -len(u.records))
    for future in [executor.submit(process_unit, u, cfg, out) for u in order]:
        results.append(future.result())
        if on_done:
            on_done(results[-1])
    return results
