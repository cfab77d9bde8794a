"""Fingerprint modes (SHA256SUMS.txt digests, stat, content), the worker's sha256 check, and the
proof that a build reads each data file once and a no-change refresh reads none.

Builds run with one worker (in this process), so every data byte read goes through
:func:`pipeline.wfdb_io.read_regular`, which the tests count.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections import Counter
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import pipeline.fingerprints as fingerprinting
import pipeline.wfdb_io as wfdb_io
from pipeline.build import build
from pipeline.config import BuildConfig
from pipeline.fingerprints import record_fingerprint
from schemas import REJECTIONS, read_manifest
from tests.pipeline.test_checksums import flip_byte, write_sums
from tests.pipeline.test_corpus import rows_by_id
from tests.pipeline.test_storage import QuietHandler

SHARDS = 16  # most of the sample's records then sit alone in their shard
DATA = "records500/06000/06004_hr.dat"
ROW = {"record_id": "6004", "path": "records500/06000/06004_hr"}
KEPT = {f"ptbxl/{i}" for i in range(6000, 6009)} - {"ptbxl/6003"}  # 6003 is not in the sample


def config(root: Path, out: Path, **extra) -> BuildConfig:
    return BuildConfig(ptbxl=root, out=out, workers=1, shards_per_split=SHARDS, **extra)


@pytest.fixture
def sample(ptbxl_sample: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_sample, root)
    return root


@pytest.fixture
def data_reads(monkeypatch) -> Counter:
    """Data-file name -> times its bytes were read (headers are not counted)."""
    reads: Counter = Counter()
    real = wfdb_io.read_regular

    def counting(location, limit):
        if str(location).endswith(".dat"):
            reads[Path(location).name] += 1
        return real(location, limit)

    monkeypatch.setattr(wfdb_io, "read_regular", counting)
    return reads


def rewrite_keeping_stat(path: Path, edit) -> None:
    """Change a file's bytes but keep its size and mtime (what only a content hash sees)."""
    st = path.stat()
    edit(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("with_sums", [False, True], ids=["stat", "sha256sums"])
def test_build_reads_each_data_file_once_and_a_no_change_refresh_none(
    sample, tmp_path, data_reads, with_sums
):
    if with_sums:
        write_sums(sample)
    cfg = config(sample, tmp_path / "corpus")
    first = build(cfg, "full")
    assert set(rows_by_id(cfg.out)) >= KEPT
    mode = "sha256sums" if with_sums else "stat"
    assert read_manifest(cfg.out).fingerprint_modes == {"ptbxl": mode}
    dats = {p.name for p in (sample / "records500/06000").glob("*.dat")}
    assert data_reads == Counter(dict.fromkeys(dats, 1))  # every data file, once
    data_reads.clear()
    again = build(cfg, "refresh")
    assert again.plan.nothing_to_do and data_reads == Counter()
    assert again.plan.fingerprints == first.plan.fingerprints


def test_stat_mode_sees_a_touch_and_rewrites_one_shard(sample, tmp_path, data_reads):
    cfg = config(sample, tmp_path / "corpus")
    build(cfg, "full")
    before = record_fingerprint(sample, ROW, "stat")
    st = (sample / DATA).stat()
    os.utime(sample / DATA, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert record_fingerprint(sample, ROW, "stat") != before
    data_reads.clear()
    again = build(cfg, "refresh")
    assert again.plan.changes.changed == ("ptbxl/6004",)
    assert len(again.written) == 1 and data_reads["06004_hr.dat"] == 1
    assert max(data_reads.values()) == 1


def test_content_mode_sees_bytes_behind_an_unchanged_stat(sample, tmp_path):
    content = config(sample, tmp_path / "content", fingerprint="content")
    stat = config(sample, tmp_path / "stat")
    build(content, "full")
    build(stat, "full")
    assert read_manifest(content.out).fingerprint_modes == {"ptbxl": "content"}
    rewrite_keeping_stat(sample / DATA, flip_byte)
    assert build(content, "refresh").plan.changes.changed == ("ptbxl/6004",)
    # auto (stat, as there is no SHA256SUMS.txt) cannot see it: rsync's trade-off.
    assert build(stat, "refresh").plan.nothing_to_do


def listed(sums: dict[str, str]) -> str:
    """A row's ``_sha256`` (SHA256SUMS.txt's lines) for the given files."""
    return "\n".join(f"{d}  {rel.removeprefix(ROW['path'])}" for rel, d in sorted(sums.items()))


def test_sums_fingerprint_uses_listed_digests_and_falls_back_to_stat(sample):
    sums = {k: v for k, v in write_sums(sample).items() if k.startswith(ROW["path"])}
    base = record_fingerprint(sample, {**ROW, "_sha256": listed(sums)}, "sha256sums")
    (sample / DATA).touch()  # a new mtime: the listed digests still say the same
    assert record_fingerprint(sample, {**ROW, "_sha256": listed(sums)}, "sha256sums") == base
    other = listed({**sums, DATA: "0" * 64})
    assert record_fingerprint(sample, {**ROW, "_sha256": other}, "sha256sums") != base
    no_data = listed({k: v for k, v in sums.items() if k != DATA})
    fallback = record_fingerprint(sample, {**ROW, "_sha256": no_data}, "sha256sums")
    assert fallback == record_fingerprint(sample, ROW, "stat") != base


def test_sums_fingerprint_needs_no_header_read_when_the_lines_name_the_record(sample, monkeypatch):
    sums = {k: v for k, v in write_sums(sample).items() if k.startswith(ROW["path"])}
    row = {**ROW, "_sha256": listed(sums)}
    opened = []
    real_open = fingerprinting.open_record
    monkeypatch.setattr(fingerprinting, "open_record", lambda *a: opened.append(a) or real_open(*a))
    quick = record_fingerprint(sample, row, "sha256sums")
    assert opened == []  # two stat calls, no header read ...
    with monkeypatch.context() as m:
        m.setattr(fingerprinting, "listed_identity", lambda root, row: None)
        read = record_fingerprint(sample, row, "sha256sums")
    assert len(opened) == 1 and quick == read  # ... and the same fingerprint as reading it
    (sample / DATA).rename(sample / "elsewhere.dat")  # a listed file gone: the header is read
    gone = record_fingerprint(sample, row, "sha256sums")
    assert len(opened) == 2 and gone != quick


def test_a_flipped_byte_is_a_checksum_mismatch_with_both_digests(sample, tmp_path):
    sums = write_sums(sample)
    flip_byte(sample / DATA)
    actual = hashlib.sha256((sample / DATA).read_bytes()).hexdigest()
    cfg = config(sample, tmp_path / "corpus")
    build(cfg, "full")
    assert set(rows_by_id(cfg.out)) == KEPT - {"ptbxl/6004"}
    ledger = {r["record_id"]: r for r in pq.read_table(cfg.out / REJECTIONS).to_pylist()}
    assert ledger["6004"]["reason"] == "checksum_mismatch"
    assert sums[DATA] in ledger["6004"]["detail"] and actual in ledger["6004"]["detail"]


class CountingHandler(QuietHandler):
    """Serves files and counts the body bytes it sent per path (class-level tally per server)."""

    sent: Counter

    def copyfile(self, source, outputfile) -> None:
        start = source.tell()
        super().copyfile(source, outputfile)
        self.sent[self.path.split("?")[0]] += source.tell() - start


@pytest.mark.parametrize("with_sums", [False, True], ids=["stat", "sha256sums"])
def test_a_url_build_fetches_each_data_file_once_and_a_refresh_none(sample, tmp_path, with_sums):
    """Bytes sent by a loopback HTTP server (fsspec's HTTP filesystem, the s3:// code path)."""
    if with_sums:
        write_sums(sample)
    sent: Counter = Counter()
    handler = type("Handler", (CountingHandler,), {"sent": sent})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(sample)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        cfg = config(url, tmp_path / "corpus")
        mode = "sha256sums" if with_sums else "stat"
        assert build(cfg, "full").manifest.fingerprint_modes == {"ptbxl": mode}
        dats = {f"/{p.relative_to(sample)}": p.stat().st_size for p in sample.rglob("*.dat")}
        dats.pop("/records100/00000/00001_lr.dat")  # not a records500 record
        assert {p: n for p, n in sent.items() if p.endswith(".dat")} == dats
        sent.clear()
        assert build(cfg, "refresh").plan.nothing_to_do
        assert not [p for p in sent if p.endswith(".dat")]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "path",
    ["a/b", "a//b", "./a", "a/.", "a/", "/a", "//a", "a/../b", "..", ".", "", "a://b", "a/b.c"],
)
def test_plain_relative_is_the_pathlib_check_it_replaces(path):
    """The string check of the sums shortcut accepts exactly the paths that ``PurePosixPath``
    leaves as they are and ``resolve_record`` accepts (what the shortcut asked before)."""
    from pathlib import PurePosixPath

    from pipeline.bounded_io import resolve_record
    from pipeline.errors import RecordRejected

    try:
        resolve_record(Path("/root"), path)
        resolves = True
    except RecordRejected:
        resolves = False
    assert fingerprinting.plain_relative(path) == (
        resolves and PurePosixPath(path).as_posix() == path
    )


def test_a_source_with_sums_is_fingerprinted_here_and_one_without_on_the_pool(
    sample, tmp_path, monkeypatch
):
    """No file is read to fingerprint from SHA256SUMS.txt, so it runs in this process (a no-change
    refresh starts no worker); above the size limit, or in stat mode, the executor does it. The
    fingerprints are the same wherever they are computed."""
    from pipeline.plan import discover
    from pipeline.sources import registry
    from tests.pipeline.test_plan import CountingExecutor

    stat_sources = discover(config(sample, tmp_path / "a"), registry())
    write_sums(sample)
    sums_sources = discover(config(sample, tmp_path / "b"), registry())
    serial = fingerprinting.input_fingerprints(sums_sources, None, "auto")
    with CountingExecutor() as pool:
        assert fingerprinting.input_fingerprints(sums_sources, pool, "auto") == serial
    assert pool.maps == 0
    monkeypatch.setattr(fingerprinting, "MAIN_PROCESS_RECORDS", 5)
    with CountingExecutor() as pool:
        assert fingerprinting.input_fingerprints(sums_sources, pool, "auto") == serial
    assert pool.maps == 1
    monkeypatch.undo()
    with CountingExecutor() as pool:
        fingerprinting.input_fingerprints(stat_sources, pool, "auto")
    assert pool.maps == 1
