"""MIMIC-IV-ECG (PhysioNet, v1.0 layout): list the records with their machine statements.

``prepare_mimic(root)`` reads ``record_list.csv`` (one row per record) and merges it on
(subject_id, study_id) with ``machine_measurements.csv`` (never by row order). The report is the
non-empty ``report_0`` … ``report_17`` statements in order. Records without a measurements row keep
an empty report and are rejected later with reason ``empty_report``.
"""

from __future__ import annotations

import polars as pl

from pipeline.sources.common import RECORD_COLUMNS, empty_record_frame
from pipeline.storage import Location, csv_source, exists, join

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
KEYS = ["subject_id", "study_id"]


def _statements(frame: pl.DataFrame) -> pl.Expr:
    """Non-empty report_i columns, in order, as a list."""
    cols = [f"report_{i}" for i in range(N_REPORT_FIELDS) if f"report_{i}" in frame.columns]
    if not cols:
        return pl.lit([], pl.List(pl.String))
    stripped = pl.concat_list([pl.col(c).str.strip_chars() for c in cols])
    return stripped.list.eval(
        pl.element().filter(pl.element().is_not_null() & (pl.element() != ""))
    )


def prepare_mimic(root: Location, limit: int | None = None) -> pl.DataFrame:
    """Records of the MIMIC-IV-ECG folder ``root`` as a sorted record frame (by study_id)."""
    rec_csv, mm_csv = join(root, "record_list.csv"), join(root, "machine_measurements.csv")
    if not exists(rec_csv):
        raise FileNotFoundError(f"{rec_csv} not found: is {root} a MIMIC-IV-ECG folder?")
    records = pl.read_csv(csv_source(rec_csv), infer_schema_length=0)
    if records.height == 0:
        return empty_record_frame()
    if exists(mm_csv):
        mm = pl.read_csv(csv_source(mm_csv), infer_schema_length=0).unique(
            subset=KEYS, keep="first", maintain_order=True
        )
    else:
        mm = pl.DataFrame(schema={k: pl.String for k in KEYS})
    mm = mm.with_columns(_statements(mm).alias("statements"))
    present = [c for c in MEASUREMENT_COLUMNS if c in mm.columns]
    typed = [
        pl.col(c) if c in TEXT_MEASUREMENTS else pl.col(c).cast(pl.Int64, strict=False)
        for c in present
    ]
    measurements = pl.struct(typed).struct.json_encode() if present else pl.lit(None, pl.String)
    mm = mm.select(*KEYS, "statements", measurements.alias("measurements"))
    frame = (
        records.join(mm, on=KEYS, how="left")
        .select(
            pl.col("study_id").cast(pl.Int64).alias("_key"),
            pl.col("study_id").cast(pl.Int64).cast(pl.String).alias("record_id"),
            pl.col("subject_id").cast(pl.Int64).cast(pl.String).alias("patient_id"),
            pl.col("path").fill_null("").alias("path"),
            pl.col("statements").fill_null(pl.lit([], pl.List(pl.String))).alias("statements"),
            pl.col("measurements"),
            pl.lit(None, pl.Float32).alias("age"),
            pl.lit(None, pl.String).alias("sex"),
            pl.lit(None, pl.String).alias("scp_codes"),
            pl.lit(None, pl.Int32).alias("strat_fold"),
        )
        .with_columns(pl.col("statements").list.join("\n").alias("report"))
        .sort("_key")
    )
    if limit is not None:
        frame = frame.head(limit)
    return frame.select(RECORD_COLUMNS)
