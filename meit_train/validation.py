"""Validation during training: the token-weighted loss over every rank's share of the validation
rows, and corpus-level scores of greedy generations on the first rows (main rank)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch

from meit_train.config import TrainConfig
from meit_train.data import EcgTextStream, make_loader
from meit_train.distributed import Dist, reduce
from meit_train.model import MeitModel


@torch.no_grad()
def validation_loss(
    model: MeitModel, stream: EcgTextStream, dist: Dist, dtype: torch.dtype
) -> tuple[float, int]:
    """Token-weighted loss over this rank's share of the validation rows, summed over ranks;
    returns (loss, supervised tokens). Runs the unwrapped model (no DDP collectives per batch)."""
    was_training = model.training
    model.eval()
    autocast = (
        torch.autocast(dist.device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
    )
    total, tokens = 0.0, 0
    for batch in make_loader(stream, 0, False):
        keys = ("input_ids", "attention_mask", "labels", "ecg")
        inputs = {k: batch[k].to(dist.device) for k in keys}
        n = int((inputs["labels"][:, 1:] != -100).sum())
        if n == 0:
            continue
        with autocast:
            total += float(model(**inputs).loss) * n
        tokens += n
    model.train(was_training)
    total, tokens = reduce(dist, [total, float(tokens)])
    return (total / tokens if tokens else float("nan")), int(tokens)


def generation_scores(
    model: MeitModel, tok, corpus: Path, cfg: TrainConfig, scorer, rows: int
) -> dict[str, float]:
    """Greedy-generate the first ``rows`` validation rows and score them (corpus level)."""
    from meit_train.evaluate import generate_split

    was_training = model.training
    model.eval()
    preds = generate_split(
        model,
        tok,
        corpus,
        cfg.data.validation_split,
        cfg.data.sources,
        cfg.data.max_length,
        cfg.micro_batch_size,
        cfg.eval_max_new_tokens,
        limit=rows,
        template_ids=cfg.data.template_ids,
        prompt_format=cfg.data.prompt_format,
    )
    model.train(was_training)
    scores = scorer.score([p["reference"] for p in preds], [p["hypothesis"] for p in preds])
    return {f"val_{k}": v for k, v in scores.items()}
