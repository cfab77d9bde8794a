"""Parquet shards: stable bucket assignment, and atomic writers with the explicit schema.

Shard names and checksums are part of the corpus contract (:mod:`schemas.layout`).

Writer settings (measured on these machines for 12 x 5000 float16 rows): pyarrow's defaults cost
~3.8 ms per record; with dictionary encoding and statistics off for the signal column and zstd
level 1, ~0.9 ms. The file appears under its final name only when complete (temp file + rename).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.hashing import stable_unit

SIGNAL_COLUMN = "ecg"
COMPRESSION_LEVEL = 1


def shard_count(n_records: int, records_per_shard: int) -> int:
    """Shards for a split of ``n_records`` (at least one)."""
    return max(1, math.ceil(n_records / records_per_shard))


def shard_bucket(row_id: str, n_shards: int) -> int:
    """The shard a row belongs to: a stable hash bucket of its id."""
    return int(stable_unit("shard", row_id) * n_shards)


def temp_path(final: Path) -> Path:
    """Where a file is written before it is renamed to ``final`` (hidden, same folder)."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def publish(tmp: Path, final: Path) -> None:
    """Flush ``tmp`` to disk and rename it to ``final`` atomically."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


class ShardWriter:
    """Write one Parquet file from record batches; it appears at ``path`` only on success."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self._tmp = temp_path(self.path)
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> "ShardWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        others = [n for n in self.schema.names if n != SIGNAL_COLUMN]
        self._writer = pq.ParquetWriter(
            self._tmp,
            self.schema,
            compression="zstd",
            compression_level=COMPRESSION_LEVEL,
            use_dictionary=others,
            write_statistics=others,
        )
        return self

    def write(self, table: pa.Table) -> None:
        """Append rows (a table with exactly the writer's schema) as one row group."""
        assert self._writer is not None, "use ShardWriter as a context manager"
        self._writer.write_table(table.cast(self.schema), row_group_size=max(1, table.num_rows))
        self.rows += table.num_rows

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
        if exc_type is None:
            publish(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def write_table_atomic(path: Path, table: pa.Table) -> None:
    """Write a small table (e.g. the rejection ledger) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    pq.write_table(table, tmp, compression="zstd")
    publish(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    tmp.write_text(text, encoding="utf-8")
    publish(tmp, path)
