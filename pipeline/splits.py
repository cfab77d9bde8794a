"""Patient-level splits: by the source's own folds (PTB-XL) or by a stable patient hash.

Both keep every patient in exactly one split; :func:`audit_splits` proves it on the final frame.
A source says which rule it follows (:attr:`pipeline.sources.Source.split_rule`).
"""

from __future__ import annotations

import polars as pl

from pipeline.config import SplitConfig
from pipeline.hashing import stable_unit
from schemas import SPLITS, SplitAudit


def hash_split(patient_id: str, fractions: dict[str, float], seed: int) -> str:
    """The split of ``patient_id`` under the cumulative ``fractions`` (in :data:`SPLITS` order)."""
    u = stable_unit("split", patient_id, seed)
    edge = 0.0
    for split in SPLITS:
        edge += fractions.get(split, 0.0)
        if u < edge:
            return split
    return SPLITS[-1]


def fold_split(fold: int | None, folds: dict[str, list[int]]) -> str | None:
    """The split that ``folds`` assigns to a PTB-XL ``strat_fold`` (None when unassigned)."""
    for split, members in folds.items():
        if fold in members:
            return split
    return None


def split_mode(split_rule: str, cfg: SplitConfig) -> str:
    """How a source is split: ``folds`` (its own), ``patient`` hash, or ``meit`` (record hash)."""
    if split_rule == "folds":
        return "folds"
    return cfg.mode


def assign_splits(frame: pl.DataFrame, split_rule: str, cfg: SplitConfig) -> pl.DataFrame:
    """Add a ``split`` column: by fold for ``folds`` sources, else by the patient hash.

    With ``cfg.mode == "meit"`` sources without folds are split per record (MEIT's released
    90 / 9 / 1, seeded), which leaks patients. A record left without a split (PTB-XL row without a
    usable fold) gets null and is rejected later with reason ``no_split``.
    """
    mode = split_mode(split_rule, cfg)
    if mode == "folds":
        expr = pl.col("strat_fold").map_elements(
            lambda f: fold_split(f, cfg.ptbxl_folds), return_dtype=pl.String
        )
    elif mode == "meit":
        expr = pl.col("record_id").map_elements(
            lambda r: hash_split(r, cfg.meit_fractions, cfg.seed), return_dtype=pl.String
        )
    else:
        expr = pl.col("patient_id").map_elements(
            lambda p: hash_split(p, cfg.hash_fractions, cfg.seed), return_dtype=pl.String
        )
    return frame.with_columns(expr.alias("split"))


def audit_splits(frame: pl.DataFrame, mode: str = "patient") -> SplitAudit:
    """Audit a frame with ``patient_id`` and ``split`` columns (rows without a split ignored).

    MEIT's record-level split (``mode == "meit"``) leaks patients by design: ``leaks`` says so.
    """
    assigned = frame.filter(pl.col("split").is_not_null())
    per_patient = assigned.group_by("patient_id").agg(pl.col("split").n_unique().alias("n"))
    patients = {s: assigned.filter(pl.col("split") == s)["patient_id"].n_unique() for s in SPLITS}
    leaking = int((per_patient["n"] > 1).sum())
    return SplitAudit(patients=patients, leaking_patients=leaking, mode=mode, leaks=mode == "meit")
