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


LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: object) -> bool:
    """Whether ``host`` (a name or an address) stays on this machine."""
    import ipaddress

    name = str(host).strip("[]").lower()
    if name in LOOPBACK_NAMES or name == "":
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def is_address(host: object) -> bool:
    """Whether ``host`` is a literal IP address (resolving it needs no name lookup)."""
    import ipaddress

    try:
        ipaddress.ip_address(str(host).strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never touch the network: a connection or name lookup that would leave the loopback
    fails the test at once (servers started by a test on 127.0.0.1 are fine). Child processes
    inherit the offline variables set above; this guard covers the test process itself."""
    import socket

    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not is_loopback(host) and not is_address(host):
            raise AssertionError(f"test tried to resolve a network name: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
