"""A test-only third dataset, registered from the tests: what adding a source takes.

Layout: ``<root>/records.csv`` (record_id, patient_id, path, report, heart_rate) and WFDB records
under ``<root>/``. English reports; patients split by hash; the heart rate is its one fact.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from pipeline.config import BuildConfig, TextConfig
from pipeline.qa import in_range, no_facts
from pipeline.reports import ReportCleaner, ReportText, word_count
from pipeline.sources.record import RECORD_COLUMNS
from pipeline.storage import Location, csv_source, join
from pipeline.text import collapse


@dataclass(frozen=True)
class ToySource:
    """The toy dataset as a :class:`pipeline.sources.Source`."""

    name: str = "toy"
    title: str = "Toy ECG v0 (test-only)"
    display_name: str = "Toy ECG"
    license: str = "CC0"
    split_rule: str = "patient"

    def prepare(self, root: Location, cfg: BuildConfig) -> pl.DataFrame:
        raw = pl.read_csv(csv_source(join(root, "records.csv")), infer_schema_length=0)
        frame = raw.select(
            pl.col("record_id"),
            pl.col("patient_id"),
            pl.col("path"),
            pl.col("report"),
            pl.lit(None, pl.Float32).alias("age"),
            pl.lit(None, pl.String).alias("sex"),
            pl.lit(None, pl.String).alias("scp_codes"),
            pl.lit(None, pl.Int32).alias("strat_fold"),
            pl.col("heart_rate")
            .map_elements(lambda hr: json.dumps({"heart_rate": hr}), return_dtype=pl.String)
            .alias("measurements"),
            pl.lit([], pl.List(pl.String)).alias("statements"),
        ).sort("record_id")
        return (frame.head(cfg.limit) if cfg.limit else frame).select(RECORD_COLUMNS)

    def load_resources(self, root: Location) -> Mapping[str, Any]:
        return {}

    def clean_report(self, cleaner: ReportCleaner, row: dict) -> ReportText:
        text = collapse(row["report"])
        return ReportText(text, "en", n_tokens=word_count(text))

    def min_report_words(self, text: TextConfig) -> int:
        return 2

    def facts(self, row: dict, resources: Mapping[str, Any], text: TextConfig) -> dict:
        facts = no_facts()
        hr = json.loads(row["measurements"])["heart_rate"]
        checked = in_range("heart_rate_bpm", float(hr))
        facts["heart_rate_bpm"] = None if checked is None else int(round(checked))
        return facts

    def card_text(self) -> str:
        return "Toy: a few real PTB-XL waveforms under another layout, for the tests."


TOY = ToySource()
