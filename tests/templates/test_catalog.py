"""Template lint: every template parses, uses only schema-backed variables, renders strictly on
real rows of both sources, and the catalog has the breadth the corpus promises."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import jinja2
import pytest
from jinja2 import meta

from pipeline.config import BuildConfig
from pipeline.examples import render_context
from pipeline.prompts import (
    CONTEXT_FIELDS,
    choose_template,
    load_catalog,
    make_environment,
    render,
    render_pair,
)
from pipeline.sources.mimic import MIMIC
from pipeline.sources.ptbxl import PTBXL
from schemas import corpus_schema

MEIT_PROMPTS = {
    "report.meit_mimic": "Given the ECG signal embeddings, please help me generate an accurate "
    "description for this ECG signal embeddings: ",
    "report.meit_ptbxl": "generate a description of the ECG embeddings: ",
}


def real_contexts(ptbxl_sample, mimic_sample) -> list[tuple[str, dict]]:
    """Template contexts of every real PTB-XL row and the real MIMIC row."""
    cfg = BuildConfig()
    out = []
    for source, root in ((PTBXL, ptbxl_sample), (MIMIC, mimic_sample)):
        resources = source.load_resources(root)
        for row in source.prepare(root, cfg).iter_rows(named=True):
            facts = source.facts(row, resources, cfg.text)
            context = {**render_context(row, source, cfg), **facts, "report": row["report"]}
            out.append((source.name, context))
    return out


def test_every_variable_is_backed_by_a_schema_column():
    env = make_environment()
    columns = set(corpus_schema(5000).names)
    assert set(CONTEXT_FIELDS.values()) <= columns
    for t in load_catalog().templates:
        used = meta.find_undeclared_variables(env.parse(t.source_text))
        assert used <= set(CONTEXT_FIELDS), (t.id, used - set(CONTEXT_FIELDS))
        assert set(t.requires) <= set(CONTEXT_FIELDS), t.id


def test_catalog_breadth_and_answers():
    catalog = load_catalog()
    tasks = Counter(t.task for t in catalog.templates)
    assert tasks["report_generation"] >= 40
    qa = {t for t in tasks if t not in ("report_generation", "answer")}
    assert {"rhythm", "diagnosis", "heart_rate", "intervals", "axes"} <= qa
    registers = {t.register for t in catalog.templates if t.task == "report_generation"}
    assert {"terse", "clinical", "conversational", "meit"} <= registers
    assert any(t.requires for t in catalog.templates if t.task == "report_generation")
    for t in catalog.templates:
        if t.task != "answer":
            assert catalog.by_id(t.answer).task == "answer"


def test_every_template_renders_on_real_rows_of_both_sources(ptbxl_sample, mimic_sample):
    catalog = load_catalog()
    rendered: Counter = Counter()
    for source, context in real_contexts(ptbxl_sample, mimic_sample):
        for t in catalog.templates:
            if t.task == "answer" or not t.applies_to(source, context):
                continue
            user, assistant = render_pair(catalog, t, context)
            assert user.strip() and "{" not in user and assistant.strip(), t.id
            rendered[(source, t.id)] += 1
    for t in catalog.templates:
        if t.task == "answer":
            continue
        sources = t.sources or ("ptbxl", "mimic")
        usable = [s for s in sources if (s, t.id) in rendered]
        # PTB-XL-only facts (rhythm, diagnosis) and MIMIC-only facts (measurements) render on
        # the source that has them; everything else renders on both.
        assert usable, f"{t.id} rendered on no real row"
        if t.task == "report_generation" and not t.sources and not t.requires:
            assert set(usable) == {"ptbxl", "mimic"}, t.id


def test_meit_prompts_are_verbatim():
    catalog = load_catalog()
    context = {"source": "ptbxl"}
    for tid, text in MEIT_PROMPTS.items():
        assert render(catalog, catalog.by_id(tid), context) == text


def test_strict_undefined_and_requirements():
    catalog = load_catalog()
    age_sex = catalog.by_id("report.patient.age_sex")
    assert not age_sex.applies_to("mimic", {"age": None, "sex": None})
    with pytest.raises(jinja2.UndefinedError):
        render(catalog, age_sex, {"sex": "male"})


def test_choice_is_seeded_and_varied():
    catalog = load_catalog()
    context = {
        "age": 56.0,
        "sex": "female",
        "source": "ptbxl",
        "dataset_name": "PTB-XL",
        "fs": 500,
        "duration_s": 10,
        "n_leads": 12,
    }
    picks = [choose_template(catalog, f"ptbxl/{i}", "ptbxl", context, 0).id for i in range(400)]
    assert picks == [
        choose_template(catalog, f"ptbxl/{i}", "ptbxl", context, 0).id for i in range(400)
    ]
    assert len(set(picks)) >= 30
    other_seed = [
        choose_template(catalog, f"ptbxl/{i}", "ptbxl", context, 1).id for i in range(400)
    ]
    assert other_seed != picks


# Every template's metadata and text, digested. Update only on purpose, with the reason in the
# commit message: an edited template changes the instructions of every record that uses it, and an
# added, removed or renamed template re-keys the choice of every record of its task and source
# (tests/pipeline/test_prompts.py holds the chosen ids).
GOLDEN_TEMPLATES = {
    "answer.axes": "b1fea35639dd919b",
    "answer.diagnosis": "2f36dcf6e67951e1",
    "answer.heart_rate": "04ba54f67bfbe5c9",
    "answer.intervals": "2fc61692a9ca4c20",
    "answer.report": "9bb92ebe69d9cd72",
    "answer.rhythm": "6557c1551d638a01",
    "qa.axes.conversational": "0431af541f9db754",
    "qa.axes.measure": "361367b30258a017",
    "qa.axes.what": "cd6a21ce6fd40dce",
    "qa.diagnosis.conversational": "b8267b95bb1514c5",
    "qa.diagnosis.list": "75b59405751a204f",
    "qa.diagnosis.scp": "a0194d99dab4a766",
    "qa.diagnosis.what": "8a4e3e5f126a6778",
    "qa.heart_rate.conversational": "5d48e322ca3a8235",
    "qa.heart_rate.estimate": "c2cc3f97b9ca59e5",
    "qa.heart_rate.what": "2e27d7c7b50597ac",
    "qa.intervals.conversational": "7b2ebb5411c6b6ee",
    "qa.intervals.measure": "7a56d54db786c19e",
    "qa.intervals.what": "7782be6747058b1c",
    "qa.rhythm.conversational": "80b14838f98141cc",
    "qa.rhythm.identify": "9166876d1528ff10",
    "qa.rhythm.statement": "2536ac8ec658564f",
    "qa.rhythm.what": "1c2578b743848261",
    "report.clinical.abnormalities": "f896861650af79cf",
    "report.clinical.cardiologist": "ae1443cbdabe3845",
    "report.clinical.concise": "4a93cf1a3bffd08c",
    "report.clinical.dataset": "73d256421008665f",
    "report.clinical.findings": "4eed847764aa178b",
    "report.clinical.machine": "0c2db186cd853b9a",
    "report.clinical.read": "536cd0aaaada2788",
    "report.clinical.resting": "7a4e6b92da045f21",
    "report.clinical.rhythm_morphology": "381a37c8f72b0153",
    "report.clinical.sampled": "97fd5a176a09dbd3",
    "report.clinical.statement": "8e280d6ee0c74d44",
    "report.clinical.twelve_lead": "356f4b85bcde44d0",
    "report.conversational.colleague": "01423f61867a1f67",
    "report.conversational.explain": "deef2d05e86165be",
    "report.conversational.help": "d582d7b44a663cae",
    "report.conversational.look": "a293bdae5d545957",
    "report.conversational.normal": "9e87306f7db32c2c",
    "report.conversational.quick": "dd1028ede1baf59b",
    "report.conversational.thoughts": "126dd342eefa3608",
    "report.conversational.walk": "d270fa8367d85f9b",
    "report.conversational.what": "62b7871a30157bdf",
    "report.embeddings.accurate": "0c22d230086752f2",
    "report.embeddings.describe": "f1b029ecdb484c36",
    "report.embeddings.neutral": "282e85f0e45223b3",
    "report.embeddings.report": "caa68d83892fd992",
    "report.meit_mimic": "4c374c43b2d1aa6c",
    "report.meit_ptbxl": "30abb53c3d6a6f29",
    "report.patient.age": "408f7465ddda834c",
    "report.patient.age_clinical": "34335ae07acfd20a",
    "report.patient.age_sex": "1af053ed353c76bf",
    "report.patient.age_sex_conversational": "395b47d299b8b934",
    "report.patient.age_sex_findings": "b49bb42258b29a6b",
    "report.patient.age_terse": "62a1fba972d49ef3",
    "report.patient.sex": "f6b85722e6ecb586",
    "report.patient.sex_conversational": "c9836b79a3d2a8c4",
    "report.terse.describe": "729c285d9bdeff53",
    "report.terse.diagnose": "a2c0e14c37adf049",
    "report.terse.findings": "f76315e31047a945",
    "report.terse.interpret": "e1bf6d057d45eff4",
    "report.terse.interpretation": "c01528f8a9e5dceb",
    "report.terse.read": "f30b13d7408fd1b6",
    "report.terse.report": "23c45c103dc6e602",
    "report.terse.summarise": "4dc36a56da34c319",
}


def template_digest(t) -> str:
    """First 16 hex digits of the sha256 of a template's metadata and text."""
    payload = json.dumps(
        [t.id, t.task, t.register, t.origin, list(t.sources), list(t.requires), t.answer]
        + [t.source_text]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def test_golden_templates():
    assert {t.id: template_digest(t) for t in load_catalog().templates} == GOLDEN_TEMPLATES
