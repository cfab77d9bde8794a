"""Find a corpus's shards through its manifest and check that this code can read them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from schemas import CANONICAL_LEADS, Manifest, corpus_schema
from schemas.corpus import check_schema_version


class CorpusError(ValueError):
    """The corpus cannot be read by this trainer (missing, wrong schema version, wrong shape)."""


@dataclass(frozen=True)
class Unit:
    """One row group of one shard: the unit of streaming and of sharding across ranks/workers."""

    path: Path
    row_group: int
    rows: int


def load_manifest(corpus: Path) -> Manifest:
    """Read ``manifest.json``, refusing another major schema version or another lead order."""
    path = Path(corpus) / "manifest.json"
    if not path.exists():
        raise CorpusError(f"no manifest.json in {corpus}")
    manifest = Manifest.model_validate(json.loads(path.read_text()))
    try:
        check_schema_version(manifest.schema_version)
    except ValueError as e:
        raise CorpusError(str(e)) from e
    if tuple(manifest.lead_order) != CANONICAL_LEADS:
        raise CorpusError(f"lead order {manifest.lead_order} is not {list(CANONICAL_LEADS)}")
    return manifest


def select_files(
    corpus: Path, manifest: Manifest, split: str, sources: list[str] | None = None
) -> list[Path]:
    """Shard paths of ``split`` (and of ``sources`` if given), sorted, existence-checked."""
    files = [
        Path(corpus) / f.path
        for f in manifest.files
        if f.split == split and (not sources or f.source in sources) and f.path.endswith(".parquet")
    ]
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        raise CorpusError(f"manifest lists missing shards: {missing[:3]}")
    return sorted(files)


def check_shard(path: Path, n_samples: int) -> None:
    """Raise :class:`CorpusError` unless the shard's schema is this code's row shape."""
    schema = pq.read_schema(path)
    found = (schema.metadata or {}).get(b"meit_corpus.schema_version")
    if found is not None:
        try:
            check_schema_version(found.decode())
        except ValueError as e:
            raise CorpusError(f"{path}: {e}") from e
    expected = corpus_schema(n_samples)
    for name in ("ecg", "messages", "id", "source", "report"):
        if schema.field(name).type != expected.field(name).type:
            raise CorpusError(f"{path}: column {name} has type {schema.field(name).type}")


def list_units(files: list[Path], n_samples: int) -> list[Unit]:
    """All row groups of ``files`` in a stable order (file, row group), after checking each shard."""
    units = []
    for path in files:
        check_shard(path, n_samples)
        meta = pq.ParquetFile(path).metadata
        units += [Unit(path, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
    return [u for u in units if u.rows > 0]
