"""prepare_ptbxl on real ptbxl_database.csv rows: ids, patients, demographics, statements."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pipeline.sources.ptbxl import prepare_ptbxl


def write_rows(ptbxl_sample: Path, root: Path, edit: dict[str, dict[str, str]]) -> Path:
    """A copy of the real sample's ptbxl_database.csv with some cells of some ecg_ids edited."""
    root.mkdir()
    with open(ptbxl_sample / "ptbxl_database.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row.update(edit.get(row["ecg_id"], {}))
    with open(root / "ptbxl_database.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_real_rows_become_sorted_records_with_demographics(ptbxl_sample):
    frame = prepare_ptbxl(str(ptbxl_sample))
    with open(ptbxl_sample / "ptbxl_database.csv", newline="") as f:
        real = {r["ecg_id"]: r for r in csv.DictReader(f)}
    assert frame["record_id"].to_list() == sorted(real, key=int)
    for row in frame.iter_rows(named=True):
        src = real[row["record_id"]]
        assert row["patient_id"] == str(int(float(src["patient_id"])))  # "15709.0" -> "15709"
        assert row["sex"] == {"0": "male", "1": "female"}[src["sex"]]
        assert row["strat_fold"] == int(src["strat_fold"])
        assert row["path"] == src["filename_hr"]
        assert json.loads(row["scp_codes"]).keys() == eval(src["scp_codes"]).keys()  # noqa: S307


def test_age_300_means_over_89_and_is_kept_as_90(ptbxl_sample, tmp_path):
    first, second = sorted(prepare_ptbxl(str(ptbxl_sample))["record_id"].to_list(), key=int)[:2]
    root = write_rows(
        ptbxl_sample, tmp_path / "ptbxl", {first: {"age": "300"}, second: {"age": "89"}}
    )
    ages = dict(zip(*prepare_ptbxl(str(root)).select("record_id", "age").to_dict().values()))
    assert ages[first] == 90.0 and ages[second] == 89.0


def test_records100_paths_come_from_filename_lr(ptbxl_sample):
    frame = prepare_ptbxl(str(ptbxl_sample), records="records100")
    assert all(p.startswith("records100/") and p.endswith("_lr") for p in frame["path"])
