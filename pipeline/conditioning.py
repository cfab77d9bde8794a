"""Conditioning: read one record into canonical lead order, then check and condition a batch.

All checks and transforms work on a whole batch (records x 12 leads x samples) at once; a record
that fails a check is handed to ``reject`` with its reason and leaves the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline import signal as sig
from pipeline.bounded_io import resolve_record
from pipeline.checksums import SUMS_KEY, listed_digests
from pipeline.config import BuildConfig
from pipeline.errors import RecordRejected
from pipeline.leads import canonical_order
from pipeline.quality import check_flat_and_saturation, check_missing
from pipeline.storage import Location, join
from pipeline.wfdb_io import (
    RawRecord,
    check_calibration,
    check_header_digests,
    open_record,
    read_signal,
)


def expected_digests(root: Location, row: dict) -> dict[str, str] | None:
    """``str(location)`` -> sha256 of the record's files ``SHA256SUMS.txt`` lists (the plan puts
    them in the row under ``_sha256``, as :func:`pipeline.checksums.attach_sums` puts them), or None."""
    listed = listed_digests(row.get(SUMS_KEY), row.get("path"))
    return {str(join(root, rel)): d for rel, d in listed.items()} or None


@dataclass
class Loaded:
    """A record whose signal was read and put in canonical lead order."""

    row: dict
    signal: np.ndarray
    fs: float


def load_one(root: Location, row: dict, cfg: BuildConfig) -> Loaded:
    """Open one record (every file checked), check its leads and length, then read it in mV.

    Calibration, leads and length come from the header: a record of the wrong length is never
    read. With ``SHA256SUMS.txt`` digests in the row, the header and data bytes read are checked
    against them (``checksum_mismatch``).
    """
    files = open_record(resolve_record(root, row["path"]))
    expected = expected_digests(root, row)
    check_header_digests(files, expected)
    check_calibration(files, cfg.signal.accept_adc_units)
    order = canonical_order(files.leads)
    duration = files.header.sig_len / files.header.fs
    if abs(duration - cfg.signal.duration_s) > cfg.signal.length_tolerance_s:
        raise RecordRejected(
            "wrong_length", f"{duration:.2f} s, expected {cfg.signal.duration_s:g} s"
        )
    too_slow = cfg.signal.rate_problem(files.header.fs)
    if too_slow:
        raise RecordRejected("rate_too_low", too_slow)
    raw: RawRecord = read_signal(
        files, accept_adc_units=cfg.signal.accept_adc_units, expected=expected
    )
    return Loaded(row, raw.signal[order], raw.fs)


@dataclass
class Conditioned:
    """A batch of records ready to write, with per-record bookkeeping."""

    rows: list[dict]
    ecg: np.ndarray  # (B, 12, T) float16
    n_cropped: int
    n_padded: int
    nan_repaired: np.ndarray
    source_fs: float


def condition(
    batch: list[Loaded], cfg: BuildConfig, reject: Callable[[dict, str, str], None]
) -> Conditioned | None:
    """Quality-check and condition records that share rate and length, all leads at once."""
    s = cfg.signal
    fs = batch[0].fs
    x = np.stack([b.signal for b in batch])
    verdicts = check_missing(x, fs, s)
    keep = [v is None for v in verdicts]
    for b, v in zip(batch, verdicts):
        if v is not None:
            reject(b.row, *v)
    if not all(keep):
        x, batch = x[keep], [b for b, k in zip(batch, keep) if k]
    if not batch:
        return None
    x, repaired = sig.interpolate_nonfinite(x)
    verdicts = check_flat_and_saturation(x, s)
    keep = [v is None for v in verdicts]
    for b, v in zip(batch, verdicts):
        if v is not None:
            reject(b.row, *v)
    if not all(keep):
        x, repaired, batch = x[keep], repaired[keep], [b for b, k in zip(batch, keep) if k]
    if not batch:
        return None
    x = sig.apply_filters(x, fs, s)
    x = sig.resample(x, fs, s.fs)
    x, cropped, padded = sig.fix_length(x, s.n_samples)
    x = sig.normalise(x, s.normalise)
    bounded = s.normalise != "none"  # z-scores and min-max values are always in float16 range
    ecg = sig.to_float16(x, clip=not bounded)
    return Conditioned([b.row for b in batch], ecg, cropped, padded, repaired, fs)
