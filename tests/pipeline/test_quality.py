"""The quality limits inside a build with non-default thresholds, one record each side of a limit.

Every record is the real PTB-XL record 6000 with missing samples (stored as WFDB's -32768) or a
run stuck at a rail written into it. The limits are set away from their defaults in both
directions, so a build that ignored a setting would keep a record it must reject or the reverse:

* ``max_nan_fraction: 0.08`` (default 0.05): 400 of 5000 samples per lead may be missing;
* ``max_nan_gap_s: 0.1`` (default 0.5): at 500 Hz a missing run may be 50 samples long;
* ``saturation_fraction: 0.01`` (default 0.02): 50 samples of a lead may sit at its maximum.

Each limit is inclusive ("more than" rejects), and the fraction is per lead, not per record.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.build import build_corpus
from pipeline.config import BuildConfig, SignalConfig
from pipeline.finalise import validate_corpus
from pipeline.quality import check_flat_and_saturation, check_missing
from pipeline.sources.ptbxl import write_ptbxl_record
from schemas import REJECTIONS, read_manifest
from tests.pipeline.test_conditioning import LEADS
from tests.pipeline.test_corpus import rows_by_id
from tests.pipeline.test_rejections import add_row, real_signal

SIGNAL = {"max_nan_fraction": 0.08, "max_nan_gap_s": 0.1, "saturation_fraction": 0.01}
RAIL_MV = 5.0  # above every sample of record 6000, inside format 16 at 1000/mV


def gaps(x: np.ndarray, lead: str, starts: range | list[int], length: int) -> np.ndarray:
    """A copy of ``x`` with NaN runs of ``length`` samples on ``lead`` at ``starts``."""
    y = x.copy()
    for s in starts:
        y[LEADS.index(lead), s : s + length] = np.nan
    return y


def at_rail(x: np.ndarray, lead: str, n: int) -> np.ndarray:
    """A copy of ``x`` whose ``lead`` sits at ``RAIL_MV`` for ``n`` consecutive samples."""
    y = x.copy()
    y[LEADS.index(lead), 1000 : 1000 + n] = RAIL_MV
    return y


def cases(x: np.ndarray) -> dict[int, tuple[np.ndarray, str | None]]:
    """ecg_id -> (signal, expected rejection reason or None when kept)."""
    eight_gaps = range(200, 4200, 500)  # 8 runs of 50 = 400 samples = exactly 8 %
    spread = range(100, 5000, 500)  # 10 runs of 30 = 300 samples per lead
    return {
        8001: (gaps(x, "V2", eight_gaps, 50), None),
        8002: (gaps(gaps(x, "V2", eight_gaps, 50), "V2", [4900], 1), "too_much_nan"),
        8003: (gaps(x, "V3", [2000], 50), None),
        8004: (gaps(x, "V3", [2000], 51), "too_much_nan"),
        8005: (gaps(gaps(x, "V4", spread, 30), "V5", spread, 30), None),  # 600 per record
        8006: (at_rail(x, "aVF", 50), None),
        8007: (at_rail(x, "aVF", 51), "saturation"),
    }


@pytest.fixture(scope="module")
def quality_build(ptbxl_sample: Path, tmp_path_factory) -> Path:
    """A PTB-XL folder holding only the records of :func:`cases`, built with ``SIGNAL``."""
    tmp = tmp_path_factory.mktemp("quality")
    root = tmp / "ptbxl"
    root.mkdir()
    (root / "scp_statements.csv").symlink_to(ptbxl_sample / "scp_statements.csv")
    with open(ptbxl_sample / "ptbxl_database.csv", newline="") as f:
        reader = csv.DictReader(f)
        fields, sample_rows = reader.fieldnames, list(reader)
    template = next(r for r in sample_rows if r["ecg_id"] == "6000")
    x = real_signal(ptbxl_sample)
    assert np.nanmax(x) < RAIL_MV
    rows: list[dict] = []
    for ecg_id, (signal, _) in cases(x).items():
        write_ptbxl_record(root, ecg_id, signal)
        add_row(rows, template, ecg_id)
    with open(root / "ptbxl_database.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    cfg = BuildConfig.model_validate(
        {"ptbxl": root, "out": tmp / "corpus", "workers": 1, "signal": SIGNAL}
    )
    build_corpus(cfg)
    return tmp / "corpus"


def ledger(corpus: Path) -> dict[str, tuple[str, str]]:
    return {
        r["record_id"]: (r["reason"], r["detail"])
        for r in pq.read_table(corpus / REJECTIONS).to_pylist()
    }


def test_each_record_kept_or_rejected_by_the_configured_limits(quality_build: Path):
    expected = {str(k): reason for k, (_, reason) in cases(np.zeros((12, 5000))).items()}
    rejected = ledger(quality_build)
    kept = {r["record_id"] for r in rows_by_id(quality_build).values()}
    assert {k: v[0] for k, v in rejected.items()} == {
        k: r for k, r in expected.items() if r is not None
    }
    assert kept == {k for k, r in expected.items() if r is None}


def test_rejection_details_name_the_lead_and_the_limit_crossed(quality_build: Path):
    rejected = ledger(quality_build)
    assert rejected["8002"] == ("too_much_nan", "lead V2: 8.0% missing, longest gap 50 samples")
    assert rejected["8004"] == ("too_much_nan", "lead V3: 1.0% missing, longest gap 51 samples")
    assert rejected["8007"] == ("saturation", "lead aVF: 1.0% of samples at a rail")


def test_records_at_the_nan_limits_are_repaired_and_counted(quality_build: Path):
    rows = {r["record_id"]: r for r in rows_by_id(quality_build).values()}
    repaired = {k: rows[k]["nan_repaired"] for k in ("8001", "8003", "8005", "8006")}
    assert repaired == {"8001": 400, "8003": 50, "8005": 600, "8006": 0}
    for row in rows.values():
        assert np.isfinite(np.asarray(row["ecg"], dtype=np.float32)).all(), row["id"]


def test_seen_equals_kept_plus_rejected(quality_build: Path):
    manifest = read_manifest(quality_build)
    counts = manifest.counts["ptbxl"]
    assert (counts.seen, counts.kept_total) == (7, 4)
    assert counts.rejected == {"saturation": 1, "too_much_nan": 2}
    assert counts.seen == counts.kept_total + counts.rejected_total
    assert manifest.config["signal"]["max_nan_gap_s"] == 0.1
    assert validate_corpus(quality_build) == []


# --- the checks on a batch, called directly ---------------------------------------------------


@pytest.fixture(scope="module")
def record(ptbxl_sample: Path) -> np.ndarray:
    """Record 6000 as float32 (12, 5000), the dtype the checks see inside a build."""
    return real_signal(ptbxl_sample).astype(np.float32)


def with_lead(x: np.ndarray, lead: str, values: np.ndarray | float) -> np.ndarray:
    y = x.copy()
    y[LEADS.index(lead)] = values
    return y


def test_flat_threshold_is_exclusive_and_the_first_flat_lead_is_named(record):
    cfg = SignalConfig(flat_threshold_mv=0.25)
    ramp = np.linspace(0, 0.25, 5000, dtype=np.float32)  # peak-to-peak exactly 0.25 mV
    below = np.linspace(0, 0.2499, 5000, dtype=np.float32)
    batch = np.stack(
        [
            record,
            with_lead(record, "III", ramp),  # at the threshold: not flat
            with_lead(with_lead(record, "V3", below), "II", ramp * 0.4),  # two flat leads
        ]
    )
    assert check_flat_and_saturation(batch, cfg) == [
        None,
        None,
        ("flat_lead", "lead II: peak-to-peak 0.1000 mV"),
    ]


def test_saturation_at_either_rail_and_flat_before_saturation(record):
    cfg = SignalConfig()  # saturation_fraction 0.02 = 100 of 5000 samples
    v5 = record[LEADS.index("V5")]
    low_rail = v5.copy()
    low_rail[:150] = v5.min() - 1.0  # 150 samples (3 %) at the minimum
    at_limit = v5.copy()
    at_limit[:100] = v5.max() + 1.0  # 100 samples, exactly 2 %, at the new maximum: kept
    stuck_then_flat = with_lead(with_lead(record, "I", low_rail), "V6", 0.0)
    batch = np.stack(
        [
            with_lead(record, "V5", low_rail),
            with_lead(record, "V5", at_limit),
            stuck_then_flat,
        ]
    )
    assert check_flat_and_saturation(batch, cfg) == [
        ("saturation", "lead V5: 3.0% of samples at a rail"),
        None,
        ("flat_lead", "lead V6: peak-to-peak 0.0000 mV"),
    ]


def test_missing_checks_per_lead_with_the_gap_in_seconds_of_the_given_rate(record):
    cfg = SignalConfig(max_nan_fraction=0.05, max_nan_gap_s=0.1)
    gap_26 = gaps(record, "aVL", [100], 26)  # 26 samples: 0.104 s at 250 Hz, 0.052 s at 500 Hz
    spread = gaps(record, "V1", range(0, 5000, 100), 6)  # 300 samples = 6 %, each run 6 long
    both = gaps(gaps(record, "V6", [0], 30), "II", range(0, 5000, 100), 6)
    at_limits = gaps(gaps(record, "I", range(0, 5000, 100), 5), "V2", [2000], 50)  # 5 %; 0.1 s
    batch = np.stack([record, gap_26, spread, both, at_limits])
    assert check_missing(batch, 500, cfg) == [
        None,
        None,
        ("too_much_nan", "lead V1: 6.0% missing, longest gap 6 samples"),
        ("too_much_nan", "lead II: 6.0% missing, longest gap 6 samples"),
        None,
    ]
    assert check_missing(batch, 250, cfg)[1] == (
        "too_much_nan",
        "lead aVL: 0.5% missing, longest gap 26 samples",
    )
