"""Reports come out English: PTB-XL translated per row, MIMIC statements cleaned."""

from __future__ import annotations

import polars as pl

from pipeline.config import TextConfig
from pipeline.reports import ReportCleaner
from pipeline.sources.mimic import MIMIC


def test_real_ptbxl_rows_come_out_english(ptbxl_reports_csv):
    cleaner = ReportCleaner.from_config(TextConfig())
    rows = pl.read_csv(ptbxl_reports_csv, infer_schema_length=0).select("ecg_id", "report")
    texts = [cleaner.ptbxl(r["ecg_id"], r["report"] or "") for r in rows.iter_rows(named=True)]
    langs = {t.language for t in texts}
    assert {"de", "en", "sv"} <= langs
    german = [t for t in texts if t.language == "de"]
    tokens = sum(t.n_tokens for t in german)
    assert sum(t.n_translated for t in german) / tokens >= 0.98
    assert sum(1 for t in german if t.untranslated) <= 10


def test_pretranslated_csv_takes_precedence(tmp_path):
    csv = tmp_path / "en.csv"
    csv.write_text("ecg_id,report_en\n6001,sinus rhythm. p widening. normal axis.\n")
    cleaner = ReportCleaner.from_config(TextConfig(translation="csv", translation_csv=csv))
    assert cleaner.ptbxl("6001", "sinusrhythmus p-verbreiterung lagetyp normal").report == (
        "sinus rhythm. p widening. normal axis."
    )
    assert cleaner.ptbxl("6007", "sinusrhythmus normales ekg").language == "de"


def test_mimic_warnings_dropped_and_short_reports_flagged():
    cleaner = ReportCleaner.from_config(TextConfig())
    text = cleaner.mimic(
        [
            "--- Warning: Data quality may affect interpretation ---",
            "Sinus rhythm",
            None,
            "Normal ECG",
        ]
    )
    assert text.report == "sinus rhythm. normal ecg."
    assert text.dropped == ("--- Warning: Data quality may affect interpretation ---",)
    assert text.words == 4 >= MIMIC.min_report_words(cleaner.cfg)
    assert cleaner.mimic(["Sinus rhythm"]).words < MIMIC.min_report_words(cleaner.cfg)
