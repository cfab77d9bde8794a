"""``meit-corpus report``: a statistics report of a built corpus, one self-contained HTML file
(figures embedded as base64 PNG) plus the PNGs, written to ``<corpus>/report/``.

Three pure steps: :func:`collect_stats` (polars' streaming engine over the shards, reading only
the columns each statistic needs, plus the ledger and the manifest; the amplitudes from a bounded
sample of rows read batch by batch), :func:`make_figures` (matplotlib) and :func:`render_html`
(Jinja). :func:`write_report` runs them and writes the files. The report folder is not listed in
the manifest: it describes the corpus, it is not part of it.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from pydantic import ValidationError

from schemas import CANONICAL_LEADS, MANIFEST, Manifest, decode_ecg, read_manifest

try:  # the Hub layout names the report folder; older checkouts did not have it yet
    from schemas.layout import REPORT_DIR
except ImportError:  # pragma: no cover
    REPORT_DIR = "report"

TOP = 20  # bars in a top-N figure
AMPLITUDE_ROWS = 240  # rows sampled for the amplitude figure (bounded: a batch per shard)
DPI = 110
INDEX = "index.html"

FIGURES: tuple[str, ...] = (
    "records",
    "rejections",
    "report_length",
    "statements",
    "scp_codes",
    "templates",
    "tasks",
    "age_sex",
    "amplitude",
    "translation",
)
"""The report's figures, in the order the HTML shows them (``<name>.png`` each)."""


class ReportError(ValueError):
    """The report cannot be written (no corpus, an unreadable manifest): one line."""


@dataclass
class CorpusStats:
    """Everything the report shows; small aggregated tables only (never rows or signals)."""

    records: pl.DataFrame  # source, split, rows, records
    rejections: pl.DataFrame  # source, reason, count
    report_words: pl.DataFrame  # source, words, count (report rows)
    statements: pl.DataFrame  # source, statement, count (top per source)
    scp_codes: pl.DataFrame  # code, count (top)
    templates: pl.DataFrame  # template_id, task, count
    tasks: pl.DataFrame  # task, count
    ages: pl.DataFrame  # source, age, count (records)
    sexes: pl.DataFrame  # source, sex, count (records)
    languages: pl.DataFrame  # source, report_language, count (records)
    incomplete: pl.DataFrame  # source, count: records with untranslated tokens
    untranslated: pl.DataFrame  # token, count (top)
    refreshes: pl.DataFrame  # sequence, mode, added, changed, removed, shards written/removed
    amplitude: dict[str, np.ndarray]  # source -> (n, 12) peak-to-peak per lead of sampled rows
    unit: str  # the unit of the rows' ecg values
    text: dict = field(default_factory=dict)  # the manifest's translation statistics


# ---------------------------------------------------------------- statistics


def open_manifest(corpus: Path) -> Manifest:
    """The corpus's manifest; :class:`ReportError` when there is none or it does not parse."""
    try:
        return read_manifest(corpus)
    except FileNotFoundError:
        raise ReportError(f"{corpus} is not a corpus folder: it has no {MANIFEST}") from None
    except (ValidationError, ValueError, OSError) as exc:
        why = str(exc).splitlines()[0]
        raise ReportError(f"{corpus}/{MANIFEST} cannot be read: {why}") from None


def shard_paths(corpus: Path, manifest: Manifest) -> list[Path]:
    """The corpus's shards, as the manifest lists them (sources' Parquet files only)."""
    return [
        Path(corpus) / f.path for f in manifest.files if f.source and f.path.endswith(".parquet")
    ]


def _ranked(frame: pl.LazyFrame, by: list[str], top: int | None = None) -> pl.LazyFrame:
    """``frame`` counted by ``by``, most frequent first (ties by key), the first ``top`` kept."""
    counted = frame.group_by(by).agg(pl.len().cast(pl.Int64).alias("count"))
    ranked = counted.sort(["count", *by], descending=[True, *[False] * len(by)])
    return ranked.head(top) if top else ranked


def row_queries(rows: pl.LazyFrame, top: int = TOP) -> dict[str, pl.LazyFrame]:
    """The aggregations over the shards' rows; each reads only the columns it names."""
    report_rows = rows.filter(pl.col("example") == 0)  # one per record
    statements = report_rows.select(
        "source",
        statement=pl.col("report").str.strip_chars().str.strip_chars_end(".").str.split(". "),
    ).explode("statement")
    statements = statements.filter(pl.col("statement").str.len_chars() > 0)
    codes = report_rows.select(
        code=pl.col("scp_codes")
        .str.extract_all(r'"([^"]+)"\s*:')
        .list.eval(pl.element().str.extract(r'"([^"]+)"'))
    ).explode("code")
    tokens = report_rows.select(token=pl.col("untranslated")).explode("token")
    return {
        "records": rows.group_by("source", "split")
        .agg(rows=pl.len().cast(pl.Int64), records=(pl.col("example") == 0).sum().cast(pl.Int64))
        .sort("source", "split"),
        "report_words": _ranked(
            report_rows.select("source", words=pl.col("report").str.count_matches(r"\S+")),
            ["source", "words"],
        ).sort("source", "words"),
        "statements": _ranked(statements, ["source", "statement"])
        .with_columns(rank=pl.int_range(pl.len()).over("source"))
        .filter(pl.col("rank") < top)
        .sort("source", "rank")
        .drop("rank"),
        "scp_codes": _ranked(codes.drop_nulls(), ["code"], top),
        "templates": _ranked(rows.select("template_id", "task"), ["template_id", "task"]),
        "tasks": _ranked(rows.select("task"), ["task"]),
        "ages": _ranked(
            report_rows.select("source", age=pl.col("age").floor().cast(pl.Int32)).drop_nulls(),
            ["source", "age"],
        ).sort("source", "age"),
        "sexes": _ranked(
            report_rows.select("source", pl.col("sex").fill_null("unknown")), ["source", "sex"]
        ),
        "languages": _ranked(
            report_rows.select("source", "report_language"), ["source", "report_language"]
        ),
        "incomplete": report_rows.filter(pl.col("untranslated").list.len() > 0)
        .group_by("source")
        .agg(count=pl.len().cast(pl.Int64))
        .sort("source"),
        "untranslated": _ranked(tokens.drop_nulls(), ["token"], top),
    }


def ledger_counts(corpus: Path, manifest: Manifest) -> pl.DataFrame:
    """Rejections by source and reason, counted from the ledger file the manifest lists."""
    ledger = pl.scan_parquet(Path(corpus) / manifest.rejections.path).select("source", "reason")
    return _ranked(ledger, ["source", "reason"]).collect()


def amplitude_sample(paths: list[Path], max_rows: int = AMPLITUDE_ROWS) -> dict[str, np.ndarray]:
    """Peak-to-peak amplitude per lead of up to ``max_rows`` rows: the first batch of each shard
    (an even share), read batch by batch (only ``source`` and ``ecg``), never a whole shard."""
    share = max(1, math.ceil(max_rows / max(1, len(paths))))
    found: dict[str, list[np.ndarray]] = {}
    for path in paths:
        batches = pq.ParquetFile(path).iter_batches(batch_size=share, columns=["source", "ecg"])
        batch = next(batches, None)
        if batch is None or not batch.num_rows:
            continue
        ecg = decode_ecg(batch.column("ecg")).astype(np.float32)
        p2p = np.nanmax(ecg, axis=2) - np.nanmin(ecg, axis=2)
        for source in set(batch.column("source").to_pylist()):
            mask = np.asarray(batch.column("source").to_pylist()) == source
            found.setdefault(source, []).append(p2p[mask])
    return {s: np.concatenate(parts) for s, parts in sorted(found.items())}


def refresh_table(manifest: Manifest) -> pl.DataFrame:
    """The manifest's refresh history, one row per build or refresh."""
    return pl.DataFrame(
        [
            {
                "sequence": r.sequence,
                "mode": r.mode,
                "config_changed": r.config_changed,
                "added": r.added,
                "changed": r.changed,
                "removed": r.removed,
                "shards_written": len(r.written),
                "shards_removed": len(r.removed_shards),
            }
            for r in manifest.refreshes
        ],
        schema={
            "sequence": pl.Int64,
            "mode": pl.String,
            "config_changed": pl.Boolean,
            "added": pl.Int64,
            "changed": pl.Int64,
            "removed": pl.Int64,
            "shards_written": pl.Int64,
            "shards_removed": pl.Int64,
        },
    )


def collect_stats(corpus: Path, manifest: Manifest, top: int = TOP) -> CorpusStats:
    """The report's statistics: streaming aggregations over the shards, the ledger, a bounded
    amplitude sample and the manifest's own records (translation, refreshes)."""
    from pipeline.preview import row_unit

    paths = shard_paths(corpus, manifest)
    queries = row_queries(pl.scan_parquet(paths), top)
    frames = dict(zip(queries, pl.collect_all(list(queries.values()), engine="streaming")))
    normalise = manifest.config.get("signal", {}).get("normalise", "none")
    return CorpusStats(
        **frames,
        rejections=ledger_counts(corpus, manifest),
        refreshes=refresh_table(manifest),
        amplitude=amplitude_sample(paths),
        unit=row_unit(normalise).long,
        text=manifest.text,
    )


# ---------------------------------------------------------------- figures


def _figure(rows: int = 1, cols: int = 1, height: float = 4.0, width: float = 8.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False).reshape(-1)


def _barh(ax, labels: list[str], values: list[int], title: str, xlabel: str = "count") -> None:
    """Horizontal bars, the first label on top; "none" when there is nothing to show."""
    ax.set_title(title, fontsize=10)
    if not labels:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    bars = ax.barh(labels[::-1], values[::-1], color="#4c72b0")
    ax.bar_label(bars, fontsize=7, padding=2)
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=7)


def _height(n: int) -> float:
    return max(2.5, 0.8 + 0.22 * n)


def fig_records(s: CorpusStats):
    labels = [f"{r['source']}/{r['split']}" for r in s.records.iter_rows(named=True)]
    fig, (ax,) = _figure(height=_height(len(labels)))
    _barh(ax, labels, s.records["records"].to_list(), "records kept per source and split")
    return fig


def fig_rejections(s: CorpusStats):
    labels = [f"{r['source']}: {r['reason']}" for r in s.rejections.iter_rows(named=True)]
    fig, (ax,) = _figure(height=_height(len(labels)))
    _barh(ax, labels, s.rejections["count"].to_list(), "records rejected, by reason (ledger)")
    return fig


def fig_report_length(s: CorpusStats):
    fig, (ax,) = _figure()
    for source, part in s.report_words.group_by("source", maintain_order=True):
        ax.hist(
            part["words"].to_numpy(),
            bins=np.arange(0, int(s.report_words["words"].max()) + 2),
            weights=part["count"].to_numpy(),
            histtype="step",
            label=str(source[0]),
        )
    ax.set(title="report length (words per record's report)", xlabel="words", ylabel="records")
    if s.report_words.height:
        ax.legend()
    return fig


def fig_statements(s: CorpusStats):
    sources = s.statements["source"].unique(maintain_order=True).to_list() or ["-"]
    n = max([len(s.statements.filter(pl.col("source") == x)) for x in sources] + [1])
    fig, axes = _figure(1, len(sources), height=_height(n), width=6.0 * len(sources))
    for ax, source in zip(axes, sources):
        part = s.statements.filter(pl.col("source") == source)
        _barh(ax, part["statement"].to_list(), part["count"].to_list(), f"top statements: {source}")
    return fig


def fig_scp_codes(s: CorpusStats):
    fig, (ax,) = _figure(height=_height(s.scp_codes.height))
    _barh(ax, s.scp_codes["code"].to_list(), s.scp_codes["count"].to_list(), "top SCP codes")
    return fig


def fig_templates(s: CorpusStats):
    top = s.templates.head(TOP)
    title = f"top {top.height} of {s.templates.height} templates used (rows)"
    fig, (ax,) = _figure(height=_height(top.height))
    _barh(ax, top["template_id"].to_list(), top["count"].to_list(), title)
    return fig


def fig_tasks(s: CorpusStats):
    fig, (ax,) = _figure(height=_height(s.tasks.height))
    _barh(ax, s.tasks["task"].to_list(), s.tasks["count"].to_list(), "task usage (rows)")
    return fig


def fig_age_sex(s: CorpusStats):
    fig, (age_ax, sex_ax) = _figure(1, 2, width=11.0)
    for source, part in s.ages.group_by("source", maintain_order=True):
        age_ax.hist(
            part["age"].to_numpy(),
            bins=np.arange(0, 105, 5),
            weights=part["count"].to_numpy(),
            histtype="step",
            label=str(source[0]),
        )
    age_ax.set(title="age (records)", xlabel="years", ylabel="records")
    if s.ages.height:
        age_ax.legend()
    labels = [f"{r['source']}: {r['sex']}" for r in s.sexes.iter_rows(named=True)]
    _barh(sex_ax, labels, s.sexes["count"].to_list(), "sex (records)")
    return fig


def fig_amplitude(s: CorpusStats):
    sources = list(s.amplitude) or ["-"]
    fig, axes = _figure(len(sources), 1, height=3.2 * len(sources), width=10.0)
    for ax, source in zip(axes, sources):
        p2p = s.amplitude.get(source)
        if p2p is None or not len(p2p):
            _barh(ax, [], [], "amplitude")
            continue
        ax.boxplot(p2p, tick_labels=list(CANONICAL_LEADS), showfliers=False)
        ax.set(
            title=f"{source}: peak-to-peak amplitude per lead ({len(p2p)} sampled rows)",
            ylabel=s.unit,
        )
    return fig


def fig_translation(s: CorpusStats):
    fig, (lang_ax, tok_ax) = _figure(1, 2, width=11.0, height=_height(s.untranslated.height))
    labels = [f"{r['source']}: {r['report_language']}" for r in s.languages.iter_rows(named=True)]
    _barh(lang_ax, labels, s.languages["count"].to_list(), "report language (records)")
    _barh(
        tok_ax,
        s.untranslated["token"].to_list(),
        s.untranslated["count"].to_list(),
        "top untranslated tokens",
    )
    return fig


def make_figures(stats: CorpusStats) -> dict:
    """Name -> matplotlib Figure, for every name in :data:`FIGURES`."""
    makers = {
        "records": fig_records,
        "rejections": fig_rejections,
        "report_length": fig_report_length,
        "statements": fig_statements,
        "scp_codes": fig_scp_codes,
        "templates": fig_templates,
        "tasks": fig_tasks,
        "age_sex": fig_age_sex,
        "amplitude": fig_amplitude,
        "translation": fig_translation,
    }
    return {name: makers[name](stats) for name in FIGURES}


def png_bytes(fig, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


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


def write_report(corpus: Path, out: Path | None = None) -> Path:
    """Write ``index.html`` and one PNG per figure into ``out`` (default ``<corpus>/report``)."""
    corpus = Path(corpus)
    manifest = open_manifest(corpus)
    stats = collect_stats(corpus, manifest)
    images = {name: png_bytes(fig) for name, fig in make_figures(stats).items()}
    out = Path(out) if out is not None else corpus / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (out / f"{name}.png").write_bytes(data)
    index = out / INDEX
    index.write_text(render_html(stats, images, f"Corpus report: {corpus.resolve().name}"))
    return index
