"""Conditioning through whole builds with non-default settings, row by row against a reference.

Each build runs through a real entry point (the CLI with a YAML config, or ``build_corpus``) on
the real PTB-XL sample and on a MIMIC-IV-ECG folder re-encoded from it. Every row must equal a
reference computed here from the record's own files with the well-kept libraries alone:
``wfdb.rdrecord`` -> leads put in canonical order by name (no pipeline code) -> per lead
``neurokit2.signal_filter`` (Butterworth band-pass) and scipy ``iirnotch`` + ``filtfilt`` ->
scipy ``resample_poly`` -> z-score per lead or min-max over the whole record, in float64.

Tolerance: ``|row - ref| <= 2**-11 * |ref| + atol``. The row is a float16 rounding of the
pipeline's value, so it may sit up to half a float16 step (unit roundoff 2**-11, relative) from
it; the filter designs are the same (neurokit2's Butterworth = scipy ``butter`` SOS, the same
``iirnotch``), so the only other difference is the pipeline's float32 intermediates, measured at
<= 3e-7 (in standard deviations) for z-scores and 0 for min-max. ``atol`` (1e-4 SD for z-scores,
1e-6 for min-max) is far above that and far below the smallest break tried: skipping the notch
moves some sample of every record by >= 8e-3 SD; FFT resampling instead of polyphase by >= 9e-3.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest
import scipy.signal
import wfdb
import yaml

from pipeline.cli import main
from pipeline.config import BuildConfig
from pipeline.corpus import build_corpus, read_manifest
from tests.pipeline.test_corpus import REAL_500HZ, rows_by_id, write_mimic_from_ptbxl

# Canonical order written out here, not imported: the reference must not share the code it checks.
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
UNIT_ROUNDOFF_F16 = 2.0**-11
ZSCORE_ATOL = 1e-4  # standard deviations
MINMAX_ATOL = 1e-6  # of the record's range


def read_canonical(record: Path) -> tuple[np.ndarray, float]:
    """A record's physical signal (12, N) float64 in canonical order by lead name, and its rate."""
    rec = wfdb.rdrecord(str(record))
    names = [n.upper() for n in rec.sig_name]
    return rec.p_signal.T[[names.index(lead.upper()) for lead in LEADS]], float(rec.fs)


def reference(
    record: Path,
    *,
    fs_out: int,
    bandpass: tuple[float, float] | None = None,
    notch: float | None = None,
    normalise: str = "none",
    order: int = 5,
    quality: float = 30.0,
) -> np.ndarray:
    """The conditioned record, computed lead by lead with neurokit2 and scipy in float64."""
    x, fs = read_canonical(record)
    leads = []
    for s in x:
        if bandpass is not None:
            s = nk.signal_filter(
                s,
                sampling_rate=fs,
                lowcut=bandpass[0],
                highcut=bandpass[1],
                method="butterworth",
                order=order,
            )
        if notch is not None:
            b, a = scipy.signal.iirnotch(notch, quality, fs=fs)
            s = scipy.signal.filtfilt(b, a, s)
        if fs_out != fs:
            ratio = Fraction(fs_out) / Fraction(int(fs))
            s = scipy.signal.resample_poly(s, ratio.numerator, ratio.denominator)
        if normalise == "zscore":
            s = (s - s.mean()) / s.std()
        leads.append(s)
    y = np.stack(leads)
    if normalise == "meit":
        y = (y - y.min()) / (y.max() - y.min())
    return y


def assert_row_equals(row: dict, expected: np.ndarray, atol: float) -> None:
    """The row's float16 signal equals ``expected`` within float16 rounding plus ``atol``."""
    ecg = np.asarray(row["ecg"], dtype=np.float64)
    assert ecg.shape == expected.shape, row["id"]
    excess = np.abs(ecg - expected) - UNIT_ROUNDOFF_F16 * np.abs(expected)
    assert excess.max() <= atol, f"{row['id']}: off by {excess.max():.3g} beyond float16 rounding"


def record_paths(ptbxl: Path, mimic: Path, mapping: dict[str, str]) -> dict[str, Path]:
    """Row id -> the record (path without extension) the row was built from."""
    paths = {f"ptbxl/{e}": ptbxl / f"records500/06000/{int(e):05d}_hr" for e in REAL_500HZ}
    for study in mapping:
        paths[f"mimic/{study}"] = next(mimic.rglob(f"{study}.hea")).with_suffix("")
    return paths


@pytest.fixture(scope="module")
def inputs(ptbxl_sample: Path, tmp_path_factory) -> tuple[Path, Path, dict[str, Path]]:
    """The real PTB-XL sample and its MIMIC-layout re-encoding; row id -> record path."""
    mimic = tmp_path_factory.mktemp("cond-inputs") / "mimic"
    mapping = write_mimic_from_ptbxl(ptbxl_sample, mimic)
    return ptbxl_sample, mimic, record_paths(ptbxl_sample, mimic, mapping)


FILTERED = {"bandpass_hz": [0.5, 40], "notch_hz": 50, "normalise": "zscore"}


@pytest.fixture(scope="module")
def filtered_build(inputs, tmp_path_factory) -> Path:
    """Band-pass 0.5-40 Hz + notch 50 Hz + z-score, built by the CLI from a YAML config."""
    ptbxl, mimic, _ = inputs
    tmp = tmp_path_factory.mktemp("cond-filtered")
    config = tmp / "build.yaml"
    settings = {"ptbxl": str(ptbxl), "mimic": str(mimic), "workers": 1, "signal": FILTERED}
    config.write_text(yaml.safe_dump(settings))
    assert main(["build", "--config", str(config), "--out", str(tmp / "corpus")]) == 0
    return tmp / "corpus"


def test_bandpass_notch_zscore_rows_equal_reference(filtered_build: Path, inputs):
    _, _, paths = inputs
    rows = rows_by_id(filtered_build)
    assert set(rows) == set(paths)  # 8 PTB-XL rows and their 8 MIMIC re-encodings
    for row_id, row in sorted(rows.items()):
        assert row["fs"] == 500 and row["source_fs"] == 500
        expected = reference(
            paths[row_id], fs_out=500, bandpass=(0.5, 40), notch=50.0, normalise="zscore"
        )
        assert_row_equals(row, expected, ZSCORE_ATOL)
    manifest = read_manifest(filtered_build)
    assert manifest.config["signal"]["bandpass_hz"] == [0.5, 40.0]
    assert manifest.config["signal"]["notch_hz"] == 50.0


@pytest.fixture(scope="module")
def meit_250_build(inputs, tmp_path_factory) -> Path:
    """``normalise: meit`` with the output resampled to 250 Hz (12 x 2500), both sources."""
    ptbxl, mimic, _ = inputs
    out = tmp_path_factory.mktemp("cond-meit") / "corpus"
    cfg = BuildConfig.model_validate(
        {
            "ptbxl": ptbxl,
            "mimic": mimic,
            "out": out,
            "workers": 1,
            "signal": {"fs": 250, "normalise": "meit"},
        }
    )
    build_corpus(cfg)
    return out


def test_meit_normalised_250hz_rows_equal_reference(meit_250_build: Path, inputs):
    _, _, paths = inputs
    rows = rows_by_id(meit_250_build)
    assert set(rows) == set(paths)
    for row_id, row in sorted(rows.items()):
        assert row["fs"] == 250 and row["source_fs"] == 500
        expected = reference(paths[row_id], fs_out=250, normalise="meit")
        assert expected.shape == (12, 2500)
        assert_row_equals(row, expected, MINMAX_ATOL)
        ecg = np.asarray(row["ecg"], dtype=np.float32)
        assert ecg.min() == 0.0 and ecg.max() == 1.0  # min-max over the whole record
    manifest = read_manifest(meit_250_build)
    assert manifest.fs == 250 and manifest.n_samples == 2500


def test_records100_upsampled_to_250hz_and_meit_normalised(ptbxl_sample: Path, tmp_path: Path):
    cfg = BuildConfig.model_validate(
        {
            "ptbxl": ptbxl_sample,
            "ptbxl_records": "records100",
            "out": tmp_path / "corpus",
            "workers": 1,
            "signal": {"fs": 250, "normalise": "meit"},
        }
    )
    manifest = build_corpus(cfg)
    # Only ecg_id 1 has its 100 Hz copy in the sample.
    assert manifest.counts["ptbxl"].kept_total == 1
    (row,) = rows_by_id(tmp_path / "corpus").values()
    assert row["id"] == "ptbxl/1" and row["fs"] == 250 and row["source_fs"] == 100
    expected = reference(ptbxl_sample / "records100/00000/00001_lr", fs_out=250, normalise="meit")
    assert expected.shape == (12, 2500)  # 1000 samples * 5 / 2
    assert_row_equals(row, expected, MINMAX_ATOL)
