"""Corpus rows: clean a record's report, render its examples from the templates, build the table.

One record gives one row per example: the report-generation example first, then the question-answer
tasks drawn for it. Everything loaded once per unit of work lives in :class:`UnitTools`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from pipeline.conditioning import Conditioned
from pipeline.config import BuildConfig
from pipeline.prompts import DATASET_NAMES, Catalog, choose_template, load_catalog, render_pair
from pipeline.reports import ReportCleaner, ReportText
from pipeline.storage import as_location
from pipeline.tasks import available_tasks, draw_tasks, load_scp_statements, record_facts
from schemas import CANONICAL_LEADS, corpus_schema

if TYPE_CHECKING:
    from pipeline.build import WorkUnit


@dataclass
class UnitTools:
    """What a worker loads once per unit: templates, report cleaner, SCP catalogue, and tallies."""

    catalog: Catalog
    cleaner: ReportCleaner
    scp: dict
    texts: dict[str, ReportText] = field(default_factory=dict)
    templates: Counter = field(default_factory=Counter)
    tasks: Counter = field(default_factory=Counter)

    @classmethod
    def load(cls, cfg: BuildConfig, unit: WorkUnit) -> "UnitTools":
        scp = load_scp_statements(as_location(unit.root)) if unit.source == "ptbxl" else {}
        return cls(load_catalog(), ReportCleaner.from_config(cfg.text), scp)


def render_context(row: dict, source: str, cfg: BuildConfig) -> dict:
    """The record-level variables a template may use (see ``prompts.CONTEXT_FIELDS``)."""
    duration = cfg.signal.duration_s
    return {
        "age": row.get("age"),
        "sex": row.get("sex"),
        "source": source,
        "dataset_name": DATASET_NAMES.get(source, source),
        "fs": cfg.signal.fs,
        "duration_s": int(duration) if float(duration).is_integer() else duration,
        "n_leads": len(CANONICAL_LEADS),
    }


def record_examples(row: dict, unit: WorkUnit, cfg: BuildConfig, tools: UnitTools) -> list[dict]:
    """The examples of one record: the report first, then drawn question–answer tasks.

    Each is a dict with the row id, example index, template, task and the two turns.
    """
    record_key = f"{unit.source}/{row['record_id']}"
    text = tools.texts[row["record_id"]]
    facts = record_facts(row, unit.source, tools.scp, cfg.text.scp_min_likelihood)
    context = {**render_context(row, unit.source, cfg), **facts, "report": text.report}
    tasks = ["report_generation"] + draw_tasks(
        record_key,
        available_tasks(facts),
        cfg.text.task_weights,
        cfg.text.examples_per_record - 1,
        cfg.text.template_seed,
    )
    examples = []
    for k, task in enumerate(tasks):
        template = choose_template(
            tools.catalog, record_key, unit.source, context, cfg.text.template_seed, task
        )
        user, assistant = render_pair(tools.catalog, template, context)
        tools.templates[template.id] += 1
        tools.tasks[task] += 1
        examples.append(
            {
                "id": record_key if k == 0 else f"{record_key}/{task}",
                "example": k,
                "template_id": template.id,
                "task": task,
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": assistant},
                ],
            }
        )
    return examples


def to_table(c: Conditioned, unit: WorkUnit, cfg: BuildConfig, tools: UnitTools) -> pa.Table:
    """Arrow table of conditioned records: one row per example, instructions rendered."""
    schema = corpus_schema(cfg.signal.n_samples)
    columns: dict[str, list] = {name: [] for name in schema.names if name != "ecg"}
    take: list[int] = []  # which record's signal each row carries
    for i, (row, repaired) in enumerate(zip(c.rows, c.nan_repaired)):
        text = tools.texts[row["record_id"]]
        shared = {
            "source": unit.source,
            "record_id": row["record_id"],
            "patient_id": row["patient_id"],
            "split": unit.split,
            "fs": cfg.signal.fs,
            "report": text.report,
            "report_original": row["report"],
            "report_language": text.language,
            "untranslated": list(text.untranslated),
            "dropped_statements": list(text.dropped),
            "age": row.get("age"),
            "sex": row.get("sex"),
            "source_fs": int(round(c.source_fs)),
            "n_cropped": c.n_cropped,
            "n_padded": c.n_padded,
            "nan_repaired": int(repaired),
            "scp_codes": row.get("scp_codes"),
            "strat_fold": row.get("strat_fold"),
            "measurements": row.get("measurements"),
        }
        for example in record_examples(row, unit, cfg, tools):
            values = {**shared, **example}
            for name in columns:
                columns[name].append(values[name])
            take.append(i)
    ecg16 = c.ecg if len(take) == len(c.rows) else c.ecg[take]
    flat = pa.array(np.ascontiguousarray(ecg16).reshape(-1), type=pa.float16())
    ecg = pa.FixedSizeListArray.from_arrays(
        pa.FixedSizeListArray.from_arrays(flat, cfg.signal.n_samples), len(CANONICAL_LEADS)
    )
    arrays = [ecg if f.name == "ecg" else pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def text_rejection(row: dict, source: str, tools: UnitTools) -> tuple[str, str] | None:
    """Clean the record's report (kept for later) and reject it when too short."""
    text = tools.cleaner.clean(source, row)
    tools.texts[row["record_id"]] = text
    need = tools.cleaner.min_words(source)
    if text.words >= need:
        return None
    reason = "empty_report" if text.words == 0 else "short_report"
    return reason, f"{text.words} words after cleaning (need {need}): {text.report!r}"


def text_stats(texts: Sequence[ReportText]) -> dict:
    """Per-unit language counts and translation coverage, summed over units in finalise."""
    languages = Counter(t.language for t in texts)
    foreign = [t for t in texts if t.language in ("de", "sv")]
    untranslated = Counter(tok for t in foreign for tok in t.untranslated)
    return {
        "languages": dict(sorted(languages.items())),
        "foreign_tokens": sum(t.n_tokens for t in foreign),
        "translated_tokens": sum(t.n_translated for t in foreign),
        "incomplete_reports": sum(1 for t in foreign if t.untranslated),
        "untranslated": dict(sorted(untranslated.items())),
        "dropped_statements": sum(len(t.dropped) for t in texts),
    }
