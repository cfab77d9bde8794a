"""`meit-corpus report` on a corpus built from the real PTB-XL sample: the files, the embedded
figures, and counts that equal the manifest's and the ledger's."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.finalise import validate_corpus
from pipeline.report import INDEX, render_html
from pipeline.report_figures import FIGURES, make_figures, png_bytes
from pipeline.report_stats import amplitude_sample, collect_stats, shard_paths
from schemas import decode_ecg, read_manifest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(sample_corpus: Path, tmp_path_factory) -> tuple[Path, str, dict]:
    """The report of the shared sample corpus, written by the CLI into a folder of its own."""
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(sample_corpus), "--out", str(out)]) == 0
    html = (out / INDEX).read_text()
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))
    return out, html, data


def test_every_figure_is_written_and_embedded(report):
    out, html, _ = report
    embedded = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    assert [name for name, _ in embedded] == list(FIGURES)
    for name, b64 in embedded:
        png = (out / f"{name}.png").read_bytes()
        assert png[:8] == PNG_MAGIC and len(png) > 5_000
        assert base64.b64decode(b64) == png
    # self-contained: nothing is fetched from elsewhere
    assert not re.search(r'(src|href)="(?!data:)', html)


def test_counts_equal_the_manifest_and_the_ledger(report, sample_corpus: Path):
    _, html, data = report
    manifest = read_manifest(sample_corpus)
    kept = {(r["source"], r["split"]): r["records"] for r in data["records"]}
    assert kept == {
        (s, split): n for s, c in manifest.counts.items() for split, n in c.kept.items()
    }
    rows = {(r["source"], r["split"]): r["rows"] for r in data["records"]}
    assert rows == {(f.source, f.split): f.rows for f in manifest.files}
    rejected = {(r["source"], r["reason"]): r["count"] for r in data["rejections"]}
    assert rejected == {
        (s, why): n for s, c in manifest.counts.items() for why, n in c.rejected.items()
    }
    assert rejected == {("ptbxl", "missing_file"): 1}  # the sample's 100 Hz-only record
    ledger = pl.read_parquet(sample_corpus / manifest.rejections.path)
    assert sum(rejected.values()) == ledger.height
    assert {r["template_id"]: r["count"] for r in data["templates"]} == manifest.templates
    assert {r["task"]: r["count"] for r in data["tasks"]} == manifest.tasks
    languages = {r["report_language"]: r["count"] for r in data["languages"]}
    assert sum(languages.values()) == manifest.counts["ptbxl"].kept_total
    assert [r["sequence"] for r in data["refreshes"]] == [r.sequence for r in manifest.refreshes]
    # the visible tables say the same as the data
    assert '<td>ptbxl</td><td>missing_file</td><td class="n">1</td>' in html
    assert f"{manifest.counts['ptbxl'].kept_total} records kept" in html


def test_report_statistics_are_the_rows(report, sample_corpus: Path):
    _, _, data = report
    manifest = read_manifest(sample_corpus)
    rows = pl.read_parquet(
        shard_paths(sample_corpus, manifest), columns=["example", "report", "scp_codes", "age"]
    )
    records = rows.filter(pl.col("example") == 0)
    words = sorted(len(r.split()) for r in records["report"])
    hist = [(r["words"], r["count"]) for r in data["report_words"]]
    assert sorted(w for w, n in hist for _ in range(n)) == words
    norm = sum('"NORM"' in s for s in records["scp_codes"])
    assert {r["code"]: r["count"] for r in data["scp_codes"]}.get("NORM", 0) == norm
    assert sum(r["count"] for r in data["ages"]) == records["age"].drop_nulls().len()
    assert data["unit"] == "mV"  # the default build does not normalise


def test_amplitude_sample_is_bounded_and_exact(sample_corpus: Path):
    paths = shard_paths(sample_corpus, read_manifest(sample_corpus))
    sample = amplitude_sample(paths, max_rows=2)
    assert sum(len(v) for v in sample.values()) == len(paths)  # one row from each shard
    first = decode_ecg(pq.read_table(paths[0], columns=["ecg"])["ecg"])[0]
    expected = first.astype(np.float32).max(axis=1) - first.astype(np.float32).min(axis=1)
    np.testing.assert_array_equal(sample["ptbxl"][0], expected)


def test_default_folder_keeps_the_corpus_valid(sample_corpus: Path, tmp_path: Path, capsys):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(sample_corpus, corpus)
    assert main(["report", str(corpus)]) == 0
    assert (corpus / "report" / INDEX).stat().st_size > 50_000
    assert "report written to" in capsys.readouterr().out
    assert validate_corpus(corpus) == []  # report/ is not data: validation ignores it


def test_folder_without_manifest_is_one_line_exit_2(tmp_path: Path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) == 1 and "no manifest.json" in lines[0]


def test_a_corpus_without_rows_still_reports(sample_corpus: Path):
    """Every record rejected: no shard at all, yet the report says so (no polars error)."""
    manifest = read_manifest(sample_corpus).model_copy(update={"files": []})
    stats = collect_stats(sample_corpus, manifest)
    assert stats.records.height == 0 and stats.amplitude == {}
    images = {name: png_bytes(fig) for name, fig in make_figures(stats).items()}
    html = render_html(stats, images, "empty")
    assert "0 records kept (0 rows), 1 rejected." in html


@pytest.mark.parametrize("where", ["data", "meta", "."])
def test_a_report_folder_inside_the_corpus_data_is_refused(
    sample_corpus: Path, tmp_path: Path, capsys, where: str
):
    """A report under data/ or meta/ (or the corpus root) would mix HTML and PNGs into what
    users load and publish: one line, exit 2, nothing written there."""
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(sample_corpus, corpus)
    before = sorted(str(p) for p in corpus.rglob("*"))
    assert main(["report", str(corpus), "--out", str(corpus / where)]) == 2
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) == 1 and "inside the corpus" in lines[0], lines
    assert sorted(str(p) for p in corpus.rglob("*")) == before
