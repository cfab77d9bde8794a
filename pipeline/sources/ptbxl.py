"""PTB-XL (PhysioNet, v1.0.3 layout): records, folds, German/Swedish reports, SCP statements.

``prepare_ptbxl(root)`` reads ``ptbxl_database.csv`` and returns one row per ECG in the common
record frame (:data:`pipeline.sources.record.RECORD_COLUMNS`), sorted by ecg_id. Nothing is read
from the waveform files here; a missing or bad file is a rejection later, in the unit that reads
it. Splits follow PTB-XL's stratified folds (every patient's records share a fold). Question–answer
facts (rhythm, diagnosis) come from the record's ``scp_codes`` described by
``scp_statements.csv``; diagnostic statements count at likelihood >= a threshold (rhythm
statements carry likelihood 0, "unspecified", and always count).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from pipeline.qa import no_facts
from pipeline.sources.record import RECORD_COLUMNS, empty_record_frame
from pipeline.storage import Location, csv_source, exists, join

if TYPE_CHECKING:
    from pipeline.config import BuildConfig, TextConfig
    from pipeline.reports import ReportCleaner, ReportText

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


@dataclass(frozen=True)
class ScpStatement:
    """One SCP-ECG statement of PTB-XL's catalogue."""

    code: str
    description: str
    diagnostic: bool
    rhythm: bool


def load_scp_statements(root: Location) -> dict[str, ScpStatement]:
    """PTB-XL's ``scp_statements.csv`` (code -> statement); empty when the file is absent."""
    path = join(root, "scp_statements.csv")
    if not exists(path):
        return {}
    frame = pl.read_csv(csv_source(path), infer_schema_length=0)
    code_col = frame.columns[0]
    out = {}
    for row in frame.iter_rows(named=True):
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
        """The records of ``root`` (``cfg.ptbxl_records`` picks the 500 or 100 Hz copy)."""
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
