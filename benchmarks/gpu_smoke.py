"""GPU smoke test: one optimiser step of the `meit` preset's model on a small random LM.

The model section of ``meit_train/presets/meit.yaml`` (1-D ResNet-50 bottleneck encoder, MLP
projector with BatchNorm, L2-normalised slot, LoRA r64 on q/k/v/o/gate/up/down) is built around a
randomly initialised Llama-architecture LM with GPT-2's BPE (offline), and timed over a few
forward + backward + AdamW steps at the preset's micro-batch (8 × 128 tokens, 12 × 5000 ECGs),
with and without gradient checkpointing. Printed per setting: samples/s, step time and peak GPU
memory, as JSON.

On CUDA: bf16 base weights and autocast, hidden 1024 × 8 layers (~150 M parameters).
Without CUDA: a reduced CPU run (hidden 64 × 2 layers, 2 × 64 tokens, 12 × 1000 ECGs, fp32) that
says so; it checks that the configuration builds and steps, not speed.

    python benchmarks/gpu_smoke.py [--steps 3] [--hidden 1024] [--layers 8] [--micro-batch 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_small_llama(out: Path, hidden: int, layers: int) -> Path:
    """A random Llama-architecture model with GPT-2's BPE, saved in ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from meit_train.tiny import MEIT_CHAT_TEMPLATE, make_tokenizer

    tok = make_tokenizer(out, chat_template=MEIT_CHAT_TEMPLATE)
    heads = max(1, hidden // 64)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=int(hidden * 2.6875),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(str(out))
    return out


def preset_model_config(checkpointing: bool):
    """The model section of the ``meit`` preset, with gradient checkpointing set as asked."""
    import yaml

    from meit_train.config import preset_path
    from meit_train.model import ModelConfig

    raw = yaml.safe_load(preset_path("meit").read_text())["model"]
    return ModelConfig.model_validate({**raw, "gradient_checkpointing": checkpointing})


def measure(lm_dir: Path, checkpointing: bool, steps: int, micro: int, tokens: int, samples: int):
    """Build the preset's model and time ``steps`` optimiser steps after one warm-up step."""
    import torch

    from meit_train.model import build_model

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    if cuda:
        torch.cuda.empty_cache()  # the previous setting's model is gone: start its memory at 0
    torch.manual_seed(0)
    model, _ = build_model(lm_dir, preset_model_config(checkpointing), dtype=dtype)
    model.to(device)
    model.encoder.float(), model.projection.float()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-5)
    ids = torch.randint(0, 50000, (micro, tokens), device=device)
    mask = torch.ones_like(ids)
    ecg = torch.randn(micro, 12, samples, device=device)
    autocast = torch.autocast("cuda", dtype=dtype) if cuda else nullcontext()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = model(ids, mask, ecg, labels=ids).loss
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up: kernels, allocator, optimiser state
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    losses = [step() for _ in range(steps)]
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    out = {
        "gradient_checkpointing": checkpointing,
        "trainable_params": sum(p.numel() for p in params),
        "step_time_s": wall / steps,
        "samples_per_s": micro * steps / wall,
        "tokens_per_s": micro * tokens * steps / wall,
        "loss": losses[-1],
    }
    if cuda:
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=128)
    a = p.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    samples = 5000
    if not cuda:
        print(
            "no CUDA device: reduced CPU run (hidden 64 x 2 layers, 2 x 64 tokens, 1000-sample ECGs)"
        )
        a.hidden, a.layers, a.micro_batch, a.tokens, a.steps, samples = 64, 2, 2, 64, 1, 1000
    with tempfile.TemporaryDirectory() as tmp:
        lm = make_small_llama(Path(tmp), a.hidden, a.layers)
        runs = [
            measure(lm, ckpt, a.steps, a.micro_batch, a.tokens, samples) for ckpt in (False, True)
        ]
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": "bf16" if cuda else "fp32",
        "lm": f"llama hidden {a.hidden} x {a.layers} layers",
        "micro_batch": a.micro_batch,
        "tokens": a.tokens,
        "ecg_samples": samples,
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
