"""Fixtures for the Prefect flow tests: a private PREFECT_HOME, one real ``prefect server start`` on
127.0.0.1 for the whole session, copies of the real PTB-XL sample, and process helpers that stop
what they started by PID with escalating signals (SIGINT, SIGTERM, SIGKILL).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from schemas import DATA_DIR

# Before anything imports prefect: nothing may leak into ~/.prefect, and no telemetry.
_HOME = Path(tempfile.mkdtemp(prefix="meit-prefect-home-"))
os.environ["PREFECT_HOME"] = str(_HOME)
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_PROFILES_PATH", None)
for _k, _v in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(_k, _v)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers 200 (fail early when ``proc`` died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process we started, by PID: SIGINT, then SIGTERM, then SIGKILL; then any of its
    descendants that outlived it, by their PIDs."""
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    proc.wait()
    for kid in kids:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(kid.pid, sig)
                kid.wait(timeout=5)
                break
            except (ProcessLookupError, psutil.NoSuchProcess):
                break
            except psutil.TimeoutExpired:
                continue


class Procs:
    """Processes started by one test (or fixture), stopped in reverse order."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], env: dict, cwd: Path = REPO) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        self.started.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            stop(proc)


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory) -> dict:
    """Environment of the session's Prefect server: private PREFECT_HOME, loopback, no telemetry."""
    env = {**os.environ, "PREFECT_HOME": str(_HOME), "CI": os.environ.get("CI", "")}
    env.pop("PREFECT_API_URL", None)
    return env


@pytest.fixture(scope="session")
def prefect_server(prefect_env, tmp_path_factory):
    """A real ``prefect server start --host 127.0.0.1`` for the session; yields its API URL and
    points this process (and every child it starts) at it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    procs = Procs(tmp_path_factory.mktemp("server-logs"))
    port = free_port()
    proc = procs.start(
        "server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        prefect_env,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_http(f"{url}/health", 150, proc)
    except Exception as exc:
        procs.stop_all()
        raise RuntimeError("prefect server did not start:\n" + procs.log("server")[-3000:]) from exc
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        procs.stop_all()
    assert proc.returncode is not None


@pytest.fixture
def procs(tmp_path):
    """Start helper for a test; everything it started is stopped by PID at the end."""
    logs = tmp_path / "logs"
    logs.mkdir()
    p = Procs(logs)
    yield p
    p.stop_all()


# ---------------------------------------------------------------- inputs


def add_ptbxl_records(root: Path, n: int, first_id: int = 7000) -> list[str]:
    """Append ``n`` records to a PTB-XL copy: real 500 Hz records re-filed under new ecg_ids (and
    new patients), header and data copied byte for byte except the record name."""
    db = root / "ptbxl_database.csv"
    with open(db, newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])
    real = [r for r in rows if r["filename_hr"] and (root / (r["filename_hr"] + ".hea")).is_file()]
    new_ids = []
    for i in range(n):
        src = dict(real[i % len(real)])
        ecg_id = first_id + i
        folder = f"records500/{ecg_id // 1000 * 1000:05d}"
        old_name, new_name = Path(src["filename_hr"]).name, f"{ecg_id:05d}_hr"
        (root / folder).mkdir(parents=True, exist_ok=True)
        header = (root / (src["filename_hr"] + ".hea")).read_text().replace(old_name, new_name)
        (root / folder / f"{new_name}.hea").write_text(header)
        shutil.copyfile(root / (src["filename_hr"] + ".dat"), root / folder / f"{new_name}.dat")
        src.update(
            ecg_id=str(ecg_id),
            patient_id=f"{90000 + ecg_id}.0",
            filename_hr=f"{folder}/{new_name}",
            filename_lr=f"records100/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_lr",
        )
        rows.append(src)
        new_ids.append(str(ecg_id))
    with open(db, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return new_ids


@pytest.fixture
def sample_copy(ptbxl_sample, tmp_path) -> Path:
    """A writable copy of the real PTB-XL sample."""
    dst = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_sample, dst)
    return dst


@pytest.fixture
def add_records():
    return add_ptbxl_records


def shard_digests(corpus: Path) -> dict[str, str]:
    """sha256 of every shard file (relative path -> digest)."""
    return {
        p.relative_to(corpus).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(corpus.glob(f"{DATA_DIR}/*/*.parquet"))
    }


def tree_state(corpus: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``corpus``: (inode, mtime_ns, sha256) — any write changes it."""
    out = {}
    for p in sorted(corpus.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(corpus).as_posix()] = (
                st.st_ino,
                st.st_mtime_ns,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
    return out


@pytest.fixture
def digests():
    return shard_digests


@pytest.fixture
def state():
    return tree_state


def pytest_sessionfinish(session, exitstatus):
    """The private PREFECT_HOME (server database, profiles) goes with the session."""
    shutil.rmtree(_HOME, ignore_errors=True)


class Lines(logging.Handler):
    """Keeps the messages logged to it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def run_log_lines():
    """The messages of flow- and task-run loggers (``get_run_logger``) during the test."""
    import prefect.main  # noqa: F401 (its first import configures logging, dropping handlers)

    handler = Lines()
    loggers = [logging.getLogger(f"prefect.{kind}_runs") for kind in ("flow", "task")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler.lines
    for logger, level in zip(loggers, levels):
        logger.removeHandler(handler)
        logger.setLevel(level)


def progress_shares(lines: list[str]) -> list[int]:
    """The percentages of the ``progress:`` lines, in order."""
    return [int(m.group(1)) for m in map(PROGRESS.search, lines) if m]


PROGRESS = re.compile(r"^progress: \d+/\d+ units, \d+/\d+ records \((\d+) %\)$")
