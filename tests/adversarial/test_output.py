"""Adversarial output folders and a disk that lies: the build refuses in one line (exit 2, before
it writes anything) an ``--out`` it must not write, never deletes a file no build of the corpus
wrote, holds one build per folder, and trusts a finished shard only at its recorded size and
sha256 (anything else is rebuilt, and the corpus then equals a clean build byte for byte).

Inputs are a module copy of the real PTB-XL sample, so a refusal that fails cannot write into the
shared data. Every case runs ``meit-corpus build`` through :func:`pipeline.cli.main`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.finalise import remove_stale, validate_corpus
from schemas import DATA_DIR, FINGERPRINTS, MEIT_DIR, PROGRESS_DIR, REJECTIONS, source_dir
from tests.adversarial.conftest import TEST, TRAIN, build_args, corpus_bytes, run_cli
from tests.conftest import REPO

LOCK = ".build.lock"
APART = "write the corpus to a folder apart from its inputs"


# ---------------------------------------------------------------- helpers


def run_build(ptbxl: Path, out: Path, capsys) -> tuple[int, str]:
    """Exit code and last printed line of ``meit-corpus build`` (no traceback allowed)."""
    return run_cli(build_args(ptbxl, out), capsys)


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (links not followed), the lock file left out."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != LOCK
    }


def temps(out: Path) -> list[str]:
    """Writers' temp files (``.<name>.tmp-<pid>``) anywhere under ``out``."""
    return sorted(
        p.relative_to(out).as_posix() for p in out.rglob(".*.tmp-*") if p.name[-1].isdigit()
    )


@pytest.fixture
def mounts():
    """Mount points a case made (unmounted at the end)."""
    made: list[Path] = []
    yield made
    for point in reversed(made):
        if subprocess.run(["umount", str(point)], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", str(point)], check=False)  # still busy


def read_only_folder(tmp: Path, mounts: list[Path]) -> Path:
    """A read-only bind mount of an empty folder (root ignores chmod, not a read-only mount)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root (chmod does not stop root)")
    point = tmp / "ro"
    point.mkdir()
    for cmd in (
        ["mount", "--bind", str(point), str(point)],
        ["mount", "-o", "remount,bind,ro", str(point)],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.strip()}")
        if cmd[1] == "--bind":
            mounts.append(point)
    return point


# ---------------------------------------------------------------- refused output folders


@dataclass(frozen=True)
class OutCase:
    """An ``--out`` the build must refuse: how to make it, and the one line (placeholders {out},
    {ptbxl})."""

    name: str
    make: Callable[[Path, Path, Path, list[Path]], Path]  # (tmp, ptbxl, reference, mounts) -> out
    line: str


def _link(target: Path, link: Path) -> Path:
    link.symlink_to(target, target_is_directory=True)
    return link


def _file(path: Path, text: str = "not a folder\n") -> Path:
    path.write_text(text)
    return path


def _corpus_with(tmp: Path, reference: Path, rel: str) -> Path:
    out = tmp / "corpus"
    shutil.copytree(reference, out)
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_text("a user's own file\n")
    return out


def _not_a_corpus(tmp: Path) -> Path:
    out = tmp / "mine"
    out.mkdir()
    _file(out / "README.md", "my notes\n")
    _file(out / "notes.txt", "more notes\n")
    return out


def _source_folder_link(tmp: Path, ptbxl: Path) -> Path:
    out = tmp / "corpus"
    out.mkdir()
    (out / DATA_DIR).mkdir()
    _link(ptbxl, out / source_dir("ptbxl"))
    return out


def overlap(how: str, where: str = "out {out}") -> str:
    return f"input error: {where} {how} the ptbxl input folder {{ptbxl}}: {APART}"


OUT_CASES = [
    OutCase("out_is_the_input", lambda t, p, r, m: p, overlap("is")),
    OutCase(
        "out_inside_the_input",
        lambda t, p, r, m: p / "records500" / "corpus",
        overlap("lies inside"),
    ),
    OutCase("input_inside_out", lambda t, p, r, m: p.parent, overlap("contains")),
    OutCase("out_a_link_to_the_input", lambda t, p, r, m: _link(p, t / "link"), overlap("is")),
    OutCase(
        "out_source_folder_a_link_into_the_input",
        lambda t, p, r, m: _source_folder_link(t, p),
        overlap("is", "out's folder ptbxl {out}/data/ptbxl"),
    ),
    OutCase(
        "out_a_file",
        lambda t, p, r, m: _file(t / "corpus"),
        "input error: out {out} is a file, not a folder",
    ),
    OutCase(
        "a_file_in_the_way",
        lambda t, p, r, m: _file(t / "blocker") / "corpus",
        "input error: out {out} cannot be written: Not a directory",
    ),
    OutCase(
        "out_read_only",
        lambda t, p, r, m: read_only_folder(t, m),
        "input error: out {out} cannot be written: Read-only file system",
    ),
    OutCase(
        "out_under_a_read_only_folder",
        lambda t, p, r, m: read_only_folder(t, m) / "corpus",
        "input error: out {out} cannot be written: Read-only file system",
    ),
    OutCase(
        "out_a_folder_of_other_files",
        lambda t, p, r, m: _not_a_corpus(t),
        "input error: out {out} holds files that are not a corpus (README.md, notes.txt): "
        "give an empty or new folder",
    ),
    OutCase(
        "user_file_in_a_source_folder",
        lambda t, p, r, m: _corpus_with(t, r, "data/ptbxl/mine.parquet"),
        "input error: out {out} holds data/ptbxl/mine.parquet, which no build of this corpus wrote: "
        "move it out (a build deletes only its own files)",
    ),
    OutCase(
        "user_parquet_beside_the_corpus",
        lambda t, p, r, m: _corpus_with(t, r, "extra/mine.parquet"),
        "input error: out {out} holds extra/mine.parquet, which no build of this corpus wrote: "
        "move it out (a build deletes only its own files)",
    ),
    OutCase(
        "user_file_in_the_meit_folder",
        lambda t, p, r, m: _corpus_with(t, r, "meta/meit/mine.jsonl"),
        "input error: out {out} holds meta/meit/mine.jsonl, which no build of this corpus wrote: "
        "move it out (a build deletes only its own files)",
    ),
]


@pytest.mark.parametrize("case", OUT_CASES, ids=lambda c: c.name)
def test_an_out_the_build_must_not_write_is_refused_before_any_work(
    case: OutCase, ptbxl: Path, reference: Path, tmp_path: Path, mounts, capsys
):
    out = case.make(tmp_path, ptbxl, reference, mounts)
    inputs_before, tmp_before = tree(ptbxl), tree(tmp_path)
    code, line = run_build(ptbxl, out, capsys)
    assert (code, line) == (2, case.line.format(out=out, ptbxl=ptbxl))
    # nothing written, nothing deleted: not in the inputs, not among the user's files
    assert tree(ptbxl) == inputs_before
    assert tree(tmp_path) == tmp_before


def test_a_refused_build_leaves_no_folder_behind(ptbxl: Path, tmp_path: Path, capsys):
    """An input error found after ``out`` was created and locked (here: a patient in two splits)
    removes the folder again."""
    bad = tmp_path / "ptbxl"
    shutil.copytree(ptbxl, bad)
    db = bad / "ptbxl_database.csv"
    lines = db.read_text().splitlines(keepends=True)
    header = lines[0].split(",")
    pid, fold = header.index("patient_id"), header.index("strat_fold")
    rows = [line.split(",") for line in lines[1:3]]
    rows[1][pid] = rows[0][pid]
    rows[0][fold], rows[1][fold] = "1", "10"
    db.write_text(lines[0] + "".join(",".join(r) for r in rows) + "".join(lines[3:]))
    out = tmp_path / "new" / "corpus"
    code, line = run_build(bad, out, capsys)
    assert (code, line[:13]) == (2, "input error: ") and "more than one split" in line
    assert not out.exists()


def test_remove_stale_deletes_only_what_a_build_listed_or_recorded(reference: Path, tmp_path):
    """Files in a source folder that no manifest listed and no completion record names survive,
    even when they are named like shards; the listed shards and their records go."""
    out = tmp_path / "corpus"
    shutil.copytree(reference, out)
    users = {
        "data/ptbxl/mine.parquet": b"mine",
        "data/ptbxl/train-00003-of-00009.parquet": b"also mine",
    }
    for rel, data in users.items():
        (out / rel).write_bytes(data)
    (out / source_dir("ptbxl") / ".train-00000-of-00001.parquet.tmp-4242").write_bytes(b"half")
    assert remove_stale(out, set(), ["ptbxl"]) == [TEST, TRAIN, FINGERPRINTS, REJECTIONS]
    assert {rel: (out / rel).read_bytes() for rel in users} == users
    assert sorted(p.name for p in (out / source_dir("ptbxl")).iterdir()) == [
        "mine.parquet",
        "train-00003-of-00009.parquet",
    ]
    assert not (out / PROGRESS_DIR / source_dir("ptbxl")).exists()  # emptied, then removed


def test_two_builds_of_one_folder_at_once(ptbxl: Path, reference: Path, tmp_path: Path, capsys):
    """While one build holds the folder (a process that took its lock), a second one exits at once
    with one line naming the holder's pid; after the holder is gone the build runs."""
    out = tmp_path / "corpus"
    shutil.copytree(reference, out)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pipeline.progress import build_lock\n"
            f"with build_lock({str(out)!r}):\n    print('locked', flush=True); sys.stdin.read()",
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = tree(out)
        code, line = run_build(ptbxl, out, capsys)
        assert (code, line) == (
            2,
            f"input error: out {out} is being written by another build (pid {holder.pid}); "
            "wait for it to finish or give another out",
        )
        assert tree(out) == before
    finally:
        holder.communicate("", timeout=60)
    assert run_build(ptbxl, out, capsys) == (0, f"corpus written to {out}")
    assert corpus_bytes(out) == corpus_bytes(reference) and validate_corpus(out) == []


# ---------------------------------------------------------------- a disk that lies


def _flip_byte(out: Path) -> None:
    path = out / TRAIN
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(out: Path, rel: str) -> None:
    path = out / rel
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_record(out: Path, rel: str, **changes) -> None:
    path = out / "_build" / f"{rel}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _stray_temps(out: Path) -> None:
    (out / MEIT_DIR).mkdir(parents=True)
    for rel in (
        "data/ptbxl/.train-00000-of-00001.parquet.tmp-4242",
        ".manifest.json.tmp-4242",
        "meta/.rejections.parquet.tmp-17",
        "_build/data/ptbxl/.test-00000-of-00001.parquet.json.tmp-4242",
        "meta/meit/.ptbxl_train.jsonl.tmp-99",
    ):
        (out / rel).write_bytes(b"left by a killed run")
    (out / ".build.pid").write_text("999999\n")  # a killed build's


HIDDEN = ("data/ptbxl/.DS_Store", "_build/data/ptbxl/.notes", ".notes.tmp-x")
BESIDE = ("notes.txt", "ptbxl.md")


@dataclass(frozen=True)
class TrustCase:
    """Damage done to a finished corpus, and the shards a rerun must rewrite."""

    name: str
    damage: Callable[[Path], None]
    rewritten: frozenset[str]
    survives: tuple[str, ...] = ()  # user files the damage put there, left as they are


TRUST_CASES = [
    TrustCase("flipped_byte_in_a_shard", _flip_byte, frozenset({TRAIN})),
    TrustCase("truncated_shard", lambda o: _truncate(o, TEST), frozenset({TEST})),
    TrustCase("deleted_shard", lambda o: (o / TRAIN).unlink(), frozenset({TRAIN})),
    TrustCase(
        "shard_swapped_for_another",
        lambda o: shutil.copyfile(o / TEST, o / TRAIN),
        frozenset({TRAIN}),
    ),
    TrustCase(
        "truncated_completion_record",
        lambda o: _truncate(o, f"_build/{TEST}.json"),
        frozenset({TEST}),
    ),
    TrustCase(
        "record_not_an_object",
        lambda o: (o / "_build" / f"{TEST}.json").write_text("[]"),
        frozenset({TEST}),
    ),
    TrustCase(
        "record_with_another_sha256",
        lambda o: _edit_record(o, TRAIN, sha256="0" * 64),
        frozenset({TRAIN}),
    ),
    TrustCase(
        "record_with_another_size", lambda o: _edit_record(o, TEST, size=1), frozenset({TEST})
    ),
    TrustCase("record_without_a_size", lambda o: _edit_record(o, TEST, size=0), frozenset({TEST})),
    TrustCase("stray_temp_files_of_a_killed_run", _stray_temps, frozenset()),
    TrustCase(
        "hidden_user_files_in_the_corpus_folders",
        lambda o: [(o / rel).write_text("the user's\n") for rel in HIDDEN],
        frozenset(),
        HIDDEN,
    ),
    TrustCase(
        "user_files_beside_the_corpus",
        lambda o: [(o / rel).write_text("the user's\n") for rel in BESIDE],
        frozenset(),
        BESIDE,
    ),
]


@pytest.mark.parametrize("case", TRUST_CASES, ids=lambda c: c.name)
def test_a_damaged_corpus_is_repaired_by_the_next_build(
    case: TrustCase, ptbxl: Path, reference: Path, tmp_path: Path, capsys
):
    out = tmp_path / "corpus"
    shutil.copytree(reference, out)
    case.damage(out)
    inode = {rel: (out / rel).stat().st_ino for rel in (TRAIN, TEST) if (out / rel).exists()}
    assert run_build(ptbxl, out, capsys) == (0, f"corpus written to {out}")
    rewritten = {rel for rel in (TRAIN, TEST) if (out / rel).stat().st_ino != inode.get(rel)}
    assert rewritten == case.rewritten
    assert corpus_bytes(out) == corpus_bytes(reference)
    assert validate_corpus(out) == []
    assert temps(out) == []
    assert not (out / ".build.pid").exists()
    assert {rel: (out / rel).read_text() for rel in case.survives} == dict.fromkeys(
        case.survives, "the user's\n"
    )
