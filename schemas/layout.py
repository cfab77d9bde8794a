"""The corpus folder's layout: file names, shard naming, checksums and the one manifest reader.

A corpus folder is shaped as a Hugging Face dataset repository::

    README.md                                   the dataset card (YAML configs, license, ...)
    manifest.json                               written last: every file with its sha256
    data/<source>/<split>-NNNNN-of-NNNNN.parquet the shards (DATA_DIR), and nothing else
    meta/rejections.parquet                     the rejection ledger (META_DIR)
    meta/fingerprints.parquet                   per-record input fingerprints
    meta/meit/<source>_<split>.jsonl            MEIT's own format
    report/                                     ``meit-corpus report`` (REPORT_DIR; not listed)
    _build/                                     a build's own records (PROGRESS_DIR; never published)

so that ``data/`` holds only rows of the corpus schema (``pl.scan_parquet("dir/data/**/*.parquet")``
and ``pyarrow.dataset.dataset("dir/data")`` read exactly the corpus). Every reader and writer
takes these names from here; shard indices run 0 .. N-1 per (source, split), without gaps.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from schemas.manifest import Manifest

MANIFEST = "manifest.json"
CARD = "README.md"
DATA_DIR = "data"  # shards only
META_DIR = "meta"  # side tables: ledger, fingerprints, MEIT's jsonl
REPORT_DIR = "report"  # the statistics report (index.html + PNGs), not in the manifest
REJECTIONS = f"{META_DIR}/rejections.parquet"
FINGERPRINTS = f"{META_DIR}/fingerprints.parquet"
MEIT_DIR = f"{META_DIR}/meit"
PROGRESS_DIR = "_build"  # completion records of a build in progress (one per shard)

SHARD_PATH = re.compile(
    rf"^{DATA_DIR}/(?P<source>[^/]+)/(?P<split>[^/-]+)-(?P<index>\d{{5}})-of-(?P<count>\d{{5}})"
    r"\.parquet$"
)


class ShardRef(NamedTuple):
    """What a shard's path says: source, split, index (from 0) and shard count of its split."""

    source: str
    split: str
    index: int
    count: int


def shard_name(split: str, index: int, count: int) -> str:
    """Hugging Face style shard file name, e.g. ``train-00003-of-00016.parquet``."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def source_dir(source: str) -> str:
    """A source's shard folder relative to the corpus root, e.g. ``data/ptbxl``."""
    return f"{DATA_DIR}/{source}"


def shard_path(source: str, split: str, index: int, count: int) -> str:
    """A shard's path relative to the corpus root, e.g. ``data/ptbxl/train-00000-of-00001.parquet``."""
    return f"{source_dir(source)}/{shard_name(split, index, count)}"


def parse_shard_path(rel: str) -> ShardRef | None:
    """The :class:`ShardRef` of a path :func:`shard_path` makes, or None for any other path."""
    m = SHARD_PATH.match(rel)
    if m is None:
        return None
    return ShardRef(m["source"], m["split"], int(m["index"]), int(m["count"]))


def gapless_shard_paths(
    buckets: Iterable[tuple[str, str, int]],
) -> dict[tuple[str, str, int], str]:
    """(source, split, bucket) -> the shard path of that bucket when the given buckets are the
    ones holding rows: numbered 0 .. N-1 of N per (source, split) in bucket order, no gaps."""
    groups: dict[tuple[str, str], list[int]] = {}
    for source, split, bucket in buckets:
        groups.setdefault((source, split), []).append(bucket)
    paths = {}
    for (source, split), members in groups.items():
        ordered = sorted(set(members))
        for i, bucket in enumerate(ordered):
            paths[(source, split, bucket)] = shard_path(source, split, i, len(ordered))
    return paths


def meit_jsonl_path(source: str, split: str) -> str:
    """Where MEIT's jsonl of one source and split lives, relative to the corpus root."""
    return f"{MEIT_DIR}/{source}_{split}.jsonl"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (what the manifest lists for every file)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(corpus: Path) -> Manifest:
    """The manifest of a corpus folder.

    Raises ``FileNotFoundError`` when there is none and ``ValueError`` (pydantic's
    ``ValidationError``) when it does not parse; callers turn those into their own messages.
    """
    return Manifest.model_validate_json((Path(corpus) / MANIFEST).read_text())
