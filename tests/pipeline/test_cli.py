"""The main job on a fresh machine: `meit-corpus build` with no input builds the synthetic demo."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from schemas import CARD, read_manifest


def test_demo_build_validate_inspect(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["build", "--workers", "2"]) == 0
    corpus = tmp_path / "corpus"
    manifest = read_manifest(corpus)
    assert all(c.synthetic for c in manifest.counts.values())
    assert "SYNTHETIC DATA" in (corpus / CARD).read_text()
    for c in manifest.counts.values():
        assert c.seen == c.kept_total + c.rejected_total
    # The demo's documented defects: two rejections per source, one repaired NaN gap.
    assert manifest.counts["ptbxl"].rejected == {"empty_report": 1, "flat_lead": 1}
    assert manifest.counts["mimic"].rejected == {"empty_report": 1, "too_much_nan": 1}
    repaired = [
        r
        for f in manifest.files
        for r in pq.read_table(corpus / f.path, columns=["id", "nan_repaired"]).to_pylist()
        if r["nan_repaired"]
    ]
    assert [r["nan_repaired"] for r in repaired] == [20]
    assert main(["validate", str(corpus)]) == 0
    capsys.readouterr()
    png = tmp_path / "rec.png"
    assert main(["inspect", str(corpus), "--id", repaired[0]["id"], "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    out = capsys.readouterr().out
    stats = json.loads(out[: out.rindex("}") + 1])
    assert stats["rows"]["ptbxl"]["train"] == manifest.counts["ptbxl"].kept["train"]
    # A picture asked for under a file: the OS error is one line and exit 2 (cli._run).
    code, lines = run_cli(["inspect", str(corpus), "--out", str(png / "x.png")], capsys)
    assert code == 2 and len(lines) == 1 and str(png) in lines[0], lines


# ---------------------------------------------------------------- a user's mistakes: one line, exit 2


def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    """``meit-corpus argv`` in this process: its exit code (argparse exits too) and the non-blank
    lines it printed on stdout and stderr together."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, [line for line in (captured.out + captured.err).splitlines() if line.strip()]


MISTAKES = {
    # name: (command line, a fragment of the one line it must print)
    "yaml_syntax": (["build", "--config", "{d}/bad.yaml"], "bad.yaml:2:1: YAML syntax error"),
    "config_key_typo": (["build", "--config", "{d}/typo.yaml"], "ptbx: unknown key"),
    "not_ptbxl_folder": (["build", "--ptbxl", "{d}/empty"], "a PTB-XL folder?"),
    "not_mimic_folder": (["build", "--mimic", "{d}/empty"], "a MIMIC-IV-ECG folder?"),
    "missing_input": (["build", "--ptbxl", "{d}/gone"], "input folder does not exist"),
    "unknown_url_protocol": (["build", "--ptbxl", "foo://x/ptbxl"], "Protocol not known: foo"),
    "out_is_a_file": (["build", "--ptbxl", "{ptbxl}", "--out", "{d}/a-file"], "is a file"),
    "demo_out_is_a_file": (["build", "--out", "{d}/a-file"], "is a file"),  # no demo-data
    "abbreviated_option": (["build", "--ptbx", "{ptbxl}"], "unrecognized arguments: --ptbx"),
    "negative_workers": (["build", "--workers", "-1"], "not a whole number >= 0"),
    "workers_not_a_number": (["build", "--workers", "two"], "not a whole number >= 0"),
    "no_command": ([], "required: COMMAND"),
    "unknown_command": (["biuld"], "invalid choice: 'biuld'"),
    "validate_missing_folder": (["validate", "{d}/gone"], "no such folder"),
    "validate_a_file": (["validate", "{d}/a-file"], "not a folder"),
    "verify_missing_folder": (["verify-inputs", "{d}/gone"], "no such folder"),
    "inspect_missing_corpus": (["inspect", "{d}/gone"], "gone"),
}


@pytest.fixture
def mistakes_site(tmp_path: Path) -> Path:
    """A folder with what the mistakes point at: an empty folder, a file, bad configs."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "bad.yaml").write_text("ptbxl: [a\n")
    (tmp_path / "typo.yaml").write_text("ptbx: /data/ptb-xl\n")
    return tmp_path


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_mistake_is_one_line_and_exit_2_before_work(
    name, mistakes_site, ptbxl_sample, capsys, monkeypatch
):
    argv, fragment = MISTAKES[name]
    monkeypatch.chdir(mistakes_site)
    args = [a.format(d=mistakes_site, ptbxl=ptbxl_sample) for a in argv]
    before = sorted(p.name for p in mistakes_site.iterdir())
    code, lines = run_cli(args, capsys)
    assert code == 2 and len(lines) == 1 and fragment in lines[0], (code, lines)
    assert "Traceback" not in lines[0]
    assert sorted(p.name for p in mistakes_site.iterdir()) == before  # nothing written


def test_version_and_help_speak_to_users(capsys):
    from importlib.metadata import version

    code, lines = run_cli(["--version"], capsys)
    assert (code, lines) == (0, [f"meit-corpus {version('meit-corpus')}"])
    code, lines = run_cli(["--help"], capsys)
    text = "\n".join(lines)
    assert code == 0 and "PTB-XL" in text and "examples:" in text
    assert "Handlers" not in text and "``" not in text  # no developer docstring
    code, lines = run_cli(["build", "--help"], capsys)
    assert code == 0 and "--ptbxl FOLDER" in "\n".join(lines)


def test_verify_inputs_workers_0_means_all_cores(tmp_path: Path, capsys):
    """``--workers 0`` is "all cores" for every command (it was a ProcessPoolExecutor traceback
    for verify-inputs)."""
    import hashlib

    (tmp_path / "a.csv").write_text("x\n")
    digest = hashlib.sha256(b"x\n").hexdigest()
    (tmp_path / "SHA256SUMS.txt").write_text(f"{digest}  a.csv\n")
    code, lines = run_cli(["verify-inputs", str(tmp_path), "--workers", "0"], capsys)
    assert code == 0 and lines[-1].startswith("✓ 1 files checked"), lines


def test_config_paths_are_relative_to_the_config_file(
    tmp_path: Path, ptbxl_sample, capsys, monkeypatch
):
    """A config's relative paths are read from the config's folder, not the working folder: run
    from elsewhere, ``ptbxl: inputs/ptbxl`` and ``out: corpus`` name folders beside the file
    (command-line paths stay relative to the working folder)."""
    from pipeline.config_file import load_config

    conf = tmp_path / "project"
    (conf / "inputs").mkdir(parents=True)
    (conf / "inputs" / "ptbxl").symlink_to(ptbxl_sample, target_is_directory=True)
    (conf / "build.yaml").write_text(
        "ptbxl: inputs/ptbxl\nout: corpus\nsources: {}\ntext: {translation_csv: t.csv}\n"
    )
    (conf / "t.csv").write_text("ecg_id,report\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(conf / "build.yaml", workers=1)
    assert cfg.ptbxl == conf / "inputs" / "ptbxl" and cfg.out == conf / "corpus"
    assert cfg.text.translation_csv == conf / "t.csv"
    assert load_config(conf / "build.yaml", out=Path("here")).out == Path("here")
    # Through the command: a missing relative folder is named under the config's folder.
    (conf / "missing.yaml").write_text("mimic: nowhere\n")
    code, lines = run_cli(["build", "--config", str(conf / "missing.yaml")], capsys)
    assert (code, lines) == (
        2,
        [f"config error: mimic: input folder does not exist: {conf}/nowhere"],
    )
