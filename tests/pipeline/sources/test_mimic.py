"""The MIMIC-IV-ECG layout writer, checked against a real header and read back by prepare_mimic."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import wfdb

from pipeline.leads import canonical_order
from pipeline.sources.mimic import (
    MIMIC_LEADS,
    MimicLayoutRecord,
    prepare_mimic,
    write_mimic_layout,
    write_mimic_record,
)
from schemas import CANONICAL_LEADS
from tests.pipeline.sources.test_ptbxl import signal_tokens

MIMIC_STEP_MV = 1 / 200
REAL_HEADER = "headers-only/files/p1000/p10000032/s40689238/40689238.hea"


def real_canonical(ptbxl_sample: Path) -> np.ndarray:
    """PTB-XL record 6000 (real) in canonical lead order, mV."""
    rec = wfdb.rdrecord(str(ptbxl_sample / "records500/06000/06000_hr"))
    return rec.p_signal.T[canonical_order(rec.sig_name)]


def test_record_writer_conventions(mimic_sample: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(0, 0.5, (12, 5000))
    out = write_mimic_record(tmp_path, 10000032, 40689238, x, base=datetime(2180, 7, 23, 8, 44, 0))
    assert out == tmp_path / "files/p1000/p10000032/s40689238/40689238"
    ours, real = Path(f"{out}.hea"), mimic_sample / REAL_HEADER
    ours_lines, real_lines = ours.read_text().splitlines(), real.read_text().splitlines()
    assert ours_lines[0] == real_lines[0] == "40689238 12 500 5000 08:44:00 23/07/2180"
    assert ours_lines[-1] == real_lines[-1] == "# <subject_id>: 10000032"
    assert signal_tokens(ours) == signal_tokens(real)
    head = wfdb.rdheader(str(out))
    assert head.sig_name == list(MIMIC_LEADS) == wfdb.rdheader(str(real.with_suffix(""))).sig_name
    assert head.sig_name[4:6] == ["aVF", "aVL"]
    assert head.adc_gain == [200.0] * 12 and head.fmt == ["16"] * 12
    assert (head.fs, head.sig_len) == (500, 5000)
    assert head.comments == ["<subject_id>: 10000032"]
    back = wfdb.rdrecord(str(out)).p_signal.T
    assert np.allclose(back[4], x[CANONICAL_LEADS.index("aVF")], atol=MIMIC_STEP_MV / 2 + 1e-9)
    assert np.allclose(back[5], x[CANONICAL_LEADS.index("aVL")], atol=MIMIC_STEP_MV / 2 + 1e-9)


def test_record_writer_reencodes_real_ptbxl_signal(ptbxl_sample: Path, tmp_path: Path) -> None:
    canonical = real_canonical(ptbxl_sample)
    assert not np.allclose(canonical[4], canonical[5])  # aVL and aVF differ: order is testable
    canonical[2, 1000:1010] = np.nan
    out = write_mimic_record(
        tmp_path, 19999999, 40000001, canonical, base=datetime(2150, 1, 2, 3, 4, 5)
    )
    assert out == tmp_path / "files/p1999/p19999999/s40000001/40000001"
    rec = wfdb.rdrecord(str(out))
    assert rec.sig_name == list(MIMIC_LEADS)
    back = rec.p_signal.T[canonical_order(rec.sig_name)]
    assert back.shape == canonical.shape == (12, 5000)
    assert np.array_equal(np.isnan(back), np.isnan(canonical))
    assert np.nanmax(np.abs(back - canonical)) <= MIMIC_STEP_MV / 2 + 1e-9
    # and read in the file's own order, aVF really is in slot 4
    assert np.allclose(rec.p_signal[:, 4], canonical[5], atol=MIMIC_STEP_MV / 2 + 1e-9)
    with pytest.raises(ValueError):
        write_mimic_record(tmp_path, 10000032, 1, np.full((12, 10), 170.0))  # > 163.8 mV


def test_layout_written_is_read_back_by_prepare(ptbxl_sample: Path, tmp_path: Path) -> None:
    """Three studies of two subjects, listed out of study order: prepare_mimic pairs each with
    its own statements and measurements (the two CSVs are in different row orders)."""
    x = real_canonical(ptbxl_sample)
    when = datetime(2180, 1, 1, 8)
    studies = [  # (subject, study, hours after `when`, statements, rr_interval)
        (10000032, 45000000, 5, ("Sinus rhythm", "", "Normal ECG"), 800),
        (10000032, 41000000, 9, ("Sinus bradycardia",), 1100),
        (10000009, 43000000, 1, (), 600),
    ]
    records = [
        MimicLayoutRecord(subject, study, when.replace(hour=h), x, said, {"rr_interval": rr})
        for subject, study, h, said, rr in studies
    ]
    root = write_mimic_layout(tmp_path / "mimic", records)
    listed = (root / "record_list.csv").read_text().splitlines()[1:]
    assert [line.split(",")[1] for line in listed] == ["43000000", "45000000", "41000000"]
    measured = (root / "machine_measurements.csv").read_text().splitlines()[1:]
    assert [line.split(",")[1] for line in measured] == ["43000000", "41000000", "45000000"]
    frame = prepare_mimic(str(root))
    got = {
        r["record_id"]: (r["patient_id"], r["statements"], json.loads(r["measurements"]))
        for r in frame.iter_rows(named=True)
    }
    assert {k: (v[0], v[1], v[2]["rr_interval"]) for k, v in got.items()} == {
        "41000000": ("10000032", ["Sinus bradycardia"], 1100),
        "43000000": ("10000009", [], 600),
        "45000000": ("10000032", ["Sinus rhythm", "Normal ECG"], 800),
    }
    head = wfdb.rdheader(str(root / frame.filter(record_id="43000000")["path"][0]))
    assert (head.base_date, head.base_time) == (when.date(), when.replace(hour=1).time())
    with pytest.raises(ValueError, match="not machine_measurements.csv columns"):
        write_mimic_layout(
            tmp_path / "bad", [MimicLayoutRecord(10000001, 1, when, x, (), {"rr": 1})]
        )
