"""Validation of a corpus's rows, recomputed from the shards: ids, sources, splits by rule, ``fs``,
counts, and the normalisation on a sample of each shard (see :mod:`pipeline.validate`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import BuildConfig
from pipeline.sources import registry
from pipeline.splits import fold_split, hash_split, split_mode
from schemas import MANIFEST, SPLITS, FileEntry, Manifest, decode_ecg

ROW_COLUMNS = [
    "id",
    "source",
    "record_id",
    "example",
    "task",
    "patient_id",
    "split",
    "fs",
    "strat_fold",
]
NORMALISATION_SAMPLE = 8
"""Rows per shard whose ``ecg`` is checked against ``signal.normalise`` (decoding is the cost)."""


def expected_split_mode(source: str, cfg: BuildConfig, manifest: Manifest) -> str | None:
    """How ``source`` is split under ``cfg`` (None for an unknown source without an audit)."""
    known = registry()
    if source in known:
        return split_mode(known[source].split_rule, cfg.split)
    audit = manifest.splits.get(source)
    return audit.mode if audit is not None else None


KEY_COLUMNS = ["id", "source", "record_id", "patient_id", "split"]
"""The columns read from a shard that is not checked in full: what the corpus-wide invariants
(unique ids, records per split, patients across splits, ledger and inputs) need."""


ROW_SCHEMA = {c: pl.String for c in [*ROW_COLUMNS, "file"]} | {
    "example": pl.Int32,
    "fs": pl.Int32,
    "strat_fold": pl.Int32,
}
FILE_NO = "__meit_file_no"


def read_rows(
    corpus: Path, files: Iterable[FileEntry], verified: set[str], full: set[str] | None = None
) -> tuple[pl.DataFrame, set[str], list[str]]:
    """The small columns of every verified shard's rows (the shard's path in ``file``, rows in
    the order of ``files``), the shards read, and the problems reading them. Shards not in
    ``full`` (default: all) give only :data:`KEY_COLUMNS`; their other columns are null.

    Each group of shards is one polars scan (its files read in parallel; 600 shards one by one
    took ~1 s); a group with a file that does not read is read file by file to name it."""
    entries = [e for e in files if e.path in verified]
    frames, read, problems = [], set(), []
    for columns in (ROW_COLUMNS, KEY_COLUMNS):
        group = [
            (n, e)
            for n, e in enumerate(entries)
            if (columns is ROW_COLUMNS) == (full is None or e.path in full)
        ]
        if not group:
            continue
        try:
            frames.append(scan_rows(corpus, group, columns))
            read.update(e.path for _, e in group)
            continue
        except (OSError, pl.exceptions.PolarsError, pa.ArrowException):
            pass
        for n, entry in group:
            try:
                table = pq.read_table(corpus / entry.path, columns=columns)
            except (OSError, pa.ArrowException) as exc:
                problems.append(f"{entry.path}: rows not readable ({type(exc).__name__})")
                continue
            read.add(entry.path)
            frames.append(
                pl.from_arrow(table).with_columns(
                    file=pl.lit(entry.path), **{FILE_NO: pl.lit(n, pl.Int64)}
                )
            )
    schema = ROW_SCHEMA | {FILE_NO: pl.Int64}
    # an empty shard's columns come back as nulls; a partly read shard's others are null
    frames = [
        f.with_columns(pl.lit(None).alias(c) for c in schema if c not in f.columns) for f in frames
    ]
    frames = [f.select(list(schema)).cast(schema) for f in frames]
    rows = pl.concat([pl.DataFrame(schema=schema), *frames])
    if len(frames) > 1:  # in the order of ``files``
        rows = rows.sort(FILE_NO, maintain_order=True)
    return rows.drop(FILE_NO), read, problems


def scan_rows(corpus: Path, group: list[tuple[int, FileEntry]], columns: list[str]) -> pl.DataFrame:
    """``columns`` of the shards of ``group`` ((position, entry) pairs) in one scan, with the
    shard's path (``file``) and position."""
    where = {str(corpus / e.path): (e.path, n) for n, e in group}
    names = pl.DataFrame(
        {
            "__meit_location": list(where),
            "file": [path for path, _ in where.values()],
            FILE_NO: [n for _, n in where.values()],
        },
        schema={"__meit_location": pl.String, "file": pl.String, FILE_NO: pl.Int64},
    )
    frame = (
        pl.scan_parquet(list(where), include_file_paths="__meit_location", hive_partitioning=False)
        .select(*columns, "__meit_location")
        .collect()
    )
    # a join, not replace_strict with a dict: that took ~60 MiB more at 100k rows
    return frame.join(names, on="__meit_location", how="left", maintain_order="left").drop(
        "__meit_location"
    )


def first(frame: pl.DataFrame, column: str = "id") -> str:
    return str(frame[column][0])


def count(n: int, noun: str) -> str:
    """``1 row``, ``2 rows``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def in_full(rows: pl.DataFrame, full: set[str] | None) -> pl.DataFrame:
    """The rows of the shards checked in full (``full``; None: every shard)."""
    return rows if full is None else rows.filter(pl.col("file").is_in(sorted(full)))


def check_rows(
    manifest: Manifest,
    rows: pl.DataFrame,
    blind: set[tuple[str | None, str | None]],
    full: set[str] | None = None,
) -> list[str]:
    """Per shard checked in full (``full``, default all): source, split, records, fs and
    well-formed ids (the others: their row count); over the corpus: unique ids and records per
    (source, split) against the counts (except the ``blind`` pairs)."""
    problems = []
    entries = {f.path: f for f in manifest.files}
    if full is not None:
        held = rows.filter(~pl.col("file").is_in(sorted(full))).group_by("file").len()
        for path, n in held.sort("file").iter_rows():
            if n != entries[path].rows:
                problems.append(f"{path}: {n} rows, manifest says {entries[path].rows}")
    checked = in_full(rows, full)
    for path, part in checked.group_by("file", maintain_order=True):
        entry = entries[path[0]]
        for column, want in (("source", entry.source), ("split", entry.split)):
            wrong = part.filter(pl.col(column) != want)
            if wrong.height:
                problems.append(
                    f"{entry.path}: {count(wrong.height, 'row')} with {column} "
                    f"{first(wrong, column)} "
                    f"(first: {first(wrong)}), the manifest lists the shard as {want}"
                )
        records = part["record_id"].n_unique()
        if entry.records is not None and records != entry.records:
            problems.append(f"{entry.path}: {records} records, manifest says {entry.records}")
        wrong = part.filter(pl.col("fs") != manifest.fs)
        if wrong.height:
            problems.append(
                f"{entry.path}: {count(wrong.height, 'row')} with fs {first(wrong, 'fs')}, "
                f"manifest says {manifest.fs}"
            )
    expected_id = (
        pl.when(pl.col("example") == 0)
        .then(pl.concat_str("source", pl.lit("/"), "record_id"))
        .otherwise(pl.concat_str("source", pl.lit("/"), "record_id", pl.lit("/"), "task"))
    )
    wrong = checked.filter(pl.col("id") != expected_id)
    if wrong.height:
        problems.append(
            f"{count(wrong.height, 'row id')} not of the form <source>/<record_id>[/<task>] "
            f"(first: {first(wrong)})"
        )
    repeated = rows.group_by("id").agg(pl.len().alias("n"), pl.col("file")).filter(pl.col("n") > 1)
    if repeated.height:
        one = repeated.sort("id").row(0, named=True)
        problems.append(
            f"{count(repeated.height, 'id')} not unique (first: {one['id']}, {one['n']} rows in "
            f"{', '.join(sorted(set(one['file'])))})"
        )
    per_split = rows.group_by("source", "split").agg(pl.col("record_id").n_unique().alias("n"))
    held = {(r["source"], r["split"]): r["n"] for r in per_split.iter_rows(named=True)}
    for name, c in sorted(manifest.counts.items()):
        for split in sorted(set(c.kept) | {s for (src, s) in held if src == name}):
            n, said = held.get((name, split), 0), c.kept.get(split, 0)
            if n != said and (name, split) not in blind:
                problems.append(f"{name}/{split}: shards hold {n} records, counts say {said}")
    return problems


def expected_splits(mode: str, cfg: BuildConfig, frame: pl.DataFrame) -> pl.Series:
    """The split the rule ``mode`` gives each row of ``frame`` (computed once per distinct key,
    then joined: no Python list of every row)."""
    s = cfg.split
    if mode == "folds":
        column = "strat_fold"
        rule = lambda k: fold_split(k, s.ptbxl_folds)  # noqa: E731
    else:
        column = "record_id" if mode == "meit" else "patient_id"
        fractions = s.meit_fractions if mode == "meit" else s.hash_fractions
        rule = lambda k: hash_split(k, fractions, s.seed)  # noqa: E731
    keys = frame.select(column).unique()
    keys = keys.with_columns(
        expected=pl.Series([rule(k) for k in keys[column].to_list()], dtype=pl.String)
    )
    joined = frame.select(column).join(
        keys, on=column, how="left", nulls_equal=True, maintain_order="left"
    )
    return joined["expected"]


def check_splits(
    manifest: Manifest, cfg: BuildConfig, rows: pl.DataFrame, full: set[str] | None = None
) -> list[str]:
    """Every row's split label (of the shards checked in full, ``full``, default all) against its
    source's split rule under the manifest's config, and no patient in two splits (over every
    row) unless the rule is MEIT's record-level one."""
    problems = []
    for (name,), part in rows.group_by("source", maintain_order=True):
        mode = expected_split_mode(name, cfg, manifest)
        if mode is None:
            continue
        checked = in_full(part, full)
        checked = checked.with_columns(expected=expected_splits(mode, cfg, checked))
        wrong = checked.filter(pl.col("split") != pl.col("expected").fill_null("none"))
        if wrong.height:
            row = wrong.row(0, named=True)
            problems.append(
                f"{name}: {count(wrong.height, 'row')} with a split the {mode} rule does not "
                "give (first: "
                f"{row['id']} is {row['split']}, the rule gives {row['expected'] or 'none'})"
            )
        if mode != "meit":
            leaking = part.group_by("patient_id").agg(pl.col("split").n_unique().alias("n"))
            n = int((leaking["n"] > 1).sum())
            if n:
                problems.append(f"{name}: {count(n, 'patient')} in more than one split")
    return problems


def check_audit(
    manifest: Manifest, rows: pl.DataFrame, blind: set[tuple[str | None, str | None]]
) -> list[str]:
    """The split audit's patients per split are the distinct patients of the rows (kept records
    only), except for a source with an unread shard."""
    problems = []
    unread = {source for source, _ in blind}
    for name, audit in sorted(manifest.splits.items()):
        if name in unread:
            continue
        part = rows.filter(pl.col("source") == name)
        found = {s: part.filter(pl.col("split") == s)["patient_id"].n_unique() for s in SPLITS}
        said = {s: audit.patients.get(s, 0) for s in SPLITS}
        if found != said:
            shown = ", ".join(f"{s} {n}" for s, n in found.items())
            problems.append(f"{MANIFEST}: splits.{name}.patients are not the rows' ({shown})")
    return problems


def looks_zscored(ecg: np.ndarray) -> np.ndarray:
    """Per record: every lead has mean ~0 and standard deviation ~1 (or is constant 0)."""
    x = ecg.astype(np.float64)
    mean, std = x.mean(axis=-1), x.std(axis=-1)
    ok = (np.abs(mean) < 0.02) & ((np.abs(std - 1) < 0.02) | (np.abs(x).max(axis=-1) == 0))
    return ok.all(axis=-1)


def looks_min_max(ecg: np.ndarray) -> np.ndarray:
    """Per record: values span exactly [0, 1] over all leads (MEIT's min-max), or are all 0."""
    x = ecg.astype(np.float64).reshape(len(ecg), -1)
    lo, hi = x.min(axis=-1), x.max(axis=-1)
    return (lo == 0) & ((hi == 1) | (hi == 0))


def check_normalisation(
    corpus: Path, manifest: Manifest, cfg: BuildConfig, verified: set[str]
) -> list[str]:
    """The first rows of each shard are normalised as ``signal.normalise`` says: z-scored leads
    for ``zscore``, [0, 1] records for ``meit``, neither (on every sampled row) for ``none``."""
    mode = cfg.signal.normalise
    problems = []
    for entry in manifest.files:
        if entry.path not in verified:
            continue
        try:
            batch = next(
                pq.ParquetFile(corpus / entry.path).iter_batches(
                    batch_size=NORMALISATION_SAMPLE, columns=["id", "ecg"]
                ),
                None,
            )
        except (OSError, pa.ArrowException):
            continue  # reported by read_rows
        if batch is None or batch.num_rows == 0:
            continue
        ecg = decode_ecg(batch.column("ecg"))
        z, m = looks_zscored(ecg), looks_min_max(ecg)
        ok = {"zscore": z, "meit": m}.get(mode)
        if ok is None:  # "none": raw millivolts are never all z-scored or all in [0, 1]
            bad = z.all() or m.all()
            ok = np.full(len(ecg), not bad)
        if not ok.all():
            idx = int(np.flatnonzero(~ok)[0])
            problems.append(
                f"{entry.path}: rows are not normalised as signal.normalise {mode} says "
                f"(first: {batch.column('id')[idx].as_py()})"
            )
    return problems
