"""The ECG slot's attention pieces on small hand-made tensors: the slot context managers, the masks
and biases with the slot column first, and attention over [slot; keys] against softmax written out.

The model-level checks (every family, cached generation, gradient checkpointing) are in
``test_families.py`` and ``test_model.py``; these pin each function's own contract, and run in
milliseconds.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from meit_train import fusion
from meit_train.fusion import EcgSlot

CPU = torch.device("cpu")
MIN = torch.finfo(torch.float32).min
T, F = True, False


def reference_attention(query, key, value, k0, v0, mask, scale):
    """Softmax attention written out: [slot; keys], kv heads repeated to the query heads, boolean
    mask (True = attend) or additive bias over the 1 + kv columns."""
    key = torch.cat([k0.to(key.dtype), key], dim=2)
    value = torch.cat([v0.to(value.dtype), value], dim=2)
    rep = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    scores = (query.double() @ key.double().transpose(-1, -2)) * scale
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.double()
    return (scores.softmax(-1) @ value.double()).to(query.dtype)


def qkv(b=2, heads=4, kv_heads=2, q=3, kv=5, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(b, heads, q, d, generator=g)
    key, value = (torch.randn(b, kv_heads, kv, d, generator=g) for _ in range(2))
    k0, v0 = (torch.randn(b, kv_heads, 1, d, generator=g) for _ in range(2))
    return query, key, value, k0, v0


# -- the slot's context managers ---------------------------------------------------------------


def test_ecg_in_attention_sets_the_slot_and_restores_it_even_on_error():
    old_token, old_present = torch.zeros(1, 4), torch.tensor([True])
    slot = EcgSlot(token=old_token, present=old_present, calls=7)
    token, present = torch.ones(2, 4), torch.tensor([True, False])
    with fusion.ecg_in_attention(slot, token, present) as inside:
        assert inside is slot
        assert slot.token is token and slot.present is present
        assert slot.calls == 0  # counted afresh for this forward pass
        slot.calls += 3
    assert slot.token is old_token and slot.present is old_present
    assert slot.calls == 3  # the count stays readable after the block
    with pytest.raises(RuntimeError, match="boom"):
        with fusion.ecg_in_attention(slot, token):
            assert slot.present is None  # present defaults to None (slot visible everywhere)
            raise RuntimeError("boom")
    assert slot.token is old_token and slot.present is old_present


def test_checkpoint_recomputation_sees_the_slot_of_the_forward_pass():
    slot = EcgSlot()
    token, present = torch.ones(2, 4), torch.tensor([True, False])
    with fusion.ecg_in_attention(slot, token, present):
        forward_ctx, recompute_ctx = fusion.checkpoint_contexts(slot)
        with forward_ctx:  # the forward runs as is
            assert slot.token is token and slot.present is present
        slot.calls = 2
    assert slot.token is None  # cleared once the forward is over
    with recompute_ctx:  # the backward's recomputation
        assert slot.token is token and slot.present is present
        slot.calls += 1
    assert slot.token is None and slot.present is None
    assert slot.calls == 3  # the recomputation keeps counting, it does not reset
    with pytest.raises(RuntimeError):
        with fusion.checkpoint_contexts(EcgSlot(token=token))[1]:
            raise RuntimeError
    with fusion.ecg_in_attention(slot, token):
        _, ctx = fusion.checkpoint_contexts(slot)
    with pytest.raises(ValueError):
        with ctx:
            raise ValueError
    assert slot.token is None  # restored on error too


# -- masks and biases --------------------------------------------------------------------------


def test_slot_mask_is_none_only_for_one_unmasked_query():
    assert fusion.slot_mask(None, None, 2, 1, 5, CPU) is None
    one = fusion.slot_mask(None, torch.tensor([True, True]), 2, 1, 3, CPU)
    assert one is not None and one.all() and one.shape == (2, 1, 1, 4)
    two = fusion.slot_mask(None, None, 1, 2, 2, CPU)
    assert two.tolist() == [[[[T, T, F], [T, T, T]]]]  # two queries: causal


def test_slot_mask_builds_the_causal_body_for_the_last_queries():
    got = fusion.slot_mask(None, None, 2, 2, 4, CPU)
    # queries at absolute positions 2 and 3 of 4 keys; slot column first, always visible
    want = [[T, T, T, T, F], [T, T, T, T, T]]
    assert got.dtype == torch.bool and got.shape == (2, 1, 2, 5)
    assert got.tolist() == [[want]] * 2
    full = fusion.slot_mask(None, None, 1, 3, 3, CPU)
    assert full.tolist() == [[[[T, T, F, F], [T, T, T, F], [T, T, T, T]]]]


def test_slot_mask_hides_the_slot_of_absent_ecgs_only():
    got = fusion.slot_mask(None, torch.tensor([True, False]), 2, 2, 2, CPU)
    assert got[0, 0, :, 0].tolist() == [T, T]
    assert got[1, 0, :, 0].tolist() == [F, F]
    assert torch.equal(got[0, 0, :, 1:], got[1, 0, :, 1:])  # the body is unchanged


def test_slot_mask_keeps_a_boolean_or_additive_body():
    body = torch.tensor([[[[T, F, T]]], [[[F, T, T]]]])  # (2, 1, 1, 3): broadcast over queries
    got = fusion.slot_mask(body, None, 2, 2, 3, CPU)
    assert got.shape == (2, 1, 2, 4)
    assert got[0, 0].tolist() == [[T, T, F, T]] * 2
    assert got[1, 0].tolist() == [[T, F, T, T]] * 2
    additive = torch.where(body, 0.0, MIN)
    assert torch.equal(fusion.slot_mask(additive, None, 2, 2, 3, CPU), got)
    half = torch.finfo(torch.float16).min
    fp16 = torch.tensor([[[[0.0, half, -1.0]]]], dtype=torch.float16)
    # anything far above the dtype's minimum attends (e.g. -1); the minimum itself does not
    assert fusion.slot_mask(fp16, None, 1, 1, 3, CPU).tolist() == [[[[T, T, F, T]]]]


def test_slot_mask_threshold_sits_halfway_to_the_dtype_minimum():
    """Masked entries are the dtype minimum, possibly summed with small biases; a value is masked
    when it lies below half the minimum."""
    m = torch.tensor([[[[MIN * 0.6, MIN / 2, MIN * 0.4]]]])
    assert fusion.slot_mask(m, None, 1, 1, 3, CPU).tolist() == [[[[T, F, F, T]]]]


def test_slot_bias_prepends_a_zero_column_and_clamps_the_body():
    bias = torch.tensor([[[[0.5, float("-inf"), -2.0]]]], dtype=torch.float64)  # (1, 1, 1, 3)
    got = fusion.slot_bias(bias, torch.tensor([True, False]), 2, 3, 2, torch.float32)
    assert got.dtype == torch.float32 and got.shape == (2, 3, 2, 4)
    assert got[0].flatten(0, 1).tolist() == [[0.0, 0.5, MIN, -2.0]] * 6
    assert got[1].flatten(0, 1).tolist() == [[MIN, 0.5, MIN, -2.0]] * 6  # absent ECG: masked slot
    assert torch.isfinite(got).all()  # -inf clamped: a fully masked row cannot give NaN
    no_flag = fusion.slot_bias(bias, None, 2, 1, 1, torch.float32)
    assert no_flag[:, 0, 0].tolist() == [[0.0, 0.5, MIN, -2.0]] * 2
    wide = fusion.slot_bias(bias, torch.tensor([False, True]), 2, 1, 1, torch.float64)
    assert wide.dtype == torch.float64  # the slot column too, so the concatenation stays float64
    assert wide[0, 0, 0, 0] == torch.finfo(torch.float64).min and wide[1, 0, 0, 0] == 0.0


def test_additive_turns_a_boolean_mask_into_zero_or_the_minimum():
    got = fusion.additive(torch.tensor([[True, False]]), torch.float32)
    assert got.dtype == torch.float32 and got.tolist() == [[0.0, MIN]]
    half = fusion.additive(torch.tensor([[True, False]]), torch.float16)
    assert half.dtype == torch.float16 and half.tolist() == [[0.0, torch.finfo(torch.float16).min]]
    bias = torch.tensor([[0.25, -3.0]], dtype=torch.float64)
    out = fusion.additive(bias, torch.float32)
    assert out.dtype == torch.float32 and out.tolist() == [[0.25, -3.0]]


# -- attention over [slot; keys] ---------------------------------------------------------------


def test_attend_with_slot_equals_softmax_with_grouped_heads_and_either_mask():
    query, key, value, k0, v0 = qkv()
    causal = fusion.slot_mask(None, None, 2, 3, 5, CPU)
    got = fusion.attend_with_slot(query, key, value, k0, v0, causal, 0.3)
    torch.testing.assert_close(got, reference_attention(query, key, value, k0, v0, causal, 0.3))
    bias = torch.randn(2, 4, 3, 6, dtype=torch.float64)  # additive, in another dtype
    got = fusion.attend_with_slot(query, key, value, k0.double(), v0.double(), bias, 0.3)
    assert got.dtype == torch.float32
    want = reference_attention(query, key, value, k0, v0, bias, 0.3)
    torch.testing.assert_close(got, want)
    nomask = fusion.attend_with_slot(query, key, value, k0, v0, None, 0.3)
    torch.testing.assert_close(nomask, reference_attention(query, key, value, k0, v0, None, 0.3))


def test_attend_with_slot_masked_slot_is_exactly_attention_without_it():
    query, key, value, k0, v0 = qkv(heads=2, kv_heads=2)
    mask = fusion.slot_mask(None, torch.tensor([False, False]), 2, 3, 5, CPU)
    got = fusion.attend_with_slot(query, key, value, k0, v0, mask, 0.5)
    plain = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=mask[..., 1:], scale=0.5
    )
    torch.testing.assert_close(got, plain, rtol=1e-6, atol=1e-6)


def test_attend_with_slot_applies_dropout_only_when_asked():
    query, key, value, k0, v0 = qkv(heads=2, kv_heads=2)
    torch.manual_seed(0)
    a = fusion.attend_with_slot(query, key, value, k0, v0, None, 0.3)
    b = fusion.attend_with_slot(query, key, value, k0, v0, None, 0.3, 0.0)
    assert torch.equal(a, b)
    dropped = fusion.attend_with_slot(query, key, value, k0, v0, None, 0.3, 0.9)
    assert not torch.allclose(dropped, a)


def slot_kv(module: nn.Module, token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The stand-in layer's slot key/value, (B, 2, 1, 8) through its own projection, in float64."""
    kv = module.proj(token.double()).view(token.shape[0], 2, 1, 8)
    return kv, -kv


class Attn(nn.Module):
    """The attributes transformers' SDPA function reads, plus the slot's projection."""

    def __init__(self, slot: EcgSlot | None, groups: int = 2):
        super().__init__()
        self.is_causal = True
        self.num_key_value_groups = groups
        self.proj = nn.Linear(8, 16, bias=False).double()
        if slot is not None:
            self.meit_slot = slot
            self.meit_kv = slot_kv


def test_fused_sdpa_attention_prepends_the_slot_and_counts_the_call():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    query, key, value, _, _ = qkv(q=4, kv=4)  # a prompt pass: transformers' causal is ours
    token = torch.randn(2, 8, generator=torch.Generator().manual_seed(5))
    slot = EcgSlot()
    module = Attn(slot)
    plain, _ = sdpa_attention_forward(module, query, key, value, None, scaling=0.25)
    with fusion.ecg_in_attention(slot, token, torch.tensor([True, False])):
        out, _ = fusion.fused_sdpa_attention(
            module, query, key, value, None, scaling=0.25, is_causal=True
        )
        assert slot.calls == 1
        fusion.fused_sdpa_attention(module, query, key, value, None, scaling=0.25)
        assert slot.calls == 2
    k0, v0 = module.meit_kv(module, token)
    mask = fusion.slot_mask(None, torch.tensor([True, False]), 2, 4, 4, CPU)
    want = reference_attention(query, key, value, k0, v0, mask, 0.25).transpose(1, 2)
    assert out.shape == (2, 4, 4, 8)  # (B, q, H, D), as transformers' attention functions
    torch.testing.assert_close(out, want)
    # sample 1 has no ECG: exactly the plain causal attention; sample 0 differs by the slot
    torch.testing.assert_close(out[1], plain[1], rtol=1e-6, atol=1e-6)
    assert (out[0] - plain[0]).abs().max() > 1e-3


def test_fused_sdpa_attention_without_a_slot_is_plain_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    query, key, value, _, _ = qkv()
    pad = torch.tensor([F, T, T, T, T]).view(1, 1, 1, 5).expand(2, 1, 3, 5)
    for mask in (None, pad):
        want, _ = sdpa_attention_forward(Attn(None), query, key, value, mask, scaling=0.25)
        for module in (Attn(None), Attn(EcgSlot())):  # no slot attribute; a slot with no token
            got, _ = fusion.fused_sdpa_attention(module, query, key, value, mask, scaling=0.25)
            assert torch.equal(got, want)
        assert module.meit_slot.calls == 0
    plain, _ = sdpa_attention_forward(Attn(None), query, key, value, None, scaling=0.25)
    assert not torch.equal(want, plain)  # the padding mask was applied


def test_fused_sdpa_attention_takes_a_4d_padding_mask_and_refuses_others():
    query, key, value, _, _ = qkv(q=1)
    slot, token = EcgSlot(), torch.randn(2, 8)
    module = Attn(slot)
    pad = torch.tensor([F, T, T, T, T]).view(1, 1, 1, 5).expand(2, 1, 1, 5)
    with fusion.ecg_in_attention(slot, token):
        got, _ = fusion.fused_sdpa_attention(module, query, key, value, pad, scaling=0.25)
        with pytest.raises(
            NotImplementedError, match=r"^fused attention needs a 4-D \(or no\) attention mask$"
        ):
            fusion.fused_sdpa_attention(module, query, key, value, pad[:, 0], scaling=0.25)
    k0, v0 = module.meit_kv(module, token)
    mask = fusion.slot_mask(pad, None, 2, 1, 5, CPU)
    want = reference_attention(query, key, value, k0, v0, mask, 0.25).transpose(1, 2)
    torch.testing.assert_close(got, want)


def test_register_attention_makes_the_fused_function_and_its_mask_loadable():
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    fusion.register_attention()
    assert AttentionInterface()[fusion.ATTN_NAME] is fusion.fused_sdpa_attention
    assert AttentionMaskInterface()[fusion.ATTN_NAME] is sdpa_mask


def test_masks_and_attention_stay_on_the_inputs_device():
    """Built on the device of the inputs (here PyTorch's shape-only ``meta`` device), with the
    per-sample ``present`` flags moved there: no CPU tensor is mixed into a GPU computation."""
    meta = torch.device("meta")
    present = torch.tensor([True, False])  # on the CPU, as the loader yields it
    body = torch.ones(2, 1, 3, 5, dtype=torch.bool, device=meta)
    for mask, flags in ((None, present), (None, None), (body, present)):
        assert fusion.slot_mask(mask, flags, 2, 3, 5, meta).device == meta
    bias = torch.zeros(1, 1, 3, 5, device=meta)
    assert fusion.slot_bias(bias, present, 2, 4, 3, torch.float32).device == meta
    assert fusion.additive(body, torch.float32).device == meta
    query, key, value, k0, v0 = (t.to(meta) for t in qkv())
    assert fusion.attend_with_slot(query, key, value, k0, v0, None, 0.3).device == meta
    slot = EcgSlot()
    module = Attn(slot).to(meta)
    with fusion.ecg_in_attention(slot, torch.ones(2, 8, device=meta), present):
        out, _ = fusion.fused_sdpa_attention(module, query, key, value, None, scaling=0.3)
    assert out.device == meta and out.shape == (2, 3, 4, 8)
