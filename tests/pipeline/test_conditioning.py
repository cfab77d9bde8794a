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

from pipeline.build import build_corpus
from pipeline.cli import main
from pipeline.conditioning import Conditioned, Loaded, condition, load_one
from pipeline.config import BuildConfig
from pipeline.errors import RecordRejected
from pipeline.signal import apply_filters, interpolate_nonfinite, normalise, resample
from pipeline.sources.mimic import write_mimic_record
from pipeline.sources.ptbxl import write_ptbxl_record
from schemas import read_manifest
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


# --- load_one and condition on batches built here (no build around them) ---------------------
# The record is the real PTB-XL record 6000 (canonical order, mV); the variants are written as
# real WFDB files or handed to ``condition`` as a batch, and every outcome is checked: which
# records are rejected (reason, order of the calls), which rows remain, their float16 signal and
# their bookkeeping.

CFG = BuildConfig()


@pytest.fixture(scope="module")
def record_6000(ptbxl_sample: Path) -> np.ndarray:
    """Record 6000, (12, 5000) float32 mV in canonical order, read without pipeline code."""
    x, fs = read_canonical(ptbxl_sample / "records500/06000/06000_hr")
    assert fs == 500 and x.shape == (12, 5000)
    return x.astype(np.float32)


def loaded(signal: np.ndarray, i: int, fs: float = 500.0) -> Loaded:
    return Loaded({"id": f"r{i}"}, signal, fs)


def run(batch: list[Loaded], cfg: BuildConfig = CFG) -> tuple[Conditioned | None, list[tuple]]:
    """``condition`` with a reject callback that records (row id, reason, detail) in call order."""
    calls: list[tuple] = []
    out = condition(batch, cfg, lambda row, reason, detail: calls.append((row["id"], reason)))
    return out, calls


def test_condition_rejects_in_order_and_keeps_the_rest(record_6000):
    x = record_6000
    long_gap, short_gap, flat = x.copy(), x.copy(), x.copy()
    long_gap[6, 100:400] = np.nan  # 0.6 s > 0.5 s: too_much_nan
    short_gap[3, 1000:1020] = np.nan  # 20 samples: repaired
    flat[2] = 0.3
    clipped = x.copy()
    clipped[9, :200] = x[9].max()  # 4 % of V4 at its maximum: saturation
    batch = [loaded(s, i) for i, s in enumerate([x, long_gap, short_gap, flat, clipped, x * 2])]
    out, calls = run(batch)
    assert calls == [("r1", "too_much_nan"), ("r3", "flat_lead"), ("r4", "saturation")]
    assert [r["id"] for r in out.rows] == ["r0", "r2", "r5"]
    assert out.ecg.dtype == np.float16 and out.ecg.shape == (3, 12, 5000)
    assert out.nan_repaired.tolist() == [0, 20, 0]
    assert (out.n_cropped, out.n_padded, out.source_fs) == (0, 0, 500.0)
    np.testing.assert_array_equal(out.ecg[0], x.astype(np.float16))
    np.testing.assert_array_equal(out.ecg[2], (x * 2).astype(np.float16))
    idx = np.arange(5000)
    ok = np.isfinite(short_gap[3])
    repaired = short_gap.copy()
    repaired[3] = np.interp(idx, idx[ok], short_gap[3, ok])
    np.testing.assert_allclose(out.ecg[1].astype(np.float32), repaired, rtol=2**-11, atol=1e-6)


def test_condition_returns_none_when_every_record_is_rejected(record_6000):
    gap = record_6000.copy()
    gap[0, :300] = np.nan
    flat = record_6000.copy()
    flat[11] = 0.0
    assert run([loaded(gap, 0), loaded(gap, 1)]) == (
        None,
        [("r0", "too_much_nan"), ("r1", "too_much_nan")],
    )
    assert run([loaded(flat, 0)]) == (None, [("r0", "flat_lead")])


def test_condition_one_record_at_another_rate(record_6000):
    """A batch of one 250 Hz record, 10.2 s long: resampled to 500 Hz, then cropped to 10 s."""
    import scipy.signal

    x = scipy.signal.resample_poly(record_6000.astype(np.float64), 1, 2, axis=-1)
    x = np.concatenate([x, x[:, :50]], axis=-1).astype(np.float32)  # 2550 samples at 250 Hz
    x[4, 700:720] = np.nan  # 20 samples = 0.08 s at 250 Hz: repaired
    out, calls = run([loaded(x, 0, fs=250.0)])
    assert calls == [] and out.source_fs == 250.0 and out.nan_repaired.tolist() == [20]
    assert (out.n_cropped, out.n_padded) == (100, 0) and out.ecg.shape == (1, 12, 5000)
    fixed = interpolate_nonfinite(x[None])[0][0]
    expected = scipy.signal.resample_poly(fixed.astype(np.float64), 2, 1, axis=-1)[:, :5000]
    np.testing.assert_allclose(out.ecg[0], expected, rtol=2**-11, atol=1e-6)


def test_condition_filters_at_the_batch_rate(record_6000):
    """Filters are designed for the records' own rate (here 500 Hz), before any resampling."""
    cfg = BuildConfig(signal={"bandpass_hz": (0.5, 40.0), "notch_hz": 50.0, "fs": 250})
    out, _ = run([loaded(record_6000, 0), loaded(record_6000 * 0.5, 1)], cfg)
    x = np.stack([record_6000, record_6000 * 0.5])
    expected = resample(apply_filters(x, 500.0, cfg.signal), 500.0, 250.0)
    np.testing.assert_array_equal(out.ecg, expected.astype(np.float16))


def test_condition_pads_a_short_record(record_6000):
    out, _ = run([loaded(record_6000[:, :4900], 0)])
    assert (out.n_cropped, out.n_padded) == (0, 100)
    np.testing.assert_array_equal(out.ecg[0, :, 4900:], np.repeat(out.ecg[0, :, 4899:4900], 100, 1))


def test_raw_values_beyond_float16_are_clipped_not_inf(record_6000):
    """Un-normalised mV are clipped to +-65504 (a float16 inf would poison training)."""
    spike = record_6000.copy()
    spike[1, 2500], spike[1, 2501] = 7e4, -7e4
    out, _ = run([loaded(spike, 0)])
    assert out.ecg[0, 1, 2500] == 65504 and out.ecg[0, 1, 2501] == -65504
    assert np.isfinite(out.ecg).all()
    z = BuildConfig(signal={"normalise": "zscore"})
    out, _ = run([loaded(spike, 0)], z)
    np.testing.assert_array_equal(
        out.ecg[0], normalise(spike[None], "zscore")[0].astype(np.float16)
    )


def write_record(root: Path, ecg_id: int, signal: np.ndarray) -> dict:
    """Write ``signal`` as PTB-XL record ``ecg_id``; the row that points at it."""
    path = write_ptbxl_record(root, ecg_id, signal)
    return {"id": f"ptbxl/{ecg_id}", "path": str(path.relative_to(root))}


@pytest.mark.parametrize(
    ("n", "rejected"),
    [(4749, "9.50 s"), (4750, None), (5000, None), (5250, None), (5251, "10.50 s")],
)
def test_load_one_length_tolerance_is_inclusive(record_6000, tmp_path, n, rejected):
    x = np.concatenate([record_6000, record_6000], axis=-1)[:, :n]
    row = write_record(tmp_path, 9000, x)
    if rejected is None:
        got = load_one(tmp_path, row, CFG)
        assert got.row is row and got.fs == 500.0 and got.signal.shape == (12, n)
        np.testing.assert_allclose(got.signal, x, rtol=0, atol=5e-4)  # 1 uV steps in the file
    else:
        with pytest.raises(RecordRejected) as err:
            load_one(tmp_path, row, CFG)
        assert (err.value.reason, err.value.detail) == (
            "wrong_length",
            f"{rejected}, expected 10 s",
        )


def test_load_one_puts_mimic_leads_in_canonical_order(record_6000, tmp_path):
    path = write_mimic_record(tmp_path, 10000032, 40000001, record_6000)
    got = load_one(tmp_path, {"path": str(path.relative_to(tmp_path))}, CFG)
    np.testing.assert_allclose(got.signal, record_6000, rtol=0, atol=2.5e-3)  # 5 uV steps


@pytest.mark.parametrize(("fs", "kept"), [("0", False), ("-500", False), ("1", True)])
def test_load_one_refuses_a_rate_that_is_not_positive(record_6000, tmp_path, fs, kept):
    """Any positive rate is read (1 Hz with 10 samples is 10 s); 0 or below is unreadable."""
    row = write_record(tmp_path, 9001, record_6000[:, :10])
    header = (tmp_path / row["path"]).with_suffix(".hea")
    first, rest = header.read_text().split("\n", 1)
    name, n_sig, _, n = first.split()[:4]
    header.write_text(f"{name} {n_sig} {fs} {n}\n{rest}")
    if kept:
        assert load_one(tmp_path, row, CFG).fs == 1.0
    else:
        with pytest.raises(RecordRejected) as err:
            load_one(tmp_path, row, CFG)
        assert (err.value.reason, err.value.detail) == ("unreadable", f"sampling rate {float(fs)}")
