"""The vectorised zero-phase filter gives exactly scipy's sosfiltfilt."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
import wfdb

from pipeline.kernels import sosfiltfilt
from pipeline.signal import butter_sos

DESIGNS = [
    (500, 0.5, 40.0, 5),
    (500, 0.5, None, 5),
    (500, None, 40.0, 3),
    (100, 1.0, 30.0, 4),
    (500, 0.05, 150.0, 2),
]


@pytest.mark.parametrize("fs,low,high,order", DESIGNS)
def test_equals_scipy_on_real_records(ptbxl_sample, fs, low, high, order):
    folder = "records500/06000" if fs == 500 else "records100/00000"
    names = ["06000_hr", "06004_hr", "06008_hr"] if fs == 500 else ["00001_lr"]
    x = np.stack([wfdb.rdrecord(str(ptbxl_sample / folder / n)).p_signal.T for n in names])
    x = x.astype(np.float32)
    sos = butter_sos(fs, low, high, order)
    ours = sosfiltfilt(sos, x)
    ref = scipy.signal.sosfiltfilt(sos, x.astype(np.float64), axis=-1)
    assert ours.shape == x.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)  # float32 rounding of the output
    exact = sosfiltfilt(sos, x.astype(np.float64))
    np.testing.assert_allclose(exact, ref, rtol=0, atol=1e-12)


def test_many_channels_and_odd_shapes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 12, 1234)).cumsum(axis=-1)  # more rows than one kernel chunk
    sos = butter_sos(500, 0.5, 40.0, 5)
    np.testing.assert_allclose(
        sosfiltfilt(sos, x), scipy.signal.sosfiltfilt(sos, x, axis=-1), rtol=0, atol=1e-12
    )
    with pytest.raises(ValueError):
        sosfiltfilt(sos, x[..., :20])


def test_lead_extremes_equal_numpy(ptbxl_sample):
    from pipeline.kernels import lead_extremes

    x = wfdb.rdrecord(str(ptbxl_sample / "records500/06000/06001_hr")).p_signal.T
    x = np.stack([x, np.clip(x, -0.2, 0.3)]).astype(np.float32)  # the second one clipped
    hi, lo, n_hi, n_lo = lead_extremes(x)
    np.testing.assert_array_equal(hi, x.max(-1))
    np.testing.assert_array_equal(lo, x.min(-1))
    np.testing.assert_array_equal(n_hi, (x == x.max(-1, keepdims=True)).sum(-1))
    np.testing.assert_array_equal(n_lo, (x == x.min(-1, keepdims=True)).sum(-1))
    assert n_hi[1].max() > 100  # clipping shows up as many samples at the rail


def test_frames_to_leads_equals_wfdb_conversion(ptbxl_sample):
    from pipeline.kernels import frames_to_leads

    rec = wfdb.rdrecord(str(ptbxl_sample / "records500/06000/06004_hr"), physical=False)
    frames = rec.d_signal.astype(np.int16)
    frames[10:15, 3] = -32768  # format 16's missing value
    baseline = np.array(rec.baseline, dtype=np.float64) + 7  # a non-zero baseline
    gain = np.array(rec.adc_gain, dtype=np.float64)
    signal, sums = frames_to_leads(frames, baseline, gain, -32768)
    expected = ((frames.astype(np.float64) - baseline) / gain).T
    expected[3, 10:15] = np.nan
    np.testing.assert_allclose(signal, expected, rtol=1e-6, atol=1e-7)
    assert np.isnan(signal[3, 10:15]).all() and signal.dtype == np.float32
    np.testing.assert_array_equal(sums, frames.sum(axis=0, dtype=np.int64))


def test_numba_is_imported_only_where_a_kernel_runs():
    """The orchestrator (the build's main process, which runs no kernel) does not import numba,
    its largest import; the first kernel call does, and runs compiled."""
    code = (
        "import sys, numpy as np; import pipeline.build; before = 'numba' in sys.modules; "
        "from pipeline.kernels import lead_extremes; lead_extremes(np.ones((1, 4), np.float32)); "
        "print(before, 'numba' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
