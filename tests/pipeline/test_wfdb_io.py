"""The format-16 fast path gives exactly what wfdb gives, and falls back to wfdb when it must."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from pipeline.bounded_io import resolve_record
from pipeline.errors import RecordRejected
from pipeline.wfdb_header import is_fast, parse_header
from pipeline.wfdb_io import read_record

REAL = [
    "records500/06000/06000_hr",
    "records500/06000/06002_hr",
    "records500/06000/06008_hr",
    "records100/00000/00001_lr",
]


@pytest.mark.parametrize("rel", REAL)
def test_fast_path_equals_wfdb_on_real_records(ptbxl_sample: Path, rel: str):
    record = ptbxl_sample / rel
    assert is_fast(parse_header((record.parent / (record.name + ".hea")).read_text()))
    fast = read_record(record)
    ref = wfdb.rdrecord(str(record))
    assert fast.leads == tuple(ref.sig_name)
    assert fast.fs == ref.fs
    np.testing.assert_allclose(fast.signal, ref.p_signal.T, rtol=0, atol=1e-6)


def test_other_formats_fall_back_to_wfdb(tmp_path: Path, ptbxl_sample: Path):
    ref = wfdb.rdrecord(str(ptbxl_sample / REAL[0]))
    wfdb.wrsamp(
        "r212",
        fs=500,
        units=["mV"] * 12,
        sig_name=ref.sig_name,
        p_signal=ref.p_signal,
        fmt=["212"] * 12,
        adc_gain=[200.0] * 12,
        baseline=[0] * 12,
        write_dir=str(tmp_path),
    )
    header = (tmp_path / "r212.hea").read_text()
    assert not is_fast(parse_header(header))
    got = read_record(tmp_path / "r212")
    np.testing.assert_allclose(got.signal, ref.p_signal.T, atol=2.6e-3)


def test_nan_samples_read_as_nan(tmp_path: Path, ptbxl_sample: Path):
    ref = wfdb.rdrecord(str(ptbxl_sample / REAL[0]))
    x = ref.p_signal.copy()
    x[100:110, 4] = np.nan
    wfdb.wrsamp(
        "nan16",
        fs=500,
        units=["mV"] * 12,
        sig_name=ref.sig_name,
        p_signal=x,
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        write_dir=str(tmp_path),
    )
    got = read_record(tmp_path / "nan16")
    assert np.isnan(got.signal[4, 100:110]).all() and np.isfinite(got.signal[4, :100]).all()
    np.testing.assert_array_equal(
        np.isnan(got.signal), np.isnan(read_record(tmp_path / "nan16", fast=False).signal)
    )


def test_flipped_sample_fails_the_header_checksum(tmp_path: Path, ptbxl_sample: Path):
    for ext in (".hea", ".dat"):
        shutil.copy(ptbxl_sample / (REAL[0] + ext), tmp_path / ("r" + ext))
    (tmp_path / "r.hea").write_text(
        (tmp_path / "r.hea")
        .read_text()
        .replace("06000_hr.dat", "r.dat")
        .replace("06000_hr ", "r ", 1)
    )
    data = bytearray((tmp_path / "r.dat").read_bytes())
    data[1001] ^= 0x40
    (tmp_path / "r.dat").write_bytes(bytes(data))
    with pytest.raises(RecordRejected) as err:
        read_record(tmp_path / "r")
    assert err.value.reason == "checksum_mismatch"


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../b"])
def test_paths_cannot_leave_the_root(tmp_path: Path, rel: str):
    with pytest.raises(RecordRejected) as err:
        resolve_record(tmp_path, rel)
    assert err.value.reason == "path_outside_root"
