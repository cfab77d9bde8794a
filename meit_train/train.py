"""The training loop: accumulation, linear warm-up schedule, exact-resume checkpoints, validation,
JSONL metrics.

Epochs end when their batches end. Each epoch's batches are known in advance from row-group row
counts (:meth:`EcgTextStream.plan`), so the learning-rate schedule is sized from the real number of
steps of every epoch, and under DDP every rank takes the same number of steps (rows a rank cannot
fit are counted and logged). Checkpoints record the position inside the epoch; a resumed run skips
the consumed batches without reading or tokenising their rows where the loader can seek.

What the loop leans on lives beside it: :mod:`meit_train.distributed` (ranks and collectives),
:mod:`meit_train.checkpoint` (position, RNG state, checkpoints, weights) and
:mod:`meit_train.validation` (validation loss and generation scores).
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import yaml

from meit_train import console
from meit_train.checkpoint import (
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    save_final,
    save_weights,
    seed_everything,
    set_rng_state,
)
from meit_train.checks import check_corpus
from meit_train.config import TrainConfig
from meit_train.corpus import Selection
from meit_train.data import (
    ChatFormatter,
    EcgTextStream,
    EpochPlan,
    Reorder,
    StreamConfig,
    derive_seed,
    make_loader,
    per_worker,
)
from meit_train.distributed import Dist, barrier, gather, reduce, setup_distributed
from meit_train.model import build_model
from meit_train.validation import generation_scores, validation_loss


def compute_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    """bf16 on CUDA (``auto``), fp32 on CPU."""
    if cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def stream_config(cfg: TrainConfig, split: str, shuffle: bool, mode: str = "train") -> StreamConfig:
    """The stream settings of ``split`` under ``cfg`` (sources and template filter included)."""
    return StreamConfig(
        batch_size=cfg.micro_batch_size,
        shuffle=shuffle,
        shuffle_buffer=cfg.data.shuffle_buffer,
        bucket_batches=cfg.data.bucket_batches,
        seed=cfg.seed,
        mode=mode,
        sources=cfg.data.sources,
        split=split,
        template_ids=cfg.data.template_ids,
    )


def make_stream(
    corpus: Path, formatter: ChatFormatter, cfg: TrainConfig, dist: Dist
) -> EcgTextStream:
    """The training stream of this rank."""
    scfg = stream_config(cfg, cfg.data.split, shuffle=True)
    return EcgTextStream(corpus, formatter, scfg, dist.rank, dist.world_size, cfg.data.num_workers)


def total_steps(cfg: TrainConfig, plans: list[EpochPlan]) -> int:
    """Optimiser steps of the whole run: ``max_steps``, else the sum over the epochs' plans."""
    return cfg.max_steps if cfg.max_steps is not None else sum(p.steps for p in plans)


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


class MetricsLog:
    """Append-only JSONL metrics (main rank only); every record has a ``kind``."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, record: dict) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after ``step`` (logged after the checkpoint a run resumes from)."""
        if not self.enabled or not self.path.exists():
            return
        keep = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        self.path.write_text("".join(line + "\n" for line in keep))


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
    return loss.item(), int((inputs["labels"][:, 1:] != -100).sum())


def console_line(dist: Dist, text: str) -> None:
    """One line on stderr from the main rank (what the progress bar cannot show)."""
    if dist.main:
        from rich.console import Console

        Console(stderr=True).print(text, highlight=False, markup=False)


class Trainer:
    """One training run: the model, its optimiser and schedule, the data, the bookkeeping."""

    def __init__(
        self,
        corpus: Path,
        model_path: str,
        run: Path,
        cfg: TrainConfig,
        resume_from: Path | None = None,
    ):
        data = cfg.data
        check_corpus(corpus, Selection(data.split, data.sources, data.template_ids), data.normalise)
        self.dist = dist = setup_distributed()
        self.corpus, self.run, self.cfg = Path(corpus), Path(run), cfg
        seed_everything(cfg.seed)  # identical initial weights on every rank
        self.dtype = compute_dtype(cfg, dist.device)
        if dist.main:
            write_run_info(self.run, corpus, model_path, cfg)
        self.model, self.tok = build_model(model_path, cfg.model, dtype=self.dtype)
        self.model.to(dist.device)
        self.model.encoder.float(), self.model.projection.float()
        self.wrapped = self.model
        if dist.distributed:
            self.wrapped = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[dist.device.index] if dist.device.type == "cuda" else None,
            )
        seed_everything(derive_seed(cfg.seed, dist.rank, 3))  # each rank its own dropout masks
        self.formatter = ChatFormatter(self.tok, cfg.data.max_length, cfg.data.prompt_format)
        self.stream = make_stream(corpus, self.formatter, cfg, dist)
        self.accum = cfg.accumulation(dist.world_size)
        self.plans: dict[int, EpochPlan] = {}
        self.total = total_steps(cfg, [self.plan(e) for e in range(cfg.epochs)])
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        from transformers import get_linear_schedule_with_warmup

        self.sched = get_linear_schedule_with_warmup(
            self.opt, math.ceil(cfg.warmup_ratio * self.total), self.total
        )
        self.state = TrainState(world_size=dist.world_size, num_workers=self.stream.num_workers)
        self.rng: dict | None = None
        self.log = MetricsLog(self.run / "metrics.jsonl", dist.main)
        ckpt = resume_from or latest_checkpoint(self.run)
        if ckpt is not None:
            self.resume(Path(ckpt))
        self.val_stream = None
        if cfg.eval_every:
            scfg = stream_config(cfg, cfg.data.validation_split, shuffle=False)
            self.val_stream = EcgTextStream(
                corpus, self.formatter, scfg, dist.rank, dist.world_size, 0
            )
        self.last_loss = float("nan")

    def plan(self, epoch: int) -> EpochPlan:
        """The (cached) plan of ``epoch``."""
        if epoch not in self.plans:
            plan = self.stream.plan(epoch, self.accum)
            if plan.steps == 0:
                raise ValueError(
                    f"epoch {epoch}: a rank has no rows ({len(self.stream.units)} row groups "
                    f"for {self.dist.world_size} ranks x {self.stream.num_workers} loader workers)"
                )
            self.plans[epoch] = plan
        return self.plans[epoch]

    def resume(self, ckpt: Path) -> None:
        """Restore from ``ckpt``; a position recorded under another rank/worker layout restarts
        its epoch (said on the console)."""
        state, rngs = load_checkpoint(ckpt, self.model, self.opt, self.sched)
        self.log.truncate_after(state.step)
        layout = (self.dist.world_size, self.stream.num_workers)
        if (state.world_size, state.num_workers) != layout and state.batch_in_epoch:
            console_line(
                self.dist,
                f"checkpoint {ckpt.name} was written with {state.world_size} ranks x "
                f"{state.num_workers} workers, this run has {layout[0]} x {layout[1]}: "
                f"epoch {state.epoch} restarts from its first batch",
            )
            state.batch_in_epoch = 0
        state.world_size, state.num_workers = layout
        self.state = state
        self.rng = rngs[self.dist.rank] if self.dist.rank < len(rngs) else None
        console_line(self.dist, f"resuming from {ckpt} (step {state.step}, epoch {state.epoch})")

    def epoch_batches(self, plan: EpochPlan):
        """An iterator over this epoch's remaining batches, in the plan's order."""
        order = plan.order
        skip = per_worker(order[: self.state.batch_in_epoch], len(plan.batches))
        self.stream.set_epoch(plan.epoch, skip, plan.batches)
        loader = make_loader(
            self.stream, self.cfg.data.num_workers, self.dist.device.type == "cuda", self.cfg.seed
        )
        reorder = Reorder(iter(loader), len(plan.batches))
        return (reorder.next(w) for w in order[self.state.batch_in_epoch :])

    def log_epoch(self, plan: EpochPlan) -> None:
        """One ``epoch`` record (rows, steps, rows left out for equal DDP steps)."""
        record = {
            "kind": "epoch",
            "step": self.state.step,
            "epoch": plan.epoch,
            "rows": plan.rows,
            "steps": plan.steps,
            "dropped_rows": plan.dropped_rows,
        }
        self.log.write(record)
        if plan.dropped_rows:
            console_line(
                self.dist,
                f"epoch {plan.epoch}: {plan.dropped_rows} of {plan.rows} rows left out so that "
                f"all {self.dist.world_size} ranks take {plan.steps} steps",
            )

    def optimiser_step(self, batches, n: int) -> dict:
        """Accumulate ``n`` micro-batches and step; return the step's record (all ranks)."""
        t0 = time.perf_counter()
        wait, losses, samples, tokens = 0.0, [], 0, 0
        for i in range(n):
            tw = time.perf_counter()
            batch = next(batches)
            wait += time.perf_counter() - tw
            last = i == n - 1 or not self.dist.distributed
            with nullcontext() if last else self.wrapped.no_sync():
                loss, _ = micro_step(self.wrapped, batch, self.dist.device, self.dtype, 1.0 / n)
            losses.append(loss)
            samples += len(batch["id"])
            tokens += int(batch["attention_mask"].sum())
        if self.cfg.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        loss_sum, samples, tokens = reduce(self.dist, [float(np.mean(losses)), samples, tokens])
        dt, wait = reduce(self.dist, [dt, wait], "max")
        return {
            "kind": "train",
            "loss": loss_sum / self.dist.world_size,
            "lr": self.sched.get_last_lr()[0],
            "samples": int(samples),
            "samples_per_s": samples / dt,
            "tokens_per_s": tokens / dt,
            "data_wait_frac": wait / dt,
            "step_time_s": dt,
        }

    def validate(self, scorer) -> dict:
        """Validation loss (and generation scores on rank 0); keeps the best weights in ``best/``."""
        loss, tokens = validation_loss(self.model, self.val_stream, self.dist, self.dtype)
        record = {"kind": "validation", "step": self.state.step, "epoch": self.state.epoch}
        record |= {"val_loss": loss, "val_tokens": tokens}
        if scorer is not None and self.dist.main:
            record |= generation_scores(
                self.model, self.tok, self.corpus, self.cfg, scorer, self.cfg.eval_generate_rows
            )
        best = self.state.best_val_loss
        record["best"] = bool(np.isfinite(loss) and (best is None or loss < best))
        if record["best"]:
            self.state.best_val_loss, self.state.best_step = loss, self.state.step
            if self.dist.main:
                save_weights(
                    self.run / "best", self.model, {"step": self.state.step, "val_loss": loss}
                )
        barrier(self.dist)
        self.log.write(record)
        return record

    def checkpoint(self) -> None:
        rngs = gather(self.dist, rng_state())
        if self.dist.main:
            save_checkpoint(
                self.run,
                self.model,
                self.opt,
                self.sched,
                self.state,
                self.cfg.keep_checkpoints,
                rngs,
            )
        barrier(self.dist)

    def fit(self) -> dict:
        """Train to the last step; returns a summary."""
        cfg, state = self.cfg, self.state
        scorer = None
        if self.val_stream is not None and cfg.eval_generate_rows and self.dist.main:
            from meit_train.metrics import Scorer

            scorer = Scorer()
        self.wrapped.train()
        try:
            with console.progress(
                "[bold]train[/] epoch {task.fields[epoch]}",
                ["loss {task.fields[loss]:.4f}", "{task.fields[sps]:.1f} samples/s"],
                cfg.progress and self.dist.main,
            ) as bar:
                task = bar.add_task(
                    "train",
                    total=self.total,
                    completed=state.step,
                    loss=math.nan,
                    sps=0.0,
                    epoch=state.epoch,
                )
                while state.step < self.total:
                    plan = self.plan(state.epoch)
                    if state.batch_in_epoch == 0:
                        self.log_epoch(plan)
                    n_batches = len(plan.order)
                    batches = self.epoch_batches(plan)
                    if self.rng is not None:
                        set_rng_state(self.rng)
                        self.rng = None
                    while state.batch_in_epoch < n_batches and state.step < self.total:
                        n = min(self.accum, n_batches - state.batch_in_epoch)
                        record = self.optimiser_step(batches, n)
                        state.step += 1
                        state.batch_in_epoch += n
                        record = {"step": state.step, "epoch": state.epoch} | record
                        if state.batch_in_epoch == n_batches:
                            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                        self.last_loss = record["loss"]
                        if state.step % cfg.log_every == 0 or state.step == self.total:
                            self.log.write(record)
                        bar.update(
                            task,
                            completed=state.step,
                            loss=record["loss"],
                            sps=record["samples_per_s"],
                            epoch=state.epoch,
                        )
                        if self.val_stream is not None and (
                            state.step % cfg.eval_every == 0 or state.step == self.total
                        ):
                            self.validate(scorer)
                        if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                            self.checkpoint()
                        if state.batch_in_epoch == 0:
                            break
                    del batches
        finally:
            if scorer is not None:
                scorer.close()
        if self.dist.main:
            save_final(self.run, self.model, {"step": state.step, "epoch": state.epoch})
        barrier(self.dist)
        return {
            "steps": state.step,
            "epochs": state.epoch,
            "loss": self.last_loss,
            "best_val_loss": state.best_val_loss,
            "best_step": state.best_step,
            "run": str(self.run),
        }


def train(
    corpus: Path, model_path: str, run: Path, cfg: TrainConfig, resume_from: Path | None = None
) -> dict:
    """Train MEIT on ``corpus`` from base LM ``model_path`` into ``run``; resumes from the newest
    checkpoint of ``run`` (or ``resume_from``). Returns a summary dict."""
    return Trainer(corpus, model_path, run, cfg, resume_from).fit()
