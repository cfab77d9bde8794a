"""Look at a built corpus: summary statistics and a clinical preview of one row."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from pipeline.report_stats import open_manifest, scan_rows
from schemas import Manifest


class InspectError(ValueError):
    """A user mistake (no corpus, an unknown id, no input folder for ``--raw``): one line."""


@dataclass(frozen=True)
class Inspection:
    """What ``inspect`` found: the corpus statistics, the row drawn and where its PNG is."""

    stats: dict
    row_id: str
    png: Path


def corpus_stats(corpus: Path, manifest: Manifest) -> dict:
    """Rows per source and split, report length (words) and templates used (the reports are
    counted by polars' streaming engine: only the ``report`` column is read)."""
    rows: dict[str, dict[str, int]] = {}
    for f in manifest.files:
        rows.setdefault(f.source or "?", {})[f.split or "?"] = f.rows
    reports = scan_rows(corpus, manifest).select("report")
    words = reports.select(w=pl.col("report").str.count_matches(r"\S+"))
    summary = words.select(
        mean=pl.col("w").mean(), median=pl.col("w").median(), max=pl.col("w").max()
    ).collect(engine="streaming")
    mean, median, longest = summary.row(0)
    return {
        "rows": rows,
        "report_words": {
            "mean": float(mean or 0),
            "median": float(median or 0),
            "max": int(longest or 0),
        },
        "templates_used": len(manifest.templates),
        "rejected": {n: c.rejected for n, c in manifest.counts.items()},
    }


def find_row(corpus: Path, manifest: Manifest, row_id: str | None) -> dict:
    """One row as a dict: the row ``row_id``, or the first row of the corpus when None.

    Only the shards of the id's source are read, with the id as a Parquet filter (row groups
    whose id statistics exclude it are skipped); :class:`InspectError` when no row has the id.
    """
    for f in manifest.files:
        if row_id is not None and f.source and not row_id.startswith(f"{f.source}/"):
            continue
        path = Path(corpus) / f.path
        if row_id is None:
            batch = next(pq.ParquetFile(path).iter_batches(batch_size=1), None)
            table = None if batch is None else batch.to_pylist()
        else:
            table = pq.read_table(path, filters=[("id", "=", row_id)]).to_pylist()
        if table:
            return table[0]
    if row_id is None:
        raise InspectError(f"{corpus} holds no rows")
    sources = ", ".join(sorted(manifest.counts)) or "none"
    raise InspectError(
        f"no row with id {row_id!r} in {corpus} (ids are <source>/<record_id>, sources: {sources})"
    )


def preview_path(row_id: str) -> Path:
    """The default PNG name of a row: ``./<id with / as _>.png``."""
    return Path(row_id.replace("/", "_") + ".png")


def inspect_corpus(
    corpus: Path, row_id: str | None = None, out: Path | None = None, raw: bool = False
) -> Inspection:
    """Statistics of ``corpus`` and a clinical preview PNG of one row (with ``raw``, its record
    as stored in WFDB drawn in mV above it). Every user mistake is an :class:`InspectError`."""
    from pipeline.preview import PreviewError, conditioned_view, draw_preview, raw_view

    manifest = open_manifest(corpus, InspectError)
    row = find_row(corpus, manifest, row_id)
    views = [conditioned_view(row, manifest)]
    try:
        if raw:
            views.insert(0, raw_view(row, manifest, corpus))
    except PreviewError as exc:
        raise InspectError(str(exc)) from None
    png = draw_preview(row, views, out or preview_path(row["id"]))
    return Inspection(corpus_stats(corpus, manifest), row["id"], png)
