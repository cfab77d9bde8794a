"""SHA256SUMS.txt: parsing, and ``meit-corpus verify-inputs`` on a copy of the real PTB-XL sample."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest

from pipeline.checksums import SUMS_FILE, SUMS_KEY, attach_sums, listed_digests, parse_sums
from pipeline.cli import main
from pipeline.errors import InputError


def write_sums(root: Path) -> dict[str, str]:
    """Write PhysioNet's SHA256SUMS.txt for every file under ``root``; return it parsed."""
    sums = {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != SUMS_FILE
    }
    (root / SUMS_FILE).write_text("".join(f"{d}  {rel}\n" for rel, d in sums.items()))
    return sums


def flip_byte(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def summed_copy(ptbxl_sample: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_sample, root)
    write_sums(root)
    return root


def test_parse_sums_reads_physionet_lines_and_names_a_bad_line():
    digest = "ab" * 32
    assert parse_sums(f"{digest}  a/b.dat\n{digest.upper()} *c.hea\n\n") == {
        "a/b.dat": digest,
        "c.hea": digest,
    }
    assert parse_sums("") == {}
    with pytest.raises(InputError, match=r"SUMS line 4 .*'nonsense'"):
        parse_sums(f"\n{digest}  a.dat\n\nnonsense\n", "SUMS")
    with pytest.raises(InputError, match="line 1"):
        parse_sums(f"{digest}  ../outside.dat\n")


def test_attach_sums_gives_each_record_its_own_files_in_order():
    sums = pl.DataFrame(
        {
            "path": ["r/1.hea", "r/1.dat", "r/10.hea", "r/2.hea", "r/1_x.dat"],
            "sha256": ["a" * 64, "b" * 64, "c" * 64, "d" * 64, "e" * 64],
        }
    )
    records = pl.DataFrame({"record_id": ["2", "1", "3", "4"], "path": ["r/2", "r/1", "r/3", None]})
    got = attach_sums(records, sums)
    assert got.get_column("record_id").to_list() == ["2", "1", "3", "4"]
    listed = [listed_digests(v, p) for v, p in got.select(SUMS_KEY, "path").iter_rows()]
    assert listed == [{"r/2.hea": "d" * 64}, {"r/1.dat": "b" * 64, "r/1.hea": "a" * 64}, {}, {}]


def test_verify_inputs_clean_then_flipped(summed_copy: Path, capsys):
    (summed_copy / "notes.txt").write_text("mine")
    assert main(["verify-inputs", str(summed_copy), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "0 problem(s)" in out and "not listed: notes.txt" in out
    flip_byte(summed_copy / "records500/06000/06004_hr.dat")
    (summed_copy / "records500/06000/06007_hr.hea").unlink()
    assert main(["verify-inputs", str(summed_copy), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "mismatch: records500/06000/06004_hr.dat" in out
    assert "missing: records500/06000/06007_hr.hea" in out
    assert "2 problem(s)" in out


def test_verify_inputs_without_or_with_a_broken_sums_file_is_one_line(tmp_path: Path, capsys):
    assert main(["verify-inputs", str(tmp_path)]) == 2
    assert capsys.readouterr().out.strip().count("\n") == 0
    (tmp_path / SUMS_FILE).write_text(f"{'0' * 64}  a.dat\nnot a sum line\n")
    assert main(["verify-inputs", str(tmp_path)]) == 2
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "line 2" in out and SUMS_FILE in out
