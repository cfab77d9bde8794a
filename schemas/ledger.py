"""The rejection ledger (``rejections.parquet``): one row per input record that is not in a shard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from schemas.corpus import rejection_schema


@dataclass(frozen=True)
class Rejection:
    """One rejected input record: its source, id, a reason code and a human-readable detail."""

    source: str
    record_id: str
    reason: str
    detail: str = ""


def rejection_table(rejections: Sequence[Rejection]) -> pa.Table:
    """The ledger as a table, sorted by source and record id."""
    ordered = sorted(rejections, key=lambda r: (r.source, r.record_id))
    return pa.table(
        {
            "source": [r.source for r in ordered],
            "record_id": [r.record_id for r in ordered],
            "reason": [r.reason for r in ordered],
            "detail": [r.detail for r in ordered],
        },
        schema=rejection_schema(),
    )
