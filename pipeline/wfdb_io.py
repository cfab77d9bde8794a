"""Read WFDB records safely: every file a record reads is checked before a byte of it is read.

A record is opened in two steps. :func:`open_record` reads its header (bounded, regular files
only), parses it, and checks every file the header names without reading it: the name stays inside
the dataset root (the same lexical rule as the metadata's path column), the file is a regular file
(a FIFO, device or folder is ``unreadable``; nothing is opened that could block), and its size is
what the header implies (smaller: ``truncated_data``; larger: ``size_mismatch``). Multi-segment
records are opened segment by segment the same way. :func:`read_signal` then reads at most the
implied bytes of each file and converts to millivolts, refusing uncalibrated signals (gain 0 or
none: ``uncalibrated``) unless the caller accepts ADC units, and converting µV and V to mV
(another unit: ``units``). :func:`record_contents` gives the fingerprint the same bounded reads.

Headers are parsed by :mod:`pipeline.wfdb_header` (why not by ``wfdb``: see there). The samples of everything but plain format 16 are decoded by ``wfdb.rdrecord`` (digital values,
converted with the gains checked here; their checksums are checked too).

Why a fast path: a plain format-16 record opened, checked and read with numpy costs ~0.18 ms
(~0.08 ms of it the checks) against ~4 ms for ``wfdb.rdrecord`` and gives the same values (tests/pipeline/test_wfdb_io.py). It is taken when
the record's signals share one format-16 file with no byte offset, skew or multiple samples per
frame (PTB-XL and MIMIC-IV-ECG). Every failure becomes a :class:`RecordRejected`.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.bounded_io import file_size, named_file, read_regular
from pipeline.errors import RecordRejected
from pipeline.kernels import frames_to_leads
from pipeline.storage import Location, is_url, join, name, parent
from pipeline.wfdb_header import (
    COMPRESSED_FORMATS,
    FORMAT_BITS,
    INVALID_SAMPLE,
    MAX_HEADER_BYTES,
    MV_PER_UNIT,
    Header,
    SignalSpec,
    decode_header,
    is_fast,
    parse_header,
    unreadable,
)

WFDB_NAN_16 = -32768  # format 16's "no sample" value; wfdb reads it as NaN


@dataclass(frozen=True)
class RawRecord:
    """A record's physical signal (leads x samples, float32, mV) with its lead names and rate."""

    signal: np.ndarray
    leads: tuple[str, ...]
    fs: float


@dataclass(frozen=True)
class DataFile:
    """A data file a header names, checked: inside the root, a regular file of ``size`` bytes."""

    file_name: str  # as the header names it
    location: Location
    size: int


@dataclass(frozen=True)
class RecordFiles:
    """A record's header and every file it reads, checked but not yet read.

    ``segments`` (multi-segment records) holds each segment's own files, None for a gap (``~``);
    ``leads`` is the record's signal names (a multi-segment record's layout).
    """

    record: Location
    header: Header
    header_bytes: bytes
    data: tuple[DataFile, ...] = ()
    segments: tuple[RecordFiles | None, ...] = ()
    leads: tuple[str, ...] = ()


# ---------------------------------------------------------------- headers


def read_header_bytes(hea: Location) -> bytes:
    """A header file's bytes: a regular file of at most :data:`MAX_HEADER_BYTES`."""
    raw = read_regular(hea, MAX_HEADER_BYTES + 1)
    if len(raw) > MAX_HEADER_BYTES:
        raise RecordRejected(
            "size_mismatch", f"{name(hea)} has over {MAX_HEADER_BYTES} bytes, more than a header"
        )
    return raw


# ---------------------------------------------------------------- opening: every file checked


def _format_bytes(fmt: str, n: int) -> tuple[int, int]:
    """(fewest, most) bytes a file of ``n`` samples in ``fmt`` has (wfdb's ``_required_byte_num``
    for reading; writers may pad 212 to whole 3-byte and 310/311 to whole 4-byte groups)."""
    if fmt == "212":
        need = math.ceil(n * 1.5)
        return need, -(-need // 3) * 3
    if fmt in ("310", "311"):
        need = math.ceil(n * 4 / 3)
        if fmt == "310" and n % 3 == 2:
            need = -(-need // 4) * 4
        return need, -(-need // 4) * 4
    need = n * int(FORMAT_BITS[fmt]) // 8
    return need, need


def expected_sizes(header: Header, hea: str) -> dict[str, tuple[int, int]]:
    """Data file name -> (fewest, most) bytes the header implies (byte offset included).

    Rejects (``unreadable``) what cannot be sized: an unknown or compressed format, a signal
    without a data file, or one file holding signals of different formats. ``hea`` names the
    header in details.
    """
    by_file: dict[str, list[SignalSpec]] = {}
    for s in header.signals:
        if s.fmt in COMPRESSED_FORMATS:
            raise unreadable(hea, f"signal {s.name!r} is FLAC-compressed (format {s.fmt})")
        if s.fmt not in FORMAT_BITS:
            raise unreadable(hea, f"signal {s.name!r} has unknown format {s.fmt}")
        if s.file_name == "~":
            raise unreadable(hea, f"signal {s.name!r} has no data file ('~')")
        by_file.setdefault(s.file_name, []).append(s)
    sizes = {}
    for file_name, specs in by_file.items():
        if len({s.fmt for s in specs}) > 1:
            fmts = sorted({s.fmt for s in specs})
            raise unreadable(hea, f"{file_name} holds signals of formats {fmts}")
        lo, hi = _format_bytes(specs[0].fmt, header.sig_len * sum(s.samps_per_frame for s in specs))
        offset = specs[0].byte_offset  # wfdb reads every signal of a file at the first's offset
        sizes[file_name] = (lo + offset, hi + offset)
    return sizes


def _check_size(location: Location, size: int, lo: int, hi: int) -> None:
    implied = f"{lo}" if lo == hi else f"{lo} to {hi}"
    if size < lo:
        raise RecordRejected(
            "truncated_data", f"{name(location)} has {size} bytes, header implies {implied}"
        )
    if size > hi:
        raise RecordRejected(
            "size_mismatch", f"{name(location)} has {size} bytes, header implies {implied}"
        )


def _open_single(record: Location, header: Header, raw: bytes) -> RecordFiles:
    files = []
    for file_name, (lo, hi) in sorted(expected_sizes(header, f"{name(record)}.hea").items()):
        location = named_file(record, file_name, "data file")
        size = file_size(location)
        if size >= 0:
            _check_size(location, size, lo, hi)
        files.append(DataFile(file_name, location, size if size >= 0 else hi))
    return RecordFiles(record, header, raw, tuple(files), leads=header.leads)


def _open_segments(record: Location, header: Header, raw: bytes) -> RecordFiles:
    hea = f"{name(record)}.hea"
    segments: list[RecordFiles | None] = []
    for seg_name, seg_len in header.segments or ():
        if seg_name == "~":
            segments.append(None)
            continue
        seg = open_record(named_file(record, seg_name, "segment"), nested=True)
        if seg.header.fs != header.fs or seg.header.sig_len != seg_len:
            raise unreadable(
                hea,
                f"segment {seg_name} has {seg.header.sig_len} samples at {seg.header.fs:g} Hz; "
                f"the record says {seg_len} at {header.fs:g} Hz",
            )
        segments.append(seg)
    total = sum(n for _, n in header.segments or ())
    if header.sig_len and total != header.sig_len:
        raise unreadable(hea, f"segments hold {total} samples; the record says {header.sig_len}")
    present = [s for s in segments if s is not None]
    leads = present[0].leads if present else ()  # the layout segment's, or the first segment's
    for seg in present:
        if len(set(seg.leads)) != len(seg.leads):
            raise RecordRejected("duplicate_leads", f"segment {seg.header.name}: {list(seg.leads)}")
        extra = sorted(set(seg.leads) - set(leads))
        if extra:
            raise unreadable(hea, f"segment {seg.header.name} has leads {extra} not in its layout")
    return RecordFiles(
        record,
        Header(header.name, header.fs, total, segments=header.segments),
        raw,
        segments=tuple(segments),
        leads=leads,
    )


def open_record(record: Location, nested: bool = False) -> RecordFiles:
    """Read and parse ``record``'s header and check every file it names (see the module doc)."""
    hea = join(parent(record), f"{name(record)}.hea")
    raw = read_header_bytes(hea)
    header = parse_header(decode_header(raw), name(hea))
    if header.segments is None:
        if nested and header.sig_len == 0 and all(s.file_name == "~" for s in header.signals):
            return RecordFiles(record, header, raw, leads=header.leads)  # a layout segment
        return _open_single(record, header, raw)
    if nested:
        raise unreadable(name(hea), "a segment is itself a multi-segment record")
    return _open_segments(record, header, raw)


def record_contents(files: RecordFiles) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file a record reads, segments included, with bounded reads."""
    yield f"{name(files.record)}.hea", files.header_bytes
    for data in files.data:
        yield name(data.location), read_regular(data.location, data.size)
    for seg in files.segments:
        if seg is not None:
            yield from record_contents(seg)


# ---------------------------------------------------------------- reading


def gains_mv(header: Header, accept_adc_units: bool = False) -> np.ndarray:
    """Digital units per mV for each signal (float64): the header's gain over its unit in mV.

    ``uncalibrated`` for gain 0 or none, unless ``accept_adc_units`` (then 1: the signal stays in
    ADC units above its baseline); ``units`` for a unit that is not µV, mV or V.
    """
    out = []
    for s in header.signals:
        if s.gain == 0:
            if not accept_adc_units:
                raise RecordRejected(
                    "uncalibrated", f"lead {s.name}: gain 0 or none in {header.name}.hea"
                )
            out.append(1.0)
            continue
        scale = MV_PER_UNIT.get(s.units)
        if scale is None:
            raise RecordRejected("units", f"lead {s.name}: unit {s.units!r}")
        out.append(s.gain / scale)
    return np.array(out, dtype=np.float64)


def check_calibration(files: RecordFiles, accept_adc_units: bool = False) -> None:
    """:func:`gains_mv` of the record and each of its segments (``uncalibrated``, ``units``)."""
    gains_mv(files.header, accept_adc_units)
    for seg in files.segments:
        if seg is not None and seg.header.sig_len:  # a layout segment holds no samples
            check_calibration(seg, accept_adc_units)


def check_digest(location: Location, data: bytes, expected: Mapping[str, str] | None) -> None:
    """``checksum_mismatch`` (both digests) when ``expected`` lists ``location`` with another sha256.

    ``expected`` maps ``str(location)`` to the digest ``SHA256SUMS.txt`` lists; a file it does
    not list is not checked.
    """
    want = expected.get(str(location)) if expected else None
    if want is None:
        return
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise RecordRejected(
            "checksum_mismatch", f"{name(location)}: sha256 {got}, SHA256SUMS.txt lists {want}"
        )


def check_header_digests(files: RecordFiles, expected: Mapping[str, str] | None) -> None:
    """:func:`check_digest` of the header bytes already read (the record's and each segment's)."""
    if not expected:
        return
    check_digest(
        join(parent(files.record), f"{name(files.record)}.hea"), files.header_bytes, expected
    )
    for seg in files.segments:
        if seg is not None:
            check_header_digests(seg, expected)


def _check_sums(header: Header, sums: np.ndarray) -> None:
    want = np.array([s.checksum if s.checksum is not None else 0 for s in header.signals])
    given = np.array([s.checksum is not None for s in header.signals])
    bad = given & (sums % 65536 != want % 65536)
    if bad.any():
        leads = [header.signals[i].name for i in np.flatnonzero(bad)]
        raise RecordRejected("checksum_mismatch", f"leads {leads} fail the header checksum")


def _read_fast(
    files: RecordFiles, gain: np.ndarray, expected: Mapping[str, str] | None = None
) -> np.ndarray:
    header, dat = files.header, files.data[0]
    n_sig = len(header.signals)
    raw = read_regular(dat.location, header.sig_len * n_sig * 2)
    if expected:  # the whole file (the size checks make it exactly the implied bytes)
        whole = raw if len(raw) == dat.size else read_regular(dat.location, dat.size)
        check_digest(dat.location, whole, expected)
    if len(raw) < header.sig_len * n_sig * 2:  # the file shrank since it was checked
        _check_size(dat.location, len(raw), header.sig_len * n_sig * 2, header.sig_len * n_sig * 2)
    frames = np.frombuffer(raw, dtype="<i2").reshape(header.sig_len, n_sig)
    baseline = np.array([s.baseline for s in header.signals], dtype=np.float32)
    signal, sums = frames_to_leads(frames, baseline, gain.astype(np.float32), WFDB_NAN_16)
    _check_sums(header, sums)
    return signal


def _local_copy(files: RecordFiles, folder: Path) -> Path:
    """Copy a URL record's header and data files into ``folder`` (bounded reads)."""
    local = folder / name(files.record)
    (folder / f"{name(files.record)}.hea").write_bytes(files.header_bytes)
    for data in files.data:
        target = folder / data.file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read_regular(data.location, data.size))
    return local


def _read_wfdb(files: RecordFiles, gain: np.ndarray) -> np.ndarray:
    """Decode with ``wfdb.rdrecord`` (digital), then convert with the header's checked gains."""
    import wfdb

    if is_url(files.record):
        with tempfile.TemporaryDirectory() as tmp:
            local = _local_copy(files, Path(tmp))
            return _read_wfdb(RecordFiles(local, files.header, files.header_bytes), gain)
    header = files.header
    try:
        rec = wfdb.rdrecord(str(files.record), physical=False)
    except Exception as exc:  # wfdb raises many types for bad files; all mean unreadable
        raise RecordRejected("unreadable", f"{type(exc).__name__}: {exc}") from None
    d = rec.d_signal
    if d is None or d.ndim != 2 or d.shape != (header.sig_len, len(header.signals)):
        raise RecordRejected("unreadable", f"wfdb read {getattr(d, 'shape', None)} samples")
    if all(s.samps_per_frame == 1 and s.skew == 0 for s in header.signals):
        _check_sums(header, d.astype(np.int64).sum(axis=0))
    base = np.array([s.baseline for s in header.signals], dtype=np.float64)
    signal = (d.T.astype(np.float64) - base[:, None]) / gain[:, None]
    for i, s in enumerate(header.signals):
        if s.fmt in INVALID_SAMPLE:
            signal[i, d[:, i] == INVALID_SAMPLE[s.fmt]] = np.nan
    return signal.astype(np.float32)


def _check_data_digests(files: RecordFiles, expected: Mapping[str, str] | None) -> None:
    """Read and check the data files ``expected`` lists (the wfdb path reads them itself)."""
    for data in files.data:
        if expected and str(data.location) in expected:
            check_digest(data.location, read_regular(data.location, data.size), expected)


def _read_segments(
    files: RecordFiles,
    fast: bool,
    accept_adc_units: bool,
    expected: Mapping[str, str] | None = None,
) -> np.ndarray:
    """A multi-segment record's segments one after another, by lead name; NaN where absent."""
    position = {lead: i for i, lead in enumerate(files.leads)}
    out = np.full((len(files.leads), files.header.sig_len), np.nan, dtype=np.float32)
    start = 0
    for (_, seg_len), seg in zip(files.header.segments or (), files.segments):
        if seg is not None and seg_len:  # a layout segment (length 0) only names the leads
            part = read_signal(seg, fast, accept_adc_units, expected).signal
            out[[position[lead] for lead in seg.leads], start : start + seg_len] = part
        start += seg_len
    return out


def read_signal(
    files: RecordFiles,
    fast: bool = True,
    accept_adc_units: bool = False,
    expected: Mapping[str, str] | None = None,
) -> RawRecord:
    """The physical signal (mV) of an opened record; reads at most the bytes its header implies.

    ``expected`` (``str(location)`` -> sha256, from ``SHA256SUMS.txt``): the data bytes read are
    checked against it (:func:`check_digest`); the fast path hashes the bytes it reads anyway.
    """
    header = files.header
    if header.segments is not None:
        signal = _read_segments(files, fast, accept_adc_units, expected)
    elif not header.signals:
        signal = np.zeros((0, header.sig_len), dtype=np.float32)
    else:
        gain = gains_mv(header, accept_adc_units)
        if fast and is_fast(header):
            signal = _read_fast(files, gain, expected)
        else:
            _check_data_digests(files, expected)
            signal = _read_wfdb(files, gain)
    return RawRecord(signal=signal, leads=files.leads, fs=header.fs)


def read_record(record: Location, fast: bool = True, accept_adc_units: bool = False) -> RawRecord:
    """Read the WFDB record at ``record`` (path or URL, no extension) as physical mV, leads x samples."""
    return read_signal(open_record(record), fast, accept_adc_units)
