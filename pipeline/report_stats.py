"""The statistics of ``meit-corpus report``: small aggregated tables computed with polars'
streaming engine over the shards (each query reads only the columns it names), the ledger, the
manifest's own records, and per-lead amplitudes from a bounded sample of rows read batch by batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from pydantic import ValidationError

from schemas import MANIFEST, Manifest, corpus_schema, decode_ecg, read_manifest

TOP = 20  # bars in a top-N figure and rows in a top-N table
AMPLITUDE_ROWS = 240  # rows sampled for the amplitude figure (bounded: a batch per shard)


@dataclass
class CorpusStats:
    """Everything the report shows; small aggregated tables only (never rows or signals)."""

    records: pl.DataFrame  # source, split, rows, records
    rejections: pl.DataFrame  # source, reason, count
    report_words: pl.DataFrame  # source, words, count (report rows)
    statements: pl.DataFrame  # source, statement, count (top per source)
    scp_codes: pl.DataFrame  # code, count (top)
    templates: pl.DataFrame  # template_id, task, count
    tasks: pl.DataFrame  # task, count
    ages: pl.DataFrame  # source, age, count (records)
    sexes: pl.DataFrame  # source, sex, count (records)
    languages: pl.DataFrame  # source, report_language, count (records)
    incomplete: pl.DataFrame  # source, count: records with untranslated tokens
    untranslated: pl.DataFrame  # token, count (top)
    refreshes: pl.DataFrame  # sequence, mode, added, changed, removed, shards written/removed
    amplitude: dict[str, np.ndarray]  # source -> (n, 12) peak-to-peak per lead of sampled rows
    unit: str  # the unit of the rows' ecg values
    text: dict = field(default_factory=dict)  # the manifest's translation statistics


def open_manifest(corpus: Path, error: type[Exception]) -> Manifest:
    """The corpus's manifest for ``inspect`` and ``report``; ``error`` (their one-line error)
    when the folder has none or it does not parse."""
    try:
        return read_manifest(corpus)
    except FileNotFoundError:
        raise error(f"{corpus} is not a corpus folder: it has no {MANIFEST}") from None
    except (ValidationError, ValueError, OSError) as exc:
        why = str(exc).splitlines()[0]
        raise error(f"{corpus}/{MANIFEST} cannot be read: {why}") from None


def shard_paths(corpus: Path, manifest: Manifest) -> list[Path]:
    """The corpus's shards, as the manifest lists them (sources' Parquet files only)."""
    return [
        Path(corpus) / f.path for f in manifest.files if f.source and f.path.endswith(".parquet")
    ]


def scan_rows(corpus: Path, manifest: Manifest) -> pl.LazyFrame:
    """The corpus's rows, lazily (nothing is read until a query names its columns); an empty
    frame of the row schema when the corpus has no shard (every record rejected)."""
    paths = shard_paths(corpus, manifest)
    if paths:
        return pl.scan_parquet(paths)
    return pl.from_arrow(corpus_schema(manifest.n_samples).empty_table()).lazy()


def _ranked(frame: pl.LazyFrame, by: list[str], top: int | None = None) -> pl.LazyFrame:
    """``frame`` counted by ``by``, most frequent first (ties by key), the first ``top`` kept."""
    counted = frame.group_by(by).agg(pl.len().cast(pl.Int64).alias("count"))
    ranked = counted.sort(["count", *by], descending=[True, *[False] * len(by)])
    return ranked.head(top) if top else ranked


def row_queries(rows: pl.LazyFrame, top: int = TOP) -> dict[str, pl.LazyFrame]:
    """The aggregations over the shards' rows; each reads only the columns it names."""
    report_rows = rows.filter(pl.col("example") == 0)  # one per record
    statements = report_rows.select(
        "source",
        statement=pl.col("report").str.strip_chars().str.strip_chars_end(".").str.split(". "),
    ).explode("statement")
    statements = statements.filter(pl.col("statement").str.len_chars() > 0)
    codes = report_rows.select(
        code=pl.col("scp_codes")
        .str.extract_all(r'"([^"]+)"\s*:')
        .list.eval(pl.element().str.extract(r'"([^"]+)"'))
    ).explode("code")
    tokens = report_rows.select(token=pl.col("untranslated")).explode("token")
    return {
        "records": rows.group_by("source", "split")
        .agg(rows=pl.len().cast(pl.Int64), records=(pl.col("example") == 0).sum().cast(pl.Int64))
        .sort("source", "split"),
        "report_words": _ranked(
            report_rows.select("source", words=pl.col("report").str.count_matches(r"\S+")),
            ["source", "words"],
        ).sort("source", "words"),
        "statements": _ranked(statements, ["source", "statement"])
        .with_columns(rank=pl.int_range(pl.len()).over("source"))
        .filter(pl.col("rank") < top)
        .sort("source", "rank")
        .drop("rank"),
        "scp_codes": _ranked(codes.drop_nulls(), ["code"], top),
        "templates": _ranked(rows.select("template_id", "task"), ["template_id", "task"]),
        "tasks": _ranked(rows.select("task"), ["task"]),
        "ages": _ranked(
            report_rows.select("source", age=pl.col("age").floor().cast(pl.Int32)).drop_nulls(),
            ["source", "age"],
        ).sort("source", "age"),
        "sexes": _ranked(
            report_rows.select("source", pl.col("sex").fill_null("unknown")), ["source", "sex"]
        ),
        "languages": _ranked(
            report_rows.select("source", "report_language"), ["source", "report_language"]
        ),
        "incomplete": report_rows.filter(pl.col("untranslated").list.len() > 0)
        .group_by("source")
        .agg(count=pl.len().cast(pl.Int64))
        .sort("source"),
        "untranslated": _ranked(tokens.drop_nulls(), ["token"], top),
    }


def ledger_counts(corpus: Path, manifest: Manifest) -> pl.DataFrame:
    """Rejections by source and reason, counted from the ledger file the manifest lists."""
    ledger = pl.scan_parquet(Path(corpus) / manifest.rejections.path).select("source", "reason")
    return _ranked(ledger, ["source", "reason"]).collect()


def amplitude_sample(paths: list[Path], max_rows: int = AMPLITUDE_ROWS) -> dict[str, np.ndarray]:
    """Peak-to-peak amplitude per lead of up to ``max_rows`` rows: the first batch of each shard
    (an even share), read batch by batch (only ``source`` and ``ecg``), never a whole shard."""
    share = max(1, math.ceil(max_rows / max(1, len(paths))))
    found: dict[str, list[np.ndarray]] = {}
    for path in paths:
        batches = pq.ParquetFile(path).iter_batches(batch_size=share, columns=["source", "ecg"])
        batch = next(batches, None)
        if batch is None or not batch.num_rows:
            continue
        ecg = decode_ecg(batch.column("ecg")).astype(np.float32)
        p2p = np.nanmax(ecg, axis=2) - np.nanmin(ecg, axis=2)
        for source in set(batch.column("source").to_pylist()):
            mask = np.asarray(batch.column("source").to_pylist()) == source
            found.setdefault(source, []).append(p2p[mask])
    return {s: np.concatenate(parts) for s, parts in sorted(found.items())}


def refresh_table(manifest: Manifest) -> pl.DataFrame:
    """The manifest's refresh history, one row per build or refresh."""
    return pl.DataFrame(
        [
            {
                "sequence": r.sequence,
                "mode": r.mode,
                "config_changed": r.config_changed,
                "added": r.added,
                "changed": r.changed,
                "removed": r.removed,
                "shards_written": len(r.written),
                "shards_removed": len(r.removed_shards),
            }
            for r in manifest.refreshes
        ],
        schema={
            "sequence": pl.Int64,
            "mode": pl.String,
            "config_changed": pl.Boolean,
            "added": pl.Int64,
            "changed": pl.Int64,
            "removed": pl.Int64,
            "shards_written": pl.Int64,
            "shards_removed": pl.Int64,
        },
    )


def collect_stats(corpus: Path, manifest: Manifest, top: int = TOP) -> CorpusStats:
    """The report's statistics: streaming aggregations over the shards, the ledger, a bounded
    amplitude sample and the manifest's own records (translation, refreshes)."""
    from pipeline.preview import row_unit

    paths = shard_paths(corpus, manifest)
    queries = row_queries(scan_rows(corpus, manifest), top)
    frames = dict(zip(queries, pl.collect_all(list(queries.values()), engine="streaming")))
    normalise = manifest.config.get("signal", {}).get("normalise", "none")
    return CorpusStats(
        **frames,
        rejections=ledger_counts(corpus, manifest),
        refreshes=refresh_table(manifest),
        amplitude=amplitude_sample(paths),
        unit=row_unit(normalise).long,
        text=manifest.text,
    )
