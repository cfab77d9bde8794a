"""Every supported model family, on a tiny random model of it with the real GPT-2 BPE.

For each family: with the slot gated off the MEIT model equals the unmodified base model (so the
patched attention of BLOOM, Falcon and GPT-Neo reproduces theirs exactly), the slot changes the
output, greedy generation with the KV cache equals uncached greedy decoding token by token, and a
few optimiser steps lower the loss with gradients reaching the ECG encoder through every layer.
"""

from __future__ import annotations

import copy
import types

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from meit_train import families, fusion
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


def check_gated_off_equals_base(name: str, path) -> None:
    """Gated-off slot and no slot both equal the unmodified base model; the slot changes it."""
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
        no_slot = meit.lm(input_ids=ids, attention_mask=mask).logits  # the original attention
    keep = mask.bool()
    torch.testing.assert_close(off[keep], want[keep], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(no_slot[keep], want[keep], rtol=1e-5, atol=1e-5)
    assert meit.slot.calls == base.config.get_text_config().num_hidden_layers
    assert (on[keep] - want[keep]).abs().max() > 1e-3


def test_gated_off_slot_equals_base_model_and_slot_changes_output(family_dir):
    check_gated_off_equals_base(*family_dir)


def test_a_prompt_alone_equals_it_inside_a_left_padded_batch(family_dir):
    """With the ECG slot on, a prompt scores the same alone (no padding: transformers may skip the
    mask, and a one-token prompt has nothing to mask) as left-padded beside a longer one."""
    _, path = family_dir
    torch.manual_seed(0)
    meit, _ = build_model(path, SMALL)
    meit.eval()
    ids, mask, ecg = left_padded()
    with torch.no_grad():
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        batch = meit(ids, mask, ecg, position_ids=pos).logits
        for n in (5, 1):
            alone = meit(ids[:1, 2 : 2 + n], mask[:1, 2 : 2 + n], ecg[:1]).logits
            torch.testing.assert_close(alone[0], batch[0, 2 : 2 + n], rtol=1e-4, atol=1e-4)


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


def check_slot_kv_is_the_layers_own(path) -> None:
    """The slot's key/value equal the layer's own cached key/value for a one-token input whose
    attention input is the same vector (position 0: rotary is the identity there, ALiBi does not
    touch keys), so the fused projections are split the way the family splits them."""
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


def test_slot_key_value_is_what_the_layer_makes_of_that_vector(family_dir):
    check_slot_kv_is_the_layers_own(family_dir[1])


@pytest.mark.parametrize("family_dir", ["falcon"], indirect=True)
@pytest.mark.parametrize("multi_query", [True, False], ids=["multi-query", "multi-head"])
def test_falcon_layouts_before_the_new_decoder_architecture(family_dir, multi_query, tmp_path):
    """Falcon's two older fused layouts (one shared key/value head, or one per head) split and
    attend like the grouped one the tiny Falcon has."""
    import shutil

    from transformers import AutoConfig

    _, grouped = family_dir
    path = shutil.copytree(grouped, tmp_path / "falcon")
    config = AutoConfig.from_pretrained(str(path))
    config.new_decoder_architecture, config.multi_query = False, multi_query
    config.num_ln_in_parallel_attn = None  # set to 2 for the grouped layout when it was built
    config.num_kv_heads = 1 if multi_query else config.num_attention_heads
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(str(path))
    check_gated_off_equals_base("falcon", path)
    check_slot_kv_is_the_layers_own(path)


# -- the pieces, on small hand-made modules -------------------------------------------------------


class Layer(nn.Module):
    """A module with whichever attention attributes a test gives it."""

    def __init__(self, **attrs):
        super().__init__()
        for k, v in attrs.items():
            setattr(self, k, v)


def test_attn_implementation_is_eager_only_where_sdpa_is_refused():
    assert {t: families.attn_implementation(t) for t in FAMILIES} == {
        "llama": "sdpa",
        "gpt2": "sdpa",
        "gpt_neox": "sdpa",
        "bloom": "eager",
        "falcon": "sdpa",
        "gpt_neo": "eager",
    }


def test_matchers_take_decoder_self_attention_only():
    lin = nn.Linear(2, 2)
    sep = dict(layer_idx=0, k_proj=lin, v_proj=lin)
    assert families._separate(Layer(**sep))  # no is_cross_attention flag: self-attention
    assert families._separate(Layer(**sep, is_cross_attention=False))
    assert not families._separate(Layer(**sep, is_cross_attention=True))
    assert not families._separate(Layer(**{**sep, "layer_idx": None}))
    assert not families._separate(Layer(k_proj=lin, v_proj=lin))  # no layer index
    assert not families._separate(Layer(layer_idx=0, v_proj=lin))
    assert not families._separate(Layer(layer_idx=0, k_proj=lin))
    gpt2 = dict(layer_idx=1, c_attn=lin, split_size=2)
    assert families._gpt2(Layer(**gpt2))
    assert not families._gpt2(Layer(**gpt2, is_cross_attention=True))
    assert not families._gpt2(Layer(c_attn=lin, split_size=2))
    assert not families._gpt2(Layer(layer_idx=1, split_size=2))
    assert not families._gpt2(Layer(layer_idx=1, c_attn=lin))
    assert families._cls("Layer")(Layer()) and not families._cls("Linear")(Layer())
    assert families.family_of(lin) is None
    assert families.family_of(Layer(**sep)).name == "separate"


def test_slot_kv_runs_in_the_layers_dtype_and_splits_heads():
    layer = Layer(
        k_proj=nn.Linear(8, 6, bias=False).double(),
        v_proj=nn.Linear(8, 6, bias=False).double(),
        head_dim=3,
    )
    token = torch.randn(2, 8)  # float32, as the encoder makes it
    k, v = families.separate_kv(layer, token)
    assert k.dtype == v.dtype == torch.float64 and k.shape == (2, 2, 1, 3)
    with torch.no_grad():
        want_k = layer.k_proj(token.double()).view(2, 2, 3)
        want_v = layer.v_proj(token.double()).view(2, 2, 3)
    torch.testing.assert_close(k[:, :, 0], want_k)
    torch.testing.assert_close(v[:, :, 0], want_v)
    t = torch.arange(12.0).view(2, 1, 6)
    assert families._heads(t, 3).tolist() == [
        [[[0, 1, 2]], [[3, 4, 5]]],
        [[[6, 7, 8]], [[9, 10, 11]]],
    ]


def test_causal_mask_for_the_last_queries():
    T, F = True, False
    assert families._causal(2, 3, torch.device("cpu")).tolist() == [[[[T, T, F], [T, T, T]]]]
    assert families._causal(1, 3, torch.device("cpu")).tolist() == [[[[T, T, T]]]]
    assert families._causal(2, 2, torch.device("meta")).device.type == "meta"


def test_patch_binds_the_method_on_that_instance_only():
    def forward(self, x):
        return (self, x)

    a, b = Layer(), Layer()
    families._patch("forward", forward)(a)
    assert a.forward(3) == (a, 3)
    assert b.forward is not a.forward and "forward" not in vars(b)


def test_falcon_with_alibi_is_refused_and_rotary_falcon_is_patched():
    with pytest.raises(
        NotImplementedError,
        match=r"^Falcon with ALiBi is not supported \(only the rotary variant\)$",
    ):
        families._patch_falcon(Layer(config=types.SimpleNamespace(alibi=True)))
    for config in (types.SimpleNamespace(alibi=False), types.SimpleNamespace()):
        layer = Layer(config=config)
        families._patch_falcon(layer)
        assert layer.forward.__func__ is families._falcon_forward


@pytest.mark.parametrize("family_dir", ["bloom", "gpt_neo"], indirect=True)
def test_patched_attention_drops_out_only_while_training(family_dir):
    """BLOOM and GPT-Neo compute their own attention: its dropout must follow train/eval."""
    name, path = family_dir
    meit, _ = build_model(path, SMALL)
    drops = [
        m.attention_dropout if name == "bloom" else m.attn_dropout
        for m, _ in families.attention_modules(meit.lm)
    ]
    ids, mask, ecg = left_padded()
    keep = mask.bool()

    def logits(p: float, seed: int = 0) -> torch.Tensor:
        for d in drops:
            d.p = p
        torch.manual_seed(seed)
        with torch.no_grad():
            return meit(ids, mask, ecg).logits[keep]

    meit.eval()
    assert torch.equal(logits(0.5), logits(0.0))  # eval: no attention dropout
    meit.train()
    meit.encoder.eval()  # only the attention is stochastic
    meit.projection.eval()
    assert torch.equal(logits(0.0, 1), logits(0.0, 2))
    assert not torch.allclose(logits(0.5, 1), logits(0.5, 2))


@pytest.mark.parametrize("family_dir", ["bloom"], indirect=True)
def test_bloom_attention_called_without_a_mask_is_causal(family_dir):
    """transformers builds BLOOM's eager mask every time; called without one (as SDPA-style mask
    skipping would), the patched layer is causal, as the explicit mask makes it."""
    _, path = family_dir
    meit, _ = build_model(path, SMALL)
    meit.eval()
    layer, _ = families.attention_modules(meit.lm)[0]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, meit.hidden, generator=g)
    alibi = torch.randn(layer.num_heads, 1, 4, generator=g)
    causal = torch.zeros(1, 1, 4, 4).masked_fill(~families._causal(4, 4, x.device), -1e30)
    token = torch.randn(1, meit.hidden, generator=g)
    with torch.no_grad(), fusion.ecg_in_attention(meit.slot, token):
        none, _ = layer(x, torch.zeros_like(x), alibi, None)
        explicit, _ = layer(x, torch.zeros_like(x), alibi, causal)
    torch.testing.assert_close(none, explicit)
    meta = copy.deepcopy(layer).to("meta")  # and the mask is made on the layer's device
    x, alibi, token = x.to("meta"), alibi.to("meta"), token.to("meta")
    with torch.no_grad(), fusion.ecg_in_attention(meta.meit_slot, token):
        assert meta(x, torch.zeros_like(x), alibi, None)[0].device.type == "meta"


@pytest.mark.parametrize("family_dir", ["bloom", "falcon", "gpt_neo"], indirect=True)
def test_patched_attention_in_bfloat16(family_dir):
    """In a bfloat16 model the patched attention takes the float32 ECG token, computes as the
    family does (GPT-Neo: float32 scores) and hands bfloat16 on: gated off, it equals the base
    model in bfloat16."""
    name, path = family_dir
    attn = families.attn_implementation(name)
    bf16 = torch.bfloat16
    base = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation=attn, dtype=bf16)
    meit, _ = build_model(path, SMALL, dtype=bf16)
    meit.eval()
    ids, mask, ecg = left_padded()
    keep = mask.bool()
    with torch.no_grad():
        want = base.eval()(input_ids=ids, attention_mask=mask).logits[keep].float()
        off = meit(ids, mask, ecg, ecg_present=torch.zeros(2, dtype=torch.bool)).logits
        on = meit(ids, mask, ecg).logits
    assert off.dtype == on.dtype == bf16
    gap = (off[keep].float() - want).abs()  # bfloat16 rounding: logits up to ~10, ulp 1/16
    assert gap.max() <= 0.25 and gap.mean() < 0.02
    assert (on[keep].float() - want).abs().mean() > 0.1


@pytest.mark.parametrize("family_dir", ["bloom", "falcon", "gpt_neo"], indirect=True)
def test_patched_attention_stays_on_the_models_device(family_dir):
    """The patched BLOOM/Falcon/GPT-Neo attention builds its masks and biases on the model's device
    (here PyTorch's shape-only ``meta`` device; the ECG-present flags come from the CPU)."""
    _, path = family_dir
    meit, _ = build_model(path, SMALL)
    meit.eval()
    meta = copy.deepcopy(meit).to("meta")
    ids, mask, ecg = left_padded()
    present = torch.tensor([True, False])
    with torch.no_grad():
        out = meta(ids.to("meta"), mask.to("meta"), ecg.to("meta"), ecg_present=present)
    assert out.logits.device.type == "meta" and out.logits.shape == (
        2,
        7,
        meit.lm.config.vocab_size,
    )
