"""The trainer on the corpus the pipeline builds: the synthetic demo, end to end on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from meit_train.cli import eval_main
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


def test_tiny_gpt2_trains_and_evaluates_on_the_demo_corpus(
    demo_corpus, tiny_gpt2, train_config, losses, tmp_path
):
    # Both sources, one micro-batch per step.
    data = dict(max_length=64, num_workers=0, shuffle_buffer=16, bucket_batches=2)
    cfg = train_config(max_steps=20, batch_size=4, checkpoint_every=20, data=data)
    run = tmp_path / "run"
    train(demo_corpus, str(tiny_gpt2), run, cfg)
    values = losses(run)
    assert len(values) == 20 and np.mean(values[-4:]) < np.mean(values[:4]) - 0.05
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
