"""End to end on the real PTB-XL sample and MIMIC-layout records re-encoded from it."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import wfdb

from pipeline.build import build_corpus
from pipeline.cli import main
from pipeline.config import BuildConfig
from pipeline.finalise import validate_corpus
from pipeline.leads import canonical_order
from pipeline.sources.mimic import MimicLayoutRecord, write_mimic_layout
from schemas import CANONICAL_LEADS, REJECTIONS, read_manifest
from tests.conftest import need_module

REAL_500HZ = ["6000", "6001", "6002", "6004", "6005", "6006", "6007", "6008"]
MACHINE = dict(
    cart_id=1,
    bandwidth="0.005-150 Hz",
    filtering="60 Hz notch Baseline filter",
    rr_interval=800,
    p_onset=40,
    p_end=128,
    qrs_onset=170,
    qrs_end=258,
    t_end=518,
    p_axis=81,
    qrs_axis=77,
    t_axis=79,
)
"""machine_measurements.csv cells of every re-encoded study (a normal 75 bpm ECG)."""


def rows_by_id(corpus: Path) -> dict[str, dict]:
    """Every row of a corpus keyed by id."""
    out = {}
    for f in read_manifest(corpus).files:
        for row in pq.read_table(corpus / f.path).to_pylist():
            out[row["id"]] = row
    return out


def real_canonical(ptbxl: Path, ecg_id: str) -> np.ndarray:
    """A real PTB-XL record read by wfdb, in canonical lead order."""
    rec = wfdb.rdrecord(str(ptbxl / f"records500/06000/{int(ecg_id):05d}_hr"))
    return rec.p_signal.T[canonical_order(rec.sig_name)]


def write_mimic_from_ptbxl(ptbxl: Path, root: Path) -> dict[str, str]:
    """Re-encode the real 500 Hz PTB-XL records as a MIMIC-IV-ECG folder; study id -> ecg_id."""
    mapping, records = {}, []
    for n, ecg_id in enumerate(REAL_500HZ):
        subject, study = 10000000 + n * 7, 40000000 + int(ecg_id)
        signal = real_canonical(ptbxl, ecg_id)
        said = ("Sinus rhythm", "Normal ECG")
        records.append(
            MimicLayoutRecord(subject, study, datetime(2180, 1, 1), signal, said, MACHINE)
        )
        mapping[str(study)] = ecg_id
    write_mimic_layout(root, records)
    return mapping


@pytest.fixture(scope="module")
def real_build(ptbxl_sample: Path, tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """The real PTB-XL sample plus its MIMIC-layout re-encoding, built with normalise: none."""
    tmp = tmp_path_factory.mktemp("real")
    mapping = write_mimic_from_ptbxl(ptbxl_sample, tmp / "mimic")
    cfg = BuildConfig(ptbxl=ptbxl_sample, mimic=tmp / "mimic", out=tmp / "corpus", workers=2)
    build_corpus(cfg)
    return tmp / "corpus", tmp, mapping


def test_real_ptbxl_rows_equal_wfdb_signal(real_build, ptbxl_sample):
    corpus, _, _ = real_build
    rows = rows_by_id(corpus)
    for ecg_id in REAL_500HZ:
        row = rows[f"ptbxl/{ecg_id}"]
        ecg = np.asarray(row["ecg"], dtype=np.float32)
        expected = real_canonical(ptbxl_sample, ecg_id)
        assert ecg.shape == (12, 5000)
        # float16 keeps 11 significant bits: relative error <= 2**-11, plus subnormal floor.
        np.testing.assert_allclose(ecg, expected, rtol=2**-11, atol=1e-4)
        assert row["messages"][0]["role"] == "user" and row["messages"][1]["role"] == "assistant"
        assert row["report_original"] and row["patient_id"].isdigit()


def test_mimic_layout_equals_ptbxl_after_canonical_order(real_build):
    corpus, _, mapping = real_build
    rows = rows_by_id(corpus)
    for study, ecg_id in mapping.items():
        mimic = np.asarray(rows[f"mimic/{study}"]["ecg"], dtype=np.float32)
        ptbxl = np.asarray(rows[f"ptbxl/{ecg_id}"]["ecg"], dtype=np.float32)
        # MIMIC's gain is 200/mV: 5 µV steps, so ±2.5 µV of rounding, plus float16 rounding.
        np.testing.assert_allclose(mimic, ptbxl, rtol=2**-10, atol=2.6e-3)
        # aVL and aVF are distinct leads: a swap would be far outside the tolerance above.
        assert np.abs(ptbxl[4] - ptbxl[5]).max() > 0.05


def test_manifest_counts_and_rejections(real_build):
    corpus, _, _ = real_build
    manifest = read_manifest(corpus)
    assert manifest.lead_order == list(CANONICAL_LEADS)
    ptbxl = manifest.counts["ptbxl"]
    # 9 metadata rows; ecg_id 1 has only its 100 Hz copy in the sample.
    assert ptbxl.seen == 9 and ptbxl.rejected == {"missing_file": 1}
    assert ptbxl.kept_total == 8 and manifest.counts["mimic"].kept_total == 8
    assert manifest.splits["ptbxl"].leaking_patients == 0
    assert validate_corpus(corpus) == []
    ledger = pq.read_table(corpus / REJECTIONS).to_pylist()
    assert ledger == [
        {
            "source": "ptbxl",
            "record_id": "1",
            "reason": "missing_file",
            "detail": "00001_hr.hea not found",
        }
    ]


def test_rows_load_with_datasets_offline(real_build):
    datasets = need_module("datasets")
    corpus, _, _ = real_build
    ds = datasets.load_dataset(str(corpus))
    assert set(ds) == {f.split for f in read_manifest(corpus).files}
    n = sum(len(ds[s]) for s in ds)
    assert n == 16
    ptbxl = datasets.load_dataset(str(corpus), "ptbxl")
    assert sum(len(ptbxl[s]) for s in ptbxl) == 8
    row = ds["train"].with_format("numpy", dtype=np.float16)[0]
    assert row["ecg"].shape == (12, 5000) and row["ecg"].dtype == np.float16


def test_two_builds_identical_and_validate_catches_flipped_byte(real_build, ptbxl_sample, tmp_path):
    corpus, tmp, _ = real_build
    again = tmp_path / "again"
    cfg = BuildConfig(ptbxl=ptbxl_sample, mimic=tmp / "mimic", out=again, workers=1)
    build_corpus(cfg)
    first, second = read_manifest(corpus), read_manifest(again)
    assert [(f.path, f.sha256) for f in first.files] == [(f.path, f.sha256) for f in second.files]
    assert first.rejections.sha256 == second.rejections.sha256
    shard = again / second.files[0].path
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert any("sha256" in p for p in validate_corpus(again))
    assert main(["validate", str(again)]) == 1
    assert main(["validate", str(corpus)]) == 0


def file_stats(corpus: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every shard and completion record: a rewrite changes both (the
    writers publish a new file by rename)."""
    return {
        p.relative_to(corpus).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted([*corpus.glob("data/*/*.parquet"), *corpus.glob("_build/data/*/*.json")])
    }


def test_resume_rewrites_only_the_missing_shard(real_build, ptbxl_sample, tmp_path):
    """Resume is proven by what was NOT done: one unit processed, every other shard and
    completion record left untouched (same inode and mtime), not only equal final bytes."""
    corpus, tmp, _ = real_build
    out = tmp_path / "resume"
    shutil.copytree(corpus, out)
    files = read_manifest(corpus).files
    victim = files[0]
    (out / victim.path).unlink()
    before = file_stats(out)
    assert len(files) == 4 and len(before) == 3 + 4  # 3 shards left, 4 completion records
    processed = []
    cfg = BuildConfig(ptbxl=ptbxl_sample, mimic=tmp / "mimic", out=out, workers=1)
    manifest = build_corpus(cfg, on_done=processed.append)
    assert [r.path for r in processed] == [victim.path]
    after = file_stats(out)
    redone = {victim.path, f"_build/{victim.path}.json"}
    assert {k: v for k, v in after.items() if k not in redone} == {
        k: v for k, v in before.items() if k not in redone
    }
    assert after[f"_build/{victim.path}.json"] != before[f"_build/{victim.path}.json"]
    assert [f.sha256 for f in manifest.files] == [f.sha256 for f in files]
    assert validate_corpus(out) == []


@pytest.fixture(scope="module")
def rich_build(ptbxl_sample: Path, tmp_path_factory) -> Path:
    """The real samples with three examples per record, MEIT's jsonl and MEIT's split mode."""
    tmp = tmp_path_factory.mktemp("rich")
    write_mimic_from_ptbxl(ptbxl_sample, tmp / "mimic")
    cfg = BuildConfig.model_validate(
        {
            "ptbxl": ptbxl_sample,
            "mimic": tmp / "mimic",
            "out": tmp / "corpus",
            "workers": 1,
            "text": {"examples_per_record": 3, "meit_jsonl": True},
            "split": {"mode": "meit"},
        }
    )
    build_corpus(cfg)
    return tmp / "corpus"


def test_real_build_reports_are_english(real_build):
    corpus, _, _ = real_build
    rows = [r for r in rows_by_id(corpus).values() if r["source"] == "ptbxl"]
    german = [r for r in rows if r["report_language"] == "de"]
    assert {r["record_id"] for r in german} == {"6001", "6007"}
    by_id = {r["record_id"]: r for r in rows}
    assert by_id["6007"]["report"] == "sinus rhythm. normal ecg."
    assert by_id["6007"]["report_original"] == "sinusrhythmus normales ekg"
    assert all(r["untranslated"] == [] for r in rows)
    assert by_id["6000"]["report"] == by_id["6000"]["report_original"]  # English unchanged
    text = read_manifest(corpus).text["ptbxl"]
    assert text["translation_coverage"] == 1.0 and text["foreign_tokens"] > 0


def test_examples_tasks_and_meit_jsonl(rich_build: Path):
    manifest = read_manifest(rich_build)
    rows = rows_by_id(rich_build)
    assert len(rows) == sum(f.rows for f in manifest.files)  # ids are unique
    assert manifest.tasks["report_generation"] == 16
    assert {"rhythm", "diagnosis", "heart_rate", "intervals", "axes"} <= set(manifest.tasks)
    for row in rows.values():
        assert row["id"] == (
            f"{row['source']}/{row['record_id']}"
            if row["example"] == 0
            else f"{row['source']}/{row['record_id']}/{row['task']}"
        )
        if row["task"] == "heart_rate":
            rr = json.loads(row["measurements"])["rr_interval"]
            assert row["messages"][1]["content"] == (
                f"The heart rate is {round(60000 / rr)} beats per minute."
            )
    assert validate_corpus(rich_build) == []
    jsonl = [
        json.loads(line)
        for f in manifest.extra_files
        for line in (rich_build / f.path).read_text().splitlines()
    ]
    assert len(jsonl) == len(rows)
    for line in jsonl:
        assert set(line) == {"dataset", "id", "ecg_path", "messages"}
        assert Path(line["ecg_path"] + ".hea").is_file()
        assert line["messages"] == rows[line["id"]]["messages"]


def test_meit_split_mode_is_labelled_as_leaking(rich_build: Path, real_build):
    rich = read_manifest(rich_build)
    assert rich.splits["mimic"].mode == "meit" and rich.splits["mimic"].leaks
    assert rich.splits["ptbxl"].mode == "folds" and not rich.splits["ptbxl"].leaks
    assert "leak" in (rich_build / "README.md").read_text().lower()
    patient = read_manifest(real_build[0])
    assert (
        patient.splits["mimic"].mode == "patient" and patient.splits["mimic"].leaking_patients == 0
    )


def test_records100_are_resampled_to_the_configured_rate(ptbxl_sample: Path, tmp_path: Path):
    cfg = BuildConfig.model_validate(
        {"ptbxl": ptbxl_sample, "ptbxl_records": "records100", "out": tmp_path / "c", "workers": 1}
    )
    manifest = build_corpus(cfg)
    # Only ecg_id 1 has its 100 Hz copy in the sample; the others are missing files.
    assert manifest.counts["ptbxl"].kept_total == 1
    assert manifest.counts["ptbxl"].rejected == {"missing_file": 8}
    row = next(iter(rows_by_id(tmp_path / "c").values()))
    assert row["source_fs"] == 100 and row["fs"] == 500
    ecg = np.asarray(row["ecg"], dtype=np.float32)
    rec = wfdb.rdrecord(str(ptbxl_sample / "records100/00000/00001_lr"))
    original = rec.p_signal.T[canonical_order(rec.sig_name)]
    assert ecg.shape == (12, 5000)
    # Every 5th output sample is an input sample position: polyphase upsampling passes near them.
    np.testing.assert_allclose(ecg[:, 50:-50:5], original[:, 10:-10], atol=0.05)


# ---------------------------------------------------------------- golden corpus
# The default-config build of the real sample (``real_build``: the 8 real 500 Hz PTB-XL records
# and their MIMIC-layout re-encoding). UPDATE ONLY ON PURPOSE, with the reason in the commit
# message: a change here means users rebuilding the corpus get different splits, instructions,
# signals or files than before.
#
# Why these do not vary by machine: the signal path of the default config is (d - baseline) *
# (1 / gain) in float64, then float32, then float16, each one correctly rounded IEEE-754 step (the
# compiled kernel has no fastmath, no reductions, nothing to fuse into an FMA); no filter or
# normalisation runs. Checked equal: workers 1 and 2, a cold numba cache, and numba disabled
# (NUMBA_DISABLE_JIT=1, the same arithmetic in Python). Templates, splits and shard buckets are
# sha256 choices. zstd at a fixed level is deterministic for one zstd version, which the pyarrow
# wheel bundles (a conda-forge pyarrow links the system's libzstd instead). What DOES change the
# bytes is the Parquet writer: its version is in every file's footer (GOLDEN_WRITER), so a pyarrow
# upgrade fails here with that reason. GOLDEN_CONTENT (rows as Python values, signals as float16
# bytes) is checked first and says whether the data itself changed or only its encoding.

GOLDEN_WRITER = "parquet-cpp-arrow version 26.0.1"
GOLDEN_SHA256 = {
    "data/mimic/train-00000-of-00001.parquet": (
        "a86b95127a4b806e966f973c2edd14e88bbeb3a92490bce6d785375a550abb16"
    ),
    "data/mimic/validation-00000-of-00001.parquet": (
        "cc89c9371787443b5c9d7ac10cc1fd467f4e8f3d26ef6f57721f885e0f6e3cd3"
    ),
    "data/ptbxl/test-00000-of-00001.parquet": (
        "638b1dea88bdc4eb027981216a6758a702ebafb33cd0a80ddc93ba0d01704132"
    ),
    "data/ptbxl/train-00000-of-00001.parquet": (
        "9c44be1b9bcd24d7a4ba58d3917fb7f49bcc244a8002353f509d4049253a8ee4"
    ),
    REJECTIONS: "f2d237aca6a3d935df673f6201d63e1007333e7de1eaaecd8f943b6ee90bd170",
}
GOLDEN_CONTENT = {
    "data/mimic/train-00000-of-00001.parquet": (
        "bec6bee4320db552e5876991279e080f2228b8d77a271bdfcf97fc626a292c19"
    ),
    "data/mimic/validation-00000-of-00001.parquet": (
        "3df2ac2f0fe875b24ac136f1c2c41205f3fc832b5d9f04c5db6c5855d75c727d"
    ),
    "data/ptbxl/test-00000-of-00001.parquet": (
        "16c3c9d2560bb7b9603baa83fd77790d95466b9a4d462ff9de58f78e3cdb35ce"
    ),
    "data/ptbxl/train-00000-of-00001.parquet": (
        "5205ba112464d71d776211ead528c096d5bac72d8496da0b46687cacb2b330c5"
    ),
}
# id -> (patient_id, split, template_id): the readable part of the same promise.
GOLDEN_ROWS = {
    "mimic/40006000": ("10000000", "validation", "report.terse.interpretation"),
    "mimic/40006001": ("10000007", "train", "report.conversational.colleague"),
    "mimic/40006002": ("10000014", "train", "report.clinical.machine"),
    "mimic/40006004": ("10000021", "train", "report.conversational.look"),
    "mimic/40006005": ("10000028", "train", "report.terse.interpretation"),
    "mimic/40006006": ("10000035", "train", "report.conversational.help"),
    "mimic/40006007": ("10000042", "train", "report.clinical.machine"),
    "mimic/40006008": ("10000049", "train", "report.conversational.colleague"),
    "ptbxl/6000": ("5028", "test", "report.clinical.machine"),
    "ptbxl/6001": ("12976", "train", "report.patient.age_terse"),
    "ptbxl/6002": ("7588", "train", "report.patient.age_clinical"),
    "ptbxl/6004": ("2482", "test", "report.conversational.what"),
    "ptbxl/6005": ("2810", "train", "report.patient.age_sex"),
    "ptbxl/6006": ("2108", "train", "report.patient.age_terse"),
    "ptbxl/6007": ("17597", "train", "report.conversational.quick"),
    "ptbxl/6008": ("1237", "train", "report.conversational.explain"),
}
# ``rich_build`` (examples_per_record 3, split mode meit): record -> (split, template of each
# example in order). The question templates' ids name the drawn tasks (qa.<task>.<name>); 6005
# has no diagnostic statement above the likelihood threshold, so it gets one question only.
GOLDEN_EXAMPLES = {
    "mimic/40006000": (
        "train",
        "report.terse.interpretation",
        "qa.intervals.conversational",
        "qa.axes.conversational",
    ),
    "mimic/40006001": (
        "train",
        "report.conversational.colleague",
        "qa.intervals.measure",
        "qa.heart_rate.estimate",
    ),
    "mimic/40006002": (
        "train",
        "report.clinical.machine",
        "qa.heart_rate.conversational",
        "qa.intervals.conversational",
    ),
    "mimic/40006004": (
        "train",
        "report.conversational.look",
        "qa.heart_rate.estimate",
        "qa.axes.measure",
    ),
    "mimic/40006005": (
        "train",
        "report.terse.interpretation",
        "qa.axes.what",
        "qa.intervals.measure",
    ),
    "mimic/40006006": (
        "train",
        "report.conversational.help",
        "qa.axes.conversational",
        "qa.intervals.conversational",
    ),
    "mimic/40006007": (
        "train",
        "report.clinical.machine",
        "qa.intervals.measure",
        "qa.axes.conversational",
    ),
    "mimic/40006008": (
        "train",
        "report.conversational.colleague",
        "qa.intervals.measure",
        "qa.heart_rate.estimate",
    ),
    "ptbxl/6000": (
        "test",
        "report.clinical.machine",
        "qa.diagnosis.conversational",
        "qa.rhythm.conversational",
    ),
    "ptbxl/6001": (
        "train",
        "report.patient.age_terse",
        "qa.diagnosis.conversational",
        "qa.rhythm.conversational",
    ),
    "ptbxl/6002": (
        "train",
        "report.patient.age_clinical",
        "qa.diagnosis.what",
        "qa.rhythm.statement",
    ),
    "ptbxl/6004": (
        "test",
        "report.conversational.what",
        "qa.rhythm.statement",
        "qa.diagnosis.what",
    ),
    "ptbxl/6005": ("train", "report.patient.age_sex", "qa.rhythm.conversational"),
    "ptbxl/6006": ("train", "report.patient.age_terse", "qa.rhythm.what", "qa.diagnosis.list"),
    "ptbxl/6007": ("train", "report.conversational.quick", "qa.rhythm.what", "qa.diagnosis.list"),
    "ptbxl/6008": (
        "train",
        "report.conversational.explain",
        "qa.diagnosis.scp",
        "qa.rhythm.conversational",
    ),
}


def content_digest(path: Path) -> str:
    """sha256 of a shard's data, independent of the Parquet encoding: every column's values in
    row order (signals as little-endian float16 bytes, the rest as JSON)."""
    table = pq.read_table(path)
    h = hashlib.sha256()
    for name in table.column_names:
        h.update(name.encode() + b"\0")
        if name == "ecg":
            flat = table[name].combine_chunks().flatten().flatten()
            h.update(np.asarray(flat.to_numpy(zero_copy_only=False), dtype="<f2").tobytes())
        else:
            h.update(json.dumps(table[name].to_pylist(), sort_keys=True, default=str).encode())
    return h.hexdigest()


def test_golden_rows(real_build):
    corpus, _, _ = real_build
    rows = rows_by_id(corpus)
    assert {i: (r["patient_id"], r["split"], r["template_id"]) for i, r in rows.items()} == (
        GOLDEN_ROWS
    )


def test_golden_corpus(real_build):
    """The shards' data, then their bytes (and the ledger's), equal the committed golden values."""
    corpus, _, _ = real_build
    shards = [f.path for f in read_manifest(corpus).files]
    assert {p: content_digest(corpus / p) for p in shards} == GOLDEN_CONTENT
    writers = {pq.read_metadata(corpus / p).created_by for p in [*shards, REJECTIONS]}
    assert writers == {GOLDEN_WRITER}, "another Parquet writer: re-derive GOLDEN_SHA256 on purpose"
    files = {p: hashlib.sha256((corpus / p).read_bytes()).hexdigest() for p in GOLDEN_SHA256}
    assert files == GOLDEN_SHA256 and sorted(shards) == sorted(GOLDEN_CONTENT)


def test_golden_examples_and_task_draws(rich_build):
    examples: dict[str, list[str]] = {}
    rows = rows_by_id(rich_build).values()
    for row in sorted(rows, key=lambda r: (r["source"], r["record_id"], r["example"])):
        key = f"{row['source']}/{row['record_id']}"
        examples.setdefault(key, [row["split"]]).append(row["template_id"])
    assert {k: tuple(v) for k, v in examples.items()} == GOLDEN_EXAMPLES
