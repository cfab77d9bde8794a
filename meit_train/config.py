"""Training configuration (YAML, validated by pydantic; an unknown key is an error).

A run's settings come from, in order (later wins, mappings merged key by key): the defaults below,
a named preset (``meit_train/presets/<name>.yaml``: ``meit``, ``tiny-cpu``), a ``--config`` file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from meit_train.model import ModelConfig


class DataConfig(BaseModel):
    """Which rows are read, how they are laid out as text, and how they are batched."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] | None = (
        None  # None: all sources (zero-shot: train on one, evaluate another)
    )
    split: str = "train"
    validation_split: str = "validation"
    template_ids: list[str] | None = None  # keep only rows whose instruction has one of these ids
    prompt_format: Literal["meit", "chat"] = "meit"  # meit: <|user|>/<|assistant|> for every model
    normalise: Literal["none", "zscore", "meit"] | None = None  # required corpus normalisation
    max_length: int = 128
    shuffle_buffer: int = 512
    bucket_batches: int = 16
    num_workers: int = 2


class TrainConfig(BaseModel):
    """Paper defaults: lr 2e-5, linear schedule with 3 % warm-up, total batch 64, 5 epochs."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    epochs: int = 5
    max_steps: int | None = None  # stop (and schedule) after this many optimiser steps
    batch_size: int = 64  # total per optimiser step, over all ranks and accumulation
    micro_batch_size: int = 8  # per rank and forward pass
    lr: float = 2e-5
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0  # null or 0: no gradient clipping (MEIT clips nothing)
    precision: str = Field("auto", pattern="^(auto|bf16|fp32)$")  # auto: bf16 on CUDA, else fp32
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    eval_every: int = 0  # validation loss every N steps (0: never); the best is kept in best/
    eval_generate_rows: int = 0  # also greedy-generate and score this many validation rows
    eval_max_new_tokens: int = 64
    progress: bool = True
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()

    @model_validator(mode="after")
    def _batch_divides(self) -> "TrainConfig":
        if self.batch_size % self.micro_batch_size:
            raise ValueError("batch_size must be a multiple of micro_batch_size")
        return self

    @property
    def clip_norm(self) -> float | None:
        """The gradient-norm bound, or None when clipping is off."""
        return self.max_grad_norm or None

    def accumulation(self, world_size: int) -> int:
        """Micro-batches per optimiser step on each rank."""
        per_rank = self.batch_size // world_size
        if per_rank % self.micro_batch_size or per_rank == 0:
            raise ValueError(
                f"batch_size {self.batch_size} does not split over {world_size} ranks "
                f"in micro-batches of {self.micro_batch_size}"
            )
        return per_rank // self.micro_batch_size


def preset_names() -> list[str]:
    """Names of the presets shipped in ``meit_train/presets``."""
    folder = resources.files("meit_train") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; ``ValueError`` naming the choices when there is none."""
    if name not in preset_names():
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(preset_names())}")
    return Path(str(resources.files("meit_train") / "presets" / f"{name}.yaml"))


def read_yaml(path: Path) -> dict:
    """A YAML mapping (an empty file is an empty mapping)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the config must be a mapping")
    return raw


def merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``; nested mappings are merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    path: Path | None, overrides: dict | None = None, preset: str | None = None
) -> TrainConfig:
    """Defaults, then ``preset``, then the YAML file ``path``, then ``overrides`` (deep-merged)."""
    raw: dict = read_yaml(preset_path(preset)) if preset else {}
    if path:
        raw = merge(raw, read_yaml(path))
    return TrainConfig.model_validate(merge(raw, overrides or {}))
