"""Fixtures of the trainer tests: small corpora and tiny Llama / GPT-2 models.

The corpora are written by :func:`tests.meit_train.corpora.write_synthetic_corpus` (the pipeline's
ECG simulator, 1,000 samples at 100 Hz) with the corpus contract of :mod:`schemas`, or built by the
pipeline (the synthetic demo, as ``make demo``); the models are randomly initialised and carry the
real GPT-2 BPE. Without torch/transformers/peft the trainer tests skip, except under a truthy
``CI`` (CI installs the ``train`` extra, so a missing one there is a failure).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from tests.conftest import need_module

for _name in ("torch", "transformers", "peft"):
    need_module(_name)  # skips here; fails under a truthy CI, where the train extra is installed

TINY_ROWS = {
    ("ptbxl", "train"): 24,
    ("ptbxl", "validation"): 4,
    ("ptbxl", "test"): 8,
    ("mimic", "train"): 8,
    ("mimic", "test"): 4,
}  # 48 rows

UNEVEN_ROWS = {("ptbxl", "train"): 42, ("ptbxl", "validation"): 6}
"""The reported crash: 42 rows in 2 shards of row groups of 4 (21 = 5 x 4 + 1 per shard). With 2
loader workers and micro-batches of 2, epoch 0 has 22 batches and epoch 1 has 21."""


@pytest.fixture(autouse=True)
def _quiet():
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A 48-row corpus (ptbxl and mimic; train/validation/test) in the real shard layout."""
    from tests.meit_train.corpora import write_synthetic_corpus

    return write_synthetic_corpus(
        tmp_path_factory.mktemp("corpus"), TINY_ROWS, n_samples=1000, fs=100
    )


@pytest.fixture(scope="session")
def uneven_corpus(tmp_path_factory) -> Path:
    """42 training rows in 2 shards with row groups of 4 (uneven epochs with 2 loader workers)."""
    from tests.meit_train.corpora import write_synthetic_corpus

    return write_synthetic_corpus(
        tmp_path_factory.mktemp("uneven"), UNEVEN_ROWS, n_samples=1000, fs=100, row_group_size=4
    )


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """`meit-corpus build` with no input (the synthetic demo), as `make demo` builds it."""
    from pipeline.build import build_corpus
    from pipeline.config import BuildConfig
    from pipeline.demo import with_demo_inputs

    tmp = tmp_path_factory.mktemp("demo")
    cfg = with_demo_inputs(BuildConfig(out=tmp / "corpus", workers=1), tmp / "inputs")
    build_corpus(cfg)
    return tmp / "corpus"


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
    from meit_train.config import TrainConfig, merge

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
    return TrainConfig.model_validate(merge(raw, over))


def read_records(run: Path, kind: str) -> list[dict]:
    """The records of one ``kind`` (train, validation, epoch) a run logged."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


def read_losses(run: Path) -> list[float]:
    """The per-step training losses a run logged."""
    return [r["loss"] for r in read_records(run, "train")]


@pytest.fixture(scope="session")
def train_config():
    """Factory of CPU-sized training configs (keyword arguments are merged over the defaults)."""
    return tiny_config


@pytest.fixture(scope="session")
def losses():
    """Reads the per-step losses of a run directory."""
    return read_losses


DEMO_STEPS = 20


@pytest.fixture(scope="session")
def demo_run(demo_corpus, tiny_llama, tmp_path_factory) -> Path:
    """The newcomer path: ``meit-train --preset tiny-cpu`` on the demo corpus (shortened to
    ``DEMO_STEPS`` steps, validation every 10 steps so that ``best/`` exists)."""
    from meit_train.cli import train_main

    run = tmp_path_factory.mktemp("demo-run") / "run"
    cfg = tmp_path_factory.mktemp("demo-cfg") / "short.yaml"
    cfg.write_text(
        f"max_steps: {DEMO_STEPS}\neval_every: 10\ncheckpoint_every: 10\nprogress: false\n"
    )
    argv = ["--preset", "tiny-cpu", "--config", str(cfg), "--corpus", str(demo_corpus)]
    assert train_main([*argv, "--model", str(tiny_llama), "--out", str(run)]) == 0
    return run
