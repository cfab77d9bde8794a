"""The one source of every corpus row's shape: Arrow schema, Hugging Face features, manifest model.

Everything that reads or writes corpus files (the pipeline, the trainer, the tests) takes the shape
from here, so a change of shape is a change of :data:`SCHEMA_VERSION` in one place.
"""

from schemas.corpus import (
    CANONICAL_LEADS,
    SCHEMA_VERSION,
    SPLITS,
    corpus_schema,
    hf_features,
    rejection_schema,
)
from schemas.manifest import FileEntry, Manifest, SourceCounts

__all__ = [
    "CANONICAL_LEADS",
    "SCHEMA_VERSION",
    "SPLITS",
    "FileEntry",
    "Manifest",
    "SourceCounts",
    "corpus_schema",
    "hf_features",
    "rejection_schema",
]
