"""PTB-XL (PhysioNet, v1.0.3 layout): records, folds, German/Swedish reports, SCP statements.

``prepare_ptbxl(root)`` reads ``ptbxl_database.csv`` and returns one row per ECG in the common
record frame (:data:`pipeline.sources.record.RECORD_COLUMNS`), sorted by ecg_id. Nothing is read
from the waveform files here; a missing or bad file is a rejection later, in the unit that reads
it. Splits follow PTB-XL's stratified folds (every patient's records share a fold). Question–answer
facts (rhythm, diagnosis) come from the record's ``scp_codes`` described by
``scp_statements.csv``; diagnostic statements count at likelihood >= a threshold (rhythm
statements carry likelihood 0, "unspecified", and always count).

:func:`write_ptbxl_layout` writes the same layout (the synthetic demo and the tests use it).
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from pipeline.errors import InputError
from pipeline.qa import no_facts
from pipeline.sources.layout import check_signal_mv, write_csv, write_format16
from pipeline.sources.record import (
    INVALID_TEXT,
    RECORD_COLUMNS,
    REJECT_DETAIL,
    REJECT_REASON,
    ROW,
    read_metadata_csv,
    readable,
    record_id,
    rejection_columns,
    show,
    whole_number,
)
from pipeline.storage import Location, exists, join, name

if TYPE_CHECKING:
    from pipeline.config import BuildConfig, TextConfig
    from pipeline.reports import ReportCleaner, ReportText

SOURCE = "ptbxl"
AGE_OVER_89 = 300  # PTB-XL's de-identified age for patients over 89


def _scp_json(literal: str | None) -> tuple[str | None, str | None]:
    """PTB-XL's scp_codes (a Python dict literal of code -> likelihood) as canonical JSON, and why
    it is invalid (else None). An empty cell is no statements (None, None)."""
    if literal is None or not literal.strip():
        return None, None
    try:
        codes = ast.literal_eval(literal)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, f"scp_codes {show(literal)} is not a dict literal"
    if not isinstance(codes, dict):
        return None, f"scp_codes {show(literal)} is not a dict literal"
    for code, likelihood in codes.items():
        number = isinstance(likelihood, int | float) and not isinstance(likelihood, bool)
        if not isinstance(code, str) or not number or not math.isfinite(likelihood):
            return (
                None,
                f"scp_codes {show(literal)}: {code!r} -> {likelihood!r} is not code -> number",
            )
    return json.dumps({k: float(v) for k, v in sorted(codes.items())}), None


REQUIRED_COLUMNS = ("ecg_id", "patient_id", "age", "sex", "report", "scp_codes", "strat_fold")
"""Columns of ``ptbxl_database.csv`` a build reads, besides the path column of the records used
(``filename_hr`` for ``records500``, ``filename_lr`` for ``records100``)."""
MAX_AGE = 125  # years; PTB-XL writes 300 for every age over 89
INT32_MAX = 2**31 - 1  # strat_fold is an Int32 column


def _age() -> tuple[pl.Expr, pl.Expr]:
    """Age in years (300, PTB-XL's "over 89", as 90; empty or NaN as unknown) and why it is
    invalid (else null)."""
    text = pl.col("age").str.strip_chars()
    value = text.cast(pl.Float64, strict=False)
    missing = text.is_null() | (text == "") | (text.str.to_lowercase() == "nan")
    plausible = value.is_between(0, MAX_AGE) | (value == AGE_OVER_89)
    error = pl.when(~missing & (value.is_null() | ~plausible)).then(
        pl.format(
            f"age '{{}}' is not an age in years (0-{MAX_AGE}, or {AGE_OVER_89} for over 89)",
            pl.col("age"),
        )
    )
    age = text.cast(pl.Float32, strict=False)
    kept = pl.when(missing).then(None).when(age == AGE_OVER_89).then(pl.lit(90.0, pl.Float32))
    return kept.otherwise(age), error


def _checked(raw: pl.DataFrame, path_col: str) -> pl.DataFrame:
    """The record frame of ``ptbxl_database.csv``'s rows, rejected rows marked (first reason
    wins: invalid id, repeated id, invalid text, invalid patient, invalid metadata)."""
    ecg_id, id_error = whole_number("ecg_id")
    patient, patient_error = whole_number("patient_id")
    fold, fold_error = whole_number("strat_fold")
    sex, sex_error = whole_number("sex")
    age, age_error = _age()
    scp = [_scp_json(v) for v in raw["scp_codes"]]
    frame = raw.with_columns(
        ecg_id.alias("_key"),
        pl.Series("_scp", [j for j, _ in scp], dtype=pl.String),
        pl.Series("_scp_error", [e for _, e in scp], dtype=pl.String),
    )
    first = pl.col(ROW).min().over("_key")
    repeated = pl.when(pl.col("_key").is_not_null() & (pl.col(ROW) != first)).then(
        pl.format("ecg_id {} repeats row {}", pl.col("_key"), first)
    )
    fold_range = pl.when(fold > INT32_MAX).then(
        pl.format("strat_fold '{}' is out of range", pl.col("strat_fold"))
    )
    metadata = pl.coalesce(
        pl.col("_scp_error"),
        pl.when(pl.col("strat_fold").is_not_null()).then(pl.coalesce(fold_error, fold_range)),
        pl.when(pl.col("sex").is_not_null() & (sex_error.is_not_null() | (sex > 1))).then(
            pl.format("sex '{}' is not 0 (male) or 1 (female)", pl.col("sex"))
        ),
        age_error,
    )
    return frame.select(
        pl.col("_key"),
        pl.col(ROW),
        record_id(id_error, repeated),
        patient.cast(pl.String).alias("patient_id"),
        pl.col(path_col).fill_null("").alias("path"),
        pl.col("report").fill_null("").alias("report"),
        age.alias("age"),
        sex.replace_strict({0: "male", 1: "female"}, default=None, return_dtype=pl.String).alias(
            "sex"
        ),
        pl.col("_scp").alias("scp_codes"),
        pl.when(fold <= INT32_MAX).then(fold).cast(pl.Int32).alias("strat_fold"),
        pl.lit(None, pl.String).alias("measurements"),
        pl.lit(None, pl.List(pl.String)).alias("statements"),
        *rejection_columns(
            [
                ("invalid_id", id_error),
                ("duplicate_id", repeated),
                ("invalid_text", pl.col(INVALID_TEXT)),
                ("invalid_patient_id", patient_error),
                ("invalid_metadata", metadata),
            ]
        ),
    )


def prepare_ptbxl(
    root: Location, records: str = "records500", limit: int | None = None
) -> pl.DataFrame:
    """Records of the PTB-XL folder ``root`` as a sorted record frame.

    ``records`` picks the 500 Hz (``records500``, filename_hr) or 100 Hz (``records100``,
    filename_lr) copy. ``limit`` keeps the first N records by ecg_id. Rows that cannot be used
    carry a reason (see :mod:`pipeline.sources.record`): ``invalid_id`` (record id ``row<N>``,
    the data row), ``duplicate_id`` (every repeat of an ecg_id after its first row; record id
    ``<ecg_id>#row<N>``), ``invalid_text``, ``invalid_patient_id``, ``invalid_metadata``
    (scp_codes, strat_fold, sex or age). A missing file or column is an :class:`InputError`.
    """
    csv = join(root, "ptbxl_database.csv")
    if not exists(csv):
        raise InputError(f"{csv} not found: is {root} a PTB-XL folder?")
    path_col = "filename_hr" if records == "records500" else "filename_lr"
    raw = read_metadata_csv(csv, (*REQUIRED_COLUMNS, path_col))
    frame = _checked(raw, path_col).sort("_key", ROW, nulls_last=True)
    if limit is not None:
        frame = frame.head(limit)
    return frame.select(*RECORD_COLUMNS, REJECT_REASON, REJECT_DETAIL)


SCP_COLUMNS = ("description", "diagnostic", "rhythm")
"""Columns of ``scp_statements.csv`` a build reads (besides the first, the code)."""


@dataclass(frozen=True)
class ScpStatement:
    """One SCP-ECG statement of PTB-XL's catalogue."""

    code: str
    description: str
    diagnostic: bool
    rhythm: bool


def load_scp_statements(root: Location) -> dict[str, ScpStatement]:
    """PTB-XL's ``scp_statements.csv`` (code -> statement); empty when the file is absent.

    Its first column (unnamed in PhysioNet's file) is the code. A file without the description,
    diagnostic and rhythm columns, or with invalid UTF-8, is an :class:`InputError`.
    """
    path = join(root, "scp_statements.csv")
    if not exists(path):
        return {}
    frame = read_metadata_csv(path, SCP_COLUMNS, need_rows=False)
    bad = frame.filter(pl.col(INVALID_TEXT).is_not_null())
    if bad.height:  # the catalogue is not per record: one bad cell makes it unusable
        raise InputError(f"{path}{readable(bad[INVALID_TEXT][0]).removeprefix(name(path))}")
    code_col = frame.columns[0]
    out = {}
    for row in frame.iter_rows(named=True):
        if row[code_col] is None:
            continue
        out[row[code_col]] = ScpStatement(
            code=row[code_col],
            description=(row.get("description") or row[code_col]).strip(),
            diagnostic=(row.get("diagnostic") or "") not in ("", "0", "0.0"),
            rhythm=(row.get("rhythm") or "") not in ("", "0", "0.0"),
        )
    return out


def scp_facts(
    scp_json: str | None, catalogue: dict[str, ScpStatement], min_likelihood: float
) -> dict[str, list[str] | None]:
    """Rhythm statements and diagnostic statements (likelihood >= ``min_likelihood``), described."""
    codes = json.loads(scp_json) if scp_json else {}
    rhythm, diagnostic = [], []
    for code, likelihood in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])):
        st = catalogue.get(code)
        if st is None:
            continue
        if st.rhythm:
            rhythm.append(st.description)
        elif st.diagnostic and likelihood >= min_likelihood:
            diagnostic.append(st.description)
    return {"rhythm_statements": rhythm or None, "diagnostic_statements": diagnostic or None}


@dataclass(frozen=True)
class PtbXl:
    """PTB-XL as a :class:`pipeline.sources.Source`."""

    name: str = SOURCE
    title: str = "PTB-XL v1.0.3"
    display_name: str = "PTB-XL"
    license: str = "CC BY 4.0"
    split_rule: str = "folds"

    def prepare(self, root: Location, cfg: BuildConfig) -> pl.DataFrame:
        """The records of ``root`` (``cfg.ptbxl_records`` picks the 500 or 100 Hz copy); the SCP
        catalogue is read too, so that a bad one stops the build before any work."""
        load_scp_statements(root)
        return prepare_ptbxl(root, cfg.ptbxl_records, cfg.limit)

    def load_resources(self, root: Location) -> Mapping[str, Any]:
        """PTB-XL's SCP statement catalogue."""
        return {"scp": load_scp_statements(root)}

    def clean_report(self, cleaner: ReportCleaner, row: dict) -> ReportText:
        """The report, translated to English when German or Swedish."""
        return cleaner.ptbxl(row["record_id"], row.get("report") or "")

    def min_report_words(self, text: TextConfig) -> int:
        return max(1, text.min_report_words)

    def facts(self, row: dict, resources: Mapping[str, Any], text: TextConfig) -> dict:
        """Rhythm and diagnostic statements of the record's SCP codes."""
        facts = no_facts()
        facts.update(scp_facts(row.get("scp_codes"), resources["scp"], text.scp_min_likelihood))
        return facts

    def card_text(self) -> str:
        return (
            "PTB-XL: 21,799 12-lead ECGs of 18,869 patients (10 s, 500 Hz), cardiologists' "
            "free-text reports (mostly German, some Swedish, translated here to English); split "
            "by the dataset's stratified folds, so every patient is in one split."
        )


PTBXL = PtbXl()


# --------------------------------------------------------------------------- layout writer

PTBXL_LEADS: tuple[str, ...] = tuple("I II III AVR AVL AVF V1 V2 V3 V4 V5 V6".split())
"""Lead names as PTB-XL's headers spell them (canonical order, upper-case AV*)."""
PTBXL_GAIN = 1000.0  # 1 uV steps
DATABASE_COLUMNS: tuple[str, ...] = tuple(
    (
        "ecg_id,patient_id,age,sex,height,weight,nurse,site,device,recording_date,report,"
        "scp_codes,heart_axis,infarction_stadium1,infarction_stadium2,validated_by,second_opinion,"
        "initial_autogenerated_report,validated_by_human,baseline_drift,static_noise,burst_noise,"
        "electrodes_problems,extra_beats,pacemaker,strat_fold,filename_lr,filename_hr"
    ).split(",")
)
"""The 28 columns of ``ptbxl_database.csv``, in file order."""
SCP_STATEMENTS_HEADER = (
    ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass,Statement Category,"
    "SCP-ECG Statement Description,AHA code,aECG REFID,CDISC Code,DICOM Code"
)
"""The header line of ``scp_statements.csv`` (its first column, the code, has no name)."""


def ptbxl_record_path(ecg_id: int, fs: int = 500) -> str:
    """PTB-XL's relative record path (no extension), e.g. ``records500/06000/06000_hr``."""
    if fs not in (100, 500):
        raise ValueError(f"PTB-XL has 100 Hz and 500 Hz records only, not {fs} Hz")
    folder = "records500" if fs == 500 else "records100"
    suffix = "hr" if fs == 500 else "lr"
    return f"{folder}/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_{suffix}"


def write_ptbxl_record(root: Path, ecg_id: int, signal_mv: np.ndarray, fs: int = 500) -> Path:
    """Write one record in PTB-XL's layout and header conventions under ``root``.

    ``signal_mv`` is (12, N) in canonical order (I II III aVR aVL aVF V1..V6), in mV; NaN samples
    are stored as -32768. Format 16, gain 1000/mV, baseline 0, lead names upper-case (``AVR``).
    Returns the record path without extension (``root/records500/NNNNN/NNNNN_hr``).
    """
    x = check_signal_mv(signal_mv, PTBXL_GAIN)
    record = Path(root) / ptbxl_record_path(ecg_id, fs)
    write_format16(record, fs, PTBXL_LEADS, x, PTBXL_GAIN)
    return record


def decimate_to_100hz(x: np.ndarray) -> np.ndarray:
    """500 Hz -> 100 Hz (``records100``), keeping NaN: a 100 Hz sample is NaN when any of its 5
    sources is."""
    from scipy.signal import resample_poly  # lazy: 0.5 s to import, unused by builds

    mask = np.isnan(x)
    out = resample_poly(np.where(mask, 0.0, x), 1, 5, axis=1)
    n = out.shape[1]
    out[mask[:, : n * 5].reshape(x.shape[0], n, 5).any(axis=2)] = np.nan
    return out


@dataclass(frozen=True)
class PtbxlLayoutRecord:
    """One record to write in PTB-XL's layout: its 500 Hz signal and its database row."""

    ecg_id: int
    signal_mv: np.ndarray
    """(12, N) at 500 Hz in canonical lead order, mV (NaN allowed)."""
    fields: Mapping[str, str] = field(default_factory=dict)
    """``ptbxl_database.csv`` cells by column; others are empty, except ``ecg_id``,
    ``filename_lr`` and ``filename_hr``, which default to the record's own."""


def database_row(record: PtbxlLayoutRecord) -> tuple[str, ...]:
    """The record's ``ptbxl_database.csv`` row, in :data:`DATABASE_COLUMNS` order."""
    own = {
        "ecg_id": str(record.ecg_id),
        "filename_lr": ptbxl_record_path(record.ecg_id, 100),
        "filename_hr": ptbxl_record_path(record.ecg_id, 500),
    }
    cells = {**own, **record.fields}
    unknown = set(cells) - set(DATABASE_COLUMNS)
    if unknown:
        raise ValueError(f"not ptbxl_database.csv columns: {sorted(unknown)}")
    return tuple(cells.get(c, "") for c in DATABASE_COLUMNS)


def write_ptbxl_layout(
    root: Path, records: Iterable[PtbxlLayoutRecord], scp_statements: Sequence[str] = ()
) -> Path:
    """Write a PTB-XL v1.0.3 folder under ``root`` and return ``root``.

    Each record goes to ``records500`` and, decimated, to ``records100``; ``ptbxl_database.csv``
    lists them in the given order, and ``scp_statements.csv`` holds ``scp_statements`` (verbatim
    lines of PTB-XL's file, without the header).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for record in records:
        write_ptbxl_record(root, record.ecg_id, record.signal_mv, fs=500)
        write_ptbxl_record(root, record.ecg_id, decimate_to_100hz(record.signal_mv), fs=100)
        rows.append(database_row(record))
    write_csv(root / "ptbxl_database.csv", ",".join(DATABASE_COLUMNS), rows)
    with (root / "scp_statements.csv").open("w", encoding="utf-8", newline="") as f:
        f.writelines(f"{line}\n" for line in (SCP_STATEMENTS_HEADER, *scp_statements))
    return root
