"""Reading metadata CSVs lazily (``scan_metadata_csv``): only the used columns are kept, with the
same rows and checks as the eager reader that keeps every column."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.sources.record import INVALID_TEXT, ROW, read_metadata_csv, scan_metadata_csv

# a blank line is no row; ",,,z" is one (only an unused column holds a value); a bad byte in c
ROWS = b"a,b,c,d\n1,x,,q\n\n,,,z\n2,y,3\xff,\n"


def test_scan_keeps_only_used_columns_and_the_eager_rows(tmp_path: Path):
    csv = tmp_path / "meta.csv"
    csv.write_bytes(ROWS)
    eager = read_metadata_csv(csv, ["a"], ["c", "e"])
    lazy = scan_metadata_csv(csv, ["a"], ["c", "e"])
    assert lazy.collect_schema().names() == ["a", "c", ROW, INVALID_TEXT]
    assert eager.columns == ["a", "b", "c", "d", ROW, INVALID_TEXT]
    got = lazy.collect(engine="streaming")
    assert got.equals(eager.select(got.columns))
    assert got[ROW].to_list() == [1, 3, 4]
    assert got[INVALID_TEXT].to_list() == [
        None,
        None,
        "meta.csv row 4: c holds invalid UTF-8 b'3\\xff'",
    ]


def test_scan_refuses_what_the_eager_reader_refuses(tmp_path: Path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")  # the extra field is in a column no one reads
    with pytest.raises(InputError, match="data row 2 has 3 fields, the header 2"):
        scan_metadata_csv(ragged, ["a"])
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text("a;b\n1,2;3\n")  # does not parse: said before the missing column
    with pytest.raises(InputError, match="does not parse as CSV: data row 1 has 2 fields"):
        scan_metadata_csv(semicolons, ["a"])
    header_only = tmp_path / "empty.csv"
    header_only.write_text("a,b\n")
    with pytest.raises(InputError, match="has a header but no rows"):
        scan_metadata_csv(header_only, ["a"])
    assert scan_metadata_csv(header_only, ["a"], need_rows=False).collect().height == 0
    with pytest.raises(InputError, match="lacks required column"):
        scan_metadata_csv(header_only, ["z"])
