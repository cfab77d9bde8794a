"""The main job on a fresh machine: `meit-corpus build` with no input builds the synthetic demo."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.cli import main
from schemas import read_manifest


def test_demo_build_validate_inspect(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["build", "--workers", "2"]) == 0
    corpus = tmp_path / "corpus"
    manifest = read_manifest(corpus)
    assert all(c.synthetic for c in manifest.counts.values())
    assert "Synthetic data" in (corpus / "README.md").read_text()
    for c in manifest.counts.values():
        assert c.seen == c.kept_total + c.rejected_total
    # The demo's documented defects: two rejections per source, one repaired NaN gap.
    assert manifest.counts["ptbxl"].rejected == {"empty_report": 1, "flat_lead": 1}
    assert manifest.counts["mimic"].rejected == {"empty_report": 1, "too_much_nan": 1}
    repaired = [
        r
        for f in manifest.files
        for r in pq.read_table(corpus / f.path, columns=["id", "nan_repaired"]).to_pylist()
        if r["nan_repaired"]
    ]
    assert [r["nan_repaired"] for r in repaired] == [20]
    assert main(["validate", str(corpus)]) == 0
    capsys.readouterr()
    png = tmp_path / "rec.png"
    assert main(["inspect", str(corpus), "--id", repaired[0]["id"], "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    out = capsys.readouterr().out
    stats = json.loads(out[: out.rindex("}") + 1])
    assert stats["rows"]["ptbxl"]["train"] == manifest.counts["ptbxl"].kept["train"]
