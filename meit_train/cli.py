"""Console entry points; each handler only parses arguments and forwards to a function."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError


def _sources(text: str | None) -> list[str] | None:
    return [s for s in text.split(",") if s] if text else None


def train_main(argv: list[str] | None = None) -> int:
    """``meit-train --corpus DIR --model PATH --out RUN [--config FILE]``."""
    p = argparse.ArgumentParser(prog="meit-train", description="Train MEIT on a meit-corpus.")
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--model", required=True, help="base causal LM: local directory or hub name")
    p.add_argument(
        "--out", type=Path, required=True, help="run directory (resumes if it has checkpoints)"
    )
    p.add_argument("--config", type=Path, help="YAML training config (see meit_train.config)")
    p.add_argument("--resume-from", type=Path, help="a checkpoint directory to resume from")
    a = p.parse_args(argv)
    from meit_train.config import load_config

    try:
        cfg = load_config(a.config)
    except (ValidationError, ValueError, OSError) as e:
        print(f"meit-train: invalid config {a.config}:\n{e}", file=sys.stderr)
        return 2
    from meit_train.train import train

    print(json.dumps(train(a.corpus, a.model, a.out, cfg, a.resume_from)))
    return 0


def eval_main(argv: list[str] | None = None) -> int:
    """``meit-eval --corpus DIR --run RUN --split test [--source S] [--perturb] [--meit-batch-average]``."""
    p = argparse.ArgumentParser(
        prog="meit-eval", description="Generate greedily and score a MEIT run."
    )
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument(
        "--source", help="comma-separated sources to evaluate (zero-shot: not the trained one)"
    )
    p.add_argument(
        "--meit-batch-average",
        action="store_true",
        help="also report the MEIT code's per-batch-of-32 averaged scores",
    )
    p.add_argument(
        "--perturb",
        nargs="?",
        const="0.05,0.10,0.15,0.20",
        default=None,
        help="noise-segment fractions (default 0.05,0.10,0.15,0.20)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--limit", type=int, help="evaluate only the first N rows")
    p.add_argument("--model", help="override the base model path stored in the run")
    p.add_argument("--out", type=Path, help="output JSON (default RUN/eval-<split>.json)")
    a = p.parse_args(argv)
    from meit_train.evaluate import evaluate

    levels = [float(x) for x in a.perturb.split(",")] if a.perturb else None
    result = evaluate(
        a.corpus,
        a.run,
        a.split,
        _sources(a.source),
        a.meit_batch_average,
        levels,
        a.batch_size,
        a.max_new_tokens,
        a.seed,
        a.out,
        a.model,
        a.limit,
    )
    print(json.dumps(result["metrics"], indent=2))
    return 0


def tiny_main(argv: list[str] | None = None) -> int:
    """``meit-make-tiny-model OUT --family llama|gpt2``."""
    from meit_train.tiny import main

    return main(argv)


def _exit(fn) -> None:
    sys.exit(fn())


def train_entry() -> None:
    _exit(train_main)


def eval_entry() -> None:
    _exit(eval_main)


def tiny_entry() -> None:
    _exit(tiny_main)
