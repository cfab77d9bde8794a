"""What the sources' layout writers share: format-16 WFDB records and CSVs as PhysioNet writes them.

Each source file owns its layout writer (``write_ptbxl_layout``, ``write_mimic_layout``), used by
the synthetic demo and by the tests; this module holds only the parts that are the same for both.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

MAX_DIGITAL_16 = 32767  # format 16's largest sample; -32768 is its "no sample" (NaN)


def check_signal_mv(signal_mv: np.ndarray, gain: float) -> np.ndarray:
    """``signal_mv`` as float64 when it is a (12, N) mV signal that format 16 at ``gain`` can hold.

    NaN samples are allowed (stored as -32768); ``+-inf`` and values beyond the format's range
    raise ``ValueError``.
    """
    x = np.asarray(signal_mv, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != 12 or x.shape[1] == 0:
        raise ValueError(f"signal_mv must be (12, N) with N > 0, got {x.shape}")
    if np.isinf(x).any():
        raise ValueError("signal_mv contains +-inf; only NaN can be stored (as -32768)")
    peak = np.nanmax(np.abs(x)) if not np.isnan(x).all() else 0.0
    if np.round(peak * gain) > MAX_DIGITAL_16:
        raise ValueError(
            f"signal_mv peaks at {peak:.3f} mV, beyond format 16 at gain {gain:g}/mV "
            f"(+-{MAX_DIGITAL_16 / gain:.3f} mV)"
        )
    return x


def write_format16(
    record: Path, fs: int, names: Sequence[str], signal: np.ndarray, gain: float, **header
) -> None:
    """``wfdb.wrsamp`` of a (leads, N) mV signal as format 16, baseline 0, into record's folder.

    ``record`` is the record path without extension; ``header`` passes on extra ``wrsamp``
    arguments (comments, base time and date).
    """
    import wfdb  # lazy: 0.2 s to import, and builds only read records (pipeline.wfdb_io)

    record.parent.mkdir(parents=True, exist_ok=True)
    n = len(names)
    wfdb.wrsamp(
        record.name,
        fs=fs,
        units=["mV"] * n,
        sig_name=list(names),
        p_signal=signal.T,
        fmt=["16"] * n,
        adc_gain=[gain] * n,
        baseline=[0] * n,
        write_dir=str(record.parent),
        **header,
    )


def write_csv(path: Path, header: str, rows: Iterable[Sequence[str]]) -> None:
    """A CSV with the verbatim ``header`` line and ``rows`` quoted as needed, ``\\n`` line ends."""
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(header + "\n")
        csv.writer(f, lineterminator="\n").writerows(rows)
