"""Compiled kernels for the hot loops of conditioning (numba; scipy/numpy fallbacks without it).

:func:`sosfiltfilt` — zero-phase SOS filtering of many channels at once. Why hand-written: scipy runs each channel's recursion on its own (one lead at a time, no SIMD),
which measured ~1.0 ms per 12 x 5000 record for an order-5 band-pass, as much as reading, casting
and writing the record together. The recursion over samples cannot be vectorised, but the 12 x B
channels of a batch are independent: this kernel steps through samples once and updates all
channels in an inner loop that the compiler vectorises. Same algorithm as scipy (odd extension of
3 x ntaps samples, steady-state initial conditions from ``sosfilt_zi``, forward then backward
pass, direct form II transposed), so results match ``sosfiltfilt`` to float64 rounding (tested).

Falls back to ``scipy.signal.sosfiltfilt`` when numba is not installed.

:func:`frames_to_leads` — WFDB int16 frames to physical float32 leads in one pass.

:func:`zscore` — per lead standardisation, one pass per lead in cache.

:func:`lead_extremes` — per lead maximum, minimum and how many samples sit at each, in one pass
(numpy needs four passes: measured 0.56 ms per record against ~0.1 ms).
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _njit():
    """numba's ``njit``, imported at the first kernel call (importing numba is the largest import
    of the build's main process, which runs no kernel), or None where numba is missing (numba is
    a declared dependency; the fallbacks keep the library usable without it)."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - exercised only where numba is missing
        return None
    return njit


def _zero_phase(x: np.ndarray, sos: np.ndarray, zi: np.ndarray, edge: int, out: np.ndarray) -> None:
    """sosfiltfilt of every row of ``x`` (channels x samples) into ``out``, computed in float64.

    Works on a samples x channels copy so that the inner loops run over channels (SIMD).
    """
    n_channels, n = x.shape
    length = n + 2 * edge
    n_sections = sos.shape[0]
    ext = np.empty((length, n_channels))
    block = 16
    for c0 in range(0, n_channels, block):  # blocked transpose: 16 sequential read streams
        c1 = min(c0 + block, n_channels)
        for i in range(n):
            for c in range(c0, c1):
                ext[edge + i, c] = x[c, i]
    for e in range(edge):  # scipy's odd extension
        for c in range(n_channels):
            ext[edge - 1 - e, c] = 2.0 * ext[edge, c] - ext[edge + 1 + e, c]
            ext[edge + n + e, c] = 2.0 * ext[edge + n - 1, c] - ext[edge + n - 2 - e, c]
    z0 = np.empty((n_sections, n_channels))
    z1 = np.empty((n_sections, n_channels))
    cur = np.empty(n_channels)
    for direction in range(2):  # forward, then backward, in place
        first = 0 if direction == 0 else length - 1
        for s in range(n_sections):
            for c in range(n_channels):
                z0[s, c] = zi[s, 0] * ext[first, c]
                z1[s, c] = zi[s, 1] * ext[first, c]
        for k in range(length):
            t = k if direction == 0 else length - 1 - k
            for c in range(n_channels):
                cur[c] = ext[t, c]
            for s in range(n_sections):
                b0, b1, b2 = sos[s, 0], sos[s, 1], sos[s, 2]
                a1, a2 = sos[s, 4], sos[s, 5]
                for c in range(n_channels):
                    xc = cur[c]
                    yc = b0 * xc + z0[s, c]
                    z0[s, c] = b1 * xc - a1 * yc + z1[s, c]
                    z1[s, c] = b2 * xc - a2 * yc
                    cur[c] = yc
            for c in range(n_channels):
                ext[t, c] = cur[c]
    for c0 in range(0, n_channels, block):
        c1 = min(c0 + block, n_channels)
        for i in range(n):
            for c in range(c0, c1):
                out[c, i] = ext[edge + i, c]


def _extremes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: max, min, samples equal to the max, samples equal to the min (finite input)."""
    rows, n = x.shape
    hi = np.empty(rows, dtype=x.dtype)
    lo = np.empty(rows, dtype=x.dtype)
    n_hi = np.zeros(rows, dtype=np.int64)
    n_lo = np.zeros(rows, dtype=np.int64)
    for r in range(rows):
        h, lw, ch, cl = x[r, 0], x[r, 0], 0, 0
        for i in range(n):
            v = x[r, i]
            if v > h:
                h, ch = v, 1
            elif v == h:
                ch += 1
            if v < lw:
                lw, cl = v, 1
            elif v == lw:
                cl += 1
        hi[r], lo[r], n_hi[r], n_lo[r] = h, lw, ch, cl
    return hi, lo, n_hi, n_lo


def _zscore(x: np.ndarray) -> np.ndarray:
    """Per row (x - mean) / std with float64 accumulators; a constant row becomes 0."""
    rows, n = x.shape
    out = np.empty_like(x)
    for r in range(rows):
        total = 0.0
        for i in range(n):
            total += x[r, i]
        mean = total / n
        sq = 0.0
        for i in range(n):
            d = x[r, i] - mean
            sq += d * d
        std = np.sqrt(sq / n)
        inv = 1.0 / std if std > 0 else 0.0
        for i in range(n):
            out[r, i] = (x[r, i] - mean) * inv
    return out


def _frames_to_leads(
    frames: np.ndarray, baseline: np.ndarray, gain: np.ndarray, missing: int
) -> tuple[np.ndarray, np.ndarray]:
    """int16 samples x leads -> (float32 leads x samples in physical units, per-lead digital sums).

    ``missing`` samples become NaN; the sums (int64) are what WFDB header checksums are made of.
    """
    n, leads = frames.shape
    out = np.empty((leads, n), dtype=np.float32)
    sums = np.zeros(leads, dtype=np.int64)
    scale = 1.0 / gain
    for i in range(n):
        for j in range(leads):
            d = frames[i, j]
            sums[j] += d
            out[j, i] = np.nan if d == missing else (d - baseline[j]) * scale[j]
    return out, sums


_PURE_PYTHON = {
    "zero_phase": _zero_phase,
    "extremes": _extremes,
    "zscore": _zscore,
    "frames": _frames_to_leads,
}


@functools.cache
def _kernel(name: str):
    """The compiled kernel ``name`` (compiled once per process; numba caches machine code on disk)."""
    return _njit()(cache=True, nogil=True)(_PURE_PYTHON[name])


def lead_extremes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Max, min, and counts of samples at the max and at the min, along the last axis.

    Each result has ``x.shape[:-1]``. ``x`` must be finite.
    """
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    if _njit() is None:
        hi, lo = rows.max(axis=-1), rows.min(axis=-1)
        out = hi, lo, (rows == hi[:, None]).sum(-1), (rows == lo[:, None]).sum(-1)
    else:
        out = _kernel("extremes")(rows)
    return tuple(a.reshape(x.shape[:-1]) for a in out)


CHUNK_CHANNELS = 48
"""Channels filtered per kernel call (4 records): the working set stays in cache (measured)."""


def sosfiltfilt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Zero-phase SOS filter along the last axis of ``x`` (any leading shape).

    Equal to ``scipy.signal.sosfiltfilt(sos, x, axis=-1)`` with its default odd padding; computed
    in float64 and returned in ``x``'s floating dtype (float32 stays float32).
    """
    import scipy.signal  # lazy: 0.66 s to import, unused by default builds

    sos = np.asarray(sos, dtype=np.float64)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    if _njit() is None:
        return scipy.signal.sosfiltfilt(sos, x, axis=-1).astype(dtype, copy=False)
    n_sections = sos.shape[0]
    ntaps = 2 * n_sections + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    edge = 3 * ntaps
    n = x.shape[-1]
    if n <= edge:
        raise ValueError(f"signal of {n} samples is too short to filter (needs > {edge})")
    rows = np.ascontiguousarray(x).reshape(-1, n)
    zi = scipy.signal.sosfilt_zi(sos)
    kernel = _kernel("zero_phase")
    out = np.empty(rows.shape, dtype=dtype)
    for i in range(0, rows.shape[0], CHUNK_CHANNELS):
        kernel(rows[i : i + CHUNK_CHANNELS], sos, zi, edge, out[i : i + CHUNK_CHANNELS])
    return out.reshape(x.shape)


def zscore(x: np.ndarray) -> np.ndarray:
    """Per-lead z-score along the last axis in one compiled pass per lead (numpy: five passes)."""
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    if _njit() is None:
        centred = rows - rows.mean(axis=-1, keepdims=True, dtype=np.float64)
        std = np.sqrt(np.mean(np.square(centred), axis=-1, keepdims=True))
        out = (centred / np.where(std > 0, std, np.inf)).astype(x.dtype)
    else:
        out = _kernel("zscore")(rows)
    return out.reshape(x.shape)


def frames_to_leads(
    frames: np.ndarray, baseline: np.ndarray, gain: np.ndarray, missing: int
) -> tuple[np.ndarray, np.ndarray]:
    """WFDB digital frames (samples x leads, int16) as physical leads x samples (float32), and
    the per-lead sums of the digital values (for the header checksums).

    ``(d - baseline) / gain`` per lead, with the format's missing-sample value as NaN: checksum,
    transpose, conversion and NaN marking in one pass (numpy needs six; measured 0.21 ms per
    12 x 5000 record against ~0.05 ms).
    """
    if _njit() is None:
        signal = (frames.T.astype(np.float64) - baseline[:, None]) / gain[:, None]
        signal[(frames == missing).T] = np.nan
        return signal.astype(np.float32), frames.sum(axis=0, dtype=np.int64)
    base = np.asarray(baseline, dtype=np.float64)
    return _kernel("frames")(
        np.ascontiguousarray(frames), base, np.asarray(gain, np.float64), missing
    )
