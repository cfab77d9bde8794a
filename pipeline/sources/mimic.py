"""MIMIC-IV-ECG (PhysioNet, v1.0 layout): list the records with their machine statements.

``prepare_mimic(root)`` reads ``record_list.csv`` (one row per record) and merges it on
(subject_id, study_id) with ``machine_measurements.csv`` (never by row order). The report is the
non-empty ``report_0`` … ``report_17`` statements in order. Records without a measurements row keep
an empty report and are rejected later with reason ``empty_report``. Patients (subject_id) are
split by a seeded hash. Question–answer facts (heart rate, PR/QRS/QT, axes) come from the machine
measurements, range-checked: values outside physiological ranges (e.g. the 29999 sentinels) are
dropped, and a task is only offered when all of its values survive.

:func:`write_mimic_layout` writes the same layout (the synthetic demo and the tests use it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from pipeline.errors import InputError
from pipeline.qa import in_range, no_facts
from pipeline.sources.layout import check_signal_mv, write_csv, write_format16
from pipeline.sources.record import (
    INVALID_TEXT,
    RECORD_COLUMNS,
    REJECT_DETAIL,
    REJECT_REASON,
    ROW,
    record_id,
    rejection_columns,
    scan_metadata_csv,
    whole_number,
)
from pipeline.storage import Location, exists, join
from schemas import CANONICAL_LEADS

if TYPE_CHECKING:
    from pipeline.config import BuildConfig, TextConfig
    from pipeline.reports import ReportCleaner, ReportText

SOURCE = "mimic"
N_REPORT_FIELDS = 18
MEASUREMENT_COLUMNS = (
    "bandwidth",
    "filtering",
    "rr_interval",
    "p_onset",
    "p_end",
    "qrs_onset",
    "qrs_end",
    "t_end",
    "p_axis",
    "qrs_axis",
    "t_axis",
)
TEXT_MEASUREMENTS = ("bandwidth", "filtering")


def _statements(columns: Sequence[str]) -> pl.Expr:
    """Non-empty report_i columns (of those in ``columns``), in order, as a list."""
    cols = [f"report_{i}" for i in range(N_REPORT_FIELDS) if f"report_{i}" in columns]
    if not cols:
        return pl.lit([], pl.List(pl.String))
    stripped = pl.concat_list([pl.col(c).str.strip_chars() for c in cols])
    return stripped.list.eval(
        pl.element().filter(pl.element().is_not_null() & (pl.element() != ""))
    )


RECORD_LIST_REQUIRED = ("subject_id", "study_id", "path")
"""Columns of ``record_list.csv`` a build reads."""
MEASUREMENTS_REQUIRED = ("subject_id", "study_id", "report_0")
MEASUREMENTS_OPTIONAL = (*(f"report_{i}" for i in range(1, N_REPORT_FIELDS)), *MEASUREMENT_COLUMNS)
"""Columns of ``machine_measurements.csv`` a build reads (the optional ones when present)."""
MM_KEYS = ["_subject", "_study"]
MEASURED_SCHEMA = {
    "_subject": pl.Int64,
    "_study": pl.Int64,
    "statements": pl.List(pl.String),
    "measurements": pl.String,
    "_mm_invalid": pl.String,
    "_mm_conflict": pl.String,
}
KEYS_SCHEMA = {"_subject": pl.Int64, "_study": pl.Int64, ROW: pl.Int64}


def _measured(mm_csv: Location) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``machine_measurements.csv`` as one row per (subject_id, study_id): the statements, the
    measurements as JSON, and why the row cannot be used (invalid UTF-8 in a cell the build reads;
    rows of one key that disagree). Identical repeats of a row count once; rows whose keys are not
    whole numbers describe no record and are left out. Second: every row's keys and row number
    (to name a study filed under another subject than in ``record_list.csv``).

    Streamed: the file's text columns are never held whole (800k rows, 29 columns read), only
    the keys, the rows of repeated keys, and the result."""
    if not exists(mm_csv):
        return pl.DataFrame(schema=MEASURED_SCHEMA), pl.DataFrame(schema=KEYS_SCHEMA)
    mm = scan_metadata_csv(mm_csv, MEASUREMENTS_REQUIRED, MEASUREMENTS_OPTIONAL, need_rows=False)
    columns = mm.collect_schema().names()
    subject, _ = whole_number("subject_id")
    study, _ = whole_number("study_id")
    mm = mm.with_columns(subject.alias("_subject"), study.alias("_study")).drop_nulls(MM_KEYS)
    used = [c for c in (*MEASUREMENTS_REQUIRED[2:], *MEASUREMENTS_OPTIONAL) if c in columns]
    keys = mm.select(*MM_KEYS, ROW).collect(engine="streaming")
    repeated = keys.filter(pl.struct(MM_KEYS).is_duplicated())  # usually none: compare only those
    later = repeated.filter(pl.col(ROW) != pl.col(ROW).min().over(MM_KEYS)).get_column(ROW)
    repeats = mm.filter(pl.col(ROW).is_in(repeated.get_column(ROW).implode())).collect()
    versions = (
        repeats.sort(ROW)
        .unique(subset=[*MM_KEYS, *used], keep="first", maintain_order=True)
        .group_by(MM_KEYS)
        .agg(pl.col(ROW).sort().alias("_rows"))
    )
    mm = mm.filter(~pl.col(ROW).is_in(later.implode())).join(
        versions.lazy(), on=MM_KEYS, how="left"
    )
    conflict = pl.when(pl.col("_rows").list.len() > 1).then(
        pl.format(
            "machine_measurements.csv rows {} differ for subject_id {} study_id {}",
            pl.col("_rows").cast(pl.List(pl.String)).list.join(", "),
            pl.col("_subject"),
            pl.col("_study"),
        )
    )
    present = [c for c in MEASUREMENT_COLUMNS if c in columns]
    typed = [
        pl.col(c) if c in TEXT_MEASUREMENTS else pl.col(c).cast(pl.Int64, strict=False)
        for c in present
    ]
    measurements = pl.struct(typed).struct.json_encode() if present else pl.lit(None, pl.String)
    by_key = mm.select(
        *MM_KEYS,
        _statements(columns).alias("statements"),
        measurements.alias("measurements"),
        pl.col(INVALID_TEXT).alias("_mm_invalid"),
        conflict.alias("_mm_conflict"),
    ).collect(engine="streaming")
    return by_key, keys


def prepare_mimic(root: Location, limit: int | None = None) -> pl.DataFrame:
    """Records of the MIMIC-IV-ECG folder ``root`` as a sorted record frame (by study_id).

    Rows that cannot be used carry a reason (see :mod:`pipeline.sources.record`): ``invalid_id``
    (study_id; record id ``row<N>``, the data row of ``record_list.csv``), ``duplicate_id`` (every
    repeat of a study_id after its first row; record id ``<study_id>#row<N>``), ``invalid_text``
    (in ``record_list.csv`` or the study's measurements row), ``invalid_patient_id``
    (subject_id), ``conflicting_measurements`` (two different measurements rows for the study,
    or its measurements filed under another subject).
    A missing ``record_list.csv`` or a missing column is an :class:`InputError`.
    """
    rec_csv, mm_csv = join(root, "record_list.csv"), join(root, "machine_measurements.csv")
    if not exists(rec_csv):
        raise InputError(f"{rec_csv} not found: is {root} a MIMIC-IV-ECG folder?")
    records = scan_metadata_csv(rec_csv, RECORD_LIST_REQUIRED).collect(engine="streaming")
    study, study_error = whole_number("study_id")
    subject, subject_error = whole_number("subject_id")
    listed = records.with_columns(study.alias("_key"), subject.alias("_subject"))
    by_key, keys = _measured(mm_csv)
    frame = listed.join(by_key, left_on=["_subject", "_key"], right_on=MM_KEYS, how="left")
    unmatched = frame.filter(pl.col("statements").is_null()).select(pl.col("_key").alias("_study"))
    elsewhere_rows = (
        keys.join(unmatched, on="_study", how="semi")
        .sort(ROW)
        .group_by("_study")
        .agg(pl.col("_subject").first().alias("_mm_subject"), pl.col(ROW).first().alias("_mm_row"))
    )
    frame = frame.join(elsewhere_rows, left_on="_key", right_on="_study", how="left")
    elsewhere = pl.when(pl.col("statements").is_null() & pl.col("_mm_subject").is_not_null()).then(
        pl.format(
            "machine_measurements.csv row {} files study_id {} under subject_id {}, "
            "record_list.csv under {}",
            pl.col("_mm_row"),
            pl.col("_key"),
            pl.col("_mm_subject"),
            pl.col("_subject"),
        )
    )
    first = pl.col(ROW).min().over("_key")
    repeated = pl.when(pl.col("_key").is_not_null() & (pl.col(ROW) != first)).then(
        pl.format("study_id {} repeats row {}", pl.col("_key"), first)
    )
    frame = (
        frame.select(
            pl.col("_key"),
            pl.col(ROW),
            record_id(study_error, repeated),
            pl.col("_subject").cast(pl.String).alias("patient_id"),
            pl.col("path").fill_null("").alias("path"),
            pl.col("statements").fill_null(pl.lit([], pl.List(pl.String))).alias("statements"),
            pl.col("measurements"),
            pl.lit(None, pl.Float32).alias("age"),
            pl.lit(None, pl.String).alias("sex"),
            pl.lit(None, pl.String).alias("scp_codes"),
            pl.lit(None, pl.Int32).alias("strat_fold"),
            *rejection_columns(
                [
                    ("invalid_id", study_error),
                    ("duplicate_id", repeated),
                    ("invalid_text", pl.coalesce(INVALID_TEXT, "_mm_invalid")),
                    ("invalid_patient_id", subject_error),
                    ("conflicting_measurements", pl.coalesce("_mm_conflict", elsewhere)),
                ]
            ),
        )
        .with_columns(pl.col("statements").list.join("\n").alias("report"))
        .sort("_key", ROW, nulls_last=True)
    )
    if limit is not None:
        frame = frame.head(limit)
    return frame.select(*RECORD_COLUMNS, REJECT_REASON, REJECT_DETAIL)


def _number(data: dict, key: str) -> float | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def measurement_facts(measurements_json: str | None) -> dict[str, int | None]:
    """Heart rate, PR/QRS/QT and the P/QRS/T axes from MIMIC's machine measurements."""
    data = json.loads(measurements_json) if measurements_json else {}
    rr = _number(data, "rr_interval")
    p_on, qrs_on = _number(data, "p_onset"), _number(data, "qrs_onset")
    qrs_end, t_end = _number(data, "qrs_end"), _number(data, "t_end")

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    sentinel_free = {
        k: v
        for k, v in (
            ("p_onset", p_on),
            ("qrs_onset", qrs_on),
            ("qrs_end", qrs_end),
            ("t_end", t_end),
        )
        if v is not None and 0 <= v < 5000
    }
    p_on, qrs_on = sentinel_free.get("p_onset"), sentinel_free.get("qrs_onset")
    qrs_end, t_end = sentinel_free.get("qrs_end"), sentinel_free.get("t_end")
    raw = {
        "heart_rate_bpm": 60000.0 / rr if rr and rr > 0 else None,
        "pr_ms": diff(qrs_on, p_on),
        "qrs_ms": diff(qrs_end, qrs_on),
        "qt_ms": diff(t_end, qrs_on),
        "p_axis": _number(data, "p_axis"),
        "qrs_axis": _number(data, "qrs_axis"),
        "t_axis": _number(data, "t_axis"),
    }
    facts = {}
    for name, value in raw.items():
        checked = in_range(name, value)
        facts[name] = None if checked is None else int(round(checked))
    return facts


@dataclass(frozen=True)
class MimicIvEcg:
    """MIMIC-IV-ECG as a :class:`pipeline.sources.Source`."""

    name: str = SOURCE
    title: str = "MIMIC-IV-ECG v1.0"
    display_name: str = "MIMIC-IV-ECG"
    license: str = "ODbL v1.0 (check PhysioNet's current terms)"
    split_rule: str = "patient"

    def prepare(self, root: Location, cfg: BuildConfig) -> pl.DataFrame:
        return prepare_mimic(root, cfg.limit)

    def load_resources(self, root: Location) -> Mapping[str, Any]:
        return {}

    def clean_report(self, cleaner: ReportCleaner, row: dict) -> ReportText:
        """The machine statements, cleaned by rule and joined."""
        return cleaner.mimic(row.get("statements") or [])

    def min_report_words(self, text: TextConfig) -> int:
        return max(1, text.mimic_min_report_words)

    def facts(self, row: dict, resources: Mapping[str, Any], text: TextConfig) -> dict:
        """Heart rate, intervals and axes of the machine measurements."""
        facts = no_facts()
        facts.update(measurement_facts(row.get("measurements")))
        return facts

    def card_text(self) -> str:
        return (
            "MIMIC-IV-ECG: 800,035 10-s 12-lead ECGs (500 Hz) of 161,352 patients, "
            "with the ECG machines' statements as reports; split by a seeded hash of the "
            "patient (subject_id), so every patient is in one split."
        )


MIMIC = MimicIvEcg()


# --------------------------------------------------------------------------- layout writer

MIMIC_LEADS: tuple[str, ...] = tuple("I II III aVR aVF aVL V1 V2 V3 V4 V5 V6".split())
"""Lead names and order of MIMIC-IV-ECG headers (aVF before aVL)."""
MIMIC_GAIN = 200.0  # 5 uV steps
MIMIC_WARNING = "--- Warning: Data quality may affect interpretation ---"
"""A statement MIMIC's ECG machines print before the findings of a noisy record."""
RECORD_LIST_COLUMNS: tuple[str, ...] = ("subject_id", "study_id", "file_name", "ecg_time", "path")
MACHINE_MEASUREMENTS_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "study_id",
    "cart_id",
    "ecg_time",
    *(f"report_{i}" for i in range(N_REPORT_FIELDS)),
    *MEASUREMENT_COLUMNS,
)
"""The columns of ``machine_measurements.csv``, in file order."""
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # ecg_time in both CSVs


def mimic_record_path(subject_id: int, study_id: int) -> str:
    """MIMIC-IV-ECG's relative record path, e.g. ``files/p1000/p10000032/s40689238/40689238``."""
    if subject_id < 1000 or study_id < 0:
        raise ValueError(f"implausible ids: subject {subject_id}, study {study_id}")
    return f"files/p{str(subject_id)[:4]}/p{subject_id}/s{study_id}/{study_id}"


def write_mimic_record(
    root: Path,
    subject_id: int,
    study_id: int,
    signal_mv: np.ndarray,
    fs: int = 500,
    base: datetime | None = None,
) -> Path:
    """Write one record in MIMIC-IV-ECG's layout and header conventions under ``root``.

    ``signal_mv`` is (12, N) in canonical order; it is stored in MIMIC's order
    (I II III aVR aVF aVL V1..V6), format 16, gain 200/mV (5 uV steps), NaN as -32768, with
    ``base`` as the record line's base time and date (omitted when None) and the comment line
    ``# <subject_id>: NNNNNNNN``. Returns the record path without extension.
    """
    x = check_signal_mv(signal_mv, MIMIC_GAIN)
    order = [CANONICAL_LEADS.index(name) for name in MIMIC_LEADS]
    record = Path(root) / mimic_record_path(subject_id, study_id)
    write_format16(
        record,
        fs,
        MIMIC_LEADS,
        x[order],
        MIMIC_GAIN,
        comments=[f"<subject_id>: {subject_id}"],
        base_time=base.time() if base is not None else None,
        base_date=base.date() if base is not None else None,
    )
    return record


@dataclass(frozen=True)
class MimicLayoutRecord:
    """One study to write in MIMIC-IV-ECG's layout: its signal, statements and measurements."""

    subject_id: int
    study_id: int
    ecg_time: datetime
    """In both CSVs and as the header's base time and date."""
    signal_mv: np.ndarray
    """(12, N) at 500 Hz in canonical lead order, mV (NaN allowed)."""
    statements: tuple[str, ...] = ()
    """``report_0`` … in order (at most 18; the rest are empty)."""
    machine: Mapping[str, str | int] = field(default_factory=dict)
    """Other ``machine_measurements.csv`` cells by column (``cart_id``, ``rr_interval`` …);
    columns not given are empty."""


def _csv_rows(record: MimicLayoutRecord) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The record's ``record_list.csv`` and ``machine_measurements.csv`` rows."""
    if len(record.statements) > N_REPORT_FIELDS:
        raise ValueError(
            f"MIMIC has {N_REPORT_FIELDS} statement slots, not {len(record.statements)}"
        )
    stamp = record.ecg_time.strftime(TIME_FORMAT)
    ids = (str(record.subject_id), str(record.study_id))
    listed = (*ids, str(record.study_id), stamp, mimic_record_path(*map(int, ids)))
    cells = {f"report_{i}": s for i, s in enumerate(record.statements)}
    cells.update({k: str(v) for k, v in record.machine.items()})
    cells.update(subject_id=ids[0], study_id=ids[1], ecg_time=stamp)
    unknown = set(cells) - set(MACHINE_MEASUREMENTS_COLUMNS)
    if unknown:
        raise ValueError(f"not machine_measurements.csv columns: {sorted(unknown)}")
    return listed, tuple(cells.get(c, "") for c in MACHINE_MEASUREMENTS_COLUMNS)


def write_mimic_layout(root: Path, records: Iterable[MimicLayoutRecord]) -> Path:
    """Write a MIMIC-IV-ECG v1.0 folder under ``root`` and return ``root``.

    As in the real dataset, ``record_list.csv`` is sorted by (subject_id, ecg_time) and
    ``machine_measurements.csv`` by (subject_id, study_id), so the two files pair up only by key,
    not by row order.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    listed, measured = [], []
    for record in records:
        write_mimic_record(
            root, record.subject_id, record.study_id, record.signal_mv, base=record.ecg_time
        )
        row, measurements = _csv_rows(record)
        listed.append(row)
        measured.append(measurements)
    listed.sort(key=lambda r: (int(r[0]), r[3]))
    measured.sort(key=lambda r: (int(r[0]), int(r[1])))
    write_csv(root / "record_list.csv", ",".join(RECORD_LIST_COLUMNS), listed)
    write_csv(root / "machine_measurements.csv", ",".join(MACHINE_MEASUREMENTS_COLUMNS), measured)
    return root
