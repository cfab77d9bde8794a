"""Shared by the output, kill and disk-full cases: a copy of the real PTB-XL sample, its clean
build, the CLI call and what a rerun must reproduce."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main
from schemas import DATA_DIR, FINGERPRINTS, REJECTIONS, shard_path, source_dir

TRAIN = shard_path("ptbxl", "train", 0, 1)
TEST = shard_path("ptbxl", "test", 0, 1)


def build_args(ptbxl: Path, out: Path, workers: int = 1) -> list[str]:
    """``meit-corpus build`` of ``ptbxl`` into ``out``."""
    return ["build", "--ptbxl", str(ptbxl), "--out", str(out), "--workers", str(workers)]


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """Exit code and last printed line of ``meit-corpus`` (no traceback allowed)."""
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out.strip().splitlines()[-1]


def corpus_bytes(out: Path) -> dict[str, str]:
    """sha256 of the shards, the ledger and the fingerprints: what a rerun must reproduce."""
    paths = sorted(out.glob(f"{source_dir('ptbxl')}/*.parquet")) + [
        out / REJECTIONS,
        out / FINGERPRINTS,
    ]
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
    }


@pytest.fixture(scope="module")
def ptbxl(ptbxl_sample: Path, tmp_path_factory) -> Path:
    """A copy of the real PTB-XL sample (9 records: 6 train, 2 test, 1 without a data file)."""
    dst = tmp_path_factory.mktemp("inputs") / "ptbxl"
    shutil.copytree(ptbxl_sample, dst)
    return dst


@pytest.fixture(scope="module")
def reference(ptbxl: Path, tmp_path_factory) -> Path:
    """A clean build of the copy."""
    out = tmp_path_factory.mktemp("reference") / "corpus"
    assert main(build_args(ptbxl, out)) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.glob(f"{DATA_DIR}/ptbxl/*")) == [
        TEST,
        TRAIN,
    ]
    return out
