"""Finalise a build: the rejection ledger, fingerprints, MEIT's jsonl, the manifest with this run's
history entry, and the dataset card (:mod:`pipeline.validate` checks the disk against them).

The manifest is written once, last, after every file it lists. The history holds no wall-clock
time (two builds of the same inputs give the same manifest); Prefect's run records say when.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.card import render_card
from pipeline.config import BuildConfig
from pipeline.plan import Plan, fingerprint_mode, fingerprint_table
from pipeline.progress import clean_stray_temps, listed_files, manifest_sources, recorded_shards
from pipeline.shards import write_table_atomic, write_text_atomic
from pipeline.storage import as_location, join
from pipeline.units import SourceInput, TextStats, UnitResult
from pipeline.validate import validate_corpus as validate_corpus  # build, cli, flows import it here
from schemas import (
    CANONICAL_LEADS,
    CARD,
    FINGERPRINTS,
    MANIFEST,
    MEIT_DIR,
    PROGRESS_DIR,
    REJECTIONS,
    SCHEMA_VERSION,
    FileEntry,
    Manifest,
    RefreshRecord,
    SourceCounts,
    meit_jsonl_path,
    rejection_table,
    sha256_file,
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


def remove_stale(out: Path, keep: set[str], sources: Sequence[str]) -> list[str]:
    """Delete what earlier builds of this corpus wrote and this build does not keep; return it.

    Deleted: shards listed by the manifest on disk (the last finished build's) or named by a
    completion record (a killed build's), those completion records, and the writers' temp files.
    A file no build of this corpus listed or recorded is never touched, and a listed path is
    deleted only when it is a file directly in one of the corpus's source folders.
    """
    out = Path(out)
    names = set(sources) | manifest_sources(out)
    removed = []
    for rel in sorted((listed_files(out) | recorded_shards(out, names)) - keep):
        folder, _, file_name = rel.partition("/")
        path = out / folder / file_name
        if folder in names and "/" not in file_name and (path.is_file() or path.is_symlink()):
            path.unlink()
            removed.append(rel)
    for source in sorted(names):
        for path in (out / PROGRESS_DIR / source).glob("*.json"):
            if f"{source}/{path.name.removesuffix('.json')}" not in keep:
                path.unlink()
    clean_stray_temps(out, names)
    return removed


def remove_stale_jsonl(out: Path, written: Sequence[FileEntry]) -> list[str]:
    """Delete MEIT jsonl files the manifest on disk lists and this build did not write."""
    keep = {f.path for f in written}
    removed = []
    for rel in sorted(listed_files(Path(out)) - keep):
        folder, _, file_name = rel.partition("/")
        path = Path(out) / MEIT_DIR / file_name
        if folder == MEIT_DIR and "/" not in file_name and path.is_file():
            path.unlink()
            removed.append(rel)
    return removed


def write_meit_jsonl(
    out: Path, sources: Sequence[SourceInput], files: Sequence[FileEntry]
) -> list[FileEntry]:
    """MEIT's own jsonl (``dataset``, ``id``, ``ecg_path``, ``messages``) per source and split.

    ``ecg_path`` is the source WFDB record (no extension), which MEIT's released trainer reads
    with ``wfdb``; rows come from the shards, so the jsonl and the shards always agree.
    """
    written = []
    for src in sources:
        paths = dict(zip(src.records["record_id"].to_list(), src.records["path"].to_list()))
        for split in sorted({f.split for f in files if f.source == src.name}):
            lines = []
            for f in (f for f in files if f.source == src.name and f.split == split):
                table = pq.read_table(out / f.path, columns=["id", "record_id", "messages"])
                for row in table.to_pylist():
                    ecg_path = join(as_location(src.root), paths[row["record_id"]])
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


def history_entry(plan: Plan, results: Sequence[UnitResult], mode: str) -> RefreshRecord:
    """What this run changed: records added/changed/removed, shards written and removed."""
    by_path = {r.path: r for r in [*plan.done, *results]}
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
        written=sorted(r.path for r in results if r.rows),
        # Stale shards, and shards whose unit now keeps no row (its writer deleted the file).
        removed_shards=[p for p in plan.previous_shards if p not in by_path or not by_path[p].rows],
    )


def finalise(
    cfg: BuildConfig, plan: Plan, results: Sequence[UnitResult], mode: str = "full"
) -> Manifest:
    """Write the ledger, fingerprints, MEIT jsonl, manifest and dataset card; return the manifest.

    ``results`` are the units this run processed; the plan's finished units count as well.
    """
    out = Path(cfg.out)
    history = [*plan.history, history_entry(plan, results, mode)]
    results = sorted({r.path: r for r in [*plan.done, *results]}.values(), key=lambda r: r.path)
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
    remove_stale(out, {r.path for r in results}, [s.name for s in sources])
    meit_files = write_meit_jsonl(out, sources, files) if cfg.text.meit_jsonl else []
    remove_stale_jsonl(out, meit_files)
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
        splits={s.name: s.audit for s in sources},
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
    write_text_atomic(out / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    write_text_atomic(out / CARD, render_card(manifest, {s.name: s.source for s in sources}))
    return manifest


def _summed(tallies: Sequence[Mapping[str, int]]) -> dict[str, int]:
    total: Counter = Counter()
    for t in tallies:
        total.update(t)
    return dict(sorted(total.items()))
