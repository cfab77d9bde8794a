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
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
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
    assert out is only_dead  # nothing to repair: no copy


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
    with pytest.raises(ValueError, match=r"^normalise: unknown mode 'minmax'$"):
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


# --- exactness: float64 computation, one rounding to the input's dtype -------------------------
# The filters and the resampler promise float64 arithmetic on float32 input. Computing in float32
# instead moves PTB-XL samples by up to ~5e4 float32 ulps; so each stage must equal the float64
# scipy reference rounded once to float32, to the bit.


def _f32(y: np.ndarray) -> np.ndarray:
    return y.astype(np.float32)


def test_single_stages_are_float64_then_one_rounding(ptbxl):
    import scipy.signal

    y64 = ptbxl.astype(np.float64)
    sos = scipy.signal.butter(5, [0.5, 40.0], btype="bandpass", output="sos", fs=FS)
    np.testing.assert_array_equal(
        apply_filters(ptbxl, FS, SignalConfig(bandpass_hz=(0.5, 40.0))),
        _f32(scipy.signal.sosfiltfilt(sos, y64, axis=-1)),
    )
    b, a = scipy.signal.iirnotch(60.0, 12.0, fs=FS)  # non-default quality: Q is passed through
    np.testing.assert_array_equal(
        apply_filters(ptbxl, FS, SignalConfig(notch_hz=60.0, notch_quality=12.0)),
        _f32(scipy.signal.filtfilt(b, a, y64, axis=-1)),
    )
    np.testing.assert_array_equal(
        resample(ptbxl, FS, 250), _f32(scipy.signal.resample_poly(y64, 1, 2, axis=-1))
    )


def test_chain_order_is_bandpass_highpass_notch(simulated):
    """Each stage rounds to float32 before the next; the chain is exactly that composition."""
    import scipy.signal

    cfg = SignalConfig(bandpass_hz=(0.5, 100.0), highpass_hz=0.7, notch_hz=50.0, filter_order=3)
    bp = scipy.signal.butter(3, [0.5, 100.0], btype="bandpass", output="sos", fs=FS)
    hp = scipy.signal.butter(3, 0.7, btype="highpass", output="sos", fs=FS)
    b, a = scipy.signal.iirnotch(50.0, 30.0, fs=FS)
    y = _f32(scipy.signal.sosfiltfilt(bp, simulated.astype(np.float64), axis=-1))
    y = _f32(scipy.signal.sosfiltfilt(hp, y.astype(np.float64), axis=-1))
    y = _f32(scipy.signal.filtfilt(b, a, y.astype(np.float64), axis=-1))
    np.testing.assert_array_equal(apply_filters(simulated, FS, cfg), y)


def test_float64_input_stays_float64(ptbxl):
    x = ptbxl[:2].astype(np.float64)
    for out in (
        apply_filters(x, FS, SignalConfig(bandpass_hz=(0.5, 40.0), notch_hz=50.0)),
        resample(x, FS, 100),
        normalise(x, "meit"),
    ):
        assert out.dtype == np.float64


def test_butter_sos_zero_or_absent_cutoffs_and_errors():
    from scipy.signal import butter

    # a high cut of 0 counts as absent (high-pass); 1 Hz is a real cut-off, not "absent"
    np.testing.assert_array_equal(butter_sos(FS, 0.5, 0), butter_sos(FS, 0.5))
    np.testing.assert_array_equal(
        butter_sos(FS, 0.5, 1.0), butter(5, [0.5, 1.0], btype="bandpass", output="sos", fs=FS)
    )
    np.testing.assert_array_equal(
        butter_sos(FS, 1.0), butter(5, 1.0, btype="highpass", output="sos", fs=FS)
    )
    with pytest.raises(ValueError, match=r"^butter_sos: give low, high or both$"):
        butter_sos(FS, 0, 0)


# --- property-based checks against naive references -----------------------------------------

PROPERTY = settings(max_examples=150, deadline=None, database=None, derandomize=True)


@st.composite
def gappy_batches(draw) -> np.ndarray:
    """(B, L, N) float32 signals with NaN/+inf/-inf samples at drawn places (any run layout)."""
    b, leads, n = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    bad = draw(hnp.arrays(np.bool_, (b, leads, n)))
    layout = draw(hnp.arrays(np.int8, (b, leads), elements=st.integers(0, 2)))
    bad[layout == 0], bad[layout == 1] = False, True  # clean and dead leads, else as drawn
    kind = draw(hnp.arrays(np.int8, (b, leads, n), elements=st.integers(0, 2)))
    x = np.random.default_rng(seed).normal(0, 1.5, (b, leads, n)).astype(np.float32)
    x[bad] = np.array([np.nan, np.inf, -np.inf], np.float32)[kind[bad]]
    return x


def _runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D mask (plain Python)."""
    runs, cur = [], 0
    for v in mask:
        cur = cur + 1 if v else 0
        if cur == 1:
            runs.append(0)
        if v:
            runs[-1] = cur
    return runs


@PROPERTY
@given(gappy_batches())
def test_nan_stats_equals_a_per_lead_count(x):
    frac, longest = nan_stats(x)
    assert frac.dtype == np.float64 and longest.dtype == np.int64
    assert frac.shape == longest.shape == x.shape[:2]
    for b in range(x.shape[0]):
        for lead in range(x.shape[1]):
            bad = ~np.isfinite(x[b, lead])
            assert frac[b, lead] == bad.sum() / x.shape[-1]
            assert longest[b, lead] == max(_runs(bad), default=0)


def test_nan_stats_clean_types_and_shape(ptbxl):
    frac, longest = nan_stats(ptbxl[:3])
    assert frac.dtype == np.float64 and longest.dtype == np.int64
    assert frac.shape == longest.shape == (3, 12)


@PROPERTY
@given(gappy_batches())
def test_interpolation_equals_np_interp_per_lead(x):
    before = x.copy()
    fixed, counts = interpolate_nonfinite(x)
    np.testing.assert_array_equal(x, before)  # the input is never written to
    assert fixed.dtype == x.dtype and fixed.shape == x.shape and counts.dtype == np.int64
    idx = np.arange(x.shape[-1])
    expected_counts = []
    for b in range(x.shape[0]):
        repaired = 0
        for lead in range(x.shape[1]):
            ok = np.isfinite(x[b, lead])
            if not ok.any() or ok.all():  # dead or clean leads are left exactly as they were
                np.testing.assert_array_equal(fixed[b, lead], x[b, lead])
                continue
            repaired += int((~ok).sum())
            ref = np.interp(idx, idx[ok], x[b, lead, ok].astype(np.float64))  # edges held
            np.testing.assert_allclose(fixed[b, lead], ref, rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(fixed[b, lead, ok], x[b, lead, ok])
        expected_counts.append(repaired)
    assert counts.tolist() == expected_counts
    if sum(expected_counts) == 0:
        assert fixed is x  # nothing repairable: no copy


def test_interpolation_after_a_finite_first_sample(ptbxl):
    """A gap that starts at sample 1 interpolates from sample 0 (not a held edge)."""
    x = ptbxl[:1, :2].copy()
    x[0, 0, 0], x[0, 0, 11] = 0.0, 1.1
    x[0, 0, 1:11] = np.nan
    fixed, counts = interpolate_nonfinite(x)
    np.testing.assert_allclose(fixed[0, 0, :12], np.linspace(0.0, 1.1, 12), rtol=0, atol=1e-6)
    assert counts.tolist() == [10]


@PROPERTY
@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 3))
def test_fix_length_crops_or_pads_with_the_last_value(m, n, b):
    x = np.random.default_rng(m * 31 + n).normal(size=(b, 2, m)).astype(np.float32)
    y, n_cropped, n_padded = fix_length(x, n)
    assert y.shape == (b, 2, n) and y.dtype == x.dtype
    assert (n_cropped, n_padded) == (max(m - n, 0), max(n - m, 0))
    k = min(m, n)
    np.testing.assert_array_equal(y[..., :k], x[..., :k])
    np.testing.assert_array_equal(y[..., k:], np.broadcast_to(x[..., -1:], (b, 2, n - k)))
    if m >= n:
        assert np.shares_memory(y, x)  # a crop is a view, never a copy of the batch


def test_fix_length_refuses_an_empty_signal():
    with pytest.raises(ValueError, match=r"^fix_length: cannot pad an empty signal$"):
        fix_length(np.zeros((1, 12, 0), np.float32), 10)


def test_normalise_is_per_record_whatever_the_batch(ptbxl, simulated):
    """A record's z-scores and min-max values do not depend on the other records of its batch."""
    x = np.concatenate([ptbxl[:3], simulated[:1] * 7 + 3, simulated[1:] * 0.1])  # 0.1: < 1 mV
    assert np.ptp(x[-1]) < 1.0
    for mode in ("zscore", "meit"):
        batch = normalise(x, mode)
        assert batch.dtype == np.float32
        for i in range(len(x)):
            np.testing.assert_array_equal(batch[i], normalise(x[i : i + 1], mode)[0])
    m = normalise(x, "meit")
    lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(m, (x - lo) / (hi - lo), rtol=0, atol=1e-6)


def test_to_float16_without_clipping_passes_values_through(ptbxl):
    x = ptbxl[:1].copy()
    np.testing.assert_array_equal(to_float16(x, clip=False), to_float16(x))  # in range: same
    x[0, 0, 0] = 1e6
    with np.errstate(over="ignore"):
        assert np.isposinf(to_float16(x, clip=False)[0, 0, 0])  # the clipping pass was skipped
    assert to_float16(x)[0, 0, 0] == 65504.0
