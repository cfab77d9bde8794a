"""SIGKILL a flow run in the middle of writing a shard, run it again: the corpus completes with
shards identical to an uninterrupted build; no partial file is ever visible under a shard name; and
the rerun writes only the units the killed run had not finished (their shards and completion
records keep their inode and mtime)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from pipeline.build import build_corpus
from pipeline.config import BuildConfig
from pipeline.finalise import validate_corpus
from schemas import DATA_DIR, PROGRESS_DIR, source_dir

from .conftest import add_ptbxl_records, shard_digests


def visible_shards_complete(out: Path) -> list[str]:
    """Every visible (non-hidden) shard must be a complete Parquet file; returns their names."""
    names = []
    for p in sorted(out.glob(f"{DATA_DIR}/*/*.parquet")):
        try:
            pq.read_metadata(p)
        except FileNotFoundError:  # replaced between glob and read: fine
            continue
        names.append(p.name)
    return names


def finished_units(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every unit's completion record and its shard, for the units whose
    completion record exists (a unit is done only once its record is written)."""
    stats = {}
    for record in sorted((out / PROGRESS_DIR).glob(f"{DATA_DIR}/*/*.json")):
        shard = out / record.relative_to(out / PROGRESS_DIR).as_posix().removesuffix(".json")
        for path in (record, shard):
            if path.is_file():
                st = path.stat()
                stats[path.relative_to(out).as_posix()] = (st.st_ino, st.st_mtime_ns)
    return stats


def test_sigkill_mid_write_then_rerun(prefect_server, prefect_env, procs, sample_copy, tmp_path):
    from flows.build_corpus import build_corpus_flow

    add_ptbxl_records(sample_copy, 24)
    out = tmp_path / "corpus"
    settings = {
        "ptbxl": str(sample_copy),
        "out": str(out),
        "workers": 1,
        "batch_size": 1,
        "shards_per_split": 2,
    }
    config_file = tmp_path / "build.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    env = {**prefect_env, "PREFECT_API_URL": prefect_server}
    proc = procs.start(
        "flow", [sys.executable, "-m", "flows.build_corpus", "--config", str(config_file)], env
    )
    killed_with_tmp = False
    shards = source_dir("ptbxl")
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        visible_shards_complete(out)
        done = list((out / PROGRESS_DIR / shards).glob("*.json")) if out.exists() else []
        temps = list((out / shards).glob(".*.tmp-*")) if (out / shards).exists() else []
        if temps and done:  # one shard finished, the next one is being written
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_with_tmp = True
            break
        time.sleep(0.002)
    assert killed_with_tmp, "run ended before it could be killed mid-write:\n" + procs.log("flow")
    assert list((out / shards).glob(".*.tmp-*")), "expected the killed writer's hidden temp file"
    assert not (out / "manifest.json").exists()
    visible_shards_complete(out)

    done_before_kill = finished_units(out)
    done_shards = {p for p in done_before_kill if not p.startswith(f"{PROGRESS_DIR}/")}
    assert done_shards, "no unit had finished before the kill"

    cfg = BuildConfig.model_validate(settings)
    summary = build_corpus_flow(cfg)
    assert validate_corpus(out) == []
    # The rerun wrote exactly the units the killed run had not finished, and left the others alone.
    assert set(summary["written"]) == set(summary["files"]) - done_shards
    after = finished_units(out)
    assert {p: after.get(p) for p in done_before_kill} == done_before_kill
    assert not list(out.rglob(".*.tmp-*")), "temp files must be cleaned at finalise"
    reference = tmp_path / "reference"
    build_corpus(cfg.model_copy(update={"out": reference}))
    assert shard_digests(out) == shard_digests(reference)
