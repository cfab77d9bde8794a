"""Stream corpus shards into padded, pinned training batches.

Row groups are the unit of work: each epoch shuffles them with a seed, deals them round-robin to the
``world_size * num_workers`` global loader workers (disjoint, complete), and every worker reads its
row groups one at a time (bounded memory), mixes rows through a seeded shuffle buffer, tokenises them,
and cuts length-sorted pools into batches (length-aware batching).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from meit_train.corpus import Unit, list_units, load_manifest, select_files

IGNORE_INDEX = -100
USER_TAG, ASSISTANT_TAG = "<|user|>", "<|assistant|>"
COLUMNS = ["id", "source", "ecg", "messages", "report"]


class ChatFormatter:
    """Turn ``messages`` into token ids with the loss masked up to and including the assistant tag.

    Uses the tokenizer's chat template when it has one, else MEIT's layout
    ``<|user|>\\n{instruction}\\n<|assistant|>\\n{report}{eos}``. Prompt and answer are tokenised
    separately, so the prompt ids at generation time are exactly those seen in training.
    """

    def __init__(self, tokenizer, max_length: int = 128):
        self.tok = tokenizer
        self.max_length = max_length
        self.use_template = bool(getattr(tokenizer, "chat_template", None))
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token")

    def prompt_text(self, messages: list[dict]) -> str:
        """The text up to and including the assistant tag."""
        turns = [m for m in messages if m["role"] != "assistant"]
        if self.use_template:
            return self.tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        user = "\n".join(m["content"] for m in turns if m["role"] == "user")
        return f"{USER_TAG}\n{user}\n{ASSISTANT_TAG}\n"

    def answer_text(self, messages: list[dict]) -> str:
        """The assistant report (the eos token is added as an id, not as text)."""
        return next(m["content"] for m in messages if m["role"] == "assistant")

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Token ids of the prompt (what generation starts from)."""
        return self.tok(self.prompt_text(messages), add_special_tokens=False)["input_ids"]

    def encode(self, messages: list[dict]) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` truncated to ``max_length``; prompt labels are ``-100``."""
        prompt = self.prompt_ids(messages)
        answer = self.tok(self.answer_text(messages), add_special_tokens=False)["input_ids"]
        answer = answer + [self.tok.eos_token_id]
        ids = (prompt + answer)[: self.max_length]
        labels = ([IGNORE_INDEX] * len(prompt) + answer)[: self.max_length]
        return ids, labels


@dataclass
class StreamConfig:
    """How rows are streamed and batched."""

    batch_size: int = 8
    shuffle: bool = True
    shuffle_buffer: int = 512
    bucket_batches: int = 16
    seed: int = 0
    mode: str = "train"  # "train": ids+labels; "generate": prompt ids, left-padded
    drop_uneven: bool = False
    sources: list[str] | None = None
    split: str = "train"
    columns: list[str] = field(default_factory=lambda: list(COLUMNS))


def derive_seed(seed: int, epoch: int, worker: int, stream: int) -> int:
    """A process-independent seed for one (epoch, global worker, purpose) stream."""
    return int(np.random.SeedSequence([seed, epoch, worker, stream]).generate_state(1)[0])


def assign_units(
    units: list[Unit], epoch: int, seed: int, shuffle: bool, n: int
) -> list[list[Unit]]:
    """Deal ``units`` (shuffled with ``seed + epoch`` if asked) round-robin to ``n`` global workers."""
    order = list(units)
    if shuffle:
        random.Random(derive_seed(seed, epoch, 0, 0)).shuffle(order)
    return [order[g::n] for g in range(n)]


def read_unit(unit: Unit, columns: list[str]) -> Iterator[dict]:
    """Rows of one row group; ``ecg`` as a (12, T) float16 array view."""
    table = pq.ParquetFile(unit.path).read_row_group(unit.row_group, columns=columns)
    ecg_col = table.column("ecg").combine_chunks()
    n = len(table)
    leads = ecg_col.type.list_size
    t = ecg_col.type.value_type.list_size
    flat = ecg_col.flatten().flatten().to_numpy(zero_copy_only=False)
    ecgs = flat.reshape(n, leads, t)
    rest = {c: table.column(c).to_pylist() for c in columns if c != "ecg"}
    for i in range(n):
        row = {c: v[i] for c, v in rest.items()}
        row["ecg"] = ecgs[i]
        yield row


def shuffle_buffer(rows: Iterator[dict], size: int, rng: random.Random) -> Iterator[dict]:
    """Seeded reservoir shuffle with at most ``size`` rows in memory."""
    buf: list[dict] = []
    for row in rows:
        if len(buf) < size:
            buf.append(row)
            continue
        i = rng.randrange(size)
        yield buf[i]
        buf[i] = row
    rng.shuffle(buf)
    yield from buf


def pad_left(seqs: list[list[int]], value: int) -> torch.Tensor:
    """Left-pad to a (B, L) tensor."""
    width = max(len(s) for s in seqs)
    return torch.tensor([[value] * (width - len(s)) + s for s in seqs], dtype=torch.long)


def pad_right(seqs: list[list[int]], value: int) -> torch.Tensor:
    """Right-pad to a (B, L) tensor."""
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def collate(samples: list[dict], pad_id: int, mode: str) -> dict:
    """Stack ECGs (float32) and pad token ids; train mode right-pads, generate mode left-pads."""
    ecg = torch.from_numpy(np.stack([s["ecg"] for s in samples]).astype(np.float32))
    batch = {
        "ecg": torch.nan_to_num(ecg),
        "id": [s["id"] for s in samples],
        "source": [s["source"] for s in samples],
        "report": [s["report"] for s in samples],
    }
    ids = [s["input_ids"] for s in samples]
    if mode == "generate":
        batch["input_ids"] = pad_left(ids, pad_id)
        batch["attention_mask"] = pad_left([[1] * len(s) for s in ids], 0)
    else:
        batch["input_ids"] = pad_right(ids, pad_id)
        batch["attention_mask"] = pad_right([[1] * len(s) for s in ids], 0)
        batch["labels"] = pad_right([s["labels"] for s in samples], IGNORE_INDEX)
    return batch


class EcgTextStream(IterableDataset):
    """Batches of one epoch for this rank and loader worker; set the epoch with :meth:`set_epoch`."""

    def __init__(
        self,
        corpus: Path,
        formatter: ChatFormatter,
        cfg: StreamConfig,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
    ):
        manifest = load_manifest(corpus)
        self.units = list_units(
            select_files(corpus, manifest, cfg.split, cfg.sources), manifest.n_samples
        )
        if not self.units:
            raise ValueError(f"no rows in split {cfg.split!r} for sources {cfg.sources}")
        self.formatter, self.cfg = formatter, cfg
        self.rank, self.world_size, self.num_workers = rank, world_size, max(1, num_workers)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields."""
        self.epoch = epoch

    @property
    def n_global(self) -> int:
        return self.world_size * self.num_workers

    def worker_units(self, worker: int) -> list[Unit]:
        """Row groups of global worker ``rank * num_workers + worker`` this epoch."""
        deal = assign_units(self.units, self.epoch, self.cfg.seed, self.cfg.shuffle, self.n_global)
        return deal[self.rank * self.num_workers + worker]

    def row_cap(self) -> int | None:
        """With ``drop_uneven``, the row count every global worker stops at (equal DDP steps)."""
        if not self.cfg.drop_uneven:
            return None
        deal = assign_units(self.units, self.epoch, self.cfg.seed, self.cfg.shuffle, self.n_global)
        return min(sum(u.rows for u in d) for d in deal)

    def batches_per_epoch(self) -> int:
        """Batches this rank yields per epoch (all its workers together)."""
        cap = self.row_cap()
        total = 0
        for w in range(self.num_workers):
            rows = sum(u.rows for u in self.worker_units(w))
            rows = rows if cap is None else min(rows, cap)
            total += math.ceil(rows / self.cfg.batch_size)
        return total

    def rows(self, worker: int) -> Iterator[dict]:
        """Rows of ``worker`` this epoch, through the shuffle buffer, capped if ``drop_uneven``."""
        stream = (row for u in self.worker_units(worker) for row in read_unit(u, self.cfg.columns))
        if self.cfg.shuffle:
            g = self.rank * self.num_workers + worker
            rng = random.Random(derive_seed(self.cfg.seed, self.epoch, g, 1))
            stream = shuffle_buffer(stream, self.cfg.shuffle_buffer, rng)
        cap = self.row_cap()
        for i, row in enumerate(stream):
            if cap is not None and i >= cap:
                return
            yield row

    def tokenised(self, worker: int) -> Iterator[dict]:
        """Rows with ``input_ids`` (and ``labels`` in train mode)."""
        for row in self.rows(worker):
            if self.cfg.mode == "generate":
                row["input_ids"] = self.formatter.prompt_ids(row["messages"])
            else:
                row["input_ids"], row["labels"] = self.formatter.encode(row["messages"])
            yield row

    def batches(self, worker: int) -> Iterator[dict]:
        """Length-aware batches: pools of ``bucket_batches`` batches sorted by length, batch order shuffled."""
        size = self.cfg.batch_size
        pool_size = size * (self.cfg.bucket_batches if self.cfg.shuffle else 1)
        rng = random.Random(
            derive_seed(self.cfg.seed, self.epoch, self.rank * self.num_workers + worker, 2)
        )
        pad = self.formatter.tok.pad_token_id
        pad = self.formatter.tok.eos_token_id if pad is None else pad
        pool: list[dict] = []
        for row in self.tokenised(worker):
            pool.append(row)
            if len(pool) == pool_size:
                yield from self._cut(pool, size, rng, pad)
                pool = []
        if pool:
            yield from self._cut(pool, size, rng, pad)

    def _cut(self, pool: list[dict], size: int, rng: random.Random, pad: int) -> Iterator[dict]:
        """Sort a pool by length (training only), cut it into batches, shuffle their order."""
        if self.cfg.shuffle:
            pool = sorted(pool, key=lambda r: len(r["input_ids"]))
        groups = [pool[i : i + size] for i in range(0, len(pool), size)]
        if self.cfg.shuffle:
            rng.shuffle(groups)
        for g in groups:
            yield collate(g, pad, self.cfg.mode)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        if info is not None and info.num_workers != self.num_workers:
            raise RuntimeError(
                f"stream built for {self.num_workers} workers, loader has {info.num_workers}"
            )
        return self.batches(worker)


def make_loader(
    stream: EcgTextStream, num_workers: int, pin_memory: bool, seed: int = 0
) -> DataLoader:
    """A DataLoader over pre-batched ``stream``; its own generator leaves the global RNG untouched."""
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers else None,
        generator=torch.Generator().manual_seed(seed),
    )
