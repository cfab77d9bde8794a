"""ECG–text alignment in self-attention: one extra key/value slot per decoder layer.

The ECG pseudo-token (one hidden-size vector per sample) is passed through each decoder layer's own
key and value projections (with their LoRA adapters) and prepended to that layer's keys and values:
no position encoding (it joins after rotary embeddings are applied), never masked by the causal or
padding mask, and not stored in the KV cache (it is re-added at every step).

Mechanism: a transformers-5 attention function (``AttentionInterface``) that wraps SDPA. Attention
modules are found by structure: self-attention modules with a ``layer_idx`` and either separate
``k_proj``/``v_proj`` (Llama, Mistral, Qwen2, ...) or a fused ``c_attn`` (GPT-2).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor, nn

ATTN_NAME = "meit_sdpa"


@dataclass
class EcgSlot:
    """The current batch's ECG pseudo-token, shared by all fused attention modules of one model.

    ``present`` (B,) bool: where False the slot is masked out (zero contribution, exactly).
    """

    token: Tensor | None = None
    present: Tensor | None = None
    calls: int = 0


def register_attention() -> None:
    """Register the fused attention and its mask builder with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_NAME, fused_sdpa_attention)
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)


def kv_layout(module: nn.Module) -> str | None:
    """``"separate"``, ``"fused"`` or None for a module that is not a decoder self-attention."""
    if getattr(module, "layer_idx", None) is None or getattr(module, "is_cross_attention", False):
        return None
    if hasattr(module, "k_proj") and hasattr(module, "v_proj"):
        return "separate"
    if hasattr(module, "c_attn") and hasattr(module, "split_size"):
        return "fused"
    return None


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The decoder self-attention modules of ``model``, checked against the layer count."""
    found = [m for m in model.modules() if kv_layout(m) is not None]
    n_layers = model.config.get_text_config().num_hidden_layers
    if len(found) != n_layers:
        raise NotImplementedError(
            f"{type(model).__name__}: found {len(found)} self-attention modules with a known k/v "
            f"layout, expected {n_layers}; this architecture is not supported"
        )
    return found


def ecg_key_value(
    module: nn.Module, token: Tensor, kv_heads: int, head_dim: int
) -> tuple[Tensor, Tensor]:
    """The slot's key and value, (B, kv_heads, 1, head_dim), through ``module``'s own projections."""
    x = token.to(next(module.parameters()).dtype)[:, None, :]  # (B, 1, hidden)
    if kv_layout(module) == "separate":
        k, v = module.k_proj(x), module.v_proj(x)
    else:
        _, k, v = module.c_attn(x).split(module.split_size, dim=2)
    shape = (x.shape[0], 1, kv_heads, head_dim)
    return k.reshape(shape).transpose(1, 2), v.reshape(shape).transpose(1, 2)


def extend_mask(
    mask: Tensor | None, present: Tensor | None, b: int, q: int, kv: int, device: torch.device
) -> Tensor | None:
    """Boolean (B, 1, q, 1 + kv) mask with the slot column first; None when nothing is masked."""
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


def fused_sdpa_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    **kwargs,
):
    """SDPA attention with the ECG slot prepended to keys and values (when a slot is set)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    slot: EcgSlot | None = getattr(module, "meit_slot", None)
    if slot is None or slot.token is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    slot.calls += 1
    b, q, kv = query.shape[0], query.shape[2], key.shape[2]
    k0, v0 = ecg_key_value(module, slot.token, key.shape[1], key.shape[3])
    key = torch.cat([k0.to(key.dtype), key], dim=2)
    value = torch.cat([v0.to(value.dtype), value], dim=2)
    if attention_mask is not None and attention_mask.dim() != 4:
        raise NotImplementedError("fused attention needs a 4-D (or no) attention mask")
    mask = extend_mask(attention_mask, slot.present, b, q, kv, query.device)
    kwargs.pop("is_causal", None)
    return sdpa_attention_forward(module, query, key, value, mask, is_causal=False, **kwargs)


def install(model: nn.Module) -> EcgSlot:
    """Switch ``model`` to the fused attention; return the slot its attention modules read."""
    register_attention()
    slot = EcgSlot()
    for m in attention_modules(model):
        m.meit_slot = slot
    model.set_attn_implementation(ATTN_NAME)
    return slot


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
