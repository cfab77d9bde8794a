"""Adding a dataset = one file implementing ``Source``: a test-only toy source (``toy.py``)
registered from the tests builds through the unchanged pipeline, on worker processes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.build import build
from pipeline.config import BuildConfig
from pipeline.errors import InputError
from pipeline.sources import BUILTIN, Source, registry
from schemas import CARD, decode_ecg, read_manifest
from tests.pipeline.sources.toy import TOY

REPO = Path(__file__).resolve().parents[3]

# toy record id -> (PTB-XL record it copies, report, heart rate)
RECORDS = {
    "a1": ("06001", "sinus rhythm, normal ecg", "61"),
    "a2": ("06002", "sinus bradycardia otherwise normal", "48"),
    "b1": ("06004", "ok", "75"),  # one word: rejected (the toy source needs two)
    "b2": ("06005", "atrial fibrillation with rapid response", "999"),  # heart rate out of range
    "c1": ("06099", "sinus rhythm", "70"),  # no such file: rejected
}


def toy_folder(ptbxl_sample: Path, root: Path) -> Path:
    """The toy layout: flat WFDB copies of real PTB-XL records and a records.csv."""
    (root / "ecg").mkdir(parents=True)
    with open(root / "records.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["record_id", "patient_id", "path", "report", "heart_rate"])
        for rid, (ecg_id, report, hr) in RECORDS.items():
            for ext in ("hea", "dat"):
                src = ptbxl_sample / "records500" / "06000" / f"{ecg_id}_hr.{ext}"
                if src.exists():
                    text = src.read_bytes().replace(f"{ecg_id}_hr".encode(), rid.encode())
                    (root / "ecg" / f"{rid}.{ext}").write_bytes(text)
            w.writerow([rid, f"p-{rid[0]}", f"ecg/{rid}", report, hr])
    return root


@pytest.fixture(scope="module")
def toy_build(ptbxl_sample, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    common = dict(workers=2, shards_per_split=1)
    text = {"examples_per_record": 2, "task_weights": {"heart_rate": 1.0}}
    cfg = BuildConfig(
        sources={"toy": toy_folder(ptbxl_sample, tmp / "in")}, out=tmp / "toy", text=text, **common
    )
    reference = BuildConfig(ptbxl=ptbxl_sample, out=tmp / "ptbxl", **common)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(REPO))  # spawned workers import the plug-in by its module path
        return build(cfg, extra_sources=[TOY]), build(reference)


def rows(corpus: Path) -> dict[str, dict]:
    out = {}
    for f in read_manifest(corpus).files:
        table = pq.read_table(corpus / f.path)
        ecg = decode_ecg(table.column("ecg"))
        for i, row in enumerate(table.drop(["ecg"]).to_pylist()):
            out[row["id"]] = {**row, "ecg": ecg[i]}
    return out


def test_toy_source_is_a_source_and_names_are_unique():
    assert isinstance(TOY, Source) and all(isinstance(s, Source) for s in BUILTIN)
    assert list(registry([TOY])) == ["ptbxl", "mimic", "toy"]
    with pytest.raises(ValueError, match="two sources are named 'ptbxl'"):
        registry([BUILTIN[0]])


def test_a_registered_source_builds_end_to_end(toy_build):
    toy, reference = toy_build
    manifest = toy.manifest
    counts = manifest.counts["toy"]
    assert counts.seen == 5 and counts.kept_total == 3
    assert counts.rejected == {"missing_file": 1, "short_report": 1}
    assert manifest.splits["toy"].mode == "patient" and manifest.splits["toy"].leaking_patients == 0
    corpus, ptbxl = rows(toy_out(toy)), rows(toy_out(reference))
    # conditioning does not depend on the source: toy/a1 is PTB-XL 6001's signal
    for rid, (ecg_id, report, hr) in RECORDS.items():
        if rid in ("b1", "c1"):
            assert f"toy/{rid}" not in corpus
            continue
        row = corpus[f"toy/{rid}"]
        assert row["source"] == "toy" and row["report"] == report
        assert np.array_equal(row["ecg"], ptbxl[f"ptbxl/{int(ecg_id)}"]["ecg"])
        qa = corpus.get(f"toy/{rid}/heart_rate")
        if hr == "999":
            assert qa is None  # out of the plausible range: no fact, no question
        else:
            assert f"{hr} beats per minute" in qa["messages"][1]["content"]
    assert "Toy ECG v0 (test-only), license CC0" in (toy_out(toy) / CARD).read_text()


def toy_out(outcome) -> Path:
    return Path(outcome.manifest.config["out"])


def test_an_unregistered_source_is_an_input_error(ptbxl_sample, tmp_path):
    folder = toy_folder(ptbxl_sample, tmp_path / "in")
    cfg = BuildConfig(sources={"toy": folder}, out=tmp_path / "corpus")
    with pytest.raises(InputError, match=r"unknown source\(s\) \['toy'\]"):
        build(cfg)
