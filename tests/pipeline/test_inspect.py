"""`meit-corpus inspect`: any row id (question rows too), and one line with exit code 2 for an
unknown id or a folder without a manifest (the clinical drawing is tested in test_preview.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.inspect import find_row
from schemas import read_manifest


def test_inspect_draws_a_question_row(sample_corpus: Path, tmp_path: Path):
    manifest = read_manifest(sample_corpus)
    question = find_row(sample_corpus, manifest, "ptbxl/6001/diagnosis")
    assert question["task"] == "diagnosis"
    png = tmp_path / "q.png"
    assert main(["inspect", str(sample_corpus), "--id", question["id"], "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args", [["--id", "ptbxl/999999"], ["--id", "nosuch"]])
def test_unknown_id_is_one_line_exit_2(sample_corpus: Path, tmp_path: Path, capsys, args):
    assert main(["inspect", str(sample_corpus), *args, "--out", str(tmp_path / "x.png")]) == 2
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) == 1 and "no row with id" in lines[0] and "Traceback" not in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_folder_without_manifest_is_one_line_exit_2(tmp_path: Path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) == 1 and "no manifest.json" in lines[0]


def test_stats_count_report_words_of_every_row(sample_corpus: Path):
    import numpy as np
    import pyarrow.parquet as pq

    from pipeline.inspect import corpus_stats

    manifest = read_manifest(sample_corpus)
    reports = [
        r
        for f in manifest.files
        for r in pq.read_table(sample_corpus / f.path)["report"].to_pylist()
    ]
    words = np.array([len(r.split()) for r in reports])
    stats = corpus_stats(sample_corpus, manifest)
    assert stats["report_words"] == {
        "mean": float(words.mean()),
        "median": float(np.median(words)),
        "max": int(words.max()),
    }
    assert stats["rows"] == {"ptbxl": {f.split: f.rows for f in manifest.files}}
