"""Shard writing: the sha256 and size a writer reports are those of the published file's bytes
(hashed as they are written, never read back), and a failed write leaves nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.shards import ShardWriter, file_digest, sha256_files
from schemas import encode_ecg


def batch(seed: int, rows: int = 3, samples: int = 500) -> pa.Table:
    """Rows of the shape the build writes: ids and 12-lead float16 signals."""
    signals = np.random.default_rng(seed).normal(size=(rows, 12, samples)).astype(np.float32)
    ids = pa.array([f"r{seed}-{i}" for i in range(rows)])
    return pa.Table.from_arrays([ids, encode_ecg(signals)], names=["id", "ecg"])


def test_a_shard_reports_the_sha256_and_size_of_its_bytes(tmp_path: Path):
    """Several row groups (many writes into the hashing sink): the digest reported equals the
    digest of the file on disk, and no temp file is left beside it."""
    tables = [batch(seed) for seed in range(4)]
    shard = tmp_path / "data" / "train-00000-of-00001.parquet"
    with ShardWriter(shard, tables[0].schema) as writer:
        for table in tables:
            writer.write(table)
    assert writer.rows == 12
    assert (writer.size, writer.sha256) == file_digest(shard)
    assert [p.name for p in shard.parent.iterdir()] == [shard.name]


def test_a_failed_shard_leaves_no_file(tmp_path: Path):
    """An error while rows are written: neither the shard nor its temp file exists."""
    shard = tmp_path / "train-00000-of-00001.parquet"
    table = batch(0)
    with pytest.raises(RuntimeError), ShardWriter(shard, table.schema) as writer:
        writer.write(table)
        raise RuntimeError("a unit failed")
    assert list(tmp_path.iterdir()) == []


def test_files_are_hashed_on_threads_each_to_its_own_digest(tmp_path: Path):
    """Files of different sizes hashed on a pool: each path gets its own file's digest, and a
    path that cannot be read gets None (validation then reports it as differing)."""
    paths = []
    for i in range(6):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(bytes([i]) * (1 << (10 + i)))
        paths.append(path)
    digests = sha256_files([*paths, tmp_path / "gone.bin"], threads=3)
    assert digests == {**{p: file_digest(p)[1] for p in paths}, tmp_path / "gone.bin": None}
