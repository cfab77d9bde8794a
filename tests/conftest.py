"""Shared fixtures: where the real PhysioNet sample lives, and the offline environment."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import NoReturn

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


NOT_CI = {"", "0", "false", "no", "off", "n", "f"}
"""``CI`` values (lower-cased, stripped) that mean "not under CI"; anything else is truthy."""


def under_ci(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``CI`` is set to a truthy value (``1``, ``true``, ``TRUE``, ``yes``, ...).

    CI services disagree on the spelling (``true``, ``1``, ``True``), so only an explicit
    false-like value or an empty/unset ``CI`` counts as a developer machine.
    """
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() not in NOT_CI


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test with ``reason`` on a developer machine; fail it under CI, where every
    dependency and the shared data are installed and a skip would hide a missing check."""
    if under_ci():
        pytest.fail(f"{reason}; under CI (CI={os.environ.get('CI')!r}) it is required")
    pytest.skip(reason, allow_module_level=True)  # also usable at import time of a test module


def need_module(name: str) -> ModuleType:
    """``pytest.importorskip`` that fails under CI instead of skipping."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip_or_fail(f"{name} is not installed ({exc})")


def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        skip_or_fail(f"shared data not found at {path} (expected ../shared/data beside the repo)")
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
