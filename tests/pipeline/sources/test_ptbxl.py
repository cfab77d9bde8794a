"""prepare_ptbxl on real ptbxl_database.csv rows: ids, patients, demographics, statements; the
PTB-XL layout writer checked against real files and read back by prepare_ptbxl."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import wfdb

from pipeline.sources.ptbxl import (
    PTBXL_LEADS,
    PtbxlLayoutRecord,
    load_scp_statements,
    prepare_ptbxl,
    write_ptbxl_layout,
    write_ptbxl_record,
)


def write_rows(ptbxl_sample: Path, root: Path, edit: dict[str, dict[str, str]]) -> Path:
    """A copy of the real sample's ptbxl_database.csv with some cells of some ecg_ids edited."""
    root.mkdir()
    with open(ptbxl_sample / "ptbxl_database.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row.update(edit.get(row["ecg_id"], {}))
    with open(root / "ptbxl_database.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_real_rows_become_sorted_records_with_demographics(ptbxl_sample):
    frame = prepare_ptbxl(str(ptbxl_sample))
    with open(ptbxl_sample / "ptbxl_database.csv", newline="") as f:
        real = {r["ecg_id"]: r for r in csv.DictReader(f)}
    assert frame["record_id"].to_list() == sorted(real, key=int)
    for row in frame.iter_rows(named=True):
        src = real[row["record_id"]]
        assert row["patient_id"] == str(int(float(src["patient_id"])))  # "15709.0" -> "15709"
        assert row["sex"] == {"0": "male", "1": "female"}[src["sex"]]
        assert row["strat_fold"] == int(src["strat_fold"])
        assert row["path"] == src["filename_hr"]
        assert json.loads(row["scp_codes"]).keys() == eval(src["scp_codes"]).keys()  # noqa: S307


def test_age_300_means_over_89_and_is_kept_as_90(ptbxl_sample, tmp_path):
    first, second = sorted(prepare_ptbxl(str(ptbxl_sample))["record_id"].to_list(), key=int)[:2]
    root = write_rows(
        ptbxl_sample, tmp_path / "ptbxl", {first: {"age": "300"}, second: {"age": "89"}}
    )
    ages = dict(zip(*prepare_ptbxl(str(root)).select("record_id", "age").to_dict().values()))
    assert ages[first] == 90.0 and ages[second] == 89.0


def test_records100_paths_come_from_filename_lr(ptbxl_sample):
    frame = prepare_ptbxl(str(ptbxl_sample), records="records100")
    assert all(p.startswith("records100/") and p.endswith("_lr") for p in frame["path"])


# ----------------------------------------------------------------------------- layout writer


def signal_tokens(hea: Path) -> list[list[str]]:
    """Signal lines of a header without the file name, initial value and checksum."""
    lines = [ln.split() for ln in hea.read_text().splitlines()[1:] if not ln.startswith("#")]
    return [t[1:5] + t[7:] for t in lines]


@pytest.mark.parametrize(
    "rel, ecg_id, fs",
    [
        ("records500/06000/06000_hr", 6000, 500),
        ("records500/06000/06007_hr", 6007, 500),
        ("records100/00000/00001_lr", 1, 100),
    ],
)
def test_record_writer_reproduces_real_files_byte_for_byte(
    ptbxl_sample: Path, tmp_path: Path, rel: str, ecg_id: int, fs: int
) -> None:
    real = wfdb.rdrecord(str(ptbxl_sample / rel))
    out = write_ptbxl_record(tmp_path, ecg_id, real.p_signal.T, fs=fs)
    assert out == tmp_path / rel
    for ext in (".hea", ".dat"):
        assert Path(f"{out}{ext}").read_bytes() == (ptbxl_sample / f"{rel}{ext}").read_bytes()


def test_record_writer_conventions_and_nan(ptbxl_sample: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.5, (12, 5000))
    x[7, 100:120] = np.nan
    out = write_ptbxl_record(tmp_path, 12345, x)
    assert out == tmp_path / "records500/12000/12345_hr"
    head = wfdb.rdheader(str(out))
    assert head.sig_name == list(PTBXL_LEADS)
    assert head.sig_name[3:6] == ["AVR", "AVL", "AVF"]
    assert (head.fs, head.sig_len, head.n_sig) == (500, 5000, 12)
    assert head.fmt == ["16"] * 12 and head.adc_gain == [1000.0] * 12
    assert head.baseline == [0] * 12 and head.units == ["mV"] * 12
    assert head.base_time is None and head.base_date is None
    assert Path(f"{out}.hea").read_text().splitlines()[0] == "12345_hr 12 500 5000"
    assert signal_tokens(Path(f"{out}.hea")) == signal_tokens(
        ptbxl_sample / "records500/06000/06000_hr.hea"
    )
    back = wfdb.rdrecord(str(out))
    assert np.array_equal(np.isnan(back.p_signal.T), np.isnan(x))
    assert np.nanmax(np.abs(back.p_signal.T - x)) <= 0.5e-3 + 1e-9
    raw = wfdb.rdrecord(str(out), physical=False).d_signal
    assert (raw[100:120, 7] == -32768).all()
    with pytest.raises(ValueError):
        write_ptbxl_record(tmp_path, 1, np.zeros((12, 10)), fs=250)


def test_layout_written_is_read_back_by_prepare(ptbxl_sample: Path, tmp_path: Path) -> None:
    """Two real records through write_ptbxl_layout: prepare_ptbxl finds both copies, the cells
    given and the SCP catalogue, and the 100 Hz copy is the 500 Hz one decimated (NaN kept)."""
    x = wfdb.rdrecord(str(ptbxl_sample / "records500/06000/06000_hr")).p_signal.T
    gap = x.copy()
    gap[7, 1000:1010] = np.nan
    scp = (ptbxl_sample / "scp_statements.csv").read_text().splitlines()[1:3]
    records = [
        PtbxlLayoutRecord(7, x, {"patient_id": "15.0", "report": "sinusrhythmus", "sex": "1"}),
        PtbxlLayoutRecord(1007, gap, {"patient_id": "16.0", "strat_fold": "9"}),
    ]
    root = write_ptbxl_layout(tmp_path / "ptbxl", records, scp)
    frame = prepare_ptbxl(str(root))
    assert frame.select("record_id", "patient_id", "path", "report", "sex").rows() == [
        ("7", "15", "records500/00000/00007_hr", "sinusrhythmus", "female"),
        ("1007", "16", "records500/01000/01007_hr", "", None),
    ]
    assert frame["strat_fold"].to_list() == [None, 9]
    low = prepare_ptbxl(str(root), records="records100")["path"].to_list()
    assert low == ["records100/00000/00007_lr", "records100/01000/01007_lr"]
    assert set(load_scp_statements(str(root))) == {line.split(",")[0] for line in scp}
    lr = wfdb.rdrecord(str(root / low[1])).p_signal.T
    assert lr.shape == (12, 1000) and np.isnan(lr).sum() == np.isnan(lr[7, 200:202]).sum() == 2
    with pytest.raises(ValueError, match="not ptbxl_database.csv columns"):
        write_ptbxl_layout(tmp_path / "bad", [PtbxlLayoutRecord(1, x, {"ecgid": "1"})])
