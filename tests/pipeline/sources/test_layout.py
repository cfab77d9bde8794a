"""The layout writers' shared checks: only signals that format 16 can hold are written."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.sources.layout import check_signal_mv
from pipeline.sources.mimic import MIMIC_GAIN
from pipeline.sources.ptbxl import PTBXL_GAIN


@pytest.mark.parametrize(
    "signal, gain",
    [
        (np.zeros((11, 5000)), PTBXL_GAIN),  # not 12 leads
        (np.zeros((12, 0)), PTBXL_GAIN),  # no samples
        (np.full((12, 10), np.inf), PTBXL_GAIN),  # inf has no format-16 code
        (np.full((12, 10), 40.0), PTBXL_GAIN),  # > 32.767 mV at 1000/mV
        (np.full((12, 10), 170.0), MIMIC_GAIN),  # > 163.8 mV at 200/mV
    ],
)
def test_unstorable_signals_are_refused(signal: np.ndarray, gain: float) -> None:
    with pytest.raises(ValueError):
        check_signal_mv(signal, gain)


def test_storable_signals_pass_with_nan() -> None:
    x = np.full((12, 10), 163.8)
    x[0, :3] = np.nan
    assert np.array_equal(check_signal_mv(x, MIMIC_GAIN), x, equal_nan=True)
    assert check_signal_mv(np.full((12, 4), np.nan), PTBXL_GAIN).shape == (12, 4)
