"""PTB-XL (PhysioNet, v1.0.3 layout): list the records with their metadata.

``prepare_ptbxl(root)`` reads ``ptbxl_database.csv`` and returns one row per ECG in the common
record frame (:data:`pipeline.sources.RECORD_COLUMNS`), sorted by ecg_id. Nothing is read from the
waveform files here; a missing or bad file is a rejection later, in the unit that reads it.
"""

from __future__ import annotations

import ast
import json

import polars as pl

from pipeline.sources.common import RECORD_COLUMNS, empty_record_frame
from pipeline.storage import Location, csv_source, exists, join

SOURCE = "ptbxl"
AGE_OVER_89 = 300  # PTB-XL's de-identified age for patients over 89


def _scp_json(literal: str | None) -> str | None:
    """PTB-XL's scp_codes (a Python dict literal) as canonical JSON, or None when unparsable."""
    if not literal:
        return None
    try:
        codes = ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(codes, dict):
        return None
    return json.dumps({str(k): float(v) for k, v in sorted(codes.items())})


def prepare_ptbxl(
    root: Location, records: str = "records500", limit: int | None = None
) -> pl.DataFrame:
    """Records of the PTB-XL folder ``root`` as a sorted record frame.

    ``records`` picks the 500 Hz (``records500``, filename_hr) or 100 Hz (``records100``,
    filename_lr) copy. ``limit`` keeps the first N records by ecg_id.
    """
    csv = join(root, "ptbxl_database.csv")
    if not exists(csv):
        raise FileNotFoundError(f"{csv} not found: is {root} a PTB-XL folder?")
    raw = pl.read_csv(csv_source(csv), infer_schema_length=0)  # all strings: no guessing
    if raw.height == 0:
        return empty_record_frame()
    path_col = "filename_hr" if records == "records500" else "filename_lr"
    age = pl.col("age").cast(pl.Float32, strict=False)
    frame = raw.select(
        pl.col("ecg_id").cast(pl.Int64).alias("_key"),
        pl.col("ecg_id").cast(pl.Int64).cast(pl.String).alias("record_id"),
        pl.col("patient_id")
        .cast(pl.Float64, strict=False)
        .cast(pl.Int64)
        .cast(pl.String)
        .alias("patient_id"),
        pl.col(path_col).fill_null("").alias("path"),
        pl.col("report").fill_null("").alias("report"),
        pl.when(age == AGE_OVER_89).then(pl.lit(90.0, pl.Float32)).otherwise(age).alias("age"),
        pl.col("sex").replace_strict({"0": "male", "1": "female"}, default=None).alias("sex"),
        pl.col("scp_codes").map_elements(_scp_json, return_dtype=pl.String).alias("scp_codes"),
        pl.col("strat_fold").cast(pl.Float64, strict=False).cast(pl.Int32).alias("strat_fold"),
        pl.lit(None, pl.String).alias("measurements"),
        pl.lit(None, pl.List(pl.String)).alias("statements"),
    ).sort("_key")
    if limit is not None:
        frame = frame.head(limit)
    return frame.select(RECORD_COLUMNS)
