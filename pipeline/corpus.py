"""Whole-corpus steps: run a build end to end, finalise it (ledger, manifest, card), validate it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.build import (
    PROGRESS_DIR,
    Rejection,
    SourceInput,
    UnitResult,
)
from pipeline.card import render_card
from pipeline.config import BuildConfig
from pipeline.refresh import FINGERPRINTS, fingerprint_table
from pipeline.shards import sha256_file, write_table_atomic, write_text_atomic
from pipeline.storage import as_location, join
from schemas import CANONICAL_LEADS, SCHEMA_VERSION, FileEntry, Manifest, SourceCounts
from schemas.corpus import check_schema_version, corpus_schema, rejection_schema
from schemas.manifest import RefreshRecord

MANIFEST = "manifest.json"
REJECTIONS = "rejections.parquet"
CARD = "README.md"


def rejection_table(rejections: Sequence[Rejection]) -> pa.Table:
    """The ledger as a table, sorted by source and record id."""
    ordered = sorted(rejections, key=lambda r: (r.source, r.record_id))
    return pa.table(
        {
            "source": [r.source for r in ordered],
            "record_id": [r.record_id for r in ordered],
            "reason": [r.reason for r in ordered],
            "detail": [r.detail for r in ordered],
        },
        schema=rejection_schema(),
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


def remove_stale(out: Path, keep: set[str], sources: Sequence[str]) -> None:
    """Delete shards and completion records of earlier plans that this plan does not produce."""
    for source in sources:
        for path in (out / source).glob("*.parquet"):
            if f"{source}/{path.name}" not in keep:
                path.unlink()
        for path in (out / PROGRESS_DIR / source).glob("*.json"):
            if f"{source}/{path.name.removesuffix('.json')}" not in keep:
                path.unlink()
        for tmp in (out / source).glob(".*.tmp-*"):
            tmp.unlink()


MEIT_DIR = "meit"


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
                    lines.append(
                        json.dumps(
                            {
                                "dataset": src.name,
                                "id": row["id"],
                                "ecg_path": str(
                                    join(as_location(src.root), paths[row["record_id"]])
                                ),
                                "messages": row["messages"],
                            },
                            ensure_ascii=False,
                        )
                    )
            rel = f"{MEIT_DIR}/{src.name}_{split}.jsonl"
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


def text_summary(unit_stats: Sequence[dict], top: int = 20) -> dict:
    """One source's report-language counts and translation coverage, summed over its units."""
    languages: Counter = Counter()
    untranslated: Counter = Counter()
    foreign = translated = incomplete = dropped = 0
    for st in unit_stats:
        if not st:
            continue
        languages.update(st["languages"])
        untranslated.update(st["untranslated"])
        foreign += st["foreign_tokens"]
        translated += st["translated_tokens"]
        incomplete += st["incomplete_reports"]
        dropped += st["dropped_statements"]
    return {
        "languages": dict(sorted(languages.items())),
        "translation_coverage": round(translated / foreign, 6) if foreign else None,
        "foreign_tokens": foreign,
        "translated_tokens": translated,
        "incompletely_translated_reports": incomplete,
        "top_untranslated": [
            [tok, n]
            for tok, n in sorted(untranslated.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ],
        "dropped_statements": dropped,
    }


def finalise(
    cfg: BuildConfig,
    sources: Sequence[SourceInput],
    results: Sequence[UnitResult],
    out: Path,
    fingerprints: Mapping[str, str] | None = None,
    history: Sequence[RefreshRecord] = (),
) -> Manifest:
    """Write the rejection ledger, fingerprints, manifest and dataset card; return the manifest.

    ``fingerprints`` (row id -> input fingerprint) and ``history`` (what each build changed) come
    from :mod:`pipeline.refresh`; the manifest is written once, last, after every file it lists.
    """
    out = Path(out)
    fingerprint_entry = None
    if fingerprints is not None:
        write_table_atomic(out / FINGERPRINTS, fingerprint_table(fingerprints))
        fingerprint_entry = FileEntry(
            path=FINGERPRINTS, rows=len(fingerprints), sha256=sha256_file(out / FINGERPRINTS)
        )
    rejections = [x for s in sources for x in s.rejections] + [
        x for r in results for x in r.rejections
    ]
    ledger = out / REJECTIONS
    write_table_atomic(ledger, rejection_table(rejections))
    files = sorted(
        (
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
        ),
        key=lambda f: f.path,
    )
    remove_stale(out, {r.path for r in results}, [s.name for s in sources])
    meit_files = write_meit_jsonl(out, sources, files) if cfg.text.meit_jsonl else []
    for stale in (out / MEIT_DIR).glob("*.jsonl"):
        if stale.relative_to(out).as_posix() not in {f.path for f in meit_files}:
            stale.unlink()
    templates: Counter = Counter()
    tasks: Counter = Counter()
    for r in results:
        templates.update(r.templates)
        tasks.update(r.tasks)
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
        splits={
            s.name: {
                "patients": s.audit.patients,
                "leaking_patients": s.audit.leaking_patients,
                "mode": s.audit.mode,
                "leaks": s.audit.leaks_by_design,
            }
            for s in sources
        },
        templates=dict(sorted(templates.items())),
        tasks=dict(sorted(tasks.items())),
        extra_files=meit_files,
        fingerprints=fingerprint_entry,
        refreshes=list(history),
        text={
            s.name: text_summary([r.text for r in results if r.source == s.name]) for s in sources
        },
    )
    problems = manifest.check_counts()
    if problems:
        raise RuntimeError("corpus counts do not add up: " + "; ".join(problems))
    write_text_atomic(out / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    write_text_atomic(out / CARD, render_card(manifest))
    return manifest


def build_corpus(
    cfg: BuildConfig,
    on_done: Callable[[UnitResult], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> Manifest:
    """Build the corpus described by ``cfg`` into ``cfg.out``.

    Resumes a killed build and, over an earlier corpus, rewrites only the shards whose records or
    inputs changed (the same code path as a refresh; see :mod:`pipeline.refresh`).
    """
    from pipeline.refresh import refresh_corpus

    outcome = refresh_corpus(cfg, mode="full", on_done=on_done, on_plan=on_plan)
    assert outcome.manifest is not None  # mode "full" always finalises
    return outcome.manifest


def validate_corpus(corpus: Path) -> list[str]:
    """Problems found in a corpus directory (empty list = valid)."""
    corpus = Path(corpus)
    try:
        manifest = Manifest.model_validate_json((corpus / MANIFEST).read_text())
    except FileNotFoundError:
        return [f"{MANIFEST} not found in {corpus}"]
    except ValueError as exc:
        return [f"{MANIFEST} is not a valid manifest: {exc}"]
    try:
        check_schema_version(manifest.schema_version)
    except ValueError as exc:
        return [str(exc)]
    problems = list(manifest.check_counts())
    expected_schema = corpus_schema(manifest.n_samples)
    listed = {f.path for f in manifest.files}
    for entry in [*manifest.files, manifest.rejections, *manifest.extra_files]:
        path = corpus / entry.path
        if not path.is_file():
            problems.append(f"{entry.path}: missing")
            continue
        if sha256_file(path) != entry.sha256:
            problems.append(f"{entry.path}: sha256 differs from the manifest")
            continue
        if not entry.path.endswith(".parquet"):
            lines = sum(1 for line in path.open(encoding="utf-8") if line.strip())
            if lines != entry.rows:
                problems.append(f"{entry.path}: {lines} lines, manifest says {entry.rows}")
            continue
        meta = pq.read_metadata(path)
        if meta.num_rows != entry.rows:
            problems.append(f"{entry.path}: {meta.num_rows} rows, manifest says {entry.rows}")
        if entry.path in listed and not meta.schema.to_arrow_schema().equals(
            expected_schema, check_metadata=False
        ):
            problems.append(f"{entry.path}: schema differs from schema {manifest.schema_version}")
    for source in manifest.counts:
        for path in sorted((corpus / source).glob("*.parquet")):
            if f"{source}/{path.name}" not in listed:
                problems.append(f"{source}/{path.name}: not listed in the manifest")
    return problems


def read_manifest(corpus: Path) -> Manifest:
    """The manifest of a corpus directory."""
    return Manifest.model_validate_json((Path(corpus) / MANIFEST).read_text())


def manifest_summary(manifest: Manifest) -> dict:
    """Counts in a JSON-friendly form (for logs and artifacts)."""
    return json.loads(manifest.model_dump_json(include={"counts", "splits", "templates"}))


def with_demo_inputs(cfg: BuildConfig, demo_dir: Path) -> BuildConfig:
    """``cfg`` pointed at freshly written synthetic demo folders (deterministic, labelled synthetic)."""
    from pipeline.sources.demo import write_demo

    paths = write_demo(Path(demo_dir), overwrite=True)
    return cfg.model_copy(update={"ptbxl": paths.ptbxl, "mimic": paths.mimic, "synthetic": True})
