"""Golden template choices: the instruction template chosen for given row ids, seeds and tasks.

Update only on purpose, with the reason in the commit message: a change here gives records of
every corpus built before a different instruction. The choice depends only on the row id, the
seed, the task and the sorted ids of the eligible templates (sha256, machine independent); adding,
removing or renaming an eligible template re-keys the choice, and these values say so.
"""

from __future__ import annotations

from pipeline.prompts import choose_template, load_catalog, render_pair

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
