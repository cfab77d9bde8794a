"""Adversarial build settings: every bad config is one line and exit 2 before any work.

Each case is a YAML file given to ``meit-corpus build --config`` (the real PTB-XL sample as input)
and the exact line the CLI prints. "Before any work" is checked by the output folder: it must not
exist afterwards. Valid settings at the edges of each bound are accepted (``ACCEPTED``).
"""

from __future__ import annotations

import hashlib
import shutil
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import wfdb

from pipeline.build import build_corpus
from pipeline.cli import main
from pipeline.conditioning import Loaded, condition
from pipeline.config import BuildConfig, batch_memory_bytes
from pipeline.config_file import load_config
from schemas import DATA_DIR, REJECTIONS

PTB = "ptbxl: {ptbxl}\n"


@dataclass(frozen=True)
class Case:
    """A config file's text and the one line the CLI must print for it (placeholders: {ptbxl},
    {mimic}, {config} = the config file, {missing} = a path that does not exist)."""

    name: str
    text: str | bytes
    line: str
    args: tuple[str, ...] = ("--workers", "1")
    own_out: bool = False  # True: the config's own ``out`` is used (no --out)


def nyquist(field: str, hz: str, nyq: str, of: str, what: str = "") -> str:
    return (
        f"config error: signal.{field}: {what}{hz} Hz is not below {nyq} Hz, "
        f"the Nyquist frequency of {of}"
    )


OUT500 = "the output rate (500 Hz)"
REC100 = "ptbxl records100 (100 Hz)"
HIGH = "high cut-off "
MEMORY = (
    "config error: memory: conditioning a batch of {b} records x 12 leads x {n} samples needs "
    "about {gib} GiB, above max_batch_memory_gib {limit}: lower batch_size, signal.fs or "
    "signal.duration_s (or raise max_batch_memory_gib)"
)
FS_RANGE = "is outside the supported 50..2000 Hz"

CASES = [
    # -- filters against the Nyquist frequency of the output and the source rates
    Case(
        "bandpass_high_at_nyquist",
        PTB + "signal: {bandpass_hz: [0.5, 250]}\n",
        nyquist("bandpass_hz", "250", "250", OUT500, HIGH),
    ),
    Case(
        "bandpass_high_above_nyquist",
        PTB + "signal: {bandpass_hz: [0.5, 300]}\n",
        nyquist("bandpass_hz", "300", "250", OUT500, HIGH),
    ),
    Case(
        "bandpass_above_100hz_output",
        PTB + "signal: {fs: 100, bandpass_hz: [0.5, 60]}\n",
        nyquist("bandpass_hz", "60", "50", "the output rate (100 Hz)", HIGH),
    ),
    Case(
        "bandpass_above_records100_source",
        PTB + "ptbxl_records: records100\nsignal: {bandpass_hz: [0.5, 60]}\n",
        nyquist("bandpass_hz", "60", "50", REC100, HIGH),
    ),
    Case(
        "bandpass_above_mimic_source",
        "mimic: {mimic}\nsignal: {fs: 1000, bandpass_hz: [0.5, 300]}\n",
        nyquist("bandpass_hz", "300", "250", "mimic (500 Hz)", HIGH),
    ),
    Case(
        "bandpass_reversed",
        PTB + "signal: {bandpass_hz: [40, 0.5]}\n",
        "config error: signal.bandpass_hz: must be (low, high) with 0 < low < high, got (40, 0.5)",
    ),
    Case(
        "bandpass_low_equals_high",
        PTB + "signal: {bandpass_hz: [40, 40]}\n",
        "config error: signal.bandpass_hz: must be (low, high) with 0 < low < high, got (40, 40)",
    ),
    Case(
        "bandpass_low_zero",
        PTB + "signal: {bandpass_hz: [0, 40]}\n",
        "config error: signal.bandpass_hz: must be (low, high) with 0 < low < high, got (0, 40)",
    ),
    Case(
        "bandpass_three_numbers",
        PTB + "signal: {bandpass_hz: [0.5, 40, 100]}\n",
        "config error: signal.bandpass_hz: Tuple should have at most 2 items after validation, "
        "not 3",
    ),
    Case(
        "notch_at_nyquist",
        PTB + "signal: {notch_hz: 250}\n",
        nyquist("notch_hz", "250", "250", OUT500),
    ),
    Case(
        "notch_above_nyquist",
        PTB + "signal: {notch_hz: 300}\n",
        nyquist("notch_hz", "300", "250", OUT500),
    ),
    Case(
        "notch_above_records100_source",
        PTB + "ptbxl_records: records100\nsignal: {notch_hz: 60}\n",
        nyquist("notch_hz", "60", "50", REC100),
    ),
    Case(
        "notch_zero",
        PTB + "signal: {notch_hz: 0}\n",
        "config error: signal.notch_hz: must be above 0 Hz, got 0",
    ),
    Case(
        "highpass_zero",
        PTB + "signal: {highpass_hz: 0}\n",
        "config error: signal.highpass_hz: must be above 0 Hz, got 0",
    ),
    Case(
        "highpass_negative",
        PTB + "signal: {highpass_hz: -0.5}\n",
        "config error: signal.highpass_hz: must be above 0 Hz, got -0.5",
    ),
    Case(
        "highpass_at_nyquist",
        PTB + "signal: {highpass_hz: 250}\n",
        nyquist("highpass_hz", "250", "250", OUT500),
    ),
    # -- durations and rates
    Case(
        "duration_inf",
        PTB + "signal: {duration_s: .inf}\n",
        "config error: signal.duration_s: Input should be a finite number",
    ),
    Case(
        "duration_nan",
        PTB + "signal: {duration_s: .nan}\n",
        "config error: signal.duration_s: Input should be a finite number",
    ),
    Case(
        "duration_zero",
        PTB + "signal: {duration_s: 0}\n",
        "config error: signal.duration_s: Input should be greater than or equal to 1",
    ),
    Case(
        "duration_negative",
        PTB + "signal: {duration_s: -10}\n",
        "config error: signal.duration_s: Input should be greater than or equal to 1",
    ),
    Case(
        "duration_text",
        PTB + "signal: {duration_s: ten}\n",
        "config error: signal.duration_s: Input should be a valid number, unable to parse string "
        "as a number",
    ),
    Case(
        "length_tolerance_inf",
        PTB + "signal: {length_tolerance_s: .inf}\n",
        "config error: signal.length_tolerance_s: Input should be a finite number",
    ),
    Case(
        "fs_1e6", PTB + "signal: {fs: 1.0e+6}\n", f"config error: signal.fs: 1000000 Hz {FS_RANGE}"
    ),
    Case("fs_10", PTB + "signal: {fs: 10}\n", f"config error: signal.fs: 10 Hz {FS_RANGE}"),
    Case("fs_0", PTB + "signal: {fs: 0}\n", f"config error: signal.fs: 0 Hz {FS_RANGE}"),
    Case("fs_true", PTB + "signal: {fs: true}\n", f"config error: signal.fs: 1 Hz {FS_RANGE}"),
    Case(
        "fs_fraction",
        PTB + "signal: {fs: 500.5}\n",
        "config error: signal.fs: Input should be a valid integer, got a number with a "
        "fractional part",
    ),
    Case(
        "fs_yaml11_string",  # YAML 1.1 reads 1e6 (no dot) as a string
        PTB + "signal: {fs: 1e6}\n",
        "config error: signal.fs: Input should be a valid integer, unable to parse string as an "
        "integer",
    ),
    Case(
        "two_errors_one_line",
        PTB + "signal: {fs: 10, notch_hz: 0}\n",
        f"config error: signal.fs: 10 Hz {FS_RANGE}; signal.notch_hz: must be above 0 Hz, got 0",
    ),
    # -- memory per batch
    Case(
        "memory_batch_size",
        PTB + "batch_size: 20000\n",
        MEMORY.format(b=20000, n=5000, gib="53.6", limit="4"),
    ),
    Case(
        "memory_long_duration",
        PTB + "signal: {duration_s: 600}\n",
        MEMORY.format(b=64, n=300000, gib="10.3", limit="4"),
    ),
    Case(
        "memory_fast_rate",
        PTB + "batch_size: 512\nsignal: {fs: 2000}\n",
        MEMORY.format(b=512, n=20000, gib="5.5", limit="4"),
    ),
    Case(
        "memory_limit_lowered",
        PTB + "max_batch_memory_gib: 0.1\n",
        MEMORY.format(b=64, n=5000, gib="0.2", limit="0.1"),
    ),
    Case(
        "memory_limit_zero",
        PTB + "max_batch_memory_gib: 0\n",
        "config error: max_batch_memory_gib: Input should be greater than 0",
    ),
    # -- the file itself
    Case(
        "yaml_unclosed_flow_mapping",
        PTB + "signal: {fs: 500\n",
        "config error: {config}:3:1: YAML syntax error: expected ',' or '}', but got "
        "'<stream end>' (while parsing a flow mapping at line 2)",
    ),
    Case(
        "yaml_tab_indent",
        PTB + "signal:\n\tfs: 500\n",
        "config error: {config}:3:1: YAML syntax error: found character '\\t' that cannot start "
        "any token",
    ),
    Case(
        "yaml_bad_indent",
        PTB + "signal:\n  fs: 500\n duration_s: 10\n",
        "config error: {config}:4:2: YAML syntax error: expected <block end>, but found "
        "'<block mapping start>' (while parsing a block mapping at line 1)",
    ),
    Case(
        "yaml_unclosed_quote",
        PTB + "out: 'corpus\n",
        "config error: {config}:3:1: YAML syntax error: found unexpected end of stream (while "
        "scanning a quoted scalar at line 2)",
    ),
    Case(
        "yaml_python_tag",
        PTB + "signal: !!python/object:os.system {}\n",
        "config error: {config}:2:9: YAML syntax error: could not determine a constructor for "
        "the tag 'tag:yaml.org,2002:python/object:os.system'",
    ),
    Case(
        "yaml_duplicate_key",
        PTB + "signal:\n  fs: 500\n  fs: 250\n",
        "config error: {config}:4:3: YAML syntax error: duplicate key 'fs' (first at line 3)",
    ),
    Case(
        "yaml_duplicate_top_key",
        PTB + "ptbxl: /elsewhere\n",
        "config error: {config}:2:1: YAML syntax error: duplicate key 'ptbxl' (first at line 1)",
    ),
    Case(
        "not_utf8",
        PTB.encode() + b"out: corp\xffus\n",
        "config error: {config}: not UTF-8 text (byte 0xff at offset {offset})",
    ),
    Case(
        "not_a_mapping_list",
        "- {ptbxl}\n- mimic\n",
        "config error: {config}: the config must be a mapping of settings, not a list",
    ),
    Case(
        "not_a_mapping_scalar",
        "{ptbxl}\n",
        "config error: {config}: the config must be a mapping of settings, not a str",
    ),
    Case(
        "signal_not_a_mapping",
        PTB + "signal: 5\n",
        "config error: signal: Input should be a valid dictionary or instance of SignalConfig",
    ),
    Case("unknown_key", PTB + "signal: {fss: 500}\n", "config error: signal.fss: unknown key"),
    Case("unknown_top_key", PTB + "shards: 4\n", "config error: shards: unknown key"),
    Case(
        "missing_input_folder",
        "ptbxl: {missing}\n",
        "config error: ptbxl: input folder does not exist: {missing}",
    ),
    # -- types and bounds of the other settings
    Case(
        "batch_size_text",
        PTB + "batch_size: many\n",
        "config error: batch_size: Input should be a valid integer, unable to parse string as an "
        "integer",
    ),
    Case(
        "records_per_shard_zero",
        PTB + "records_per_shard: 0\n",
        "config error: records_per_shard: Input should be greater than or equal to 1",
    ),
    Case(
        "shards_per_split_zero",
        PTB + "shards_per_split: 0\n",
        "config error: shards_per_split: Input should be greater than or equal to 1",
    ),
    Case(
        "workers_negative",
        PTB + "workers: -1\n",
        "config error: workers: Input should be greater than or equal to 0",
        args=(),
    ),
    Case(
        "workers_flag_negative",
        PTB,
        "meit-corpus build: error: argument --workers: '-1' is not a whole number >= 0 "
        "(see 'meit-corpus build --help')",
        args=("--workers", "-1"),
    ),
    Case(
        "limit_zero",
        PTB + "limit: 0\n",
        "config error: limit: Input should be greater than or equal to 1",
    ),
    Case(
        "normalise_unknown",
        PTB + "signal: {normalise: minmax}\n",
        "config error: signal.normalise: Input should be 'none', 'zscore' or 'meit'",
    ),
    Case(
        "ptbxl_records_unknown",
        PTB + "ptbxl_records: records250\n",
        "config error: ptbxl_records: Input should be 'records500' or 'records100'",
    ),
    Case(
        "filter_order_11",
        PTB + "signal: {filter_order: 11}\n",
        "config error: signal.filter_order: Input should be less than or equal to 10",
    ),
    Case(
        "notch_quality_zero",
        PTB + "signal: {notch_quality: 0}\n",
        "config error: signal.notch_quality: Input should be greater than 0",
    ),
    Case(
        "max_nan_fraction_above_1",
        PTB + "signal: {max_nan_fraction: 1.5}\n",
        "config error: signal.max_nan_fraction: Input should be less than or equal to 1",
    ),
    Case(
        "template_seed_text",
        PTB + "text: {template_seed: x}\n",
        "config error: text.template_seed: Input should be a valid integer, unable to parse "
        "string as an integer",
    ),
    Case(
        "examples_per_record_zero",
        PTB + "text: {examples_per_record: 0}\n",
        "config error: text.examples_per_record: Input should be greater than or equal to 1",
    ),
    Case(
        "out_url",
        PTB + "out: s3://bucket/corpus\n",
        "config error: out: out must be a local folder (or file://): URL outputs are not supported",
        own_out=True,
    ),
    # -- splits
    Case(
        "hash_fractions_sum",
        PTB + "split: {hash_fractions: {train: 0.9, validation: 0.2, test: 0.1}}\n",
        "config error: split.hash_fractions: must sum to 1, not 1.2",
    ),
    Case(
        "hash_fractions_negative",
        PTB + "split: {hash_fractions: {train: 1.5, validation: -0.5, test: 0}}\n",
        "config error: split.hash_fractions: validation is -0.5; fractions must be >= 0",
    ),
    Case(
        "hash_fractions_unknown_split",
        PTB + "split: {hash_fractions: {train: 0.5, dev: 0.5}}\n",
        "config error: split.hash_fractions: unknown split 'dev' (splits: train, validation, test)",
    ),
    Case(
        "hash_fractions_nan",
        PTB + "split: {hash_fractions: {train: .nan, validation: 0.5, test: 0.5}}\n",
        "config error: split.hash_fractions.train: Input should be a finite number",
    ),
    Case(
        "meit_fractions_sum",
        PTB + "split: {meit_fractions: {train: 0.9, validation: 0.09}}\n",
        "config error: split.meit_fractions: must sum to 1, not 0.99",
    ),
    Case(
        "ptbxl_fold_11",
        PTB + "split: {ptbxl_folds: {train: [1, 2, 3, 4, 5, 6, 7, 8], validation: [9], "
        "test: [11]}}\n",
        "config error: split.ptbxl_folds: fold 11 is not a PTB-XL strat_fold (1..10)",
    ),
    Case(
        "ptbxl_fold_twice",
        PTB + "split: {ptbxl_folds: {train: [1, 2, 3, 9], validation: [9], test: [10]}}\n",
        "config error: split.ptbxl_folds: fold 9 is assigned to two splits",
    ),
    Case(
        "ptbxl_folds_unknown_split",
        PTB + "split: {ptbxl_folds: {train: [1, 2], dev: [9], test: [10]}}\n",
        "config error: split.ptbxl_folds: unknown split 'dev' (splits: train, validation, test)",
    ),
    # -- text
    Case(
        "task_weights_all_zero",
        PTB + "text:\n  examples_per_record: 3\n  task_weights: {rhythm: 0, diagnosis: 0, "
        "heart_rate: 0, intervals: 0, axes: 0}\n",
        "config error: text.task_weights: every weight is 0, so examples_per_record 3 cannot "
        "draw a question task",
    ),
    Case(
        "task_weights_negative",
        PTB + "text: {task_weights: {rhythm: -1}}\n",
        "config error: text.task_weights: rhythm is -1; weights must be >= 0",
    ),
    Case(
        "task_weights_inf",
        PTB + "text: {task_weights: {rhythm: .inf}}\n",
        "config error: text.task_weights.rhythm: Input should be a finite number",
    ),
    Case(
        "task_weights_unknown",
        PTB + "text: {task_weights: {rythm: 1}}\n",
        "config error: text.task_weights: unknown tasks ['rythm']; known: "
        "['report_generation', 'rhythm', "
        "'diagnosis', 'heart_rate', 'intervals', 'axes']",
    ),
    Case(
        "translation_csv_missing_file",
        PTB + "text: {translation: csv, translation_csv: {missing}}\n",
        "config error: text.translation_csv: file not found: {missing}",
    ),
    Case(
        "translation_csv_not_given",
        PTB + "text: {translation: csv}\n",
        "config error: text: translation: csv needs translation_csv",
    ),
    Case(
        "marian_model_missing_folder",
        PTB + "text: {translation: marian, marian_model: {missing}}\n",
        "config error: text.marian_model: folder not found: {missing}",
    ),
]


def render(text: str | bytes, paths: dict[str, str]) -> str | bytes:
    """``text`` with its ``{name}`` placeholders filled (text holds YAML braces: no str.format)."""
    for key, value in paths.items():
        if isinstance(text, bytes):
            text = text.replace(b"{%s}" % key.encode(), value.encode())
        else:
            text = text.replace("{%s}" % key, value)
    return text


@pytest.fixture()
def paths(tmp_path: Path, ptbxl_sample: Path, mimic_sample: Path) -> dict[str, str]:
    return {
        "ptbxl": str(ptbxl_sample),
        "mimic": str(mimic_sample),
        "config": str(tmp_path / "build.yaml"),
        "missing": str(tmp_path / "missing"),
    }


def build_with(config: Path, out: Path | None, capsys, *args: str) -> tuple[int, list[str]]:
    """``meit-corpus build --config config [--out out] *args``: exit code, printed lines."""
    try:
        rc = main(["build", "--config", str(config), *(["--out", str(out)] if out else []), *args])
    except SystemExit as exc:  # argparse's usage mistakes exit from parse_args
        rc = exc.code
    captured = capsys.readouterr()
    return rc, (captured.out + captured.err).splitlines()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_setting_is_one_line_and_exit_2_before_work(case: Case, paths, tmp_path, capsys):
    config = Path(paths["config"])
    text = render(case.text, paths)
    if isinstance(text, bytes):
        config.write_bytes(text)
        paths = {**paths, "offset": str(text.index(b"\xff"))}
    else:
        config.write_text(text)
    out = tmp_path / "corpus"
    rc, lines = build_with(config, None if case.own_out else out, capsys, *case.args)
    assert (rc, lines) == (2, [render(case.line, paths)])
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "arrange", "line"),
    [
        ("missing_file", lambda p: None, "config error: {config}: No such file or directory"),
        ("a_folder", lambda p: p.mkdir(), "config error: {config}: Is a directory"),
    ],
)
def test_unreadable_config_file_is_one_line(name, arrange, line, paths, tmp_path, capsys):
    config = Path(paths["config"])
    arrange(config)
    rc, lines = build_with(config, tmp_path / "corpus", capsys, "--workers", "1")
    assert (rc, lines) == (2, [render(line, paths)])
    assert not (tmp_path / "corpus").exists()


ACCEPTED = [
    ("bandpass_just_below_nyquist", {"signal": {"bandpass_hz": [0.5, 249.9]}}),
    ("notch_60", {"signal": {"notch_hz": 60}}),
    ("highpass_tiny", {"signal": {"highpass_hz": 0.05}}),
    ("fs_lowest", {"signal": {"fs": 50, "bandpass_hz": [0.5, 24]}}),
    ("fs_highest", {"signal": {"fs": 2000}}),
    (
        "records100_bandpass_40",
        {"ptbxl_records": "records100", "signal": {"bandpass_hz": [0.5, 40]}},
    ),
    ("duration_one_second", {"signal": {"duration_s": 1}}),
    ("memory_limit_raised", {"batch_size": 20000, "max_batch_memory_gib": 54}),
    ("negative_seeds", {"split": {"seed": -1}, "text": {"template_seed": -7}}),
    ("zero_weights_one_example", {"text": {"task_weights": {"rhythm": 0}}}),
    ("folds_leave_one_out", {"split": {"ptbxl_folds": {"train": [1], "test": [10]}}}),
]


@pytest.mark.parametrize(("name", "settings"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_settings_at_the_edges_are_accepted(name, settings, paths, tmp_path):
    import yaml

    config = tmp_path / "ok.yaml"
    config.write_text(yaml.safe_dump({"ptbxl": paths["ptbxl"], **settings}))
    cfg = load_config(config)
    for key, value in settings.items():
        got = getattr(cfg, key)
        if isinstance(value, dict):
            for k, v in value.items():
                assert getattr(got, k) == (tuple(v) if k == "bandpass_hz" else v)
        else:
            assert got == value


def test_config_from_a_manifest_validates_without_its_input_folders(tmp_path):
    data = {"ptbxl": str(tmp_path / "gone"), "text": {"translation": "csv"}}
    data["text"]["translation_csv"] = str(tmp_path / "gone.csv")
    with pytest.raises(ValueError, match="input folder does not exist"):
        BuildConfig.model_validate(data)
    cfg = BuildConfig.model_validate(data, context={"check_paths": False})
    assert cfg.ptbxl == tmp_path / "gone"


def test_memory_estimate_bounds_the_measured_peak():
    """The estimate (``batch_memory_bytes``) is at least the peak that conditioning one batch
    allocates, measured with tracemalloc on the costliest path (every filter, downsampling)."""
    cfg = BuildConfig(
        batch_size=8,
        signal={"fs": 250, "bandpass_hz": (0.5, 40), "highpass_hz": 0.5, "notch_hz": 50},
    )
    fs_in, n_in = 500, 5000
    t = np.arange(n_in) / fs_in
    rng = np.random.default_rng(0)
    wave = np.sin(2 * np.pi * 1.2 * t) * np.linspace(0.5, 1.5, 12)[:, None]

    def batch() -> list[Loaded]:
        noise = rng.standard_normal((cfg.batch_size, 12, n_in)) * 0.01
        return [
            Loaded({"record_id": str(i)}, (wave + x).astype(np.float32), fs_in)
            for i, x in enumerate(noise)
        ]

    condition(batch()[:2], cfg, lambda *a: None)  # compile and import before measuring
    tracemalloc.start()
    try:
        records = batch()
        assert condition(records, cfg, lambda *a: None) is not None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the estimate covers 500 Hz sources (PTB-XL records500) when no input is given (the demo)
    assert peak <= batch_memory_bytes(cfg) <= 2 * peak


def test_config_path_with_brackets_is_printed_as_it_is(tmp_path: Path, capsys):
    """Paths are not read as console markup (``[bold]`` would vanish from the line)."""
    config = tmp_path / "cfg[bold]" / "b.yaml"
    config.parent.mkdir()
    config.write_text("signal: {fs: 500\n")
    rc, lines = build_with(config, tmp_path / "corpus", capsys, "--workers", "1")
    assert (rc, lines) == (
        2,
        [
            f"config error: {config}:2:1: YAML syntax error: expected ',' or '}}', but got "
            "'<stream end>' (while parsing a flow mapping at line 1)"
        ],
    )


def digests(corpus: Path) -> dict[str, str]:
    """sha256 of every shard and of the ledger."""
    files = [*corpus.glob(f"{DATA_DIR}/*/*.parquet"), corpus / REJECTIONS]
    return {
        p.relative_to(corpus).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    }


def test_record_too_slow_for_the_filters_is_rejected_not_crashed(ptbxl_sample: Path, tmp_path):
    """The config is checked against PTB-XL's nominal 500 Hz; a record whose header says 250 Hz
    cannot take a 150 Hz band-pass edge: it is rejected with its rate (was a scipy traceback)."""
    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_sample, root)
    folder = root / "records500/06000"
    rec = wfdb.rdrecord(str(folder / "06000_hr"))
    wfdb.wrsamp(
        "06000_hr",
        fs=250,
        units=rec.units,
        sig_name=rec.sig_name,
        p_signal=rec.p_signal[::2],
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        write_dir=str(folder),
    )
    settings = dict(ptbxl=root, workers=1, signal={"bandpass_hz": (0.5, 150)})
    cfg = BuildConfig(out=tmp_path / "corpus", **settings)
    build_corpus(cfg)
    ledger = pq.read_table(tmp_path / "corpus" / REJECTIONS).to_pylist()
    assert [r for r in ledger if r["record_id"] == "6000"] == [
        {
            "source": "ptbxl",
            "record_id": "6000",
            "reason": "rate_too_low",
            "detail": "250 Hz: signal.bandpass_hz high cut-off 150 Hz is not below its Nyquist "
            "125 Hz",
        }
    ]
    kept = {
        i
        for p in (tmp_path / "corpus").glob(f"{DATA_DIR}/ptbxl/*.parquet")
        for i in pq.read_table(p)["id"].to_pylist()
    }
    assert kept == {f"ptbxl/{i}" for i in (6001, 6002, 6004, 6005, 6006, 6007, 6008)}
    build_corpus(cfg)  # a rerun changes nothing and equals a clean build
    build_corpus(BuildConfig(out=tmp_path / "clean", **settings))
    assert digests(tmp_path / "corpus") == digests(tmp_path / "clean")
