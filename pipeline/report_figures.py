"""The statistics report's figures (matplotlib), one function per figure, from
:class:`pipeline.report_stats.CorpusStats` (small aggregated tables only)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from pipeline.report_stats import TOP
from schemas import CANONICAL_LEADS

if TYPE_CHECKING:
    from pipeline.report_stats import CorpusStats

DPI = 110

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


def bar_figure(labels: list[str], values: list[int], title: str):
    """One horizontal bar chart, as tall as its labels need."""
    fig, (ax,) = _figure(height=_height(len(labels)))
    _barh(ax, labels, values, title)
    return fig


def fig_records(s: CorpusStats):
    labels = [f"{r['source']}/{r['split']}" for r in s.records.iter_rows(named=True)]
    return bar_figure(labels, s.records["records"].to_list(), "records kept per source and split")


def fig_rejections(s: CorpusStats):
    labels = [f"{r['source']}: {r['reason']}" for r in s.rejections.iter_rows(named=True)]
    title = "records rejected, by reason (ledger)"
    return bar_figure(labels, s.rejections["count"].to_list(), title)


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
    return bar_figure(
        s.scp_codes["code"].to_list(), s.scp_codes["count"].to_list(), "top SCP codes"
    )


def fig_templates(s: CorpusStats):
    top = s.templates.head(TOP)
    title = f"top {top.height} of {s.templates.height} templates used (rows)"
    return bar_figure(top["template_id"].to_list(), top["count"].to_list(), title)


def fig_tasks(s: CorpusStats):
    return bar_figure(s.tasks["task"].to_list(), s.tasks["count"].to_list(), "task usage (rows)")


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
