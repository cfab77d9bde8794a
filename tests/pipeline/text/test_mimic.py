"""MIMIC-IV-ECG statement cleaning: drop rules, formatting, abbreviation expansion."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline.text.mimic import (
    DROP_RULES,
    AbbreviationRule,
    clean_statement,
    clean_statements,
    drop_reason,
    load_abbreviations,
)

# Every drop rule with real statements from statements.tsv that it must drop.
DROP_EXAMPLES = {
    "data_quality_warning": [
        "--- warning: data quality may affect interpretation ---",
        "--- Warning: Data quality may affect interpretation ---",
        "warning: data quality may affect interpretation",
    ],
    "poor_quality_data": ["poor quality data, interpretation may be affected"],
    "unknown_sex_or_age": [
        "*** report made without knowing patient's sex ***",
        "*** report made without knowing patient's sex or age ***",
    ],
    "age_assumed": [
        "age not entered, assumed to be 50 years old for purpose of ecg interpretation",
        "age not entered, assumed to be  50 years old for purpose of ecg interpretation",
    ],
    "leads_unsuitable": ["Lead(s) unsuitable for analysis:", "LEAD(S) UNSUITABLE FOR ANALYSIS:"],
    "leads_missing": ["all 12 leads are missing"],
    "lead_omitted": [
        "possible faulty v2 - omitted from analysis",
        "possible sequence error: v2,v3 omitted",
    ],
    "recording_unsuitable": [
        "--- Recording unsuitable for analysis - please repeat ---",
        "--- recording unsuitable for analysis - please repeat ---",
    ],
    "analysis_error": ["Analysis error"],
    "measurement_error": [
        "--- Possible measurement error ---",
        "--- possible measurement error ---",
    ],
    "pediatric_criteria": [
        "--- Pediatric criteria used ---",
        "-------------------- Pediatric ECG interpretation --------------------",
    ],
    "lead_reversal": [
        "--- Suspect arm lead reversal",
        "--- suspect limb lead reversal - only v1-v6 analyzed ---",
        "right and left arm electrode reversal, interpretation assumes no reversal",
    ],
    "pacer_detection_suspended": [
        "PACER DETECTION SUSPENDED DUE TO EXTERNAL NOISE-REVIEW ADVISED",
        "pacer detection suspended due to external noise-review advised",
    ],
}

# Decorated or warning-like statements that are findings and must be kept.
KEPT = {
    "--- suggests dextrocardia ---": "suggests dextrocardia.",
    "*** consider acute st elevation mi ***": "consider acute st elevation mi.",
    "*** INFERIOR INFARCT - POSSIBLY ACUTE ***": "inferior infarct - possibly acute.",
    "- first degree A-V block": "first degree a-v block.",
    "Pacemaker rhythm - no further analysis": "pacemaker rhythm - no further analysis.",
    "failure to sense and/or capture (?magnet)": "failure to sense and/or capture (?magnet).",
    "Sinus bradycardia - consider sinus rhythm with 2:1 S-A block.": (
        "sinus bradycardia - consider sinus rhythm with 2:1 s-a block."
    ),
    "sinus rhythm.": "sinus rhythm.",
}


def _statements(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["statement"] for row in csv.DictReader(handle, delimiter="\t")]


@pytest.fixture(scope="module")
def real_statements(mimic_statements_tsv: Path) -> list[str]:
    """statements.tsv and the related Glasgow vocabulary beside it."""
    glasgow = mimic_statements_tsv.with_name("related_glasgow_statements.tsv")
    return _statements(mimic_statements_tsv) + (_statements(glasgow) if glasgow.exists() else [])


@pytest.fixture(scope="module")
def rules() -> tuple[AbbreviationRule, ...]:
    return load_abbreviations()


# --- drop rules ---------------------------------------------------------------------------------


def test_every_drop_rule_has_examples() -> None:
    assert set(DROP_EXAMPLES) == {name for name, _ in DROP_RULES}


@pytest.mark.parametrize(
    ("rule", "statement"),
    [(rule, s) for rule, examples in DROP_EXAMPLES.items() for s in examples],
)
def test_drop_rule_on_real_statement(rule: str, statement: str, mimic_statements_tsv: Path) -> None:
    assert statement in _statements(mimic_statements_tsv)
    assert drop_reason(statement) == rule
    report = clean_statements(["Sinus rhythm", statement, "Borderline ECG"])
    assert report.text == "sinus rhythm. borderline ecg."
    assert report.dropped == (statement.strip(),)


@pytest.mark.parametrize(("statement", "cleaned"), KEPT.items())
def test_findings_are_kept(statement: str, cleaned: str) -> None:
    assert drop_reason(statement) is None
    assert clean_statements([statement]).text == cleaned


def test_only_listed_statements_are_dropped(real_statements: list[str]) -> None:
    listed = {s for examples in DROP_EXAMPLES.values() for s in examples}
    dropped = {s for s in real_statements if drop_reason(s)}
    assert listed <= dropped
    assert all(
        not re.search(r"infarct|block|rhythm|fibrillation", s, re.IGNORECASE) for s in dropped
    )


# --- formatting --------------------------------------------------------------------------------


def test_real_study_row(mimic_sample: Path) -> None:
    with (mimic_sample / "machine_measurements.csv").open(newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    cells = [row[f"report_{i}"] or None for i in range(18)]
    report = clean_statements(cells)
    assert report.text == "sinus rhythm. possible right atrial abnormality. borderline ecg."
    assert report.dropped == ()
    assert report.n_words == 8


def test_formatting_rules() -> None:
    assert clean_statement("  Abnormal   EKG  ") == "abnormal ecg."
    assert clean_statement("Abnormal EKG", lowercase=False) == "Abnormal ECG."
    assert clean_statement("abnormal ekg", lowercase=False) == "abnormal ecg."
    assert clean_statement("ekgs and rekg stay") == "ekgs and rekg stay."
    assert clean_statement("=== sinus rhythm. ===") == "sinus rhythm."
    assert clean_statement("*** ***") == ""
    assert clean_statements([None, "", "  ", "***", "sinus rhythm.."]).text == "sinus rhythm."


def test_all_real_statements_clean_to_one_period(real_statements: list[str]) -> None:
    for s in real_statements:
        if drop_reason(s):
            continue
        out = clean_statement(s)
        assert out.endswith(".") and not out.endswith("..")
        assert not re.search(r"^[*=\- ]|[*=\-]\.$|\s{2}", out), out


# --- abbreviations -----------------------------------------------------------------------------

_TOKEN = re.compile(r"[\w'-]+")


def _probes(abbreviation: str, vocabulary: set[str]) -> set[str]:
    """Words that contain the abbreviation without being it: real ones and constructed ones."""
    real = {w for w in vocabulary if abbreviation in w.lower() and w.lower() != abbreviation}
    made = {
        f"x{abbreviation}",
        f"{abbreviation}x",
        f"{abbreviation}1",
        f"{abbreviation}-type",
        f"non-{abbreviation}",
        f"{abbreviation}'s",
    }
    return real | made


def test_abbreviation_file_is_clean(rules: tuple[AbbreviationRule, ...]) -> None:
    names = [r.abbreviation for r in rules]
    assert len(names) == len(set(names)) and all(n == n.lower() for n in names)
    assert all(r.expansion == r.expansion.lower() for r in rules)


@pytest.mark.parametrize(
    ("statement", "expanded"),
    [
        (
            "QRS changes V3/V4 may be due to LVH but cannot rule out anterior infarct",
            (
                "qrs changes v3/v4 may be due to left ventricular hypertrophy but cannot rule out "
                "anterior infarct."
            ),
        ),
        (
            "*** consider acute st elevation mi ***",
            "consider acute st elevation myocardial infarction.",
        ),
        (
            "anterior q waves, possibly due to ilbbb",
            "anterior q waves, possibly due to incomplete left bundle branch block.",
        ),
        (
            "RBBB with RAD - possible left posterior fascicular block",
            (
                "right bundle branch block with right axis deviation - possible left posterior "
                "fascicular "
                "block."
            ),
        ),
        ("sinus rhythm with pvc(s)", "sinus rhythm with premature ventricular contraction(s)."),
        (
            "multiple premature complexes, vent & supraven",
            "multiple premature complexes, ventricular & supraventricular.",
        ),
        (
            "repol abnrm suggests ischemia, lateral leads",
            "repolarization abnormality suggests ischemia, lateral leads.",
        ),
    ],
)
def test_expansion_on_real_statements(
    statement: str, expanded: str, rules: tuple[AbbreviationRule, ...]
) -> None:
    assert clean_statements([statement], expand_abbreviations=True, rules=rules).text == expanded
    assert clean_statements([statement], expand_abbreviations=True).text == expanded


def test_upper_case_statement_gets_upper_case_expansion(
    rules: tuple[AbbreviationRule, ...],
) -> None:
    out = clean_statement("*** CONSIDER ACUTE ST ELEVATION MI ***", rules, lowercase=False)
    assert out == "CONSIDER ACUTE ST ELEVATION MYOCARDIAL INFARCTION."
    assert clean_statement("IVCD, consider atypical RBBB", rules, lowercase=False) == (
        "intraventricular conduction delay, consider atypical right bundle branch block."
    )


def test_every_rule_expands_its_own_token(rules: tuple[AbbreviationRule, ...]) -> None:
    for rule in rules:
        for form in (rule.abbreviation, rule.abbreviation.upper()):
            assert rule.apply(f"a {form}, b") == f"a {rule.expansion}, b"
            assert rule.apply(f"({form}) x") == f"({rule.expansion}) x"
            assert rule.apply(f"x {form}/x") == f"x {rule.expansion}/x"
        assert rule.apply(f"({rule.abbreviation.upper()})") == f"({rule.expansion.upper()})"


@pytest.mark.parametrize("abbreviation", [r.abbreviation for r in load_abbreviations()])
def test_rule_never_corrupts_other_words(
    abbreviation: str, rules: tuple[AbbreviationRule, ...], real_statements: list[str]
) -> None:
    rule = next(r for r in rules if r.abbreviation == abbreviation)
    vocabulary = {w for s in real_statements for w in _TOKEN.findall(s)}
    vocabulary |= {
        "minor",
        "minimal",
        "mild",
        "admission",
        "ilbbb",
        "lbbb-like",
        "pacing",
        "pacemaker",
        "radial",
        "ladder",
        "laevo",
        "event",
        "ventricular",
        "elevation",
        "flutter",
        "repolarization",
        "supraventricular",
        "svt",
    }
    for word in _probes(abbreviation, vocabulary):
        assert rule.apply(word) == word
        assert rule.apply(f"sinus rhythm, {word} noted") == f"sinus rhythm, {word} noted"
    # Generated from the real statements: only tokens equal to the abbreviation may change.
    for statement in real_statements:
        out = rule.apply(statement)
        before = Counter(t for t in _TOKEN.findall(statement) if t.lower() != abbreviation)
        after = Counter(_TOKEN.findall(out))
        assert not before - after, (statement, out)
        assert abbreviation not in {t.lower() for t in _TOKEN.findall(out)} or (
            abbreviation in rule.expansion.split()
        )
        if not any(t.lower() == abbreviation for t in _TOKEN.findall(statement)):
            assert out == statement


def test_expansion_is_off_by_default() -> None:
    assert clean_statements(["incomplete rbbb and lafb"]).text == "incomplete rbbb and lafb."
