"""The synthetic demo source and the PhysioNet-layout record writers, checked against real files."""

from __future__ import annotations

import ast
import hashlib
import re
from datetime import datetime
from pathlib import Path

import neurokit2 as nk
import numpy as np
import polars as pl
import pytest
import wfdb

from pipeline.sources.demo import (
    MIMIC_LEADS,
    MIMIC_WARNING,
    PTBXL_LEADS,
    DemoPaths,
    write_demo,
    write_mimic_record,
    write_ptbxl_record,
)
from schemas import CANONICAL_LEADS

N_PTBXL, N_MIMIC, SEED = 12, 9, 3
MIMIC_STEP_MV = 1 / 200
REAL_MIMIC_HEADER = "headers-only/files/p1000/p10000032/s40689238/40689238.hea"
MM_REPORTS = [f"report_{i}" for i in range(18)]


def _canonical(names: list[str]) -> list[int]:
    """Indices that put a record's leads in canonical order, by (case-insensitive) name."""
    lower = [n.lower() for n in names]
    return [lower.index(lead.lower()) for lead in CANONICAL_LEADS]


def _read_canonical(record: Path) -> np.ndarray:
    rec = wfdb.rdrecord(str(record))
    return rec.p_signal.T[_canonical(rec.sig_name)]


def _signal_tokens(hea: Path) -> list[list[str]]:
    """Signal lines of a header without the file name, initial value and checksum."""
    lines = [ln.split() for ln in hea.read_text().splitlines()[1:] if not ln.startswith("#")]
    return [t[1:5] + t[7:] for t in lines]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    return write_demo(tmp_path_factory.mktemp("demo") / "out", N_PTBXL, N_MIMIC, seed=SEED)


@pytest.fixture(scope="module")
def ptbxl_db(demo: DemoPaths) -> pl.DataFrame:
    return pl.read_csv(demo.ptbxl / "ptbxl_database.csv", infer_schema_length=0)


@pytest.fixture(scope="module")
def mimic_table(demo: DemoPaths) -> pl.DataFrame:
    records = pl.read_csv(demo.mimic / "record_list.csv")
    measurements = pl.read_csv(demo.mimic / "machine_measurements.csv", infer_schema_length=0)
    measurements = measurements.with_columns(pl.col("subject_id", "study_id").cast(pl.Int64))
    return records.join(
        measurements, on=["subject_id", "study_id"], how="inner", suffix="_mm", validate="1:1"
    )


def _defect(demo: DemoPaths, source: str, word: str) -> str:
    found = [d for d in demo.defects if d.source == source and word in d.defect]
    assert len(found) == 1, demo.defects
    return found[0].record_id


# ----------------------------------------------------------------------------- PTB-XL writer


@pytest.mark.parametrize(
    "rel, ecg_id, fs",
    [
        ("records500/06000/06000_hr", 6000, 500),
        ("records500/06000/06007_hr", 6007, 500),
        ("records100/00000/00001_lr", 1, 100),
    ],
)
def test_ptbxl_writer_reproduces_real_files_byte_for_byte(
    ptbxl_sample: Path, tmp_path: Path, rel: str, ecg_id: int, fs: int
) -> None:
    real = wfdb.rdrecord(str(ptbxl_sample / rel))
    out = write_ptbxl_record(tmp_path, ecg_id, real.p_signal.T, fs=fs)
    assert out == tmp_path / rel
    for ext in (".hea", ".dat"):
        assert Path(f"{out}{ext}").read_bytes() == (ptbxl_sample / f"{rel}{ext}").read_bytes()


def test_ptbxl_writer_conventions_and_nan(ptbxl_sample: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.5, (12, 5000))
    x[7, 100:120] = np.nan
    out = write_ptbxl_record(tmp_path, 12345, x)
    assert out == tmp_path / "records500/12000/12345_hr"
    head = wfdb.rdheader(str(out))
    assert head.sig_name == list(PTBXL_LEADS)
    assert head.sig_name[3:6] == ["AVR", "AVL", "AVF"]
    assert (head.fs, head.sig_len, head.n_sig) == (500, 5000, 12)
    assert head.fmt == ["16"] * 12 and head.adc_gain == [1000.0] * 12
    assert head.baseline == [0] * 12 and head.units == ["mV"] * 12
    assert head.base_time is None and head.base_date is None
    assert Path(f"{out}.hea").read_text().splitlines()[0] == "12345_hr 12 500 5000"
    assert _signal_tokens(Path(f"{out}.hea")) == _signal_tokens(
        ptbxl_sample / "records500/06000/06000_hr.hea"
    )
    back = wfdb.rdrecord(str(out))
    assert np.array_equal(np.isnan(back.p_signal.T), np.isnan(x))
    assert np.nanmax(np.abs(back.p_signal.T - x)) <= 0.5e-3 + 1e-9
    raw = wfdb.rdrecord(str(out), physical=False).d_signal
    assert (raw[100:120, 7] == -32768).all()


def test_writers_refuse_unstorable_signals(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_ptbxl_record(tmp_path, 1, np.zeros((11, 5000)))
    with pytest.raises(ValueError):
        write_ptbxl_record(tmp_path, 1, np.full((12, 10), np.inf))
    with pytest.raises(ValueError):
        write_ptbxl_record(tmp_path, 1, np.full((12, 10), 40.0))  # > 32.767 mV at 1000/mV
    with pytest.raises(ValueError):
        write_ptbxl_record(tmp_path, 1, np.zeros((12, 10)), fs=250)
    with pytest.raises(ValueError):
        write_mimic_record(tmp_path, 10000032, 1, np.full((12, 10), 170.0))  # > 163.8 mV


# ----------------------------------------------------------------------------- MIMIC writer


def test_mimic_writer_conventions(mimic_sample: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(0, 0.5, (12, 5000))
    out = write_mimic_record(tmp_path, 10000032, 40689238, x, base=datetime(2180, 7, 23, 8, 44, 0))
    assert out == tmp_path / "files/p1000/p10000032/s40689238/40689238"
    ours, real = Path(f"{out}.hea"), mimic_sample / REAL_MIMIC_HEADER
    ours_lines, real_lines = ours.read_text().splitlines(), real.read_text().splitlines()
    assert ours_lines[0] == real_lines[0] == "40689238 12 500 5000 08:44:00 23/07/2180"
    assert ours_lines[-1] == real_lines[-1] == "# <subject_id>: 10000032"
    assert _signal_tokens(ours) == _signal_tokens(real)
    head = wfdb.rdheader(str(out))
    assert head.sig_name == list(MIMIC_LEADS) == wfdb.rdheader(str(real.with_suffix(""))).sig_name
    assert head.sig_name[4:6] == ["aVF", "aVL"]
    assert head.adc_gain == [200.0] * 12 and head.fmt == ["16"] * 12
    assert (head.fs, head.sig_len) == (500, 5000)
    assert head.comments == ["<subject_id>: 10000032"]
    back = wfdb.rdrecord(str(out)).p_signal.T
    assert np.allclose(back[4], x[CANONICAL_LEADS.index("aVF")], atol=MIMIC_STEP_MV / 2 + 1e-9)
    assert np.allclose(back[5], x[CANONICAL_LEADS.index("aVL")], atol=MIMIC_STEP_MV / 2 + 1e-9)


def test_mimic_writer_reencodes_real_ptbxl_signal(ptbxl_sample: Path, tmp_path: Path) -> None:
    real = wfdb.rdrecord(str(ptbxl_sample / "records500/06000/06000_hr"))
    canonical = real.p_signal.T[_canonical(real.sig_name)]
    assert not np.allclose(canonical[4], canonical[5])  # aVL and aVF differ: order is testable
    canonical[2, 1000:1010] = np.nan
    out = write_mimic_record(
        tmp_path, 19999999, 40000001, canonical, base=datetime(2150, 1, 2, 3, 4, 5)
    )
    assert out == tmp_path / "files/p1999/p19999999/s40000001/40000001"
    rec = wfdb.rdrecord(str(out))
    assert rec.sig_name == list(MIMIC_LEADS)
    back = rec.p_signal.T[_canonical(rec.sig_name)]
    assert back.shape == canonical.shape == (12, 5000)
    assert np.array_equal(np.isnan(back), np.isnan(canonical))
    assert np.nanmax(np.abs(back - canonical)) <= MIMIC_STEP_MV / 2 + 1e-9
    # and read in the file's own order, aVF really is in slot 4
    assert np.allclose(rec.p_signal[:, 4], canonical[5], atol=MIMIC_STEP_MV / 2 + 1e-9)


# ----------------------------------------------------------------------------- demo: PTB-XL


def test_demo_csv_headers_equal_real_ones(
    demo: DemoPaths, ptbxl_sample: Path, mimic_sample: Path
) -> None:
    def first(p: Path) -> str:
        return p.read_text(encoding="utf-8").splitlines()[0]

    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        assert first(demo.ptbxl / name) == first(ptbxl_sample / name)
    for name in ("record_list.csv", "machine_measurements.csv"):
        assert first(demo.mimic / name) == first(mimic_sample / name)
    assert len(first(demo.ptbxl / "ptbxl_database.csv").split(",")) == 28


def test_demo_scp_rows_are_verbatim_and_cover_used_codes(
    demo: DemoPaths, ptbxl_db: pl.DataFrame, ptbxl_sample: Path
) -> None:
    real_lines = set((ptbxl_sample / "scp_statements.csv").read_text().splitlines())
    ours = (demo.ptbxl / "scp_statements.csv").read_text().splitlines()[1:]
    assert ours and all(line in real_lines for line in ours)
    defined = {line.split(",")[0] for line in ours}
    used = {c for s in ptbxl_db["scp_codes"] for c in ast.literal_eval(s)}
    assert used <= defined
    assert pl.read_csv(demo.ptbxl / "scp_statements.csv").height == len(ours)


def test_demo_ptbxl_database_formats(demo: DemoPaths, ptbxl_db: pl.DataFrame) -> None:
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


def test_demo_patients_span_records_in_one_fold(ptbxl_db: pl.DataFrame) -> None:
    per_patient = ptbxl_db.group_by("patient_id").agg(
        pl.len().alias("n"), pl.col("strat_fold").n_unique().alias("folds")
    )
    assert (per_patient["n"] >= 2).all()
    assert (per_patient["folds"] == 1).all()
    folds = {int(f) for f in ptbxl_db["strat_fold"]}
    assert folds & set(range(1, 9)) and 9 in folds and 10 in folds


def _rhythm_of_hr(hr: float) -> str:
    return "brady" if hr < 60 else "tachy" if hr > 100 else "normal"


def _lead_ii_hr(x: np.ndarray) -> float:
    _, info = nk.ecg_peaks(np.nan_to_num(x[1]), sampling_rate=500)
    return 60 * 500 / float(np.median(np.diff(info["ECG_R_Peaks"])))


def test_demo_ptbxl_reports_match_simulated_heart_rate(
    demo: DemoPaths, ptbxl_db: pl.DataFrame
) -> None:
    languages = set()
    for report, codes, rel in ptbxl_db.select("report", "scp_codes", "filename_hr").iter_rows():
        if report is None:
            continue  # the documented empty-report defect
        assert report.replace("Ä", "ä") == report.lower()  # lower-case but for PTB-XL's Ä
        hr = _lead_ii_hr(_read_canonical(demo.ptbxl / rel))
        rhythm = _rhythm_of_hr(hr)
        said = "brady" if "brady" in report else "tachy" if "tachy" in report else "normal"
        assert said == rhythm, (report, hr)
        code = {"brady": "SBRAD", "tachy": "STACH", "normal": "SR"}[rhythm]
        assert code in ast.literal_eval(codes)
        languages.add("en" if " ecg" in report else "de/sv")
    assert languages == {"en", "de/sv"}


def test_demo_limb_leads_obey_einthoven(demo: DemoPaths, ptbxl_db: pl.DataFrame) -> None:
    x = _read_canonical(demo.ptbxl / ptbxl_db["filename_hr"][0])
    i, ii, iii, avr, avl, avf = x[:6]
    tol = 1.5e-3 + 1e-9  # three leads, each rounded to 1 uV (0.5 uV error each)
    assert np.abs(iii - (ii - i)).max() <= tol
    assert np.abs(avr + (i + ii) / 2).max() <= tol
    assert np.abs(avl - (i - ii / 2)).max() <= tol
    assert np.abs(avf - (ii - i / 2)).max() <= tol
    assert np.ptp(avl) > 0.1 and np.ptp(avf) > 0.1


# ----------------------------------------------------------------------------- demo: MIMIC


def test_demo_mimic_layout_and_keys(demo: DemoPaths, mimic_table: pl.DataFrame) -> None:
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
    assert sorted(rl) == sorted(mm)


def test_demo_mimic_statements_and_measurements_match_signal(
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
        x = _read_canonical(demo.mimic / row["path"])
        hr = _lead_ii_hr(x)
        assert abs(60000 / hr - rr) / rr < 0.05, (rr, hr)
        assert rhythm_words[findings[0]] == _rhythm_of_hr(60000 / rr)
        p_on, p_end, q_on, q_end, t_end = (
            int(row[c]) for c in ("p_onset", "p_end", "qrs_onset", "qrs_end", "t_end")
        )
        assert p_on < p_end < q_on < q_end < t_end < p_on + rr
        assert 60 <= q_end - q_on <= 120
        assert -30 <= int(row["qrs_axis"]) <= 90
    assert "Normal ECG" in seen or "Borderline ECG" in seen


# ----------------------------------------------------------------------------- defects, files


def test_demo_defects_present_as_documented(
    demo: DemoPaths, ptbxl_db: pl.DataFrame, mimic_table: pl.DataFrame
) -> None:
    assert len(demo.defects) == 5
    note = (demo.ptbxl.parent / "SYNTHETIC.md").read_text()
    assert "NOT PhysioNet data" in note
    assert all(d.record_id in note and d.path in note for d in demo.defects)

    gap = _defect(demo, "ptbxl", "NaN gap")
    flat = _defect(demo, "ptbxl", "flat")
    empty = _defect(demo, "ptbxl", "empty report")
    for ecg_id, report, rel in ptbxl_db.select("ecg_id", "report", "filename_hr").iter_rows():
        x = _read_canonical(demo.ptbxl / rel)
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
    assert np.isnan(_read_canonical(demo.ptbxl / lr)).sum() in (4, 5)

    silent = int(_defect(demo, "mimic", "statements empty"))
    nan_lead = int(_defect(demo, "mimic", "NaN"))
    for row in mimic_table.iter_rows(named=True):
        statements = [row[c] for c in MM_REPORTS if row[c]]
        assert (not statements) == (row["study_id"] == silent)
        raw = wfdb.rdrecord(str(demo.mimic / row["path"]))
        nan = np.isnan(raw.p_signal)
        if row["study_id"] == nan_lead:
            assert raw.sig_name[5] == "aVL" and nan[:, 5].all() and nan.sum() == 5000
        else:
            assert not nan.any()


def test_demo_is_byte_identical_for_the_same_seed(demo: DemoPaths, tmp_path: Path) -> None:
    first = _tree_digest(demo.ptbxl.parent)
    again = write_demo(tmp_path / "out", N_PTBXL, N_MIMIC, seed=SEED)
    assert again.defects == demo.defects
    assert _tree_digest(tmp_path / "out") == first
    n_files = 2 * (2 * N_PTBXL + N_MIMIC) + 4 + 1
    assert len(first) == n_files
    with pytest.raises(FileExistsError):
        write_demo(tmp_path / "out", N_PTBXL, N_MIMIC, seed=SEED)
    write_demo(tmp_path / "out", N_PTBXL, N_MIMIC, seed=SEED, overwrite=True)
    assert _tree_digest(tmp_path / "out") == first


def test_demo_refuses_to_delete_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "ptbxl").mkdir()
    (tmp_path / "ptbxl" / "keep.txt").write_text("real data")
    with pytest.raises(FileExistsError):
        write_demo(tmp_path, overwrite=True)
    assert (tmp_path / "ptbxl" / "keep.txt").exists()


def test_demo_csvs_read_with_polars(demo: DemoPaths) -> None:
    for csv_path in [*demo.ptbxl.glob("*.csv"), *demo.mimic.glob("*.csv")]:
        frame = pl.read_csv(csv_path)
        assert frame.height > 0
    mm = pl.read_csv(demo.mimic / "machine_measurements.csv")
    assert mm["rr_interval"].dtype == pl.Int64 and mm["study_id"].n_unique() == N_MIMIC
