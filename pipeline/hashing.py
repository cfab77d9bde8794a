"""Seeded, platform-independent choices: a record's split, shard, template and tasks."""

from __future__ import annotations

import hashlib


def stable_unit(namespace: str, key: str, seed: int = 0) -> float:
    """A number in [0, 1) that depends only on its arguments (sha256, platform-independent).

    ``namespace`` keeps independent choices (split, shard, template) uncorrelated for one key.
    """
    digest = hashlib.sha256(f"{namespace}/{seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
