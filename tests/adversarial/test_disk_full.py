"""A full disk (and a write that fails otherwise) anywhere in a build: one line saying what was
being written and about how much space the rest of the build needs, exit 1, no temp file left,
and after space is freed the same build completes to a corpus equal to a clean build.

The real cases build onto a small tmpfs sized from a clean build's files so that the disk fills
up at a chosen file (mounting needs root: skipped with the reason otherwise); two more cases
make a write fail by hand and run anywhere.
"""

from __future__ import annotations

import errno
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import shards
from pipeline.finalise import validate_corpus
from pipeline.unit_files import PLAN_DIR
from schemas import FINGERPRINTS, REJECTIONS
from tests.adversarial.conftest import TEST, TRAIN, build_args, corpus_bytes
from tests.adversarial.conftest import run_cli as run_build

PAGE = 4096
UNITS = {".build.lock", TRAIN, f"_build/{TRAIN}.json", TEST, f"_build/{TEST}.json"}
SIZE = r"([\d.]+) (B|KiB|MiB|GiB)"


def files(out: Path) -> set[str]:
    """Files under ``out`` but the plan's unit rows files (written before any unit)."""
    return {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and not p.relative_to(out).as_posix().startswith(PLAN_DIR)
    }


def in_bytes(number: str, unit: str) -> float:
    return float(number) * {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[unit]


def pages(path: Path) -> int:
    return math.ceil(path.stat().st_size / PAGE)


def rerun_equals_clean(args: list[str], out: Path, reference: Path, capsys) -> None:
    assert run_build(args, capsys) == (0, f"corpus written to {out}")
    assert corpus_bytes(out) == corpus_bytes(reference)
    assert validate_corpus(out) == []
    assert not [f for f in files(out) if shards.is_temp(Path(f)) or f.endswith(".build.pid")]


# ---------------------------------------------------------------- a real full disk (tmpfs)


@dataclass(frozen=True)
class FullCase:
    """A tmpfs just big enough for the files before ``fails`` (in the clean build's order) plus
    ``spare`` pages; what the line says is left to do; the files left behind."""

    name: str
    fails: str
    before: tuple[str, ...]
    spare: int
    left: str
    files_left: frozenset[str]
    workers: int = 1


# The order a one-worker build writes: .build.pid (removed at the end), the train shard and its
# record, the test shard and its record, then the fingerprints, the ledger, the manifest, the card.
FULL_CASES = [
    FullCase("first_shard", TRAIN, (), 16, "9 records left to write", frozenset({".build.lock"})),
    FullCase(
        "first_shard_in_a_worker_process",
        TRAIN,
        (),
        16,
        "9 records left to write",
        frozenset({".build.lock"}),
        workers=2,
    ),
    FullCase(
        "second_shard",
        TEST,
        (TRAIN, f"_build/{TRAIN}.json"),
        16,
        "2 records left to write",
        frozenset({".build.lock", TRAIN, f"_build/{TRAIN}.json"}),
    ),
    FullCase(
        "fingerprints",
        FINGERPRINTS,
        (TRAIN, f"_build/{TRAIN}.json", TEST, f"_build/{TEST}.json"),
        0,
        "finalising",
        frozenset(UNITS),
    ),
    FullCase(
        "ledger",
        REJECTIONS,
        (TRAIN, f"_build/{TRAIN}.json", TEST, f"_build/{TEST}.json", FINGERPRINTS),
        0,
        "finalising",
        frozenset(UNITS | {FINGERPRINTS}),
    ),
    FullCase(
        "dataset_card",
        "README.md",
        (*sorted(UNITS - {".build.lock"}), FINGERPRINTS, REJECTIONS),
        0,
        "finalising",
        frozenset(UNITS | {FINGERPRINTS, REJECTIONS}),
    ),
    FullCase(
        "manifest",  # written last: it lists the card's sha256
        "manifest.json",
        (*sorted(UNITS - {".build.lock"}), FINGERPRINTS, REJECTIONS) + ("README.md",),
        0,
        "finalising",
        frozenset(UNITS | {FINGERPRINTS, REJECTIONS, "README.md"}),
    ),
]


@pytest.fixture
def tmpfs(tmp_path: Path):
    """Mount a tmpfs of the size asked for; yields the mount function; unmounts at the end."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is a small tmpfs, and mounting one needs root")
    point = tmp_path / "disk"
    point.mkdir()
    mounted = []

    def mount(size: int) -> Path:
        opts = f"size={size}" if not mounted else f"remount,size={size}"
        cmd = ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)]
        done = subprocess.run(
            cmd if not mounted else ["mount", "-o", opts, str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    if mounted:
        if subprocess.run(["umount", str(point)], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", str(point)], check=False)  # still busy


@pytest.mark.parametrize("case", FULL_CASES, ids=lambda c: c.name)
def test_a_full_disk_ends_the_build_in_one_line_and_the_rerun_completes(
    case: FullCase, ptbxl: Path, reference: Path, tmpfs, capsys
):
    plan = [p.relative_to(reference) for p in (reference / PLAN_DIR).glob("*")]  # written first
    size = PAGE * (1 + sum(pages(reference / f) for f in (*plan, *case.before)) + case.spare)
    out = tmpfs(size) / "corpus"
    args = build_args(ptbxl, out, case.workers)
    code, line = run_build(args, capsys)
    pattern = (
        rf"write error: disk full while writing {re.escape(str(out / case.fails))}: the rest of "
        rf"the build needs about {SIZE} \({case.left}; {SIZE} free\); free space and run the "
        r"same build again, it resumes"
    )
    match = re.fullmatch(pattern, line)
    assert code == 1 and match, line
    assert files(out) == case.files_left  # no temp file, no pid file, nothing half-written
    used = shutil.disk_usage(out).used
    tmpfs(64 * 1024 * 1024)
    rerun_equals_clean(build_args(ptbxl, out), out, reference, capsys)
    # the estimate covers what the rest of the build took
    assert in_bytes(*match.groups()[:2]) >= shutil.disk_usage(out).used - used


# ---------------------------------------------------------------- failed writes made by hand


def test_a_full_disk_while_writing_the_ledger(ptbxl, reference, tmp_path, monkeypatch, capsys):
    """ENOSPC after part of the ledger's temp file is written: its temp file goes too."""
    write_table = shards.pq.write_table

    def fill_up(table, where, **kwargs):
        write_table(table, where, **kwargs)
        if Path(where).name.startswith(".rejections.parquet.tmp-"):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shards.pq, "write_table", fill_up)
    out = tmp_path / "corpus"
    code, line = run_build(build_args(ptbxl, out), capsys)
    assert code == 1
    assert re.fullmatch(
        rf"write error: disk full while writing {re.escape(str(out / REJECTIONS))}: the "
        rf"rest of the build needs about {SIZE} \(finalising; {SIZE} free\); free space and run "
        r"the same build again, it resumes",
        line,
    ), line
    assert files(out) == UNITS | {FINGERPRINTS}
    monkeypatch.undo()
    rerun_equals_clean(build_args(ptbxl, out), out, reference, capsys)


def test_a_completion_record_that_cannot_be_written(
    ptbxl, reference, tmp_path, monkeypatch, capsys
):
    """A failed write that is not ENOSPC (a folder gone read-only) is one line too, and the shard
    whose record failed is removed with it: no shard without its record."""
    publish = shards.publish

    def read_only(tmp: Path, final: Path) -> None:
        if final.name == "train-00000-of-00001.parquet.json":
            raise OSError(errno.EROFS, "Read-only file system")
        publish(tmp, final)

    monkeypatch.setattr(shards, "publish", read_only)
    out = tmp_path / "corpus"
    code, line = run_build(build_args(ptbxl, out), capsys)
    assert (code, line) == (
        1,
        f"write error: cannot write {out}/_build/{TRAIN}.json: Read-only file system",
    )
    assert files(out) == {".build.lock"}
    monkeypatch.undo()
    rerun_equals_clean(build_args(ptbxl, out), out, reference, capsys)
