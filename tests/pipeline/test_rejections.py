"""Every kind of bad input becomes a rejection with its reason, and the build still exits 0."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import wfdb

from pipeline.cli import main
from pipeline.finalise import validate_corpus
from pipeline.leads import canonical_order
from pipeline.sources.ptbxl import write_ptbxl_record
from schemas import REJECTIONS, read_manifest

GOOD = "records500/06000/06000_hr"


def real_signal(root: Path) -> np.ndarray:
    rec = wfdb.rdrecord(str(root / GOOD))
    return rec.p_signal.T[canonical_order(rec.sig_name)]


def add_row(rows: list[dict], template: dict, ecg_id: int, **changes: str) -> None:
    row = dict(
        template,
        ecg_id=str(ecg_id),
        patient_id=f"{90000 + ecg_id}.0",
        filename_hr=f"records500/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_hr",
    )
    row.update(changes)
    rows.append(row)


@pytest.fixture(scope="module")
def bad_ptbxl(ptbxl_sample: Path, tmp_path_factory) -> Path:
    """The real sample plus one record per kind of defect (ids 7001…)."""
    root = tmp_path_factory.mktemp("bad") / "ptbxl"
    shutil.copytree(ptbxl_sample, root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    with open(root / "ptbxl_database.csv", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    template = next(r for r in rows if r["ecg_id"] == "6000")
    x = real_signal(ptbxl_sample)

    def write(ecg_id: int, signal: np.ndarray) -> Path:
        return write_ptbxl_record(root, ecg_id, signal)

    # truncated .dat
    path = write(7001, x)
    dat = path.with_name(path.name + ".dat")
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])
    add_row(rows, template, 7001)
    # corrupt header
    path = write(7002, x)
    path.with_name(path.name + ".hea").write_text("this is not a WFDB header\n\x00\x01garbage\n")
    add_row(rows, template, 7002)
    # missing .dat
    path = write(7003, x)
    path.with_name(path.name + ".dat").unlink()
    add_row(rows, template, 7003)
    # all-NaN lead
    y = x.copy()
    y[7] = np.nan
    write(7004, y)
    add_row(rows, template, 7004)
    # flat lead
    y = x.copy()
    y[2] = 0.0
    write(7005, y)
    add_row(rows, template, 7005)
    # 8-lead record (the limb leads III, aVR, aVL, aVF missing)
    d = root / "records500/07000"
    wfdb.wrsamp(
        "07006_hr",
        fs=500,
        units=["mV"] * 8,
        sig_name=["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"],
        p_signal=x[[0, 1, 6, 7, 8, 9, 10, 11]].T,
        fmt=["16"] * 8,
        adc_gain=[1000.0] * 8,
        baseline=[0] * 8,
        write_dir=str(d),
    )
    add_row(rows, template, 7006)
    # wrong length (4 s)
    write(7007, x[:, :2000])
    add_row(rows, template, 7007)
    # empty report
    write(7008, x)
    add_row(rows, template, 7008, report="   ")
    # path column pointing outside the dataset root
    add_row(rows, template, 7009, filename_hr="../../etc/passwd")
    # short NaN gap: repaired, kept
    y = x.copy()
    y[3, 1000:1020] = np.nan
    write(7010, y)
    add_row(rows, template, 7010)
    # lead V2 clipped by the amplifier: about 5 % of its samples sit at its maximum (limit 2 %)
    y = x.copy()
    y[7] = np.minimum(y[7], np.quantile(y[7], 0.95))
    write(7011, y)
    add_row(rows, template, 7011)
    with open(root / "ptbxl_database.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def bad_build(bad_ptbxl: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad-corpus") / "corpus"
    assert main(["build", "--ptbxl", str(bad_ptbxl), "--out", str(out), "--workers", "2"]) == 0
    return out


EXPECTED = {
    "7001": "truncated_data",
    "7002": "unreadable",
    "7003": "missing_file",
    "7004": "too_much_nan",
    "7005": "flat_lead",
    "7006": "missing_leads",
    "7007": "wrong_length",
    "7008": "empty_report",
    "7009": "path_outside_root",
    "7011": "saturation",
    "1": "missing_file",
}


def test_each_defect_is_rejected_with_its_reason(bad_build: Path):
    ledger = pq.read_table(bad_build / REJECTIONS).to_pylist()
    reasons = {r["record_id"]: r["reason"] for r in ledger}
    assert reasons == EXPECTED
    assert all(r["detail"] for r in ledger)
    details = {r["record_id"]: r["detail"] for r in ledger}
    assert details["7011"] == "lead V2: 5.1% of samples at a rail"  # ties at the clip value


def test_inputs_equal_kept_plus_rejected(bad_build: Path):
    manifest = read_manifest(bad_build)
    c = manifest.counts["ptbxl"]
    assert c.seen == 9 + 11
    assert c.kept_total == 8 + 1  # the real records and the repaired one
    assert c.rejected_total == len(EXPECTED)
    assert validate_corpus(bad_build) == []


def test_short_nan_gap_is_repaired_not_rejected(bad_build: Path, ptbxl_sample: Path):
    rows = {}
    for f in read_manifest(bad_build).files:
        rows.update({r["id"]: r for r in pq.read_table(bad_build / f.path).to_pylist()})
    row = rows["ptbxl/7010"]
    assert row["nan_repaired"] == 20
    ecg = np.asarray(row["ecg"], dtype=np.float32)
    assert np.isfinite(ecg).all()
    original = real_signal(ptbxl_sample)
    # Outside the gap the record is the real one; inside, a straight line between neighbours.
    np.testing.assert_allclose(ecg[:, :1000], original[:, :1000], rtol=2**-11, atol=1e-4)
    gap = ecg[3, 999:1021]
    assert np.all(np.diff(gap) * np.sign(gap[-1] - gap[0]) >= -1e-3)


def test_config_errors_are_one_line_and_exit_2(tmp_path: Path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("signal:\n  normalise: zscore\n  bandpas_hz: [0.5, 40]\n")
    assert main(["build", "--config", str(bad), "--ptbxl", str(tmp_path)]) == 2
    out = capsys.readouterr().out.strip()
    assert "signal.bandpas_hz: unknown key" in out and len(out.splitlines()) == 1
    assert main(["build", "--ptbxl", str(tmp_path / "nope")]) == 2
    out = capsys.readouterr().out.strip()
    assert "input folder does not exist" in out and len(out.splitlines()) == 1
