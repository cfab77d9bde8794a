"""Cleaning of MIMIC-IV-ECG machine statements (``report_0`` ... ``report_17``) into one report.

Per statement, in order: skip empty cells; strip the ``*``/``=``/``-`` decoration and whitespace
from both ends; drop device warnings and other non-findings by the named rules in
:data:`DROP_RULES`; collapse spacing; ``EKG`` -> ``ECG``; optionally expand abbreviations
(``glossary/mimic_abbreviations.tsv``, whole tokens only); lower-case (default, as MEIT); end with
exactly one period. Kept statements are joined with one space, in their original order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.text.tsv import collapse, read_pairs

ABBREVIATIONS_TSV = Path(__file__).with_name("glossary") / "mimic_abbreviations.tsv"
ABBREVIATION_HEADER = ("abbreviation", "expansion")

# (name, pattern) pairs; a statement is dropped when a pattern matches its decoration-free,
# whitespace-collapsed, lower-cased text. Each names a kind of device message, not a finding.
DROP_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("data_quality_warning", r"^(warning: )?data quality may affect interpretation$"),
        ("poor_quality_data", r"^poor quality data, interpretation may be affected$"),
        (
            "unknown_sex_or_age",
            r"^report made without knowing patient's (sex|age)( or (sex|age))?$",
        ),
        (
            "age_assumed",
            r"^age not entered, assumed to be \d+ years old for purpose of ecg interpretation$",
        ),
        ("leads_unsuitable", r"^lead\(s\) unsuitable for analysis:?"),
        ("leads_missing", r"^all \d+ leads are missing$"),
        ("lead_omitted", r"^possible (faulty|sequence error:) .*omitted( from analysis)?$"),
        ("recording_unsuitable", r"^recording unsuitable for analysis\b"),
        ("analysis_error", r"^analysis error$"),
        ("measurement_error", r"^possible measurement error$"),
        ("pediatric_criteria", r"^pediatric (criteria used|ecg interpretation)$"),
        (
            "lead_reversal",
            r"^suspect (arm|limb) lead reversal\b|electrode reversal, interpretation assumes",
        ),
        ("pacer_detection_suspended", r"^pacer detection suspended due to external noise"),
    )
)

_DECORATION = re.compile(r"^[\s*=\-]+|[\s*=\-]+$")
_EKG = re.compile(r"\bekg\b", re.IGNORECASE)
_FINAL_PUNCT = re.compile(r"[\s.,;:]+$")
# A token boundary: no letter, digit, underscore, hyphen or apostrophe on that side.
_BEFORE, _AFTER = r"(?<![\w'-])", r"(?![\w'-])"


@dataclass(frozen=True)
class CleanedReport:
    """One study's report: the kept statements joined, and what was dropped."""

    text: str
    dropped: tuple[str, ...]
    n_words: int


@dataclass(frozen=True)
class AbbreviationRule:
    """Expand one abbreviation where it is a whole token (case-insensitive)."""

    abbreviation: str
    expansion: str
    pattern: re.Pattern[str]

    def apply(self, statement: str) -> str:
        """Expand in ``statement``; an all-upper-case statement gets an upper-case expansion."""
        expansion = self.expansion.upper() if statement.isupper() else self.expansion
        return self.pattern.sub(lambda _: expansion, statement)


def load_abbreviations(path: Path | str | None = None) -> tuple[AbbreviationRule, ...]:
    """Read the abbreviation rules (default: the packaged ``mimic_abbreviations.tsv``)."""
    rows = read_pairs(Path(path) if path else ABBREVIATIONS_TSV, ABBREVIATION_HEADER)
    return tuple(
        AbbreviationRule(
            abbreviation.lower(),
            expansion,
            re.compile(_BEFORE + re.escape(abbreviation) + _AFTER, re.IGNORECASE),
        )
        for abbreviation, expansion in rows
    )


def drop_reason(statement: str) -> str | None:
    """Name of the first drop rule matching ``statement`` (raw or cleaned), or ``None``."""
    key = collapse(_DECORATION.sub("", statement)).lower()
    return next((name for name, rule in DROP_RULES if rule.search(key)), None)


def _ecg(match: re.Match[str]) -> str:
    word = match.group(0)
    return "ECG" if word.isupper() else "Ecg" if word[0].isupper() else "ecg"


def clean_statement(
    statement: str, rules: Sequence[AbbreviationRule] = (), lowercase: bool = True
) -> str:
    """One kept statement: no decoration, single spaces, ECG, expansions, one final period."""
    text = collapse(_DECORATION.sub("", statement))
    text = _EKG.sub(_ecg, text)
    for rule in rules:
        text = rule.apply(text)
    text = _FINAL_PUNCT.sub("", text.lower() if lowercase else text)
    return text + "." if text else ""


def clean_statements(
    statements: Sequence[str | None],
    expand_abbreviations: bool = False,
    *,
    rules: Sequence[AbbreviationRule] | None = None,
    lowercase: bool = True,
) -> CleanedReport:
    """Clean one study's ``report_0..17`` cells (``None``/blank cells are skipped).

    ``expand_abbreviations`` uses ``rules`` (default: the packaged TSV, read on each call; pass
    ``rules=load_abbreviations()`` when cleaning many reports).
    """
    active: Sequence[AbbreviationRule] = ()
    if expand_abbreviations:
        active = rules if rules is not None else load_abbreviations()
    kept: list[str] = []
    dropped: list[str] = []
    for raw in statements:
        if raw is None or not raw.strip():
            continue
        if drop_reason(raw):
            dropped.append(raw.strip())
            continue
        cleaned = clean_statement(raw, active, lowercase)
        if cleaned:
            kept.append(cleaned)
    text = " ".join(kept)
    return CleanedReport(text=text, dropped=tuple(dropped), n_words=len(text.split()))
