"""Fixtures of the trainer tests: a tiny synthetic corpus and tiny Llama / GPT-2 models.

The corpus is written by :func:`meit_train.synthetic.write_synthetic_corpus` (neurokit2 multilead
simulations, 1,000 samples at 100 Hz, row groups of 8 rows, two shards per split) with the shard
schema of :mod:`schemas`; the models are randomly initialised and carry the real GPT-2 BPE.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

TINY_ROWS = {
    ("ptbxl", "train"): 24,
    ("ptbxl", "validation"): 4,
    ("ptbxl", "test"): 8,
    ("mimic", "train"): 8,
    ("mimic", "test"): 4,
}  # 48 rows


@pytest.fixture(autouse=True)
def _quiet():
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A 48-row corpus (ptbxl and mimic; train/validation/test) in the real shard layout."""
    from meit_train.synthetic import write_synthetic_corpus

    return write_synthetic_corpus(
        tmp_path_factory.mktemp("corpus"), TINY_ROWS, n_samples=1000, fs=100
    )


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A 2-layer Llama (grouped-query attention, chat template) with GPT-2's BPE."""
    from meit_train.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A 2-layer GPT-2 (no chat template: MEIT's layout is used)."""
    from meit_train.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("gpt2"), "gpt2")


STEPS = 24


def tiny_config(**over):
    """A CPU-sized config: micro-batches of 4, 2 per step, 64 tokens, small encoder and LoRA."""
    from meit_train.config import TrainConfig

    raw = dict(
        max_steps=STEPS,
        batch_size=8,
        micro_batch_size=4,
        lr=3e-3,
        warmup_ratio=0.1,
        checkpoint_every=12,
        log_every=1,
        progress=False,
        data=dict(
            max_length=64, num_workers=0, shuffle_buffer=16, bucket_batches=2, sources=["ptbxl"]
        ),
        model=dict(encoder=dict(layers=[1, 1], width=16), lora=dict(r=8, alpha=16, dropout=0.1)),
    )
    return TrainConfig.model_validate({**raw, **over})


def read_losses(run: Path) -> list[float]:
    """The per-step losses a run logged."""
    import json

    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def train_config():
    """Factory of CPU-sized training configs (keyword arguments override top-level fields)."""
    return tiny_config


@pytest.fixture(scope="session")
def losses():
    """Reads the per-step losses of a run directory."""
    return read_losses
