"""meit-eval's generation: prefix-stable greedy hypotheses, the choice of weights."""

from __future__ import annotations

import pytest
import torch

from meit_train.data import make_loader
from meit_train.evaluate import generation_stream, hypothesis, load_run
from meit_train.train import train


@pytest.fixture(scope="module")
def untrained_run(demo_corpus, tiny_llama, train_config, tmp_path_factory):
    """The README's old newcomer path in effect: a run whose model has learnt nothing."""
    run = tmp_path_factory.mktemp("untrained") / "run"
    cfg = train_config(max_steps=1, lr=1e-12, checkpoint_every=0, data=dict(sources=None))
    train(demo_corpus, str(tiny_llama), run, cfg)
    return run


@pytest.mark.parametrize("run_fixture,n", [("untrained_run", 128), ("demo_run", 40)])
def test_greedy_output_is_prefix_stable(request, run_fixture, n, demo_corpus):
    """16 new tokens are the first 16 of ``n`` (left-padded batch, cached decoding), and each
    16-token hypothesis is a prefix of the ``n``-token one. The reported 'empty at 16, text at 128'
    was an untrained model's leading newlines, stripped: still a prefix."""
    model, tok, cfg = load_run(request.getfixturevalue(run_fixture))
    stream = generation_stream(tok, demo_corpus, "test", None, 64, 8)
    batch = next(iter(make_loader(stream, 0, False)))
    assert len(batch["id"]) == 5 and (batch["attention_mask"] == 0).any()  # left padding
    args = (batch["input_ids"], batch["attention_mask"], batch["ecg"])
    short = model.generate(*args, 16, tok.eos_token_id, tok.pad_token_id)
    long = model.generate(*args, n, tok.eos_token_id, tok.pad_token_id)
    assert torch.equal(short, long[:, : short.shape[1]])
    texts = [
        (hypothesis(tok, s.tolist()), hypothesis(tok, lg.tolist())) for s, lg in zip(short, long)
    ]
    assert all(lg.startswith(s) for s, lg in texts)
    if run_fixture == "demo_run":
        assert all(s for s, _ in texts)  # a trained model writes its report within 16 tokens


def test_weights_choice_loads_best_final_or_latest(demo_run, tmp_path):
    """``--weights`` picks the file: a run copy whose best/ and checkpoint weights are marked
    differently from final/ loads each one on request."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    final = torch.load(run / "final" / "trainable.pt")
    key = next(k for k in final if "lora_B" in k)
    ckpt = sorted((run / "checkpoints").glob("step-*"))[-1] / "trainable.pt"
    for path, mark in ((run / "best" / "trainable.pt", 1.0), (ckpt, 2.0)):
        state = torch.load(path)
        state[key] = torch.full_like(state[key], mark)
        torch.save(state, path)
    for which, want in (("final", final[key]), ("best", 1.0), ("latest", 2.0)):
        model, _, _ = load_run(run, weights=which)
        got = dict(model.named_parameters())[key].detach()
        assert torch.equal(got, want if torch.is_tensor(want) else torch.full_like(got, want))
