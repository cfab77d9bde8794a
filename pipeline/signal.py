"""Vectorised conditioning of batches of 12-lead ECGs.

Every function takes an array of shape ``(B, L, N)`` (records, leads, samples) in millivolts and
works on the whole batch at once along the last axis. Inputs are float32; filters and resampling
compute in float64 (float32 filtering drifts ~1e-3 mV from neurokit2 and is barely faster) and
return float32.

Equivalences with neurokit2 0.3 (asserted lead by lead in ``tests/pipeline/test_signal.py``):

* band-pass / high-pass = ``nk.signal_filter(sig, sampling_rate=fs, lowcut=..., highcut=...,
  method="butterworth", order=order)`` (scipy ``butter`` SOS + ``sosfiltfilt``; ours runs the same
  algorithm over all channels at once, see :mod:`pipeline.kernels`);
* notch = ``neurokit2.signal.signal_filter._signal_filter_iirnotch(sig, fs, cutoff=notch_hz,
  Q=notch_quality)`` (scipy ``iirnotch`` + ``filtfilt``). The public ``method="iirnotch"`` path
  hard-codes ``cutoff=0.05, Q=0.005`` and ``method="powerline"`` is a moving average, so neither
  public call is a powerline notch;
* resampling = ``nk.signal_resample(sig, sampling_rate=fs_in, desired_sampling_rate=fs_out,
  method="poly")`` (scipy ``resample_poly``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from pipeline.config import SignalConfig
from pipeline.kernels import sosfiltfilt, zscore

FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504.0


def nan_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (record, lead): share of non-finite samples and longest non-finite run (samples).

    Returns ``(fraction float64 (B, L), longest_run int64 (B, L))``.
    """
    n = x.shape[-1]
    shape = x.shape[:-1]
    if np.isfinite(x).all():  # the common case: one pass, nothing to count
        return np.zeros(shape), np.zeros(shape, dtype=np.int64)
    bad = ~np.isfinite(x).reshape(-1, n)
    count = np.count_nonzero(bad, axis=-1)
    longest = np.zeros(bad.shape[0], dtype=np.int64)
    rows = np.flatnonzero(count)
    if rows.size:
        edges = np.diff(bad[rows].astype(np.int8), axis=-1, prepend=0, append=0)  # (R, N + 1)
        starts = np.flatnonzero(edges == 1)  # row-major: starts and ends pair up in order
        ends = np.flatnonzero(edges == -1)
        np.maximum.at(longest, rows[starts // (n + 1)], ends - starts)
    return (count / n).reshape(shape), longest.reshape(shape)


def interpolate_nonfinite(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate NaN/inf samples from the nearest finite neighbours on the same lead.

    Edges hold the nearest finite value. Leads with no finite sample are left unchanged.
    Returns ``(repaired copy (or x itself when nothing is repaired), repaired samples per record (B,))``.
    """
    finite = np.isfinite(x)
    if finite.all():
        return x, np.zeros(x.shape[0], dtype=np.int64)
    n = x.shape[-1]
    ok = finite.reshape(-1, n)
    repairable = ok.any(axis=-1) & ~ok.all(axis=-1)
    counts = (~ok & repairable[:, None]).reshape(x.shape[0], -1).sum(axis=-1)
    if not repairable.any():
        return x, counts
    out = x.copy()
    flat = out.reshape(-1, n)
    idx = np.flatnonzero(repairable)
    vals, good = flat[idx].astype(np.float64), ok[idx]
    pos = np.arange(n)
    prev = np.maximum.accumulate(np.where(good, pos, -1), axis=-1)
    nxt = np.minimum.accumulate(np.where(good, pos, n)[:, ::-1], axis=-1)[:, ::-1]
    prev_c, nxt_c = np.where(prev < 0, nxt, prev), np.where(nxt >= n, prev, nxt)
    v0 = np.take_along_axis(vals, prev_c, axis=-1)
    v1 = np.take_along_axis(vals, nxt_c, axis=-1)
    span = nxt_c - prev_c
    w = np.divide(pos - prev_c, span, out=np.zeros(span.shape), where=span > 0)
    filled = v0 + (v1 - v0) * w
    flat[idx] = np.where(good, vals, filled).astype(x.dtype)
    return out, counts


def butter_sos(
    fs: float, low: float | None = None, high: float | None = None, order: int = 5
) -> np.ndarray:
    """Butterworth SOS designed exactly as ``nk.signal_filter(method="butterworth")`` does.

    ``low`` only: high-pass; ``high`` only: low-pass; both: band-pass (band-stop if low > high).
    A cutoff of 0 counts as absent, as in neurokit2.
    """
    import scipy.signal  # lazy: 0.66 s to import, unused by default builds

    low = None if low == 0 else low
    high = None if high == 0 else high
    if low is not None and high is not None:
        btype = "bandstop" if low > high else "bandpass"
        freqs: float | list[float] = sorted([low, high])
    elif low is not None:
        btype, freqs = "highpass", low
    elif high is not None:
        btype, freqs = "lowpass", high
    else:
        raise ValueError("butter_sos: give low, high or both")
    return scipy.signal.butter(order, freqs, btype=btype, output="sos", fs=fs)


def apply_filters(x: np.ndarray, fs: float, cfg: SignalConfig) -> np.ndarray:
    """Zero-phase band-pass, high-pass and notch (each optional, in that order) over the batch.

    Input must be finite (repair with :func:`interpolate_nonfinite` first). Computes in float64
    (float32 SOS coefficients are ~20 % faster but drift ~1e-3 mV from neurokit2). Returns ``x``
    itself when no filter is configured, else a new array of ``x``'s dtype. Note that
    ``nk.signal_filter``'s own default order is 2; ``cfg.filter_order`` (default 5) is always used.
    """
    if cfg.bandpass_hz is None and cfg.highpass_hz is None and cfg.notch_hz is None:
        return x
    import scipy.signal  # lazy: 0.66 s to import, unused by default builds

    y = x
    if cfg.bandpass_hz is not None:
        lo, hi = cfg.bandpass_hz
        y = sosfiltfilt(butter_sos(fs, lo, hi, cfg.filter_order), y)
    if cfg.highpass_hz is not None:
        y = sosfiltfilt(butter_sos(fs, cfg.highpass_hz, None, cfg.filter_order), y)
    if cfg.notch_hz is not None:
        b, a = scipy.signal.iirnotch(w0=cfg.notch_hz, Q=cfg.notch_quality, fs=fs)
        y = scipy.signal.filtfilt(b, a, np.asarray(y, dtype=np.float64), axis=-1)
    return y.astype(x.dtype, copy=False)


def _ratio(fs_in: float, fs_out: float) -> Fraction:
    return (Fraction(fs_out) / Fraction(fs_in)).limit_denominator(1_000_000)


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Anti-aliased polyphase resampling (``resample_poly``) along the last axis; identity if equal."""
    if fs_in == fs_out:
        return x
    import scipy.signal  # lazy: 0.66 s to import, unused by default builds

    r = _ratio(fs_in, fs_out)
    y = scipy.signal.resample_poly(
        np.asarray(x, dtype=np.float64), r.numerator, r.denominator, axis=-1
    )
    return y.astype(x.dtype, copy=False)


def fix_length(x: np.ndarray, n: int) -> tuple[np.ndarray, int, int]:
    """Crop to the first ``n`` samples or pad at the end with each lead's last value.

    Returns ``(array, n_cropped, n_padded)``; at most one of the counts is non-zero.
    """
    m = x.shape[-1]
    if m >= n:
        return x[..., :n], m - n, 0
    if m == 0:
        raise ValueError("fix_length: cannot pad an empty signal")
    pad = np.repeat(x[..., -1:], n - m, axis=-1)
    return np.concatenate([x, pad], axis=-1), 0, n - m


def normalise(x: np.ndarray, mode: str) -> np.ndarray:
    """``none``: unchanged; ``zscore``: per record and lead, zero-std leads become 0;
    ``meit``: min-max over each whole record (all leads and samples), constant records become 0."""
    if mode == "none":
        return x
    if mode not in ("zscore", "meit"):
        raise ValueError(f"normalise: unknown mode {mode!r}")
    if mode == "zscore":
        return zscore(x)  # float64 accumulators; a constant lead becomes 0
    lo = x.min(axis=(-2, -1), keepdims=True)
    # division, not a reciprocal product: the max maps to exactly 1
    centred, scale = x - lo, x.max(axis=(-2, -1), keepdims=True) - lo
    return centred / np.where(scale > 0, scale, np.inf).astype(x.dtype)  # constant -> 0 / inf = 0


def to_float16(x: np.ndarray, clip: bool = True) -> np.ndarray:
    """Cast to float16, clipping values beyond its range to +-65504 (never inf; NaN stays NaN).

    ``clip=False`` skips the clipping pass for data known to be in range (z-scores of N samples
    are bounded by sqrt(N); min-max output lies in [0, 1]).
    """
    return (np.clip(x, -FLOAT16_MAX, FLOAT16_MAX) if clip else x).astype(np.float16)
