"""Build configuration: one pydantic model, read from YAML, shared by the CLI and the flows.

Unknown keys are errors (``extra="forbid"``) so a typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.qa import REPORT_TASK, TASKS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignalConfig(_Strict):
    """How every record's signal is conditioned (defaults reproduce MEIT: 500 Hz, 10 s, raw)."""

    fs: int = Field(500, gt=0, description="output sampling rate in Hz")
    duration_s: float = Field(10.0, gt=0, description="fixed output length in seconds")
    length_tolerance_s: float = Field(
        0.5, ge=0, description="records whose length differs more than this are rejected"
    )
    max_nan_fraction: float = Field(
        0.05, ge=0, le=1, description="reject when more than this share of any lead is NaN/inf"
    )
    max_nan_gap_s: float = Field(
        0.5, ge=0, description="reject when any lead has a NaN/inf run longer than this"
    )
    bandpass_hz: tuple[float, float] | None = Field(
        None, description="Butterworth band-pass (low, high) in Hz; None = off"
    )
    highpass_hz: float | None = Field(
        None, description="baseline-wander removal: Butterworth high-pass cutoff in Hz"
    )
    filter_order: int = Field(5, ge=1, le=10, description="Butterworth order (as neurokit2)")
    notch_hz: float | None = Field(None, description="powerline notch frequency (50 or 60)")
    notch_quality: float = Field(30.0, gt=0, description="notch quality factor Q")
    normalise: Literal["none", "zscore", "meit"] = "none"
    flat_threshold_mv: float = Field(
        0.01, ge=0, description="a lead whose peak-to-peak is below this (mV) is flat"
    )
    saturation_fraction: float = Field(
        0.02,
        ge=0,
        le=1,
        description="reject when a lead sits at its rail for this share of samples",
    )

    @field_validator("bandpass_hz")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not 0 < v[0] < v[1]:
            raise ValueError("bandpass_hz must be (low, high) with 0 < low < high")
        return v

    @property
    def n_samples(self) -> int:
        """Samples per lead in the output."""
        return int(round(self.fs * self.duration_s))


class TextConfig(_Strict):
    """Report cleaning and instruction rendering."""

    template_seed: int = Field(0, description="seed of the per-record template choice")
    translation: Literal["glossary", "csv", "marian", "none"] = Field(
        "glossary", description="how PTB-XL's German/Swedish reports become English"
    )
    translation_csv: Path | None = Field(
        None, description="pre-translated reports keyed by ecg_id (translation: csv)"
    )
    marian_model: Path | None = Field(
        None, description="local MarianMT model directory (translation: marian)"
    )
    mimic_expand_abbreviations: bool = False
    mimic_lowercase: bool = Field(True, description="lower-case MIMIC statements, as MEIT does")
    min_report_words: int = Field(1, ge=0, description="PTB-XL reports with fewer words: rejected")
    mimic_min_report_words: int = Field(
        4, ge=0, description="MIMIC reports with fewer words after cleaning are rejected (MERL)"
    )
    examples_per_record: int = Field(
        1, ge=1, le=len(TASKS), description="rows per record: the report, then drawn QA tasks"
    )
    task_weights: dict[str, float] = Field(
        default_factory=lambda: {t: 1.0 for t in TASKS if t != REPORT_TASK},
        description="relative weights of the extra tasks (examples 2..N of a record)",
    )
    scp_min_likelihood: float = Field(
        50.0, ge=0, le=100, description="PTB-XL diagnostic statements below this are not answers"
    )
    meit_jsonl: bool = Field(False, description="also write MEIT's own jsonl next to the shards")

    @field_validator("task_weights")
    @classmethod
    def _known_tasks(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown tasks {sorted(unknown)}; known: {list(TASKS)}")
        if any(w < 0 for w in v.values()):
            raise ValueError("task weights must be >= 0")
        return v

    @model_validator(mode="after")
    def _translation_inputs(self) -> "TextConfig":
        if self.translation == "csv" and self.translation_csv is None:
            raise ValueError("translation: csv needs translation_csv")
        if self.translation == "marian" and self.marian_model is None:
            raise ValueError("translation: marian needs marian_model")
        return self


class SplitConfig(_Strict):
    """Split settings: patient-level by default.

    ``mode: meit`` reproduces MEIT's released code for sources without folds (MIMIC): a seeded
    record-level 90 / 9 / 1 split. It leaks patients across splits and is labelled so in the
    manifest; use it only to compare with the paper.
    """

    mode: Literal["patient", "meit"] = "patient"
    meit_fractions: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.90, "validation": 0.09, "test": 0.01}
    )

    ptbxl_folds: dict[str, list[int]] = Field(
        default_factory=lambda: {"train": list(range(1, 9)), "validation": [9], "test": [10]}
    )
    hash_fractions: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.90, "validation": 0.05, "test": 0.05},
        description="patient-hash split for sources without folds",
    )
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "SplitConfig":
        for name in ("hash_fractions", "meit_fractions"):
            if abs(sum(getattr(self, name).values()) - 1.0) > 1e-9:
                raise ValueError(f"split.{name} must sum to 1")
        folds = [f for v in self.ptbxl_folds.values() for f in v]
        if len(folds) != len(set(folds)):
            raise ValueError("split.ptbxl_folds: a fold is assigned to two splits")
        return self


def local_location(v: object) -> object:
    """``file://`` URLs (fsspec's local filesystem) become plain paths; other URLs stay."""
    if isinstance(v, str) and v.startswith("file://"):
        from fsspec.implementations.local import LocalFileSystem

        return Path(LocalFileSystem._strip_protocol(v))
    if isinstance(v, str) and "://" not in v:
        return Path(v)  # a local folder; URLs stay strings (Path would fold their "//")
    return v


def existing_folder(v: object) -> object:
    """``v`` unchanged, or ``ValueError`` when it is a local path that is not a folder."""
    if isinstance(v, Path) and not v.is_dir():
        raise ValueError(f"input folder does not exist: {v}")
    return v


class BuildConfig(_Strict):
    """Everything a build depends on. Its hash goes in the manifest."""

    ptbxl: Path | str | None = Field(
        None, description="PTB-XL root (holds ptbxl_database.csv): a folder or an fsspec URL"
    )
    ptbxl_records: Literal["records500", "records100"] = "records500"
    mimic: Path | str | None = Field(
        None, description="MIMIC-IV-ECG root (holds record_list.csv): a folder or an fsspec URL"
    )
    sources: dict[str, Path | str] = Field(
        default_factory=dict,
        description="folders of other registered sources, by name (see pipeline/sources)",
    )
    out: Path = Path("corpus")
    workers: int = Field(0, ge=0, description="worker processes; 0 = all cores")
    batch_size: int = Field(64, ge=1, description="records conditioned together")
    records_per_shard: int = Field(1000, ge=1, description="target rows per Parquet shard")
    shards_per_split: int | None = Field(
        None,
        ge=1,
        description="fixed number of hash-bucket shards per (source, split). Set it for "
        "incremental refresh: a record's shard then depends on its id alone, so added, changed "
        "or removed records rewrite only their own shards. None = ceil(records / "
        "records_per_shard), which renumbers every shard of a split whenever its shard count "
        "changes (a refresh then rewrites that whole split).",
    )
    limit: int | None = Field(None, ge=1, description="take only the first N records per source")
    signal: SignalConfig = SignalConfig()
    text: TextConfig = TextConfig()
    split: SplitConfig = SplitConfig()
    synthetic: bool = Field(False, description="inputs are the generated demo (set by the CLI)")

    @field_validator("sources", mode="before")
    @classmethod
    def _source_folders(cls, v: object) -> object:
        if isinstance(v, dict):
            return {k: existing_folder(local_location(x)) for k, x in v.items()}
        return v

    @field_validator("ptbxl", "mimic", "out", mode="before")
    @classmethod
    def _local_url(cls, v: object) -> object:
        return local_location(v)

    @field_validator("out", mode="before")
    @classmethod
    def _local_out(cls, v: object) -> object:
        if isinstance(v, str) and "://" in v and not v.startswith("file://"):
            raise ValueError(
                "out must be a local folder (or file://): URL outputs are not supported"
            )
        return v

    @field_validator("ptbxl", "mimic")
    @classmethod
    def _exists(cls, v: Path | str | None) -> Path | str | None:
        return existing_folder(v)

    def inputs(self) -> dict[str, Path | str]:
        """Source name -> input folder, for every source given (PTB-XL, MIMIC, then the rest)."""
        given = {"ptbxl": self.ptbxl, "mimic": self.mimic, **self.sources}
        return {name: root for name, root in given.items() if root is not None}

    def content_hash(self) -> str:
        """sha256 of the settings that shape the data (not workers/out, which do not)."""
        exclude = {"workers", "out"} | (set() if self.sources else {"sources"})
        data = self.model_dump(mode="json", exclude=exclude)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def load_config(path: Path | None, **overrides: object) -> BuildConfig:
    """Read a YAML config (or none) and apply non-None command-line overrides on top."""
    data: dict = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the config must be a mapping")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return BuildConfig.model_validate(data)


def config_error_line(exc: Exception) -> str:
    """One readable line for a config problem (pydantic errors joined, others as they are)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"]) or "config"
            msg = (
                "unknown key"
                if err["type"] == "extra_forbidden"
                else err["msg"].removeprefix("Value error, ")
            )
            parts.append(f"{where}: {msg}")
        return "; ".join(parts)
    return str(exc)
