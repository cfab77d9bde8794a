"""The ``ecg`` column's encoding: (n, 12, T) float16 arrays <-> Arrow fixed-size lists.

Both directions avoid Python lists: the values are one flat float16 buffer, viewed as 12 x T per
row. The writer (the pipeline) and the reader (the trainer) use these two functions only.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from schemas.corpus import CANONICAL_LEADS


def encode_ecg(signals: np.ndarray) -> pa.FixedSizeListArray:
    """The Arrow ``ecg`` column of an (n, 12, T) array (cast to float16)."""
    n, leads, t = signals.shape
    if leads != len(CANONICAL_LEADS):
        raise ValueError(f"expected {len(CANONICAL_LEADS)} leads, got {leads}")
    flat = pa.array(np.ascontiguousarray(signals, np.float16).reshape(-1), type=pa.float16())
    return pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(flat, t), leads)


def decode_ecg(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The (n, 12, T) float16 array of an ``ecg`` column (one copy at most, no Python lists)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    leads, t = column.type.list_size, column.type.value_type.list_size
    flat = column.flatten().flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(column), leads, t)
