"""Finalise a build: shard numbers without gaps, the rejection ledger, fingerprints, MEIT's jsonl,
the dataset card, and the manifest with this run's history entry (:mod:`pipeline.validate` checks
the disk against them).

The manifest is written once, last, after every file it lists and after the files of earlier
builds that it no longer lists are deleted. The history holds no wall-clock time (two builds of
the same inputs give the same manifest); Prefect's run records say when.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

import polars as pl
import pyarrow.parquet as pq

from pipeline.card import render_card, shard_bytes
from pipeline.config import BuildConfig
from pipeline.plan import Plan, fingerprint_mode, fingerprint_table
from pipeline.progress import (
    clean_stray_temps,
    listed_files,
    manifest_sources,
    record_completion,
    recorded_shards,
)
from pipeline.shards import temp_path, write_table_atomic, write_text_atomic
from pipeline.splits import audit_splits
from pipeline.storage import as_location, join
from pipeline.units import SourceInput, TextStats, UnitResult, WorkUnit
from pipeline.validate import inside, text_rows
from pipeline.validate import validate_corpus as validate_corpus  # build, cli, flows import it here
from schemas import (
    CANONICAL_LEADS,
    CARD,
    DATA_DIR,
    FINGERPRINTS,
    MANIFEST,
    PROGRESS_DIR,
    REJECTIONS,
    SCHEMA_VERSION,
    FileEntry,
    Manifest,
    RefreshRecord,
    SourceCounts,
    SplitAudit,
    gapless_shard_paths,
    meit_jsonl_path,
    parse_shard_path,
    rejection_table,
    sha256_file,
    source_dir,
)


def source_counts(src: SourceInput, results: Sequence[UnitResult], synthetic: bool) -> SourceCounts:
    """Seen, kept per split and rejected per reason for one source."""
    mine = [r for r in results if r.source == src.name]
    kept: Counter = Counter()
    for r in mine:
        kept[r.split] += r.kept
    reasons = Counter(x.reason for x in src.rejections)
    reasons.update(x.reason for r in mine for x in r.rejections)
    return SourceCounts(
        seen=src.seen,
        kept=dict(sorted(kept.items())),
        rejected=dict(sorted(reasons.items())),
        synthetic=synthetic,
    )


def gapless_paths(results: Sequence[UnitResult], units: Mapping[str, WorkUnit]) -> dict[str, str]:
    """Unit key -> published shard path: per (source, split), the shards that hold rows numbered
    0 .. N-1 of N in the order of their hash buckets (an empty bucket, or a unit whose records
    were all rejected, leaves no gap)."""
    bucket = {r.key: (r.source, r.split, _bucket(r, units)) for r in results if r.rows}
    paths = gapless_shard_paths(bucket.values())
    return {key: paths[b] for key, b in bucket.items()}


def _bucket(result: UnitResult, units: Mapping[str, WorkUnit]) -> int:
    """A result's hash bucket: its unit's index (or its path's, for a unit not planned)."""
    if result.key in units:
        return units[result.key].index
    ref = parse_shard_path(result.path)
    return ref.index if ref is not None else 0


def renumber(
    out: Path, results: Sequence[UnitResult], units: Mapping[str, WorkUnit]
) -> list[UnitResult]:
    """Rename shards to their :func:`gapless_paths` (bytes unchanged) and return the results
    with their new paths. Each moving shard goes to a temp name first (no rename can clobber
    another shard), then its completion record is rewritten, then it takes its name: a kill at
    any point leaves temps (cleaned) or records whose shard is missing (the unit is redone)."""
    out = Path(out)
    paths = gapless_paths(results, units)
    moving = [r for r in results if r.rows and paths[r.key] != r.path]
    temps = {}
    for r in moving:
        temps[r.key] = temp_path(out / paths[r.key])
        os.replace(out / r.path, temps[r.key])
    renamed = {r.key: dataclasses.replace(r, path=paths[r.key]) for r in moving}
    for key, r in renamed.items():
        if key in units:
            record_completion(out, units[key], r)
    for key, tmp in temps.items():
        os.replace(tmp, out / paths[key])
    return [renamed.get(r.key, r) for r in results]


def removable(rel: str) -> bool:
    """A path an earlier manifest listed that a build may delete: a Parquet or jsonl file inside
    the corpus, outside the build records (the card and manifest are rewritten, never deleted)."""
    p = PurePosixPath(rel)
    return inside(rel) and p.parts[0] != PROGRESS_DIR and p.suffix in (".parquet", ".jsonl")


def remove_stale(
    out: Path, keep: set[str], sources: Sequence[str], records: set[str] | None = None
) -> list[str]:
    """Delete what earlier builds of this corpus wrote and this build does not keep; return it.

    Deleted: files listed by the manifest on disk (the last finished build's: shards, ledger,
    fingerprints, jsonl, in this layout or the one before ``data/``) or shards named by a
    completion record (a killed build's), when not in ``keep``; completion records of shards not
    in ``records`` (default ``keep``: the planned shard paths); the writers' temp files; and
    folders that this leaves empty. A file no build of this corpus listed or recorded is never
    touched, and only Parquet and jsonl files are (:func:`removable`).
    """
    out = Path(out)
    names = set(sources) | manifest_sources(out)
    records = keep if records is None else records
    removed = []
    for rel in sorted((listed_files(out) | recorded_shards(out, names)) - keep):
        path = out / rel
        if removable(rel) and (path.is_file() or path.is_symlink()):
            path.unlink()
            removed.append(rel)
    for source in sorted(names):
        for path in (out / PROGRESS_DIR / source_dir(source)).glob("*.json"):
            if f"{source_dir(source)}/{path.name.removesuffix('.json')}" not in records:
                path.unlink()
        if source != DATA_DIR:  # the layout before data/: _build/<source>/<shard>.json
            for path in (out / PROGRESS_DIR / source).glob("*.json"):
                path.unlink()
    clean_stray_temps(out, names)
    remove_empty_folders(out, names)
    return removed


def remove_empty_folders(out: Path, sources: set[str]) -> None:
    """Remove the corpus's shard and record folders that hold nothing (a source no longer built,
    the layout before ``data/``)."""
    folders = [out / PROGRESS_DIR / source_dir(s) for s in sorted(sources)]
    folders += [out / PROGRESS_DIR / s for s in sorted(sources) if s != DATA_DIR]
    folders += [out / source_dir(s) for s in sorted(sources)]
    folders += [out / s for s in sorted(sources) if s != DATA_DIR] + [out / "meit"]
    for folder in folders:
        try:
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()
        except OSError:
            pass


def write_meit_jsonl(
    out: Path, sources: Sequence[SourceInput], files: Sequence[FileEntry]
) -> list[FileEntry]:
    """MEIT's own jsonl (``dataset``, ``id``, ``ecg_path``, ``messages``) per source and split.

    ``ecg_path`` is the source WFDB record (no extension), which MEIT's released trainer reads
    with ``wfdb``; rows come from the shards, so the jsonl and the shards always agree.
    """
    written = []
    for src in sources:
        # each shard's rows are joined with the records' paths (no dict of every record)
        paths = src.records.select(pl.col("record_id").cast(pl.String), "path")
        for split in sorted({f.split for f in files if f.source == src.name}):
            lines = []
            for f in (f for f in files if f.source == src.name and f.split == split):
                table = pl.from_arrow(
                    pq.read_table(out / f.path, columns=["id", "record_id", "messages"])
                )
                table = table.join(paths, on="record_id", how="left", maintain_order="left")
                for row in table.iter_rows(named=True):
                    ecg_path = join(as_location(src.root), row["path"])
                    record = {
                        "dataset": src.name,
                        "id": row["id"],
                        "ecg_path": str(ecg_path),
                        "messages": row["messages"],
                    }
                    lines.append(json.dumps(record, ensure_ascii=False))
            rel = meit_jsonl_path(src.name, split)
            write_text_atomic(out / rel, "\n".join(lines) + "\n")
            written.append(
                FileEntry(
                    path=rel,
                    rows=len(lines),
                    sha256=sha256_file(out / rel),
                    source=src.name,
                    split=split,
                )
            )
    return written


def history_entry(
    plan: Plan, results: Sequence[UnitResult], ran: set[str], mode: str
) -> RefreshRecord:
    """What this run changed: records added/changed/removed, shards written (by the units with
    keys in ``ran``) and removed; ``results`` are every unit's, with their published paths."""
    kept = {r.path for r in results if r.rows}
    limit = RefreshRecord.ID_LIMIT
    c = plan.changes
    return RefreshRecord(
        sequence=len(plan.history) + 1,
        mode=mode,
        config_changed=plan.config_changed,
        added=len(c.added),
        changed=len(c.changed),
        removed=len(c.removed),
        added_ids=list(c.added[:limit]),
        changed_ids=list(c.changed[:limit]),
        removed_ids=list(c.removed[:limit]),
        written=sorted(r.path for r in results if r.rows and r.key in ran),
        # Stale shards, shards whose unit now keeps no row, and names given up by renumbering.
        removed_shards=[p for p in plan.previous_shards if p not in kept],
    )


def kept_audit(out: Path, src: SourceInput, files: Sequence[FileEntry]) -> SplitAudit:
    """The split audit of a source over the rows the corpus keeps (the plan's audit counts
    every record with a split, including those rejected later)."""
    paths = [out / f.path for f in files if f.source == src.name]
    columns = {"patient_id": pl.String, "split": pl.String}
    frame = pl.read_parquet(paths, columns=list(columns)) if paths else pl.DataFrame(schema=columns)
    return audit_splits(frame, src.audit.mode)


def finalise(
    cfg: BuildConfig, plan: Plan, results: Sequence[UnitResult], mode: str = "full"
) -> Manifest:
    """Write the ledger, fingerprints, MEIT jsonl, dataset card and manifest; return the manifest.

    ``results`` are the units this run processed; the plan's finished units count as well.
    """
    out = Path(cfg.out)
    units = {u.key: u for u in plan.units}
    ran = {r.key for r in results}
    results = renumber(out, list({r.key: r for r in [*plan.done, *results]}.values()), units)
    results = sorted(results, key=lambda r: r.path)
    history = [*plan.history, history_entry(plan, results, ran, mode)]
    sources = plan.sources
    write_table_atomic(out / FINGERPRINTS, fingerprint_table(plan.fingerprints))
    fingerprint_entry = FileEntry(
        path=FINGERPRINTS, rows=len(plan.fingerprints), sha256=sha256_file(out / FINGERPRINTS)
    )
    rejections = [x for s in sources for x in s.rejections] + [
        x for r in results for x in r.rejections
    ]
    ledger = out / REJECTIONS
    write_table_atomic(ledger, rejection_table(rejections))
    files = [
        FileEntry(
            path=r.path,
            rows=r.rows,
            sha256=r.sha256,
            source=r.source,
            split=r.split,
            records=r.kept,
        )
        for r in results
        if r.rows
    ]
    meit_files = write_meit_jsonl(out, sources, files) if cfg.text.meit_jsonl else []
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        config=cfg.model_dump(mode="json"),
        config_hash=cfg.content_hash(),
        lead_order=list(CANONICAL_LEADS),
        fs=cfg.signal.fs,
        n_samples=cfg.signal.n_samples,
        files=files,
        rejections=FileEntry(path=REJECTIONS, rows=len(rejections), sha256=sha256_file(ledger)),
        counts={s.name: source_counts(s, results, cfg.synthetic) for s in sources},
        splits={s.name: kept_audit(out, s, files) for s in sources},
        templates=_summed(r.templates for r in results),
        tasks=_summed(r.tasks for r in results),
        extra_files=meit_files,
        fingerprints=fingerprint_entry,
        fingerprint_modes={s.name: fingerprint_mode(s.records, cfg.fingerprint) for s in sources},
        refreshes=history,
        text={
            s.name: TextStats.total(r.text for r in results if r.source == s.name).summary()
            for s in sources
        },
    )
    problems = manifest.check_counts()
    if problems:
        raise RuntimeError("corpus counts do not add up: " + "; ".join(problems))
    card_text = render_card(
        manifest, {s.name: s.source for s in sources}, shard_bytes(out, manifest)
    )
    write_text_atomic(out / CARD, card_text)
    card = FileEntry(path=CARD, rows=text_rows(out / CARD), sha256=sha256_file(out / CARD))
    manifest = manifest.model_copy(update={"card": card})
    keep = {e.path for e in manifest.listed()}
    remove_stale(out, keep, [s.name for s in sources], {u.relpath for u in plan.units})
    write_text_atomic(out / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    return manifest


def _summed(tallies: Sequence[Mapping[str, int]]) -> dict[str, int]:
    total: Counter = Counter()
    for t in tallies:
        total.update(t)
    return dict(sorted(total.items()))
