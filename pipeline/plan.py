"""Plan a build: discover the records, fingerprint the inputs, cut units, compare with the disk.

A fresh build is a plan against nothing; a rerun or a refresh is a plan against the corpus already
in ``cfg.out``. A record's fingerprint (:mod:`pipeline.fingerprints`) is a hash of its metadata row
and the files it reads. Fingerprints enter each unit's key, so a unit whose records and inputs
are unchanged keeps its completion record and its shard keeps its bytes. With a fixed bucket count
(``shards_per_split``) a record's shard depends on its id alone, so an added, changed or removed
record rewrites only its own shard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import xxhash

from pipeline import __version__
from pipeline.bounded_io import resolve_record
from pipeline.config import BuildConfig
from pipeline.errors import InputError, RecordRejected
from pipeline.fingerprints import (
    Changes,
    diff_fingerprints,
    fingerprint_mode,
    fingerprint_table,
    input_fingerprints,
    stored_fingerprints,
    with_expected_digests,
)
from pipeline.progress import finished_results, previous_manifest
from pipeline.shards import shard_bucket, shard_count, write_text_atomic
from pipeline.sources import Source
from pipeline.sources.record import split_rejected
from pipeline.splits import assign_splits, audit_splits, split_mode
from pipeline.storage import Location, as_location
from pipeline.unit_files import PLAN_DIR, prune_unit_files, write_unit
from pipeline.units import SourceInput, UnitResult, WorkUnit
from schemas import (
    SCHEMA_VERSION,
    SPLITS,
    RefreshRecord,
    Rejection,
    gapless_shard_paths,
)

__all__ = [  # fingerprints live in pipeline.fingerprints; these stay importable from here
    "Changes",
    "Plan",
    "diff_fingerprints",
    "discover",
    "fingerprint_mode",
    "fingerprint_table",
    "input_fingerprints",
    "make_plan",
]

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


POSITION = "__meit_position"


def may_be_rejected() -> pl.Expr:
    """Rows :func:`metadata_rejection` may reject (a superset: only these are checked one by one,
    not 800k rows): no split, no path, or a path with ``/`` first, ``..``, ``://``, or only dots
    and slashes."""
    path = pl.col("path")
    odd = path.str.contains(r"^/|\.\.|://|^[./]*$")
    return pl.col("split").is_null() | path.is_null() | odd.fill_null(True)


def discover_source(source: Source, root: Location, cfg: BuildConfig) -> SourceInput:
    """List one source's records, assign patient-level splits, reject on metadata, audit.

    Rows the source marked unusable (:func:`pipeline.sources.record.split_rejected`) are
    rejections too, and count as seen.
    """
    usable, marked = split_rejected(source.prepare(root, cfg), source.name)
    frame = assign_splits(usable, source.split_rule, cfg.split)
    rejections, dropped = list(marked), []
    suspects = frame.with_row_index(POSITION).filter(may_be_rejected())
    for position, row in zip(suspects[POSITION], suspects.drop(POSITION).iter_rows(named=True)):
        rej = metadata_rejection(row, source.name, as_location(root))
        if rej is not None:
            rejections.append(rej)
            dropped.append(position)
    if dropped:
        kept = frame.with_row_index(POSITION).filter(~pl.col(POSITION).is_in(dropped))
        kept = kept.drop(POSITION)
    else:
        kept = frame
    kept = with_expected_digests(kept, root)
    audit = audit_splits(kept, split_mode(source.split_rule, cfg.split))
    if audit.leaking_patients and not audit.leaks:
        raise InputError(
            f"{source.name}: {audit.leaking_patients} patients fall in more than one split"
        )
    seen = frame.height + len(marked)
    return SourceInput(source, str(root), kept, tuple(rejections), audit, seen)


def discover(cfg: BuildConfig, sources: Mapping[str, Source]) -> list[SourceInput]:
    """Every source given in ``cfg``, in the order of :meth:`BuildConfig.inputs`.

    ``sources`` is the registry (:func:`pipeline.sources.registry`); a name it lacks is an
    :class:`InputError`.
    """
    unknown = sorted(set(cfg.inputs()) - set(sources))
    if unknown:
        raise InputError(f"unknown source(s) {unknown}; registered: {sorted(sources)}")
    return [discover_source(sources[n], as_location(root), cfg) for n, root in cfg.inputs().items()]


# ---------------------------------------------------------------- units


def unit_key(
    cfg: BuildConfig,
    source: str,
    split: str,
    index: int,
    count: int,
    records: Sequence[dict],
    fingerprints: Sequence[str] = (),
) -> str:
    """Fingerprint of everything a unit's output depends on (config, code version, its records,
    their input fingerprints), so a changed waveform file changes the key and the shard is redone.
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
    cfg: BuildConfig, sources: Sequence[SourceInput], fingerprints: Mapping[str, str]
) -> list[WorkUnit]:
    """One unit per (source, split, shard); a record's shard is a stable hash bucket of its id.

    With ``cfg.shards_per_split`` the bucket count is fixed, so a record's shard never depends on
    the other records (what incremental refresh needs); empty buckets get no unit. The metadata
    stays columnar: each unit's rows become dicts only for its key, then go to its rows file
    (:mod:`pipeline.unit_files`), and the unit carries that file's path.
    """
    units = []
    known = read_key_cache(cfg.out)
    cache = {}
    for src in sources:
        for split, index, count, members in unit_rows(cfg, src):
            ids = members.get_column("record_id").cast(pl.String).to_list()
            prints = [fingerprints.get(f"{src.name}/{rid}", "") for rid in ids]
            quick = quick_unit_key(cfg, src.name, split, index, count, members, prints)
            key = known.get(quick)
            if key is None:
                rows = members.to_dicts()
                key = unit_key(cfg, src.name, split, index, count, rows, prints)
            cache[quick] = key
            units.append(
                write_unit(cfg.out, src.source, src.root, split, index, count, key, members)
            )
    if cache != known:  # a refresh with nothing changed writes nothing
        write_key_cache(cfg.out, cache)
    return units


KEY_CACHE = f"{PLAN_DIR}/keys.json"
"""The last plan's unit keys by :func:`quick_unit_key`: a refresh of unchanged units skips
:func:`unit_key`'s rows-to-dicts and JSON (1.1 s for 600 units of 100k records)."""


def quick_unit_key(
    cfg: BuildConfig,
    source: str,
    split: str,
    index: int,
    count: int,
    members: pl.DataFrame,
    fingerprints: Sequence[str],
) -> str:
    """A cheap stand-in for :func:`unit_key`'s inputs, only to look up the key it gave before:
    the config, versions (polars' too: its row hash is stable within a version), the unit,
    the columns and their types, a polars hash of each row, and the fingerprints themselves
    (which hash each record's metadata row and files again)."""
    head = json.dumps(
        [
            cfg.content_hash(),
            __version__,
            SCHEMA_VERSION,
            pl.__version__,
            source,
            split,
            index,
            count,
            [[c, str(t)] for c, t in members.schema.items()],
        ]
    )
    h = xxhash.xxh3_128(head.encode())
    h.update(members.hash_rows(seed=7).to_numpy().tobytes())
    h.update("\n".join(fingerprints).encode())
    return h.hexdigest()


def read_key_cache(out: Path | str) -> dict[str, str]:
    """The last plan's quick key -> unit key (empty when there is none or it does not parse)."""
    try:
        known = json.loads((Path(out) / KEY_CACHE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(known, dict):
        return {}
    return {q: k for q, k in known.items() if isinstance(k, str) and len(k) == 64}


def write_key_cache(out: Path | str, cache: Mapping[str, str]) -> None:
    write_text_atomic(Path(out) / KEY_CACHE, json.dumps(dict(sorted(cache.items()))))


def unit_rows(cfg: BuildConfig, src: SourceInput) -> Iterator[tuple[str, int, int, pl.DataFrame]]:
    """(split, shard index, shard count, its records in discovery's order) for every non-empty
    shard of ``src``, by split then index. Only row numbers are grouped; each shard's rows are
    gathered when its turn comes, so the records are never copied whole (800k rows)."""
    splits = src.records.get_column("split")
    ids = src.records.get_column("record_id").cast(pl.String)
    counts = {
        split: cfg.shards_per_split or shard_count(n, cfg.records_per_shard)
        for split, n in splits.value_counts().iter_rows()
        if split is not None
    }
    buckets = [
        shard_bucket(f"{src.name}/{rid}", counts[split]) if split in counts else None
        for rid, split in zip(ids, splits)
    ]
    groups = (
        pl.DataFrame({"split": splits, BUCKET: pl.Series(buckets, dtype=pl.Int64)})
        .with_row_index(POSITION)
        .group_by("split", BUCKET)
        .agg(pl.col(POSITION).sort())
    )
    for split in SPLITS:
        mine = groups.filter(pl.col("split") == split).sort(BUCKET)
        for index, positions in mine.select(BUCKET, POSITION).iter_rows():
            yield split, index, counts[split], src.records[positions]


BUCKET = "__meit_bucket"


# ---------------------------------------------------------------- the plan


@dataclass
class Plan:
    """The sources, the units, and how they compare with the corpus on disk."""

    sources: list[SourceInput]
    units: list[WorkUnit]
    todo: list[WorkUnit]
    done: list[UnitResult]
    changes: Changes
    fingerprints: dict[str, str]
    config_changed: bool
    stale_shards: list[str]  # shards of the last manifest that no unit of this plan writes
    has_previous: bool
    history: list[RefreshRecord] = field(default_factory=list)
    previous_shards: list[str] = field(default_factory=list)  # the last manifest's shards

    @property
    def nothing_to_do(self) -> bool:
        """True when the corpus on disk already is what this plan would produce."""
        return (
            self.has_previous
            and not self.todo
            and not self.stale_shards
            and not self.changes.any
            and not self.config_changed
        )


def make_plan(
    cfg: BuildConfig, sources: Sequence[SourceInput], executor: Executor | None = None
) -> Plan:
    """Fingerprint the inputs (on ``executor``), plan the units, sort them into done and to do."""
    out = Path(cfg.out)
    previous = previous_manifest(out)
    fingerprints = input_fingerprints(sources, executor, cfg.fingerprint)
    units = plan_units(cfg, sources, fingerprints)
    prune_unit_files(out, {u.key for u in units})
    todo, done = [], []
    for unit, result in zip(units, finished_results(out, units)):  # shards hashed in parallel
        if result is None:
            todo.append(unit)
        else:
            done.append(result)
    # a shard's name is its bucket's, closed up to 0 .. N-1 of N when finalising (gapless)
    planned = {u.relpath for u in units} | {r.path for r in done}
    planned |= set(gapless_shard_paths((u.name, u.split, u.index) for u in units).values())
    previous_shards = sorted(f.path for f in previous.files) if previous else []
    return Plan(
        sources=list(sources),
        units=units,
        todo=todo,
        done=done,
        changes=diff_fingerprints(stored_fingerprints(out, previous), fingerprints),
        fingerprints=fingerprints,
        config_changed=previous is None or previous.config_hash != cfg.content_hash(),
        stale_shards=[p for p in previous_shards if p not in planned],
        has_previous=previous is not None,
        history=list(previous.refreshes) if previous else [],
        previous_shards=previous_shards,
    )
