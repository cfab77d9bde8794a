"""Signal quality checks on a batch (B, 12, N): each failing record gets one reason and a detail.

Checks run in this order and the first failure wins: ``too_much_nan`` (before repair), then, after
repair, ``flat_lead`` and ``saturation``. All are vectorised over records and leads.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import SignalConfig
from pipeline.kernels import lead_extremes
from pipeline.signal import nan_stats
from schemas import CANONICAL_LEADS


def _first_bad_lead(bad: np.ndarray) -> list[int | None]:
    """Per record, the index of the first True lead, or None."""
    any_bad = bad.any(axis=1)
    first = bad.argmax(axis=1)
    return [int(f) if a else None for a, f in zip(any_bad, first)]


def check_missing(x: np.ndarray, fs: float, cfg: SignalConfig) -> list[tuple[str, str] | None]:
    """Reject records with a lead over ``max_nan_fraction`` non-finite or a gap over ``max_nan_gap_s``."""
    fraction, longest = nan_stats(x)
    max_gap = cfg.max_nan_gap_s * fs
    bad = (fraction > cfg.max_nan_fraction) | (longest > max_gap)
    out: list[tuple[str, str] | None] = []
    for b, lead in enumerate(_first_bad_lead(bad)):
        if lead is None:
            out.append(None)
            continue
        out.append(
            (
                "too_much_nan",
                f"lead {CANONICAL_LEADS[lead]}: {fraction[b, lead]:.1%} missing, "
                f"longest gap {int(longest[b, lead])} samples",
            )
        )
    return out


def check_flat_and_saturation(x: np.ndarray, cfg: SignalConfig) -> list[tuple[str, str] | None]:
    """Reject records with a flat lead (peak-to-peak below threshold) or a lead stuck at a rail.

    A lead is saturated when more than ``saturation_fraction`` of its samples sit exactly at its
    maximum, or exactly at its minimum: a clipped amplifier, not an ECG.
    """
    hi, lo, n_hi, n_lo = lead_extremes(x)
    ptp = hi - lo
    flat = ptp < cfg.flat_threshold_mv
    at_rail = np.maximum(n_hi, n_lo) / x.shape[-1]
    saturated = (at_rail > cfg.saturation_fraction) & ~flat
    out: list[tuple[str, str] | None] = []
    for b, (f, s) in enumerate(zip(_first_bad_lead(flat), _first_bad_lead(saturated))):
        if f is not None:
            out.append(("flat_lead", f"lead {CANONICAL_LEADS[f]}: peak-to-peak {ptp[b, f]:.4f} mV"))
        elif s is not None:
            out.append(
                (
                    "saturation",
                    f"lead {CANONICAL_LEADS[s]}: {at_rail[b, s]:.1%} of samples at a rail",
                )
            )
        else:
            out.append(None)
    return out
