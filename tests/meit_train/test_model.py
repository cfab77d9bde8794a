"""The MEIT model around a tiny Llama / GPT-2: slot per layer, projector, L2 norm, gradient
checkpointing, and that a briefly trained model uses the ECG.

"Zero ECG contribution" means: the ECG slot is gated off (``ecg_present=False`` puts a masked entry
for it in every layer's attention, so its softmax weight is exactly 0). The family-by-family checks
(gated-off slot equals the base model, cached generation equals uncached greedy decoding, a few
training steps) are in ``test_families.py``.
"""

from __future__ import annotations

import pytest
import torch

from meit_train import families
from meit_train.model import MlpProjector, ModelConfig, build_model

SMALL = ModelConfig.model_validate(dict(encoder=dict(layers=[1, 1], width=8)))


def inputs(batch: int = 2):
    ids = torch.tensor([[11, 12, 13, 14, 15, 16], [50256, 50256, 21, 22, 23, 24]])[:batch]
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])[:batch]
    return ids, mask, torch.randn(batch, 12, 1000, generator=torch.Generator().manual_seed(0))


@pytest.fixture(params=["tiny_llama", "tiny_gpt2"])
def lm_dir(request):
    return request.getfixturevalue(request.param)


def test_slot_goes_through_each_layers_own_projections(lm_dir):
    meit, _ = build_model(lm_dir, SMALL)
    mods = [m for m, _ in families.attention_modules(meit.lm)]
    assert len(mods) == meit.lm.config.num_hidden_layers
    token = torch.randn(2, meit.hidden)
    k0, v0 = mods[0].meit_kv(mods[0], token)
    k1, _ = mods[1].meit_kv(mods[1], token)
    assert k0.shape[0] == 2 and k0.shape[2] == 1 and k0.shape == v0.shape
    assert not torch.allclose(k0, k1)


def test_unknown_architecture_is_refused():
    from transformers import BertConfig, BertForMaskedLM

    bert = BertForMaskedLM(
        BertConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            vocab_size=100,
        )
    )
    with pytest.raises(
        NotImplementedError,
        match=r"^BertForMaskedLM: found 0 self-attention modules of a known family, expected 1; "
        r"this architecture is not supported$",
    ):
        families.attention_modules(bert)


def test_mlp_projector_and_l2_normalised_slot(tiny_llama):
    cfg = ModelConfig.model_validate(
        dict(encoder=dict(layers=[1, 1], width=8), projector="mlp", normalise_slot=True)
    )
    meit, _ = build_model(tiny_llama, cfg)
    proj = meit.projection
    assert isinstance(proj, MlpProjector)
    assert (proj.fc1.in_features, proj.fc1.out_features) == (meit.encoder.out_dim, 2048)
    assert (proj.fc2.in_features, proj.fc2.out_features) == (2048, meit.head_dim)
    _, _, ecg = inputs()
    meit.train()
    token = meit.ecg_token(ecg)  # tiled: every head's chunk is the same unit vector
    chunks = token.view(2, meit.tile, meit.head_dim)
    torch.testing.assert_close(chunks.norm(dim=-1), torch.ones(2, meit.tile))
    assert torch.equal(chunks[:, 0], chunks[:, -1])
    one = meit.ecg_token(ecg[:1])  # a one-sample training batch uses the running statistics
    assert torch.isfinite(one).all() and one.shape == (1, meit.hidden)
    assert {"projection.bn.running_mean", "projection.bn.running_var"} <= set(
        meit.trainable_state()
    )


def _grads(lm_dir, checkpointing: bool) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss and gradients of one backward pass (dropout off, LoRA B random so A gets gradients)."""
    torch.manual_seed(0)
    cfg = ModelConfig.model_validate(
        dict(
            encoder=dict(layers=[1, 1], width=8),
            lora=dict(r=4, alpha=8, dropout=0.0),
            gradient_checkpointing=checkpointing,
        )
    )
    meit, _ = build_model(lm_dir, cfg)
    for name, p in meit.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    meit.train()
    ids, mask, ecg = inputs()
    loss = meit(ids, mask, ecg, labels=ids.masked_fill(mask == 0, -100)).loss
    loss.backward()
    grads = {n: p.grad for n, p in meit.named_parameters() if p.requires_grad}
    return loss.item(), grads


def test_gradient_checkpointing_gives_the_same_gradients(tiny_llama):
    loss, plain = _grads(tiny_llama, False)
    loss_ckpt, ckpt = _grads(tiny_llama, True)
    assert loss == pytest.approx(loss_ckpt, abs=1e-6)
    assert plain.keys() == ckpt.keys()
    assert all(g is not None for g in ckpt.values())
    assert any(g.abs().sum() > 0 for n, g in ckpt.items() if n.startswith("encoder."))
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-5, atol=1e-7)


def test_zero_slot_changes_the_loss_of_a_briefly_trained_model(tmp_path):
    """Two ECG shapes, each paired with its own report: after training, the reports' loss with
    the ECG slot is lower than with the slot gated off or with the ECGs swapped (the model reads
    the ECG). Weights of std 0.2: with the default 0.02 the frozen tied embeddings keep every
    logit near 0 and the loss near ln(vocab), whatever LoRA learns."""
    from meit_train.tiny import make_tiny_model

    torch.manual_seed(0)
    cfg = ModelConfig.model_validate(
        dict(encoder=dict(layers=[1, 1], width=8), lora=dict(r=8, alpha=16, dropout=0.0))
    )
    meit, tok = build_model(make_tiny_model(tmp_path, "llama", init_std=0.2), cfg)
    reports = [" sinus rhythm, normal ecg", " atrial fibrillation, abnormal ecg"]
    enc = [tok(r)["input_ids"] for r in reports]
    n = max(map(len, enc))
    ids = torch.tensor([e + [tok.pad_token_id] * (n - len(e)) for e in enc])
    mask = torch.tensor([[1] * len(e) + [0] * (n - len(e)) for e in enc])
    labels = ids.masked_fill(mask == 0, -100)
    t = torch.linspace(0, 10, 500)
    ecg = torch.stack([torch.sin(t).expand(12, 500), torch.sign(torch.sin(3 * t)).expand(12, 500)])
    opt = torch.optim.AdamW([p for p in meit.parameters() if p.requires_grad], lr=1e-2)
    meit.train()
    for _ in range(30):
        opt.zero_grad()
        meit(ids, mask, ecg, labels=labels).loss.backward()
        opt.step()
    meit.eval()
    with torch.no_grad():
        with_ecg = meit(ids, mask, ecg, labels=labels).loss.item()
        off = torch.zeros(2, dtype=torch.bool)
        without = meit(ids, mask, ecg, labels=labels, ecg_present=off).loss.item()
        swapped = meit(ids, mask, ecg.flip(0), labels=labels).loss.item()
    assert with_ecg < without - 0.1
    assert with_ecg < swapped - 0.1


def test_an_attention_path_that_bypasses_the_slot_is_refused(tiny_llama):
    meit, _ = build_model(tiny_llama, SMALL)
    meit.lm.set_attn_implementation("sdpa")  # the plain path: no slot in any layer
    ids, mask, ecg = inputs()
    with pytest.raises(RuntimeError, match="reached 0 of 2 attention layers"):
        meit(ids, mask, ecg)
