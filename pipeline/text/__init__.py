"""Report text: PTB-XL translation (German/Swedish -> English) and MIMIC-IV-ECG statement cleaning.

Pure functions and frozen dataclasses; nothing is read at import time (glossaries are loaded by
:func:`load_translator` and :func:`load_abbreviations`).
"""

from pipeline.text.mimic import (
    DROP_RULES,
    AbbreviationRule,
    CleanedReport,
    clean_statement,
    clean_statements,
    drop_reason,
    load_abbreviations,
)
from pipeline.text.translate import (
    CoverageStats,
    Glossary,
    MarianTranslator,
    Translation,
    Translator,
    coverage,
    detect_language,
    load_pretranslated_csv,
    load_translator,
    normalise_german,
    normalise_swedish,
    strip_boilerplate,
)

__all__ = [
    "DROP_RULES",
    "AbbreviationRule",
    "CleanedReport",
    "CoverageStats",
    "Glossary",
    "MarianTranslator",
    "Translation",
    "Translator",
    "clean_statement",
    "clean_statements",
    "coverage",
    "detect_language",
    "drop_reason",
    "load_abbreviations",
    "load_pretranslated_csv",
    "load_translator",
    "normalise_german",
    "normalise_swedish",
    "strip_boilerplate",
]
