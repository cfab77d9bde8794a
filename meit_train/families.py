"""Model families: where each architecture's decoder self-attention is, and how the ECG slot gets in.

Every family computes the slot's key and value through the layer's own projection (LoRA included):

- ``separate`` (Llama, Mistral, Qwen2, OPT, ...): ``k_proj`` / ``v_proj``.
- ``gpt2``: the fused ``c_attn`` (Conv1D), split at ``split_size`` into q | k | v.
- ``gpt_neox``: the fused ``query_key_value``, interleaved per head as (q, k, v) × head_size.
- ``bloom``: the fused ``query_key_value``, interleaved per head as (q, k, v) × head_dim.
- ``falcon``: the fused ``query_key_value`` in its three layouts (multi-head, multi-query,
  grouped "new decoder architecture"), split by the module's own ``_split_heads``.
- ``gpt_neo``: ``k_proj`` / ``v_proj``.

Attention: ``separate``, ``gpt2`` and ``gpt_neox`` call transformers' attention interface, so one
registered SDPA function (:func:`meit_train.fusion.fused_sdpa_attention`) serves them. BLOOM (ALiBi,
its own eager attention), Falcon (its own SDPA/eager code) and GPT-Neo (eager only, unscaled fp32
scores, local-window layers) compute attention inside the module; their attention method is replaced
on each instance by one that builds the same scores and bias with the slot prepended (the slot gets
no ALiBi bias, as in the MEIT code) and runs SDPA. Without a slot set, the original method runs.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from meit_train import fusion

EAGER_ONLY = ("bloom", "gpt_neo")
"""``model_type``s whose transformers classes refuse ``attn_implementation="sdpa"``."""


@dataclass(frozen=True)
class Family:
    """One architecture: which modules are its decoder self-attention, the slot's k/v through them,
    and (for families that do not use the attention interface) how a module is patched."""

    name: str
    matches: Callable[[nn.Module], bool]
    slot_kv: fusion.SlotKV
    patch: Callable[[nn.Module], None] | None = None


def attn_implementation(model_type: str) -> str:
    """The attention implementation to load a ``model_type`` with before the fusion is installed."""
    return "eager" if model_type in EAGER_ONLY else "sdpa"


def _x(module: nn.Module, token: Tensor) -> Tensor:
    """(B, hidden) token → (B, 1, hidden) in the module's parameter dtype."""
    return token.to(next(module.parameters()).dtype)[:, None, :]


def _heads(t: Tensor, head_dim: int) -> Tensor:
    """(B, 1, n·head_dim) → (B, n, 1, head_dim)."""
    return t.view(t.shape[0], 1, -1, head_dim).transpose(1, 2)


def _cls(*names: str) -> Callable[[nn.Module], bool]:
    return lambda m: type(m).__name__ in names


# -- slot key/value per family -------------------------------------------------------------------


def separate_kv(m: nn.Module, token: Tensor) -> tuple[Tensor, Tensor]:
    """Separate ``k_proj`` / ``v_proj`` (grouped-query heads follow from the projection width)."""
    x = _x(m, token)
    return _heads(m.k_proj(x), m.head_dim), _heads(m.v_proj(x), m.head_dim)


def gpt2_kv(m: nn.Module, token: Tensor) -> tuple[Tensor, Tensor]:
    """GPT-2's fused ``c_attn``: [q | k | v] along the feature axis."""
    _, k, v = m.c_attn(_x(m, token)).split(m.split_size, dim=2)
    return _heads(k, m.head_dim), _heads(v, m.head_dim)


def gpt_neox_kv(m: nn.Module, token: Tensor) -> tuple[Tensor, Tensor]:
    """GPT-NeoX's fused ``query_key_value``: per head [q | k | v] of ``head_size`` each."""
    qkv = m.query_key_value(_x(m, token))
    qkv = qkv.view(qkv.shape[0], 1, -1, 3 * m.head_size).transpose(1, 2)
    _, k, v = qkv.chunk(3, dim=-1)
    return k, v


def bloom_kv(m: nn.Module, token: Tensor) -> tuple[Tensor, Tensor]:
    """BLOOM's fused ``query_key_value``: per head (q, k, v) of ``head_dim`` each."""
    qkv = m.query_key_value(_x(m, token))
    qkv = qkv.view(qkv.shape[0], 1, m.num_heads, 3, m.head_dim)
    return qkv[..., 1, :].transpose(1, 2), qkv[..., 2, :].transpose(1, 2)


def falcon_kv(m: nn.Module, token: Tensor) -> tuple[Tensor, Tensor]:
    """Falcon's fused ``query_key_value`` through the module's own ``_split_heads``."""
    _, k, v = m._split_heads(m.query_key_value(_x(m, token)))  # (B, 1, heads, head_dim)
    return k.transpose(1, 2), v.transpose(1, 2)


# -- attention with the slot for families that do not use the attention interface ----------------


def _causal(q: int, kv: int, device: torch.device) -> Tensor:
    """Boolean (1, 1, q, kv) causal mask for the last ``q`` of ``kv`` positions."""
    i = torch.arange(q, device=device)[:, None] + (kv - q)
    return (torch.arange(kv, device=device)[None, :] <= i).view(1, 1, q, kv)


def _bloom_forward(
    self,
    hidden_states: Tensor,
    residual: Tensor,
    alibi: Tensor,
    attention_mask: Tensor | None,
    layer_past=None,
    use_cache: bool = False,
    output_attentions: bool = False,
    **kwargs,
):
    """BloomAttention.forward with the slot: scores = ALiBi + q·k/√d (+ mask), slot column bias 0."""
    from transformers.models.bloom.modeling_bloom import dropout_add

    slot = self.meit_slot
    if slot.token is None:
        return type(self).forward(
            self,
            hidden_states,
            residual,
            alibi,
            attention_mask,
            layer_past,
            use_cache,
            output_attentions,
            **kwargs,
        )
    slot.calls += 1
    b, q, _ = hidden_states.shape
    qkv = self.query_key_value(hidden_states).view(b, q, self.num_heads, 3, self.head_dim)
    query, key, value = (qkv[..., i, :].transpose(1, 2) for i in range(3))
    if layer_past is not None:
        key, value = layer_past.update(key, value, self.layer_idx)
    kv = key.shape[2]
    body = attention_mask if attention_mask is not None else _causal(q, kv, query.device)
    bias = alibi.view(b, self.num_heads, 1, kv).float() + fusion.additive(body, torch.float32)
    mask = fusion.slot_bias(bias, slot.present, b, self.num_heads, q, torch.float32)
    k0, v0 = self.meit_kv(self, slot.token)
    p = self.attention_dropout.p if self.training else 0.0
    ctx = fusion.attend_with_slot(query, key, value, k0, v0, mask, self.inv_norm_factor, p)
    out = self.dense(ctx.transpose(1, 2).reshape(b, q, self.hidden_size))
    return dropout_add(out, residual, self.hidden_dropout, self.training), None


def _neo_attn(self, query: Tensor, key: Tensor, value: Tensor, attention_mask=None):
    """GPTNeoSelfAttention._attn with the slot: unscaled fp32 scores, the layer's (local) causal
    window and the padding mask on the body, slot column always visible."""
    slot = self.meit_slot
    if slot.token is None:
        return type(self)._attn(self, query, key, value, attention_mask)
    slot.calls += 1
    b, h, q, _ = query.shape
    kv = key.shape[2]
    bias = fusion.additive(self.bias[:, :, kv - q : kv, :kv], torch.float32)
    if attention_mask is not None:
        bias = bias + fusion.additive(attention_mask, torch.float32)
    mask = fusion.slot_bias(bias, slot.present, b, h, q, torch.float32)
    k0, v0 = self.meit_kv(self, slot.token)
    p = self.attn_dropout.p if self.training else 0.0
    f32 = [t.float() for t in (query, key, value, k0, v0)]
    return fusion.attend_with_slot(*f32, mask, 1.0, p).to(value.dtype), None


def _falcon_forward(
    self,
    hidden_states: Tensor,
    alibi: Tensor | None,
    attention_mask: Tensor | None,
    position_ids=None,
    layer_past=None,
    use_cache: bool = False,
    output_attentions: bool = False,
    position_embeddings=None,
    **kwargs,
):
    """FalconAttention.forward (rotary variant) with the slot prepended after rotary embeddings."""
    from transformers.models.falcon.modeling_falcon import apply_rotary_pos_emb

    slot = self.meit_slot
    if slot.token is None:
        return type(self).forward(
            self,
            hidden_states,
            alibi,
            attention_mask,
            position_ids,
            layer_past,
            use_cache,
            output_attentions,
            position_embeddings,
            **kwargs,
        )
    slot.calls += 1
    kv_heads = self.num_heads if self.new_decoder_architecture else self.num_kv_heads
    query, key, value = self._split_heads(self.query_key_value(hidden_states))
    b, q = query.shape[:2]
    query = query.transpose(1, 2).reshape(b, self.num_heads, q, self.head_dim)
    key = key.transpose(1, 2).reshape(b, kv_heads, q, self.head_dim)
    value = value.transpose(1, 2).reshape(b, kv_heads, q, self.head_dim)
    cos, sin = position_embeddings
    query, key = apply_rotary_pos_emb(query, key, cos, sin)
    if layer_past is not None:
        key, value = layer_past.update(key, value, self.layer_idx)
    mask = fusion.slot_mask(attention_mask, slot.present, b, q, key.shape[2], query.device)
    k0, v0 = self.meit_kv(self, slot.token)
    ctx = fusion.attend_with_slot(query, key, value, k0, v0, mask, 1 / math.sqrt(self.head_dim))
    out = ctx.transpose(1, 2).reshape(b, q, self.num_heads * self.head_dim)
    return self.dense(out), None


def _patch(method: str, fn: Callable) -> Callable[[nn.Module], None]:
    def apply(m: nn.Module) -> None:
        setattr(m, method, types.MethodType(fn, m))

    return apply


def _patch_falcon(m: nn.Module) -> None:
    if getattr(m.config, "alibi", False):
        raise NotImplementedError("Falcon with ALiBi is not supported (only the rotary variant)")
    _patch("forward", _falcon_forward)(m)


def _separate(m: nn.Module) -> bool:
    return (
        getattr(m, "layer_idx", None) is not None
        and not getattr(m, "is_cross_attention", False)
        and hasattr(m, "k_proj")
        and hasattr(m, "v_proj")
    )


def _gpt2(m: nn.Module) -> bool:
    return (
        getattr(m, "layer_idx", None) is not None
        and not getattr(m, "is_cross_attention", False)
        and hasattr(m, "c_attn")
        and hasattr(m, "split_size")
    )


FAMILIES: tuple[Family, ...] = (
    Family("gpt_neox", _cls("GPTNeoXAttention"), gpt_neox_kv),
    Family("bloom", _cls("BloomAttention"), bloom_kv, _patch("forward", _bloom_forward)),
    Family("falcon", _cls("FalconAttention"), falcon_kv, _patch_falcon),
    Family("gpt_neo", _cls("GPTNeoSelfAttention"), separate_kv, _patch("_attn", _neo_attn)),
    Family("separate", _separate, separate_kv),
    Family("gpt2", _gpt2, gpt2_kv),
)
"""Checked in order; the first family whose ``matches`` accepts a module owns it."""


def family_of(module: nn.Module) -> Family | None:
    """The family owning ``module`` as a decoder self-attention, or None."""
    return next((f for f in FAMILIES if f.matches(module)), None)


def attention_modules(model: nn.Module) -> list[tuple[nn.Module, Family]]:
    """The decoder self-attention modules of ``model`` with their family, checked against the layer
    count (an architecture whose attention is not found is refused, never half-fused)."""
    found = [(m, f) for m in model.modules() if (f := family_of(m)) is not None]
    n_layers = model.config.get_text_config().num_hidden_layers
    if len(found) != n_layers:
        raise NotImplementedError(
            f"{type(model).__name__}: found {len(found)} self-attention modules of a known family, "
            f"expected {n_layers}; this architecture is not supported"
        )
    return found


def install(model: nn.Module) -> fusion.EcgSlot:
    """Fuse the ECG slot into every decoder self-attention of ``model``; return the shared slot."""
    found = attention_modules(model)
    slot = fusion.EcgSlot()
    for m, fam in found:
        m.meit_slot = slot
        m.meit_kv = fam.slot_kv
        if fam.patch is not None:
            fam.patch(m)
    if any(fam.patch is None for _, fam in found):
        fusion.register_attention()
        model.set_attn_implementation(fusion.ATTN_NAME)
    return slot
