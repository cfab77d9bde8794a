"""The ECG simulator: limb leads from one frontal heart vector, heart rates as asked."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.demo import DemoPaths
from pipeline.demo.synthesis import FS, simulate_records
from tests.pipeline.demo.conftest import lead_ii_hr, read_canonical, rhythm_of_hr


def einthoven_error(x: np.ndarray) -> float:
    """Largest violation of III = II - I and Goldberger's aVR, aVL, aVF in canonical ``x``."""
    i, ii, iii, avr, avl, avf = x[:6]
    return max(
        np.abs(iii - (ii - i)).max(),
        np.abs(avr + (i + ii) / 2).max(),
        np.abs(avl - (i - ii / 2)).max(),
        np.abs(avf - (ii - i / 2)).max(),
    )


def test_written_limb_leads_obey_einthoven(demo: DemoPaths, ptbxl_db: pl.DataFrame) -> None:
    x = read_canonical(demo.ptbxl / ptbxl_db["filename_hr"][0])
    assert einthoven_error(x) <= 1.5e-3 + 1e-9  # three leads, each rounded to 1 uV
    assert np.ptp(x[4]) > 0.1 and np.ptp(x[5]) > 0.1  # aVL and aVF both carry signal


def test_simulated_records_cycle_through_the_rhythms() -> None:
    """Record i has rhythm i mod 3 (brady, normal, tachy) at its heart rate, in mV, 12 leads
    tied by Einthoven's law; the same arguments give the same records."""
    records = simulate_records(3, seed=5, duration_s=6)
    assert records.shape == (3, 12, 6 * FS) and np.isfinite(records).all()
    assert [rhythm_of_hr(lead_ii_hr(x)) for x in records] == ["brady", "normal", "tachy"]
    assert max(einthoven_error(x) for x in records) < 1e-9
    assert all(0.3 < np.ptp(x[1]) < 10 for x in records)  # QRS of about a millivolt
    assert np.array_equal(simulate_records(3, seed=5, duration_s=6), records)
