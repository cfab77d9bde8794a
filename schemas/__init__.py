"""The corpus contract: every row's shape (Arrow schema, Hugging Face features), the ``ecg``
encoding, the folder layout and file names, and the manifest model with its one reader.

Everything that reads or writes corpus files (the pipeline, the trainer, the tests) takes the shape
from here, so a change of shape is a change of :data:`SCHEMA_VERSION` in one place. The trainer
imports nothing else of this repository.
"""

from schemas.corpus import (
    CANONICAL_LEADS,
    SCHEMA_VERSION,
    SPLITS,
    check_schema_version,
    corpus_schema,
    hf_features,
    rejection_schema,
)
from schemas.ecg import decode_ecg, encode_ecg
from schemas.layout import (
    CARD,
    DATA_DIR,
    FINGERPRINTS,
    MANIFEST,
    MEIT_DIR,
    META_DIR,
    PROGRESS_DIR,
    REJECTIONS,
    REPORT_DIR,
    ShardRef,
    gapless_shard_paths,
    meit_jsonl_path,
    parse_shard_path,
    read_manifest,
    sha256_file,
    shard_name,
    shard_path,
    source_dir,
)
from schemas.ledger import Rejection, rejection_table
from schemas.manifest import FileEntry, Manifest, RefreshRecord, SourceCounts, SplitAudit

__all__ = [
    "CANONICAL_LEADS",
    "CARD",
    "DATA_DIR",
    "FINGERPRINTS",
    "MANIFEST",
    "MEIT_DIR",
    "META_DIR",
    "PROGRESS_DIR",
    "REJECTIONS",
    "REPORT_DIR",
    "SCHEMA_VERSION",
    "SPLITS",
    "FileEntry",
    "Manifest",
    "RefreshRecord",
    "Rejection",
    "ShardRef",
    "SourceCounts",
    "SplitAudit",
    "check_schema_version",
    "corpus_schema",
    "decode_ecg",
    "encode_ecg",
    "hf_features",
    "gapless_shard_paths",
    "meit_jsonl_path",
    "parse_shard_path",
    "read_manifest",
    "rejection_schema",
    "rejection_table",
    "sha256_file",
    "shard_name",
    "shard_path",
    "source_dir",
]
