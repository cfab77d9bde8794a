"""Adversarial corpora: each kind of manifest, shard or ledger tampering fails ``validate``.

One corpus per module is built from the real PTB-XL sample and its MIMIC-layout re-encoding
(two examples per record, MEIT jsonl, z-scored). Each case tampers with a copy (rewriting a
shard also rewrites its sha256 and row count in the manifest, so only the semantic check can
catch it) and asserts the exact problem lines, and that ``meit-corpus validate`` exits 1 printing
them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.build import build_corpus
from pipeline.cli import main
from pipeline.config import BuildConfig, config_hash
from pipeline.validate import validate_corpus
from schemas import FINGERPRINTS, REJECTIONS, parse_shard_path, sha256_file
from tests.pipeline.test_corpus import write_mimic_from_ptbxl

PTB_TRAIN = "data/ptbxl/train-00000-of-00001.parquet"
PTB_TEST = "data/ptbxl/test-00000-of-00001.parquet"
MIMIC_TRAIN = "data/mimic/train-00000-of-00001.parquet"
MIMIC_VALIDATION = "data/mimic/validation-00000-of-00001.parquet"
SHARDS = [MIMIC_TRAIN, MIMIC_VALIDATION, PTB_TEST, PTB_TRAIN]
LEADS = "I II III aVR aVL aVF V1 V2 V3 V4 V5 V6"


@pytest.fixture(scope="module")
def built(ptbxl_sample: Path, tmp_path_factory) -> Path:
    """The real sample, built once: 8 + 8 records kept, PTB-XL ecg_id 1 rejected."""
    tmp = tmp_path_factory.mktemp("validate")
    write_mimic_from_ptbxl(ptbxl_sample, tmp / "mimic")
    cfg = BuildConfig(
        ptbxl=ptbxl_sample,
        mimic=tmp / "mimic",
        out=tmp / "corpus",
        workers=1,
        signal={"normalise": "zscore"},
        text={"examples_per_record": 2, "meit_jsonl": True},
    )
    build_corpus(cfg)
    assert validate_corpus(tmp / "corpus") == []
    return tmp / "corpus"


# ---------------------------------------------------------------- tampering helpers


def manifest(corpus: Path) -> dict:
    return json.loads((corpus / "manifest.json").read_text())


def save(corpus: Path, m: dict) -> None:
    (corpus / "manifest.json").write_text(json.dumps(m, indent=2))


def edit(corpus: Path, change: Callable[[dict], None], rehash: bool = False) -> None:
    """Change the manifest; ``rehash``: also put the hash of its (changed) config in it."""
    m = manifest(corpus)
    change(m)
    if rehash:
        m["config_hash"] = config_hash(m["config"])
    save(corpus, m)


def entry(m: dict, path: str) -> dict:
    return next(f for f in [*m["files"], *m["extra_files"], m["rejections"]] if f["path"] == path)


def rewrite(corpus: Path, path: str, change: Callable[[pa.Table], pa.Table]) -> None:
    """Rewrite a Parquet file through ``change`` and list its new sha256 and rows (and records
    for a shard) in the manifest, as a careful tamperer would."""
    table = change(pq.read_table(corpus / path))
    pq.write_table(table, corpus / path)
    m = manifest(corpus)
    e = entry(m, path)
    e.update(sha256=sha256_file(corpus / path), rows=table.num_rows)
    if e.get("records") is not None:
        e["records"] = len(set(table.column("record_id").to_pylist()))
    save(corpus, m)


def set_column(table: pa.Table, name: str, change: Callable[[dict], object]) -> pa.Table:
    """``table`` with column ``name`` replaced row by row (``change`` gets the row as a dict)."""
    rows = table.select(["id", "record_id", name]).to_pylist()
    i = table.schema.get_field_index(name)
    values = pa.array([change(r) for r in rows], table.schema.field(name).type)
    return table.set_column(i, table.schema.field(name), values)


def split_of(ids: set[str], split: str) -> Callable[[pa.Table], pa.Table]:
    return lambda t: set_column(t, "split", lambda r: split if r["id"] in ids else r["split"])


def rows_of(table: pa.Table, record: str) -> pa.Table:
    return table.filter(pc.equal(table.column("record_id"), record))


def move_record(corpus: Path, record: str, src: str, dst: str, split: str) -> None:
    """Move a record's rows from shard ``src`` to shard ``dst`` (relabelled ``split``) and fix
    every count the manifest holds: only the split rule can tell."""
    moved = rows_of(pq.read_table(corpus / src), record)
    moved = set_column(moved, "split", lambda r: split)
    rewrite(corpus, src, lambda t: t.filter(pc.not_equal(t.column("record_id"), record)))
    rewrite(corpus, dst, lambda t: pa.concat_tables([t, moved]))
    m = manifest(corpus)
    ref = parse_shard_path(src)
    kept = m["counts"][ref.source]["kept"]
    kept[ref.split] -= 1
    kept[split] += 1
    recount_patients(corpus, m)
    save(corpus, m)


def recount_patients(corpus: Path, m: dict) -> None:
    """Set the split audit's patients per split to those of the listed shards' rows."""
    for source, audit in m["splits"].items():
        paths = [corpus / f["path"] for f in m["files"] if f["source"] == source]
        rows = pa.concat_tables(pq.read_table(p, columns=["patient_id", "split"]) for p in paths)
        for split in audit["patients"]:
            mine = pc.equal(rows.column("split"), split)
            audit["patients"][split] = len(set(rows.filter(mine).column("patient_id").to_pylist()))


def drop_file(corpus: Path, path: str, counts: bool = False) -> None:
    """Delete a file and its manifest entry; ``counts``: also remove its records from the counts
    (kept and seen), as if they had never been there."""
    m = manifest(corpus)
    e = entry(m, path)
    (corpus / path).unlink()
    m["files"] = [f for f in m["files"] if f["path"] != path]
    m["extra_files"] = [f for f in m["extra_files"] if f["path"] != path]
    if counts and e.get("source"):
        c = m["counts"][e["source"]]
        c["kept"].pop(e["split"])
        c["seen"] -= e["records"]
        recount_patients(corpus, m)
    save(corpus, m)


def add_rejection(corpus: Path, source: str, record: str, reason: str, count: bool) -> None:
    row = pa.table(
        {"source": [source], "record_id": [record], "reason": [reason], "detail": ["x"]},
        schema=pq.read_schema(corpus / REJECTIONS),
    )
    rewrite(corpus, REJECTIONS, lambda t: pa.concat_tables([t, row]))
    if count:
        m = manifest(corpus)
        c = m["counts"][source]
        c["rejected"][reason] = c["rejected"].get(reason, 0) + 1
        c["seen"] += 1
        save(corpus, m)


def set_config(path: str, value: object) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        *parents, key = path.split(".")
        node = m["config"]
        for p in parents:
            node = node[p]
        node[key] = value

    return change


def hash_line(corpus: Path) -> list[str]:
    """The config-hash problem line of a manifest whose config was edited without rehashing."""
    m = manifest(corpus)
    return [
        f"manifest.json: config_hash {m['config_hash'][:12]} is not the hash of its config "
        f"({config_hash(m['config'])[:12]})"
    ]


# ---------------------------------------------------------------- cases


@dataclass(frozen=True)
class Tamper:
    """A tampering of a copy of the corpus and the exact problem lines it must produce;
    ``lines`` may be a function of the tampered corpus (for lines holding hashes)."""

    name: str
    tamper: Callable[[Path], None]
    lines: list[str] | Callable[[Path], list[str]]


def not_normalised(mode: str, first: dict[str, str]) -> list[str]:
    return [
        f"{s}: rows are not normalised as signal.normalise {mode} says (first: {first[s]})"
        for s in SHARDS
    ]


FIRST = {
    MIMIC_TRAIN: "mimic/40006001",
    MIMIC_VALIDATION: "mimic/40006000",
    PTB_TEST: "ptbxl/6000",
    PTB_TRAIN: "ptbxl/6001",
}


def _swap_leads(m: dict) -> None:
    m["lead_order"][4], m["lead_order"][5] = "aVF", "aVL"


def _schema_lead_order(t: pa.Table) -> pa.Table:
    meta = dict(t.schema.metadata)
    meta[b"meit_corpus.lead_order"] = json.dumps(LEADS.replace("aVL aVF", "aVF aVL").split())
    return t.replace_schema_metadata(meta)


def _fs_everywhere(m: dict) -> None:
    m["fs"], m["n_samples"] = 250, 2500
    m["config"]["signal"]["fs"] = 250


def _duplicate_row(t: pa.Table) -> pa.Table:
    return pa.concat_tables([t, t.slice(0, 1)])


def _junk(corpus: Path) -> None:
    (corpus / PTB_TRAIN).write_bytes(b"PAR1 not really")
    m = manifest(corpus)
    entry(m, PTB_TRAIN)["sha256"] = sha256_file(corpus / PTB_TRAIN)
    save(corpus, m)


def _rename(corpus: Path, new: str = "data/ptbxl/test-00001-of-00002.parquet") -> None:
    (corpus / PTB_TRAIN).rename(corpus / new)
    m = manifest(corpus)
    entry(m, PTB_TRAIN)["path"] = new
    save(corpus, m)


def _outside(corpus: Path) -> None:
    m = manifest(corpus)
    entry(m, PTB_TRAIN)["path"] = "../" + PTB_TRAIN
    save(corpus, m)


def _drop_source(corpus: Path) -> None:
    m = manifest(corpus)
    del m["counts"]["mimic"]
    save(corpus, m)


CASES = [
    # -- lead order, rate, length
    Tamper(
        "lead_order_in_manifest",
        lambda c: edit(c, _swap_leads),
        [f"manifest.json: lead_order {LEADS.replace('aVL aVF', 'aVF aVL')} is not {LEADS}"],
    ),
    Tamper(
        "lead_order_in_shard_metadata",
        lambda c: rewrite(c, PTB_TRAIN, _schema_lead_order),
        [
            f"{PTB_TRAIN}: schema metadata meit_corpus.lead_order is "
            '["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]'
        ],
    ),
    Tamper(
        "fs_in_manifest",
        lambda c: edit(c, lambda m: m.update(fs=250)),
        [
            "manifest.json: fs 250 Hz, its config says 500 Hz",
            *(
                f"{s}: {n} rows with fs 500, manifest says 250"
                for s, n in zip(SHARDS, [14, 2, 4, 12])
            ),
        ],
    ),
    Tamper(
        "fs_in_config",
        lambda c: edit(c, set_config("signal.fs", 250), rehash=True),
        [
            "manifest.json: fs 500 Hz, its config says 250 Hz",
            "manifest.json: n_samples 5000, its config gives 2500",
        ],
    ),
    Tamper(
        "fs_manifest_and_config_together",
        lambda c: edit(c, _fs_everywhere, rehash=True),
        [
            *(
                line
                for s in SHARDS
                for line in (
                    f"{s}: schema differs from the corpus schema",
                    f"{s}: schema metadata huggingface differs from the corpus schema's",
                )
            ),
            *(
                f"{s}: {n} rows with fs 500, manifest says 250"
                for s, n in zip(SHARDS, [14, 2, 4, 12])
            ),
        ],
    ),
    Tamper(
        "fs_column_in_shard",
        lambda c: rewrite(c, PTB_TEST, lambda t: set_column(t, "fs", lambda r: 250)),
        [f"{PTB_TEST}: 4 rows with fs 250, manifest says 500"],
    ),
    # -- config and its hash
    Tamper(
        "normalise_in_config",
        lambda c: edit(c, set_config("signal.normalise", "none")),
        lambda c: [*hash_line(c), *not_normalised("none", FIRST)],
    ),
    Tamper(
        "normalise_none_rehashed",
        lambda c: edit(c, set_config("signal.normalise", "none"), rehash=True),
        not_normalised("none", FIRST),
    ),
    Tamper(
        "normalise_meit_rehashed",
        lambda c: edit(c, set_config("signal.normalise", "meit"), rehash=True),
        not_normalised("meit", FIRST),
    ),
    Tamper(
        "config_hash",
        lambda c: edit(c, lambda m: m.update(config_hash="0" * 64)),
        hash_line,
    ),
    Tamper(
        "config_invalid_rehashed",
        lambda c: edit(c, set_config("signal.fs", 10), rehash=True),
        [
            "manifest.json: config is not valid: signal.fs: 10 Hz is outside the supported "
            "50..2000 Hz"
        ],
    ),
    # -- split labels (shards rewritten with their sha256)
    Tamper(
        "split_label_in_shard",
        lambda c: rewrite(c, PTB_TRAIN, split_of({"ptbxl/6001", "ptbxl/6001/diagnosis"}, "test")),
        [
            f"{PTB_TRAIN}: 2 rows with split test (first: ptbxl/6001), the manifest lists the "
            "shard as train",
            "ptbxl/test: shards hold 3 records, counts say 2",
            "ptbxl/train: shards hold 5 records, counts say 6",
            "manifest.json: splits.ptbxl.patients are not the rows' (train 5, validation 0, "
            "test 3)",
            "ptbxl: 2 rows with a split the folds rule does not give (first: ptbxl/6001 is test, "
            "the rule gives train)",
        ],
    ),
    Tamper(
        "split_label_of_one_example",
        lambda c: rewrite(c, PTB_TRAIN, split_of({"ptbxl/6001/diagnosis"}, "test")),
        [
            f"{PTB_TRAIN}: 1 row with split test (first: ptbxl/6001/diagnosis), the manifest "
            "lists the shard as train",
            "ptbxl/test: shards hold 3 records, counts say 2",
            "manifest.json: splits.ptbxl.patients are not the rows' (train 6, validation 0, "
            "test 3)",
            "ptbxl: 1 row with a split the folds rule does not give (first: "
            "ptbxl/6001/diagnosis is test, the rule gives train)",
            "ptbxl: 1 patient in more than one split",
        ],
    ),
    Tamper(
        "ptbxl_record_moved_to_another_split",
        lambda c: move_record(c, "6001", PTB_TRAIN, PTB_TEST, "test"),
        [
            "ptbxl: 2 rows with a split the folds rule does not give (first: ptbxl/6001 is test, "
            "the rule gives train)",
            "meta/meit/ptbxl_test.jsonl: lacks 2 ids of the ptbxl test shards and holds 0 ids that are "
            "not in them",
            "meta/meit/ptbxl_train.jsonl: lacks 0 ids of the ptbxl train shards and holds 2 ids that "
            "are not in them",
        ],
    ),
    Tamper(
        "mimic_record_moved_to_another_split",
        lambda c: move_record(c, "40006000", MIMIC_VALIDATION, MIMIC_TRAIN, "train"),
        [
            f"{MIMIC_VALIDATION}: no rows (a build never lists an empty shard)",
            "mimic: 2 rows with a split the patient rule does not give (first: mimic/40006000 is "
            "train, the rule gives validation)",
            "meta/meit/mimic_train.jsonl: lacks 2 ids of the mimic train shards and holds 0 ids that "
            "are not in them",
            "meta/meit/mimic_validation.jsonl: lacks 0 ids of the mimic validation shards and holds 2 "
            "ids that are not in them",
        ],
    ),
    Tamper(
        "split_seed_in_config",
        lambda c: edit(c, set_config("split.seed", 3), rehash=True),
        [
            "mimic: 6 rows with a split the patient rule does not give (first: mimic/40006004 is "
            "train, the rule gives test)"
        ],
    ),
    Tamper(
        "ptbxl_folds_in_config",
        lambda c: edit(
            c,
            set_config(
                "split.ptbxl_folds", {"train": [1, 2, 3, 4, 5, 6, 7, 8], "validation": [9, 10]}
            ),
            rehash=True,
        ),
        [
            "ptbxl: 4 rows with a split the folds rule does not give (first: ptbxl/6000 is test, "
            "the rule gives validation)"
        ],
    ),
    Tamper(
        "split_mode_meit_in_config",
        lambda c: edit(c, set_config("split.mode", "meit"), rehash=True),
        [
            "manifest.json: splits.mimic.mode is patient, its config gives meit",
            "mimic: 2 rows with a split the meit rule does not give (first: mimic/40006000 is "
            "validation, the rule gives train)",
        ],
    ),
    Tamper(
        "split_mode_in_audit",
        lambda c: edit(c, lambda m: m["splits"]["ptbxl"].update(mode="patient")),
        ["manifest.json: splits.ptbxl.mode is patient, its config gives folds"],
    ),
    # -- synthetic flag
    Tamper(
        "synthetic_in_counts",
        lambda c: edit(c, lambda m: m["counts"]["ptbxl"].update(synthetic=True)),
        ["manifest.json: counts.ptbxl.synthetic is True, its config says synthetic False"],
    ),
    Tamper(
        "synthetic_in_config_rehashed",
        lambda c: edit(c, set_config("synthetic", True), rehash=True),
        [
            "manifest.json: counts.mimic.synthetic is False, its config says synthetic True",
            "manifest.json: counts.ptbxl.synthetic is False, its config says synthetic True",
        ],
    ),
    # -- files: removed, added, renamed
    Tamper(
        "shard_and_entry_removed",
        lambda c: drop_file(c, PTB_TEST),
        [
            "ptbxl/test: files hold 0 records, counts say 2",
            "ptbxl/test: shards hold 0 records, counts say 2",
            "manifest.json: splits.ptbxl.patients are not the rows' (train 6, validation 0, "
            "test 0)",
            "2 input records neither in a shard nor in the ledger (first: ptbxl/6000)",
            "meta/meit/ptbxl_test.jsonl: lacks 0 ids of the ptbxl test shards and holds 4 ids that are "
            "not in them",
        ],
    ),
    Tamper(
        "shard_entry_counts_and_jsonl_removed",
        lambda c: (drop_file(c, PTB_TEST, counts=True), drop_file(c, "meta/meit/ptbxl_test.jsonl")),
        ["2 input records neither in a shard nor in the ledger (first: ptbxl/6000)"],
    ),
    Tamper(
        "unlisted_shard",
        lambda c: shutil.copy(c / PTB_TEST, c / "data/ptbxl/test-00001-of-00002.parquet"),
        ["data/ptbxl/test-00001-of-00002.parquet: not listed in the manifest"],
    ),
    Tamper(
        "unlisted_files_anywhere",
        lambda c: (
            (c / "extra").mkdir(),
            shutil.copy(c / PTB_TEST, c / "extra/x.parquet"),
            (c / "meta/meit/ptbxl_dev.jsonl").write_text("{}\n"),
        ),
        [
            "extra/x.parquet: not listed in the manifest",
            "meta/meit/ptbxl_dev.jsonl: not listed in the manifest",
        ],
    ),
    Tamper(
        "stray_parquet_under_data_and_meta",
        lambda c: (
            (c / "data/other").mkdir(),
            shutil.copy(c / PTB_TEST, c / "data/other/train-00000-of-00001.parquet"),
            shutil.copy(c / REJECTIONS, c / "meta/old-rejections.parquet"),
            shutil.copy(c / PTB_TEST, c / "_build/scratch.parquet"),  # build records: not read
        ),
        [
            "data/other/train-00000-of-00001.parquet: not listed in the manifest",
            "meta/old-rejections.parquet: not listed in the manifest",
        ],
    ),
    Tamper(
        "listed_jsonl_missing",
        lambda c: (c / "meta/meit/mimic_train.jsonl").unlink(),
        ["meta/meit/mimic_train.jsonl: missing"],
    ),
    Tamper(
        "fingerprints_missing",
        lambda c: (c / FINGERPRINTS).unlink(),
        ["meta/fingerprints.parquet: missing"],
    ),
    Tamper(
        "shard_renamed_to_another_split",
        _rename,
        [
            "data/ptbxl/test-00001-of-00002.parquet: name does not match its entry (source ptbxl, "
            "split train)",
            "ptbxl test: shards are numbered 00000-of-00001, 00001-of-00002, not 0 .. 1 of 2",
        ],
    ),
    Tamper(
        "shard_numbering_with_a_gap",
        lambda c: _rename(c, "data/ptbxl/train-00001-of-00002.parquet"),
        ["ptbxl train: shards are numbered 00001-of-00002, not 0 .. 0 of 1"],
    ),
    Tamper(
        "entry_path_outside_the_corpus",
        _outside,
        [
            "../data/ptbxl/train-00000-of-00001.parquet: path leaves the corpus folder",
            f"{PTB_TRAIN}: not listed in the manifest",
        ],
    ),
    Tamper(
        "junk_shard_with_its_sha",
        _junk,
        [f"{PTB_TRAIN}: not a readable Parquet file (ArrowInvalid)"],
    ),
    Tamper(
        "source_dropped_from_counts",
        _drop_source,
        ["manifest.json: source mimic is in its config only"],
    ),
    # -- rows
    Tamper(
        "duplicate_row",
        lambda c: rewrite(c, PTB_TRAIN, _duplicate_row),
        [f"1 id not unique (first: ptbxl/6001, 2 rows in {PTB_TRAIN})"],
    ),
    Tamper(
        "row_id_rewritten",
        lambda c: rewrite(
            c, PTB_TRAIN, lambda t: set_column(t, "id", lambda r: r["id"].replace("6001", "6003"))
        ),
        [
            "2 row ids not of the form <source>/<record_id>[/<task>] (first: ptbxl/6003)",
            "meta/meit/ptbxl_train.jsonl: lacks 2 ids of the ptbxl train shards and holds 2 ids that "
            "are not in them",
        ],
    ),
    # -- ledger
    Tamper(
        "ledger_id_also_in_corpus",
        lambda c: add_rejection(c, "ptbxl", "6001", "flat_lead", count=True),
        ["meta/rejections.parquet: 1 rejected record also in the corpus (first: ptbxl/6001)"],
    ),
    Tamper(
        "ledger_row_not_counted",
        lambda c: add_rejection(c, "ptbxl", "6001", "flat_lead", count=False),
        [
            "rejection ledger has 2 rows, counts say 1",
            "meta/rejections.parquet: 1 ptbxl row with reason flat_lead, counts say 0",
            "meta/rejections.parquet: 1 rejected record also in the corpus (first: ptbxl/6001)",
        ],
    ),
    Tamper(
        "ledger_row_removed",
        lambda c: rewrite(c, REJECTIONS, lambda t: t.slice(0, 0)),
        [
            "rejection ledger has 0 rows, counts say 1",
            "meta/rejections.parquet: 0 ptbxl rows with reason missing_file, counts say 1",
            "1 input record neither in a shard nor in the ledger (first: ptbxl/1)",
        ],
    ),
    Tamper(
        "ledger_reason_renamed",
        lambda c: rewrite(
            c,
            REJECTIONS,
            lambda t: t.set_column(2, t.schema.field(2), pa.array(["unreadable"], pa.string())),
        ),
        [
            "meta/rejections.parquet: 0 ptbxl rows with reason missing_file, counts say 1",
            "meta/rejections.parquet: 1 ptbxl row with reason unreadable, counts say 0",
        ],
    ),
    Tamper(
        "ledger_record_rejected_twice",
        lambda c: add_rejection(c, "ptbxl", "1", "unreadable", count=True),
        ["meta/rejections.parquet: 1 record rejected twice (first: ptbxl/1)"],
    ),
    Tamper(
        "ledger_record_not_an_input",
        lambda c: add_rejection(c, "mimic", "99999999", "unreadable", count=True),
        ["1 record in the shards or the ledger not among the inputs (first: mimic/99999999)"],
    ),
    # -- the manifest itself
    Tamper(
        "manifest_not_json",
        lambda c: (c / "manifest.json").write_text("{not json"),
        [
            "manifest.json is not a valid manifest: Invalid JSON: key must be a string at line 1 "
            "column 2"
        ],
    ),
    Tamper(
        "schema_major_version",
        lambda c: edit(c, lambda m: m.update(schema_version="2.0.0")),
        ["corpus schema version 2.0.0 is not readable by this code (schema 1.0.0)"],
    ),
    Tamper(
        "manifest_missing",
        lambda c: (c / "manifest.json").unlink(),
        ["manifest.json not found in {corpus}"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_tampering_fails_validate(case: Tamper, built: Path, tmp_path: Path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(built, corpus)
    case.tamper(corpus)
    lines = case.lines(corpus) if callable(case.lines) else case.lines
    lines = [line.replace("{corpus}", str(corpus)) for line in lines]
    assert validate_corpus(corpus) == lines
    capsys.readouterr()
    assert main(["validate", str(corpus)]) == 1
    assert capsys.readouterr().out.splitlines() == [f"✗ {line}" for line in lines]


def test_untouched_copy_is_valid(built: Path, tmp_path: Path, capsys):
    shutil.copytree(built, tmp_path / "corpus")
    assert validate_corpus(tmp_path / "corpus") == []
    assert main(["validate", str(tmp_path / "corpus")]) == 0
    assert capsys.readouterr().out.splitlines() == [f"✓ {tmp_path / 'corpus'} is valid"]
