"""The training loop: accumulation, linear warm-up schedule, exact-resume checkpoints, JSONL metrics."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from meit_train.config import TrainConfig
from meit_train.data import ChatFormatter, EcgTextStream, StreamConfig, make_loader
from meit_train.model import MeitModel, build_model


@dataclass
class TrainState:
    """Where training stands: optimiser steps done, current epoch, micro-batches consumed in it."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


@dataclass(frozen=True)
class Dist:
    """This process's place in data-parallel training."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank, world, device)


def compute_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    """bf16 on CUDA (``auto``), fp32 on CPU."""
    if cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def rng_state() -> dict:
    """All random generators that training touches."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state` output."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(run: Path, model: MeitModel, opt, sched, state: TrainState, keep: int) -> Path:
    """Write ``checkpoints/step-N`` atomically (via a temporary folder); prune to ``keep``."""
    root = run / "checkpoints"
    final = root / f"step-{state.step:08d}"
    tmp = root / f".tmp-{state.step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(model.trainable_state(), tmp / "trainable.pt")
    torch.save(
        {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_state()},
        tmp / "optim.pt",
    )
    (tmp / "state.json").write_text(json.dumps(asdict(state)))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(root.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return final


def latest_checkpoint(run: Path) -> Path | None:
    """The newest complete checkpoint of ``run``, if any."""
    found = sorted((run / "checkpoints").glob("step-*"))
    return found[-1] if found else None


def load_checkpoint(ckpt: Path, model: MeitModel, opt, sched) -> tuple[TrainState, dict]:
    """Restore model, optimiser and scheduler; return the state and the RNG state to apply later."""
    model.load_trainable_state(torch.load(ckpt / "trainable.pt", map_location="cpu"))
    extra = torch.load(ckpt / "optim.pt", map_location="cpu", weights_only=False)
    opt.load_state_dict(extra["optimizer"])
    sched.load_state_dict(extra["scheduler"])
    return TrainState(**json.loads((ckpt / "state.json").read_text())), extra["rng"]


def make_stream(
    corpus: Path, formatter: ChatFormatter, cfg: TrainConfig, dist: Dist
) -> EcgTextStream:
    """The training stream of this rank."""
    scfg = StreamConfig(
        batch_size=cfg.micro_batch_size,
        shuffle=True,
        shuffle_buffer=cfg.data.shuffle_buffer,
        bucket_batches=cfg.data.bucket_batches,
        seed=cfg.seed,
        mode="train",
        drop_uneven=dist.world_size > 1,
        sources=cfg.data.sources,
        split=cfg.data.split,
    )
    return EcgTextStream(corpus, formatter, scfg, dist.rank, dist.world_size, cfg.data.num_workers)


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Optimiser steps of the whole run."""
    return cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch


def write_run_info(run: Path, corpus: Path, model_path: str, cfg: TrainConfig) -> None:
    """``run.json`` (what meit-eval needs to rebuild the model) and the resolved ``config.yaml``."""
    run.mkdir(parents=True, exist_ok=True)
    local = Path(model_path)
    info = {
        "model": str(local.resolve()) if local.exists() else model_path,
        "corpus": str(Path(corpus).resolve()),
        "config": cfg.model_dump(),
    }
    (run / "run.json").write_text(json.dumps(info, indent=2))
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))


def save_final(run: Path, model: MeitModel) -> Path:
    """Save only what was trained: ``final/trainable.pt`` and the peft adapter in ``final/adapter``."""
    out = run / "final"
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.trainable_state(), out / "trainable.pt")
    model.lm.save_pretrained(str(out / "adapter"))
    return out


class MetricsLog:
    """Append-only JSONL metrics (main rank only)."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, record: dict) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def micro_step(
    model, batch: dict, device: torch.device, dtype: torch.dtype, scale: float
) -> tuple[float, int]:
    """Forward and backward one micro-batch; return its loss and its supervised token count."""
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
    keys = ("input_ids", "attention_mask", "labels", "ecg")
    inputs = {k: batch[k].to(device, non_blocking=True) for k in keys}
    with autocast:
        loss = model(**inputs).loss
    (loss * scale).backward()
    return loss.item(), int((inputs["labels"] != -100).sum())


def progress_bar(enabled: bool):
    """A rich progress bar showing loss and samples/s (or a no-op one)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[sps]:.1f} samples/s"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def train(
    corpus: Path, model_path: str, run: Path, cfg: TrainConfig, resume_from: Path | None = None
) -> dict:
    """Train MEIT on ``corpus`` from base LM ``model_path`` into ``run``; resumes from the newest
    checkpoint of ``run`` (or ``resume_from``). Returns a summary dict."""
    dist = setup_distributed()
    seed_everything(cfg.seed)
    dtype = compute_dtype(cfg, dist.device)
    run = Path(run)
    if dist.main:
        write_run_info(run, corpus, model_path, cfg)
    model, tok = build_model(model_path, cfg.model, dtype=dtype)
    model.to(dist.device)
    model.encoder.float(), model.projection.float()
    wrapped = model
    if dist.world_size > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    stream = make_stream(corpus, ChatFormatter(tok, cfg.data.max_length), cfg, dist)
    accum = cfg.accumulation(dist.world_size)
    per_epoch = stream.batches_per_epoch() // accum
    if per_epoch == 0:
        raise ValueError(f"too few rows for one step of {cfg.batch_size} samples")
    total = total_steps(cfg, per_epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    from transformers import get_linear_schedule_with_warmup

    sched = get_linear_schedule_with_warmup(opt, math.ceil(cfg.warmup_ratio * total), total)
    state, rng = TrainState(), None
    ckpt = resume_from or latest_checkpoint(run)
    if ckpt is not None:
        state, rng = load_checkpoint(ckpt, model, opt, sched)
    log = MetricsLog(run / "metrics.jsonl", dist.main)
    last_loss = float("nan")
    model.train()
    with progress_bar(cfg.progress and dist.main) as bar:
        task = bar.add_task("train", total=total, completed=state.step, loss=float("nan"), sps=0.0)
        while state.step < total:
            stream.set_epoch(state.epoch)
            batches = iter(
                make_loader(stream, cfg.data.num_workers, dist.device.type == "cuda", cfg.seed)
            )
            for _ in range(state.batch_in_epoch):
                next(batches)
            if rng is not None:
                set_rng_state(rng)
                rng = None
            while state.batch_in_epoch + accum <= per_epoch * accum and state.step < total:
                t0 = time.perf_counter()
                wait, losses, samples, tokens = 0.0, [], 0, 0
                for i in range(accum):
                    tw = time.perf_counter()
                    batch = next(batches)
                    wait += time.perf_counter() - tw
                    sync = (
                        nullcontext()
                        if (i == accum - 1 or dist.world_size == 1)
                        else wrapped.no_sync()
                    )
                    with sync:
                        loss, ntok = micro_step(wrapped, batch, dist.device, dtype, 1.0 / accum)
                    losses.append(loss)
                    samples += len(batch["id"])
                    tokens += int(batch["attention_mask"].sum())
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                state.step += 1
                state.batch_in_epoch += accum
                dt = time.perf_counter() - t0
                last_loss = float(np.mean(losses))
                record = {
                    "step": state.step,
                    "epoch": state.epoch,
                    "loss": last_loss,
                    "lr": sched.get_last_lr()[0],
                    "samples_per_s": samples / dt,
                    "tokens_per_s": tokens / dt,
                    "data_wait_frac": wait / dt,
                    "step_time_s": dt,
                }
                if state.step % cfg.log_every == 0 or state.step == total:
                    log.write(record)
                bar.update(task, completed=state.step, loss=last_loss, sps=samples / dt)
                if dist.main and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                    save_checkpoint(run, model, opt, sched, state, cfg.keep_checkpoints)
            del batches
            if state.batch_in_epoch + accum > per_epoch * accum:
                state.epoch += 1
                state.batch_in_epoch = 0
    if dist.main:
        save_final(run, model)
    return {"steps": state.step, "epochs": state.epoch, "loss": last_loss, "run": str(run)}
