"""One small demo (12 PTB-XL records, 9 MIMIC studies) shared by the demo's tests, and readers."""

from __future__ import annotations

from pathlib import Path

import neurokit2 as nk
import numpy as np
import polars as pl
import pytest
import wfdb

from pipeline.demo import DemoPaths, write_demo
from pipeline.leads import canonical_order

N_PTBXL, N_MIMIC, SEED = 12, 9, 3
MM_REPORTS = [f"report_{i}" for i in range(18)]


def read_canonical(record: Path) -> np.ndarray:
    """A written record's signal in canonical lead order, mV."""
    rec = wfdb.rdrecord(str(record))
    return rec.p_signal.T[canonical_order(rec.sig_name)]


def lead_ii_hr(x: np.ndarray, fs: int = 500) -> float:
    """Heart rate (bpm) of canonical-order ``x`` from neurokit2's R peaks in lead II."""
    _, info = nk.ecg_peaks(np.nan_to_num(x[1]), sampling_rate=fs)
    return 60 * fs / float(np.median(np.diff(info["ECG_R_Peaks"])))


def rhythm_of_hr(hr: float) -> str:
    return "brady" if hr < 60 else "tachy" if hr > 100 else "normal"


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    return write_demo(tmp_path_factory.mktemp("demo") / "out", N_PTBXL, N_MIMIC, seed=SEED)


@pytest.fixture(scope="session")
def ptbxl_db(demo: DemoPaths) -> pl.DataFrame:
    return pl.read_csv(demo.ptbxl / "ptbxl_database.csv", infer_schema_length=0)


@pytest.fixture(scope="session")
def mimic_table(demo: DemoPaths) -> pl.DataFrame:
    """record_list.csv joined with machine_measurements.csv on the keys (1:1)."""
    records = pl.read_csv(demo.mimic / "record_list.csv")
    measurements = pl.read_csv(demo.mimic / "machine_measurements.csv", infer_schema_length=0)
    measurements = measurements.with_columns(pl.col("subject_id", "study_id").cast(pl.Int64))
    return records.join(
        measurements, on=["subject_id", "study_id"], how="inner", suffix="_mm", validate="1:1"
    )
