"""write_demo: both folders in PhysioNet's layouts (headers, keys, formats), SYNTHETIC.md,
byte-identical output for one seed, and no deletion of a folder that is not a demo."""

from __future__ import annotations

import ast
import hashlib
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
import wfdb

from pipeline.demo import DemoPaths, write_demo
from pipeline.sources.mimic import MIMIC_LEADS
from tests.pipeline.demo.conftest import N_MIMIC, N_PTBXL, SEED


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_csv_headers_equal_real_ones(
    demo: DemoPaths, ptbxl_sample: Path, mimic_sample: Path
) -> None:
    def first(p: Path) -> str:
        return p.read_text(encoding="utf-8").splitlines()[0]

    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        assert first(demo.ptbxl / name) == first(ptbxl_sample / name)
    for name in ("record_list.csv", "machine_measurements.csv"):
        assert first(demo.mimic / name) == first(mimic_sample / name)
    assert len(first(demo.ptbxl / "ptbxl_database.csv").split(",")) == 28


def test_scp_rows_are_verbatim_and_cover_used_codes(
    demo: DemoPaths, ptbxl_db: pl.DataFrame, ptbxl_sample: Path
) -> None:
    real_lines = set((ptbxl_sample / "scp_statements.csv").read_text().splitlines())
    ours = (demo.ptbxl / "scp_statements.csv").read_text().splitlines()[1:]
    assert ours and all(line in real_lines for line in ours)
    defined = {line.split(",")[0] for line in ours}
    used = {c for s in ptbxl_db["scp_codes"] for c in ast.literal_eval(s)}
    assert used <= defined
    assert pl.read_csv(demo.ptbxl / "scp_statements.csv").height == len(ours)


def test_mimic_layout_and_keys(demo: DemoPaths, mimic_table: pl.DataFrame) -> None:
    t = mimic_table
    assert t.height == N_MIMIC == pl.read_csv(demo.mimic / "record_list.csv").height
    assert (t.group_by("subject_id").len()["len"] >= 2).all()
    for row in t.iter_rows(named=True):
        s, st = row["subject_id"], row["study_id"]
        assert row["path"] == f"files/p{str(s)[:4]}/p{s}/s{st}/{st}"
        assert str(row["file_name"]) == str(st)
        assert row["ecg_time"] == row["ecg_time_mm"]
        head = wfdb.rdheader(str(demo.mimic / row["path"]))
        assert head.sig_name == list(MIMIC_LEADS) and head.adc_gain == [200.0] * 12
        assert (head.fs, head.sig_len) == (500, 5000)
        assert head.comments == [f"<subject_id>: {s}"]
        stamp = datetime.combine(head.base_date, head.base_time)
        assert stamp == datetime.strptime(row["ecg_time"], "%Y-%m-%d %H:%M:%S")
    # the two files are not in the same row order: pairing by row index would be wrong
    rl = pl.read_csv(demo.mimic / "record_list.csv")["study_id"].to_list()
    mm = pl.read_csv(demo.mimic / "machine_measurements.csv")["study_id"].to_list()
    assert sorted(rl) == sorted(mm) and rl != mm


def test_csvs_read_with_polars(demo: DemoPaths) -> None:
    for csv_path in [*demo.ptbxl.glob("*.csv"), *demo.mimic.glob("*.csv")]:
        frame = pl.read_csv(csv_path)
        assert frame.height > 0
    mm = pl.read_csv(demo.mimic / "machine_measurements.csv")
    assert mm["rr_interval"].dtype == pl.Int64 and mm["study_id"].n_unique() == N_MIMIC


def test_note_says_synthetic_and_how_to_regenerate(demo: DemoPaths) -> None:
    note = (demo.ptbxl.parent / "SYNTHETIC.md").read_text()
    assert note.startswith("# Synthetic demo data: NOT PhysioNet data\n")
    call = f"`pipeline.demo.write_demo(n_ptbxl={N_PTBXL}, n_mimic={N_MIMIC}, seed={SEED})`"
    assert call in note


def test_byte_identical_for_the_same_seed(demo: DemoPaths, tmp_path: Path) -> None:
    first = tree_digest(demo.ptbxl.parent)
    again = write_demo(tmp_path / "out", N_PTBXL, N_MIMIC, seed=SEED)
    assert again.defects == demo.defects
    assert tree_digest(tmp_path / "out") == first
    n_files = 2 * (2 * N_PTBXL + N_MIMIC) + 4 + 1
    assert len(first) == n_files
    with pytest.raises(FileExistsError):
        write_demo(tmp_path / "out", N_PTBXL, N_MIMIC, seed=SEED)
    write_demo(tmp_path / "out", N_PTBXL, N_MIMIC, seed=SEED, overwrite=True)
    assert tree_digest(tmp_path / "out") == first


def test_refuses_to_delete_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "ptbxl").mkdir()
    (tmp_path / "ptbxl" / "keep.txt").write_text("real data")
    with pytest.raises(FileExistsError):
        write_demo(tmp_path, overwrite=True)
    assert (tmp_path / "ptbxl" / "keep.txt").exists()


def test_too_few_records_for_the_defects_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 4 ptbxl"):
        write_demo(tmp_path, n_ptbxl=3)
    with pytest.raises(ValueError, match="at least 3 mimic"):
        write_demo(tmp_path, n_mimic=2)
    assert not any(tmp_path.iterdir())
