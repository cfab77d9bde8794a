"""Adversarial metadata CSVs: every bad row is a rejection with its reason, every unusable file is
one line and exit 2 before any work, every other row is kept with the data of a clean build.

Each case copies a clean input folder (the real PTB-XL sample; a MIMIC-IV-ECG folder written by
``write_mimic_layout`` from real PTB-XL signals), edits its CSVs, and runs
``meit-corpus build --workers 1``. Row cases assert the exact kept ids, the exact ledger
(record id -> reason, detail holding the offending value), seen = kept + rejected with seen = the
CSV's data rows, every kept row equal to the clean build's row (except the cells the case
changed on purpose), and that a rerun leaves shards, ledger and fingerprints byte-identical.
File cases assert the one line the CLI prints (exit 2), the same ``InputError`` from
``pipeline.build.build`` raised before its plan step (fingerprints, units) runs, and that the output
folder was not created.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import wfdb

from pipeline.build import Steps, build
from pipeline.cli import main
from pipeline.config import BuildConfig
from pipeline.errors import InputError
from pipeline.leads import canonical_order
from pipeline.plan import make_plan
from pipeline.sources.mimic import MimicLayoutRecord, write_mimic_layout
from schemas import DATA_DIR, FINGERPRINTS, REJECTIONS, read_manifest, source_dir

PTBXL_CSV = "ptbxl_database.csv"
RECORD_LIST = "record_list.csv"
MEASUREMENTS = "machine_measurements.csv"

Edit = Callable[[Path], None]
"""Edits an input folder in place (files are hard links of the clean copy: always replace)."""


# ---------------------------------------------------------------- editing CSVs


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new inode (the clean folder's hard link stays as it was)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def csv_bytes(header: list[str], rows: list[list[str]], eol: str = "\n") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=eol).writerows([header, *rows])
    return buf.getvalue().encode("utf-8")


def table_edit(name: str, fn: Callable[[list[str], list[list[str]]], None]) -> Edit:
    """Edit ``name`` as a header and rows (``fn`` changes them in place)."""

    def edit(root: Path) -> None:
        header, rows = read_rows(root / name)
        fn(header, rows)
        replace_file(root / name, csv_bytes(header, rows))

    return edit


def cells(name: str, key: str, value: str, /, **changes: str) -> Edit:
    """Set cells of the first row whose ``key`` column is ``value``."""

    def fn(header: list[str], rows: list[list[str]]) -> None:
        row = next(r for r in rows if r[header.index(key)] == value)
        for col, cell in changes.items():
            row[header.index(col)] = cell

    return table_edit(name, fn)


def append_copy(name: str, key: str, value: str, /, **changes: str) -> Edit:
    """Append a copy of the first row whose ``key`` is ``value``, with some cells changed."""

    def fn(header: list[str], rows: list[list[str]]) -> None:
        row = list(next(r for r in rows if r[header.index(key)] == value))
        for col, cell in changes.items():
            row[header.index(col)] = cell
        rows.append(row)

    return table_edit(name, fn)


def drop_column(name: str, column: str) -> Edit:
    def fn(header: list[str], rows: list[list[str]]) -> None:
        i = header.index(column)
        for r in (header, *rows):
            del r[i]

    return table_edit(name, fn)


def raw_edit(name: str, fn: Callable[[bytes], bytes]) -> Edit:
    def edit(root: Path) -> None:
        replace_file(root / name, fn((root / name).read_bytes()))

    return edit


def both(*edits: Edit) -> Edit:
    def edit(root: Path) -> None:
        for e in edits:
            e(root)

    return edit


def reordered(name: str) -> Edit:
    """Columns in reverse order and one extra column."""

    def fn(header: list[str], rows: list[list[str]]) -> None:
        for r in (header, *rows):
            r.reverse()
            r.append("extra" if r is header else "x")

    return table_edit(name, fn)


def crlf_with_bom(name: str) -> Edit:
    def edit(root: Path) -> None:
        header, rows = read_rows(root / name)
        replace_file(root / name, b"\xef\xbb\xbf" + csv_bytes(header, rows, eol="\r\n"))

    return edit


def blank_lines(name: str) -> Edit:
    """A blank line and a line of empty cells between the rows."""

    def edit(root: Path) -> None:
        lines = (root / name).read_bytes().split(b"\n")
        commas = b"," * lines[0].count(b",")
        replace_file(root / name, b"\n".join([*lines[:3], b"", commas, *lines[3:]]))

    return edit


def semicolons(data: bytes) -> bytes:
    """The CSV re-written with ``;`` between fields (as a German spreadsheet saves it)."""
    buf = io.StringIO()
    csv.writer(buf, delimiter=";", lineterminator="\n").writerows(
        csv.reader(io.StringIO(data.decode("utf-8")))
    )
    return buf.getvalue().encode("utf-8")


def ptbxl(ecg_id: str, /, **changes: str) -> Edit:
    return cells(PTBXL_CSV, "ecg_id", ecg_id, **changes)


def record_list(study: str, /, **changes: str) -> Edit:
    return cells(RECORD_LIST, "study_id", study, **changes)


def measurements(study: str, /, **changes: str) -> Edit:
    return cells(MEASUREMENTS, "study_id", study, **changes)


def with_bytes(name: str, old: bytes, new: bytes) -> Edit:
    return raw_edit(name, lambda b: b.replace(old, new, 1))


def write_empty(name: str) -> Edit:
    return raw_edit(name, lambda b: b"")


def header_only(name: str) -> Edit:
    return raw_edit(name, lambda b: b.split(b"\n", 1)[0] + b"\n")


def remove(name: str) -> Edit:
    return lambda root: (root / name).unlink()


# ---------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Rows:
    """Row-level outcome: the source's kept ids, and rejections beyond the clean build's."""

    drop: frozenset[str] = frozenset()  # ids of the clean build no longer kept
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> reason, in detail
    changed: dict[str, dict[str, object]] = field(default_factory=dict)  # kept id -> cells


@dataclass(frozen=True)
class Refused:
    """File-level outcome: the one line after ``input error:`` ({file} = the CSV's path)."""

    line: str
    file: str
    prefix: bool = False  # the line only starts with ``line`` (the rest is polars' own words)


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # "ptbxl" | "mimic"
    edit: Edit
    outcome: Rows | Refused


def rows(*drop: str, changed: dict | None = None, **rejected: tuple[str, str]) -> Rows:
    """Rows(...) with rejections as keyword arguments (``r_<id>`` for ids that are not names)."""
    ids = {k.removeprefix("r_").replace("_row", "#row"): v for k, v in rejected.items()}
    return Rows(frozenset(drop), ids, changed or {})


P, M = "ptbxl", "mimic"
S1, S2, S3 = "40000001", "40000002", "40000003"  # MIMIC studies: rows 1-3 of both CSVs
INVALID_ID, DUP, TEXT = "invalid_id", "duplicate_id", "invalid_text"
PATIENT, META = "invalid_patient_id", "invalid_metadata"
REPORT_6001 = "sinusrhythmus p-verbreiterung lagetyp normal st & t abnormal, pathologisch"
LATIN1_REPORT = "sinusrhythmus überdrehter linkstyp"

CASES = [
    # ---- PTB-XL ecg_id (data rows: 1, 6000, 6001, 6002, 6004 ... 6008 = rows 1..9)
    Case("ecg_id_nan", P, ptbxl("6001", ecg_id="NaN"), rows("6001", row3=(INVALID_ID, "'NaN'"))),
    Case("ecg_id_empty", P, ptbxl("6001", ecg_id=""), rows("6001", row3=(INVALID_ID, "empty"))),
    Case(
        "ecg_id_letters",
        P,
        ptbxl("6001", ecg_id="6001a"),
        rows("6001", row3=(INVALID_ID, "'6001a'")),
    ),
    Case(
        "ecg_id_fraction",
        P,
        ptbxl("6001", ecg_id="6001.5"),
        rows("6001", row3=(INVALID_ID, "'6001.5'")),
    ),
    Case(
        "ecg_id_exponent", P, ptbxl("6001", ecg_id="6e3"), rows("6001", row3=(INVALID_ID, "'6e3'"))
    ),
    Case(
        "ecg_id_negative",
        P,
        ptbxl("6001", ecg_id="-6001"),
        rows("6001", row3=(INVALID_ID, "'-6001'")),
    ),
    Case(
        "ecg_id_beyond_int64",
        P,
        ptbxl("6001", ecg_id="99999999999999999999"),
        rows("6001", row3=(INVALID_ID, "'99999999999999999999' is out of range")),
    ),
    Case("ecg_id_integer_as_float", P, ptbxl("6001", ecg_id="6001.0"), rows()),
    Case("ecg_id_whitespace", P, ptbxl("6001", ecg_id=" 6001 "), rows()),
    Case("ecg_id_leading_zeros", P, ptbxl("6001", ecg_id="06001"), rows()),
    # ---- duplicate ids: the first row by file order is kept, the others are rejected
    Case(
        "ecg_id_repeated_later",
        P,
        append_copy(PTBXL_CSV, "ecg_id", "6002", ecg_id="6001"),
        rows(r_6001_row10=(DUP, "ecg_id 6001 repeats row 3")),
    ),
    Case(
        "ecg_id_repeated_as_float",
        P,
        append_copy(PTBXL_CSV, "ecg_id", "6005", ecg_id="6005.0"),
        rows(r_6005_row10=(DUP, "ecg_id 6005 repeats row 6")),
    ),
    Case(
        "ecg_id_repeated_earlier_row_wins",
        P,
        ptbxl("6002", ecg_id="6001"),  # row 4 now says 6001 too: row 3 (the real 6001) wins
        rows("6002", r_6001_row4=(DUP, "ecg_id 6001 repeats row 3")),
    ),
    # ---- patient ids: never one shared null patient
    Case(
        "patient_id_empty_twice",
        P,
        both(ptbxl("6000", patient_id=""), ptbxl("6001", patient_id="")),
        rows(
            "6000",
            "6001",
            r_6000=(PATIENT, "patient_id is empty"),
            r_6001=(PATIENT, "patient_id is empty"),
        ),
    ),
    Case(
        "patient_id_letters",
        P,
        ptbxl("6001", patient_id="abc"),
        rows("6001", r_6001=(PATIENT, "'abc'")),
    ),
    Case(
        "patient_id_nan",
        P,
        ptbxl("6001", patient_id="NaN"),
        rows("6001", r_6001=(PATIENT, "'NaN'")),
    ),
    Case(
        "patient_id_beyond_int64",
        P,
        ptbxl("6001", patient_id="1e400"),
        rows("6001", r_6001=(PATIENT, "'1e400'")),
    ),
    Case(
        "patient_in_two_folds",
        P,
        ptbxl("6000", patient_id="12976.0"),  # 6001's patient; 6000 is fold 10, 6001 fold 7
        Refused("ptbxl: 1 patients fall in more than one split", ""),
    ),
    # ---- scp_codes, strat_fold, sex, age
    Case(
        "scp_value_not_a_number",
        P,
        ptbxl("6001", scp_codes="{'NST_': 'x', 'SR': 0.0}"),
        rows("6001", r_6001=(META, "'NST_' -> 'x' is not code -> number")),
    ),
    Case(
        "scp_not_a_dict",
        P,
        ptbxl("6001", scp_codes="['NST_', 'SR']"),
        rows("6001", r_6001=(META, "scp_codes \"['NST_', 'SR']\" is not a dict literal")),
    ),
    Case(
        "scp_unparsable",
        P,
        ptbxl("6001", scp_codes="{'NST_': 100.0,"),
        rows("6001", r_6001=(META, "is not a dict literal")),
    ),
    Case(
        "scp_boolean_likelihood",
        P,
        ptbxl("6001", scp_codes="{'NST_': True}"),
        rows("6001", r_6001=(META, "'NST_' -> True")),
    ),
    Case(
        "scp_infinite_likelihood",
        P,
        ptbxl("6001", scp_codes="{'NST_': 1e999}"),
        rows("6001", r_6001=(META, "'NST_' -> inf")),
    ),
    Case(
        "scp_numeric_code",
        P,
        ptbxl("6001", scp_codes="{1: 100.0, 'SR': 0.0}"),
        rows("6001", r_6001=(META, "1 -> 100.0")),
    ),
    Case(
        "scp_empty_means_no_statements",
        P,
        ptbxl("6001", scp_codes=""),
        rows(changed={"6001": {"scp_codes": None}}),
    ),
    Case(
        "fold_letters",
        P,
        ptbxl("6001", strat_fold="x"),
        rows("6001", r_6001=(META, "strat_fold 'x'")),
    ),
    Case("fold_fraction", P, ptbxl("6001", strat_fold="7.5"), rows("6001", r_6001=(META, "'7.5'"))),
    Case(
        "fold_empty_has_no_split",
        P,
        ptbxl("6001", strat_fold=""),
        rows("6001", r_6001=("no_split", "strat_fold=None")),
    ),
    Case("sex_two", P, ptbxl("6001", sex="2"), rows("6001", r_6001=(META, "sex '2'"))),
    Case("sex_empty_is_unknown", P, ptbxl("6001", sex=""), rows(changed={"6001": {"sex": None}})),
    Case("age_letters", P, ptbxl("6001", age="old"), rows("6001", r_6001=(META, "age 'old'"))),
    Case("age_negative", P, ptbxl("6001", age="-3"), rows("6001", r_6001=(META, "age '-3'"))),
    Case("age_nan_is_unknown", P, ptbxl("6001", age="NaN"), rows(changed={"6001": {"age": None}})),
    Case("age_300_is_90", P, ptbxl("6001", age="300"), rows(changed={"6001": {"age": 90.0}})),
    Case(
        "path_empty",
        P,
        ptbxl("6001", filename_hr=""),
        rows("6001", r_6001=("missing_file", "no record path")),
    ),
    # ---- bytes and layout of the file
    Case(
        "invalid_utf8_in_report",
        P,
        with_bytes(PTBXL_CSV, b"p-verbreiterung", b"p-verbr\xffiterung"),
        rows(
            "6001",
            r_6001=(TEXT, "row 3: report holds invalid UTF-8 b'sinusrhythmus p-verbr\\xffiterung"),
        ),
    ),
    Case(
        "invalid_utf8_in_patient_id",
        P,
        with_bytes(PTBXL_CSV, b"12976.0", b"129\xc376.0"),
        rows("6001", r_6001=(TEXT, "patient_id holds invalid UTF-8 b'129\\xc376.0'")),
    ),
    Case(
        "invalid_utf8_in_unused_column",
        P,
        with_bytes(PTBXL_CSV, b"AT-6     6", b"AT-6 \xfe   6"),
        rows(),
    ),
    Case(
        "latin1_file",
        P,
        both(
            ptbxl("6007", report=LATIN1_REPORT),
            raw_edit(PTBXL_CSV, lambda b: b.decode("utf-8").encode("cp1252")),
        ),
        rows("6007", r_6007=(TEXT, "b'sinusrhythmus \\xfcberdrehter linkstyp'")),
    ),
    Case(
        "report_with_quoted_newline",
        P,
        ptbxl("6004", report="sinus rhythm.\nnormal ecg."),
        rows(changed={"6004": {"report_original": "sinus rhythm.\nnormal ecg."}}),
    ),
    Case("bom_and_crlf", P, crlf_with_bom(PTBXL_CSV), rows()),
    Case("columns_reversed_plus_extra", P, reordered(PTBXL_CSV), rows()),
    Case("blank_lines", P, blank_lines(PTBXL_CSV), rows()),
    Case(
        "row_with_an_unquoted_comma",
        P,
        with_bytes(PTBXL_CSV, b'"' + REPORT_6001.encode() + b'"', REPORT_6001.encode()),
        Refused(
            "{file} does not parse as CSV: data row 3 has 29 fields, the header 28",
            PTBXL_CSV,
        ),
    ),
    Case(
        "unterminated_quote",
        P,
        raw_edit(PTBXL_CSV, lambda b: b + b'9999,1.0,,,,,,,,,"never closed\n'),
        Refused("{file} does not parse as CSV: ", PTBXL_CSV, prefix=True),
    ),
    # ---- PTB-XL files unusable as a whole
    *(
        Case(
            f"no_{col}_column",
            P,
            drop_column(PTBXL_CSV, col),
            Refused(f"{{file}} lacks required column(s) '{col}'", PTBXL_CSV),
        )
        for col in ("ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_hr")
    ),
    Case(
        "semicolon_separated",
        P,
        raw_edit(PTBXL_CSV, semicolons),
        Refused(
            "{file} does not parse as CSV: data row 1 has 5 fields, the header 1 "
            "(the header is one column: is the file ';'-separated?)",
            PTBXL_CSV,
        ),
    ),
    Case(
        "utf16_file",
        P,
        raw_edit(PTBXL_CSV, lambda b: b.decode("utf-8").encode("utf-16")),
        Refused("{file} is UTF-16 text (it starts with a UTF-16 mark): save as UTF-8", PTBXL_CSV),
    ),
    Case(
        "record_list_semicolon_separated",
        M,
        raw_edit(RECORD_LIST, lambda b: semicolons(b)),
        Refused(
            "{file} lacks required column(s) 'subject_id', 'study_id', 'path' "
            "(the header is one column: is the file ';'-separated?)",
            RECORD_LIST,
        ),
    ),
    Case(
        "column_twice",
        P,
        table_edit(PTBXL_CSV, lambda h, rs: [h.__setitem__(h.index("nurse"), "ecg_id")]),
        Refused("{file}: column(s) 'ecg_id' appear twice", PTBXL_CSV),
    ),
    Case(
        "empty_file",
        P,
        write_empty(PTBXL_CSV),
        Refused("{file} is empty: no header line", PTBXL_CSV),
    ),
    Case(
        "header_only",
        P,
        header_only(PTBXL_CSV),
        Refused("{file} has a header but no rows", PTBXL_CSV),
    ),
    Case(
        "no_database_csv",
        P,
        remove(PTBXL_CSV),
        Refused("{file} not found: is {root} a PTB-XL folder?", PTBXL_CSV),
    ),
    Case(
        "scp_statements_invalid_utf8",
        P,
        with_bytes("scp_statements.csv", b"non-specific ST", b"non-specific \xa7ST"),
        Refused(
            "{file} row 2: description holds invalid UTF-8 b'non-specific \\xa7ST changes'",
            "scp_statements.csv",
        ),
    ),
    Case(
        "scp_statements_without_rhythm",
        P,
        drop_column("scp_statements.csv", "rhythm"),
        Refused("{file} lacks required column(s) 'rhythm'", "scp_statements.csv"),
    ),
    Case(
        "scp_statements_empty",
        P,
        write_empty("scp_statements.csv"),
        Refused("{file} is empty: no header line", "scp_statements.csv"),
    ),
    # ---- MIMIC-IV-ECG record_list.csv (rows: S1, S2, S3)
    Case(
        "study_id_empty",
        M,
        record_list(S2, study_id=""),
        rows(S2, row2=(INVALID_ID, "study_id is empty")),
    ),
    Case("study_id_nan", M, record_list(S2, study_id="NaN"), rows(S2, row2=(INVALID_ID, "'NaN'"))),
    Case("study_id_as_float", M, record_list(S2, study_id=f"{S2}.0"), rows()),
    Case(
        "study_id_beyond_int64",
        M,
        record_list(S2, study_id="123456789012345678901234"),
        rows(S2, row2=(INVALID_ID, "out of range")),
    ),
    Case(
        "subject_id_empty",
        M,
        record_list(S2, subject_id=""),
        rows(S2, **{f"r_{S2}": (PATIENT, "subject_id is empty")}),
    ),
    Case(
        "subject_id_negative",
        M,
        record_list(S2, subject_id="-10000032"),
        rows(S2, **{f"r_{S2}": (PATIENT, "'-10000032'")}),
    ),
    Case(
        "study_listed_twice",
        M,
        append_copy(RECORD_LIST, "study_id", S1),
        rows(**{f"r_{S1}_row4": (DUP, f"study_id {S1} repeats row 1")}),
    ),
    Case(
        "record_path_empty",
        M,
        record_list(S3, path=""),
        rows(S3, **{f"r_{S3}": ("missing_file", "no record path")}),
    ),
    Case(
        "invalid_utf8_in_record_path",
        M,
        with_bytes(RECORD_LIST, f"/{S3}\n".encode(), f"/{S3}".encode() + b"\xff\n"),
        rows(S3, **{f"r_{S3}": (TEXT, "record_list.csv row 3: path holds invalid UTF-8")}),
    ),
    Case("record_list_bom_and_crlf", M, crlf_with_bom(RECORD_LIST), rows()),
    Case("record_list_reversed_plus_extra", M, reordered(RECORD_LIST), rows()),
    Case(
        "no_path_column",
        M,
        drop_column(RECORD_LIST, "path"),
        Refused("{file} lacks required column(s) 'path'", RECORD_LIST),
    ),
    Case(
        "record_list_empty",
        M,
        write_empty(RECORD_LIST),
        Refused("{file} is empty: no header line", RECORD_LIST),
    ),
    Case(
        "record_list_header_only",
        M,
        header_only(RECORD_LIST),
        Refused("{file} has a header but no rows", RECORD_LIST),
    ),
    Case(
        "no_record_list",
        M,
        remove(RECORD_LIST),
        Refused("{file} not found: is {root} a MIMIC-IV-ECG folder?", RECORD_LIST),
    ),
    # ---- MIMIC-IV-ECG machine_measurements.csv
    Case(
        "measurements_row_repeated_identically",
        M,
        append_copy(MEASUREMENTS, "study_id", S2),
        rows(),
    ),
    Case(
        "measurements_rows_disagree",
        M,
        append_copy(MEASUREMENTS, "study_id", S2, report_0="Atrial fibrillation"),
        rows(
            S2,
            **{
                f"r_{S2}": (
                    "conflicting_measurements",
                    f"machine_measurements.csv rows 2, 4 differ for subject_id 10000032 "
                    f"study_id {S2}",
                )
            },
        ),
    ),
    Case(
        "measurements_without_a_record",
        M,
        append_copy(MEASUREMENTS, "study_id", S2, study_id="40000099"),
        rows(),
    ),
    Case(
        "record_without_measurements",
        M,
        table_edit(MEASUREMENTS, lambda h, rs: rs.pop(2)),
        rows(S3, **{f"r_{S3}": ("empty_report", "")}),
    ),
    Case(
        "measurements_under_another_subject",
        M,
        measurements(S3, subject_id="10000032"),
        rows(
            S3,
            **{
                f"r_{S3}": (
                    "conflicting_measurements",
                    f"machine_measurements.csv row 3 files study_id {S3} under subject_id "
                    "10000032, record_list.csv under 10000117",
                )
            },
        ),
    ),
    Case(
        "measurement_keys_as_floats",
        M,
        measurements(S2, subject_id="10000032.0", study_id=f"{S2}.0"),
        rows(),
    ),
    Case(
        "invalid_utf8_in_statement",
        M,
        with_bytes(MEASUREMENTS, b"Borderline ECG", b"Borderline \x80CG"),
        rows(
            S1,
            **{f"r_{S1}": (TEXT, "machine_measurements.csv row 1: report_2 holds invalid UTF-8")},
        ),
    ),
    Case(
        "invalid_utf8_in_unused_measurement_column",
        M,
        with_bytes(MEASUREMENTS, b"6848296", b"68\xee8296"),
        rows(),
    ),
    Case(
        "no_report_0_column",
        M,
        drop_column(MEASUREMENTS, "report_0"),
        Refused("{file} lacks required column(s) 'report_0'", MEASUREMENTS),
    ),
    Case(
        "measurements_empty",
        M,
        write_empty(MEASUREMENTS),
        Refused("{file} is empty: no header line", MEASUREMENTS),
    ),
    Case(
        "measurements_header_only",
        M,
        header_only(MEASUREMENTS),
        rows(
            S1,
            S2,
            S3,
            **{f"r_{s}": ("empty_report", "") for s in (S1, S2, S3)},
        ),
    ),
    Case(
        "measurements_row_with_extra_field",
        M,
        raw_edit(MEASUREMENTS, lambda b: b.replace(b"Borderline ECG", b"Borderline ECG,x", 1)),
        Refused(
            "{file} does not parse as CSV: data row 1 has 34 fields, the header 33",
            MEASUREMENTS,
        ),
    ),
]


# ---------------------------------------------------------------- inputs and builds


def real_signals(ptbxl_sample: Path) -> list[np.ndarray]:
    """Three real PTB-XL records in canonical lead order, mV."""
    out = []
    for rel in ("06000/06000_hr", "06000/06002_hr", "06000/06004_hr"):
        rec = wfdb.rdrecord(str(ptbxl_sample / "records500" / rel))
        out.append(rec.p_signal.T[canonical_order(rec.sig_name)])
    return out


STATEMENTS = ("Sinus rhythm", "Possible right atrial abnormality", "Borderline ECG")


def write_mimic(ptbxl_sample: Path, root: Path) -> Path:
    """Studies S1, S2 (subject 10000032) and S3 (subject 10000117) in MIMIC's layout."""
    when = datetime(2180, 7, 23, 8)
    studies = [(10000032, S1), (10000032, S2), (10000117, S3)]
    machine = {"cart_id": "6848296", "rr_interval": "800", "qrs_axis": "60"}
    return write_mimic_layout(
        root,
        [
            MimicLayoutRecord(subj, int(study), when + timedelta(hours=i), x, STATEMENTS, machine)
            for i, ((subj, study), x) in enumerate(zip(studies, real_signals(ptbxl_sample)))
        ],
    )


def corpus_rows(out: Path, source: str) -> dict[str, dict]:
    """Record id -> row of the built corpus."""
    rows = {}
    for path in sorted((out / source_dir(source)).glob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            rows[row["record_id"]] = row
    return rows


def ledger(out: Path) -> dict[str, tuple[str, str]]:
    table = pq.read_table(out / REJECTIONS).to_pylist()
    return {r["record_id"]: (r["reason"], r["detail"]) for r in table}


def written(out: Path) -> dict[str, str]:
    """sha256 of shards, ledger and fingerprints."""
    files = [*sorted(out.glob(f"{DATA_DIR}/*/*.parquet")), out / REJECTIONS]
    files.append(out / FINGERPRINTS)
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def data_rows(path: Path) -> int:
    """Data rows of a CSV as Python's csv module counts them (blank lines and lines of empty
    cells are not rows)."""
    text = path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    parsed = list(csv.reader(io.StringIO(text)))
    return sum(1 for r in parsed[1:] if any(c.strip() for c in r))


def cli_build(source: str, root: Path, out: Path, capsys) -> tuple[int, str]:
    code = main(["build", f"--{source}", str(root), "--out", str(out), "--workers", "1"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@dataclass(frozen=True)
class Clean:
    root: Path
    out: Path
    rows: dict[str, dict]
    ledger: dict[str, tuple[str, str]]


@pytest.fixture(scope="module")
def clean(ptbxl_sample: Path, tmp_path_factory) -> dict[str, Clean]:
    """A clean input folder per source and its build."""
    tmp = tmp_path_factory.mktemp("metadata-clean")
    shutil.copytree(ptbxl_sample, tmp / "ptbxl", ignore=shutil.ignore_patterns("records100"))
    write_mimic(ptbxl_sample, tmp / "mimic")
    out = {}
    for source in ("ptbxl", "mimic"):
        cfg = BuildConfig(**{source: tmp / source}, out=tmp / f"out-{source}", workers=1)
        build(cfg)
        o = cfg.out
        out[source] = Clean(tmp / source, o, corpus_rows(o, source), ledger(o))
    return out


def test_clean_inputs_are_what_the_cases_assume(clean: dict[str, Clean]) -> None:
    p, m = clean["ptbxl"], clean["mimic"]
    assert sorted(p.rows) == ["6000", "6001", "6002", "6004", "6005", "6006", "6007", "6008"]
    assert p.ledger == {"1": ("missing_file", p.ledger["1"][1])}  # records100 only
    assert sorted(m.rows) == [S1, S2, S3] and m.ledger == {}
    _, listed = read_rows(m.root / RECORD_LIST)
    _, measured = read_rows(m.root / MEASUREMENTS)
    assert [r[1] for r in listed] == [r[1] for r in measured] == [S1, S2, S3]


def case_input(clean: Clean, case: Case, tmp_path: Path) -> Path:
    """A hard-linked copy of the clean folder, edited."""
    root = tmp_path / clean.root.name
    shutil.copytree(clean.root, root, copy_function=os.link)
    case.edit(root)
    return root


ROW_CASES = [c for c in CASES if isinstance(c.outcome, Rows)]
REFUSED_CASES = [c for c in CASES if isinstance(c.outcome, Refused)]


@pytest.mark.parametrize("case", ROW_CASES, ids=lambda c: c.name)
def test_bad_rows_are_rejected_with_their_reason(case: Case, clean, tmp_path, capsys) -> None:
    base, expect = clean[case.source], case.outcome
    root = case_input(base, case, tmp_path)
    out = tmp_path / "corpus"
    code, text = cli_build(case.source, root, out, capsys)
    assert code == 0, text
    got = corpus_rows(out, case.source)
    assert sorted(got) == sorted(set(base.rows) - expect.drop)
    expected_ledger = {**base.ledger, **expect.rejected}
    found = ledger(out)
    assert {k: v[0] for k, v in found.items()} == {k: v[0] for k, v in expected_ledger.items()}
    for rid, (_, fragment) in expect.rejected.items():
        assert fragment in found[rid][1], (rid, found[rid])
    counts = read_manifest(out).counts[case.source]
    main_csv = PTBXL_CSV if case.source == P else RECORD_LIST
    assert counts.seen == counts.kept_total + counts.rejected_total == data_rows(root / main_csv)
    for rid, row in got.items():
        changed = expect.changed.get(rid, {})
        for col, value in changed.items():
            assert row[col] == value, (rid, col)
        if changed:  # the cells changed; the waveform and patient stay the record's own
            same = ("ecg", "patient_id", "split", "source_fs")
            assert {c: row[c] for c in same} == {c: base.rows[rid][c] for c in same}
        else:
            assert row == base.rows[rid], rid
    before = written(out)
    assert cli_build(case.source, root, out, capsys)[0] == 0
    assert written(out) == before


@pytest.mark.parametrize("case", REFUSED_CASES, ids=lambda c: c.name)
def test_unusable_files_are_one_line_before_any_work(case: Case, clean, tmp_path, capsys) -> None:
    base, expect = clean[case.source], case.outcome
    root = case_input(base, case, tmp_path)
    line = expect.line.format(file=root / expect.file, root=root)
    out = tmp_path / "corpus"
    code, text = cli_build(case.source, root, out, capsys)
    errors = [ln for ln in text.splitlines() if ln.startswith("input error:")]
    assert code == 2 and len(errors) == 1, text
    if expect.prefix:
        assert errors[0].startswith(f"input error: {line}"), errors[0]
    else:
        assert errors[0] == f"input error: {line}"
    assert "Traceback" not in text and not out.exists()
    planned = []  # discovery refuses the inputs: no plan (fingerprints, units) is ever made

    def plan(*args):
        planned.append(args)
        return make_plan(*args)

    cfg = BuildConfig(**{case.source: root}, out=out, workers=1)
    with pytest.raises(InputError) as raised:
        build(cfg, steps=Steps(plan=plan))
    assert f"input error: {raised.value}" == errors[0]
    assert not out.exists() and not planned
