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
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.build import build, build_corpus
from pipeline.cli import main
from pipeline.config import BuildConfig
from pipeline.demo import write_demo
from pipeline.finalise import validate_corpus
from pipeline.shards import shard_bucket
from pipeline.sources.mimic import MIMIC_WARNING, mimic_record_path
from pipeline.splits import hash_split
from schemas import (
    CARD,
    DATA_DIR,
    META_DIR,
    PROGRESS_DIR,
    REJECTIONS,
    read_manifest,
    source_dir,
)
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


# ---------------------------------------------------------------- the corpus folder across builds


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (lock files left out) and its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".build.")
    }


def test_a_build_without_a_source_of_the_corpus_refuses_or_replaces_it(tmp_path: Path, capsys):
    """The demo (both sources) rebuilt with only PTB-XL: refused in one line naming mimic, with
    nothing touched; with --replace the mimic shards and their records are gone, and every
    Parquet file under data/ is a listed PTB-XL shard."""
    demo = write_demo(tmp_path / "inputs", n_ptbxl=8, n_mimic=8)
    out = tmp_path / "corpus"
    build_corpus(BuildConfig(ptbxl=demo.ptbxl, mimic=demo.mimic, out=out, workers=1))
    assert (out / source_dir("mimic")).is_dir()
    before = tree(out)
    args = ["build", "--ptbxl", str(demo.ptbxl), "--out", str(out), "--workers", "1"]
    capsys.readouterr()
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines() == [
        f"input error: out {out} holds mimic shards of an earlier build and this build has no "
        "mimic input: give its input again, or pass --replace (config replace: true) to remove "
        "them"
    ]
    assert tree(out) == before
    assert main([*args, "--replace"]) == 0
    manifest = read_manifest(out)
    assert set(manifest.counts) == {"ptbxl"}
    assert not (out / source_dir("mimic")).exists()
    assert not (out / PROGRESS_DIR / source_dir("mimic")).exists()
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    listed = sorted(f.path for f in manifest.listed() if f.path.endswith(".parquet"))
    assert on_disk == listed
    assert all(f.source == "ptbxl" for f in manifest.files)
    assert validate_corpus(out) == []
    # the config file's setting does the same (and a rebuild of the same sources needs neither)
    config = tmp_path / "build.yaml"
    config.write_text(f"ptbxl: {demo.ptbxl}\nout: {out}\nworkers: 1\nreplace: true\n")
    assert main(["build", "--config", str(config)]) == 0


def to_old_layout(corpus: Path) -> None:
    """Rewrite a corpus as the layout before ``data/`` wrote it: shards in ``<source>/``, the
    ledger, fingerprints and MEIT jsonl at the root and in ``meit/``, completion records in
    ``_build/<source>/``, no card entry in the manifest."""
    import json

    manifest = json.loads((corpus / "manifest.json").read_text())

    def old(rel: str) -> str:
        return rel.removeprefix(f"{DATA_DIR}/").removeprefix(f"{META_DIR}/")

    entries = [*manifest["files"], *manifest["extra_files"]]
    entries += [manifest["rejections"], manifest["fingerprints"]]
    for entry in entries:
        (corpus / old(entry["path"])).parent.mkdir(exist_ok=True)
        (corpus / entry["path"]).rename(corpus / old(entry["path"]))
        entry["path"] = old(entry["path"])
    for record in sorted((corpus / PROGRESS_DIR / DATA_DIR).glob("*/*.json")):
        result = json.loads(record.read_text())
        result["path"] = old(result["path"])
        moved = corpus / PROGRESS_DIR / old(record.relative_to(corpus / PROGRESS_DIR).as_posix())
        moved.parent.mkdir(exist_ok=True)
        moved.write_text(json.dumps(result))
        record.unlink()
    manifest.pop("card")
    manifest["config"].pop("replace")
    (corpus / "manifest.json").write_text(json.dumps(manifest))
    for folder in (PROGRESS_DIR + "/data/ptbxl", PROGRESS_DIR + "/data", "data/ptbxl", "data", "meta/meit", "meta"):  # fmt: skip
        (corpus / folder).rmdir()


def test_a_corpus_in_the_layout_before_data_moves_on_cleanly(ptbxl_sample: Path, tmp_path: Path):
    """A rebuild of a corpus written before ``data/`` and ``meta/`` removes the old files (listed
    by its manifest) and their records, leaves a user's own file, and equals a fresh build."""
    text = {"meit_jsonl": True}
    fresh = tmp_path / "fresh"
    build_corpus(BuildConfig(ptbxl=ptbxl_sample, out=fresh, workers=1, text=text))
    out = tmp_path / "corpus"
    shutil.copytree(fresh, out)
    to_old_layout(out)
    assert (out / "ptbxl/train-00000-of-00001.parquet").is_file()
    assert (out / "rejections.parquet").is_file() and (out / "meit/ptbxl_train.jsonl").is_file()
    (out / "notes.txt").write_text("mine\n")
    build_corpus(BuildConfig(ptbxl=ptbxl_sample, out=out, workers=1, text=text))
    assert validate_corpus(out) == []
    assert (out / "notes.txt").read_text() == "mine\n"
    left = {rel: data for rel, data in tree(out).items() if not rel.startswith("_build/plan/")}
    wanted = {rel: data for rel, data in tree(fresh).items() if not rel.startswith("_build/plan/")}
    assert set(left) - set(wanted) == {"notes.txt"}
    for rel in wanted:  # the same files; shards, ledger, fingerprints and jsonl byte for byte
        if rel not in ("manifest.json", CARD) and not rel.startswith(PROGRESS_DIR):
            assert left[rel] == wanted[rel], rel
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["_build", "data", "meta"]


def test_shards_are_numbered_without_gaps(ptbxl_sample: Path, tmp_path: Path):
    """With 4 hash buckets per split the sample's train records fill buckets 1-3 and its test
    records bucket 3: the shards are train 0-2 of 3 and test 0 of 1 (an empty bucket leaves no
    gap), and a rebuild keeps them (no shard rewritten)."""
    train = [
        shard_bucket(f"ptbxl/{r}", 4) for r in ("6001", "6002", "6005", "6006", "6007", "6008")
    ]
    assert sorted(set(train)) == [1, 2, 3]  # bucket 0 is empty: the gap the build must close
    out = tmp_path / "corpus"
    cfg = BuildConfig(ptbxl=ptbxl_sample, out=out, workers=1, shards_per_split=4)
    build_corpus(cfg)
    names = sorted(f.path.removeprefix(f"{source_dir('ptbxl')}/") for f in read_manifest(out).files)
    assert names == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00003.parquet",
        "train-00001-of-00003.parquet",
        "train-00002-of-00003.parquet",
    ]
    assert validate_corpus(out) == []
    inodes = {p: p.stat().st_ino for p in (out / DATA_DIR).rglob("*.parquet")}
    again = build(cfg)
    assert again.written == [] and again.plan.todo == []
    assert {p: p.stat().st_ino for p in (out / DATA_DIR).rglob("*.parquet")} == inodes
    assert build(cfg, "refresh").manifest is None  # nothing to do
