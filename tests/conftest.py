"""Shared fixtures: where the real PhysioNet sample lives, and the offline environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}.items():
    os.environ.setdefault(_k, _v)


def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        reason = f"shared data not found at {path} (expected ../shared/data beside the repo)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; under CI=true it is required")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def ptbxl_sample() -> Path:
    """Real PTB-XL files in PhysioNet's layout (8 records at 500 Hz, 1 at 100 Hz)."""
    return _shared("physionet-sample/ptbxl")


@pytest.fixture(scope="session")
def mimic_sample() -> Path:
    """Real MIMIC-IV-ECG metadata and one real header (no waveform)."""
    return _shared("physionet-sample/mimic-iv-ecg")


@pytest.fixture(scope="session")
def ptbxl_reports_csv() -> Path:
    """2,941 real rows of ptbxl_database.csv (German, English and Swedish reports)."""
    return _shared("ptbxl-reports/ptbxl_database_sample.csv")


@pytest.fixture(scope="session")
def mimic_statements_tsv() -> Path:
    """239 real MIMIC-IV-ECG machine statements."""
    return _shared("mimic-iv-ecg/statements.tsv")
