"""MEIT: a frozen causal LM with LoRA, an ECG encoder and projection fused into every attention layer."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from meit_train import families, fusion
from meit_train.encoder import EncoderConfig, ResNet1d

MLP_HIDDEN = 2048
"""Hidden width of the MEIT authors' projector (Linear → BatchNorm → ReLU → Linear)."""


class LoraSettings(BaseModel):
    """LoRA on the attention/MLP projections (paper: r=64, alpha=128, dropout 0.1)."""

    model_config = ConfigDict(extra="forbid")

    r: int = 64
    alpha: int = 128
    dropout: float = 0.1
    target_modules: list[str] | None = None  # None: every Linear/Conv1D in the decoder layers


class ModelConfig(BaseModel):
    """Everything needed to rebuild the MEIT model around a base LM.

    ``projector``: ``linear`` (one Linear to the head dimension) or ``mlp`` (the MEIT authors':
    Linear(d, 2048) → BatchNorm1d → ReLU → Linear(2048, head dim)). ``normalise_slot``: L2-normalise
    the projected vector (``F.normalize(dim=-1)``, as the authors) before it is tiled across heads.
    ``gradient_checkpointing``: recompute each decoder layer in the backward pass (the ECG slot is
    restored for the recomputation).
    """

    model_config = ConfigDict(extra="forbid")

    encoder: EncoderConfig = EncoderConfig()
    lora: LoraSettings = LoraSettings()
    projector: Literal["linear", "mlp"] = "linear"
    normalise_slot: bool = False
    gradient_checkpointing: bool = False


def lora_targets(lm: nn.Module) -> tuple[list[str], bool]:
    """Names (last component) of the Linear/Conv1D layers inside the decoder, and whether any is Conv1D."""
    from transformers.pytorch_utils import Conv1D

    out_emb = lm.get_output_embeddings()
    names, conv1d = set(), False
    for name, mod in lm.named_modules():
        if mod is out_emb or not isinstance(mod, (nn.Linear, Conv1D)):
            continue
        if ".h." in f".{name}" or ".layers." in f".{name}" or _in_decoder_layer(lm, name):
            names.add(name.rsplit(".", 1)[-1])
            conv1d |= isinstance(mod, Conv1D)
    if not names:
        raise NotImplementedError(f"no Linear/Conv1D projections found in {type(lm).__name__}")
    return sorted(names), conv1d


def _in_decoder_layer(lm: nn.Module, name: str) -> bool:
    """Whether module ``name`` sits inside a ModuleList with one entry per decoder layer."""
    n_layers = lm.config.get_text_config().num_hidden_layers
    parts = name.split(".")
    for i in range(len(parts) - 1):
        parent = lm.get_submodule(".".join(parts[:i])) if i else lm
        if isinstance(parent, nn.ModuleList) and len(parent) == n_layers:
            return True
    return False


def load_lm(path: str | Path, dtype: torch.dtype):
    """The frozen base causal LM and its tokenizer, from a local directory or hub name."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    attn = families.attn_implementation(AutoConfig.from_pretrained(str(path)).model_type)
    lm = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, attn_implementation=attn)
    lm.requires_grad_(False)
    return lm, tok


def add_lora(lm: nn.Module, cfg: LoraSettings):
    """Wrap ``lm`` with trainable LoRA adapters (peft)."""
    from peft import LoraConfig, get_peft_model

    targets, conv1d = lora_targets(lm)
    peft_cfg = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=cfg.target_modules or targets,
        fan_in_fan_out=conv1d,
    )
    return get_peft_model(lm, peft_cfg)


class MlpProjector(nn.Module):
    """Linear(d_in, hidden) → BatchNorm1d → ReLU → Linear(hidden, d_out), the MEIT authors' projector.

    A training batch of one sample normalises with the running statistics (BatchNorm cannot
    estimate a variance from one value), so an epoch's last one-row micro-batch does not fail.
    """

    def __init__(self, d_in: int, d_out: int, hidden: int = MLP_HIDDEN):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, d_out)

    def forward(self, x: Tensor) -> Tensor:
        h, bn = self.fc1(x), self.bn
        if self.training and h.shape[0] == 1:
            h = F.batch_norm(
                h, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
            )
        else:
            h = bn(h)
        return self.fc2(torch.relu(h))


def make_projector(kind: str, d_in: int, d_out: int) -> nn.Module:
    """The ``linear`` or ``mlp`` projector from the encoder's output to the slot vector."""
    return MlpProjector(d_in, d_out) if kind == "mlp" else nn.Linear(d_in, d_out)


def enable_checkpointing(lm: nn.Module, slot: fusion.EcgSlot) -> None:
    """Recompute each decoder layer in the backward pass (non-reentrant, so gradients reach the
    ECG token), with the slot set back for the recomputation."""
    kwargs = {"use_reentrant": False, "context_fn": partial(fusion.checkpoint_contexts, slot)}
    if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


class MeitModel(nn.Module):
    """ECG encoder → projection → pseudo-token fused as one key/value slot in every decoder layer."""

    def __init__(self, lm: nn.Module, cfg: ModelConfig, lora: bool = True):
        super().__init__()
        text = lm.config.get_text_config()
        self.n_heads = text.num_attention_heads
        self.hidden = text.hidden_size
        self.head_dim = getattr(text, "head_dim", None) or self.hidden // self.n_heads
        self.normalise_slot = cfg.normalise_slot
        self.slot = families.install(lm)
        if cfg.gradient_checkpointing:
            enable_checkpointing(lm, self.slot)
        self.lm = add_lora(lm, cfg.lora) if lora else lm
        self.encoder = ResNet1d(cfg.encoder)
        tile = self.n_heads * self.head_dim == self.hidden
        self.tile = self.n_heads if tile else 1
        out = self.head_dim if tile else self.hidden
        self.projection = make_projector(cfg.projector, self.encoder.out_dim, out)

    def ecg_token(self, ecg: Tensor) -> Tensor:
        """(B, 12, T) → (B, hidden): encode, project to the head dimension (L2-normalised when
        configured), tile across heads."""
        z = self.projection(self.encoder(ecg))
        if self.normalise_slot:
            z = F.normalize(z, dim=-1)
        return z.repeat(1, self.tile)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        ecg: Tensor,
        labels: Tensor | None = None,
        ecg_present: Tensor | None = None,
        position_ids: Tensor | None = None,
    ):
        """The LM's output (with ``loss`` when ``labels`` are given) with the ECG fused in.
        ``position_ids``: for left-padded input to absolute-position models (default 0..L-1)."""
        token = self.ecg_token(ecg)
        kw = {} if position_ids is None else {"position_ids": position_ids}
        with fusion.ecg_in_attention(self.slot, token, ecg_present):
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kw)
        layers = self.lm.config.get_text_config().num_hidden_layers
        if self.slot.calls != layers:  # an attention path that bypassed the fusion
            raise RuntimeError(
                f"the ECG slot reached {self.slot.calls} of {layers} attention layers; "
                f"{self.lm.config.model_type} runs an attention path this trainer does not fuse"
            )
        return out

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        ecg: Tensor,
        max_new_tokens: int,
        eos_token_id: int,
        pad_token_id: int,
    ) -> Tensor:
        """Greedy continuation of left-padded prompts; returns only the new tokens."""
        token = self.ecg_token(ecg)
        with fusion.ecg_in_attention(self.slot, token):
            out = self.lm.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                do_sample=False,
                num_beams=1,
                max_new_tokens=max_new_tokens,
                eos_token_id=eos_token_id,
                pad_token_id=pad_token_id,
            )
        return out[:, input_ids.shape[1] :]

    def trainable_state(self) -> dict[str, Tensor]:
        """What a run saves: trainable parameters (LoRA, encoder, projection) and the batch-norm
        buffers of the encoder and projection."""
        state = {n: p.detach().cpu() for n, p in self.named_parameters() if p.requires_grad}
        for name in ("encoder", "projection"):
            part = getattr(self, name)
            state |= {f"{name}.{n}": b.detach().cpu() for n, b in part.named_buffers()}
        return state

    def load_trainable_state(self, state: dict[str, Tensor]) -> None:
        """Load :meth:`trainable_state` output; every key must exist."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected:
            raise KeyError(f"unexpected keys in checkpoint: {unexpected[:5]}")
        expected = set(self.trainable_state())
        lacking = expected - set(state)
        if lacking:
            raise KeyError(f"checkpoint lacks {sorted(lacking)[:5]}")


def build_model(path: str | Path, cfg: ModelConfig, dtype: torch.dtype = torch.float32):
    """Load the base LM from ``path`` and build the MEIT model around it; returns (model, tokenizer)."""
    lm, tok = load_lm(path, dtype)
    return MeitModel(lm, cfg), tok
