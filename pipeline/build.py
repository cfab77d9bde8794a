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
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from pipeline import __version__
from pipeline import signal as sig
from pipeline.config import BuildConfig
from pipeline.errors import RecordRejected
from pipeline.leads import canonical_order
from pipeline.prompts import DATASET_NAMES, Catalog, choose_template, load_catalog, render
from pipeline.quality import check_flat_and_saturation, check_missing
from pipeline.reports import clean_report, word_count
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
from pipeline.splits import SplitAudit, assign_splits, audit_splits
from pipeline.wfdb_io import RawRecord, read_record, resolve_record
from schemas import CANONICAL_LEADS, SCHEMA_VERSION, SPLITS, corpus_schema

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
    rejections: list[Rejection] = field(default_factory=list)
    templates: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "UnitResult":
        data = json.loads(text)
        data["rejections"] = [Rejection(**r) for r in data["rejections"]]
        return cls(**data)


# ---------------------------------------------------------------- discovery


def metadata_rejection(row: dict, source: str, min_words: int) -> Rejection | None:
    """Reject a record on its metadata alone (no split, no usable report, bad path), else None."""
    rid = row["record_id"]
    if row.get("split") is None:
        return Rejection(source, rid, "no_split", f"no split for strat_fold={row.get('strat_fold')}")
    if not row["path"]:
        return Rejection(source, rid, "missing_file", "no record path in the metadata")
    report = clean_report(source, row["report"], row.get("statements"))
    if word_count(report) < max(min_words, 1):
        return Rejection(
            source, rid, "empty_report", f"report has {word_count(report)} words: {report!r}"
        )
    try:
        resolve_record(Path(row.get("_root", ".")), row["path"])
    except RecordRejected as exc:
        return Rejection(source, rid, exc.reason, exc.detail)
    return None


def discover_source(name: str, root: Path, cfg: BuildConfig) -> SourceInput:
    """List one source's records, assign patient-level splits, reject on metadata, audit."""
    if name == "ptbxl":
        frame = prepare_ptbxl(root, cfg.ptbxl_records, cfg.limit)
    elif name == "mimic":
        frame = prepare_mimic(root, cfg.limit)
    else:
        raise ValueError(f"unknown source {name!r}")
    frame = assign_splits(frame, name, cfg.split)
    rejections, keep = [], []
    for row in frame.iter_rows(named=True):
        rej = metadata_rejection({**row, "_root": str(root)}, name, cfg.text.min_report_words)
        keep.append(rej is None)
        if rej is not None:
            rejections.append(rej)
    kept = frame.filter(pl.Series(keep, dtype=pl.Boolean)) if frame.height else frame
    audit = audit_splits(kept)
    if audit.leaking_patients:
        raise ValueError(f"{name}: {audit.leaking_patients} patients fall in more than one split")
    return SourceInput(name, str(root), kept, tuple(rejections), audit, frame.height)


def discover(cfg: BuildConfig) -> list[SourceInput]:
    """All configured sources, in a fixed order."""
    roots = {"ptbxl": cfg.ptbxl, "mimic": cfg.mimic}
    return [discover_source(n, Path(r), cfg) for n, r in roots.items() if r is not None]


# ---------------------------------------------------------------- planning


def unit_key(cfg: BuildConfig, source: str, split: str, index: int, count: int,
             records: Sequence[dict]) -> str:
    """Fingerprint of everything a unit's output depends on (config, code version, its records)."""
    payload = json.dumps(
        [cfg.content_hash(), __version__, SCHEMA_VERSION, source, split, index, count, records],
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def plan_units(cfg: BuildConfig, sources: Sequence[SourceInput]) -> list[WorkUnit]:
    """One unit per (source, split, shard); a record's shard is a stable hash bucket of its id."""
    units = []
    for src in sources:
        for split in SPLITS:
            rows = src.records.filter(pl.col("split") == split).to_dicts()
            if not rows:
                continue
            count = shard_count(len(rows), cfg.records_per_shard)
            buckets: dict[int, list[dict]] = {i: [] for i in range(count)}
            for row in rows:
                buckets[shard_bucket(f"{src.name}/{row['record_id']}", count)].append(row)
            for index, members in buckets.items():
                key = unit_key(cfg, src.name, split, index, count, members)
                units.append(WorkUnit(src.name, src.root, split, index, count, tuple(members), key))
    return units


# ---------------------------------------------------------------- processing


@dataclass
class Loaded:
    """A record whose signal was read and put in canonical lead order."""

    row: dict
    signal: np.ndarray
    fs: float


def load_one(root: Path, row: dict, cfg: BuildConfig) -> Loaded:
    """Read one record, order its leads, and check its rate and length."""
    raw: RawRecord = read_record(resolve_record(root, row["path"]))
    order = canonical_order(raw.leads)
    if raw.fs <= 0:
        raise RecordRejected("unreadable", f"sampling rate {raw.fs}")
    duration = raw.signal.shape[1] / raw.fs
    if abs(duration - cfg.signal.duration_s) > cfg.signal.length_tolerance_s:
        raise RecordRejected(
            "wrong_length", f"{duration:.2f} s, expected {cfg.signal.duration_s:g} s"
        )
    return Loaded(row, raw.signal[order], raw.fs)


@dataclass
class Conditioned:
    """A batch of records ready to write, with per-record bookkeeping."""

    rows: list[dict]
    ecg: np.ndarray  # (B, 12, T) float16
    n_cropped: int
    n_padded: int
    nan_repaired: np.ndarray
    source_fs: float


def condition(batch: list[Loaded], cfg: BuildConfig, reject: Callable[[dict, str, str], None]
              ) -> Conditioned | None:
    """Quality-check and condition records that share rate and length, all leads at once."""
    s = cfg.signal
    fs = batch[0].fs
    x = np.stack([b.signal for b in batch])
    verdicts = check_missing(x, fs, s)
    keep = [v is None for v in verdicts]
    for b, v in zip(batch, verdicts):
        if v is not None:
            reject(b.row, *v)
    if not all(keep):
        x, batch = x[keep], [b for b, k in zip(batch, keep) if k]
    if not batch:
        return None
    x, repaired = sig.interpolate_nonfinite(x)
    verdicts = check_flat_and_saturation(x, s)
    keep = [v is None for v in verdicts]
    for b, v in zip(batch, verdicts):
        if v is not None:
            reject(b.row, *v)
    if not all(keep):
        x, repaired, batch = x[keep], repaired[keep], [b for b, k in zip(batch, keep) if k]
    if not batch:
        return None
    x = sig.apply_filters(x, fs, s)
    x = sig.resample(x, fs, s.fs)
    x, cropped, padded = sig.fix_length(x, s.n_samples)
    x = sig.normalise(x, s.normalise)
    bounded = s.normalise != "none"  # z-scores and min-max values are always in float16 range
    ecg = sig.to_float16(x, clip=not bounded)
    return Conditioned([b.row for b in batch], ecg, cropped, padded, repaired, fs)


def render_context(row: dict, source: str, cfg: BuildConfig) -> dict:
    """The variables a template may use for this record."""
    duration = cfg.signal.duration_s
    return {
        "age": row.get("age"),
        "sex": row.get("sex"),
        "source": source,
        "dataset_name": DATASET_NAMES.get(source, source),
        "fs": cfg.signal.fs,
        "duration_s": int(duration) if float(duration).is_integer() else duration,
        "n_leads": len(CANONICAL_LEADS),
    }


def to_table(c: Conditioned, unit: WorkUnit, cfg: BuildConfig, catalog: Catalog,
             templates: Counter) -> pa.Table:
    """Arrow table of conditioned records, with the instruction rendered for each."""
    n = len(c.rows)
    columns: dict[str, list] = {name: [] for name in corpus_schema(1).names if name != "ecg"}
    for row, repaired in zip(c.rows, c.nan_repaired):
        row_id = f"{unit.source}/{row['record_id']}"
        context = render_context(row, unit.source, cfg)
        template = choose_template(catalog, row_id, unit.source, context, cfg.text.template_seed)
        templates[template.id] += 1
        report = clean_report(unit.source, row["report"], row.get("statements"))
        values = {
            "id": row_id, "source": unit.source, "record_id": row["record_id"],
            "patient_id": row["patient_id"], "split": unit.split, "fs": cfg.signal.fs,
            "messages": [
                {"role": "user", "content": render(catalog, template, context)},
                {"role": "assistant", "content": report},
            ],
            "template_id": template.id, "task": template.task, "report": report,
            "report_original": row["report"], "age": row.get("age"), "sex": row.get("sex"),
            "source_fs": int(round(c.source_fs)), "n_cropped": c.n_cropped,
            "n_padded": c.n_padded, "nan_repaired": int(repaired),
            "scp_codes": row.get("scp_codes"), "strat_fold": row.get("strat_fold"),
            "measurements": row.get("measurements"),
        }
        for name in columns:
            columns[name].append(values[name])
    t = cfg.signal.n_samples
    flat = pa.array(np.ascontiguousarray(c.ecg).reshape(-1), type=pa.float16())
    ecg = pa.FixedSizeListArray.from_arrays(
        pa.FixedSizeListArray.from_arrays(flat, t), len(CANONICAL_LEADS)
    )
    schema = corpus_schema(t)
    arrays = [ecg if f.name == "ecg" else pa.array(columns[f.name], type=f.type) for f in schema]
    assert all(len(a) == n for a in arrays)
    return pa.Table.from_arrays(arrays, schema=schema)


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
    catalog = load_catalog()
    rejections: list[Rejection] = []
    templates: Counter = Counter()

    def reject(row: dict, reason: str, detail: str) -> None:
        rejections.append(Rejection(unit.source, row["record_id"], reason, detail))

    root = Path(unit.root)
    shard = out / unit.relpath
    with ShardWriter(shard, corpus_schema(cfg.signal.n_samples)) as writer:
        for batch in chunks(unit.records, cfg.batch_size):
            groups: dict[tuple[float, int], list[Loaded]] = {}
            for row in batch:
                try:
                    loaded = load_one(root, row, cfg)
                except RecordRejected as exc:
                    reject(row, exc.reason, exc.detail)
                    continue
                groups.setdefault((loaded.fs, loaded.signal.shape[1]), []).append(loaded)
            for group in groups.values():
                conditioned = condition(group, cfg, reject)
                if conditioned is not None:
                    writer.write(to_table(conditioned, unit, cfg, catalog, templates))
    rows = writer.rows
    if rows == 0:
        shard.unlink(missing_ok=True)
    result = UnitResult(
        key=unit.key, source=unit.source, split=unit.split, path=unit.relpath, rows=rows,
        sha256=sha256_file(shard) if rows else "", inputs=len(unit.records),
        rejections=sorted(rejections, key=lambda r: r.record_id),
        templates=dict(sorted(templates.items())),
    )
    write_text_atomic(completion_path(out, unit), result.to_json())
    return result


def worker_count(cfg: BuildConfig) -> int:
    """Worker processes to use: the config's, or all cores."""
    return cfg.workers or os.cpu_count() or 1


def run_units(units: Sequence[WorkUnit], cfg: BuildConfig, out: Path,
              on_done: Callable[[UnitResult], None] | None = None) -> list[UnitResult]:
    """Process every unit, in a process pool when more than one worker is configured."""
    results: list[UnitResult] = []
    workers = min(worker_count(cfg), max(1, len(units)))
    if workers == 1:
        for unit in units:
            results.append(process_unit(unit, cfg, out))
            if on_done:
                on_done(results[-1])
        return results
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        # Largest units first so the pool does not end waiting on one big straggler.
        order = sorted(units, key=lambda u: -len(u.records))
        for result in pool.map(process_unit, order, [cfg] * len(order), [out] * len(order)):
            results.append(result)
            if on_done:
                on_done(result)
    return results
