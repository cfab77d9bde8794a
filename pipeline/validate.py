"""Validate a corpus folder: recompute from the files everything the manifest claims.

Checked, each failure one line: the manifest parses and its schema version is readable; its
config is a valid build config whose hash is the listed ``config_hash``, and whose rate, length,
split rule and synthetic flag are the manifest's; every listed file is present, inside the
corpus, with its sha256, row count and schema (lead order and version in the schema metadata);
shards numbered 0 .. N-1 of N per (source, split), without gaps; no other ``.parquet`` or
``.jsonl`` lies anywhere in the folder (outside the build records in ``_build/``); the rows
themselves: ids unique and well formed, each shard's source, split, record count and ``fs``
column, records per split against the counts, the split audit's patients against the rows, every
row's split against the split rule, the normalisation on a sample of rows; the ledger's count per
reason against the counts and its ids disjoint from the corpus's; the fingerprinted input
records = kept + rejected; MEIT's jsonl holds the ids of its split's shards.

A file whose sha256 differs is reported once and not read further (it may not even parse).

:func:`validate_build` is the build's own check: the shards the build did not write were checked
against their sha256 when it planned (and in full when they were written), so only the shards it
wrote and the files it finalised are checked in full; the corpus-wide invariants (unique ids,
records per split, patients in one split, the ledger, inputs = kept + rejected, no unlisted file)
still cover every shard, from a few small columns. ``meit-corpus validate`` checks everything.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path, PurePosixPath

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from pipeline.config import BuildConfig, config_hash
from pipeline.config_file import config_error_line
from pipeline.shards import sha256_files
from pipeline.validate_rows import (
    check_audit,
    check_normalisation,
    check_rows,
    check_splits,
    count,
    expected_split_mode,
    read_rows,
)
from schemas import (
    CANONICAL_LEADS,
    MANIFEST,
    PROGRESS_DIR,
    FileEntry,
    Manifest,
    check_schema_version,
    corpus_schema,
    parse_shard_path,
    read_manifest,
    rejection_schema,
)


def validate_build(corpus: Path) -> list[str]:
    """:func:`validate_corpus` as a build's last step: only what this build wrote in full."""
    return validate_corpus(corpus, written_only=True)


def untouched_shards(manifest: Manifest) -> set[str]:
    """Listed shards that the build which wrote ``manifest`` did not write (its last refresh
    record's ``written``): that build's plan checked their sha256 against their completion
    records before keeping them."""
    if not manifest.refreshes:
        return set()
    return {f.path for f in manifest.files} - set(manifest.refreshes[-1].written)


def validate_corpus(corpus: Path, written_only: bool = False) -> list[str]:
    """Problems found in a corpus directory (empty list = valid).

    ``written_only`` (a build's own check, :func:`validate_build`): the shards the last build did
    not write are trusted (not hashed, their footers and normalisation not read, their rows
    not checked one by one) and give only the columns the corpus-wide checks need.
    """
    corpus = Path(corpus)
    try:
        manifest = read_manifest(corpus)
    except FileNotFoundError:
        return [f"{MANIFEST} not found in {corpus}"]
    except ValidationError as exc:
        return [f"{MANIFEST} is not a valid manifest: {config_error_line(exc)}"]
    except (OSError, ValueError) as exc:
        return [f"{MANIFEST} is not readable: {' '.join(str(exc).split())}"]
    try:
        check_schema_version(manifest.schema_version)
    except ValueError as exc:
        return [str(exc)]
    problems = list(manifest.check_counts())
    cfg, found = check_config(manifest)
    problems += found
    trusted = untouched_shards(manifest) if written_only else set()
    verified, found = check_files(corpus, manifest, trusted)
    problems += found
    problems += numbering_problems(manifest)
    problems += unlisted_files(corpus, manifest)
    full = verified - trusted if written_only else None
    rows, read, found = read_rows(corpus, manifest.files, verified, full)
    problems += found
    # (source, split) pairs with a shard that could not be read: their totals are not checked
    # (the unreadable shard is reported already; missing rows would only repeat it).
    blind = {(f.source, f.split) for f in manifest.files if f.path not in read}
    problems += check_rows(manifest, rows, blind, full)
    problems += check_audit(manifest, rows, blind)
    if cfg is not None:
        problems += check_splits(manifest, cfg, rows, full)
        problems += check_normalisation(corpus, manifest, cfg, verified - trusted)
    problems += check_ledger(corpus, manifest, rows, verified, complete=not blind)
    problems += check_jsonl(corpus, manifest, rows, verified, blind)
    return problems


# ---------------------------------------------------------------- the manifest's own claims


def check_config(manifest: Manifest) -> tuple[BuildConfig | None, list[str]]:
    """The manifest's config as a :class:`BuildConfig` (None when invalid) and its problems."""
    problems = []
    recomputed = config_hash(manifest.config)
    if recomputed != manifest.config_hash:
        problems.append(
            f"{MANIFEST}: config_hash {manifest.config_hash[:12]} is not the hash of its config "
            f"({recomputed[:12]})"
        )
    if manifest.lead_order != list(CANONICAL_LEADS):
        problems.append(
            f"{MANIFEST}: lead_order {' '.join(manifest.lead_order)} is not "
            f"{' '.join(CANONICAL_LEADS)}"
        )
    try:
        cfg = BuildConfig.model_validate(manifest.config, context={"check_paths": False})
    except ValidationError as exc:
        return None, [*problems, f"{MANIFEST}: config is not valid: {config_error_line(exc)}"]
    if manifest.fs != cfg.signal.fs:
        problems.append(f"{MANIFEST}: fs {manifest.fs} Hz, its config says {cfg.signal.fs} Hz")
    if manifest.n_samples != cfg.signal.n_samples:
        problems.append(
            f"{MANIFEST}: n_samples {manifest.n_samples}, its config gives {cfg.signal.n_samples}"
        )
    given = set(cfg.inputs())
    for name in sorted(given ^ set(manifest.counts)):
        where = "counts only" if name in manifest.counts else "its config only"
        problems.append(f"{MANIFEST}: source {name} is in {where}")
    for name, c in sorted(manifest.counts.items()):
        if c.synthetic != cfg.synthetic:
            problems.append(
                f"{MANIFEST}: counts.{name}.synthetic is {c.synthetic}, its config says "
                f"synthetic {cfg.synthetic}"
            )
    for name, audit in sorted(manifest.splits.items()):
        expected = expected_split_mode(name, cfg, manifest)
        if expected is not None and audit.mode != expected:
            problems.append(
                f"{MANIFEST}: splits.{name}.mode is {audit.mode}, its config gives {expected}"
            )
    return cfg, problems


# ---------------------------------------------------------------- files


def inside(rel: str) -> bool:
    """True when a listed path is relative and stays inside the corpus folder."""
    p = PurePosixPath(rel)
    return not p.is_absolute() and ".." not in p.parts and "\\" not in rel


def check_files(
    corpus: Path, manifest: Manifest, trusted: set[str] = frozenset()
) -> tuple[set[str], list[str]]:
    """Listed files present, with their sha256, rows and schema: (verified paths, problems).
    A ``trusted`` shard (hashed by the build's plan) is only checked to be present and named
    after its entry."""
    problems: list[str] = []
    verified: set[str] = set()
    expected = corpus_schema(manifest.n_samples)
    shards = {f.path for f in manifest.files}
    seen: set[str] = set()
    # every listed file's sha256 at once, on all cores (the shards are most of the corpus's bytes)
    digests = sha256_files(
        corpus / e.path
        for e in manifest.listed()
        if inside(e.path) and e.path not in trusted and (corpus / e.path).is_file()
    )
    for entry in manifest.listed():
        if entry.path in seen:
            problems.append(f"{entry.path}: listed twice in the manifest")
            continue
        seen.add(entry.path)
        if not inside(entry.path):
            problems.append(f"{entry.path}: path leaves the corpus folder")
            continue
        path = corpus / entry.path
        if not path.is_file():
            problems.append(f"{entry.path}: missing")
            continue
        if entry.path in trusted:
            problems += shard_name_problems(entry)
            verified.add(entry.path)
            continue
        if digests.get(path) != entry.sha256:
            problems.append(f"{entry.path}: sha256 differs from the manifest")
            continue
        if entry.path in shards:
            problems += shard_name_problems(entry)
        found, readable = file_problems(path, entry, expected if entry.path in shards else None)
        problems += found
        if readable:
            verified.add(entry.path)
    return verified, problems


def shard_name_problems(entry: FileEntry) -> list[str]:
    """A shard's path must be ``data/<source>/<split>-NNNNN-of-NNNNN.parquet`` of its own entry
    (``datasets`` takes the split from the file name)."""
    ref = parse_shard_path(entry.path)
    if ref is None or (ref.source, ref.split) != (entry.source, entry.split):
        return [
            f"{entry.path}: name does not match its entry (source {entry.source}, "
            f"split {entry.split})"
        ]
    return []


def numbering_problems(manifest: Manifest) -> list[str]:
    """Per (source, split), the shards must be numbered 0 .. N-1 of N (no gap, one N)."""
    groups: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for entry in manifest.files:
        ref = parse_shard_path(entry.path)
        if ref is not None:
            groups[(ref.source, ref.split)].append((ref.index, ref.count))
    problems = []
    for (source, split), refs in sorted(groups.items()):
        n = len(refs)
        if sorted(refs) != [(i, n) for i in range(n)]:
            shown = ", ".join(f"{i:05d}-of-{c:05d}" for i, c in sorted(refs))
            problems.append(
                f"{source} {split}: shards are numbered {shown}, not 0 .. {n - 1} of {n}"
            )
    return problems


def text_rows(path: Path) -> int:
    """Non-empty lines of a text file (a jsonl's rows; what the manifest lists for the card)."""
    with Path(path).open(encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if line.strip())


def file_problems(path: Path, entry: FileEntry, schema: pa.Schema | None) -> tuple[list[str], bool]:
    """Row count (lines of a jsonl) and, for a shard (``schema`` given), schema and metadata;
    and whether the file can be read further."""
    if not entry.path.endswith(".parquet"):
        lines = text_rows(path)
        if lines != entry.rows:
            return [f"{entry.path}: {lines} lines, manifest says {entry.rows}"], True
        return [], True
    try:
        meta = pq.read_metadata(path)
        found = meta.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as exc:
        return [f"{entry.path}: not a readable Parquet file ({type(exc).__name__})"], False
    problems = []
    if meta.num_rows != entry.rows:
        problems.append(f"{entry.path}: {meta.num_rows} rows, manifest says {entry.rows}")
    if schema is None:
        return problems, True
    if meta.num_rows == 0:
        problems.append(f"{entry.path}: no rows (a build never lists an empty shard)")
    if not found.equals(schema, check_metadata=False):
        problems.append(f"{entry.path}: schema differs from the corpus schema")
    got = found.metadata or {}
    for key, value in (schema.metadata or {}).items():
        if got.get(key) != value:
            shown = (got.get(key) or b"absent").decode(errors="replace")
            what = f"is {shown}" if len(shown) <= 100 else "differs from the corpus schema's"
            problems.append(f"{entry.path}: schema metadata {key.decode()} {what}")
    return problems, True


def unlisted_files(corpus: Path, manifest: Manifest) -> list[str]:
    """Parquet and jsonl files anywhere in the corpus folder (outside the build records in
    ``_build/``) that the manifest does not list: a glob over the folder would read them."""
    listed = {f.path for f in manifest.listed()}
    on_disk = [p for pattern in ("*.parquet", "*.jsonl") for p in corpus.rglob(pattern)]
    found = sorted(p.relative_to(corpus).as_posix() for p in on_disk if p.is_file())
    return [
        f"{rel}: not listed in the manifest"
        for rel in found
        if rel not in listed and PurePosixPath(rel).parts[0] != PROGRESS_DIR
    ]


# ---------------------------------------------------------------- ledger, fingerprints, jsonl


def check_ledger(
    corpus: Path, manifest: Manifest, rows: pl.DataFrame, verified: set[str], complete: bool
) -> list[str]:
    """The ledger's reasons against the counts, its ids disjoint from the corpus's, and (when
    every shard was read, ``complete``) the fingerprinted inputs equal to kept + rejected."""
    entry = manifest.rejections
    if entry.path not in verified:
        return []
    try:
        table = pq.read_table(corpus / entry.path)
    except (OSError, pa.ArrowException) as exc:
        return [f"{entry.path}: rows not readable ({type(exc).__name__})"]
    if not table.schema.equals(rejection_schema(), check_metadata=False):
        return [f"{entry.path}: schema differs from the ledger schema"]
    ledger = pl.from_arrow(table)
    problems = []
    found = ledger.group_by("source", "reason").len()
    counted = {(r["source"], r["reason"]): r["len"] for r in found.iter_rows(named=True)}
    said = {(n, r): k for n, c in manifest.counts.items() for r, k in c.rejected.items()}
    for key in sorted(set(counted) | set(said)):
        if counted.get(key, 0) != said.get(key, 0):
            problems.append(
                f"{entry.path}: {count(counted.get(key, 0), key[0] + ' row')} "
                f"with reason {key[1]}, "
                f"counts say {said.get(key, 0)}"
            )
    # Joins on the columns, no Python set of every id (800k records).
    pair = ["source", "record_id"]
    kept = rows.select(pair).unique()
    # A repeated metadata row is rejected under its own id (``<id>#row<N>``), never a kept one.
    keys = ledger.select(pair)
    both = keys.unique().join(kept, on=pair, how="semi").sort(pair)
    if both.height:
        problems.append(
            f"{entry.path}: {count(both.height, 'rejected record')} also in the corpus "
            f"(first: {'/'.join(both.row(0))})"
        )
    twice = keys.group_by(pair).len().filter(pl.col("len") > 1).sort(pair)
    if twice.height:
        problems.append(
            f"{entry.path}: {count(twice.height, 'record')} rejected twice "
            f"(first: {'/'.join(twice.select(pair).row(0))})"
        )
    if complete:
        problems += check_fingerprints(corpus, manifest, pl.concat([kept, keys]), verified)
    return problems


def check_fingerprints(
    corpus: Path, manifest: Manifest, accounted: pl.DataFrame, verified: set[str]
) -> list[str]:
    """Every input record the build fingerprinted is kept or rejected (``accounted``: source and
    record_id columns), and nothing else is."""
    entry = manifest.fingerprints
    if entry is None or entry.path not in verified:
        return []
    try:
        seen = pl.from_arrow(pq.read_table(corpus / entry.path, columns=["id"]))
    except (OSError, pa.ArrowException, KeyError) as exc:
        return [f"{entry.path}: ids not readable ({type(exc).__name__})"]
    seen = seen.select(pl.col("id").cast(pl.String)).unique()
    ids = accounted.select(id=pl.concat_str("source", pl.lit("/"), "record_id")).unique()
    problems = []
    lost = seen.join(ids, on="id", how="anti").sort("id")
    if lost.height:
        problems.append(
            f"{count(lost.height, 'input record')} neither in a shard nor in the ledger "
            f"(first: {lost['id'][0]})"
        )
    extra = ids.join(seen, on="id", how="anti").sort("id")
    if extra.height:
        problems.append(
            f"{count(extra.height, 'record')} in the shards or the ledger not among the inputs "
            f"(first: {extra['id'][0]})"
        )
    return problems


def check_jsonl(
    corpus: Path,
    manifest: Manifest,
    rows: pl.DataFrame,
    verified: set[str],
    blind: set[tuple[str | None, str | None]],
) -> list[str]:
    """MEIT's jsonl of a (source, split) holds exactly the ids of the shards listed for it."""
    problems = []
    for entry in manifest.extra_files:
        pair = (entry.source, entry.split)
        if entry.path not in verified or not entry.path.endswith(".jsonl") or pair in blind:
            continue
        ids = []
        with (corpus / entry.path).open(encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    ids.append(json.loads(line)["id"])
                except (ValueError, KeyError, TypeError):
                    problems.append(f"{entry.path}: line {n} is not a MEIT jsonl record")
                    break
        shards = [f.path for f in manifest.files if (f.source, f.split) == pair]
        want = rows.filter(pl.col("file").is_in(shards)).select("id").unique()
        have = pl.DataFrame({"id": ids}, schema={"id": pl.String}).unique()
        missing = want.join(have, on="id", how="anti").height
        extra = have.join(want, on="id", how="anti").height
        if missing or extra:
            problems.append(
                f"{entry.path}: lacks {missing} ids of the {entry.source} {entry.split} shards "
                f"and holds {extra} ids that are not in them"
            )
    return problems
