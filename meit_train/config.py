"""Training configuration (YAML, validated by pydantic; an unknown key is an error)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from meit_train.model import ModelConfig


class DataConfig(BaseModel):
    """Which rows are read and how they are batched."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] | None = (
        None  # None: all sources (zero-shot: train on one, evaluate another)
    )
    split: str = "train"
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
    max_grad_norm: float = 1.0
    precision: str = Field("auto", pattern="^(auto|bf16|fp32)$")  # auto: bf16 on CUDA, else fp32
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = True
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()

    @model_validator(mode="after")
    def _batch_divides(self) -> "TrainConfig":
        if self.batch_size % self.micro_batch_size:
            raise ValueError("batch_size must be a multiple of micro_batch_size")
        return self

    def accumulation(self, world_size: int) -> int:
        """Micro-batches per optimiser step on each rank."""
        per_rank = self.batch_size // world_size
        if per_rank % self.micro_batch_size or per_rank == 0:
            raise ValueError(
                f"batch_size {self.batch_size} does not split over {world_size} ranks "
                f"in micro-batches of {self.micro_batch_size}"
            )
        return per_rank // self.micro_batch_size


def load_config(path: Path | None, overrides: dict | None = None) -> TrainConfig:
    """Read ``path`` (YAML) into a :class:`TrainConfig`, applying ``overrides`` on top."""
    raw = yaml.safe_load(Path(path).read_text()) if path else {}
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the config must be a mapping")
    return TrainConfig.model_validate({**raw, **(overrides or {})})
