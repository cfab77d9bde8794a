"""The trainer on the corpus the pipeline builds: the synthetic demo, end to end on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from meit_train.cli import eval_main
from meit_train.config import TrainConfig
from meit_train.train import train


@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory) -> Path:
    """`meit-corpus build` with no input (the synthetic demo), as `make demo` builds it."""
    from pipeline.config import BuildConfig
    from pipeline.corpus import build_corpus, with_demo_inputs

    tmp = tmp_path_factory.mktemp("demo")
    cfg = with_demo_inputs(BuildConfig(out=tmp / "corpus", workers=1), tmp / "inputs")
    build_corpus(cfg)
    return tmp / "corpus"


def test_tiny_gpt2_trains_and_evaluates_on_the_demo_corpus(demo_corpus, tiny_gpt2, tmp_path):
    cfg = TrainConfig.model_validate(
        dict(
            max_steps=20,
            batch_size=4,
            micro_batch_size=4,
            lr=3e-3,
            warmup_ratio=0.1,
            checkpoint_every=20,
            log_every=1,
            progress=False,
            data=dict(max_length=64, num_workers=0, shuffle_buffer=16, bucket_batches=2),
            model=dict(
                encoder=dict(layers=[1, 1], width=16), lora=dict(r=8, alpha=16, dropout=0.1)
            ),
        )
    )
    run = tmp_path / "run"
    train(demo_corpus, str(tiny_gpt2), run, cfg)
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 20 and np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.05
    out = tmp_path / "eval.json"
    assert (
        eval_main(
            [
                "--corpus",
                str(demo_corpus),
                "--run",
                str(run),
                "--split",
                "test",
                "--max-new-tokens",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["n"] == 5 and {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"} <= set(
        metrics["corpus"]
    )
