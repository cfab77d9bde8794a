"""The corpus folder's layout: file names, shard naming, checksums and the one manifest reader.

A corpus folder holds ``<source>/<split>-NNNNN-of-NNNNN.parquet`` shards, ``rejections.parquet``,
``fingerprints.parquet``, ``meit/<source>_<split>.jsonl`` (MEIT's own format), ``README.md`` (the
dataset card) and, written last, ``manifest.json`` listing every file with its sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from schemas.manifest import Manifest

MANIFEST = "manifest.json"
REJECTIONS = "rejections.parquet"
FINGERPRINTS = "fingerprints.parquet"
CARD = "README.md"
MEIT_DIR = "meit"
PROGRESS_DIR = "_build"  # completion records of a build in progress (one per shard)


def shard_name(split: str, index: int, count: int) -> str:
    """Hugging Face style shard file name, e.g. ``train-00003-of-00016.parquet``."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def shard_path(source: str, split: str, index: int, count: int) -> str:
    """A shard's path relative to the corpus root, e.g. ``ptbxl/train-00000-of-00001.parquet``."""
    return f"{source}/{shard_name(split, index, count)}"


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
