"""Data-parallel plumbing: this process's rank and device, and the few collectives training uses
(sum/max reduce, gather, barrier), each a no-op with one rank."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in data-parallel training."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


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


def reduce(dist: Dist, values: list[float], op: str = "sum") -> list[float]:
    """``values`` summed (or maxed) over all ranks; unchanged with one rank."""
    if not dist.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=dist.device)
    kind = torch.distributed.ReduceOp.SUM if op == "sum" else torch.distributed.ReduceOp.MAX
    torch.distributed.all_reduce(t, op=kind)
    return t.tolist()


def gather(dist: Dist, obj) -> list:
    """``obj`` of every rank, in rank order (on every rank)."""
    if not dist.distributed:
        return [obj]
    out = [None] * dist.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def barrier(dist: Dist) -> None:
    if dist.distributed:
        torch.distributed.barrier()
