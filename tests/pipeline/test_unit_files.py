"""A unit's rows file: written by the plan, reused by a rerun, read back as the rows the unit's key
hashes, and removed when no unit of a later plan names it."""

from __future__ import annotations

from pipeline.config import BuildConfig
from pipeline.plan import discover, make_plan
from pipeline.sources import registry
from pipeline.unit_files import PLAN_DIR, read_unit


def test_rows_files_are_reused_read_back_and_pruned(ptbxl_sample, tmp_path):
    cfg = BuildConfig(ptbxl=ptbxl_sample, out=tmp_path / "corpus", workers=1, shards_per_split=4)
    sources = discover(cfg, registry())
    first = make_plan(cfg, sources)
    folder = cfg.out / PLAN_DIR
    files = {p.name: p.stat().st_ino for p in folder.glob("*.arrow")}
    assert sorted(files) == sorted(f"{u.key}.arrow" for u in first.units)
    kept = sources[0].records
    for unit in first.units:
        again = read_unit(cfg.out, unit.key, registry())
        assert again == unit and again.n_records == len(unit.records)
        ids = [r["record_id"] for r in unit.records]
        rows = kept.filter(kept["record_id"].is_in(ids)).to_dicts()
        assert list(unit.records) == rows  # every column, the discovery order
    assert sum(u.n_records for u in first.units) == kept.height
    # a rerun of the same plan reuses every file (same inode: not rewritten)
    make_plan(cfg, sources)
    assert {p.name: p.stat().st_ino for p in folder.glob("*.arrow")} == files
    # another bucket count: new units, and the files of the old ones are gone
    other = make_plan(cfg.model_copy(update={"shards_per_split": 2}), sources)
    assert sorted(p.name for p in folder.glob("*.arrow")) == sorted(
        f"{u.key}.arrow" for u in other.units
    )
