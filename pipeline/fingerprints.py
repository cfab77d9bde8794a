"""Fingerprints of a build's inputs, and what changed since the last build.

A record's fingerprint is a hash of its metadata row and of every file it reads, in one of three
modes (:func:`fingerprint_mode`): the digests PhysioNet's ``SHA256SUMS.txt`` lists, the files'
identity without reading them (size and mtime; an fsspec store's ETag), or their bytes. The plan
(:mod:`pipeline.plan`) puts them in each unit's key, so a unit whose inputs are unchanged keeps its
shard; the last build's are stored in the corpus and compared with :func:`diff_fingerprints`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import xxhash

from pipeline.bounded_io import resolve_record
from pipeline.checksums import SUMS_KEY, attach_sums, listed_digests, read_sums
from pipeline.errors import RecordRejected
from pipeline.storage import Location, as_location, is_url
from pipeline.units import SourceInput
from pipeline.wfdb_io import RecordFiles, open_record, record_contents
from schemas import Manifest, sha256_file

FINGERPRINT_CHUNK = 500  # records per fingerprinting task
FINGERPRINT_WAVE = 32  # fingerprinting tasks given to the executor at once
MAIN_PROCESS_RECORDS = 150_000
"""A source fingerprinted from its ``SHA256SUMS.txt`` (no file read, two ``stat`` calls and a
hash per record, ~10-17 us) is done in the main process up to this many records: starting the
pool's workers costs ~1.5 s, what ~100-200k such records cost there (measured at 100k: 1.2-1.7 s
in the main process, 2.0 s through a 2-worker pool). A no-change refresh then starts no worker."""
IDENTITY_KEYS = ("ETag", "etag", "mtime", "LastModified", "last_modified")  # fsspec info() keys


def with_expected_digests(records: pl.DataFrame, root: Location) -> pl.DataFrame:
    """``records`` with a ``_sha256`` column (JSON, relative path -> sha256) when the root holds
    PhysioNet's ``SHA256SUMS.txt`` (parsed once per plan); unchanged otherwise.

    The worker checks the bytes it reads against it; the fingerprint uses it instead of the bytes.
    """
    sums = read_sums(root, lazy=True) if "path" in records.columns else None
    return records if sums is None else attach_sums(records, sums)


def fingerprint_mode(records: pl.DataFrame, setting: str = "auto") -> str:
    """How a source's records are fingerprinted: ``content`` (every byte, ``fingerprint:
    content``), ``sha256sums`` (the digests its ``SHA256SUMS.txt`` lists) or ``stat`` (the data
    files' size and mtime; an fsspec store's size and ETag)."""
    if setting == "content":
        return "content"
    return "sha256sums" if SUMS_KEY in records.columns else "stat"


def _relative(root: Location, location: Location) -> str:
    if is_url(location):
        return str(location)[len(str(root).rstrip("/")) + 1 :]
    return Path(location).relative_to(root).as_posix()


def file_identity(location: Location) -> str:
    """A data file's identity without reading it: local size and mtime_ns; an fsspec store's
    size and ETag (or its modification time when it gives no ETag)."""
    if not is_url(location):
        st = os.stat(location)
        return f"{st.st_size}:{st.st_mtime_ns}"
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(location))
    info = fs.info(path)
    tag = next((info[k] for k in IDENTITY_KEYS if info.get(k)), "")
    return f"{info.get('size')}:{tag}"


def _record_locations(files: RecordFiles) -> list[tuple[Location, bytes | None]]:
    """Every file a record reads: headers with the bytes already read, data files without."""
    header = (Path if not is_url(files.record) else str)(f"{files.record}.hea")
    out: list[tuple[Location, bytes | None]] = [(header, files.header_bytes)]
    out += [(d.location, None) for d in files.data]
    for seg in files.segments:
        if seg is not None:
            out += _record_locations(seg)
    return out


def _identity_bytes(root: Location, files: RecordFiles, listed: Mapping[str, str]) -> bytes:
    """The record's files as listed sha256 digests when every one is listed, else as header bytes
    and data files' identities (:func:`file_identity`). No data byte is read."""
    located = [(_relative(root, loc), loc, raw) for loc, raw in _record_locations(files)]
    if listed and all(rel in listed for rel, _, _ in located):
        return b"".join(f"{rel}\0sha256:{listed[rel]}\0".encode() for rel, _, _ in located)
    parts = []
    for rel, loc, raw in located:
        seen = raw if raw is not None else f"stat:{file_identity(loc)}".encode()
        parts.append(rel.encode() + b"\0" + seen + b"\0")
    return b"".join(parts)


def listed_identity(root: Location, row: Mapping) -> bytes | None:
    """A record's identity bytes from its ``SHA256SUMS.txt`` lines alone, without reading its
    header: when the lines are exactly ``<path>.hea`` and ``<path>.dat`` (the one layout of
    PhysioNet's PTB-XL and MIMIC-IV-ECG) and both are regular local files, the bytes
    :func:`_identity_bytes` gives for a header that names that one data file. None otherwise
    (the header is read and followed). Two ``stat`` calls instead of a header read per record.

    What it assumes: such a header names ``<path>.dat`` and nothing else. Its own listed digest
    pins its content, so a header edited to name another file changes the fingerprint; only a
    header that named another file from the start would have that file's changes unseen.
    """
    path = row.get("path") or ""
    names = (f"{path}.hea", f"{path}.dat")
    listed = listed_digests(row.get(SUMS_KEY), path)
    if set(listed) != set(names) or is_url(root) or not plain_relative(path):
        return None
    record = os.path.join(root, path)  # what resolve_record gives a plain relative path
    try:
        modes = [os.stat(f"{record}{suffix}").st_mode for suffix in (".hea", ".dat")]
    except OSError:
        return None
    if not all(stat.S_ISREG(m) for m in modes):
        return None
    return b"".join(f"{rel}\0sha256:{listed[rel]}\0".encode() for rel in names)


def plain_relative(path: str) -> bool:
    """True for a relative POSIX path already in normal form, with no ``..``: one that
    :func:`pipeline.bounded_io.resolve_record` accepts and ``PurePosixPath`` leaves as it is
    (string checks: pathlib was most of the fingerprinting's time at 100k records)."""
    return all(part not in ("", ".", "..") for part in path.split("/"))


def record_fingerprint(root: Location, row: Mapping, mode: str = "content") -> str:
    """Hash of a record's metadata row and every file the record reads.

    ``mode`` (:func:`fingerprint_mode`): ``content`` hashes the files' bytes; ``sha256sums``
    hashes the digests the row's ``_sha256`` lists for them, falling back to ``stat`` for a
    record with a file not listed; ``stat`` hashes the header's bytes and each data file's size
    and mtime (:func:`file_identity`). Only ``content`` reads data files.

    The files are those :func:`pipeline.wfdb_io.open_record` checks (the header, the data files
    it names, and each segment's header and data files), read with the same bounded,
    regular-file-only reads. A record the checks reject hashes the rejection instead of the
    files' bytes: its outcome changes only when the rejection does (the header and the detail,
    which names the file and its size, are in it).

    xxh3-128, not sha256: a change detector, not a security boundary, and ~10x cheaper per byte
    (every input byte is hashed on each plan; measured 67 us vs ~7 us per 120 kB record).
    """
    meta = {k: v for k, v in row.items() if not k.startswith("_")}
    h = xxhash.xxh3_128(json.dumps(meta, sort_keys=True, default=str).encode())
    quick = listed_identity(root, row) if mode == "sha256sums" else None
    if quick is not None:
        h.update(quick)
        return h.hexdigest()
    try:
        files = open_record(resolve_record(as_location(root), row.get("path") or ""))
        if mode != "content":
            listed = (
                listed_digests(row.get(SUMS_KEY), row.get("path")) if mode == "sha256sums" else {}
            )
            h.update(_identity_bytes(as_location(root), files, listed))
            return h.hexdigest()
        for file_name, data in record_contents(files):
            h.update(file_name.encode() + b"\0" + data + b"\0")
    except RecordRejected as exc:
        h.update(f"<rejected {exc.reason}: {exc.detail}>".encode())
    return h.hexdigest()


def rejection_fingerprint(source: str, record_id: str, reason: str, detail: str) -> str:
    """Fingerprint of a record rejected on its metadata (what it contributes to the corpus)."""
    payload = json.dumps(["rejected", source, record_id, reason, detail])
    return hashlib.sha256(payload.encode()).hexdigest()


def fingerprint_rows(root: str, rows: Sequence[Mapping], mode: str = "content") -> list[str]:
    """Fingerprints of a chunk of one source's records (a unit of work for a process pool)."""
    return [record_fingerprint(root, row, mode) for row in rows]


def in_main_process(src: SourceInput, setting: str) -> bool:
    """True when ``src`` is fingerprinted in the main process rather than on the executor: its
    mode reads no file (``sha256sums``) and it has at most :data:`MAIN_PROCESS_RECORDS` records."""
    return (
        fingerprint_mode(src.records, setting) == "sha256sums"
        and src.records.height <= MAIN_PROCESS_RECORDS
    )


def fingerprint_chunks(
    sources: Sequence[SourceInput], setting: str
) -> Iterator[tuple[str, str, str, list[dict]]]:
    """(source name, root, mode, :data:`FINGERPRINT_CHUNK` records as dicts) over every source.

    Dicts, not a frame slice: a slice of a list column pickles its whole parent's buffers (a
    500-record slice of 800k MIMIC records was ~130 MB on the wire; its dicts are ~0.3 MB)."""
    for src in sources:
        mode = fingerprint_mode(src.records, setting)
        for rows in src.records.iter_slices(FINGERPRINT_CHUNK):
            yield src.name, src.root, mode, rows.to_dicts()


def input_fingerprints(
    sources: Sequence[SourceInput], executor: Executor | None = None, setting: str = "content"
) -> dict[str, str]:
    """Row id (``<source>/<record_id>``) -> fingerprint, for every record seen by discovery.

    ``setting`` is the config's ``fingerprint`` (``auto`` or ``content``; see
    :func:`fingerprint_mode`). Fingerprinting opens every record (and in ``content`` mode reads
    every byte), so it runs in chunks on ``executor`` (the build's pool or cluster) when given,
    :data:`FINGERPRINT_WAVE` chunks per ``map`` call: an executor's ``map`` submits all it is
    given at once, so only a wave of rows is ever queued (800k records' rows as dicts were ~1 GB).
    A source that reads no file to fingerprint runs in this process (:func:`in_main_process`).
    """
    out: dict[str, str] = {}
    for src in sources:
        for r in src.rejections:
            out[f"{src.name}/{r.record_id}"] = rejection_fingerprint(
                src.name, r.record_id, r.reason, r.detail
            )
    local = [executor is None or in_main_process(s, setting) for s in sources]
    here = [s for s, x in zip(sources, local) if x]
    pooled = [s for s, x in zip(sources, local) if not x]
    for group, mapper in ((here, map), (pooled, getattr(executor, "map", map))):
        chunks = fingerprint_chunks(group, setting)
        while wave := list(itertools.islice(chunks, FINGERPRINT_WAVE)):
            names, roots, modes, frames = zip(*wave)
            for name, rows, prints in zip(
                names, frames, mapper(fingerprint_rows, roots, frames, modes)
            ):
                out.update(zip((f"{name}/{row['record_id']}" for row in rows), prints))
    return {k: out[k] for k in sorted(out)}  # not sorted(items()): 800k tuples


def fingerprint_table(fingerprints: Mapping[str, str]) -> pa.Table:
    """The fingerprints as a table sorted by id."""
    ids = sorted(fingerprints)
    return pa.table(
        {"id": ids, "fingerprint": [fingerprints[i] for i in ids]},
        schema=pa.schema([("id", pa.string()), ("fingerprint", pa.string())]),
    )


def stored_fingerprints(out: Path, manifest: Manifest | None) -> pl.DataFrame | None:
    """The fingerprints the last build stored as a table (id, fingerprint), or None when it
    stored none (or they are damaged)."""
    if manifest is None or manifest.fingerprints is None:
        return None
    path = Path(out) / manifest.fingerprints.path
    if not path.is_file() or sha256_file(path) != manifest.fingerprints.sha256:
        return None
    return pl.read_parquet(path, columns=["id", "fingerprint"])


def read_fingerprints(out: Path, manifest: Manifest | None) -> dict[str, str] | None:
    """The fingerprints the last build stored, or None when it stored none (or they are damaged)."""
    table = stored_fingerprints(out, manifest)
    return None if table is None else dict(zip(table["id"], table["fingerprint"]))


# ---------------------------------------------------------------- changes


@dataclass(frozen=True)
class Changes:
    """Records added, changed and removed since the last build (row ids, sorted)."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def diff_fingerprints(
    old: Mapping[str, str] | pl.DataFrame | None, new: Mapping[str, str]
) -> Changes:
    """What changed from ``old`` (a mapping, or :func:`stored_fingerprints`' table) to ``new``
    (no ``old``: everything is added). Compared as tables: at 800k records two dicts and their
    key sets were ~0.4 GB."""
    if old is None or not len(old):
        return Changes(added=tuple(sorted(new)))
    schema = {"id": pl.String, "fingerprint": pl.String}

    def table(prints: Mapping[str, str]) -> pl.DataFrame:
        return pl.DataFrame([list(prints), list(prints.values())], schema, orient="col")

    then = old if isinstance(old, pl.DataFrame) else table(old)
    now = table(new)

    def ids(frame: pl.DataFrame) -> tuple[str, ...]:
        return tuple(frame.get_column("id").sort().to_list())

    both = now.join(then, on="id", how="inner", suffix="_old")
    return Changes(
        added=ids(now.join(then, on="id", how="anti")),
        changed=ids(both.filter(pl.col("fingerprint") != pl.col("fingerprint_old"))),
        removed=ids(then.join(now, on="id", how="anti")),
    )
