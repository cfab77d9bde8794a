"""``meit-corpus report``: a statistics report of a built corpus, one self-contained HTML file
(figures embedded as base64 PNG) plus the PNGs, written to ``<corpus>/report/``.

Three pure steps: :func:`pipeline.report_stats.collect_stats` (polars' streaming engine over the
shards, reading only the columns each statistic needs, plus the ledger and the manifest; the
amplitudes from a bounded sample of rows read batch by batch), :func:`pipeline.report_figures.
make_figures` (matplotlib) and :func:`render_html` (Jinja, here). :func:`write_report` runs them
and writes the files. The report folder (``REPORT_DIR``) is not listed in the manifest: it
describes the corpus, it is not part of it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.report_figures import make_figures, png_bytes
from pipeline.report_stats import CorpusStats, collect_stats, open_manifest
from schemas import REPORT_DIR

INDEX = "index.html"


class ReportError(ValueError):
    """The report cannot be written (no corpus, an unreadable manifest): one line."""


# ---------------------------------------------------------------- HTML

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: sans-serif; max-width: 72em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 90%; }
th, td { border: 1px solid #ccc; padding: .2em .6em; text-align: left; }
td.n { text-align: right; } img { max-width: 100%; } h2 { border-bottom: 1px solid #ddd; }
</style></head><body>
<h1>{{ title }}</h1>
<p>{{ summary }}</p>
{% for section in sections %}
<section id="{{ section.id }}"><h2>{{ section.title }}</h2>
{% if section.note %}<p>{{ section.note }}</p>{% endif %}
{% if section.figure %}<img alt="{{ section.figure }}" src="data:image/png;base64,{{ images[section.figure] }}">{% endif %}
{% if section.table is not none and section.table.height %}
<table class="{{ section.id }}"><tr>{% for c in section.table.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in section.table.iter_rows() %}<tr>{% for v in row %}<td{% if v is number %} class="n"{% endif %}>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endif %}
</section>
{% endfor %}
<script type="application/json" id="report-data">{{ data | tojson }}</script>
</body></html>
"""


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    figure: str | None = None
    table: pl.DataFrame | None = None
    note: str = ""


def sections(stats: CorpusStats) -> list[Section]:
    """The report's sections: a figure and the table behind it each."""
    coverage = "; ".join(
        f"{source}: coverage {t['translation_coverage']:.1%} of {t['foreign_tokens']} tokens"
        for source, t in sorted(stats.text.items())
        if t.get("translation_coverage") is not None
    )
    sample = sum(len(v) for v in stats.amplitude.values())
    return [
        Section("records", "Records per source and split", "records", stats.records),
        Section("rejections", "Rejections by reason", "rejections", stats.rejections),
        Section("report_length", "Report length", "report_length"),
        Section("statements", "Top statements", "statements", stats.statements),
        Section("scp_codes", "Top SCP codes", "scp_codes", stats.scp_codes),
        Section("templates", "Template usage", "templates", stats.templates),
        Section("tasks", "Task usage", "tasks", stats.tasks),
        Section("age_sex", "Age and sex", "age_sex", stats.sexes),
        Section(
            "amplitude",
            "Per-lead amplitude",
            "amplitude",
            note=f"Peak-to-peak per lead in {stats.unit}, over {sample} rows: the first rows "
            "of each shard (after conditioning).",
        ),
        Section(
            "translation",
            "Translation",
            "translation",
            stats.untranslated,
            note=(coverage or "no foreign-language reports")
            + "; records with untranslated tokens: "
            + (
                ", ".join(
                    f"{r['source']} {r['count']}" for r in stats.incomplete.iter_rows(named=True)
                )
                or "none"
            ),
        ),
        Section("refreshes", "Refresh history", table=stats.refreshes),
    ]


def report_data(stats: CorpusStats) -> dict:
    """The report's tables as JSON-ready lists of rows (embedded in the HTML for programs)."""
    tables = {
        name: getattr(stats, name).to_dicts()
        for name in (
            "records",
            "rejections",
            "report_words",
            "statements",
            "scp_codes",
            "templates",
            "tasks",
            "ages",
            "sexes",
            "languages",
            "incomplete",
            "untranslated",
            "refreshes",
        )
    }
    tables["amplitude_rows"] = {s: len(v) for s, v in stats.amplitude.items()}
    return {"unit": stats.unit, **tables}


def render_html(stats: CorpusStats, images: dict[str, bytes], title: str) -> str:
    """The self-contained HTML report: every figure inlined as a base64 PNG."""
    from jinja2 import Environment

    env = Environment(autoescape=True)
    rows = int(stats.records["rows"].sum()) if stats.records.height else 0
    records = int(stats.records["records"].sum()) if stats.records.height else 0
    rejected = int(stats.rejections["count"].sum()) if stats.rejections.height else 0
    return env.from_string(TEMPLATE).render(
        title=title,
        summary=f"{records} records kept ({rows} rows), {rejected} rejected.",
        sections=sections(stats),
        images={k: base64.b64encode(v).decode("ascii") for k, v in images.items()},
        data=report_data(stats),
    )


def report_folder(corpus: Path, out: Path | None) -> Path:
    """Where the report goes: ``<corpus>/report`` by default, or ``out`` when it is outside the
    corpus (a report under ``data/`` or ``meta/`` would mix into what users load or publish);
    :class:`ReportError` otherwise, or when ``out`` is a file."""
    default = corpus / REPORT_DIR
    out = default if out is None else Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"report folder {out} is a file")
    inside = out.resolve().is_relative_to(corpus.resolve())
    if inside and not out.resolve().is_relative_to(default.resolve()):
        raise ReportError(
            f"report folder {out} is inside the corpus {corpus}: "
            f"use {default} (the default) or a folder outside it"
        )
    return out


def write_report(corpus: Path, out: Path | None = None) -> Path:
    """Write ``index.html`` and one PNG per figure into ``out`` (default ``<corpus>/report``)."""
    corpus = Path(corpus)
    manifest = open_manifest(corpus, ReportError)
    stats = collect_stats(corpus, manifest)
    images = {name: png_bytes(fig) for name, fig in make_figures(stats).items()}
    out = report_folder(corpus, out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (out / f"{name}.png").write_bytes(data)
    index = out / INDEX
    index.write_text(render_html(stats, images, f"Corpus report: {corpus.resolve().name}"))
    return index
