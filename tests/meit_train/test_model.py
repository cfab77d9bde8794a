"""The fused ECG key/value slot: detection by architecture and the zero-contribution identity.

"Zero ECG contribution" here means: the ECG slot is gated off (``ecg_present=False`` puts a masked
entry for it in every layer's attention, so its softmax weight is exactly 0) and LoRA is at its
initialisation (B = 0). Then the MEIT model's logits equal the unmodified base model's logits.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from meit_train import fusion
from meit_train.encoder import EncoderConfig, ResNet1d
from meit_train.model import ModelConfig, build_model

SMALL = ModelConfig(encoder=EncoderConfig(layers=[1, 1], width=8))


def inputs(batch: int = 2):
    ids = torch.tensor([[11, 12, 13, 14, 15, 16], [50256, 50256, 21, 22, 23, 24]])[:batch]
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])[:batch]
    return ids, mask, torch.randn(batch, 12, 1000)


@pytest.fixture(params=["tiny_llama", "tiny_gpt2"])
def lm_dir(request):
    return request.getfixturevalue(request.param)


def test_zero_ecg_contribution_equals_base_model(lm_dir):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(lm_dir)).eval()
    meit, _ = build_model(lm_dir, SMALL)
    meit.eval()
    ids, mask, ecg = inputs()
    with torch.no_grad():
        want = base(input_ids=ids, attention_mask=mask).logits
        off = meit(ids, mask, ecg, ecg_present=torch.zeros(2, dtype=torch.bool)).logits
        on = meit(ids, mask, ecg).logits
    keep = mask.bool()
    torch.testing.assert_close(off[keep], want[keep], rtol=1e-5, atol=1e-5)
    assert meit.slot.calls == base.config.num_hidden_layers
    assert (on[keep] - want[keep]).abs().max() > 1e-3  # the slot does change the output


def test_slot_goes_through_each_layers_own_projections(lm_dir):
    meit, _ = build_model(lm_dir, SMALL)
    mods = fusion.attention_modules(meit.lm)
    assert len(mods) == meit.lm.config.num_hidden_layers
    assert all(m.meit_slot is meit.slot for m in mods)
    token = torch.randn(2, meit.hidden)
    k0, _ = fusion.ecg_key_value(mods[0], token, *_kv_shape(mods[0]))
    k1, _ = fusion.ecg_key_value(mods[1], token, *_kv_shape(mods[1]))
    assert not torch.allclose(k0, k1)


def _kv_shape(m) -> tuple[int, int]:
    heads = getattr(m.config, "num_key_value_heads", None) or m.config.num_attention_heads
    return heads, m.head_dim


def test_greedy_generation_with_cache_matches_uncached_argmax(lm_dir):
    meit, tok = build_model(lm_dir, SMALL)
    meit.eval()
    ids, mask, ecg = inputs(1)
    new = meit.generate(ids, mask, ecg, 3, tok.eos_token_id, tok.pad_token_id)
    with torch.no_grad():
        step = meit(ids, mask, ecg).logits[0, -1].argmax()
    assert new[0, 0] == step


def test_encoder_depth_is_configurable():
    x = torch.randn(2, 12, 500)
    for layers in ([1], [2, 2, 2, 2]):
        enc = ResNet1d(EncoderConfig(layers=layers, width=8))
        assert enc(x).shape == (2, enc.out_dim)


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
    with pytest.raises(NotImplementedError):
        fusion.attention_modules(bert)
