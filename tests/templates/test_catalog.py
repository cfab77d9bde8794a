"""Every template parses, uses only known variables, and renders for both sources (strict)."""

from __future__ import annotations

import jinja2
import pytest
from jinja2 import meta

from pipeline.prompts import CONTEXT_FIELDS, choose_template, load_catalog, make_environment, render

MEIT_PROMPTS = {
    "report.meit_mimic": "Given the ECG signal embeddings, please help me generate an accurate "
    "description for this ECG signal embeddings: ",
    "report.meit_ptbxl": "generate a description of the ECG embeddings: ",
}
CONTEXTS = {
    "ptbxl": {"age": 56.0, "sex": "female", "source": "ptbxl", "dataset_name": "PTB-XL",
              "fs": 500, "duration_s": 10, "n_leads": 12},
    "mimic": {"age": None, "sex": None, "source": "mimic", "dataset_name": "MIMIC-IV-ECG",
              "fs": 500, "duration_s": 10, "n_leads": 12},
}


def test_every_variable_is_a_known_field():
    env = make_environment()
    for t in load_catalog().templates:
        used = meta.find_undeclared_variables(env.parse(t.source_text))
        assert used <= set(CONTEXT_FIELDS), (t.id, used - set(CONTEXT_FIELDS))
        assert set(t.requires) <= set(CONTEXT_FIELDS)


@pytest.mark.parametrize("source", ["ptbxl", "mimic"])
def test_every_applicable_template_renders(source):
    catalog = load_catalog()
    rendered = 0
    for t in catalog.templates:
        if t.applies_to(source, CONTEXTS[source]):
            text = render(catalog, t, CONTEXTS[source])
            assert text.strip() and "{" not in text
            rendered += 1
    assert rendered >= 10


def test_meit_prompts_are_verbatim():
    catalog = load_catalog()
    for tid, text in MEIT_PROMPTS.items():
        src = tid.split("_")[-1]
        assert render(catalog, catalog.by_id(tid), CONTEXTS[src]) == text


def test_strict_undefined_and_requirements():
    catalog = load_catalog()
    age_sex = catalog.by_id("report.patient.age_sex")
    assert not age_sex.applies_to("mimic", CONTEXTS["mimic"])
    with pytest.raises(jinja2.UndefinedError):
        render(catalog, age_sex, {"sex": "male"})


def test_choice_is_seeded_and_varied():
    catalog = load_catalog()
    picks = [choose_template(catalog, f"ptbxl/{i}", "ptbxl", CONTEXTS["ptbxl"], 0).id
             for i in range(400)]
    assert picks == [choose_template(catalog, f"ptbxl/{i}", "ptbxl", CONTEXTS["ptbxl"], 0).id
                     for i in range(400)]
    assert len(set(picks)) >= 10
