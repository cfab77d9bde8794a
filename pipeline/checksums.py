"""PhysioNet's ``SHA256SUMS.txt``: parse it, give each record its expected digests, verify a download.

PTB-XL 1.0.3 and MIMIC-IV-ECG 1.0 publish ``SHA256SUMS.txt`` at the dataset root, one
``<sha256>  <relative path>`` line per file (``sha256sum``'s format; a ``*`` before the path marks
binary mode). When it is present the plan fingerprints a record from the listed digests instead of
its bytes, and the worker checks the bytes it reads against them (``checksum_mismatch``).
:func:`verify_inputs` checks a whole folder in a process pool (``meit-corpus verify-inputs``).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.errors import InputError
from pipeline.storage import Location, exists, join, read_bytes

SUMS_FILE = "SHA256SUMS.txt"
SUMS_KEY = "_sha256"  # a metadata row's expected digests (JSON), relative path -> sha256
_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_CHUNK = 1 << 20


def parse_sums(text: str, where: str = SUMS_FILE) -> dict[str, str]:
    """Relative path -> lower-case sha256 of every line; :class:`InputError` naming a bad line."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE.match(line.rstrip("\r"))
        rel = PurePosixPath(m.group(2)) if m else None
        if m is None or rel is None or rel.is_absolute() or ".." in rel.parts:
            raise InputError(
                f"{where} line {number} is not '<sha256>  <relative path>': {line[:80]!r}"
            )
        out[rel.as_posix()] = m.group(1).lower()
    return out


def read_sums(root: Location) -> dict[str, str] | None:
    """The parsed ``SHA256SUMS.txt`` at ``root``, or None when there is none."""
    location = join(root, SUMS_FILE)
    if not exists(location):
        return None
    try:
        text = read_bytes(location).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{location} is not UTF-8 text ({exc.reason})") from None
    return parse_sums(text, str(location))


def record_sums(sums: Mapping[str, str], paths: Sequence[str | None]) -> list[str | None]:
    """For each record path, the JSON of the listed files that start with it (its header, data,
    segments), or None when none is listed. One sort and a binary search per record."""
    listed = sorted(sums)
    out: list[str | None] = []
    for path in paths:
        if not path:
            out.append(None)
            continue
        i = bisect.bisect_left(listed, path)
        mine = {}
        while i < len(listed) and listed[i].startswith(path):
            mine[listed[i]] = sums[listed[i]]
            i += 1
        out.append(json.dumps(mine, sort_keys=True) if mine else None)
    return out


def sha256_path(path: Path) -> str:
    """sha256 of a local file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Verification:
    """What :func:`verify_inputs` found: problems (missing, mismatched) and files not listed."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, str, str]] = field(default_factory=list)  # path, expected, actual
    unlisted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


def _digest(path: str) -> str | None:
    p = Path(path)
    return sha256_path(p) if p.is_file() else None


def verify_inputs(root: Path, workers: int | None = None) -> Verification:
    """Check every file ``root/SHA256SUMS.txt`` lists, hashing in ``workers`` processes.

    :class:`InputError` when there is no ``SHA256SUMS.txt`` or it does not parse.
    """
    root = Path(root)
    sums = read_sums(root)
    if sums is None:
        raise InputError(f"no {SUMS_FILE} in {root}")
    rels = sorted(sums)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        digests = list(pool.map(_digest, [str(root / r) for r in rels], chunksize=64))
    out = Verification(checked=len(rels))
    for rel, got in zip(rels, digests):
        if got is None:
            out.missing.append(rel)
        elif got != sums[rel]:
            out.mismatched.append((rel, sums[rel], got))
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    out.unlisted = sorted(on_disk - set(sums) - {SUMS_FILE})
    return out
