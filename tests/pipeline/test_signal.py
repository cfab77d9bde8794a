"""pipeline.signal on real PTB-XL records (500 Hz, 12 x 5000) and neurokit2's simulated 12-lead ECG.

Equivalence with neurokit2 is checked lead by lead against neurokit2 run in float64 on the same
float32 input; our float32 output must agree within NK_ATOL (1e-5 mV, i.e. 0.01 µV, far below the
1 µV resolution of PTB-XL). The observed difference is float32 rounding (~5e-7 mV).
"""

from __future__ import annotations

from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest
import wfdb
from neurokit2.signal.signal_filter import _signal_filter_iirnotch

from pipeline.config import SignalConfig
from pipeline.signal import (
    apply_filters,
    butter_sos,
    fix_length,
    interpolate_nonfinite,
    nan_stats,
    normalise,
    resample,
    to_float16,
)

NK_ATOL = 1e-5  # mV
FS = 500


@pytest.fixture(scope="module")
def ptbxl(ptbxl_sample: Path) -> np.ndarray:
    """The real 500 Hz PTB-XL records of the shared sample, stacked (B, 12, 5000) float32 mV."""
    heads = sorted((ptbxl_sample / "records500").rglob("*_hr.hea"))
    assert len(heads) >= 4
    recs = [wfdb.rdrecord(str(h.with_suffix(""))).p_signal.T for h in heads]
    x = np.stack(recs).astype(np.float32)
    assert x.shape[1:] == (12, 5000) and np.isfinite(x).all()
    return x


@pytest.fixture(scope="module")
def simulated() -> np.ndarray:
    """Two neurokit2 multi-lead simulations, (2, 12, 5000) float32."""
    sims = [
        nk.ecg_simulate(duration=10, sampling_rate=FS, method="multileads", random_state=s)
        .to_numpy()
        .T
        for s in (1, 2)
    ]
    return np.stack(sims).astype(np.float32)


def _per_lead(x: np.ndarray, fn) -> np.ndarray:
    return np.stack([[fn(lead.astype(np.float64)) for lead in rec] for rec in x])


# --- neurokit2 equivalence -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "nk_kwargs"),
    [
        (SignalConfig(bandpass_hz=(0.5, 40.0)), dict(lowcut=0.5, highcut=40.0, order=5)),
        (
            SignalConfig(bandpass_hz=(1.0, 45.0), filter_order=3),
            dict(lowcut=1.0, highcut=45.0, order=3),
        ),
        (SignalConfig(highpass_hz=0.5), dict(lowcut=0.5, order=5)),
    ],
    ids=["bandpass-0.5-40-o5", "bandpass-1-45-o3", "highpass-0.5"],
)
def test_butterworth_equals_neurokit(ptbxl, cfg, nk_kwargs):
    ours = apply_filters(ptbxl, FS, cfg)
    ref = _per_lead(
        ptbxl,
        lambda s: nk.signal_filter(s, sampling_rate=FS, method="butterworth", **nk_kwargs),
    )
    assert ours.dtype == np.float32 and ours.shape == ptbxl.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=NK_ATOL)
    assert not np.allclose(ours, ptbxl, atol=1e-3)  # the filter did something


@pytest.mark.parametrize("notch_hz", [50.0, 60.0])
def test_notch_equals_neurokit_iirnotch(ptbxl, notch_hz):
    cfg = SignalConfig(notch_hz=notch_hz, notch_quality=30.0)
    ours = apply_filters(ptbxl, FS, cfg)
    ref = _per_lead(ptbxl, lambda s: _signal_filter_iirnotch(s, FS, cutoff=notch_hz, Q=30.0))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=NK_ATOL)


def test_notch_removes_powerline(simulated):
    t = np.arange(simulated.shape[-1]) / FS
    hum = 0.2 * np.sin(2 * np.pi * 50 * t).astype(np.float32)
    cleaned = apply_filters(simulated + hum, FS, SignalConfig(notch_hz=50.0))
    mid = slice(500, -500)  # away from the filtfilt edge transients
    assert np.abs(cleaned - simulated)[..., mid].max() < 0.05  # hum amplitude 0.2 mV


def test_chained_filters_equal_neurokit_chain(simulated):
    cfg = SignalConfig(bandpass_hz=(0.5, 100.0), highpass_hz=0.7, notch_hz=50.0)
    # nk.signal_filter's own default order is 2: always pass order explicitly.
    kw = dict(sampling_rate=FS, method="butterworth", order=cfg.filter_order)

    def chain(s):
        s = nk.signal_filter(s, lowcut=0.5, highcut=100.0, **kw)
        s = nk.signal_filter(s, lowcut=0.7, **kw)
        return _signal_filter_iirnotch(s, FS, cutoff=50.0, Q=30.0)

    np.testing.assert_allclose(
        apply_filters(simulated, FS, cfg), _per_lead(simulated, chain), atol=NK_ATOL
    )


def test_no_filter_returns_input(ptbxl):
    assert apply_filters(ptbxl, FS, SignalConfig()) is ptbxl


def test_butter_sos_matches_neurokit_design():
    from scipy.signal import butter

    np.testing.assert_array_equal(
        butter_sos(FS, 0.5, 40.0, 5), butter(5, [0.5, 40.0], btype="bandpass", output="sos", fs=FS)
    )
    np.testing.assert_array_equal(
        butter_sos(FS, 0.5), butter(5, 0.5, btype="highpass", output="sos", fs=FS)
    )
    np.testing.assert_array_equal(
        butter_sos(FS, high=40), butter(5, 40, btype="lowpass", output="sos", fs=FS)
    )
    np.testing.assert_array_equal(
        butter_sos(FS, 52.0, 48.0, 2),
        butter(2, [48.0, 52.0], btype="bandstop", output="sos", fs=FS),
    )
    np.testing.assert_array_equal(butter_sos(FS, 0, 40.0), butter_sos(FS, None, 40.0))  # 0 = absent
    with pytest.raises(ValueError):
        butter_sos(FS)


@pytest.mark.parametrize("fs_out", [100, 250, 360, 1000])
def test_resample_equals_neurokit_poly(ptbxl, fs_out):
    ours = resample(ptbxl, FS, fs_out)
    ref = _per_lead(
        ptbxl,
        lambda s: nk.signal_resample(
            s, sampling_rate=FS, desired_sampling_rate=fs_out, method="poly"
        ),
    )
    assert ours.shape == (*ptbxl.shape[:2], 10 * fs_out) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=NK_ATOL)


def test_resample_identity(ptbxl):
    assert resample(ptbxl, FS, FS) is ptbxl


# --- non-finite samples ----------------------------------------------------------------------


def test_nan_stats_counts_fraction_and_longest_run(ptbxl):
    x = ptbxl[:3].copy()
    x[0, 2, 100:150] = np.nan  # run of 50
    x[0, 2, 400:410] = np.inf  # run of 10
    x[1, 11, -7:] = -np.inf  # run of 7 at the end
    x[1, 11, 0] = np.nan  # run of 1 at the start
    x[2, 0, :] = np.nan  # whole lead
    frac, longest = nan_stats(x)
    assert frac.shape == longest.shape == (3, 12)
    assert longest[0, 2] == 50 and frac[0, 2] == pytest.approx(60 / 5000)
    assert longest[1, 11] == 7 and frac[1, 11] == pytest.approx(8 / 5000)
    assert longest[2, 0] == 5000 and frac[2, 0] == 1.0
    mask = np.zeros((3, 12), bool)
    mask[0, 2] = mask[1, 11] = mask[2, 0] = True
    assert (longest[~mask] == 0).all() and (frac[~mask] == 0).all()


def test_nan_stats_clean(ptbxl):
    frac, longest = nan_stats(ptbxl)
    assert not frac.any() and not longest.any()


def test_interpolate_repairs_real_record_gaps(ptbxl):
    x = ptbxl[:4].copy()
    gaps = [
        (0, 1, 1000, 1005),
        (0, 7, 2500, 2510),
        (2, 4, 0, 3),
        (3, 9, 4996, 5000),
        (3, 0, 42, 43),
    ]
    for b, lead, a, e in gaps:
        x[b, lead, a:e] = np.nan
    x[3, 0, 300] = np.inf
    fixed, counts = interpolate_nonfinite(x)
    assert np.isfinite(fixed).all()
    assert counts.tolist() == [15, 0, 3, 6]
    # Untouched samples are bit-identical; short gaps in a 500 Hz ECG come back within 0.1 mV.
    bad = ~np.isfinite(x)
    np.testing.assert_array_equal(fixed[~bad], x[~bad])
    assert np.abs(fixed - ptbxl[:4])[bad].max() < 0.1
    # Exactly np.interp between the finite neighbours (edges held), lead by lead.
    for b, lead, *_ in gaps:
        ok = np.isfinite(x[b, lead])
        idx = np.arange(x.shape[-1])
        ref = np.interp(idx, idx[ok], x[b, lead, ok].astype(np.float64))
        np.testing.assert_allclose(fixed[b, lead], ref, rtol=0, atol=1e-6)
    assert fixed[2, 4, 0] == x[2, 4, 3] and fixed[3, 9, -1] == x[3, 9, 4995]  # edge hold


def test_interpolate_leaves_all_nan_lead(ptbxl):
    x = ptbxl[:2].copy()
    x[1, 5] = np.nan
    x[0, 3, 10:20] = np.nan
    fixed, counts = interpolate_nonfinite(x)
    assert np.isnan(fixed[1, 5]).all()
    assert np.isfinite(np.delete(fixed[1], 5, axis=0)).all() and np.isfinite(fixed[0]).all()
    assert counts.tolist() == [10, 0]
    only_dead = ptbxl[:1].copy()
    only_dead[0, 0] = np.nan
    out, counts = interpolate_nonfinite(only_dead)
    assert counts.tolist() == [0] and np.isnan(out[0, 0]).all()


def test_interpolate_clean_is_noop(ptbxl):
    fixed, counts = interpolate_nonfinite(ptbxl)
    assert fixed is ptbxl and counts.tolist() == [0] * len(ptbxl)


# --- length, normalisation, float16 ----------------------------------------------------------


def test_fix_length_crop_and_pad(ptbxl):
    cropped, n_crop, n_pad = fix_length(ptbxl, 4500)
    assert cropped.shape[-1] == 4500 and (n_crop, n_pad) == (500, 0)
    np.testing.assert_array_equal(cropped, ptbxl[..., :4500])
    padded, n_crop, n_pad = fix_length(ptbxl[..., :4800], 5000)
    assert padded.shape == ptbxl.shape and (n_crop, n_pad) == (0, 200)
    np.testing.assert_array_equal(padded[..., :4800], ptbxl[..., :4800])
    np.testing.assert_array_equal(
        padded[..., 4800:], np.repeat(ptbxl[..., 4799:4800], 200, axis=-1)
    )
    same, n_crop, n_pad = fix_length(ptbxl, 5000)
    assert same.shape == ptbxl.shape and (n_crop, n_pad) == (0, 0)


def test_zscore_per_lead(ptbxl, simulated):
    x = np.concatenate([ptbxl, simulated])
    x[0, 3] = 0.25  # a flat lead
    z = normalise(x, "zscore")
    assert z.dtype == np.float32 and np.isfinite(z).all()
    live = np.ones(x.shape[:2], bool)
    live[0, 3] = False
    np.testing.assert_allclose(z.mean(axis=-1)[live], 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=-1)[live], 1, atol=1e-4)
    assert (z[0, 3] == 0).all()


def test_meit_minmax_whole_record(ptbxl, simulated):
    x = np.concatenate([ptbxl, simulated, np.full((1, 12, 5000), -1.5, np.float32)])
    m = normalise(x, "meit")
    assert np.isfinite(m).all()
    assert (m[:-1].min(axis=(1, 2)) == 0).all() and (m[:-1].max(axis=(1, 2)) == 1).all()
    assert (m[-1] == 0).all()  # constant record
    # one scale for all leads of a record: lead ranges keep their proportions
    ratio = np.ptp(m[0], axis=-1) / np.ptp(x[0], axis=-1)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)


def test_normalise_none_and_unknown(ptbxl):
    assert normalise(ptbxl, "none") is ptbxl
    with pytest.raises(ValueError):
        normalise(ptbxl, "minmax")


def test_to_float16_never_inf(ptbxl):
    x = ptbxl[:1].copy()
    x[0, 0, :4] = [1e6, -1e6, np.inf, -np.inf]
    x[0, 0, 4] = 65519.0  # rounds to inf in a plain cast
    x[0, 0, 5] = np.nan
    h = to_float16(x)
    assert h.dtype == np.float16 and not np.isinf(h).any()
    assert h[0, 0, :5].tolist() == [65504.0, -65504.0, 65504.0, -65504.0, 65504.0]
    assert np.isnan(h[0, 0, 5])
    np.testing.assert_allclose(h[0, 1:].astype(np.float32), x[0, 1:], atol=2e-3, rtol=1e-3)


def test_memory_layout_does_not_change_results(ptbxl):
    """wfdb gives (N, L); its transpose is a strided batch. A C-contiguous copy must agree exactly."""
    assert not ptbxl.flags["C_CONTIGUOUS"]
    c = np.ascontiguousarray(ptbxl)
    cfg = SignalConfig(bandpass_hz=(0.5, 40.0), notch_hz=50.0)
    np.testing.assert_array_equal(apply_filters(ptbxl, FS, cfg), apply_filters(c, FS, cfg))
    np.testing.assert_array_equal(resample(ptbxl, FS, 250), resample(c, FS, 250))
    for mode in ("zscore", "meit"):
        np.testing.assert_allclose(normalise(ptbxl, mode), normalise(c, mode), rtol=0, atol=1e-6)
    gappy = ptbxl.copy()
    gappy[1, 2, 50:60] = np.nan
    np.testing.assert_array_equal(
        interpolate_nonfinite(gappy)[0], interpolate_nonfinite(np.ascontiguousarray(gappy))[0]
    )
