"""Training on CPU: the loss goes down for both families, uneven epochs train without loss of
rows, resume in the middle of an epoch is exact, validation keeps the best weights."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from meit_train import train as train_mod
from meit_train.cli import train_main
from meit_train.train import train
from tests.meit_train.conftest import UNEVEN_ROWS, read_records


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
    argv = ["--corpus", str(tiny_corpus), "--model", str(tiny_gpt2), "--out", str(run)]
    assert train_main([*argv, "--config", str(cfg)]) == 0
    return run


@pytest.mark.parametrize("run_fixture", ["llama_run", "gpt2_run"])
def test_loss_goes_down(request, run_fixture, train_config, losses):
    run = request.getfixturevalue(run_fixture)
    values = losses(run)
    assert len(values) == train_config().max_steps and all(np.isfinite(values))
    assert np.mean(values[-4:]) < np.mean(values[:4]) - 0.05


def test_only_adapter_encoder_and_projection_are_saved(llama_run):
    state = torch.load(llama_run / "final" / "trainable.pt")
    assert state and all(("lora_" in k) or k.startswith(("encoder.", "projection.")) for k in state)
    assert (llama_run / "final" / "adapter" / "adapter_config.json").exists()
    assert sorted(p.name for p in (llama_run / "checkpoints").iterdir()) == [
        "step-00000012",
        "step-00000024",
    ]


@pytest.fixture
def seen_ids(monkeypatch) -> list[list[str]]:
    """Row ids of every micro-batch the trainer runs, in order."""
    seen: list[list[str]] = []
    real = train_mod.micro_step

    def recording(model, batch, *args):
        seen.append(list(batch["id"]))
        return real(model, batch, *args)

    monkeypatch.setattr(train_mod, "micro_step", recording)
    return seen


UNEVEN = dict(
    max_steps=None,
    epochs=3,
    batch_size=4,
    micro_batch_size=2,
    checkpoint_every=0,
    data=dict(num_workers=2, shuffle_buffer=8, bucket_batches=2),
)


def test_uneven_epochs_train_and_see_every_row_once_per_epoch(
    uneven_corpus, tiny_gpt2, train_config, seen_ids, tmp_path
):
    """The reported crash (epoch 0: 22 batches, epoch 1: 21, default 2 loader workers): three
    epochs run to the end, the schedule covers exactly the steps taken, every row once an epoch."""
    run = tmp_path / "run"
    result = train(uneven_corpus, str(tiny_gpt2), run, train_config(**UNEVEN))
    rows = [i for batch in seen_ids for i in batch]
    n = UNEVEN_ROWS[("ptbxl", "train")]
    assert len(rows) == 3 * n
    for epoch in range(3):
        assert Counter(rows[epoch * n : (epoch + 1) * n]) == Counter({i: 1 for i in set(rows)})
    epochs = read_records(run, "epoch")
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert result["steps"] == sum(e["steps"] for e in epochs) and result["epochs"] == 3
    assert [e["dropped_rows"] for e in epochs] == [0, 0, 0]
    assert read_records(run, "train")[-1]["lr"] == 0.0  # the linear decay ends on the last step


def test_resume_in_the_middle_of_an_epoch_gives_the_same_next_losses(
    uneven_corpus, tiny_llama, train_config, losses, tmp_path
):
    """Checkpoint at step 5 of epoch 0 (11 steps) with 2 loader workers; the resumed run's
    losses from step 6 on equal the uninterrupted run's."""
    cfg = train_config(**(UNEVEN | dict(max_steps=9, checkpoint_every=5, keep_checkpoints=3)))
    full = tmp_path / "full"
    train(uneven_corpus, str(tiny_llama), full, cfg)
    ckpt = full / "checkpoints" / "step-00000005"
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 0 and 0 < state["batch_in_epoch"] < 21
    resumed = tmp_path / "resumed"
    train(uneven_corpus, str(tiny_llama), resumed, cfg, resume_from=ckpt)
    assert losses(resumed) == losses(full)[5:]


def test_rng_state_is_saved_per_rank(llama_run):
    extra = torch.load(llama_run / "checkpoints" / "step-00000012" / "optim.pt", weights_only=False)
    assert isinstance(extra["rng"], list) and len(extra["rng"]) == 1
    assert set(extra["rng"][0]) >= {"python", "numpy", "torch"}


def test_validation_loss_and_best_weights(tiny_corpus, tiny_gpt2, train_config, tmp_path):
    """Validation every 3 steps (loss over all validation rows, generation scores on 2 of them),
    the best weights by validation loss in best/."""
    from meit_train.metrics import Scorer

    run = tmp_path / "run"
    cfg = train_config(
        max_steps=6, eval_every=3, checkpoint_every=0, eval_generate_rows=2, eval_max_new_tokens=4
    )
    result = train(tiny_corpus, str(tiny_gpt2), run, cfg)
    val = read_records(run, "validation")
    assert [v["step"] for v in val] == [3, 6]
    assert all(np.isfinite(v["val_loss"]) and v["val_tokens"] > 0 for v in val)
    assert all({f"val_{k}" for k in Scorer.NAMES} <= set(v) for v in val)
    best = min(val, key=lambda v: v["val_loss"])
    info = json.loads((run / "best" / "info.json").read_text())
    assert info == {"step": best["step"], "val_loss": best["val_loss"]}
    assert result["best_step"] == best["step"] and (run / "best" / "trainable.pt").exists()


@pytest.mark.parametrize("max_grad_norm", [None, 0.0, 1.0])
def test_gradient_clipping_only_when_configured(
    tiny_corpus, tiny_gpt2, train_config, tmp_path, monkeypatch, max_grad_norm
):
    calls = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, norm: calls.append(norm))
    cfg = train_config(max_steps=1, checkpoint_every=0, max_grad_norm=max_grad_norm)
    train(tiny_corpus, str(tiny_gpt2), tmp_path / "run", cfg)
    assert calls == ([max_grad_norm] if max_grad_norm else [])


RANK_SCRIPT = """
import json, sys
from pathlib import Path
from meit_train.config import TrainConfig
from meit_train.train import train
corpus, model, run, cfg = sys.argv[1:5]
cfg = TrainConfig.model_validate(json.loads(Path(cfg).read_text()))
print(json.dumps(train(Path(corpus), model, Path(run), cfg)))
"""


def test_two_ranks_take_equal_steps_and_log_global_figures(
    uneven_corpus, tiny_gpt2, train_config, tmp_path
):
    """torchrun's environment, two gloo ranks on CPU: an epoch where one rank has 24 rows and the
    other 18 ends together (6 rows logged as left out), logged samples are both ranks', the
    validation loss counts every rank's tokens, each rank checkpoints its own RNG state."""
    import os
    import socket
    import subprocess
    import sys

    from transformers import AutoTokenizer

    from meit_train.corpus import Selection, selected_units
    from meit_train.data import ChatFormatter, read_unit

    cfg = train_config(
        **(UNEVEN | dict(epochs=2, checkpoint_every=5, eval_every=10, data=dict(num_workers=1)))
    )
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.model_dump_json())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "run"
    procs = []
    for rank in range(2):
        env = os.environ | dict(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            OMP_NUM_THREADS="1",
            PYTHONPATH=str(Path(__file__).parents[2]),
        )
        argv = [sys.executable, "-c", RANK_SCRIPT, str(uneven_corpus), str(tiny_gpt2), str(run)]
        procs.append(
            subprocess.Popen(
                [*argv, str(cfg_path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-3000:] + outs[1][1][-3000:]
    results = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert results[0]["steps"] == results[1]["steps"] == 20
    epochs = read_records(run, "epoch")
    assert [(e["steps"], e["dropped_rows"]) for e in epochs] == [(11, 0), (9, 6)]
    per_epoch = Counter()
    for r in read_records(run, "train"):
        per_epoch[r["epoch"]] += r["samples"]  # both ranks' rows of each step
    assert per_epoch == {0: 42, 1: 42 - 6}
    tok = AutoTokenizer.from_pretrained(str(tiny_gpt2))
    fmt = ChatFormatter(tok, cfg.data.max_length)
    rows = [
        r
        for u in selected_units(uneven_corpus, Selection("validation"))
        for r in read_unit(u, ["ecg", "messages"])
    ]
    answer_tokens = sum(
        len(fmt.encode(r["messages"])[0]) - len(fmt.prompt_ids(r["messages"])) for r in rows
    )
    assert {v["val_tokens"] for v in read_records(run, "validation")} == {answer_tokens}
    rngs = torch.load(run / "checkpoints" / "step-00000020" / "optim.pt", weights_only=False)["rng"]
    assert len(rngs) == 2 and not torch.equal(rngs[0]["torch"], rngs[1]["torch"])
