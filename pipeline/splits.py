"""Patient-level splits: PTB-XL by its stratified folds, other sources by a stable patient hash.

Both keep every patient in exactly one split; :func:`audit_splits` proves it on the final frame.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from pipeline.config import SplitConfig
from schemas import SPLITS


def stable_unit(namespace: str, key: str, seed: int = 0) -> float:
    """A number in [0, 1) that depends only on its arguments (sha256, platform-independent).

    ``namespace`` keeps independent choices (split, shard, template) uncorrelated for one key.
    """
    digest = hashlib.sha256(f"{namespace}/{seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


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


def split_mode(source: str, cfg: SplitConfig) -> str:
    """How ``source`` is split: ``folds`` (PTB-XL), ``patient`` hash, or ``meit`` (record hash)."""
    if source == "ptbxl":
        return "folds"
    return cfg.mode


def assign_splits(frame: pl.DataFrame, source: str, cfg: SplitConfig) -> pl.DataFrame:
    """Add a ``split`` column: folds for PTB-XL, the patient hash for every other source.

    With ``cfg.mode == "meit"`` sources without folds are split per record (MEIT's released
    90 / 9 / 1, seeded), which leaks patients. A record left without a split (PTB-XL row without a
    usable fold) gets null and is rejected later with reason ``no_split``.
    """
    mode = split_mode(source, cfg)
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


@dataclass(frozen=True)
class SplitAudit:
    """Patients per split, how many appear in more than one split, and the split mode."""

    patients: dict[str, int]
    leaking_patients: int
    mode: str = "patient"

    @property
    def leaks_by_design(self) -> bool:
        """True for MEIT's record-level split, which is allowed to leak (and labelled so)."""
        return self.mode == "meit"


def audit_splits(frame: pl.DataFrame, mode: str = "patient") -> SplitAudit:
    """Audit a frame with ``patient_id`` and ``split`` columns (rows without a split ignored)."""
    assigned = frame.filter(pl.col("split").is_not_null())
    per_patient = assigned.group_by("patient_id").agg(pl.col("split").n_unique().alias("n"))
    patients = {s: assigned.filter(pl.col("split") == s)["patient_id"].n_unique() for s in SPLITS}
    leaking = int((per_patient["n"] > 1).sum())
    return SplitAudit(patients=patients, leaking_patients=leaking, mode=mode)
