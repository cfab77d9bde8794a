"""The demo's metadata: PTB-XL's formats, patients in one fold, and reports, statements and
measurements that agree with the simulated signal."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import polars as pl
import wfdb

from pipeline.demo import DemoPaths
from pipeline.sources.mimic import MIMIC_WARNING
from pipeline.sources.ptbxl import PTBXL_LEADS
from tests.pipeline.demo.conftest import (
    MM_REPORTS,
    N_PTBXL,
    lead_ii_hr,
    read_canonical,
    rhythm_of_hr,
)


def test_ptbxl_database_formats(demo: DemoPaths, ptbxl_db: pl.DataFrame) -> None:
    db = ptbxl_db
    assert db.height == N_PTBXL and db["ecg_id"].n_unique() == N_PTBXL
    assert all(re.fullmatch(r"\d+\.0", p) for p in db["patient_id"])
    assert set(db["sex"]) <= {"0", "1"}
    assert all(re.fullmatch(r"\d+\.0", a) for a in db["age"])
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", d) for d in db["recording_date"])
    for codes in db["scp_codes"]:
        parsed = ast.literal_eval(codes)
        assert isinstance(parsed, dict) and all(isinstance(v, float) for v in parsed.values())
    for ecg_id, lr, hr in db.select("ecg_id", "filename_lr", "filename_hr").iter_rows():
        e = int(ecg_id)
        assert hr == f"records500/{e // 1000 * 1000:05d}/{e:05d}_hr"
        assert lr == f"records100/{e // 1000 * 1000:05d}/{e:05d}_lr"
        for rel, fs, n in ((hr, 500, 5000), (lr, 100, 1000)):
            head = wfdb.rdheader(str(demo.ptbxl / rel))
            assert (head.fs, head.sig_len, head.sig_name) == (fs, n, list(PTBXL_LEADS))
            assert Path(f"{demo.ptbxl / rel}.dat").stat().st_size == 2 * 12 * n
    assert len({rel.split("/")[1] for rel in db["filename_hr"]}) >= 2  # spans two folders
    # the header line of the real file and the rows agree on 28 fields
    typed = pl.read_csv(demo.ptbxl / "ptbxl_database.csv")
    assert typed.width == 28 and typed["strat_fold"].dtype == pl.Int64


def test_ptbxl_patients_span_records_in_one_fold(ptbxl_db: pl.DataFrame) -> None:
    per_patient = ptbxl_db.group_by("patient_id").agg(
        pl.len().alias("n"), pl.col("strat_fold").n_unique().alias("folds")
    )
    assert (per_patient["n"] >= 2).all()
    assert (per_patient["folds"] == 1).all()
    folds = {int(f) for f in ptbxl_db["strat_fold"]}
    assert folds & set(range(1, 9)) and 9 in folds and 10 in folds


def test_ptbxl_reports_match_simulated_heart_rate(demo: DemoPaths, ptbxl_db: pl.DataFrame) -> None:
    languages = set()
    for report, codes, rel in ptbxl_db.select("report", "scp_codes", "filename_hr").iter_rows():
        if report is None:
            continue  # the documented empty-report defect
        assert report.replace("Ä", "ä") == report.lower()  # lower-case but for PTB-XL's Ä
        hr = lead_ii_hr(read_canonical(demo.ptbxl / rel))
        rhythm = rhythm_of_hr(hr)
        said = "brady" if "brady" in report else "tachy" if "tachy" in report else "normal"
        assert said == rhythm, (report, hr)
        code = {"brady": "SBRAD", "tachy": "STACH", "normal": "SR"}[rhythm]
        assert code in ast.literal_eval(codes)
        languages.add("en" if " ecg" in report else "de/sv")
    assert languages == {"en", "de/sv"}


def test_mimic_statements_and_measurements_match_signal(
    demo: DemoPaths, mimic_table: pl.DataFrame
) -> None:
    rhythm_words = {
        "Sinus rhythm": "normal",
        "Sinus bradycardia": "brady",
        "Sinus tachycardia": "tachy",
    }
    seen = set()
    for row in mimic_table.iter_rows(named=True):
        statements = [row[c] for c in MM_REPORTS if row[c]]
        if not statements:
            continue  # the documented silent-study defect
        findings = [s for s in statements if s != MIMIC_WARNING]
        seen.update(statements)
        rr = int(row["rr_interval"])
        hr = lead_ii_hr(read_canonical(demo.mimic / row["path"]))
        assert abs(60000 / hr - rr) / rr < 0.05, (rr, hr)
        assert rhythm_words[findings[0]] == rhythm_of_hr(60000 / rr)
        p_on, p_end, q_on, q_end, t_end = (
            int(row[c]) for c in ("p_onset", "p_end", "qrs_onset", "qrs_end", "t_end")
        )
        assert p_on < p_end < q_on < q_end < t_end < p_on + rr
        assert 60 <= q_end - q_on <= 120
        assert -30 <= int(row["qrs_axis"]) <= 90
    assert "Normal ECG" in seen or "Borderline ECG" in seen
