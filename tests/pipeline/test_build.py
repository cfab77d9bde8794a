"""Builds of data shaped to break naive code: patients with several records, folds 9 and 10.

Inputs are the real PTB-XL sample with a rewritten ``ptbxl_database.csv``, and its MIMIC-IV-ECG
re-encoding (``write_mimic_from_ptbxl``) regrouped so that subjects have several studies.

The split rules under test:

* PTB-XL: a record's ``strat_fold`` decides its split (1-8 train, 9 validation, 10 test), so a
  patient whose records sit in several *train* folds stays in train; a patient whose folds map to
  two different splits is refused (the build stops with the count of such patients), since real
  PTB-XL keeps each patient in one fold.
* MIMIC-IV-ECG: the split is a hash of ``subject_id`` (never of ``study_id`` or of the record), so
  every study of a subject lands in the subject's split.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.build import build_corpus
from pipeline.cli import main
from pipeline.config import BuildConfig
from pipeline.finalise import validate_corpus
from pipeline.sources.mimic import MIMIC_WARNING, mimic_record_path
from pipeline.splits import hash_split
from schemas import REJECTIONS, read_manifest
from tests.pipeline.test_corpus import rows_by_id, write_mimic_from_ptbxl

FOLD_SPLIT = {**{f: "train" for f in range(1, 9)}, 9: "validation", 10: "test"}

# ecg_id -> (patient_id, strat_fold), replacing the sample's own values (one record per patient,
# no fold 9). ecg_id 1 keeps its values: only its 100 Hz copy is in the sample (missing_file).
PTBXL_LAYOUT = {
    "6000": ("5028", 10),
    "6004": ("5028", 10),  # patient 5028: two records, both in the test fold
    "6001": ("12976", 9),
    "6002": ("12976", 9),  # patient 12976: two records, both in the validation fold
    "6005": ("2810", 3),
    "6006": ("2810", 4),
    "6008": ("2810", 8),  # patient 2810: three records across train folds 3, 4 and 8
    "6007": ("17597", 5),
}

# study_id (40000000 + ecg_id, as write_mimic_from_ptbxl names them) -> subject_id. Every study id
# hashes to train; subjects 10000005 and 10000034 hash to validation and test, so a build that
# split by study_id (or took the patient from it) puts their rows in train.
SUBJECT_SPLIT = {10000005: "validation", 10000034: "test", 10000003: "train"}
MIMIC_LAYOUT = {
    "40006000": 10000005,
    "40006001": 10000005,
    "40006002": 10000005,
    "40006004": 10000034,
    "40006005": 10000034,
    "40006006": 10000034,
    "40006007": 10000003,
    "40006008": 10000003,  # its report is a device warning + "Sinus rhythm": short_report
}
SHORT_REPORT_STUDY = "40006008"
HASH_FRACTIONS = {"train": 0.9, "validation": 0.05, "test": 0.05}


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def ptbxl_with_layout(sample: Path, root: Path, layout: dict[str, tuple[str, int]]) -> Path:
    """A PTB-XL folder: the sample's records (linked) and its CSV with patients/folds replaced."""
    root.mkdir(parents=True)
    for name in ("records500", "records100", "scp_statements.csv"):
        (root / name).symlink_to(sample / name)
    fields, rows = read_csv(sample / "ptbxl_database.csv")
    for row in rows:
        if row["ecg_id"] in layout:
            patient, fold = layout[row["ecg_id"]]
            row.update(patient_id=f"{patient}.0", strat_fold=str(fold))  # as PTB-XL writes them
    write_csv(root / "ptbxl_database.csv", fields, rows)
    return root


def regroup_subjects(root: Path, subject_of: dict[str, int], short_report: str) -> None:
    """Give the re-encoded MIMIC studies the subjects in ``subject_of`` (several studies each).

    Each record moves to its new subject's folder (``files/pNNNN/p<subject>/s<study>/``), both
    CSVs get the new subject_id, and ``short_report``'s statements become a device warning and a
    two-word finding.
    """
    fields, records = read_csv(root / "record_list.csv")
    for k, rec in enumerate(records):
        study, subject = rec["study_id"], subject_of[rec["study_id"]]
        rel = mimic_record_path(subject, int(study))
        (root / rel).parent.parent.mkdir(parents=True, exist_ok=True)
        (root / rec["path"]).parent.rename((root / rel).parent)
        header = (root / rel).with_suffix(".hea")
        header.write_text(header.read_text().replace(rec["subject_id"], str(subject)))
        rec.update(subject_id=str(subject), path=rel, ecg_time=f"2180-01-01 {k:02d}:00:00")
    records.sort(key=lambda r: (int(r["subject_id"]), r["ecg_time"]))
    write_csv(root / "record_list.csv", fields, records)
    fields, rows = read_csv(root / "machine_measurements.csv")
    for row in rows:
        row["subject_id"] = str(subject_of[row["study_id"]])
        if row["study_id"] == short_report:
            row.update({f"report_{i}": "" for i in range(18)})
            row.update(report_0=MIMIC_WARNING, report_1="Sinus rhythm")
    rows.sort(key=lambda r: (int(r["subject_id"]), int(r["study_id"])))
    write_csv(root / "machine_measurements.csv", fields, rows)


@pytest.fixture(scope="module")
def shaped_build(ptbxl_sample: Path, tmp_path_factory) -> Path:
    """One build of both crafted sources with the default config."""
    tmp = tmp_path_factory.mktemp("shaped")
    ptbxl = ptbxl_with_layout(ptbxl_sample, tmp / "ptbxl", PTBXL_LAYOUT)
    write_mimic_from_ptbxl(ptbxl_sample, tmp / "mimic")
    regroup_subjects(tmp / "mimic", MIMIC_LAYOUT, SHORT_REPORT_STUDY)
    cfg = BuildConfig(ptbxl=ptbxl, mimic=tmp / "mimic", out=tmp / "corpus", workers=1)
    build_corpus(cfg)
    return tmp / "corpus"


def test_layouts_are_what_the_tests_assume():
    """Preconditions: a patient-level hash of the subjects differs from the study-level one."""
    for subject, split in SUBJECT_SPLIT.items():
        assert hash_split(str(subject), HASH_FRACTIONS, 0) == split
    assert {hash_split(s, HASH_FRACTIONS, 0) for s in MIMIC_LAYOUT} == {"train"}


def test_ptbxl_fold_decides_split_row_by_row(shaped_build: Path):
    rows = {k: r for k, r in rows_by_id(shaped_build).items() if r["source"] == "ptbxl"}
    assert sorted(r["record_id"] for r in rows.values()) == sorted(PTBXL_LAYOUT)
    for row in rows.values():
        patient, fold = PTBXL_LAYOUT[row["record_id"]]
        assert (row["patient_id"], row["strat_fold"]) == (patient, fold)
        assert row["split"] == FOLD_SPLIT[fold], row["id"]
    assert {r["record_id"] for r in rows.values() if r["split"] == "validation"} == {"6001", "6002"}
    assert {r["record_id"] for r in rows.values() if r["split"] == "test"} == {"6000", "6004"}


def test_ptbxl_patients_with_several_records_stay_in_one_split(shaped_build: Path):
    rows = [r for r in rows_by_id(shaped_build).values() if r["source"] == "ptbxl"]
    splits: dict[str, set[str]] = {}
    for row in rows:
        splits.setdefault(row["patient_id"], set()).add(row["split"])
    assert splits == {
        "5028": {"test"},
        "12976": {"validation"},
        "2810": {"train"},
        "17597": {"train"},
    }
    audit = read_manifest(shaped_build).splits["ptbxl"]
    # The audit runs at discovery, before units reject records: its train count also holds
    # ecg_id 1's patient (only record rejected later, missing_file), so only these are exact.
    assert (audit.patients["validation"], audit.patients["test"]) == (1, 1)
    assert audit.leaking_patients == 0


def test_mimic_subjects_with_several_studies_split_by_subject_id(shaped_build: Path):
    rows = [r for r in rows_by_id(shaped_build).values() if r["source"] == "mimic"]
    assert sorted(r["record_id"] for r in rows) == sorted(set(MIMIC_LAYOUT) - {SHORT_REPORT_STUDY})
    for row in rows:
        subject = MIMIC_LAYOUT[row["record_id"]]
        assert row["patient_id"] == str(subject), row["id"]
        assert row["split"] == SUBJECT_SPLIT[subject], row["id"]
    audit = read_manifest(shaped_build).splits["mimic"]
    assert audit.patients == {"train": 1, "validation": 1, "test": 1}
    assert audit.leaking_patients == 0 and audit.mode == "patient"


def test_short_report_rejected_inside_the_build(shaped_build: Path):
    ledger = pq.read_table(shaped_build / REJECTIONS).to_pylist()
    mimic = [r for r in ledger if r["source"] == "mimic"]
    assert [(r["record_id"], r["reason"]) for r in mimic] == [(SHORT_REPORT_STUDY, "short_report")]
    # the device warning was dropped, so two words are left
    assert mimic[0]["detail"].startswith("2 words after cleaning (need 4)")
    manifest = read_manifest(shaped_build)
    for source, seen, kept, rejected in (("mimic", 8, 7, 1), ("ptbxl", 9, 8, 1)):
        counts = manifest.counts[source]
        assert (counts.seen, counts.kept_total, counts.rejected_total) == (seen, kept, rejected)
        assert counts.seen == counts.kept_total + counts.rejected_total
    assert manifest.counts["mimic"].kept == {"test": 3, "train": 1, "validation": 3}
    assert validate_corpus(shaped_build) == []


def test_patient_in_two_splits_is_refused_in_one_line(ptbxl_sample: Path, tmp_path: Path, capsys):
    # patient 5028's records in fold 8 (train) and fold 9 (validation): the folds contradict
    layout = {"6000": ("5028", 8), "6004": ("5028", 9)}
    ptbxl = ptbxl_with_layout(ptbxl_sample, tmp_path / "ptbxl", layout)
    cfg = BuildConfig(ptbxl=ptbxl, out=tmp_path / "corpus", workers=1)
    with pytest.raises(ValueError, match="ptbxl: 1 patients fall in more than one split"):
        build_corpus(cfg)
    assert not (tmp_path / "corpus" / "manifest.json").exists()
    capsys.readouterr()
    args = ["build", "--ptbxl", str(ptbxl), "--out", str(tmp_path / "cli"), "--workers", "1"]
    assert main(args) == 2
    captured = capsys.readouterr()
    # the progress bar's last frame, then one line; no traceback
    assert captured.out.strip().splitlines()[-1] == (
        "input error: ptbxl: 1 patients fall in more than one split"
    )
    assert "Traceback" not in captured.out + captured.err


def test_the_build_validates_what_it_wrote(ptbxl_sample: Path, tmp_path: Path, capsys, monkeypatch):
    """Validation is a step of every build (CLI and flow alike): a shard changed on disk after
    finalising fails the build, and the CLI says so in one line with exit code 1."""
    from pipeline import build as build_mod
    from pipeline.build import CorpusInvalid, Steps, build
    from pipeline.finalise import finalise

    def finalise_then_damage(cfg, plan, results, mode):
        manifest = finalise(cfg, plan, results, mode)
        (Path(cfg.out) / manifest.files[0].path).write_bytes(b"not parquet")
        return manifest

    cfg = BuildConfig(ptbxl=ptbxl_sample, out=tmp_path / "corpus", workers=1)
    with pytest.raises(CorpusInvalid, match="sha256 differs from the manifest"):
        build(cfg, steps=Steps(finalise=finalise_then_damage))

    real_build = build_mod.build

    def damaged(cfg, mode="full", **kw):
        return real_build(cfg, mode, **kw, steps=Steps(finalise=finalise_then_damage))

    monkeypatch.setattr(build_mod, "build", damaged)
    code = main(["build", "--ptbxl", str(ptbxl_sample), "--out", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert code == 1 and "corpus error: corpus is not valid:" in out and "Traceback" not in out
