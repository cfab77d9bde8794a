"""ECG–text alignment in self-attention: one extra key/value slot per decoder layer.

The ECG pseudo-token (one hidden-size vector per sample) is passed through each decoder layer's own
key and value projections (with their LoRA adapters) and prepended to that layer's keys and values:
no position encoding (it joins after rotary embeddings are applied, and gets no ALiBi bias), never
masked by the causal or padding mask, and not stored in the KV cache (it is re-added at every step).

This module holds what every architecture shares: the slot (:class:`EcgSlot`), the context that sets
it for one forward pass, the context that sets it again when gradient checkpointing recomputes a
layer, and the attention with the slot prepended (SDPA). :mod:`meit_train.families` finds the
attention modules of each architecture, computes the slot's key and value through them, and routes
their attention here.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTN_NAME = "meit_sdpa"

SlotKV = Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]
"""A family's slot projection: (module, token (B, hidden)) → key, value (B, kv_heads, 1, head_dim)."""


@dataclass
class EcgSlot:
    """The current batch's ECG pseudo-token, shared by all fused attention modules of one model.

    ``present`` (B,) bool: where False the slot is masked out (zero contribution, exactly).
    ``calls`` counts the attention calls that used the slot since it was last set.
    """

    token: Tensor | None = None
    present: Tensor | None = None
    calls: int = 0


@contextmanager
def ecg_in_attention(
    slot: EcgSlot, token: Tensor, present: Tensor | None = None
) -> Iterator[EcgSlot]:
    """Make ``token`` (B, hidden) the slot for calls inside the block; restore afterwards."""
    old = (slot.token, slot.present)
    slot.token, slot.present, slot.calls = token, present, 0
    try:
        yield slot
    finally:
        slot.token, slot.present = old


@contextmanager
def _slot_restored(slot: EcgSlot, token: Tensor | None, present: Tensor | None) -> Iterator[None]:
    """Set the slot to (token, present) for a recomputation, keeping the call count."""
    old = (slot.token, slot.present)
    slot.token, slot.present = token, present
    try:
        yield
    finally:
        slot.token, slot.present = old


def checkpoint_contexts(slot: EcgSlot):
    """``context_fn`` for ``torch.utils.checkpoint`` (non-reentrant): the forward runs as is, and the
    recomputation in the backward pass sees the slot the forward saw (it is cleared by then)."""
    return nullcontext(), _slot_restored(slot, slot.token, slot.present)


def slot_mask(
    mask: Tensor | None, present: Tensor | None, b: int, q: int, kv: int, device: torch.device
) -> Tensor | None:
    """Boolean (B, 1, q, 1 + kv) mask with the slot column first (causal body when ``mask`` is None);
    None when nothing is masked (one query with every key visible)."""
    if mask is None and present is None and q == 1:
        return None
    col = torch.ones(b, 1, q, 1, dtype=torch.bool, device=device)
    if present is not None:
        col = col & present.to(device).view(b, 1, 1, 1)
    if mask is None:
        i = torch.arange(q, device=device)[:, None] + (kv - q)
        body = (torch.arange(kv, device=device)[None, :] <= i).view(1, 1, q, kv).expand(b, 1, q, kv)
    elif mask.dtype == torch.bool:
        body = mask.expand(b, 1, q, kv)
    else:
        body = (mask > torch.finfo(mask.dtype).min / 2).expand(b, 1, q, kv)
    return torch.cat([col, body], dim=-1)


def slot_bias(
    bias: Tensor, present: Tensor | None, b: int, heads: int, q: int, dtype: torch.dtype
) -> Tensor:
    """Additive float (B, H, q, 1 + kv) bias: a 0 column for the slot (−inf-like where absent), then
    ``bias`` (broadcastable to (B, H, q, kv): ALiBi plus causal/padding mask, already additive)."""
    kv = bias.shape[-1]
    body = bias.to(dtype).clamp(min=torch.finfo(dtype).min).expand(b, heads, q, kv)
    col = torch.zeros(b, heads, q, 1, dtype=dtype, device=bias.device)
    if present is not None:
        gone = ~present.to(bias.device).view(b, 1, 1, 1)
        col = col.masked_fill(gone, torch.finfo(dtype).min)
    return torch.cat([col, body], dim=-1)


def additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean (True = attend) or additive float mask as an additive float mask of ``dtype``."""
    if mask.dtype == torch.bool:
        zero = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        return zero.masked_fill(~mask, torch.finfo(dtype).min)
    return mask.to(dtype)


def attend_with_slot(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    k0: Tensor,
    v0: Tensor,
    mask: Tensor | None,
    scale: float,
    dropout: float = 0.0,
) -> Tensor:
    """SDPA over [slot; keys]: (B, H, q, D) queries, (B, H_kv, kv, D) keys/values, (B, H_kv, 1, D)
    slot key/value, ``mask`` boolean or additive over 1 + kv columns. Returns (B, H, q, D)."""
    key = torch.cat([k0.to(key.dtype), key], dim=2)
    value = torch.cat([v0.to(value.dtype), value], dim=2)
    rep = query.shape[1] // key.shape[1]
    if rep > 1:
        key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.to(query.dtype)
    return F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=dropout, scale=scale
    )


def fused_sdpa_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    **kwargs,
):
    """The transformers attention function (``AttentionInterface``) with the slot prepended to keys
    and values when a slot is set; plain SDPA otherwise."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    slot: EcgSlot | None = getattr(module, "meit_slot", None)
    if slot is None or slot.token is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    slot.calls += 1
    b, q, kv = query.shape[0], query.shape[2], key.shape[2]
    k0, v0 = module.meit_kv(module, slot.token)
    key = torch.cat([k0.to(key.dtype), key], dim=2)
    value = torch.cat([v0.to(value.dtype), value], dim=2)
    if attention_mask is not None and attention_mask.dim() != 4:
        raise NotImplementedError("fused attention needs a 4-D (or no) attention mask")
    mask = slot_mask(attention_mask, slot.present, b, q, kv, query.device)
    kwargs.pop("is_causal", None)
    return sdpa_attention_forward(module, query, key, value, mask, is_causal=False, **kwargs)


def register_attention() -> None:
    """Register the fused attention and its mask builder with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_NAME, fused_sdpa_attention)
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)
