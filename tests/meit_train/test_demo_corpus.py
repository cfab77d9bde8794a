"""The trainer on the corpus the pipeline builds: the newcomer path on the synthetic demo."""

from __future__ import annotations

import json

import numpy as np

from meit_train.cli import eval_main
from tests.meit_train.conftest import DEMO_STEPS, read_records


def test_tiny_cpu_preset_learns_visibly_on_the_demo_corpus(demo_run, losses):
    """`--preset tiny-cpu` (LoRA on the output projection too): the loss leaves ln(vocab) within
    a few steps, not the 0.05 nats a LoRA on the decoder layers alone manages."""
    values = losses(demo_run)
    assert len(values) == DEMO_STEPS and all(np.isfinite(values))
    assert values[0] > 10 and np.mean(values[-5:]) < values[0] - 3
    assert [v["step"] for v in read_records(demo_run, "validation")] == [10, 20]


def test_meit_eval_scores_the_demo_test_split(demo_run, demo_corpus, tmp_path, capsys):
    out = tmp_path / "eval.json"
    argv = ["--corpus", str(demo_corpus), "--run", str(demo_run), "--split", "test"]
    assert eval_main([*argv, "--max-new-tokens", "8", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    assert metrics["n"] == 5 and {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"} <= set(
        metrics["corpus"]
    )
    assert "rows" in capsys.readouterr().err  # the progress bar, on stderr
