"""The build's fingerprint / plan / resume / refresh logic (pipeline/plan.py,
pipeline/fingerprints.py, pipeline/build.py), without Prefect.

Fingerprints are pinned by golden values (a change re-keys every unit, so a refresh over an older
corpus would rewrite it all); plans are checked against corpora built from the real PTB-XL sample;
refreshes are proven by what they record and by the files they did not touch.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import pickle
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import fingerprints as fingerprinting
from pipeline.build import build
from pipeline.config import BuildConfig
from pipeline.finalise import finalise, validate_corpus
from pipeline.fingerprints import (
    Changes,
    diff_fingerprints,
    fingerprint_rows,
    fingerprint_table,
    input_fingerprints,
    read_fingerprints,
    record_fingerprint,
    rejection_fingerprint,
)
from pipeline.plan import Plan, discover, make_plan, previous_manifest
from pipeline.sources import registry
from pipeline.sources.mimic import MIMIC
from pipeline.sources.ptbxl import PTBXL
from pipeline.units import SourceInput
from schemas import (
    DATA_DIR,
    FINGERPRINTS,
    MANIFEST,
    PROGRESS_DIR,
    RefreshRecord,
    Rejection,
    SplitAudit,
    parse_shard_path,
    read_manifest,
)

SHARDS = 16  # most of the sample's records then sit alone in their shard


class CountingExecutor(ThreadPoolExecutor):
    """A one-thread executor that counts what it was given (proves a pool was used)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.maps = 0
        self.submits = 0

    def map(self, *args, **kwargs):
        self.maps += 1
        return super().map(*args, **kwargs)

    def submit(self, *args, **kwargs):
        self.submits += 1
        return super().submit(*args, **kwargs)


def config(root: Path, out: Path, **extra) -> BuildConfig:
    return BuildConfig(ptbxl=root, out=out, workers=1, shards_per_split=SHARDS, **extra)


def tree_state(corpus: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``corpus``: (inode, mtime_ns, sha256); any write changes it."""
    return {
        p.relative_to(corpus).as_posix(): (
            p.stat().st_ino,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(corpus.rglob("*"))
        if p.is_file()
    }


def edit_database(root: Path, edit) -> None:
    """Rewrite ``ptbxl_database.csv`` with ``edit(rows) -> rows``."""
    db = root / "ptbxl_database.csv"
    with open(db, newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])
    with open(db, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(edit(rows))


def shard_of(plan: Plan) -> dict[str, str]:
    """Row id -> the shard its unit writes (its bucket's name)."""
    return {f"{u.name}/{r['record_id']}": u.relpath for u in plan.units for r in u.records}


def published_of(corpus: Path) -> dict[str, str]:
    """Row id -> the shard that holds it, as published (buckets closed up: no gaps)."""
    return {
        rid: f.path
        for f in read_manifest(corpus).files
        for rid in pl.read_parquet(corpus / f.path, columns=["id"])["id"]
    }


@pytest.fixture(scope="module")
def built(ptbxl_sample, tmp_path_factory) -> tuple[BuildConfig, Plan]:
    """The real sample built once (read only: tests copy the corpus, never the inputs, since the
    input folder is part of the config hash), with the plan that built it."""
    tmp = tmp_path_factory.mktemp("built")
    shutil.copytree(ptbxl_sample, tmp / "ptbxl")
    cfg = config(tmp / "ptbxl", tmp / "corpus")
    outcome = build(cfg, "full")
    return cfg, outcome.plan


@pytest.fixture
def corpus_copy(built, tmp_path) -> BuildConfig:
    """The config of a private copy of the built corpus (same inputs, so the same unit keys)."""
    cfg, _ = built
    shutil.copytree(cfg.out, tmp_path / "corpus")
    return cfg.model_copy(update={"out": tmp_path / "corpus"})


# ---------------------------------------------------------------- fingerprints

ROW = {
    "record_id": "6001",
    "patient_id": "5028",
    "path": "records500/06000/06001_hr",
    "report": "sinus rhythm. normal ecg.",
    "strat_fold": 3,
}

# Golden fingerprints: update only on purpose, with the reason in the commit message (a change
# re-keys every unit, so the first refresh after it rewrites every shard of every corpus).
GOLDEN_FINGERPRINTS = {
    "real record": "24f4b96b54088b4790629f839f81af0f",
    # A record that open_record rejects hashes its rejection (issue 11: bounded, checked reads).
    "no path": "f8f341256acf0b880339d7a130746fd5",
    "empty path": "1e8b635870f768ace6c77d91307dfcdf",
    "path outside the root": "a2b61b6b8492c1f9966dde640eef6773",
    "no header": "394fd1cce14274b098554e48d057c218",
    "data file missing": "578f8032d6c361c7fff64498f5a5fe78",
}
GOLDEN_REJECTION = "b10b4654f5fdde7b613ce7d5f7ebb3356a7b25ae2a248ffe9b6da659341c5bfd"


def fingerprint_cases(root: Path) -> dict[str, str]:
    return {
        "real record": record_fingerprint(root, ROW),
        "no path": record_fingerprint(root, {k: v for k, v in ROW.items() if k != "path"}),
        "empty path": record_fingerprint(root, {**ROW, "path": ""}),
        "path outside the root": record_fingerprint(root, {**ROW, "path": "../06000/06001_hr"}),
        "no header": record_fingerprint(root, {**ROW, "path": "records500/06000/06003_hr"}),
        "data file missing": record_fingerprint(root, {**ROW, "path": "records500/06000/06009_hr"}),
    }


@pytest.fixture
def one_record(ptbxl_sample, tmp_path) -> Path:
    """A dataset root holding the real record 06001 and a copy of its header alone (06009)."""
    folder = tmp_path / "root" / "records500" / "06000"
    folder.mkdir(parents=True)
    for suffix in (".hea", ".dat"):
        shutil.copyfile(
            ptbxl_sample / f"records500/06000/06001_hr{suffix}", folder / f"06001_hr{suffix}"
        )
    header = (folder / "06001_hr.hea").read_text().replace("06001_hr", "06009_hr")
    (folder / "06009_hr.hea").write_text(header)
    return tmp_path / "root"


def test_golden_record_fingerprints(one_record):
    assert fingerprint_cases(one_record) == GOLDEN_FINGERPRINTS
    assert rejection_fingerprint("ptbxl", "6003", "no_split", "fold 0") == GOLDEN_REJECTION


def test_fingerprint_covers_metadata_header_and_every_data_file(tmp_path):
    """A two-file record (a header naming two signal files, a non-UTF-8 byte in a comment)."""
    root = tmp_path / "root"
    root.mkdir()
    header = (
        b"rec 2 500 4\nrec_a.dat 16 200 16 0 0 0 0 I\nrec_b.dat 16 200 16 0 0 0 0 II\n"
        b"# Befund: \xe4\n"
    )
    (root / "rec.hea").write_bytes(header)
    (root / "rec_a.dat").write_bytes(bytes(range(8)))
    (root / "rec_b.dat").write_bytes(bytes(range(8, 16)))
    row = {"record_id": "r", "path": "rec", "time": datetime.datetime(2180, 1, 1, 8, 0)}
    base = record_fingerprint(root, row)

    # Key order and private (underscore) columns do not count; every metadata value does.
    assert record_fingerprint(root, dict(reversed(row.items()))) == base
    assert record_fingerprint(root, {**row, "_key": 7, "_shard": "x"}) == base
    later = {**row, "time": datetime.datetime(2180, 1, 1, 8, 1)}
    assert record_fingerprint(root, later) != base
    assert record_fingerprint(root, {**row, "record_id": "s"}) != base

    seen = {base}
    for name, edit in [
        ("rec.hea", lambda b: b.replace(b"\xe4", b"\xe5")),
        ("rec_a.dat", lambda b: b[:-1] + b"\xff"),
        ("rec_b.dat", lambda b: b"\x00" + b[1:]),
    ]:
        original = (root / name).read_bytes()
        (root / name).write_bytes(edit(original))
        changed = record_fingerprint(root, row)
        assert changed not in seen, name
        seen.add(changed)
        (root / name).write_bytes(original)
    assert record_fingerprint(root, row) == base
    # Swapping the two data files' contents changes it too (file names are hashed).
    a, b = (root / "rec_a.dat").read_bytes(), (root / "rec_b.dat").read_bytes()
    (root / "rec_a.dat").write_bytes(b)
    (root / "rec_b.dat").write_bytes(a)
    assert record_fingerprint(root, row) not in seen


def test_rejection_fingerprint_depends_on_every_field():
    base = ("ptbxl", "6003", "no_split", "fold 0")
    prints = {rejection_fingerprint(*base)}
    for i, other in enumerate(("mimic", "6004", "missing_file", "fold 11")):
        prints.add(rejection_fingerprint(*base[:i], other, *base[i + 1 :]))
    assert len(prints) == 5


def test_input_fingerprints_cover_every_record_and_rejection(one_record):
    """More rows than one fingerprinting chunk, two sources (one with a real record under its
    root), metadata rejections; the same mapping with or without a pool, and the pool does the
    hashing when it is given."""
    rows = pl.DataFrame(
        {
            "record_id": [str(i) for i in range(1234)],
            "path": [None] * 1234,
            "report": [f"report {i}" for i in range(1234)],
        }
    )
    real = pl.DataFrame([ROW, {**ROW, "record_id": "6009", "path": "records500/06000/06009_hr"}])
    audit = SplitAudit(patients={}, leaking_patients=0)
    rejected = (Rejection("mimic", "77", "missing_file", "no record path"),)
    sources = [
        SourceInput(PTBXL, "/nowhere", rows, (), audit, 1234),
        SourceInput(MIMIC, str(one_record), real, rejected, audit, 3),
    ]
    expected = {
        f"ptbxl/{r['record_id']}": record_fingerprint("/nowhere", r) for r in rows.to_dicts()
    }
    expected["mimic/6001"] = GOLDEN_FINGERPRINTS["real record"]
    expected["mimic/6009"] = record_fingerprint(one_record, real.to_dicts()[1])
    expected["mimic/77"] = rejection_fingerprint("mimic", "77", "missing_file", "no record path")
    serial = input_fingerprints(sources)
    assert serial == expected and list(serial) == sorted(expected)
    with CountingExecutor() as pool:
        assert input_fingerprints(sources, pool) == expected
    assert pool.maps == 1 and pool.submits == 3 + 1  # 1234 rows in chunks of 500, 2 rows


def test_fingerprint_chunks_travel_small_and_a_wave_at_a_time(monkeypatch):
    """A worker is sent its own chunk's rows, not its frame (a slice of a list column pickles its
    parent's buffers: 500 of 800k MIMIC records were ~130 MB on the wire), and the executor is
    given a wave of chunks at a time, so the rows queued stay bounded."""
    n = 5000
    rows = pl.DataFrame(
        {
            "record_id": [str(i) for i in range(n)],
            "path": [None] * n,
            "statements": [[f"statement {i} of a longer report", "another"] for i in range(n)],
        }
    )
    audit = SplitAudit(patients={}, leaking_patients=0)
    source = SourceInput(MIMIC, "/nowhere", rows, (), audit, n)
    sizes = [len(pickle.dumps(c)) for c in fingerprinting.fingerprint_chunks([source], "auto")]
    assert len(sizes) == 10 and max(sizes) < len(pickle.dumps(rows)) / 5
    monkeypatch.setattr(fingerprinting, "FINGERPRINT_WAVE", 3)
    with CountingExecutor() as pool:
        assert len(input_fingerprints([source], pool)) == n
    assert pool.maps == 4  # 10 chunks in waves of 3: 3 + 3 + 3 + 1


def test_fingerprint_table_is_sorted_and_typed():
    table = fingerprint_table({"ptbxl/2": "b", "mimic/9": "c", "ptbxl/10": "a"})
    assert table.schema.names == ["id", "fingerprint"]
    assert [str(t) for t in table.schema.types] == ["string", "string"]
    assert table.to_pydict() == {
        "id": ["mimic/9", "ptbxl/10", "ptbxl/2"],
        "fingerprint": ["c", "a", "b"],
    }
    empty = fingerprint_table({})  # a build that saw no record: still two string columns
    assert empty.num_rows == 0 and empty.schema == table.schema


# ---------------------------------------------------------------- diff and plan

prints = st.dictionaries(st.sampled_from("abcdefgh"), st.sampled_from("xyz"), max_size=8)


@settings(max_examples=80, deadline=None)
@given(old=prints, new=prints)
def test_diff_sorts_every_id_into_exactly_one_kind(old, new):
    changes = diff_fingerprints(old, new)
    unchanged = {k for k in new if k in old and old[k] == new[k]}
    kinds = [set(changes.added), set(changes.changed), set(changes.removed), unchanged]
    assert sum(len(k) for k in kinds) == len(set(old) | set(new))
    assert set().union(*kinds) == set(old) | set(new)
    assert set(changes.added) <= set(new) - set(old)
    assert set(changes.removed) <= set(old) - set(new)
    assert all(old[k] != new[k] for k in changes.changed)
    for ids in (changes.added, changes.changed, changes.removed):
        assert isinstance(ids, tuple) and list(ids) == sorted(ids)
    assert changes.any == (old != new)
    assert diff_fingerprints(None, new) == Changes(added=tuple(sorted(new)))


def quiet_plan(**update) -> Plan:
    """A plan over an existing corpus with nothing to do, with ``update`` applied."""
    plan = Plan(
        sources=[],
        units=[],
        todo=[],
        done=[],
        changes=Changes(),
        fingerprints={},
        config_changed=False,
        stale_shards=[],
        has_previous=True,
    )
    return dataclasses.replace(plan, **update)


def test_nothing_to_do_needs_every_condition():
    assert quiet_plan().nothing_to_do
    for update in [
        {"has_previous": False},
        {"todo": ["unit"]},
        {"stale_shards": ["data/ptbxl/train-00000-of-00002.parquet"]},
        {"changes": Changes(added=("ptbxl/1",))},
        {"changes": Changes(changed=("ptbxl/1",))},
        {"changes": Changes(removed=("ptbxl/1",))},
        {"config_changed": True},
    ]:
        assert not quiet_plan(**update).nothing_to_do, update


def test_plan_of_a_new_and_of_an_unchanged_corpus(built, tmp_path, monkeypatch):
    cfg, first = built
    sources = discover(cfg, registry())
    fresh = make_plan(cfg.model_copy(update={"out": tmp_path / "new"}), sources)
    assert not fresh.has_previous and fresh.config_changed and not fresh.nothing_to_do
    assert fresh.todo == fresh.units and fresh.done == [] and len(fresh.units) == 8
    assert fresh.changes == Changes(added=tuple(sorted(fresh.fingerprints)))
    assert (fresh.stale_shards, fresh.previous_shards, fresh.history) == ([], [], [])
    assert fresh.units == first.units and fresh.fingerprints == first.fingerprints

    manifest = read_manifest(cfg.out)
    hashed = []
    monkeypatch.setattr(
        fingerprinting,
        "fingerprint_rows",
        lambda root, rows, *mode: hashed.extend(rows) or fingerprint_rows(root, rows, *mode),
    )
    with CountingExecutor() as pool:
        again = make_plan(cfg, sources, pool)
    assert pool.maps == 1  # the inputs were fingerprinted on the given pool ...
    assert len(hashed) == 9  # ... once: every input byte is read once per plan
    assert again.nothing_to_do and again.has_previous and not again.config_changed
    assert again.todo == [] and [r.key for r in again.done] == [u.key for u in again.units]
    assert {r.path for r in again.done if r.rows} == {f.path for f in manifest.files}
    assert again.changes == Changes() and again.stale_shards == []
    assert again.previous_shards == sorted(f.path for f in manifest.files)
    assert again.history == manifest.refreshes and len(again.history) == 1
    assert again.fingerprints == read_fingerprints(cfg.out, manifest)


def test_plan_sees_config_changes_stale_shards_and_lost_work(corpus_copy):
    cfg = corpus_copy
    sources = discover(cfg, registry())
    old = sorted(f.path for f in read_manifest(cfg.out).files)

    fewer = make_plan(cfg.model_copy(update={"shards_per_split": 2}), sources)
    assert fewer.config_changed and fewer.todo == fewer.units and fewer.done == []
    planned = {u.relpath for u in fewer.units}
    assert fewer.stale_shards == [p for p in old if p not in planned] and fewer.stale_shards
    assert fewer.previous_shards == old and not fewer.changes.any

    batched = make_plan(cfg.model_copy(update={"batch_size": 8}), sources)
    assert batched.config_changed and not batched.nothing_to_do
    # The same buckets give the same names, closed up to no gaps; only in train, where ecg_id 1's
    # unit keeps no row (its worker rejects it: no 500 Hz file), the plan cannot foresee them.
    assert {parse_shard_path(p).split for p in batched.stale_shards} == {"train"}

    # A lost completion record: that unit is redone, every other one is kept.
    units = make_plan(cfg, sources).units
    lost = units[3]
    (cfg.out / PROGRESS_DIR / f"{lost.relpath}.json").unlink()
    plan = make_plan(cfg, sources)
    assert plan.todo == [lost] and [r.key for r in plan.done] == [u.key for u in units if u != lost]
    assert not plan.nothing_to_do and not plan.changes.any and not plan.config_changed

    # Damaged fingerprints: every record counts as added (the plan cannot tell what changed).
    table = cfg.out / FINGERPRINTS
    table.write_bytes(table.read_bytes()[:-1] + b"\0")
    assert make_plan(cfg, sources).changes.added == tuple(sorted(plan.fingerprints))


def test_previous_state_is_none_when_missing_or_damaged(corpus_copy, tmp_path):
    out = corpus_copy.out
    manifest = previous_manifest(out)
    assert manifest == read_manifest(out)
    stored = read_fingerprints(out, manifest)
    assert stored is not None and len(stored) == 9
    assert read_fingerprints(out, None) is None
    assert read_fingerprints(out, manifest.model_copy(update={"fingerprints": None})) is None
    (out / FINGERPRINTS).write_bytes((out / FINGERPRINTS).read_bytes() + b"\0")
    assert read_fingerprints(out, manifest) is None  # checksum mismatch
    (out / FINGERPRINTS).unlink()
    assert read_fingerprints(out, manifest) is None
    (out / FINGERPRINTS).mkdir()
    assert read_fingerprints(out, manifest) is None  # not a file

    assert previous_manifest(tmp_path / "nowhere") is None
    (out / MANIFEST).write_text("{not json")
    assert previous_manifest(out) is None
    (out / MANIFEST).write_text('{"schema_version": "1"}')
    assert previous_manifest(out) is None


# ---------------------------------------------------------------- refresh


def test_refresh_records_what_it_changed(ptbxl_sample, tmp_path):
    """Change one record's report, empty another's (its shard loses its only row),
    remove a third; the refresh rewrites exactly their shards, records it, and keeps the rest."""
    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_sample, root)
    cfg = config(root, tmp_path / "corpus")
    built_first = build(cfg, "full")
    first, first_record = built_first.plan, built_first.manifest.refreshes[0]
    assert first_record.sequence == 1 and first_record.added == 9
    shards = shard_of(first)
    alone = sorted(r for r, s in shards.items() if list(shards.values()).count(s) == 1)
    changed, emptied, removed = "ptbxl/6005", "ptbxl/6006", "ptbxl/6007"
    assert {changed, emptied, removed} <= set(alone)
    before, published = tree_state(cfg.out), published_of(cfg.out)

    reports = {"6005": "sinus rhythm. no change since the last ecg.", "6006": ""}
    edit_database(
        root,
        lambda rows: [
            {**r, "report": reports.get(r["ecg_id"], r["report"])}
            for r in rows
            if r["ecg_id"] != "6007"
        ],
    )
    planned, done = [], []
    with CountingExecutor() as pool:
        outcome = build(cfg, "refresh", executor=pool, on_done=done.append, on_plan=planned.append)
    assert pool.submits == 1 + 2  # fingerprints (one chunk), then the two redone units
    assert planned == [2] and sorted(r.path for r in done) == sorted(
        [shards[changed], shards[emptied]]
    )
    now = published_of(cfg.out)
    assert outcome.written == [now[changed]]
    assert emptied not in now and removed not in now
    record = outcome.manifest.refreshes[-1]
    assert record == RefreshRecord(
        sequence=2,
        mode="refresh",
        config_changed=False,
        changed=2,
        removed=1,
        changed_ids=[changed, emptied],
        removed_ids=[removed],
        written=[now[changed]],
        # the emptied and removed records' shards, and names given up by closing the gaps
        removed_shards=sorted(set(published.values()) - set(now.values())),
    )
    assert read_manifest(cfg.out) == outcome.manifest and validate_corpus(cfg.out) == []
    assert outcome.manifest.refreshes == [first_record, record]
    assert read_fingerprints(cfg.out, outcome.manifest) == outcome.plan.fingerprints
    after = tree_state(cfg.out)
    for rid, path in published.items():
        if rid not in (changed, emptied, removed):  # not rewritten: same inode, mtime and bytes
            assert after[now[rid]] == before[path], rid  # (perhaps renamed: no gap)


def test_unchanged_refresh_writes_nothing_and_full_finalises(corpus_copy):
    cfg = corpus_copy
    before = tree_state(cfg.out)
    calls = []
    noop = build(cfg, "refresh", on_done=calls.append, on_plan=calls.append)
    assert noop.manifest is None and noop.written == [] and noop.plan.nothing_to_do
    assert calls == [] and tree_state(cfg.out) == before

    with CountingExecutor() as pool:
        full = build(cfg, executor=pool, mode="full", on_plan=calls.append)
    assert pool.maps == 1 and pool.submits == 1  # fingerprints only: every unit was done
    assert calls == [0] and full.written == []
    assert full.manifest.refreshes[-1] == RefreshRecord(sequence=2, mode="full")
    assert read_fingerprints(cfg.out, full.manifest) == full.plan.fingerprints
    assert [(f.path, f.sha256) for f in full.manifest.files] == [
        (f.path, f.sha256) for f in read_manifest(cfg.out).files
    ]
    shards = {p: s for p, s in before.items() if p.startswith(f"{DATA_DIR}/")}
    assert {p: tree_state(cfg.out)[p] for p in shards} == shards


def test_refresh_history_keeps_at_most_id_limit_ids(corpus_copy):
    """The counts are exact; each id list keeps its first ``RefreshRecord.ID_LIMIT`` ids."""
    cfg = corpus_copy
    sources = discover(cfg, registry())
    limit = RefreshRecord.ID_LIMIT
    ids = [f"mimic/{40000000 + i}" for i in range(limit + 5)]
    plan = dataclasses.replace(
        make_plan(cfg, sources),
        changes=Changes(added=tuple(ids), changed=tuple(ids[:-2]), removed=tuple(ids[:3])),
        config_changed=True,
    )
    manifest = finalise(cfg, plan, [], "refresh")
    record = manifest.refreshes[-1]
    assert (record.sequence, record.mode, record.config_changed) == (2, "refresh", True)
    assert (record.added, record.changed, record.removed) == (limit + 5, limit + 3, 3)
    assert record.added_ids == ids[:limit] and record.changed_ids == ids[:limit]
    assert record.removed_ids == ids[:3]
    assert manifest.refreshes[:-1] == plan.history


def test_refresh_needs_an_input(tmp_path):
    with pytest.raises(ValueError) as err:
        build(BuildConfig(out=tmp_path / "corpus"), "refresh")
    assert str(err.value) == "no input: give a PTB-XL and/or a MIMIC-IV-ECG folder"


def test_one_local_pool_hashes_the_inputs_and_runs_the_units(built, tmp_path, monkeypatch):
    """Without an executor, a build with several workers starts one local pool, fingerprints
    on it and processes every unit on it (a stand-in pool records what it was given)."""
    import pipeline.build

    cfg, first = built
    started = []

    @contextmanager
    def one_pool(config):
        started.append(config)
        with CountingExecutor() as pool:
            started.append(pool)
            yield pool

    monkeypatch.setattr(pipeline.build, "local_executor", one_pool)
    new = cfg.model_copy(update={"out": tmp_path / "new", "workers": 2})
    outcome = build(new, "full")
    assert started[0] == new and len(started) == 2  # one pool, started once
    pool = started[1]
    assert pool.maps == 1 and pool.submits == 1 + len(first.units)  # fingerprints, then units
    assert sorted(outcome.written) == sorted(f.path for f in read_manifest(cfg.out).files)
    assert [u.key for u in outcome.plan.todo] == [u.key for u in first.units]


def test_unit_keys_come_from_the_cache_only_for_unchanged_units(
    ptbxl_sample, tmp_path, monkeypatch
):
    """A second plan takes every unit key from the last plan's cache (no rows to dicts, no JSON)
    and gets the same keys; a record whose metadata changed gets its unit's key computed again,
    equal to a plan without any cache."""
    import pipeline.plan as planning

    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_sample, root)
    cfg = BuildConfig(ptbxl=root, out=tmp_path / "corpus", workers=1, shards_per_split=4)
    first = make_plan(cfg, discover(cfg, registry()))
    computed = []
    real = planning.unit_key
    monkeypatch.setattr(planning, "unit_key", lambda *a: computed.append(a[3]) or real(*a))
    again = make_plan(cfg, discover(cfg, registry()))
    assert computed == [] and [u.key for u in again.units] == [u.key for u in first.units]
    db = root / "ptbxl_database.csv"
    db.write_text(db.read_text().replace("sinus rhythm", "sinus rhythm.", 1))
    changed = make_plan(cfg, discover(cfg, registry()))
    assert len(computed) == 1
    (cfg.out / planning.KEY_CACHE).unlink()
    fresh = make_plan(cfg, discover(cfg, registry()))
    assert [u.key for u in changed.units] == [u.key for u in fresh.units]
    assert len({u.key for u in changed.units} - {u.key for u in first.units}) == 1
