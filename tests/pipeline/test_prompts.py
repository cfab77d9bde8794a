"""Golden template choices: the instruction template chosen for given row ids, seeds and tasks.

Update only on purpose, with the reason in the commit message: a change here gives records of
every corpus built before a different instruction. The choice depends only on the row id, the
seed, the task and the sorted ids of the eligible templates (sha256, machine independent); adding,
removing or renaming an eligible template re-keys the choice, and these values say so.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import jinja2
import pytest

from pipeline.prompts import Template, choose_template, load_catalog, render, render_pair

PTBXL = {
    "age": 56.0,
    "sex": "female",
    "source": "ptbxl",
    "dataset_name": "PTB-XL",
    "fs": 500,
    "duration_s": 10,
    "n_leads": 12,
    "rhythm_statements": ["sinus rhythm"],
    "diagnostic_statements": ["normal ECG"],
    "report": "sinus rhythm. normal ecg.",
}
MIMIC = {
    "age": None,
    "sex": None,
    "source": "mimic",
    "dataset_name": "MIMIC-IV-ECG",
    "fs": 500,
    "duration_s": 10,
    "n_leads": 12,
    "heart_rate_bpm": 75,
    "pr_ms": 160,
    "qrs_ms": 90,
    "qt_ms": 400,
    "p_axis": 50,
    "qrs_axis": 30,
    "t_axis": 40,
    "report": "sinus rhythm. normal ecg.",
}
CONTEXTS = {"ptbxl": PTBXL, "mimic": MIMIC}

# (source, seed) -> record id -> report_generation template id
GOLDEN_REPORT = {
    ("ptbxl", 0): {
        "1": "report.clinical.statement",
        "6000": "report.clinical.machine",
        "6001": "report.patient.age_terse",
        "6002": "report.patient.age_clinical",
        "6004": "report.conversational.what",
        "6005": "report.patient.age_sex",
        "6006": "report.patient.age_terse",
        "6007": "report.conversational.quick",
        "6008": "report.conversational.explain",
    },
    ("ptbxl", 1): {
        "1": "report.meit_ptbxl",
        "6000": "report.patient.age_terse",
        "6001": "report.terse.interpret",
        "6002": "report.clinical.sampled",
        "6004": "report.patient.sex_conversational",
        "6005": "report.patient.age_terse",
        "6006": "report.clinical.statement",
        "6007": "report.clinical.dataset",
        "6008": "report.terse.interpret",
    },
    ("mimic", 0): {
        "40689238": "report.clinical.read",
        "40006000": "report.terse.interpretation",
        "40006001": "report.conversational.colleague",
        "40006002": "report.clinical.machine",
    },
    ("mimic", 1): {
        "40689238": "report.conversational.normal",
        "40006000": "report.conversational.help",
        "40006001": "report.terse.summarise",
        "40006002": "report.clinical.abnormalities",
    },
}

# (task, source) -> record id -> question template id (seed 0)
GOLDEN_QA = {
    ("rhythm", "ptbxl"): {"6000": "qa.rhythm.conversational", "6001": "qa.rhythm.conversational"},
    ("diagnosis", "ptbxl"): {
        "6000": "qa.diagnosis.conversational",
        "6001": "qa.diagnosis.conversational",
        "40689238": "qa.diagnosis.scp",
    },
    ("heart_rate", "mimic"): {
        "6000": "qa.heart_rate.conversational",
        "6001": "qa.heart_rate.what",
        "40689238": "qa.heart_rate.estimate",
    },
    ("intervals", "mimic"): {
        "6001": "qa.intervals.conversational",
        "40689238": "qa.intervals.measure",
    },
    ("axes", "mimic"): {"6000": "qa.axes.measure", "6001": "qa.axes.what"},
}

# Row id -> the rendered (user, assistant) turns (seed 0, the PTB-XL context above).
GOLDEN_TURNS = {
    "ptbxl/6005": (
        "Resting ECG of a 56-year-old female patient. Write the report.",
        PTBXL["report"],
    ),
    "ptbxl/6002": (
        "Interpret this ECG from a 56-year-old patient, noting any age-relevant findings.",
        PTBXL["report"],
    ),
}


def test_golden_report_templates():
    catalog = load_catalog()
    chosen = {
        (source, seed): {
            rid: choose_template(catalog, f"{source}/{rid}", source, CONTEXTS[source], seed).id
            for rid in ids
        }
        for (source, seed), ids in GOLDEN_REPORT.items()
    }
    assert chosen == GOLDEN_REPORT


def test_golden_question_templates():
    catalog = load_catalog()
    chosen = {
        (task, source): {
            rid: choose_template(catalog, f"{source}/{rid}", source, CONTEXTS[source], 0, task).id
            for rid in ids
        }
        for (task, source), ids in GOLDEN_QA.items()
    }
    assert chosen == GOLDEN_QA


def test_golden_rendered_turns():
    catalog = load_catalog()
    for row_id, turns in GOLDEN_TURNS.items():
        template = choose_template(catalog, row_id, "ptbxl", PTBXL, 0)
        assert render_pair(catalog, template, PTBXL) == turns, row_id


# ---------------------------------------------------------------- the template file format
# A catalog written to a temporary folder: what the parser accepts, what it rejects (with the
# reason), and how the text renders.

ANSWER = "{#-\nid: a\ntask: answer\nregister: plain\norigin: hand-written\n-#}\n{{ report }}\n"
QUESTION_FORMS = {
    # the catalog's form: whitespace-control comment, body on its own line, final newline
    "dashed": "{#-\nid: q\ntask: report_generation\nanswer: a\nregister: terse\n"
    "sources: [ptbxl]\nrequires: [age]\norigin: MEIT, Table X\n-#}\nDescribe this ECG.\n",
    "spaced": "{# id: q\ntask: report_generation\nanswer: a\nregister: terse\n"
    "sources: [ptbxl]\nrequires: [age]\norigin: MEIT, Table X #}\nDescribe this ECG.",
    # no space after the opening mark, body on the comment's line
    "tight": "{#id: q\ntask: report_generation\nanswer: a\nregister: terse\n"
    "sources: [ptbxl]\nrequires: [age]\norigin: MEIT, Table X#}Describe this ECG.",
}


def write_catalog(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> text) under ``root``; returns ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("form", sorted(QUESTION_FORMS))
def test_template_file_metadata_and_body(tmp_path, form):
    """Each comment form gives the same metadata (verbatim, to the last character) and the same
    body: the newline after the comment and the file's final newline are not instruction text."""
    root = write_catalog(
        tmp_path, {"answers/a.j2": ANSWER, "report_generation/q.j2": QUESTION_FORMS[form]}
    )
    catalog = load_catalog(root)
    assert [t.id for t in catalog.templates] == ["a", "q"]
    q = catalog.by_id("q")
    assert q == Template(
        id="q",
        task="report_generation",
        register="terse",
        origin="MEIT, Table X",
        source_text=q.source_text,
        path="report_generation/q.j2",
        sources=("ptbxl",),
        requires=("age",),
        answer="a",
    )
    assert q.source_text.rstrip("\n") == "Describe this ECG."
    assert catalog.by_id("a").answer is None and catalog.by_id("a").path == "answers/a.j2"
    context = {"age": 60, "report": "sinus rhythm."}
    assert render_pair(catalog, q, context) == ("Describe this ECG.", "sinus rhythm.")


def test_a_jinja_comment_in_the_body_is_not_metadata(tmp_path):
    question = QUESTION_FORMS["dashed"].replace("Describe", "{# reviewer: keep short #}Describe")
    root = write_catalog(tmp_path, {"a.j2": ANSWER, "q.j2": question})
    catalog = load_catalog(root)
    assert catalog.by_id("q").origin == "MEIT, Table X"
    assert render(catalog, catalog.by_id("q"), {}) == "Describe this ECG."


def test_reports_render_verbatim_and_strictly(tmp_path):
    """No HTML escaping of report text (``<``, ``>``, ``&`` are common in ECG reports), and a
    variable the record lacks is an error, not an empty string."""
    root = write_catalog(tmp_path, {"a.j2": ANSWER, "q.j2": QUESTION_FORMS["dashed"]})
    catalog = load_catalog(root)
    report = "QTc > 470 ms & ST depression <1 mm; 'borderline' \"ECG\""
    assert render(catalog, catalog.by_id("a"), {"report": report}) == report
    with pytest.raises(jinja2.UndefinedError, match="'report' is undefined"):
        render(catalog, catalog.by_id("a"), {})


BAD_TEMPLATES = {
    "no metadata comment": (
        "Describe this ECG.",
        "bad.j2: a template must start with a {# metadata #} comment",
    ),
    "missing keys": (
        "{#-\nid: q\ntask: report_generation\nanswer: a\n-#}\nDescribe.",
        "bad.j2: metadata lacks ['origin', 'register']",
    ),
    "unknown keys": (
        "{#-\nid: q\ntask: t\nregister: r\norigin: o\nanswer: a\ncolour: red\nlang: en\n-#}\nx",
        "bad.j2: unknown metadata keys ['colour', 'lang']",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TEMPLATES))
def test_malformed_template_is_rejected_with_its_reason(tmp_path, case):
    text, message = BAD_TEMPLATES[case]
    root = write_catalog(tmp_path, {"a.j2": ANSWER, "bad.j2": text})
    with pytest.raises(ValueError) as err:
        load_catalog(root)
    assert str(err.value) == f"{root}/{message}"


def test_catalog_rejects_duplicate_ids_and_unknown_answers(tmp_path):
    dup = write_catalog(
        tmp_path / "dup",
        {"a.j2": ANSWER, "x/q.j2": QUESTION_FORMS["dashed"], "y/q.j2": QUESTION_FORMS["spaced"]},
    )
    with pytest.raises(ValueError, match=re.escape("duplicate template ids: ['q']")):
        load_catalog(dup)
    orphan = write_catalog(tmp_path / "orphan", {"q.j2": QUESTION_FORMS["dashed"]})
    with pytest.raises(ValueError) as err:
        load_catalog(orphan)
    assert str(err.value) == "q.j2: answer template 'a' not in the catalog"


def test_lookup_and_choice_failures_name_what_is_missing(tmp_path):
    root = write_catalog(tmp_path, {"a.j2": ANSWER, "q.j2": QUESTION_FORMS["dashed"]})
    catalog = load_catalog(root)
    with pytest.raises(KeyError) as err:
        catalog.by_id("nope")
    assert err.value.args == ("nope",)
    with pytest.raises(ValueError) as err:
        choose_template(catalog, "mimic/1", "mimic", {"age": 60}, 0)
    assert str(err.value) == "no report_generation template applies to a mimic record"
    with pytest.raises(ValueError) as err:
        render_pair(catalog, catalog.by_id("a"), {"report": "x"})
    assert str(err.value) == "template a names no answer template"


@pytest.mark.parametrize("missing", [None, [], ""])
def test_a_required_fact_that_is_empty_makes_a_template_ineligible(missing):
    t = Template("t", "rhythm", "terse", "o", "", "t.j2", ("ptbxl",), ("age", "rhythm_statements"))
    assert t.applies_to("ptbxl", {"age": 60, "rhythm_statements": ["sinus rhythm"]})
    assert t.applies_to("ptbxl", {"age": 0, "rhythm_statements": ["sinus rhythm"]})
    assert not t.applies_to("mimic", {"age": 60, "rhythm_statements": ["sinus rhythm"]})
    assert not t.applies_to("ptbxl", {"age": 60, "rhythm_statements": missing})
    assert not t.applies_to("ptbxl", {"rhythm_statements": ["sinus rhythm"]})


def test_templates_are_read_as_utf8_whatever_the_locale(tmp_path, monkeypatch):
    """A template with non-ASCII text reads the same under a Latin-1 default encoding (a
    Windows-like locale, simulated: Python's default text encoding is looked up per call)."""
    question = QUESTION_FORMS["dashed"].replace("Describe this ECG.", "Amplitudes in µV: describe.")
    root = write_catalog(tmp_path, {"a.j2": ANSWER, "q.j2": question})
    monkeypatch.setattr(io, "text_encoding", lambda encoding, stacklevel=2: encoding or "latin-1")
    catalog = load_catalog(root)
    assert render(catalog, catalog.by_id("q"), {}) == "Amplitudes in µV: describe."
