"""Patient-level splits: folds for PTB-XL, a stable patient hash elsewhere, audited for leaks."""

from __future__ import annotations

import polars as pl

from pipeline.config import SplitConfig
from pipeline.sources.ptbxl import prepare_ptbxl
from pipeline.splits import assign_splits, audit_splits, hash_split


def test_ptbxl_folds_give_the_recommended_split(ptbxl_sample):
    frame = assign_splits(prepare_ptbxl(ptbxl_sample), "ptbxl", SplitConfig())
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
    split = assign_splits(frame, "mimic", SplitConfig())
    audit = audit_splits(split)
    assert audit.leaking_patients == 0 and sum(audit.patients.values()) == 700
    leaky = split.with_columns(pl.Series("split", ["train", "test", "validation"] * 1000))
    assert audit_splits(leaky).leaking_patients > 0
