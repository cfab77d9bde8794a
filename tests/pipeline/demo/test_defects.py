"""The planted defects: present in the files exactly as documented, and a build of the demo
repairs or rejects each one as the table says (with the table's ledger reason)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import wfdb

from pipeline.build import build_corpus
from pipeline.config import BuildConfig
from pipeline.demo import DEFECTS, DemoPaths
from schemas import CANONICAL_LEADS, REJECTIONS, read_manifest
from tests.pipeline.demo.conftest import MM_REPORTS, read_canonical


def record_id(demo: DemoPaths, source: str, word: str) -> str:
    found = [d for d in demo.defects if d.source == source and word in d.defect]
    assert len(found) == 1, demo.defects
    return found[0].record_id


def test_defects_present_as_documented(
    demo: DemoPaths, ptbxl_db: pl.DataFrame, mimic_table: pl.DataFrame
) -> None:
    assert len(demo.defects) == len(DEFECTS) == 5
    note = (demo.ptbxl.parent / "SYNTHETIC.md").read_text()
    assert all(
        f"| {d.source} | {d.record_id} | {d.path} | {d.defect} | {d.expected} |" in note
        for d in demo.defects
    )

    gap = record_id(demo, "ptbxl", "NaN gap")
    flat = record_id(demo, "ptbxl", "flat")
    empty = record_id(demo, "ptbxl", "empty report")
    for ecg_id, report, rel in ptbxl_db.select("ecg_id", "report", "filename_hr").iter_rows():
        x = read_canonical(demo.ptbxl / rel)
        nan = np.isnan(x)
        if ecg_id == gap:
            v2 = CANONICAL_LEADS.index("V2")
            assert nan.sum() == nan[v2].sum() == 20
            run = np.flatnonzero(nan[v2])
            assert run[-1] - run[0] == 19  # one contiguous 40 ms gap: repairable
        else:
            assert not nan.any()
        ptp = np.ptp(np.nan_to_num(x), axis=1)
        if ecg_id == flat:
            assert list(np.flatnonzero(ptp == 0)) == [CANONICAL_LEADS.index("V4")]
        else:
            assert (ptp > 0.1).all()
        assert (report is None) == (ecg_id == empty)
    lr = ptbxl_db.filter(pl.col("ecg_id") == gap)["filename_lr"][0]
    assert np.isnan(read_canonical(demo.ptbxl / lr)).sum() in (4, 5)

    silent = int(record_id(demo, "mimic", "statements empty"))
    nan_lead = int(record_id(demo, "mimic", "NaN"))
    for row in mimic_table.iter_rows(named=True):
        statements = [row[c] for c in MM_REPORTS if row[c]]
        assert (not statements) == (row["study_id"] == silent)
        raw = wfdb.rdrecord(str(demo.mimic / row["path"]))
        nan = np.isnan(raw.p_signal)
        if row["study_id"] == nan_lead:
            assert raw.sig_name[5] == "aVL" and nan[:, 5].all() and nan.sum() == 5000
        else:
            assert not nan.any()


def test_a_build_repairs_or_rejects_each_defect_as_the_table_says(demo, tmp_path) -> None:
    out = tmp_path / "corpus"
    build_corpus(BuildConfig(ptbxl=demo.ptbxl, mimic=demo.mimic, out=out, workers=1))
    ledger = {
        (r["source"], r["record_id"]): r["reason"]
        for r in pq.read_table(out / REJECTIONS).to_pylist()
    }
    assert ledger == {(d.source, d.record_id): d.reason for d in demo.defects if d.reason}
    repaired = {
        (r["source"], r["record_id"])
        for f in read_manifest(out).files
        for r in pq.read_table(
            out / f.path, columns=["source", "record_id", "nan_repaired"]
        ).to_pylist()
        if r["nan_repaired"]
    }
    assert repaired == {(d.source, d.record_id) for d in demo.defects if d.expected == "repaired"}
