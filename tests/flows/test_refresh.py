"""Incremental refresh on a copy of the real PTB-XL sample: add, change and remove records."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.build import build
from pipeline.config import BuildConfig
from pipeline.finalise import validate_corpus
from pipeline.plan import diff_fingerprints, discover, input_fingerprints
from pipeline.sources import registry
from schemas import FINGERPRINTS, read_manifest
from tests.pipeline.test_plan import edit_database, published_of

SHARDS = 4


def config(root: Path, out: Path) -> BuildConfig:
    return BuildConfig(ptbxl=root, out=out, workers=1, shards_per_split=SHARDS)


def remove_record(root: Path, ecg_id: str) -> None:
    edit_database(root, lambda rows: [r for r in rows if r["ecg_id"] != ecg_id])


def test_fingerprints_cover_header_data_and_metadata(sample_copy):

    cfg = config(sample_copy, sample_copy.parent / "out")
    before = input_fingerprints(discover(cfg, registry()))
    dat = sample_copy / "records500/06000/06001_hr.dat"
    data = bytearray(dat.read_bytes())
    data[100] ^= 1
    dat.write_bytes(bytes(data))
    after_data = input_fingerprints(discover(cfg, registry()))
    assert diff_fingerprints(before, after_data).changed == ("ptbxl/6001",)
    hea = sample_copy / "records500/06000/06002_hr.hea"
    hea.write_text(hea.read_text() + "# comment\n")
    db = sample_copy / "ptbxl_database.csv"
    text = db.read_text()
    db.write_text(text.replace("sinus rhythm. normal ecg.", "sinus rhythm. normal ECG.", 1))
    changes = diff_fingerprints(after_data, input_fingerprints(discover(cfg, registry())))
    assert changes.changed == ("ptbxl/6002", "ptbxl/6004") and not changes.added


def test_refresh_rewrites_only_affected_shards(sample_copy, add_records, digests, state, tmp_path):
    out = tmp_path / "corpus"
    cfg = config(sample_copy, out)
    first = build(cfg, "full")
    assert validate_corpus(out) == [] and first.manifest.fingerprints.path == FINGERPRINTS
    base, before = digests(out), published_of(out)

    # No change: a refresh writes nothing at all.
    frozen = state(out)
    noop = build(cfg, "refresh")
    assert noop.manifest is None and noop.written == [] and state(out) == frozen

    # Add records, change one, remove one.
    added = add_records(sample_copy, 6)
    dat = sample_copy / "records500/06000/06005_hr.dat"
    data = bytearray(dat.read_bytes())
    data[2000] ^= 4
    dat.write_bytes(bytes(data))
    remove_record(sample_copy, "6007")
    outcome = build(cfg, "refresh")
    after = digests(out)
    after_state = state(out)
    plan = outcome.plan
    assert plan.changes.added == tuple(sorted(f"ptbxl/{i}" for i in added))
    assert plan.changes.changed == ("ptbxl/6005",)
    assert plan.changes.removed == ("ptbxl/6007",)
    touched = {u.relpath for u in plan.todo} | set(plan.stale_shards)
    members = {f"ptbxl/{r['record_id']}": u.relpath for u in plan.units for r in u.records}
    expected = {members[i] for i in (*plan.changes.added, "ptbxl/6005")}
    assert {u.relpath for u in plan.todo} == expected
    now = published_of(out)
    redone = {*plan.changes.removed, *(i for i, path in members.items() if path in expected)}
    for rid, path in before.items():  # untouched shards keep their bytes and checksums ...
        if rid not in redone:
            assert after[now[rid]] == base[path], rid
            # ... and were not rewritten at all (same inode and mtime; renamed when an empty
            # bucket's gap was closed)
            assert after_state[now[rid]] == frozen[path], rid
    assert touched, "the change touched no shard"
    assert len(touched) < len(set(base) | set(after)), "everything was rewritten"
    manifest = read_manifest(out)
    last = manifest.refreshes[-1]
    assert (last.mode, last.added, last.changed, last.removed) == ("refresh", 6, 1, 1)
    assert last.changed_ids == ["ptbxl/6005"] and last.removed_ids == ["ptbxl/6007"]
    redone_kept = [i for i in (*plan.changes.added, "ptbxl/6005") if i in now]
    assert redone_kept and set(last.written) == {now[i] for i in redone_kept}
    assert len(manifest.refreshes) == 2 and validate_corpus(out) == []
    kept = {f.path: f.sha256 for f in manifest.files}
    assert kept == {p: d for p, d in after.items()}

    # A full rebuild from scratch of the same inputs gives identical shards.
    fresh = tmp_path / "fresh"
    build(config(sample_copy, fresh), "full")
    assert digests(fresh) == after


def test_refresh_without_fixed_buckets_still_correct(sample_copy, add_records, digests, tmp_path):
    """Default shard count (records_per_shard): a refresh that crosses a shard-count boundary
    renumbers that split's shards, and the result still equals a full build."""
    out = tmp_path / "corpus"
    cfg = BuildConfig(ptbxl=sample_copy, out=out, workers=1, records_per_shard=4)
    build(cfg, "full")
    add_records(sample_copy, 3)
    build(cfg, "refresh")
    fresh = tmp_path / "fresh"
    build(cfg.model_copy(update={"out": fresh}), "full")
    assert digests(out) == digests(fresh) and validate_corpus(out) == []
    shutil.rmtree(fresh)
