"""GPU smoke test: train a small real-architecture MEIT model for a fixed number of steps.

Builds (offline) a randomly initialised Llama-architecture LM (hidden 1024, 8 layers, GQA, GPT-2
BPE; ~150 M parameters) and a synthetic corpus of 12 x 5000 ECGs, trains with the paper's settings
(bf16, ResNet-18 encoder, LoRA r=64, total batch 64) and prints samples/s, tokens/s, peak GPU
memory and the share of step time spent waiting on data. Runs in a few minutes on one GPU.
Without CUDA it runs a reduced version (tiny model, few steps) and says so.

    python benchmarks/gpu_smoke.py [--steps 40] [--rows 1024] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_small_llama(out: Path, hidden: int, layers: int) -> Path:
    """A random Llama-architecture model with GPT-2's BPE, saved in ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from meit_train.tiny import MEIT_CHAT_TEMPLATE, make_tokenizer

    tok = make_tokenizer(out, chat_template=MEIT_CHAT_TEMPLATE)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=int(hidden * 2.75),
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 256),
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(str(out))
    return out


def summarise(run: Path, skip: int) -> dict:
    """Mean throughput over the logged steps after ``skip`` warm-up steps."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][skip:]
    total = sum(r["step_time_s"] for r in rows)
    return {
        "steps": len(rows),
        "samples_per_s": sum(r["samples_per_s"] * r["step_time_s"] for r in rows) / total,
        "tokens_per_s": sum(r["tokens_per_s"] * r["step_time_s"] for r in rows) / total,
        "data_wait_share": sum(r["data_wait_frac"] * r["step_time_s"] for r in rows) / total,
        "step_time_s": total / len(rows),
        "final_loss": rows[-1]["loss"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--layers", type=int, default=8)
    a = p.parse_args(argv)
    import torch

    from meit_train.config import TrainConfig
    from meit_train.synthetic import write_synthetic_corpus
    from meit_train.train import train

    cuda = torch.cuda.is_available()
    if not cuda:
        print(
            "no CUDA device: running a reduced CPU version (tiny model, 4 steps, 500-sample ECGs)"
        )
        a.steps, a.rows, a.hidden, a.layers, a.workers = 4, 64, 64, 2, 0
    n_samples = 5000 if cuda else 500
    batch, micro = (64, 16) if cuda else (8, 4)
    encoder = {} if cuda else {"layers": [1, 1], "width": 16}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        corpus = write_synthetic_corpus(
            tmp / "corpus",
            {("mimic", "train"): a.rows},
            n_samples=n_samples,
            fs=n_samples // 10,
            shards=4,
            row_group_size=64,
        )
        model = make_small_llama(tmp / "model", a.hidden, a.layers)
        print(f"setup {time.perf_counter() - t0:.1f} s")
        cfg = TrainConfig.model_validate(
            dict(
                max_steps=a.steps,
                batch_size=batch,
                micro_batch_size=micro,
                lr=2e-4,
                log_every=1,
                checkpoint_every=0,
                progress=False,
                data=dict(num_workers=a.workers, shuffle_buffer=256, bucket_batches=4),
                model=dict(encoder=encoder),
            )
        )
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        train(corpus, str(model), tmp / "run", cfg)
        wall = time.perf_counter() - t0
        result = summarise(tmp / "run", skip=min(3, a.steps - 1))
    result["wall_s"] = wall
    result["device"] = torch.cuda.get_device_name() if cuda else "cpu"
    if cuda:
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
