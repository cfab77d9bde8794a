"""Find a corpus's shards through its manifest and check that this code can read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas import (
    CANONICAL_LEADS,
    MANIFEST,
    Manifest,
    check_schema_version,
    corpus_schema,
    read_manifest,
)


class CorpusError(ValueError):
    """The corpus cannot be read by this trainer (missing, wrong schema version, wrong shape)."""


@dataclass(frozen=True)
class Unit:
    """One row group of one shard: the unit of streaming and of sharding across ranks/workers.

    ``keep``: indices of the rows kept by a row filter (``None``: every row); ``rows`` counts them.
    """

    path: Path
    row_group: int
    rows: int
    keep: tuple[int, ...] | None = None


def load_manifest(corpus: Path) -> Manifest:
    """Read the manifest, refusing another major schema version or another lead order."""
    path = Path(corpus) / MANIFEST
    if not Path(corpus).is_dir():
        raise CorpusError(f"corpus folder {corpus} does not exist")
    if not path.exists():
        raise CorpusError(f"no {MANIFEST} in {corpus} (not a meit-corpus output folder)")
    try:
        manifest = read_manifest(corpus)
    except ValueError as e:
        first = str(e).splitlines()[0]
        raise CorpusError(f"{path} is not a valid manifest: {first}") from e
    try:
        check_schema_version(manifest.schema_version)
    except ValueError as e:
        raise CorpusError(str(e)) from e
    if tuple(manifest.lead_order) != CANONICAL_LEADS:
        raise CorpusError(f"lead order {manifest.lead_order} is not {list(CANONICAL_LEADS)}")
    return manifest


def normalisation(manifest: Manifest) -> str:
    """The signal normalisation the corpus was built with (``none`` when the manifest has none)."""
    signal = manifest.config.get("signal") or {}
    return str(signal.get("normalise", manifest.config.get("normalise", "none")))


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
    for name in ("ecg", "messages", "id", "source", "report", "template_id"):
        if schema.field(name).type != expected.field(name).type:
            raise CorpusError(f"{path}: column {name} has type {schema.field(name).type}")


def kept_rows(path: Path, row_group: int, template_ids: list[str]) -> tuple[int, ...]:
    """Indices of the rows of one row group whose ``template_id`` is in ``template_ids``.

    Reads only that (dictionary-encoded) column, never the signals."""
    column = pq.ParquetFile(path).read_row_group(row_group, columns=["template_id"])["template_id"]
    mask = pc.is_in(column, value_set=pc.cast(template_ids, column.type)).to_numpy(
        zero_copy_only=False
    )
    return tuple(int(i) for i in mask.nonzero()[0])


def list_units(
    files: list[Path], n_samples: int, template_ids: list[str] | None = None
) -> list[Unit]:
    """All row groups of ``files`` with kept rows, in a stable order (file, row group), after
    checking each shard; ``template_ids`` keeps only rows with one of those instruction ids."""
    units = []
    for path in files:
        check_shard(path, n_samples)
        meta = pq.ParquetFile(path).metadata
        for i in range(meta.num_row_groups):
            if template_ids is None:
                units.append(Unit(path, i, meta.row_group(i).num_rows))
            else:
                keep = kept_rows(path, i, template_ids)
                units.append(Unit(path, i, len(keep), keep))
    return [u for u in units if u.rows > 0]


@dataclass(frozen=True)
class Selection:
    """Which rows of a corpus a run reads."""

    split: str
    sources: list[str] | None = None
    template_ids: list[str] | None = None

    def describe(self) -> str:
        """``split 'test', sources mimic, template ids report.meit_mimic`` (for messages)."""
        text = f"split {self.split!r}"
        if self.sources:
            text += f", source {'+'.join(self.sources)}"
        if self.template_ids:
            text += f", template ids {'/'.join(self.template_ids)}"
        return text


def selected_units(corpus: Path, selection: Selection) -> list[Unit]:
    """The row groups (with kept rows) of ``selection``; :class:`CorpusError` when there are none.

    The error names what the corpus does have, e.g. the splits a source has rows in."""
    manifest = load_manifest(corpus)
    files = select_files(corpus, manifest, selection.split, selection.sources)
    units = list_units(files, manifest.n_samples, selection.template_ids)
    if units:
        return units
    have = sorted({(f.source or "?", f.split or "?") for f in manifest.files if f.rows > 0})
    listing = ", ".join(f"{src}/{split}" for src, split in have) or "nothing"
    raise CorpusError(f"no rows in {corpus} for {selection.describe()} (it has {listing})")
