"""Report text: PTB-XL translation (German/Swedish -> English) and MIMIC-IV-ECG statement cleaning.

Pure functions and frozen dataclasses; nothing is read at import time (glossaries are loaded by
:func:`load_translator` and :func:`load_abbreviations`).

Modules: ``tsv`` (glossary file reader, whitespace collapsing) <- ``language`` (boilerplate,
language detection, normalisation) <- ``translate`` (glossary translation) <- ``external``
(pre-translated CSV, MarianMT); ``mimic`` (MIMIC-IV-ECG statements) uses only ``tsv``.
"""

from pipeline.text.external import MarianTranslator, load_pretranslated_csv
from pipeline.text.language import (
    detect_language,
    normalise_german,
    normalise_swedish,
    strip_boilerplate,
)
from pipeline.text.mimic import (
    DROP_RULES,
    AbbreviationRule,
    CleanedReport,
    clean_statement,
    clean_statements,
    drop_reason,
    load_abbreviations,
)
from pipeline.text.translate import Glossary, Translation, Translator, load_translator
from pipeline.text.tsv import collapse

__all__ = [
    "DROP_RULES",
    "AbbreviationRule",
    "CleanedReport",
    "Glossary",
    "MarianTranslator",
    "Translation",
    "Translator",
    "clean_statement",
    "clean_statements",
    "collapse",
    "detect_language",
    "drop_reason",
    "load_abbreviations",
    "load_pretranslated_csv",
    "load_translator",
    "normalise_german",
    "normalise_swedish",
    "strip_boilerplate",
]
