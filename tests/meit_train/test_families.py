"""Every supported model family, on a tiny random model of it with the real GPT-2 BPE.

For each family: with the slot gated off the MEIT model equals the unmodified base model (so the
patched attention of BLOOM, Falcon and GPT-Neo reproduces theirs exactly), the slot changes the
output, greedy generation with the KV cache equals uncached greedy decoding token by token, and a
few optimiser steps lower the loss with gradients reaching the ECG encoder through every layer.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from meit_train import families
from meit_train.model import ModelConfig, build_model
from meit_train.tiny import FAMILIES, make_tiny_model

SMALL = ModelConfig.model_validate(
    dict(encoder=dict(layers=[1, 1], width=8), lora=dict(r=4, alpha=8, dropout=0.0))
)
EXPECTED = {
    "llama": "separate",
    "gpt2": "gpt2",
    "gpt_neox": "gpt_neox",
    "bloom": "bloom",
    "falcon": "falcon",
    "gpt_neo": "gpt_neo",
}


@pytest.fixture(scope="module", params=FAMILIES)
def family_dir(request, tmp_path_factory):
    """A saved tiny random model of each family (2 layers, hidden 64, weights of std 0.2 so that
    the output depends on more than the last input token)."""
    out = tmp_path_factory.mktemp(request.param)
    return request.param, make_tiny_model(out, request.param, init_std=0.2)


def left_padded():
    """Two prompts, the first left-padded (positions must follow the mask), and two ECGs."""
    ids = torch.tensor([[50256, 50256, 21, 22, 23, 24, 25], [11, 12, 13, 14, 15, 16, 17]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    return ids, mask, torch.randn(2, 12, 500, generator=torch.Generator().manual_seed(1))


def test_every_family_is_found_and_fused(family_dir):
    name, path = family_dir
    meit, _ = build_model(path, SMALL)
    found = families.attention_modules(meit.lm)
    assert {fam.name for _, fam in found} == {EXPECTED[name]}
    assert all(m.meit_slot is meit.slot for m, _ in found)


def test_gated_off_slot_equals_base_model_and_slot_changes_output(family_dir):
    name, path = family_dir
    torch.manual_seed(0)
    attn = families.attn_implementation(name)
    base = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation=attn).eval()
    meit, _ = build_model(path, SMALL)
    meit.eval()
    ids, mask, ecg = left_padded()
    with torch.no_grad():
        want = base(input_ids=ids, attention_mask=mask).logits
        off = meit(ids, mask, ecg, ecg_present=torch.zeros(2, dtype=torch.bool)).logits
        on = meit(ids, mask, ecg).logits
    keep = mask.bool()
    torch.testing.assert_close(off[keep], want[keep], rtol=1e-5, atol=1e-5)
    assert meit.slot.calls == base.config.get_text_config().num_hidden_layers
    assert (on[keep] - want[keep]).abs().max() > 1e-3


def greedy_uncached(meit, ids, mask, ecg, n: int, present=None) -> torch.Tensor:
    """Greedy decoding by full forward passes (no cache), positions from the padding mask."""
    out = []
    with torch.no_grad():
        for _ in range(n):
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = meit(ids, mask, ecg, ecg_present=present, position_ids=pos).logits
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            out.append(nxt)
            ids, mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
    return torch.cat(out, 1)


def test_cached_generation_equals_uncached_greedy_with_ecg_at_every_step(family_dir):
    _, path = family_dir
    torch.manual_seed(0)
    meit, tok = build_model(path, SMALL)
    meit.eval()
    torch.nn.init.normal_(meit.projection.weight, std=10.0)  # a slot that steers the argmax
    ids, mask, ecg = left_padded()
    n = 8
    cached = meit.generate(ids, mask, ecg, n, tok.eos_token_id, tok.pad_token_id)
    want = greedy_uncached(meit, ids, mask, ecg, n)
    without = greedy_uncached(meit, ids, mask, ecg, n, present=torch.zeros(2, dtype=torch.bool))
    assert (want[:, 1:] != without[:, 1:]).any(), "the slot must matter after the first token"
    assert torch.equal(cached, want)


def test_a_few_steps_lower_the_loss_and_reach_the_encoder(family_dir):
    _, path = family_dir
    torch.manual_seed(0)
    meit, _ = build_model(path, SMALL)
    meit.train()
    ids, mask, ecg = left_padded()
    labels = ids.masked_fill(mask == 0, -100)
    opt = torch.optim.AdamW([p for p in meit.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = meit(ids, mask, ecg, labels=labels).loss
        loss.backward()
        enc = sum(p.grad.abs().sum() for p in meit.encoder.parameters() if p.grad is not None)
        assert enc > 0
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.5


def test_slot_key_value_is_what_the_layer_makes_of_that_vector(family_dir):
    """The slot's key/value equal the layer's own cached key/value for a one-token input whose
    attention input is the same vector (position 0: rotary is the identity there, ALiBi does not
    touch keys), so the fused projections are split the way the family splits them."""
    _, path = family_dir
    meit, _ = build_model(path, SMALL)
    meit.eval()
    first, _ = families.attention_modules(meit.lm)[0]
    seen = {}

    def grab(module, args, kwargs):
        seen["x"] = args[0] if args else kwargs["hidden_states"]

    handle = first.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        out = meit.lm(input_ids=torch.tensor([[1234], [42]]), use_cache=True)
        k0, v0 = first.meit_kv(first, seen["x"][:, 0])
    handle.remove()
    layer = out.past_key_values.layers[0]
    torch.testing.assert_close(k0, layer.keys, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v0, layer.values, rtol=1e-5, atol=1e-6)
