"""What a run saves and restores: the training position (:class:`TrainState`), the random
generators, exact-resume checkpoints (``checkpoints/step-N``, written atomically and pruned), and the
trained weights (``best/``, ``final/``)."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from meit_train.model import MeitModel


@dataclass
class TrainState:
    """Where training stands: optimiser steps done, current epoch, micro-batches consumed in it
    (on each rank), the best validation loss so far, and the layout the position refers to."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_val_loss: float | None = None
    best_step: int | None = None
    world_size: int = 1
    num_workers: int = 0


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


def save_checkpoint(
    run: Path, model: MeitModel, opt, sched, state: TrainState, keep: int, rngs: list[dict]
) -> Path:
    """Write ``checkpoints/step-N`` atomically (via a temporary folder); prune to ``keep``.

    ``rngs``: the RNG state of every rank, in rank order (each rank resumes with its own)."""
    root = run / "checkpoints"
    final = root / f"step-{state.step:08d}"
    tmp = root / f".tmp-{state.step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(model.trainable_state(), tmp / "trainable.pt")
    torch.save(
        {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rngs},
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


def load_checkpoint(ckpt: Path, model: MeitModel, opt, sched) -> tuple[TrainState, list[dict]]:
    """Restore model, optimiser and scheduler; return the state and every rank's RNG state."""
    model.load_trainable_state(torch.load(ckpt / "trainable.pt", map_location="cpu"))
    extra = torch.load(ckpt / "optim.pt", map_location="cpu", weights_only=False)
    opt.load_state_dict(extra["optimizer"])
    sched.load_state_dict(extra["scheduler"])
    rngs = extra["rng"] if isinstance(extra["rng"], list) else [extra["rng"]]
    return TrainState(**json.loads((ckpt / "state.json").read_text())), rngs


def save_weights(out: Path, model: MeitModel, info: dict | None = None) -> Path:
    """``out/trainable.pt`` (what was trained) and ``out/info.json``."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.trainable_state(), out / "trainable.pt")
    if info is not None:
        (out / "info.json").write_text(json.dumps(info))
    return out


def save_final(run: Path, model: MeitModel, info: dict | None = None) -> Path:
    """Save only what was trained: ``final/trainable.pt`` and the peft adapter in ``final/adapter``."""
    out = save_weights(run / "final", model, info)
    model.lm.save_pretrained(str(out / "adapter"))
    return out
