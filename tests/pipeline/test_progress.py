"""Completion records: a rerun reuses a finished unit only when its shard's size and sha256 are
the recorded ones, every shard checked (on a thread pool) whatever the others hold."""

from __future__ import annotations

from pathlib import Path

from pipeline.build import build_corpus
from pipeline.config import BuildConfig
from pipeline.demo import write_demo
from pipeline.plan import discover, make_plan
from pipeline.progress import finished_result, finished_results
from pipeline.sources import registry


def test_a_rerun_checks_every_finished_shard_in_parallel(tmp_path: Path):
    """A demo corpus of several shards; one shard altered in place (same size, one byte
    flipped), one truncated: exactly those two units are not reused, in the units' order, and
    the parallel check agrees unit by unit with the one-at-a-time check."""
    demo = write_demo(tmp_path / "inputs", n_ptbxl=12, n_mimic=8)
    cfg = BuildConfig(
        ptbxl=demo.ptbxl, mimic=demo.mimic, out=tmp_path / "corpus", workers=1, records_per_shard=2
    )
    build_corpus(cfg)
    units = make_plan(cfg, discover(cfg, registry()), None).units
    results = finished_results(cfg.out, units, threads=4)
    assert len(units) >= 6 and all(r is not None for r in results)
    flipped, truncated = results[1], results[-2]
    data = bytearray((cfg.out / flipped.path).read_bytes())
    data[len(data) // 2] ^= 0x01
    (cfg.out / flipped.path).write_bytes(bytes(data))
    with open(cfg.out / truncated.path, "r+b") as f:
        f.truncate(truncated.size - 1)
    again = finished_results(cfg.out, units, threads=4)
    assert [r is None for r in again] == [r in (flipped, truncated) for r in results]
    assert again == [finished_result(cfg.out, u) for u in units]
