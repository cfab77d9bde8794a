"""Console entry points; each handler only parses arguments and forwards to a function.

Inputs are checked (:mod:`meit_train.checks`) before any weights are loaded; a user mistake is one
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _sources(text: str | None) -> list[str] | None:
    return [s for s in text.split(",") if s] if text else None


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return 2


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meit-train", description="Train MEIT on a meit-corpus.")
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--model", required=True, help="base causal LM: local directory or hub name")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="run directory (an unfinished run in it resumes; a finished one needs --overwrite)",
    )
    p.add_argument("--preset", help="named settings shipped with the trainer: meit, tiny-cpu")
    p.add_argument("--config", type=Path, help="YAML training config, on top of --preset")
    p.add_argument("--resume-from", type=Path, help="a checkpoint directory to resume from")
    p.add_argument(
        "--overwrite", action="store_true", help="remove the run in --out and train from scratch"
    )
    return p


def train_main(argv: list[str] | None = None) -> int:
    """``meit-train --corpus DIR --model PATH --out RUN [--preset NAME] [--config FILE]``."""
    a = train_parser().parse_args(argv)
    from meit_train.checks import InputError, require_train_extra

    try:
        require_train_extra()
        cfg = _config("meit-train", a.config, a.preset)
        from meit_train.checks import check_train_inputs, clear_run

        action = check_train_inputs(a.corpus, a.model, a.out, cfg, a.overwrite, a.resume_from)
    except InputError as e:
        return _fail("meit-train", str(e))
    if action == "overwrite":
        clear_run(a.out)
    from meit_train.train import train

    print(json.dumps(train(a.corpus, a.model, a.out, cfg, a.resume_from)))
    return 0


def _config(prog: str, path: Path | None, preset: str | None):
    """The run's :class:`TrainConfig`; any problem with it is an ``InputError`` of one line."""
    from pydantic import ValidationError

    from meit_train.checks import InputError, describe_validation
    from meit_train.config import load_config

    where = " + ".join(x for x in (f"preset {preset}" if preset else "", str(path or "")) if x)
    try:
        return load_config(path, preset=preset)
    except ValidationError as e:
        raise InputError(f"invalid config {where}: {describe_validation(e)}") from e
    except (ValueError, OSError) as e:
        raise InputError(f"invalid config {where}: {e}") from e


def eval_parser() -> argparse.ArgumentParser:
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
        "--weights",
        default="final",
        choices=["final", "best", "latest"],
        help="end of training (default), best validation loss, or newest checkpoint",
    )
    p.add_argument(
        "--meit-batch-average",
        action="store_true",
        help="also report the MEIT code's per-batch-of-32 averaged scores",
    )
    p.add_argument(
        "--metrics",
        default="corpus",
        choices=["corpus", "meit", "both"],
        help="corpus-level scores (default), MEIT's evaluation script's scores, or both",
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
    p.add_argument(
        "--all-templates",
        action="store_true",
        help="evaluate rows of every instruction, not only the run's data.template_ids",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def eval_main(argv: list[str] | None = None) -> int:
    """``meit-eval --corpus DIR --run RUN --split test [--source S] [--perturb] [--meit-batch-average]``."""
    a = eval_parser().parse_args(argv)
    from meit_train.checks import InputError, require_train_extra

    try:
        require_train_extra()
        from meit_train.checks import check_eval_inputs

        levels = [float(x) for x in a.perturb.split(",")] if a.perturb else None
        sources = _sources(a.source)
        check_eval_inputs(a.corpus, a.run, a.split, sources, a.weights, a.model, a.all_templates)
        if a.metrics != "corpus":
            from meit_train.meit_metrics import check_offline_data

            check_offline_data()
    except ValueError as e:  # InputError, or a --perturb level that is not a number
        return _fail("meit-eval", str(e) if isinstance(e, InputError) else f"--perturb: {e}")
    from meit_train.evaluate import evaluate

    result = evaluate(
        a.corpus,
        a.run,
        a.split,
        sources,
        a.meit_batch_average,
        levels,
        a.batch_size,
        a.max_new_tokens,
        a.seed,
        a.out,
        a.model,
        a.limit,
        weights=a.weights,
        progress=not a.quiet,
        all_templates=a.all_templates,
        metrics=a.metrics,
    )
    print(json.dumps(result["metrics"], indent=2))
    return 0


def tiny_main(argv: list[str] | None = None) -> int:
    """``meit-make-tiny-model OUT --family llama|gpt2``."""
    from meit_train.checks import InputError, require_train_extra

    try:
        require_train_extra()
    except InputError as e:
        return _fail("meit-make-tiny-model", str(e))
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
