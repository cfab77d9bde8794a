"""Corpus rows: a record's cleaned report, its examples rendered from the templates, the table.

One record gives one row per example: the report-generation example first, then the question-answer
tasks drawn for it. What a worker loads once per unit of work lives in :class:`UnitTools`; nothing
here keeps state between calls (the cleaned reports are passed in, the tallies read off the rows),
except the parsed template catalogue, kept per process while its files are unchanged
(:func:`cached_catalog`: parsing it cost ~40 ms per unit, 6 % of a 500-record unit).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.conditioning import Conditioned
from pipeline.config import BuildConfig
from pipeline.prompts import Catalog, choose_template, load_catalog, render_pair
from pipeline.qa import REPORT_TASK, available_tasks, draw_tasks
from pipeline.reports import ReportCleaner, ReportText
from pipeline.sources import Source
from pipeline.storage import as_location
from pipeline.units import TextStats, WorkUnit
from schemas import CANONICAL_LEADS, corpus_schema, encode_ecg
from templates import TEMPLATES_DIR


def catalog_signature(directory: Path = TEMPLATES_DIR) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of every template file: another signature when any file changes."""
    return tuple(
        (p.relative_to(directory).as_posix(), st.st_size, st.st_mtime_ns)
        for p in sorted(Path(directory).rglob("*.j2"))
        for st in (p.stat(),)
    )


@functools.lru_cache(maxsize=2)
def _catalog(directory: Path, signature: tuple[tuple[str, int, int], ...]) -> Catalog:
    return load_catalog(directory)


def cached_catalog(directory: Path = TEMPLATES_DIR) -> Catalog:
    """:func:`pipeline.prompts.load_catalog`, parsed once per process while the template files'
    signature (:func:`catalog_signature`) stays the same; a changed template is parsed again."""
    return _catalog(Path(directory), catalog_signature(directory))


@dataclass(frozen=True)
class UnitTools:
    """What a worker loads once per unit: templates, report cleaner, the source's lookup tables."""

    catalog: Catalog
    cleaner: ReportCleaner
    resources: Mapping[str, Any]

    @classmethod
    def load(cls, cfg: BuildConfig, unit: WorkUnit) -> "UnitTools":
        resources = unit.source.load_resources(as_location(unit.root))
        return cls(cached_catalog(), ReportCleaner.from_config(cfg.text), resources)


def render_context(row: dict, source: Source, cfg: BuildConfig) -> dict:
    """The record-level variables a template may use (see ``prompts.CONTEXT_FIELDS``)."""
    duration = cfg.signal.duration_s
    return {
        "age": row.get("age"),
        "sex": row.get("sex"),
        "source": source.name,
        "dataset_name": source.display_name,
        "fs": cfg.signal.fs,
        "duration_s": int(duration) if float(duration).is_integer() else duration,
        "n_leads": len(CANONICAL_LEADS),
    }


def record_examples(
    row: dict, text: ReportText, unit: WorkUnit, cfg: BuildConfig, tools: UnitTools
) -> list[dict]:
    """The examples of one record: the report first, then drawn question–answer tasks.

    Each is a dict with the row id, example index, template, task and the two turns.
    """
    record_key = f"{unit.name}/{row['record_id']}"
    facts = unit.source.facts(row, tools.resources, cfg.text)
    context = {**render_context(row, unit.source, cfg), **facts, "report": text.report}
    tasks = [REPORT_TASK] + draw_tasks(
        record_key,
        available_tasks(facts),
        cfg.text.task_weights,
        cfg.text.examples_per_record - 1,
        cfg.text.template_seed,
    )
    examples = []
    for k, task in enumerate(tasks):
        template = choose_template(
            tools.catalog, record_key, unit.name, context, cfg.text.template_seed, task
        )
        user, assistant = render_pair(tools.catalog, template, context)
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


def to_table(
    c: Conditioned,
    texts: Mapping[str, ReportText],
    unit: WorkUnit,
    cfg: BuildConfig,
    tools: UnitTools,
) -> pa.Table:
    """Arrow table of conditioned records: one row per example, instructions rendered.

    ``texts`` are the records' cleaned reports (record id -> :class:`ReportText`).
    """
    schema = corpus_schema(cfg.signal.n_samples)
    columns: dict[str, list] = {name: [] for name in schema.names if name != "ecg"}
    take: list[int] = []  # which record's signal each row carries
    for i, (row, repaired) in enumerate(zip(c.rows, c.nan_repaired)):
        text = texts[row["record_id"]]
        shared = {
            "source": unit.name,
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
        for example in record_examples(row, text, unit, cfg, tools):
            values = {**shared, **example}
            for name in columns:
                columns[name].append(values[name])
            take.append(i)
    ecg = encode_ecg(c.ecg if len(take) == len(c.rows) else c.ecg[take])
    arrays = [ecg if f.name == "ecg" else pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def text_rejection(text: ReportText, min_words: int) -> tuple[str, str] | None:
    """``(reason, detail)`` when a cleaned report is too short to keep, else None."""
    need = max(1, min_words)
    if text.words >= need:
        return None
    reason = "empty_report" if text.words == 0 else "short_report"
    return reason, f"{text.words} words after cleaning (need {need}): {text.report!r}"


def text_stats(texts: Sequence[ReportText]) -> TextStats:
    """Language counts and translation coverage of one unit's reports."""
    languages = Counter(t.language for t in texts)
    foreign = [t for t in texts if t.language in ("de", "sv")]
    return TextStats(
        languages=dict(sorted(languages.items())),
        foreign_tokens=sum(t.n_tokens for t in foreign),
        translated_tokens=sum(t.n_translated for t in foreign),
        incomplete_reports=sum(1 for t in foreign if t.untranslated),
        untranslated=dict(sorted(Counter(tok for t in foreign for tok in t.untranslated).items())),
        dropped_statements=sum(len(t.dropped) for t in texts),
    )
