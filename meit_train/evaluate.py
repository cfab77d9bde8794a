"""Greedy generation on a split and the paper's metrics, with zero-shot and perturbation protocols."""

from __future__ import annotations

import json
from contextlib import ExitStack, nullcontext
from pathlib import Path

import numpy as np
import torch

from meit_train import console
from meit_train.checks import read_run, weights_path
from meit_train.config import TrainConfig
from meit_train.data import ChatFormatter, EcgTextStream, StreamConfig, make_loader
from meit_train.meit_metrics import MeitScorer, check_offline_data
from meit_train.metrics import Scorer
from meit_train.model import MeitModel, build_model
from meit_train.perturb import perturb_segment


def load_run(
    run: Path,
    model_path: str | None = None,
    device: torch.device | None = None,
    weights: str = "final",
):
    """Rebuild the trained model of ``run`` with the ``weights`` it names (see :data:`WEIGHTS`)."""
    info = read_run(run)
    cfg = TrainConfig.model_validate(info["config"])
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    path = weights_path(run, weights)
    model, tok = build_model(model_path or info["model"], cfg.model, dtype=dtype)
    model.load_trainable_state(torch.load(path, map_location="cpu"))
    model.to(device).eval()
    model.encoder.float(), model.projection.float()
    return model, tok, cfg


def generation_stream(
    tok,
    corpus: Path,
    split: str,
    sources: list[str] | None,
    max_length: int,
    batch_size: int,
    template_ids: list[str] | None = None,
    prompt_format: str = "meit",
) -> EcgTextStream:
    """Every row of ``split`` (of ``sources``, with one of ``template_ids``) in a fixed order,
    as left-padded prompts."""
    scfg = StreamConfig(
        batch_size=batch_size,
        shuffle=False,
        mode="generate",
        split=split,
        sources=sources,
        template_ids=template_ids,
    )
    return EcgTextStream(corpus, ChatFormatter(tok, max_length, prompt_format), scfg)


def hypothesis(tok, new_ids: list[int]) -> str:
    """The report text of generated ids: special tokens dropped, outer whitespace stripped, and a
    character cut in half by the token limit (U+FFFD at the end) dropped.

    Nothing else is cut (no stop strings), so greedy outputs are prefix-stable: the text of the
    first k generated tokens is a prefix of the text of the first n > k. An untrained model often
    starts with newlines (the prompt ends in one); they are stripped, so its text can be empty at
    16 tokens and not at 128 -- still a prefix."""
    return tok.decode(new_ids, skip_special_tokens=True).rstrip("\ufffd").strip()


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
    template_ids: list[str] | None = None,
    prompt_format: str = "meit",
    progress=None,
) -> list[dict]:
    """Greedy reports for every row of ``split`` (in a fixed order): dicts of id, source, reference,
    hypothesis. ``perturb``: noise-segment fraction, seeded by ``seed``. ``progress``: called with
    the number of rows done after each batch."""
    stream = generation_stream(
        tok, corpus, split, sources, max_length, batch_size, template_ids, prompt_format
    )
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
        for i, ids in enumerate(new.tolist()):
            out.append(
                {
                    "id": batch["id"][i],
                    "source": batch["source"][i],
                    "reference": batch["report"][i],
                    "hypothesis": hypothesis(tok, ids),
                }
            )
        if progress is not None:
            progress(min(len(out), limit or len(out)))
        if limit is not None and len(out) >= limit:
            return out[:limit]
    return out


def score_predictions(
    scorer: Scorer | None,
    preds: list[dict],
    meit_batch_average: bool,
    meit: MeitScorer | None = None,
) -> dict:
    """Corpus-level scores (and their per-batch-of-32 average when asked) when ``scorer`` is given;
    MEIT's own scores (``meit_train.meit_metrics``) when ``meit`` is given."""
    refs = [p["reference"] for p in preds]
    hyps = [p["hypothesis"] for p in preds]
    result: dict = {"n": len(preds)}
    if scorer is not None:
        result["corpus"] = scorer.score(refs, hyps)
        if meit_batch_average:
            result["meit_batch_average"] = scorer.batch_average(refs, hyps, 32)
    if meit is not None:
        result["meit"] = meit.score(refs, hyps)
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
    weights: str = "final",
    progress: bool = False,
    metrics: str = "corpus",
    all_templates: bool = False,
) -> dict:
    """Generate on ``split`` and score; write ``eval-<split>[-<sources>].json`` plus predictions.

    Rows are filtered by the run's ``data.template_ids`` (a run trained on MEIT's fixed prompts is
    evaluated on them) unless ``all_templates``, and laid out with its ``data.prompt_format``."""
    if metrics != "corpus":
        check_offline_data()  # before any weights are loaded
    model, tok, cfg = load_run(run, model_path, weights=weights)
    trained_on = cfg.data.sources
    template_ids = None if all_templates else cfg.data.template_ids
    kw = dict(
        split=split,
        sources=sources,
        max_length=cfg.data.max_length,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        seed=seed,
        limit=limit,
        template_ids=template_ids,
        prompt_format=cfg.data.prompt_format,
    )
    result = {
        "run": str(run),
        "corpus": str(corpus),
        "split": split,
        "sources": sources,
        "weights": weights,
        "template_ids": template_ids,
        "trained_on": trained_on,
        "zero_shot": bool(sources and trained_on and not set(sources) & set(trained_on)),
        "max_new_tokens": max_new_tokens,
    }
    rows = generation_stream(
        tok, corpus, split, sources, 8, 1, template_ids, cfg.data.prompt_format
    ).total_rows
    rows = min(rows, limit) if limit else rows
    runs = [None, *(perturb_levels or [])]
    bar = (
        console.progress("[bold]{task.description}", ["rows"], True) if progress else nullcontext()
    )
    preds_by_level = {}
    with bar:
        for level in runs:
            name = "generate" if level is None else f"perturb {level:.2f}"
            update = None
            if progress:
                task = bar.add_task(name, total=rows)
                update = lambda done, task=task: bar.update(task, completed=done)  # noqa: E731
            preds_by_level[level] = generate_split(
                model, tok, corpus, perturb=level, progress=update, **kw
            )
    preds = preds_by_level[None]
    with ExitStack() as stack:  # --metrics corpus|meit|both
        scorer = stack.enter_context(Scorer()) if metrics != "meit" else None
        meit = stack.enter_context(MeitScorer()) if metrics != "corpus" else None
        result["metrics"] = score_predictions(scorer, preds, meit_batch_average, meit)
        if perturb_levels:
            result["perturbation"] = {
                f"{lvl:.2f}": score_predictions(
                    scorer, preds_by_level[lvl], meit_batch_average, meit
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
