"""English from outside the glossary: the pre-translated CSV reader and the MarianMT wrapper."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.text import MarianTranslator, load_pretranslated_csv


@pytest.mark.parametrize("column", ["report_en", "english", "translation", "report"])
def test_load_pretranslated_csv(tmp_path: Path, column: str) -> None:
    path = tmp_path / "en.csv"
    path.write_text(f"ecg_id,{column}\n1,sinus rhythm.\n6000.0,normal ecg.\n7,\n", encoding="utf-8")
    assert load_pretranslated_csv(path) == {1: "sinus rhythm.", 6000: "normal ecg."}


def test_load_pretranslated_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_pretranslated_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("ecg_id,text\n1,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="report_en"):
        load_pretranslated_csv(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("ecg_id,report_en\n1,x\n1,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate ecg_id 1"):
        load_pretranslated_csv(dup)
    nonint = tmp_path / "nonint.csv"
    nonint.write_text("ecg_id,report_en\nabc,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad ecg_id"):
        load_pretranslated_csv(nonint)


def test_marian_translator_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="MarianMT model directory not found"):
        MarianTranslator(tmp_path / "no-model")
