"""Kills: a build SIGKILLed at any moment leaves what it leaves, and the next build removes the
killed run's temp files and completes to a corpus equal to a clean build (shards, ledger and
fingerprints byte for byte). A ``kill -9`` of the build takes its worker processes with it.

Each kill runs a real build in a subprocess that SIGKILLs itself at one moment (the build's own
steps, wrapped); the rerun is ``meit-corpus build`` through :func:`pipeline.cli.main`.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.finalise import validate_corpus
from pipeline.unit_files import PLAN_DIR
from schemas import FINGERPRINTS, REJECTIONS, source_dir
from tests.adversarial.conftest import TEST, TRAIN, build_args, corpus_bytes
from tests.conftest import REPO, need_module

RECORDS = {f"_build/{TRAIN}.json", f"_build/{TEST}.json"}
LOCKS = {".build.lock", ".build.pid"}

KILLER = """
import os, signal, sys
from pathlib import Path

from pipeline import finalise, shards
from pipeline.build import Steps, build
from pipeline.config import BuildConfig
from pipeline.execute import process_unit

moment, ptbxl, out = sys.argv[1:4]


def die(*_):
    os.kill(os.getpid(), signal.SIGKILL)


steps = Steps()
if moment == "after_discovery":
    steps = Steps(plan=die)
elif moment == "mid_shard":  # the first shard's first row group is written, not yet renamed
    write = shards.ShardWriter.write

    def write_then_die(self, table):
        write(self, table)
        die()

    shards.ShardWriter.write = write_then_die
elif moment == "between_units":

    def first_unit_then_die(units, cfg, pool=None, on_done=None):
        process_unit(units[0], cfg, cfg.out)
        die()

    steps = Steps(execute=first_unit_then_die)
elif moment == "mid_finalise":  # half the manifest is in its temp file
    write_text = finalise.write_text_atomic

    def die_in_manifest(path, text):
        if path.name == "manifest.json":
            shards.temp_path(path).write_text(text[: len(text) // 2])
            die()
        write_text(path, text)

    finalise.write_text_atomic = die_in_manifest
elif moment == "before_validate":
    steps = Steps(validate=die)
build(BuildConfig(ptbxl=ptbxl, out=out, workers=1), steps=steps)
print("the build was not killed")
"""

# What each kill leaves in the corpus folder (a temp file's pid shown as PID).
LEFT = {
    "after_discovery": LOCKS,
    "mid_shard": LOCKS | {"data/ptbxl/.train-00000-of-00001.parquet.tmp-PID"},
    "between_units": LOCKS | {TRAIN, f"_build/{TRAIN}.json"},
    "mid_finalise": LOCKS
    | {TRAIN, TEST, *RECORDS, FINGERPRINTS, REJECTIONS, "README.md"}
    | {".manifest.json.tmp-PID"},
    "before_validate": LOCKS
    | {TRAIN, TEST, *RECORDS, FINGERPRINTS, REJECTIONS}
    | {"manifest.json", "README.md"},
}


def files(out: Path) -> set[str]:
    """Every file under ``out`` but the plan's unit rows files, a temp file's pid replaced by PID."""
    return {
        re.sub(r"\.tmp-\d+$", ".tmp-PID", p.relative_to(out).as_posix())
        for p in out.rglob("*")
        if p.is_file() and not p.relative_to(out).as_posix().startswith(PLAN_DIR)
    }


def rerun_equals_clean(ptbxl: Path, out: Path, reference: Path, capsys) -> None:
    """The next build completes (one line, exit 0), leaves no temp or pid file, and its corpus
    equals the clean build's."""
    capsys.readouterr()
    code = main(build_args(ptbxl, out))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert (code, captured.out.strip().splitlines()[-1]) == (0, f"corpus written to {out}")
    assert not [f for f in files(out) if f.endswith(".tmp-PID") or f.endswith(".build.pid")]
    assert corpus_bytes(out) == corpus_bytes(reference)
    assert validate_corpus(out) == []


@pytest.mark.parametrize("moment", sorted(LEFT))
def test_a_build_killed_at_any_moment_then_rerun_equals_a_clean_build(
    moment: str, ptbxl: Path, reference: Path, tmp_path: Path, capsys
):
    out = tmp_path / "corpus"
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, moment, str(ptbxl), str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert files(out) == LEFT[moment]
    rerun_equals_clean(ptbxl, out, reference, capsys)


# ---------------------------------------------------------------- workers die with the build


def add_records(root: Path, n: int, first_id: int = 7000) -> None:
    """Append ``n`` copies of the sample's real 500 Hz records under new ecg_ids and patients."""
    db = root / "ptbxl_database.csv"
    with open(db, newline="") as f:
        rows = list(csv.DictReader(f))
    real = [r for r in rows if r["filename_hr"] and (root / (r["filename_hr"] + ".hea")).is_file()]
    for i in range(n):
        src, ecg_id = dict(real[i % len(real)]), first_id + i
        folder, name = f"records500/{ecg_id // 1000 * 1000:05d}", f"{ecg_id:05d}_hr"
        (root / folder).mkdir(parents=True, exist_ok=True)
        old = Path(src["filename_hr"]).name
        header = (root / (src["filename_hr"] + ".hea")).read_text().replace(old, name)
        (root / folder / f"{name}.hea").write_text(header)
        shutil.copyfile(root / (src["filename_hr"] + ".dat"), root / folder / f"{name}.dat")
        src.update(
            ecg_id=str(ecg_id), patient_id=f"{90000 + ecg_id}.0", filename_hr=f"{folder}/{name}"
        )
        rows.append(src)
    with open(db, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_kill_9_of_the_build_takes_its_workers_with_it(ptbxl: Path, tmp_path: Path, capsys):
    """SIGKILL the build while a worker writes a shard: every process it started (the pool's
    workers, multiprocessing's resource tracker) is gone soon after; the rerun completes."""
    psutil = need_module("psutil")
    big = tmp_path / "ptbxl"
    shutil.copytree(ptbxl, big)
    add_records(big, 120)
    out = tmp_path / "corpus"
    build = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *build_args(big, out, workers=2)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    family: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and build.poll() is None:
            try:
                kids = psutil.Process(build.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                break
            family.update({k.pid: k for k in kids})
            workers = [k for k in kids if "spawn_main" in " ".join(_cmdline(k))]
            if len(workers) == 2 and list((out / source_dir("ptbxl")).glob(".*.tmp-*")):
                os.kill(build.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        build.wait(timeout=60)
        assert build.returncode == -signal.SIGKILL, "the build ended before a worker wrote a shard"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(family.values()):
            time.sleep(0.1)
        assert _alive(family.values()) == []
    finally:
        for proc in _alive(family.values()):
            proc.kill()
    reference = tmp_path / "reference"
    assert main(build_args(big, reference)) == 0
    rerun_equals_clean(big, out, reference, capsys)


def _cmdline(proc) -> list[str]:
    try:
        return proc.cmdline()
    except Exception:  # gone, or a zombie
        return []


def _alive(procs) -> list:
    """The processes still running (zombies count as gone: they hold no resources)."""
    import psutil

    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            continue
    return alive
