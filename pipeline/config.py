"""Build configuration: one pydantic model, read from YAML, shared by the CLI and the flows.

Unknown keys are errors (``extra="forbid"``) so a typo never silently falls back to a default.
Every setting that could fail a build midway is checked here, before any work: filter cut-offs
against the Nyquist frequency of the output and the known source rates, finite numbers, the
output rate's bounds, the memory one batch needs, split fractions and folds, task weights, and
the translation inputs. YAML mistakes are one line with the file, line and column.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.qa import REPORT_TASK, TASKS
from schemas import CANONICAL_LEADS, SPLITS

FS_RANGE = (50, 2000)
"""Output rates accepted, in Hz. Below 50 Hz the Nyquist frequency (25 Hz) falls inside the QRS
complex's band (its energy reaches ~40 Hz), so the record is no longer an ECG; no 12-lead source
samples faster than 2000 Hz (PTB-XL 100/500, MIMIC-IV-ECG 500, PTB 1000, high-resolution ECG
2000), so a higher rate only interpolates and multiplies memory (``fs: 1e6`` asked 5.4 GiB)."""

SOURCE_RATES: dict[str, int] = {"ptbxl records500": 500, "ptbxl records100": 100, "mimic": 500}
"""Sampling rates of the built-in sources' records (PTB-XL by ``ptbxl_records``). Filters run at
the source rate, so their cut-offs must lie below these Nyquist frequencies too."""

BATCH_MEMORY_FACTOR = 6
"""Peak bytes of conditioning one batch / (records x 12 x samples x 8 bytes), at the larger of the
source and output rates: measured 5.0 with every filter on (float64 filter and resampling copies)
plus 0.5 for the float32 input records, with tracemalloc
(``tests/adversarial/test_config.py::test_memory_estimate_bounds_the_measured_peak``)."""

HASH_EXCLUDED = ("workers", "out", "max_batch_memory_gib", "fingerprint", "replace")
"""Settings that do not shape the data and stay out of the config hash."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _checks_paths(info: ValidationInfo) -> bool:
    """False when validating with ``context={"check_paths": False}`` (a manifest's config, whose
    input folders need not exist where the corpus is checked)."""
    return (info.context or {}).get("check_paths", True)


def _below_nyquist(hz: float, fs: float, of: str, what: str = "") -> None:
    """``ValueError`` unless ``hz`` is below ``fs / 2`` (``of`` names the rate in the message)."""
    if hz >= fs / 2:
        raise ValueError(
            f"{what}{hz:g} Hz is not below {fs / 2:g} Hz, the Nyquist frequency of {of}"
        )


def _positive_hz(v: float | None) -> float | None:
    if v is not None and v <= 0:
        raise ValueError(f"must be above 0 Hz, got {v:g}")
    return v


class SignalConfig(_Strict):
    """How every record's signal is conditioned (defaults reproduce MEIT: 500 Hz, 10 s, raw)."""

    fs: int = Field(500, description=f"output sampling rate in Hz ({FS_RANGE[0]}..{FS_RANGE[1]})")
    duration_s: float = Field(
        10.0, ge=1, description="fixed output length in seconds (>= 1 s: one beat at 60 bpm)"
    )
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
    accept_adc_units: bool = Field(
        False,
        description="keep signals whose header gives gain 0 or none (WFDB's 'uncalibrated') in "
        "ADC units above their baseline; by default such records are rejected (uncalibrated)",
    )

    @field_validator("fs")
    @classmethod
    def _fs_bound(cls, v: int) -> int:
        if not FS_RANGE[0] <= v <= FS_RANGE[1]:
            raise ValueError(f"{v} Hz is outside the supported {FS_RANGE[0]}..{FS_RANGE[1]} Hz")
        return v

    @field_validator("bandpass_hz")
    @classmethod
    def _ordered(
        cls, v: tuple[float, float] | None, info: ValidationInfo
    ) -> tuple[float, float] | None:
        if v is None:
            return v
        if not 0 < v[0] < v[1]:
            raise ValueError(f"must be (low, high) with 0 < low < high, got ({v[0]:g}, {v[1]:g})")
        if "fs" in info.data:
            fs = info.data["fs"]
            _below_nyquist(v[1], fs, f"the output rate ({fs} Hz)", "high cut-off ")
        return v

    @field_validator("highpass_hz", "notch_hz")
    @classmethod
    def _cut_off(cls, v: float | None, info: ValidationInfo) -> float | None:
        if _positive_hz(v) is not None and "fs" in info.data:
            fs = info.data["fs"]
            _below_nyquist(v, fs, f"the output rate ({fs} Hz)")
        return v

    def cut_offs(self) -> dict[str, tuple[float, str]]:
        """The highest frequency each configured filter designs for: field -> (Hz, label)."""
        out = {}
        if self.bandpass_hz is not None:
            out["bandpass_hz"] = (self.bandpass_hz[1], "high cut-off ")
        if self.highpass_hz is not None:
            out["highpass_hz"] = (self.highpass_hz, "")
        if self.notch_hz is not None:
            out["notch_hz"] = (self.notch_hz, "")
        return out

    def rate_problem(self, fs: float) -> str | None:
        """Why the filters cannot run on a record sampled at ``fs`` Hz (None when they can).

        The config is checked against the sources' nominal rates; a record whose header gives
        another rate is checked with this before it is read (and rejected, not crashed on).
        """
        for field, (hz, what) in self.cut_offs().items():
            if hz >= fs / 2:
                return (
                    f"{fs:g} Hz: signal.{field} {what}{hz:g} Hz is not below its Nyquist "
                    f"{fs / 2:g} Hz"
                )
        return None

    @property
    def n_samples(self) -> int:
        """Samples per lead in the output."""
        return int(round(self.fs * self.duration_s))


def _fractions(v: dict[str, float]) -> dict[str, float]:
    """Split fractions: known splits, each >= 0, summing to 1."""
    unknown = sorted(set(v) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split {unknown[0]!r} (splits: {', '.join(SPLITS)})")
    for split, x in v.items():
        if x < 0:
            raise ValueError(f"{split} is {x:g}; fractions must be >= 0")
    total = sum(v.values())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"must sum to 1, not {total:g}")
    return v


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
    def _known_tasks(cls, v: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        unknown = set(v) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown tasks {sorted(unknown)}; known: {list(TASKS)}")
        for task, w in v.items():
            if w < 0:
                raise ValueError(f"{task} is {w:g}; weights must be >= 0")
        extra = info.data.get("examples_per_record", 1) - 1
        if extra and not any(w > 0 for t, w in v.items() if t != REPORT_TASK):
            raise ValueError(
                f"every weight is 0, so examples_per_record {extra + 1} cannot draw a question task"
            )
        return v

    @field_validator("translation_csv")
    @classmethod
    def _csv_exists(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is not None and _checks_paths(info) and not v.is_file():
            raise ValueError(f"file not found: {v}")
        return v

    @field_validator("marian_model")
    @classmethod
    def _model_exists(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is not None and _checks_paths(info) and not v.is_dir():
            raise ValueError(f"folder not found: {v}")
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

    @field_validator("hash_fractions", "meit_fractions")
    @classmethod
    def _check_fractions(cls, v: dict[str, float]) -> dict[str, float]:
        return _fractions(v)

    @field_validator("ptbxl_folds")
    @classmethod
    def _check_folds(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        unknown = sorted(set(v) - set(SPLITS))
        if unknown:
            raise ValueError(f"unknown split {unknown[0]!r} (splits: {', '.join(SPLITS)})")
        seen: set[int] = set()
        for fold in (f for folds in v.values() for f in folds):
            if not 1 <= fold <= 10:
                raise ValueError(f"fold {fold} is not a PTB-XL strat_fold (1..10)")
            if fold in seen:
                raise ValueError(f"fold {fold} is assigned to two splits")
            seen.add(fold)
        return v


def local_location(v: object) -> object:
    """``file://`` URLs (fsspec's local filesystem) become plain paths; other URLs stay."""
    if isinstance(v, str) and v.startswith("file://"):
        from fsspec.implementations.local import LocalFileSystem

        return Path(LocalFileSystem._strip_protocol(v))
    if isinstance(v, str) and "://" not in v:
        return Path(v)  # a local folder; URLs stay strings (Path would fold their "//")
    return v


def existing_folder(v: object, check: bool = True) -> object:
    """``v`` unchanged, or ``ValueError`` when it is a local path that is not a folder, or a URL
    whose protocol fsspec does not know or cannot load (``s3://`` without ``s3fs``)."""
    if check and isinstance(v, Path) and not v.is_dir():
        raise ValueError(f"input folder does not exist: {v}")
    if check and isinstance(v, str) and "://" in v:
        from fsspec.registry import get_filesystem_class

        try:
            get_filesystem_class(v.split("://", 1)[0])
        except (ImportError, ValueError) as exc:
            raise ValueError(f"{v}: {exc}") from None
    return v


def config_hash(data: Mapping) -> str:
    """sha256 of a dumped config's settings that shape the data (see :data:`HASH_EXCLUDED`).

    Works on the dict a manifest stores, so ``validate`` recomputes a corpus's hash from it.
    """
    exclude = set(HASH_EXCLUDED) | (set() if data.get("sources") else {"sources"})
    kept = {k: v for k, v in data.items() if k not in exclude}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


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
    max_batch_memory_gib: float = Field(
        4.0,
        gt=0,
        description="refuse settings whose batch (batch_size records at signal.fs and the "
        "source rates) is estimated to need more memory than this, per worker process",
    )
    fingerprint: Literal["auto", "content"] = Field(
        "auto",
        description="how a plan tells a changed input: auto = the digests in the dataset's "
        "SHA256SUMS.txt, else the data files' size and mtime (no data byte read); content = "
        "hash every byte (rsync --checksum). Not in the config hash: it decides what is redone, "
        "not what the corpus holds (a switch re-keys every unit once; the shards come out "
        "byte-identical)",
    )
    replace: bool = Field(
        False,
        description="remove the shards of sources an earlier build of out wrote and this one "
        "has no input for (without it such a build is refused, naming them)",
    )
    signal: SignalConfig = SignalConfig()
    text: TextConfig = TextConfig()
    split: SplitConfig = SplitConfig()
    synthetic: bool = Field(False, description="inputs are the generated demo (set by the CLI)")

    @field_validator("sources", mode="before")
    @classmethod
    def _source_folders(cls, v: object, info: ValidationInfo) -> object:
        if isinstance(v, dict):
            return {
                k: existing_folder(local_location(x), _checks_paths(info)) for k, x in v.items()
            }
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
    def _exists(cls, v: Path | str | None, info: ValidationInfo) -> Path | str | None:
        return existing_folder(v, _checks_paths(info))

    @model_validator(mode="after")
    def _fits(self) -> "BuildConfig":
        """Filters below every known source's Nyquist frequency; one batch within memory."""
        for name, fs in self.source_rates().items():
            for field, (hz, what) in self.signal.cut_offs().items():
                try:
                    _below_nyquist(hz, fs, f"{name} ({fs} Hz)", what)
                except ValueError as exc:
                    raise ValueError(f"signal.{field}: {exc}") from None
        need, limit = batch_memory_bytes(self), self.max_batch_memory_gib * 2**30
        if need > limit:
            raise ValueError(
                f"memory: conditioning a batch of {self.batch_size} records x "
                f"{len(CANONICAL_LEADS)} leads x {self.batch_samples()} samples needs about "
                f"{need / 2**30:.1f} GiB, above max_batch_memory_gib "
                f"{self.max_batch_memory_gib:g}: lower batch_size, signal.fs or "
                "signal.duration_s (or raise max_batch_memory_gib)"
            )
        return self

    def source_rates(self) -> dict[str, int]:
        """Label -> sampling rate of the built-in sources this build reads (no input at all means
        the demo, which has both, at 500 Hz)."""
        demo = not self.inputs()
        out = {}
        if self.ptbxl is not None or demo:
            name = f"ptbxl {self.ptbxl_records}"
            out[name] = SOURCE_RATES[name]
        if self.mimic is not None or demo:
            out["mimic"] = SOURCE_RATES["mimic"]
        return out

    def batch_samples(self) -> int:
        """Samples per lead of the largest array conditioning holds (source or output rate)."""
        fs = max([self.signal.fs, *self.source_rates().values()])
        return math.ceil(fs * self.signal.duration_s)

    def inputs(self) -> dict[str, Path | str]:
        """Source name -> input folder, for every source given (PTB-XL, MIMIC, then the rest)."""
        given = {"ptbxl": self.ptbxl, "mimic": self.mimic, **self.sources}
        return {name: root for name, root in given.items() if root is not None}

    def content_hash(self) -> str:
        """sha256 of the settings that shape the data (not workers/out, which do not)."""
        return config_hash(self.model_dump(mode="json"))


def batch_memory_bytes(cfg: BuildConfig) -> int:
    """Estimated peak bytes of conditioning one batch: records x 12 leads x samples x 8 bytes
    (float64) x :data:`BATCH_MEMORY_FACTOR`, samples at the larger of source and output rate."""
    return cfg.batch_size * len(CANONICAL_LEADS) * cfg.batch_samples() * 8 * BATCH_MEMORY_FACTOR
