"""PhysioNet's ``SHA256SUMS.txt``: parse it, give each record its expected digests, verify a download.

PTB-XL 1.0.3 and MIMIC-IV-ECG 1.0 publish ``SHA256SUMS.txt`` at the dataset root, one
``<sha256>  <relative path>`` line per file (``sha256sum``'s format; a ``*`` before the path marks
binary mode). When it is present the plan fingerprints a record from the listed digests instead of
its bytes, and the worker checks the bytes it reads against them (``checksum_mismatch``).
:func:`verify_inputs` checks a whole folder in a process pool (``meit-corpus verify-inputs``).
"""

from __future__ import annotations

import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipeline.errors import InputError
from pipeline.storage import Location, exists, is_url, join, read_bytes
from schemas import sha256_file

SUMS_FILE = "SHA256SUMS.txt"
SUMS_KEY = "_sha256"  # a metadata row's listed files, in SHA256SUMS.txt's own line format
_LINE = r"^(?P<sha256>[0-9a-fA-F]{64}) [ *](?P<path>.+)$"
_OUTSIDE = r"^/|(^|/)\.\.(/|$)"
ATTACH_CHUNK = 100_000  # records whose listed files are grouped at once


def scan_sums(source: bytes | Path, where: str = SUMS_FILE) -> pl.LazyFrame:
    """(path, sha256) of every line of a ``SHA256SUMS.txt`` (its bytes, or a local path read by
    polars directly), lazily: the lines are checked here in one streaming pass, then parsed as
    the frame is collected (MIMIC-IV-ECG lists 1.6 million files). :class:`InputError` naming
    the first line that does not parse."""
    empty = pl.LazyFrame(schema={"path": pl.String, "sha256": pl.String})
    lines = pl.scan_csv(
        io.BytesIO(source) if isinstance(source, bytes) else source,
        has_header=False,
        new_columns=["line"],
        separator="\x1f",
        quote_char=None,
        infer_schema=False,
    )
    line = pl.col("line")
    lines = lines.with_row_index("number", offset=1)
    lines = lines.filter(line.str.strip_chars().fill_null("") != "")
    bad = ~line.str.contains(_LINE) | line.str.slice(66).str.contains(_OUTSIDE)
    try:
        first = lines.filter(bad).head(1).collect(engine="streaming")
    except pl.exceptions.NoDataError:
        return empty
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{where} does not parse: {str(exc).splitlines()[0]}") from None
    if first.height:
        number, text = first.row(0)
        raise InputError(f"{where} line {number} is not '<sha256>  <relative path>': {text[:80]!r}")
    return lines.select(
        line.str.slice(66).str.strip_prefix("./").alias("path"),
        line.str.slice(0, 64).str.to_lowercase().alias("sha256"),
    )


def sums_frame(source: bytes | Path, where: str = SUMS_FILE) -> pl.DataFrame:
    """:func:`scan_sums`, collected."""
    return scan_sums(source, where).collect(engine="streaming")


def parse_sums(text: str, where: str = SUMS_FILE) -> dict[str, str]:
    """Relative path -> lower-case sha256 of every line (see :func:`sums_frame`)."""
    frame = sums_frame(text.encode(), where)
    return dict(zip(frame.get_column("path"), frame.get_column("sha256")))


def read_sums(root: Location, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame | None:
    """The parsed ``SHA256SUMS.txt`` at ``root`` (:func:`sums_frame`; :func:`scan_sums` with
    ``lazy``), or None when there is none."""
    location = join(root, SUMS_FILE)
    if not exists(location):
        return None
    local = Path(location) if not is_url(location) else None
    sums = scan_sums(local or read_bytes(location), str(location))
    return sums if lazy else sums.collect(engine="streaming")


def attach_sums(
    records: pl.DataFrame, sums: pl.DataFrame | pl.LazyFrame, chunk: int = ATTACH_CHUNK
) -> pl.DataFrame:
    """``records`` with a ``_sha256`` column: ``<sha256>  <suffix>`` lines for the files named
    like the record (``<path><suffix>``, e.g. ``.hea`` and ``.dat``), sorted; null when none is
    listed. No Python object per file: a streaming group-by and join per ``chunk`` records, each
    keeping only the listed files its records name, and only the new column is joined (the
    records' other columns are shared, not copied). In one pass MIMIC-IV-ECG's 1.6M lines
    grouped at once took ~0.9 GB."""
    stem = pl.col("path").str.replace(r"\.[^./]*$", "")
    suffix = pl.col("path").str.slice(stem.str.len_bytes())
    lines = sums.lazy().select(
        stem.alias("_stem"), pl.format("{}  {}", "sha256", suffix).alias("_line")
    )
    paths = records.get_column("path").cast(pl.String).to_frame("_stem")
    parts = []
    for start in range(0, records.height, chunk) or [0]:
        keyed = paths.slice(start, chunk).lazy()
        listed = (
            lines.join(keyed.unique(), on="_stem", how="semi")
            .group_by("_stem")
            .agg(pl.col("_line").sort().str.join("\n").alias(SUMS_KEY))
        )
        joined = keyed.join(listed, on="_stem", how="left", maintain_order="left")
        parts.append(joined.collect(engine="streaming").get_column(SUMS_KEY))
    return records.with_columns(pl.concat(parts))


def listed_digests(listed: str | None, path: str | None) -> dict[str, str]:
    """Relative path -> sha256 of a row's ``_sha256`` (:func:`attach_sums`) for the record at
    ``path``; empty for None."""
    if not listed or not path:
        return {}
    return {path + line[66:]: line[:64] for line in listed.split("\n")}


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
    return sha256_file(p) if p.is_file() else None


def verify_inputs(root: Path, workers: int | None = None) -> Verification:
    """Check every file ``root/SHA256SUMS.txt`` lists, hashing in ``workers`` processes.

    :class:`InputError` when there is no ``SHA256SUMS.txt`` or it does not parse.
    """
    root = Path(root)
    frame = read_sums(root)
    if frame is None:
        raise InputError(f"no {SUMS_FILE} in {root}")
    sums = dict(zip(frame.get_column("path"), frame.get_column("sha256")))
    rels = sorted(sums)
    spawn = multiprocessing.get_context("spawn")  # polars' threads are running: never fork
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
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
