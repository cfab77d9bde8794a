"""The record frame every source's ``prepare_*`` returns: one row per input record, sorted."""

from __future__ import annotations

import polars as pl

RECORD_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "patient_id": pl.String(),
    "path": pl.String(),  # record path without extension, relative to the source root
    "report": pl.String(),  # the report exactly as in the source files
    "age": pl.Float32(),
    "sex": pl.String(),
    "scp_codes": pl.String(),  # JSON object, PTB-XL only
    "strat_fold": pl.Int32(),  # PTB-XL only
    "measurements": pl.String(),  # JSON object, MIMIC-IV-ECG only
    "statements": pl.List(pl.String()),  # MIMIC-IV-ECG machine statements in order
}
RECORD_COLUMNS = list(RECORD_SCHEMA)


def empty_record_frame() -> pl.DataFrame:
    """A record frame with no rows."""
    return pl.DataFrame(schema=RECORD_SCHEMA)
