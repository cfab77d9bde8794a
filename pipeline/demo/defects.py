"""The documented defects the demo plants, so a demo build exercises the repair path and the
rejection ledger.

Positions are fixed fractions of a source's record list (PTB-XL in ecg_id order, MIMIC-IV-ECG in
(subject_id, ecg_time) order); the planted records are returned in
:attr:`pipeline.demo.DemoPaths.defects` and listed in ``SYNTHETIC.md``:

PTB-XL (n = ``n_ptbxl``)
  * record ``n // 4``: a 20-sample (40 ms) NaN gap in V2 (samples 2400-2419) -- must be
    *repaired* (interpolated), not rejected;
  * record ``n // 2``: lead V4 entirely zero (flat) -- rejected, ``flat_lead``;
  * record ``3 * n // 4``: empty report -- rejected, ``empty_report``.
MIMIC-IV-ECG (n = ``n_mimic``)
  * study ``n // 3``: all 18 machine statements empty -- rejected, ``empty_report``;
  * study ``2 * n // 3``: lead aVL entirely NaN (stored as -32768 in the 6th header slot, after
    aVF, as MIMIC orders its leads) -- rejected, ``too_much_nan``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from pipeline.sources.mimic import MimicLayoutRecord
from pipeline.sources.ptbxl import PtbxlLayoutRecord
from schemas import CANONICAL_LEADS


@dataclass(frozen=True)
class DemoDefect:
    """One deliberately defective demo record and what the pipeline should do with it."""

    source: str
    """``ptbxl`` or ``mimic``."""
    record_id: str
    """ecg_id (PTB-XL) or study_id (MIMIC-IV-ECG)."""
    path: str
    """Record path without extension, relative to the source root."""
    defect: str
    expected: Literal["repaired", "rejected"]
    reason: str | None = None
    """The rejection ledger's reason for a rejected record."""


@dataclass(frozen=True)
class Defect:
    """A row of the table: which record of a source gets which defect, and the expected outcome."""

    source: str
    fraction: tuple[int, int]
    """Position ``n * a // b`` (``(a, b)``) in the source's record list of length n."""
    defect: str
    expected: Literal["repaired", "rejected"]
    reason: str | None
    plant: Callable[[Any], Any]
    """The layout record with the defect (a new record; the argument is left as it is)."""

    def position(self, n: int) -> int:
        a, b = self.fraction
        return n * a // b

    def record(self, record_id: str, path: str) -> DemoDefect:
        """This defect as planted in the record ``record_id`` at ``path``."""
        return DemoDefect(self.source, record_id, path, self.defect, self.expected, self.reason)


def _with_signal(record: Any, lead: str, samples: slice, value: float) -> Any:
    signal = np.array(record.signal_mv, dtype=np.float64)
    signal[CANONICAL_LEADS.index(lead), samples] = value
    return replace(record, signal_mv=signal)


def _ptbxl_nan_gap(record: PtbxlLayoutRecord) -> PtbxlLayoutRecord:
    return _with_signal(record, "V2", slice(2400, 2420), np.nan)


def _ptbxl_flat_lead(record: PtbxlLayoutRecord) -> PtbxlLayoutRecord:
    return _with_signal(record, "V4", slice(None), 0.0)


def _ptbxl_empty_report(record: PtbxlLayoutRecord) -> PtbxlLayoutRecord:
    return replace(record, fields={**record.fields, "report": ""})


def _mimic_no_statements(record: MimicLayoutRecord) -> MimicLayoutRecord:
    return replace(record, statements=())


def _mimic_nan_lead(record: MimicLayoutRecord) -> MimicLayoutRecord:
    return _with_signal(record, "aVL", slice(None), np.nan)


DEFECTS: tuple[Defect, ...] = (
    Defect(
        "ptbxl",
        (1, 4),
        "20-sample NaN gap in V2 (samples 2400-2419)",
        "repaired",
        None,
        _ptbxl_nan_gap,
    ),
    Defect("ptbxl", (1, 2), "flat lead V4 (all zeros)", "rejected", "flat_lead", _ptbxl_flat_lead),
    Defect("ptbxl", (3, 4), "empty report", "rejected", "empty_report", _ptbxl_empty_report),
    Defect(
        "mimic",
        (1, 3),
        "all machine statements empty",
        "rejected",
        "empty_report",
        _mimic_no_statements,
    ),
    Defect("mimic", (2, 3), "lead aVL entirely NaN", "rejected", "too_much_nan", _mimic_nan_lead),
)
"""The table, in record order within each source (for every n the demo accepts)."""

MIN_RECORDS: dict[str, int] = {"ptbxl": 4, "mimic": 3}
"""The fewest records of a source with a distinct record for each of its defects."""


def defects_at(source: str, n: int) -> dict[int, Defect]:
    """Position -> defect for a source with ``n`` records."""
    if n < MIN_RECORDS[source]:
        raise ValueError(f"the demo needs at least {MIN_RECORDS[source]} {source} records")
    placed = {d.position(n): d for d in DEFECTS if d.source == source}
    if len(placed) != sum(d.source == source for d in DEFECTS):
        raise ValueError(f"two {source} defects fall on one record for n = {n}")
    return placed


def plant(records: Iterable[Any], placed: dict[int, Defect]) -> Iterator[Any]:
    """``records`` with the defect of each position in ``placed`` planted."""
    for i, record in enumerate(records):
        yield placed[i].plant(record) if i in placed else record
