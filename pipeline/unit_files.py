"""A unit's rows file: the metadata rows of one shard's records, written by the plan as Arrow IPC
under ``<out>/_build/plan/<unit key>.arrow`` so that a :class:`pipeline.units.WorkUnit` stays a
small reference (no rows travel to workers or as Prefect parameters; the worker reads them).

The file's name is the unit's key, which hashes the rows, so a rerun reuses it as is; the unit's
own fields ride in the schema's metadata, so a key alone names a whole unit
(:func:`read_unit`). Not ``.parquet``: the corpus's checks treat any Parquet file under ``out``
as a shard or a stranger.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl
import pyarrow as pa

from pipeline.shards import is_temp, write_ipc_atomic
from pipeline.sources import Source
from pipeline.units import WorkUnit
from schemas import PROGRESS_DIR

PLAN_DIR = f"{PROGRESS_DIR}/plan"
UNIT_META = b"meit_unit"


def rows_path(out: Path | str, key: str) -> Path:
    """Where the rows file of the unit with ``key`` lives."""
    return Path(out) / PLAN_DIR / f"{key}.arrow"


def write_unit(
    out: Path | str,
    source: Source,
    root: str,
    split: str,
    index: int,
    count: int,
    key: str,
    rows: pl.DataFrame,
) -> WorkUnit:
    """The unit, its rows written to its rows file unless a file of that key is there already."""
    path = rows_path(out, key)
    if not path.is_file():
        meta = json.dumps(
            {"source": source.name, "root": root, "split": split, "index": index, "count": count}
        )
        table = rows.to_arrow()
        write_ipc_atomic(path, table.replace_schema_metadata({UNIT_META: meta.encode()}))
    return WorkUnit(source, root, split, index, count, key, rows.height, str(path))


def read_unit(out: Path | str, key: str, sources: Mapping[str, Source]) -> WorkUnit:
    """The unit whose rows file ``key`` names (``sources``: the registry), without its rows."""
    path = rows_path(out, key)
    with pa.memory_map(str(path)) as f:
        reader = pa.ipc.open_file(f)
        meta = json.loads(reader.schema.metadata[UNIT_META])
        n = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    return WorkUnit(
        sources[meta["source"]],
        meta["root"],
        meta["split"],
        meta["index"],
        meta["count"],
        key,
        n,
        str(path),
    )


def prune_unit_files(out: Path | str, keep: Iterable[str]) -> None:
    """Remove the rows files of units no longer planned (an earlier plan's)."""
    folder = Path(out) / PLAN_DIR
    keep = set(keep)
    for path in folder.glob("*.arrow") if folder.is_dir() else ():
        if path.stem not in keep and not is_temp(path):
            path.unlink(missing_ok=True)
