"""The build's own validation (:func:`pipeline.validate.validate_build`) against ``meit-corpus
validate`` (:func:`pipeline.validate.validate_corpus`).

A corpus of the real PTB-XL sample (a train and a test shard) is built once; each test copies
it, removes the train shard's completion record so that the next build rewrites that shard only
(the test shard is untouched: its plan hashed it), and tampers with the corpus after finalising,
rewriting the sha256 and rows the manifest lists, so only the row checks can see it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.build import CorpusInvalid, Steps, build
from pipeline.cli import main
from pipeline.config import BuildConfig
from pipeline.finalise import finalise
from pipeline.validate import validate_corpus
from schemas import MANIFEST, PROGRESS_DIR, sha256_file

TRAIN = "data/ptbxl/train-00000-of-00001.parquet"
TEST = "data/ptbxl/test-00000-of-00001.parquet"


@pytest.fixture(scope="module")
def built(ptbxl_sample: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("validate") / "corpus"
    build(BuildConfig(ptbxl=ptbxl_sample, out=out, workers=1))
    return out


def redo_train(built: Path, tmp_path: Path) -> Path:
    """A copy of the corpus whose next build rewrites the train shard and keeps the test one."""
    out = tmp_path / "corpus"
    shutil.copytree(built, out)
    (out / PROGRESS_DIR / f"{TRAIN}.json").unlink()
    return out


def rewrite(out: Path, path: str, change: Callable[[pa.Table], pa.Table]) -> None:
    """Rewrite a shard through ``change`` and list its new sha256 in the manifest."""
    pq.write_table(change(pq.read_table(out / path)), out / path)
    m = json.loads((out / MANIFEST).read_text())
    next(f for f in m["files"] if f["path"] == path)["sha256"] = sha256_file(out / path)
    (out / MANIFEST).write_text(json.dumps(m, indent=2))


def with_column(table: pa.Table, name: str, values: list) -> pa.Table:
    i = table.schema.get_field_index(name)
    field = table.schema.field(name)
    return table.set_column(i, field, pa.array(values, field.type))


def build_then(ptbxl_sample: Path, out: Path, tamper: Callable[[Path], None]) -> list[str]:
    """Build ``out`` again with ``tamper`` run after finalising; the build's problems."""

    def finalise_then_tamper(cfg, plan, results, mode):
        manifest = finalise(cfg, plan, results, mode)
        tamper(Path(cfg.out))
        return manifest

    cfg = BuildConfig(ptbxl=ptbxl_sample, out=out, workers=1)
    try:
        outcome = build(cfg, steps=Steps(finalise=finalise_then_tamper))
    except CorpusInvalid as exc:
        return str(exc).removeprefix("corpus is not valid: ").split("; ")
    assert outcome.written == [TRAIN]  # the test shard was kept, not rewritten
    return []


def test_the_build_checks_the_rows_of_a_shard_it_wrote(ptbxl_sample: Path, built: Path, tmp_path):
    def bad_fs(out: Path) -> None:
        rewrite(out, TRAIN, lambda t: with_column(t, "fs", [250] + t["fs"].to_pylist()[1:]))

    problems = build_then(ptbxl_sample, redo_train(built, tmp_path), bad_fs)
    assert problems == [f"{TRAIN}: 1 row with fs 250, manifest says 500"]


def test_the_build_sees_a_patient_of_a_shard_it_wrote_in_an_untouched_one(
    ptbxl_sample: Path, built: Path, tmp_path
):
    """The train shard (written) takes a patient of the test shard (untouched, not re-read in
    full): the patient-in-one-split check still covers every shard."""
    patient = pq.read_table(built / TEST, columns=["patient_id"])["patient_id"][0].as_py()

    def leak(out: Path) -> None:
        def change(t: pa.Table) -> pa.Table:
            first = t["record_id"][0]
            mine = pc.equal(t["record_id"], first).to_pylist()
            ids = [patient if m else p for m, p in zip(mine, t["patient_id"].to_pylist())]
            return with_column(t, "patient_id", ids)

        rewrite(out, TRAIN, change)

    problems = build_then(ptbxl_sample, redo_train(built, tmp_path), leak)
    assert "ptbxl: 1 patient in more than one split" in problems


def test_validate_rechecks_the_shards_a_build_trusted(
    ptbxl_sample: Path, built: Path, tmp_path, capsys
):
    """A shard damaged after the plan hashed it is not the build's to see (its plan just
    checked it); ``meit-corpus validate`` re-reads every shard and sees it."""

    def damage_untouched(out: Path) -> None:
        rewrite(out, TEST, lambda t: with_column(t, "fs", [250] * t.num_rows))

    out = redo_train(built, tmp_path)
    assert build_then(ptbxl_sample, out, damage_untouched) == []
    n = pq.read_metadata(out / TEST).num_rows
    assert validate_corpus(out) == [f"{TEST}: {n} rows with fs 250, manifest says 500"]
    assert main(["validate", str(out)]) == 1
    assert f"{TEST}: {n} rows with fs 250" in capsys.readouterr().out


def test_a_shard_whose_rows_do_not_read_is_named_and_the_others_are_read(built: Path, tmp_path):
    """The shards are read in one scan; a shard that breaks it (a column dropped, the manifest's
    sha256 updated) is found file by file and named, and the other shards are still checked."""
    out = tmp_path / "corpus"
    shutil.copytree(built, out)
    rewrite(out, TRAIN, lambda t: t.drop_columns(["task"]))
    problems = validate_corpus(out)
    assert f"{TRAIN}: rows not readable (ArrowInvalid)" in problems
    assert not [p for p in problems if TEST in p or "ptbxl/test" in p]
