"""Companion trainer of meit-corpus: stream the shards, train MEIT (ECG-fused LoRA LLM), evaluate.

Depends on the corpus only through :mod:`schemas` (row shape, schema version, manifest).
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
