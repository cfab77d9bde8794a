"""Patient-level splits: folds for PTB-XL, a stable patient hash elsewhere, audited for leaks."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import SplitConfig
from pipeline.hashing import stable_unit
from pipeline.shards import shard_bucket
from pipeline.sources.mimic import MIMIC, prepare_mimic
from pipeline.sources.ptbxl import PTBXL, prepare_ptbxl
from pipeline.splits import assign_splits, audit_splits, fold_split, hash_split
from schemas import SPLITS


def test_ptbxl_folds_give_the_recommended_split(ptbxl_sample):
    frame = assign_splits(prepare_ptbxl(ptbxl_sample), PTBXL.split_rule, SplitConfig())
    by_fold = dict(zip(frame["strat_fold"].to_list(), frame["split"].to_list()))
    assert by_fold[10] == "test" and by_fold[3] == "train" and by_fold[7] == "train"


def test_hash_split_is_stable_and_close_to_the_fractions():
    fractions = {"train": 0.9, "validation": 0.05, "test": 0.05}
    splits = [hash_split(str(p), fractions, seed=0) for p in range(20000)]
    assert splits == [hash_split(str(p), fractions, seed=0) for p in range(20000)]
    share = {s: splits.count(s) / len(splits) for s in fractions}
    assert abs(share["train"] - 0.9) < 0.01 and abs(share["test"] - 0.05) < 0.01
    assert splits != [hash_split(str(p), fractions, seed=1) for p in range(20000)]


def test_every_patient_lands_in_one_split():
    frame = pl.DataFrame(
        {
            "record_id": [str(i) for i in range(3000)],
            "patient_id": [str(i % 700) for i in range(3000)],
        }
    )
    split = assign_splits(frame, MIMIC.split_rule, SplitConfig())
    audit = audit_splits(split)
    assert audit.leaking_patients == 0 and sum(audit.patients.values()) == 700
    leaky = split.with_columns(pl.Series("split", ["train", "test", "validation"] * 1000))
    assert audit_splits(leaky).leaking_patients > 0


# ---------------------------------------------------------------- golden values
# Fixed expected outputs of the seeded functions. Update only on purpose, with the reason in the
# commit message: a change here re-splits (or re-shards) every record of every corpus built before.
# They are machine independent: sha256 of UTF-8 text, its first 8 bytes as a big-endian integer,
# divided by 2**64 (int -> float is correctly rounded, the division by a power of two is exact).

GOLDEN_UNITS = {
    ("split", "15709", 0): 0.36048570386994266,
    ("split", "15709", 1): 0.5844377768773884,
    ("split", "10000032", 0): 0.19088439766893495,
    ("template/report_generation", "ptbxl/6001", 0): 0.7423660586440506,
    ("shard", "mimic/40689238", 0): 0.6862211841097093,
    ("task0", "ptbxl/6001", 0): 0.5914158392810607,
    ("task1", "mimic/40006000", 3): 0.35629794902501244,
}

# MIMIC rule (patient hash, 90 / 5 / 5, seed 0) over subject ids 10000000 + 0..199: the offsets
# that go to validation and test; every other one goes to train.
GOLDEN_PATIENT_VALIDATION = [0, 5, 54, 57, 96, 102, 120, 121, 137, 138, 150]
GOLDEN_PATIENT_TEST = [2, 34, 47, 53, 78, 80, 186]

# MEIT's record-level mode (90 / 9 / 1, seed 0) over record ids 40000000 + 0..199.
GOLDEN_MEIT_VALIDATION = [
    4, 10, 14, 39, 44, 47, 58, 106, 109, 116, 120, 122, 138, 160, 162, 165, 178
]  # fmt: skip
GOLDEN_MEIT_TEST = [112]

# PTB-XL's fold rule (strat_fold -> split); folds outside 1..10 have no split (rejected later).
GOLDEN_FOLDS = {**{f: "train" for f in range(1, 9)}, 9: "validation", 10: "test", 0: None, 11: None}

# Shard buckets (of 8) of the real sample's row ids.
GOLDEN_BUCKETS = {
    "ptbxl/1": 7,
    "ptbxl/6000": 7,
    "ptbxl/6001": 2,
    "ptbxl/6002": 2,
    "ptbxl/6004": 6,
    "ptbxl/6005": 4,
    "ptbxl/6006": 3,
    "ptbxl/6007": 5,
    "ptbxl/6008": 6,
    "mimic/40689238": 5,
}


def expected_splits(first: int, validation: list[int], test: list[int]) -> dict[str, str]:
    """Id -> split for ids ``first + 0..199`` from the golden offset lists."""
    out = {str(first + i): "train" for i in range(200)}
    out.update({str(first + i): "validation" for i in validation})
    out.update({str(first + i): "test" for i in test})
    return out


def test_golden_stable_unit():
    assert {key: stable_unit(*key) for key in GOLDEN_UNITS} == GOLDEN_UNITS


def test_golden_patient_hash_split_keyed_by_patient():
    """Two records per patient: the split is the patient's golden one, whatever the record id."""
    expected = expected_splits(10000000, GOLDEN_PATIENT_VALIDATION, GOLDEN_PATIENT_TEST)
    patients = sorted(expected)
    frame = pl.DataFrame(
        {
            "record_id": [str(50000000 + 2 * i + k) for i in range(200) for k in (0, 1)],
            "patient_id": [p for p in patients for _ in (0, 1)],
        }
    )
    split = assign_splits(frame, MIMIC.split_rule, SplitConfig())
    assert dict(zip(split["patient_id"], split["split"])) == expected
    assert audit_splits(split).leaking_patients == 0


def test_golden_split_of_the_real_mimic_record(mimic_sample):
    """The real record_list row: subject 10000032 (train); its study id would hash to validation."""
    split = assign_splits(prepare_mimic(mimic_sample), MIMIC.split_rule, SplitConfig())
    assert split.select("record_id", "patient_id", "split").rows() == [
        ("40689238", "10000032", "train")
    ]


def test_golden_meit_record_level_split():
    expected = expected_splits(40000000, GOLDEN_MEIT_VALIDATION, GOLDEN_MEIT_TEST)
    frame = pl.DataFrame({"record_id": sorted(expected), "patient_id": ["same"] * 200})
    split = assign_splits(frame, MIMIC.split_rule, SplitConfig(mode="meit"))
    assert dict(zip(split["record_id"], split["split"])) == expected


def test_golden_ptbxl_fold_rule(ptbxl_sample):
    folds = SplitConfig().ptbxl_folds
    assert {f: fold_split(f, folds) for f in GOLDEN_FOLDS} == GOLDEN_FOLDS
    frame = pl.DataFrame({"strat_fold": list(GOLDEN_FOLDS), "record_id": ["r"] * 12})
    split = assign_splits(
        frame, PTBXL.split_rule, SplitConfig(mode="meit")
    )  # PTB-XL always uses folds
    assert split["split"].to_list() == list(GOLDEN_FOLDS.values())
    real = assign_splits(prepare_ptbxl(ptbxl_sample), PTBXL.split_rule, SplitConfig())
    assert dict(zip(real["record_id"], real["split"])) == {
        "1": "train",
        "6000": "test",
        "6001": "train",
        "6002": "train",
        "6004": "test",
        "6005": "train",
        "6006": "train",
        "6007": "train",
        "6008": "train",
    }


def test_golden_shard_buckets():
    assert {k: shard_bucket(k, 8) for k in GOLDEN_BUCKETS} == GOLDEN_BUCKETS


# ---------------------------------------------------------------- edges of the rules


def expected_hash_split(key: str, fractions: dict[str, float], seed: int) -> str:
    """The documented rule: the split whose half-open cumulative interval [lo, hi) holds the
    key's stable unit, in SPLITS order; a unit beyond the last edge goes to the last split."""
    u, edge = stable_unit("split", key, seed), 0.0
    for split in SPLITS:
        edge += fractions.get(split, 0.0)
        if u < edge:
            return split
    return SPLITS[-1]


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.integers(0, 4), min_size=3, max_size=3),
    drop=st.sets(st.sampled_from(SPLITS), max_size=2),
    scale=st.sampled_from([1.0, 0.5]),
    seed=st.integers(0, 3),
)
def test_hash_split_follows_the_cumulative_fractions(weights, drop, scale, seed):
    """Any fractions, a split left out of them (it gets nobody), fractions that sum below 1 (the
    remainder goes to the last split, ``test``): every key lands where the rule says."""
    kept = {s: w for s, w in zip(SPLITS, weights, strict=True) if s not in drop}
    total = sum(kept.values())
    fractions = {s: scale * w / total if total else 0.0 for s, w in kept.items()}
    keys = [str(10000000 + i) for i in range(150)]
    got = [hash_split(k, fractions, seed) for k in keys]
    assert got == [expected_hash_split(k, fractions, seed) for k in keys]
    if total and scale == 1.0:  # fractions sum to 1: a split with no fraction gets nobody
        assert set(got) == {s for s in SPLITS if fractions.get(s, 0.0) > 0}
    else:  # a remainder: it goes to the last split
        assert "test" in got


def test_hash_split_intervals_are_half_open():
    """A key whose unit lies exactly on an edge belongs to the next split: [lo, hi)."""
    u = stable_unit("split", "15709", 0)
    assert u == GOLDEN_UNITS[("split", "15709", 0)]
    on_edge = {"train": u, "validation": 1.0 - u, "test": 0.0}
    assert hash_split("15709", on_edge, 0) == "validation"
    just_above = {"train": math.nextafter(u, 1.0), "validation": 1.0 - u, "test": 0.0}
    assert hash_split("15709", just_above, 0) == "train"


def test_a_split_left_out_of_the_fractions_gets_no_patient():
    """A config without a validation split (90 / 0 / 10): nobody goes to validation, and the
    patients are split between train and test at the cumulative edge."""
    cfg = SplitConfig(hash_fractions={"train": 0.9, "test": 0.1})
    frame = pl.DataFrame({"patient_id": [str(i) for i in range(2000)]})
    frame = frame.with_columns(pl.col("patient_id").alias("record_id"))
    split = assign_splits(frame, MIMIC.split_rule, cfg)
    counts = split["split"].value_counts().sort("split").rows()
    assert dict(counts).keys() == {"train", "test"}
    assert abs(dict(counts)["test"] / 2000 - 0.1) < 0.02


def test_hash_split_remainder_goes_to_the_last_split():
    """Fractions that sum below 1: units beyond the last edge go to test, never validation."""
    keys = [str(i) for i in range(400)]
    got = {k: hash_split(k, {"train": 0.25, "validation": 0.25}, 0) for k in keys}
    units = {k: stable_unit("split", k, 0) for k in keys}
    assert {k for k, s in got.items() if s == "test"} == {k for k in keys if units[k] >= 0.5}
    assert {k for k, s in got.items() if s == "validation"} == {
        k for k in keys if 0.25 <= units[k] < 0.5
    }


def test_unassigned_folds_give_a_null_string_split():
    """A PTB-XL frame none of whose folds is assigned (fold 0, fold 11, a missing fold): every
    split is null (rejected later as ``no_split``) and the column stays a String column."""
    frame = pl.DataFrame({"strat_fold": [0, 11, None], "record_id": ["a", "b", "c"]})
    split = assign_splits(frame, PTBXL.split_rule, SplitConfig())
    assert split.schema["split"] == pl.String
    assert split["split"].to_list() == [None, None, None]


def test_audit_mode_labels_the_leaking_split():
    """The audit carries its split mode; only MEIT's record-level mode leaks by design."""
    frame = pl.DataFrame({"patient_id": ["p", "p", "q"], "split": ["train", "test", None]})
    patient = audit_splits(frame)
    assert (patient.mode, patient.leaks) == ("patient", False)
    assert patient.leaking_patients == 1 and patient.patients == {
        "train": 1,
        "validation": 0,
        "test": 1,
    }
    meit = audit_splits(frame, "meit")
    assert (meit.mode, meit.leaks) == ("meit", True)
