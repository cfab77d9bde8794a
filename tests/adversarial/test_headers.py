"""Adversarial WFDB headers and data files: each case is kept with the right data or rejected with
its reason (issue 11, items 2 and 6).

Every case is a copy of the real PTB-XL record 06000_hr with its header or files edited (ids
7100...). All cases go through one real build (``meit-corpus build``), run in a child process
under a time limit and an address-space limit: a FIFO that blocks a read, or a device read without
bound, fails the case table instead of hanging or exhausting the machine. A kept case's signal is
compared with the clean copy's row in the same corpus (``same``: equal float16 values; ``close``:
equal within format 212's 5 uV quantisation; ``negated``: the clean signal times -1).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.build import build_corpus
from pipeline.conditioning import load_one
from pipeline.config import BuildConfig, SignalConfig
from pipeline.errors import RecordRejected
from schemas import REJECTIONS, read_manifest
from tests.conftest import REPO

SAMPLE = "records500/06000/06000_hr"
FIRST_ID = 7100
BUILD_TIMEOUT_S = 120  # the build takes ~5 s
# Address space of the build process (it peaks near 3 GiB, mostly reserved, ~0.4 GiB resident):
# a read without bound (/dev/zero, the sparse 8 GiB file) fails fast instead of filling the RAM.
MEMORY_LIMIT = 6 << 30
FEW_THREADS = {"POLARS_MAX_THREADS": "2", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


# ---------------------------------------------------------------- a record and its edits


@dataclass(frozen=True)
class Rec:
    """One case's record: ``folder/stem.hea`` and ``folder/stem.dat`` (a copy of 06000_hr)."""

    folder: Path
    stem: str
    outside: Path  # a folder outside the dataset root

    @property
    def hea(self) -> Path:
        return self.folder / f"{self.stem}.hea"

    @property
    def dat(self) -> Path:
        return self.folder / f"{self.stem}.dat"

    def text(self) -> str:
        return self.hea.read_text(encoding="utf-8")

    def write(self, text: str, encoding: str = "utf-8") -> None:
        self.hea.write_bytes(text.encode(encoding))

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def frames(self) -> np.ndarray:
        """The digital samples (samples x leads, int16)."""
        return np.fromfile(self.dat, dtype="<i2").reshape(5000, 12)


Edit = Callable[[Rec], None]


def sub(old: str, new: str, count: int = -1) -> Edit:
    """Replace ``old`` by ``new`` in the header (``{stem}`` stands for the record's name)."""

    def edit(r: Rec) -> None:
        text, o, n = r.text(), old.format(stem=r.stem), new.format(stem=r.stem)
        assert o in text, (o, text)
        r.write(text.replace(o, n, count))

    return edit


def record_line(line: str) -> Edit:
    def edit(r: Rec) -> None:
        r.write("\n".join([line.format(stem=r.stem), *r.lines()[1:]]) + "\n")

    return edit


def signal_field(index: int, value: str, lines: slice = slice(1, 13)) -> Edit:
    """Set field ``index`` (0 = file name) of the signal lines ``lines``."""

    def edit(r: Rec) -> None:
        out = r.lines()
        for i in range(*lines.indices(len(out))):
            parts = out[i].split(" ")
            parts[index] = value.format(stem=r.stem)
            out[i] = " ".join(parts)
        r.write("\n".join(out) + "\n")

    return edit


def data_bytes(change: Callable[[bytes], bytes]) -> Edit:
    def edit(r: Rec) -> None:
        r.dat.write_bytes(change(r.dat.read_bytes()))

    return edit


def replace_dat(make: Callable[[Rec], None]) -> Edit:
    def edit(r: Rec) -> None:
        r.dat.unlink()
        make(r)

    return edit


def both(*edits: Edit) -> Edit:
    def edit(r: Rec) -> None:
        for e in edits:
            e(r)

    return edit


def checksum(column: np.ndarray) -> int:
    """WFDB's checksum: the 16-bit two's-complement sum of a signal's samples."""
    return (int(column.astype(np.int64).sum()) + 32768) % 65536 - 32768


def reformat(fmt: str, encode: Callable[[np.ndarray], bytes]) -> Edit:
    """Re-encode the samples in another format (same values, same checksums)."""

    def edit(r: Rec) -> None:
        d = r.frames()
        r.dat.write_bytes(encode(d))
        sub(f"{r.stem}.dat 16 ", f"{r.stem}.dat {fmt} ")(r)

    return edit


def to_24(d: np.ndarray) -> bytes:
    return d.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def with_wfdb(fmt: str, gain: float) -> Edit:
    """Rewrite the record with ``wfdb.wrsamp`` in ``fmt`` at ``gain`` (from its physical signal)."""

    def edit(r: Rec) -> None:
        import wfdb

        rec = wfdb.rdrecord(str(r.folder / r.stem))
        wfdb.wrsamp(
            r.stem,
            fs=500,
            units=["mV"] * 12,
            sig_name=rec.sig_name,
            p_signal=rec.p_signal,
            fmt=[fmt] * 12,
            adc_gain=[gain] * 12,
            baseline=[0] * 12,
            write_dir=str(r.folder),
        )

    return edit


def reorder(order: list[int]) -> Edit:
    """Put the leads (header lines and data columns) in another order."""

    def edit(r: Rec) -> None:
        lines = r.lines()
        r.dat.write_bytes(np.ascontiguousarray(r.frames()[:, order]).tobytes())
        r.write("\n".join([lines[0], *[lines[1 + i] for i in order]]) + "\n")

    return edit


def extra_leads(names: list[str]) -> Edit:
    """Add leads (copies of V1's samples) after the 12: header lines and interleaved data."""

    def edit(r: Rec) -> None:
        d = r.frames()
        d = np.concatenate([d] + [d[:, 6:7]] * len(names), axis=1)
        lines = r.lines()
        v1 = lines[7].split(" ")
        new = [" ".join([*v1[:6], str(checksum(d[:, 6])), "0", n]) for n in names]
        head = lines[0].split(" ")
        head[1] = str(12 + len(names))
        r.write("\n".join([" ".join(head), *lines[1:], *new]) + "\n")
        r.dat.write_bytes(np.ascontiguousarray(d).tobytes())

    return edit


def fifo(path_of: Callable[[Rec], Path]) -> Edit:
    def edit(r: Rec) -> None:
        p = path_of(r)
        p.unlink()
        os.mkfifo(p)

    return edit


def symlink(path_of: Callable[[Rec], Path], target: Callable[[Rec], str]) -> Edit:
    def edit(r: Rec) -> None:
        p = path_of(r)
        t = target(r)
        p.unlink()
        os.symlink(t, p)

    return edit


def directory(path_of: Callable[[Rec], Path]) -> Edit:
    def edit(r: Rec) -> None:
        p = path_of(r)
        p.unlink()
        p.mkdir()

    return edit


def outside_copy(r: Rec) -> str:
    target = r.outside / f"{r.stem}.dat"
    shutil.copy(r.dat, target)
    return str(target)


def sparse(size: int) -> Edit:
    def edit(r: Rec) -> None:
        os.truncate(r.dat, size)

    return edit


def segmented(
    lengths: tuple[int, ...] = (2500, 2500),
    layout: bool = False,
    gap: int | None = None,
    names: dict[int, str] | None = None,
    change: Callable[[int, str, str], str] | None = None,
) -> Edit:
    """Cut the record into a multi-segment record: ``stem/N``, segments ``stem_1``... each with its
    own header and data file; ``layout`` adds a layout segment first, ``gap`` makes segment
    ``gap`` a ``~`` gap, ``names`` renames segments in the master header, ``change(i, name,
    text)`` edits segment ``i``'s header text."""

    def edit(r: Rec) -> None:
        d, lines = r.frames(), r.lines()
        r.dat.unlink()
        seg_lines, start = [], 0
        if layout:
            sig = [f"~ 0 1000.0(0)/mV 16 0 0 0 0 {ln.split(' ', 8)[8]}" for ln in lines[1:]]
            (r.folder / f"{r.stem}_0.hea").write_text(f"{r.stem}_0 12 500 0\n" + "\n".join(sig))
            seg_lines.append(f"{r.stem}_0 0")
        for i, n in enumerate(lengths, 1):
            seg = f"{r.stem}_{i}"
            part = d[start : start + n]
            start += n
            if gap == i:
                seg_lines.append(f"~ {n}")
                continue
            (r.folder / f"{seg}.dat").write_bytes(np.ascontiguousarray(part).tobytes())
            sig = []
            for j, ln in enumerate(lines[1:]):
                p = ln.split(" ")
                p[0], p[6] = f"{seg}.dat", str(checksum(part[:, j]))
                sig.append(" ".join(p))
            text = f"{seg} 12 500 {n}\n" + "\n".join(sig) + "\n"
            (r.folder / f"{seg}.hea").write_text(change(i, seg, text) if change else text)
            seg_lines.append(f"{(names or {}).get(i, seg)} {n}")
        head = f"{r.stem}/{len(seg_lines)} 12 500 {sum(lengths)}"
        r.write("\n".join([head, *seg_lines]) + "\n")

    return edit


def seg_file(i: int, ext: str) -> Callable[[Rec], Path]:
    return lambda r: r.folder / f"{r.stem}_{i}.{ext}"


# ---------------------------------------------------------------- the case table


@dataclass(frozen=True)
class Case:
    name: str
    edit: Edit
    reason: str | None = None  # None: kept
    detail: str = ""  # the ledger detail contains this ({stem} = the record's name)
    data: str = "same"  # kept: "same", "close" or "negated" compared with the clean copy


CASES = [
    Case("clean copy", lambda r: None),
    # (a) every file a record reads is inside the root
    Case(
        "data file named by an absolute path",
        lambda r: signal_field(0, outside_copy(r))(r),
        "path_outside_root",
        "names data file '/",
    ),
    Case(
        "data file named with ../ out of the root",
        both(
            lambda r: outside_copy(r),
            lambda r: signal_field(0, f"../../../{r.outside.name}/{r.stem}.dat")(r),
        ),
        "path_outside_root",
        "names data file '../../../outside/",
    ),
    Case(
        "data file named with ../ that stays inside",
        signal_field(0, "../07000/{stem}.dat"),
        "path_outside_root",
        "'../07000/",
    ),
    Case("data file named by a URL", signal_field(0, "file:///etc/passwd"), "path_outside_root"),
    Case(
        "data file in a subfolder of the record's",
        both(
            lambda r: (r.folder / "sub").mkdir(),
            lambda r: r.dat.rename(r.folder / "sub" / r.dat.name),
            signal_field(0, "sub/{stem}.dat"),
        ),
    ),
    Case(
        "data file a symlink to a regular file outside (followed, as documented)",
        symlink(lambda r: r.dat, outside_copy),
    ),
    # (b) only regular files are read
    Case(
        "data file a symlink to /dev/zero",
        symlink(lambda r: r.dat, lambda r: "/dev/zero"),
        "unreadable",
        "{stem}.dat is a character device, not a regular file",
    ),
    Case(
        "data file a FIFO",
        fifo(lambda r: r.dat),
        "unreadable",
        "{stem}.dat is a FIFO, not a regular file",
    ),
    Case(
        "data file a directory",
        directory(lambda r: r.dat),
        "unreadable",
        "{stem}.dat is a directory, not a regular file",
    ),
    Case(
        "data file a dangling symlink",
        symlink(lambda r: r.dat, lambda r: str(r.outside / "nothing.dat")),
        "missing_file",
        "{stem}.dat not found",
    ),
    Case("data file missing", lambda r: r.dat.unlink(), "missing_file", "{stem}.dat not found"),
    Case(
        "header a FIFO",
        fifo(lambda r: r.hea),
        "unreadable",
        "{stem}.hea is a FIFO, not a regular file",
    ),
    Case(
        "header a symlink to /dev/zero",
        symlink(lambda r: r.hea, lambda r: "/dev/zero"),
        "unreadable",
        "{stem}.hea is a character device",
    ),
    Case(
        "header a directory",
        directory(lambda r: r.hea),
        "unreadable",
        "{stem}.hea is a directory",
    ),
    Case(
        "header over 1 MiB (a huge comment)",
        lambda r: r.write(r.text() + "#" + "x" * (1 << 20) + "\n"),
        "size_mismatch",
        "{stem}.hea has over 1048576 bytes, more than a header",
    ),
    # (c) a data file's size is what its header implies
    Case(
        "data file one byte longer",
        data_bytes(lambda b: b + b"\0"),
        "size_mismatch",
        "{stem}.dat has 120001 bytes, header implies 120000",
    ),
    Case(
        "data file twice as long",
        data_bytes(lambda b: b + b),
        "size_mismatch",
        "{stem}.dat has 240000 bytes, header implies 120000",
    ),
    Case(
        "data file a sparse 8 GiB file",
        sparse(8 << 30),
        "size_mismatch",
        f"{{stem}}.dat has {8 << 30} bytes, header implies 120000",
    ),
    Case(
        "data file one byte short",
        data_bytes(lambda b: b[:-1]),
        "truncated_data",
        "{stem}.dat has 119999 bytes, header implies 120000",
    ),
    Case(
        "data file empty",
        data_bytes(lambda b: b""),
        "truncated_data",
        "{stem}.dat has 0 bytes, header implies 120000",
    ),
    Case(
        "sig_len 0",
        record_line("{stem} 12 500 0"),
        "size_mismatch",
        "{stem}.dat has 120000 bytes, header implies 0",
    ),
    Case(
        "no sig_len",
        record_line("{stem} 12 500"),
        "size_mismatch",
        "header implies 0",
    ),
    Case(
        "sig_len twice the data",
        record_line("{stem} 12 500 10000"),
        "truncated_data",
        "header implies 240000",
    ),
    Case(
        "sig_len half the data",
        record_line("{stem} 12 500 2500"),
        "size_mismatch",
        "header implies 60000",
    ),
    Case(
        "byte offset with its prefix in the file",
        both(signal_field(1, "16+512"), data_bytes(lambda b: bytes(512) + b)),
    ),
    Case(
        "byte offset without the prefix",
        signal_field(1, "16+512"),
        "truncated_data",
        "header implies 120512",
    ),
    Case(
        "two samples per frame, data for one",
        signal_field(1, "16x2"),
        "truncated_data",
        "header implies 240000",
    ),
    # formats: the same samples in each format wfdb decodes are the same record
    Case("format 24", reformat("24", to_24)),
    Case("format 32", reformat("32", lambda d: d.astype("<i4").tobytes())),
    Case("format 61 (big-endian)", reformat("61", lambda d: d.astype(">i2").tobytes())),
    Case(
        "format 160 (offset binary)",
        reformat("160", lambda d: (d.astype(np.int32) + 32768).astype("<u2").tobytes()),
    ),
    Case("format 212 (wfdb.wrsamp)", with_wfdb("212", 200.0), data="close"),
    Case(
        "format 212 with 3 extra bytes",
        both(with_wfdb("212", 200.0), data_bytes(lambda b: b + b"\0\0\0")),
        "size_mismatch",
        "{stem}.dat has 90003 bytes, header implies 90000",
    ),
    Case(
        "format 212 with a flipped sample",
        both(
            with_wfdb("212", 200.0), data_bytes(lambda b: b[:900] + bytes([b[900] ^ 8]) + b[901:])
        ),
        "checksum_mismatch",
        "fail the header checksum",
    ),
    Case(
        "unknown format 17",
        signal_field(1, "17"),
        "unreadable",
        "has unknown format 17",
    ),
    Case(
        "FLAC format 516",
        signal_field(1, "516"),
        "unreadable",
        "FLAC-compressed (format 516)",
    ),
    Case(
        "one file with two formats",
        signal_field(1, "24", slice(1, 2)),
        "unreadable",
        "holds signals of formats ['16', '24']",
    ),
    # header structure
    Case(
        "header declares 13 signals, has 12",
        record_line("{stem} 13 500 5000"),
        "unreadable",
        "the record line declares 13 signals; 12 lines follow",
    ),
    Case(
        "header declares 11 signals, has 12",
        record_line("{stem} 11 500 5000"),
        "unreadable",
        "the record line declares 11 signals; 12 lines follow",
    ),
    Case(
        "no signals",
        lambda r: r.write(f"{r.stem} 0 500 5000\n"),
        "missing_leads",
        "record has []",
    ),
    Case("empty header", lambda r: r.write(""), "unreadable", "no record line"),
    Case("record line only a name", record_line("{stem}"), "unreadable", "record line"),
    Case("fs 0", record_line("{stem} 12 0 5000"), "unreadable", "sampling rate 0.0"),
    Case("fs negative", record_line("{stem} 12 -500 5000"), "unreadable", "sampling rate -500.0"),
    Case("fs inf", record_line("{stem} 12 inf 5000"), "unreadable", "sampling rate inf"),
    Case("fs not a number", record_line("{stem} 12 fast 5000"), "unreadable", "record line"),
    Case(
        "fs 250 for 500 Hz data",
        record_line("{stem} 12 250 5000"),
        "wrong_length",
        "20.00 s, expected 10 s",
    ),
    Case("fs with counter frequency", record_line("{stem} 12 500/1000(0) 5000")),
    Case("CRLF line ends", lambda r: r.write(r.text().replace("\n", "\r\n"))),
    Case("tabs between fields", lambda r: r.write(r.text().replace(" ", "\t"))),
    Case(
        "checksum in the header wrong",
        signal_field(6, "1234", slice(3, 4)),
        "checksum_mismatch",
        "leads ['III'] fail the header checksum",
    ),
    Case(
        "sample flipped in the data",
        data_bytes(lambda b: b[:1000] + bytes([b[1000] ^ 0x40]) + b[1001:]),
        "checksum_mismatch",
        "fail the header checksum",
    ),
    Case(
        "baseline 100 and data +100",
        both(
            signal_field(2, "1000.0(100)/mV"),
            lambda r: reformat("16", lambda d: (d + 100).astype("<i2").tobytes())(r),
            lambda r: [
                signal_field(6, str(checksum(r.frames()[:, j])), slice(j + 1, j + 2))(r)
                for j in range(12)
            ],
        ),
    ),
    Case("negative gain", signal_field(2, "-1000.0(0)/mV"), data="negated"),
    # leads
    Case("lead names lower case", sub(" AVR\n", " avr\n")),
    Case(
        "MIMIC lead order (aVF before aVL), data reordered",
        reorder([0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11]),
    ),
    Case("15 leads (Frank X Y Z after the 12)", extra_leads(["vx", "vy", "vz"])),
    Case("wrong lead name", sub(" V4\n", " V7\n"), "missing_leads", "missing ['V4']"),
    Case("duplicated lead name", sub(" V4\n", " V5\n"), "duplicate_leads", "'V5', 'V5'"),
    Case(
        "signal lines without lead names",
        lambda r: r.write(
            "\n".join([r.lines()[0], *(ln.rsplit(" ", 1)[0] for ln in r.lines()[1:])])
        ),
        "duplicate_leads",
    ),
    # (e) calibration
    Case(
        "gain 0 (uncalibrated)",
        signal_field(2, "0(0)/mV"),
        "uncalibrated",
        "lead I: gain 0 or none",
    ),
    Case(
        "no gain field",
        lambda r: r.write(
            "\n".join([r.lines()[0], *(" ".join(ln.split(" ")[:2]) for ln in r.lines()[1:])])
        ),
        "uncalibrated",
        "gain 0 or none",
    ),
    Case(
        "gain not a number", signal_field(2, "high(0)/mV"), "unreadable", "gain field 'high(0)/mV'"
    ),
    # (f) units
    Case("units uV", signal_field(2, "1.0(0)/uV")),
    Case("units \u00b5V (UTF-8)", signal_field(2, "1.0(0)/\u00b5V")),
    Case(
        "units \u00b5V in a Latin-1 header (not UTF-8)",
        lambda r: r.hea.write_bytes(r.hea.read_bytes().replace(b"1000.0(0)/mV", b"1.0(0)/\xb5V")),
    ),
    Case("units V", signal_field(2, "1000000.0(0)/V")),
    Case("units mv", signal_field(2, "1000.0(0)/mv")),
    Case("no units (mV by default)", signal_field(2, "1000.0(0)")),
    Case("units mmHg", signal_field(2, "1000.0(0)/mmHg"), "units", "lead I: unit 'mmHg'"),
    Case(
        "comment not UTF-8",
        lambda r: r.write(r.text() + "# \u00c4rztin: M\u00fcller\n", "latin-1"),
    ),
    # multi-segment records: every segment file checked, read and fingerprinted
    Case("two segments", segmented()),
    Case("layout segment and two segments", segmented(layout=True)),
    Case("three uneven segments", segmented((1000, 3000, 1000))),
    Case(
        "a gap segment (~)",
        segmented(gap=2),
        "too_much_nan",
    ),
    Case(
        "segment named with ../",
        segmented(names={2: "../../../x"}),
        "path_outside_root",
        "names segment '../../../x'",
    ),
    Case(
        "segment named by an absolute path",
        segmented(names={2: "/etc/passwd"}),
        "path_outside_root",
        "names segment '/etc/passwd'",
    ),
    Case(
        "segment header missing",
        both(segmented(), lambda r: seg_file(2, "hea")(r).unlink()),
        "missing_file",
        "{stem}_2.hea not found",
    ),
    Case(
        "segment data a FIFO",
        both(segmented(), fifo(seg_file(1, "dat"))),
        "unreadable",
        "{stem}_1.dat is a FIFO",
    ),
    Case(
        "segment data a symlink to /dev/zero",
        both(segmented(), symlink(seg_file(2, "dat"), lambda r: "/dev/zero")),
        "unreadable",
        "{stem}_2.dat is a character device",
    ),
    Case(
        "segment data longer than its header implies",
        both(segmented(), lambda r: seg_file(2, "dat")(r).open("ab").write(b"\0\0")),
        "size_mismatch",
        "{stem}_2.dat has 60002 bytes, header implies 60000",
    ),
    Case(
        "segment data names a file outside",
        segmented(change=lambda i, seg, t: t.replace(f"{seg}.dat", "/etc/passwd") if i == 2 else t),
        "path_outside_root",
        "names data file '/etc/passwd'",
    ),
    Case(
        "segment length differs from its header",
        both(segmented(), sub("{stem}_1 2500\n{stem}_2 2500", "{stem}_1 2400\n{stem}_2 2600")),
        "unreadable",
        "{stem}_1 has 2500 samples at 500 Hz; the record says 2400",
    ),
    Case(
        "segments shorter than the record",
        both(segmented(), sub("{stem}/2 12 500 5000", "{stem}/2 12 500 6000")),
        "unreadable",
        "segments hold 5000 samples; the record says 6000",
    ),
    Case(
        "segment uncalibrated",
        segmented(change=lambda i, seg, t: t.replace("1000.0(0)/mV", "0(0)/mV") if i == 2 else t),
        "uncalibrated",
        "gain 0 or none in",
    ),
    Case(
        "segment in microvolts",
        segmented(change=lambda i, seg, t: t.replace("1000.0(0)/mV", "1.0(0)/uV") if i == 1 else t),
    ),
    Case(
        "segment itself multi-segment",
        segmented(change=lambda i, seg, t: f"{seg}/1 12 500 2500\nx 2500\n" if i == 2 else t),
        "unreadable",
        "a segment is itself a multi-segment record",
    ),
]
IDS = {c.name: FIRST_ID + i for i, c in enumerate(CASES)}
assert len(IDS) == len(CASES), "case names must be unique"


def record_rel(ecg_id: int) -> str:
    return f"records500/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_hr"


def make_root(sample: Path, root: Path, outside: Path, cases: list[Case]) -> None:
    """A PTB-XL folder holding one edited copy of 06000_hr per case, and its metadata."""
    root.mkdir(parents=True)
    outside.mkdir(parents=True, exist_ok=True)
    shutil.copy(sample / "scp_statements.csv", root)
    with open(sample / "ptbxl_database.csv", newline="") as f:
        reader = csv.DictReader(f)
        fields, template = reader.fieldnames, next(r for r in reader if r["ecg_id"] == "6000")
    rows = []
    for case in cases:
        ecg_id = IDS[case.name]
        rel = record_rel(ecg_id)
        r = Rec((root / rel).parent, Path(rel).name, outside)
        r.folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample / f"{SAMPLE}.dat", r.dat)
        r.write((sample / f"{SAMPLE}.hea").read_text().replace("06000_hr", r.stem))
        case.edit(r)
        rows.append(dict(template, ecg_id=str(ecg_id), patient_id=f"{ecg_id}.0", filename_hr=rel))
    with open(root / "ptbxl_database.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def run_build(root: Path, out: Path) -> subprocess.CompletedProcess:
    """``meit-corpus build`` in a child process, under a time and an address-space limit."""
    code = (
        f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, "
        f"{MEMORY_LIMIT})); from pipeline.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = ["build", "--ptbxl", str(root), "--out", str(out), "--workers", "1"]
    try:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=REPO,
            env={**os.environ, **FEW_THREADS},  # thread stacks count against the limit
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the build did not finish in {BUILD_TIMEOUT_S} s (a blocked read?): {exc}")


@dataclass(frozen=True)
class Built:
    root: Path
    out: Path
    ledger: dict[str, tuple[str, str]]  # record id -> (reason, detail)
    ecg: dict[str, np.ndarray]  # record id -> (12, 5000) float16


def read_corpus(root: Path, out: Path) -> Built:
    ledger = {
        r["record_id"]: (r["reason"], r["detail"])
        for r in pq.read_table(out / REJECTIONS).to_pylist()
    }
    ecg = {}
    for f in read_manifest(out).files:
        table = pq.read_table(out / f.path, columns=["id", "ecg"]).to_pylist()
        ecg.update({r["id"].split("/")[1]: np.asarray(r["ecg"], np.float16) for r in table})
    return Built(root, out, ledger, ecg)


def corpus_digest(out: Path) -> dict[str, str]:
    """sha256 of every shard and of the ledger."""
    manifest = read_manifest(out)
    paths = [f.path for f in manifest.files] + [REJECTIONS]
    return {p: hashlib.sha256((out / p).read_bytes()).hexdigest() for p in sorted(paths)}


@pytest.fixture(scope="module")
def built(ptbxl_sample: Path, tmp_path_factory) -> Built:
    base = tmp_path_factory.mktemp("headers")
    root, out = base / "ptbxl", base / "corpus"
    make_root(ptbxl_sample, root, base / "outside", CASES)
    proc = run_build(root, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return read_corpus(root, out)


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_outcome(built: Built, case: Case):
    rid = str(IDS[case.name])
    stem = Path(record_rel(IDS[case.name])).name
    if case.reason is not None:
        assert rid not in built.ecg
        reason, detail = built.ledger.get(rid, ("kept", ""))
        assert reason == case.reason, detail
        assert case.detail.format(stem=stem) in detail
        return
    assert rid not in built.ledger, built.ledger.get(rid)
    clean = built.ecg[str(FIRST_ID)].astype(np.float32)
    got = built.ecg[rid].astype(np.float32)
    if case.data == "same":
        np.testing.assert_array_equal(got, clean)
    elif case.data == "negated":
        np.testing.assert_array_equal(got, -clean)
    else:
        np.testing.assert_allclose(got, clean, rtol=2**-10, atol=2.6e-3)


def test_clean_copy_is_the_real_record(built: Built, ptbxl_sample: Path):
    """The reference every kept case is compared with is the real record, read by wfdb."""
    import wfdb

    from pipeline.leads import canonical_order

    rec = wfdb.rdrecord(str(ptbxl_sample / SAMPLE))
    want = rec.p_signal.T[canonical_order(rec.sig_name)].astype(np.float16)
    np.testing.assert_array_equal(built.ecg[str(FIRST_ID)], want)


def test_rerun_and_clean_build_equal_the_first(built: Built, tmp_path: Path):
    """A rerun into the same folder changes nothing; a fresh build is byte-identical."""
    first = corpus_digest(built.out)
    assert run_build(built.root, built.out).returncode == 0
    assert corpus_digest(built.out) == first
    assert run_build(built.root, tmp_path / "again").returncode == 0
    assert corpus_digest(tmp_path / "again") == first


def test_editing_a_segment_file_rebuilds_its_shard(ptbxl_sample: Path, tmp_path: Path):
    """(d) Fingerprints cover segment files: an edit in segment 2's data (two samples swapped, so
    its size and checksum still hold) rewrites the record's shard with the new samples."""
    cases = [CASES[0], next(c for c in CASES if c.name == "two segments")]
    root = tmp_path / "ptbxl"
    make_root(ptbxl_sample, root, tmp_path / "outside", cases)
    cfg = BuildConfig(ptbxl=root, out=tmp_path / "corpus", workers=1)
    first = build_corpus(cfg)
    before = read_corpus(root, cfg.out).ecg
    rid = str(IDS["two segments"])
    seg2 = root / f"{record_rel(IDS['two segments'])}_2.dat"
    d = np.fromfile(seg2, dtype="<i2").reshape(2500, 12)
    v1, a, b = 6, 100, 200  # lead V1's samples 100 and 200 of segment 2 (2600, 2700 overall)
    assert d[a, v1] != d[b, v1]
    d[[a, b], v1] = d[[b, a], v1]
    d.tofile(seg2)
    second = build_corpus(cfg)
    after = read_corpus(root, cfg.out).ecg
    old = {(f.path, f.sha256) for f in first.files}
    assert {f.path for f in second.files} == {f.path for f in first.files}
    assert len([f for f in second.files if (f.path, f.sha256) not in old]) == 1
    assert after[rid][v1, 2500 + a] == before[rid][v1, 2500 + b] != after[rid][v1, 2500 + b]
    assert after[rid][v1, 2500 + b] == before[rid][v1, 2500 + a]
    np.testing.assert_array_equal(after[str(FIRST_ID)], before[str(FIRST_ID)])


def test_accept_adc_units_keeps_uncalibrated_signals_in_adc_units(ptbxl_sample: Path, tmp_path):
    """(e) With ``accept_adc_units`` a gain-0 record is read as digital value minus baseline."""
    case = next(c for c in CASES if c.name == "gain 0 (uncalibrated)")
    root = tmp_path / "ptbxl"
    make_root(ptbxl_sample, root, tmp_path / "outside", [case])
    row = {"path": record_rel(IDS[case.name])}
    with pytest.raises(RecordRejected) as err:
        load_one(root, row, BuildConfig())
    assert err.value.reason == "uncalibrated"
    cfg = BuildConfig(signal=SignalConfig(accept_adc_units=True))
    got = load_one(root, row, cfg).signal
    digital = np.fromfile(root / f"{row['path']}.dat", dtype="<i2").reshape(5000, 12).T
    np.testing.assert_array_equal(got, digital.astype(np.float32))  # PTB-XL's order is canonical
