"""Question–answer facts come from the record's own fields: range-checked, never invented."""

from __future__ import annotations

import json

import polars as pl

from pipeline.config import TextConfig
from pipeline.qa import available_tasks, draw_tasks
from pipeline.sources.mimic import MIMIC, measurement_facts, prepare_mimic
from pipeline.sources.ptbxl import load_scp_statements, prepare_ptbxl, scp_facts


def test_real_mimic_measurements_give_the_computed_answers(mimic_sample):
    row = prepare_mimic(mimic_sample).row(0, named=True)
    raw = json.loads(row["measurements"])
    facts = measurement_facts(row["measurements"])
    # The real row: rr 659 ms, p_onset 40, qrs_onset 170, qrs_end 258, t_end 518, axes 81/77/79.
    assert facts["heart_rate_bpm"] == round(60000 / raw["rr_interval"]) == 91
    assert facts["pr_ms"] == raw["qrs_onset"] - raw["p_onset"] == 130
    assert facts["qrs_ms"] == raw["qrs_end"] - raw["qrs_onset"] == 88
    assert facts["qt_ms"] == raw["t_end"] - raw["qrs_onset"] == 348
    assert (facts["p_axis"], facts["qrs_axis"], facts["t_axis"]) == (81, 77, 79)
    assert available_tasks(MIMIC.facts(row, {}, TextConfig())) == [
        "heart_rate",
        "intervals",
        "axes",
    ]


def test_sentinels_and_implausible_values_are_dropped():
    facts = measurement_facts(
        json.dumps(
            {
                "rr_interval": 29999,
                "p_onset": 29999,
                "qrs_onset": 200,
                "qrs_end": 290,
                "t_end": 29999,
                "p_axis": 29999,
                "qrs_axis": -45,
                "t_axis": 60,
            }
        )
    )
    assert facts["heart_rate_bpm"] is None  # 2 bpm is not a heart rate
    assert facts["pr_ms"] is None and facts["qt_ms"] is None and facts["qrs_ms"] == 90
    assert facts["p_axis"] is None and facts["qrs_axis"] == -45
    assert available_tasks(facts) == []  # intervals and axes need every value


def test_real_ptbxl_scp_codes_give_rhythm_and_diagnosis(ptbxl_sample):
    catalogue = load_scp_statements(ptbxl_sample)
    assert len(catalogue) == 71
    frame = prepare_ptbxl(ptbxl_sample)
    row = frame.filter(pl.col("record_id") == "6002").row(0, named=True)
    # {'NORM': 100.0, 'IRBBB': 100.0, 'SBRAD': 0.0}
    facts = scp_facts(row["scp_codes"], catalogue, 50)
    assert facts["rhythm_statements"] == ["sinus bradycardia"]
    assert sorted(facts["diagnostic_statements"]) == [
        "incomplete right bundle branch block",
        "normal ECG",
    ]
    low = frame.filter(pl.col("record_id") == "6005").row(0, named=True)  # {'NORM': 15.0, 'SR': 0}
    assert scp_facts(low["scp_codes"], catalogue, 50)["diagnostic_statements"] is None
    assert scp_facts(low["scp_codes"], catalogue, 10)["diagnostic_statements"] == ["normal ECG"]


def test_task_draw_is_seeded_and_weighted():
    tasks = ["rhythm", "diagnosis", "heart_rate"]
    weights = {"rhythm": 1.0, "diagnosis": 1.0, "heart_rate": 0.0}
    draws = [tuple(draw_tasks(f"x/{i}", tasks, weights, 2, 0)) for i in range(200)]
    assert draws == [tuple(draw_tasks(f"x/{i}", tasks, weights, 2, 0)) for i in range(200)]
    assert all(set(d) == {"rhythm", "diagnosis"} for d in draws)
    singles = {draw_tasks(f"x/{i}", tasks, weights, 1, 0)[0] for i in range(200)}
    assert singles == {"rhythm", "diagnosis"}
