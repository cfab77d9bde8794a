"""Pair a record with its report text: keep the original, produce the English assistant turn.

The record frame's ``report`` column is the original text (PTB-XL's free text; MIMIC's machine
statements joined by newlines). A :class:`ReportCleaner`, built once per unit of work from the
text config, turns it into the cleaned English report:

* PTB-XL: German and Swedish reports are translated (offline glossary by default, or a
  pre-translated CSV keyed by ecg_id, or a local MarianMT model); English passes through.
* MIMIC-IV-ECG: device warnings and non-findings are dropped by rule (kept in
  ``dropped_statements``), EKG -> ECG, spacing and punctuation normalised, statements joined.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.config import TextConfig
from pipeline.text import (
    clean_statements,
    collapse,
    load_abbreviations,
    load_pretranslated_csv,
    load_translator,
)


def word_count(text: str) -> int:
    """Number of words (runs of letters or digits)."""
    return len(re.findall(r"\w+", text))


@dataclass(frozen=True)
class ReportText:
    """The cleaned report of one record and what cleaning did to it."""

    report: str
    language: str
    untranslated: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    n_tokens: int = 0
    n_translated: int = 0

    @property
    def words(self) -> int:
        return word_count(self.report)


@dataclass
class ReportCleaner:
    """Cleans reports of any source with the resources of one text config (loaded once)."""

    cfg: TextConfig
    _translator: object = field(default=None, repr=False)
    _pretranslated: dict[int, str] | None = field(default=None, repr=False)
    _abbreviations: tuple = field(default=(), repr=False)

    @classmethod
    def from_config(cls, cfg: TextConfig) -> "ReportCleaner":
        """Load the glossary / CSV / model and abbreviation rules the config asks for."""
        translator: object = None
        pretranslated = None
        if cfg.translation == "glossary":
            translator = load_translator()
        elif cfg.translation == "csv":
            pretranslated = load_pretranslated_csv(cfg.translation_csv)
            translator = load_translator()  # for language detection and coverage of the rest
        elif cfg.translation == "marian":
            from pipeline.text import MarianTranslator

            translator = MarianTranslator(cfg.marian_model)
        rules = tuple(load_abbreviations()) if cfg.mimic_expand_abbreviations else ()
        return cls(cfg, translator, pretranslated, rules)

    def ptbxl(self, record_id: str, report: str) -> ReportText:
        """English text of a PTB-XL report."""
        if self.cfg.translation == "none" or self._translator is None:
            text = collapse(report)
            return ReportText(text, "unknown", n_tokens=word_count(text))
        if self._pretranslated is not None and int(record_id) in self._pretranslated:
            text = collapse(self._pretranslated[int(record_id)])
            n = word_count(text)
            return ReportText(text, "csv", n_tokens=n, n_translated=n)
        t = self._translator.translate(report)
        return ReportText(
            collapse(t.text),
            t.language,
            tuple(t.untranslated),
            (),
            t.n_tokens,
            t.n_translated,
        )

    def mimic(self, statements: Sequence[str | None]) -> ReportText:
        """Cleaned, joined MIMIC-IV-ECG machine statements."""
        cleaned = clean_statements(
            statements,
            self.cfg.mimic_expand_abbreviations,
            rules=self._abbreviations,
            lowercase=self.cfg.mimic_lowercase,
        )
        n = word_count(cleaned.text)
        return ReportText(collapse(cleaned.text), "en", (), tuple(cleaned.dropped), n, n)
