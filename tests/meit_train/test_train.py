"""Training on CPU: the loss goes down for both families, resume is exact, meit-eval writes metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from meit_train.cli import eval_main, train_main
from meit_train.metrics import Scorer
from meit_train.train import train


@pytest.fixture(scope="module")
def llama_run(tiny_corpus, tiny_llama, train_config, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "llama"
    train(tiny_corpus, str(tiny_llama), run, train_config())
    return run


@pytest.fixture(scope="module")
def gpt2_run(tiny_corpus, tiny_gpt2, train_config, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "gpt2"
    cfg = tmp_path_factory.mktemp("cfg") / "train.yaml"
    cfg.write_text(yaml.safe_dump(train_config().model_dump()))
    rc = train_main(
        [
            "--corpus",
            str(tiny_corpus),
            "--model",
            str(tiny_gpt2),
            "--out",
            str(run),
            "--config",
            str(cfg),
        ]
    )
    assert rc == 0
    return run


@pytest.mark.parametrize("run_fixture", ["llama_run", "gpt2_run"])
def test_loss_goes_down(request, run_fixture, train_config, losses):
    run = request.getfixturevalue(run_fixture)
    values = losses(run)
    assert len(values) == train_config().max_steps and all(np.isfinite(values))
    assert np.mean(values[-4:]) < np.mean(values[:4]) - 0.05


def test_only_adapter_encoder_and_projection_are_saved(llama_run):
    import torch

    state = torch.load(llama_run / "final" / "trainable.pt")
    assert state and all(("lora_" in k) or k.startswith(("encoder.", "projection.")) for k in state)
    assert (llama_run / "final" / "adapter" / "adapter_config.json").exists()
    assert sorted(p.name for p in (llama_run / "checkpoints").iterdir()) == [
        "step-00000012",
        "step-00000024",
    ]


def test_checkpoint_resumes_to_the_same_next_step_loss(
    llama_run, tiny_corpus, tiny_llama, train_config, losses, tmp_path
):
    resumed = tmp_path / "resumed"
    ckpt = llama_run / "checkpoints" / "step-00000012"
    train(tiny_corpus, str(tiny_llama), resumed, train_config(max_steps=14), resume_from=ckpt)
    assert losses(resumed) == losses(llama_run)[12:14]


def test_unknown_config_key_exits_2(tiny_corpus, tiny_gpt2, tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("lr: 1.0e-4\nlearning_rate_typo: 3\n")
    rc = train_main(
        [
            "--corpus",
            str(tiny_corpus),
            "--model",
            str(tiny_gpt2),
            "--out",
            str(tmp_path / "r"),
            "--config",
            str(cfg),
        ]
    )
    assert rc == 2 and "learning_rate_typo" in capsys.readouterr().err


def test_meit_eval_writes_all_metrics(gpt2_run, tiny_corpus, tmp_path):
    out = tmp_path / "eval.json"
    rc = eval_main(
        [
            "--corpus",
            str(tiny_corpus),
            "--run",
            str(gpt2_run),
            "--split",
            "test",
            "--source",
            "mimic",
            "--meit-batch-average",
            "--perturb",
            "0.05,0.20",
            "--max-new-tokens",
            "8",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["zero_shot"] is True and result["metrics"]["n"] == 4
    for block in (
        result["metrics"]["corpus"],
        result["metrics"]["meit_batch_average"],
        *[v["corpus"] for v in result["perturbation"].values()],
    ):
        assert set(block) == set(Scorer.NAMES) and all(np.isfinite(list(block.values())))
    assert set(result["perturbation"]) == {"0.05", "0.20"}
    preds = out.with_suffix(".predictions.jsonl").read_text().splitlines()
    assert len(preds) == 4 and all(json.loads(p)["source"] == "mimic" for p in preds)


def test_scorer_perfect_and_batch_average():
    refs = ["sinus rhythm. normal ecg.", "atrial fibrillation.", "left axis deviation."]
    with Scorer() as s:
        perfect = s.score(refs, refs)
        assert perfect["BLEU-4"] > 0.99 and perfect["METEOR"] > 0.99 and perfect["ROUGE-L"] > 0.99
        avg = s.batch_average(refs, ["sinus rhythm", "atrial fibrillation", "normal"], batch=2)
    assert set(avg) == set(Scorer.NAMES)
