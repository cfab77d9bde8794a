"""WFDB headers: the record and signal lines parsed into a :class:`Header` (bounded, strict).

Why a hand-written header parser: ``wfdb`` reads local headers as ASCII dropping every other byte
(``µV`` becomes ``V``), replaces gain 0 and a missing gain by 200 (uncalibrated signals come out
scaled, e.g. PTB-XL's every lead x5), treats every line after the record line as a signal line
whatever ``n_sig`` says, parses a negative rate as a counter frequency (and then uses 250 Hz), and
costs ~4 ms per record. The fields follow wfdb's grammar (``wfdb.io.header.rx_record`` and
``rx_signal``; a missing rate is WFDB's 250 Hz) except where wfdb guesses: a missing signal length
is 0 here (wfdb infers it from the file size), so a data file with samples is ``size_mismatch``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

from pipeline.errors import RecordRejected

MAX_HEADER_BYTES = 1 << 20  # a WFDB header is a few hundred bytes; more is not a header
DEFAULT_FS = 250.0  # WFDB's sampling rate when the record line gives none

# Bits per sample of the formats wfdb decodes (wfdb.io._signal.BYTES_PER_SAMPLE x 8), and each
# format's "no sample" value (wfdb.io._signal.INVALID_SAMPLE_VALUE; format 8 has none).
FORMAT_BITS = {
    "8": 8,
    "16": 16,
    "24": 24,
    "32": 32,
    "61": 16,
    "80": 8,
    "160": 16,
    "212": 12,
    "310": 32 / 3,
    "311": 32 / 3,
}
INVALID_SAMPLE = {
    "80": -128,
    "310": -512,
    "311": -512,
    "212": -2048,
    "16": -32768,
    "61": -32768,
    "160": -32768,
    "24": -8388608,
    "32": -2147483648,
}
COMPRESSED_FORMATS = {"508", "516", "524"}  # FLAC: no size follows from the header
MV_PER_UNIT = {"mV": 1.0, "mv": 1.0, "uV": 1e-3, "uv": 1e-3, "µV": 1e-3, "μV": 1e-3, "V": 1e3}

_FORMAT_FIELD = re.compile(r"(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?")
_GAIN_FIELD = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\((-?\d+)\))?(?:/(.*))?")


class SignalSpec(NamedTuple):
    """One signal line of a header (the fields the reader uses; a tuple: ~10x cheaper to make)."""

    file_name: str
    fmt: str
    samps_per_frame: int = 1
    skew: int = 0
    byte_offset: int = 0
    gain: float = 0.0  # 0: the header gives none or 0 (WFDB's "uncalibrated")
    baseline: int = 0
    units: str = "mV"
    checksum: int | None = None
    name: str = ""


@dataclass(frozen=True)
class Header:
    """A parsed WFDB header: one segment (``signals``) or several (``segments``: name, length)."""

    name: str
    fs: float
    sig_len: int
    signals: tuple[SignalSpec, ...] = ()
    segments: tuple[tuple[str, int], ...] | None = None

    @property
    def leads(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signals)


def decode_header(raw: bytes) -> str:
    """Header text: UTF-8, else Latin-1 (WFDB headers are ASCII; a stray ``µ`` is Latin-1's)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# ---------------------------------------------------------------- header parsing


def unreadable(hea: str, detail: str) -> RecordRejected:
    """The rejection of a header that cannot be used, naming it."""
    return RecordRejected("unreadable", f"{hea}: {detail}")


def _parse_signal(line: str, hea: str, index: int) -> SignalSpec:
    """One signal line (``file fmt[xspf][:skew][+offset] gain(baseline)/units res zero init
    checksum block description``); fields after the format are optional, in order."""
    tokens = line.split()
    if len(tokens) < 2:
        raise unreadable(hea, f"signal line {index + 1} {line!r} has no format")
    fmt = _FORMAT_FIELD.fullmatch(tokens[1])
    if fmt is None:
        raise unreadable(hea, f"signal line {index + 1}: format field {tokens[1]!r}")
    code, spf, skew, offset = fmt.groups()
    gain, baseline, units = 0.0, None, "mV"
    if len(tokens) > 2:
        g = _GAIN_FIELD.fullmatch(tokens[2])
        if g is None:
            raise unreadable(hea, f"signal line {index + 1}: gain field {tokens[2]!r}")
        gain = float(g.group(1))
        baseline = int(g.group(2)) if g.group(2) is not None else None
        units = g.group(3) if g.group(3) else "mV"
    try:
        ints = [int(t) for t in tokens[3:7]]  # adc_res, adc_zero, init_value, checksum
    except ValueError:
        raise unreadable(hea, f"signal line {index + 1}: {' '.join(tokens[3:7])!r}") from None
    if baseline is None:  # wfdb: a missing baseline is the ADC zero
        baseline = ints[1] if len(ints) > 1 else 0
    return SignalSpec(
        file_name=tokens[0],
        fmt=code,
        samps_per_frame=int(spf or 1),
        skew=int(skew or 0),
        byte_offset=int(offset or 0),
        gain=gain,
        baseline=baseline,
        units=units,
        checksum=ints[3] if len(ints) > 3 else None,
        name=" ".join(tokens[8:]),
    )


def parse_header(text: str, hea: str = "header") -> Header:
    """Parse a WFDB header (single- or multi-segment); ``unreadable`` with the reason otherwise.

    ``hea`` names the file in rejection details.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise unreadable(hea, "no record line")
    rec = lines[0].split()
    if len(rec) < 2:
        raise unreadable(hea, f"record line {lines[0]!r}")
    record_name, _, n_seg_text = rec[0].partition("/")
    try:
        n_sig = int(rec[1])
        n_seg = int(n_seg_text) if n_seg_text else None
        fs = float(rec[2].split("/")[0]) if len(rec) > 2 else DEFAULT_FS
        sig_len = int(rec[3]) if len(rec) > 3 else 0
    except ValueError:
        raise unreadable(hea, f"record line {lines[0]!r}") from None
    if not (math.isfinite(fs) and fs > 0):
        raise RecordRejected("unreadable", f"sampling rate {fs}")
    if n_sig < 0 or sig_len < 0 or (n_seg is not None and n_seg < 1):
        raise unreadable(hea, f"record line {lines[0]!r}")
    body = lines[1:]
    want = n_sig if n_seg is None else n_seg
    if len(body) != want:
        kind = "signals" if n_seg is None else "segments"
        raise unreadable(hea, f"the record line declares {want} {kind}; {len(body)} lines follow")
    if n_seg is not None:
        segments = []
        for line in body:
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise unreadable(hea, f"segment line {line!r}")
            segments.append((parts[0], int(parts[1])))
        return Header(record_name, fs, sig_len, segments=tuple(segments))
    signals = tuple(_parse_signal(line, hea, i) for i, line in enumerate(body))
    return Header(record_name, fs, sig_len, signals=signals)


def is_fast(header: Header) -> bool:
    """True when numpy reads the record: one format-16 file, no offset, skew or extra samples."""
    s = header.signals
    return (
        header.segments is None
        and bool(s)
        and len({x.file_name for x in s}) == 1
        and all(
            x.fmt == "16" and x.samps_per_frame == 1 and x.skew == 0 and x.byte_offset == 0
            for x in s
        )
    )
