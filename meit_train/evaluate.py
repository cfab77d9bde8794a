"""Greedy generation on a split and the paper's metrics, with zero-shot and perturbation protocols."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from meit_train.config import TrainConfig
from meit_train.data import ChatFormatter, EcgTextStream, StreamConfig, make_loader
from meit_train.metrics import Scorer
from meit_train.model import MeitModel, build_model
from meit_train.perturb import perturb_segment


def load_run(run: Path, model_path: str | None = None, device: torch.device | None = None):
    """Rebuild the trained model of ``run`` (final weights, else the newest checkpoint)."""
    info = json.loads((Path(run) / "run.json").read_text())
    cfg = TrainConfig.model_validate(info["config"])
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model, tok = build_model(model_path or info["model"], cfg.model, dtype=dtype)
    weights = Path(run) / "final" / "trainable.pt"
    if not weights.exists():
        ckpts = sorted((Path(run) / "checkpoints").glob("step-*"))
        if not ckpts:
            raise FileNotFoundError(f"{run} has neither final weights nor checkpoints")
        weights = ckpts[-1] / "trainable.pt"
    model.load_trainable_state(torch.load(weights, map_location="cpu"))
    model.to(device).eval()
    model.encoder.float(), model.projection.float()
    return model, tok, cfg


def generate_split(
    model: MeitModel,
    tok,
    corpus: Path,
    split: str,
    sources: list[str] | None,
    max_length: int,
    batch_size: int,
    max_new_tokens: int,
    perturb: float | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> list[dict]:
    """Greedy reports for every row of ``split`` (in a fixed order): dicts of id, source, reference,
    hypothesis. ``perturb``: noise-segment fraction, seeded by ``seed``."""
    scfg = StreamConfig(
        batch_size=batch_size, shuffle=False, mode="generate", split=split, sources=sources
    )
    stream = EcgTextStream(corpus, ChatFormatter(tok, max_length), scfg)
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    out: list[dict] = []
    for batch in make_loader(stream, 0, False):
        ecg = batch["ecg"]
        if perturb:
            ecg = perturb_segment(ecg, perturb, rng)
        new = model.generate(
            batch["input_ids"].to(device),
            batch["attention_mask"].to(device),
            ecg.to(device),
            max_new_tokens,
            tok.eos_token_id,
            tok.pad_token_id,
        )
        texts = tok.batch_decode(new, skip_special_tokens=True)
        for i, text in enumerate(texts):
            out.append(
                {
                    "id": batch["id"][i],
                    "source": batch["source"][i],
                    "reference": batch["report"][i],
                    "hypothesis": text.strip(),
                }
            )
        if limit is not None and len(out) >= limit:
            return out[:limit]
    return out


def score_predictions(scorer: Scorer, preds: list[dict], meit_batch_average: bool) -> dict:
    """Corpus-level scores (and the per-batch-of-32 average when asked)."""
    refs = [p["reference"] for p in preds]
    hyps = [p["hypothesis"] for p in preds]
    result = {"n": len(preds), "corpus": scorer.score(refs, hyps)}
    if meit_batch_average:
        result["meit_batch_average"] = scorer.batch_average(refs, hyps, 32)
    return result


def evaluate(
    corpus: Path,
    run: Path,
    split: str = "test",
    sources: list[str] | None = None,
    meit_batch_average: bool = False,
    perturb_levels: list[float] | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 128,
    seed: int = 0,
    out: Path | None = None,
    model_path: str | None = None,
    limit: int | None = None,
) -> dict:
    """Generate on ``split`` and score; write ``eval-<split>[-<sources>].json`` plus predictions."""
    model, tok, cfg = load_run(run, model_path)
    trained_on = cfg.data.sources
    kw = dict(
        split=split,
        sources=sources,
        max_length=cfg.data.max_length,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        seed=seed,
        limit=limit,
    )
    result = {
        "run": str(run),
        "corpus": str(corpus),
        "split": split,
        "sources": sources,
        "trained_on": trained_on,
        "zero_shot": bool(sources and trained_on and not set(sources) & set(trained_on)),
    }
    preds = generate_split(model, tok, corpus, **kw)
    with Scorer() as scorer:
        result["metrics"] = score_predictions(scorer, preds, meit_batch_average)
        if perturb_levels:
            result["perturbation"] = {
                f"{lvl:.2f}": score_predictions(
                    scorer,
                    generate_split(model, tok, corpus, perturb=lvl, **kw),
                    meit_batch_average,
                )
                for lvl in perturb_levels
            }
    out = (
        Path(out)
        if out
        else Path(run) / f"eval-{split}{'-' + '+'.join(sources) if sources else ''}.json"
    )
    out.write_text(json.dumps(result, indent=2))
    with out.with_suffix(".predictions.jsonl").open("w") as f:
        f.writelines(json.dumps(p) + "\n" for p in preds)
    return result
