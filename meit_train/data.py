"""Stream corpus shards into padded, pinned training batches.

Row groups are the unit of work: each epoch shuffles them with a seed and deals them round-robin to
the ``world_size * num_workers`` global loader workers (disjoint, complete). A worker reads its row
groups in *windows* (consecutive row groups holding at least ``shuffle_buffer`` rows), shuffles the
rows of a window with a seed, tokenises them in pools of ``bucket_batches`` batches and cuts each
length-sorted pool into batches (length-aware batching).

Everything about an epoch's batches is a function of the row-group row counts, so the trainer knows
each epoch's number of batches without reading data (:meth:`EcgTextStream.plan`), and a worker can
start at any batch: whole windows before it are skipped unread, rows of earlier pools untokenised.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from meit_train.corpus import Selection, Unit, selected_units
from schemas import decode_ecg

IGNORE_INDEX = -100
USER_TAG, ASSISTANT_TAG, SYSTEM_TAG = "<|user|>", "<|assistant|>", "<|system|>"
COLUMNS = ["id", "source", "ecg", "messages", "report"]
PROMPT_FORMATS = ("meit", "chat")


class ChatFormatter:
    """Turn ``messages`` into token ids with the loss masked up to and including the assistant tag.

    ``prompt_format="meit"`` (the default): MEIT's layout for every model, whatever chat template
    the tokenizer has: ``<|user|>\\n{instruction.strip()}\\n<|assistant|>\\n{report.strip()}{eos}``,
    tokenised with the tokenizer's default special tokens (a Llama tokenizer adds its BOS), as
    MEIT's ``encode_with_messages_format`` does. ``"chat"``: the tokenizer's chat template (which
    writes its own special tokens); a tokenizer without one is refused.

    The whole example is tokenised in one piece (as MEIT does) and the prompt's ids are its prefix;
    when a tokenizer merges across the prompt/answer boundary the answer is tokenised on its own, so
    the prompt ids at generation time are always exactly those seen in training.
    """

    def __init__(self, tokenizer, max_length: int = 128, prompt_format: str = "meit"):
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(
                f"prompt_format must be one of {PROMPT_FORMATS}, not {prompt_format!r}"
            )
        if prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt_format chat needs a tokenizer with a chat template")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token")
        self.tok = tokenizer
        self.max_length = max_length
        self.prompt_format = prompt_format
        self.special = prompt_format == "meit"

    @property
    def use_template(self) -> bool:
        """Whether the tokenizer's chat template lays the prompt out."""
        return self.prompt_format == "chat"

    def prompt_text(self, messages: list[dict]) -> str:
        """The text up to and including the assistant tag."""
        turns = [m for m in messages if m["role"] != "assistant"]
        if self.use_template:
            return self.tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        tags = {"user": USER_TAG, "system": SYSTEM_TAG}
        text = "".join(f"{tags[m['role']]}\n{m['content'].strip()}\n" for m in turns)
        return f"{text}{ASSISTANT_TAG}\n"

    def answer_text(self, messages: list[dict]) -> str:
        """The assistant report, stripped (the eos token is added as an id, not as text)."""
        return next(m["content"] for m in messages if m["role"] == "assistant").strip()

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=self.special)["input_ids"]

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Token ids of the prompt (what generation starts from)."""
        return self._ids(self.prompt_text(messages))

    def encode(self, messages: list[dict]) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` truncated to ``max_length``; prompt labels are ``-100``."""
        text, answer_text = self.prompt_text(messages), self.answer_text(messages)
        prompt, joint = self._ids(text), self._ids(text + answer_text)
        if joint[: len(prompt)] == prompt:
            answer = joint[len(prompt) :]
        else:
            answer = self.tok(answer_text, add_special_tokens=False)["input_ids"]
        eos = self.tok.eos_token_id
        answer = (answer[:-1] if answer[-1:] == [eos] else answer) + [eos]
        ids = (prompt + answer)[: self.max_length]
        labels = ([IGNORE_INDEX] * len(prompt) + answer)[: self.max_length]
        return ids, labels


@dataclass
class StreamConfig:
    """How rows are selected, streamed and batched."""

    batch_size: int = 8
    shuffle: bool = True
    shuffle_buffer: int = 512
    bucket_batches: int = 16
    seed: int = 0
    mode: str = "train"  # "train": ids+labels; "generate": prompt ids, left-padded
    sources: list[str] | None = None
    split: str = "train"
    template_ids: list[str] | None = None
    columns: list[str] = field(default_factory=lambda: list(COLUMNS))

    @property
    def selection(self) -> Selection:
        return Selection(self.split, self.sources, self.template_ids)


def derive_seed(seed: int, *keys: int) -> int:
    """A process-independent seed for one (epoch, global worker, purpose, ...) stream."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def assign_units(
    units: list[Unit], epoch: int, seed: int, shuffle: bool, n: int
) -> list[list[Unit]]:
    """Deal ``units`` (shuffled with ``seed + epoch`` if asked) round-robin to ``n`` global workers."""
    order = list(units)
    if shuffle:
        random.Random(derive_seed(seed, epoch, 0, 0)).shuffle(order)
    return [order[g::n] for g in range(n)]


def windows(units: list[Unit], min_rows: int) -> list[list[Unit]]:
    """Consecutive runs of ``units`` holding at least ``min_rows`` rows each (the last may hold fewer)."""
    out: list[list[Unit]] = []
    current: list[Unit] = []
    rows = 0
    for unit in units:
        current.append(unit)
        rows += unit.rows
        if rows >= min_rows:
            out.append(current)
            current, rows = [], 0
    return out + ([current] if current else [])


def read_unit(unit: Unit, columns: list[str]) -> list[dict]:
    """Kept rows of one row group; ``ecg`` as a (12, T) float16 array view."""
    table = pq.ParquetFile(unit.path).read_row_group(unit.row_group, columns=columns)
    if unit.keep is not None:
        table = table.take(list(unit.keep))
    ecgs = decode_ecg(table.column("ecg"))
    n = len(table)
    rest = {c: table.column(c).to_pylist() for c in columns if c != "ecg"}
    rows = []
    for i in range(n):
        row = {c: v[i] for c, v in rest.items()}
        row["ecg"] = ecgs[i]
        rows.append(row)
    return rows


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


def round_robin(counts: list[int]) -> list[int]:
    """The worker of each batch when workers yield ``counts`` batches and are read in turn
    (an exhausted worker is passed over): the order in which training consumes batches."""
    order: list[int] = []
    left = list(counts)
    while any(left):
        for w, n in enumerate(left):
            if n:
                order.append(w)
                left[w] -= 1
    return order


def per_worker(order: list[int], n_workers: int) -> list[int]:
    """How many batches of each worker ``order`` holds."""
    counts = [0] * n_workers
    for w in order:
        counts[w] += 1
    return counts


@dataclass(frozen=True)
class EpochPlan:
    """One epoch of one rank: its batches per loader worker and the steps every rank takes.

    ``dropped_rows`` (over all ranks) are left out so that every rank takes ``steps`` optimiser
    steps under DDP; with one rank nothing is ever dropped.
    """

    epoch: int
    batches: list[int]
    steps: int
    rows: int
    dropped_rows: int

    @property
    def order(self) -> list[int]:
        """This rank's batches in consumption order (the worker of each)."""
        return round_robin(self.batches)


def plan_epoch(
    epoch: int, rows: list[list[int]], batch_size: int, accumulation: int, rank: int
) -> EpochPlan:
    """Plan from ``rows[rank][worker]`` (rows each loader worker of each rank reads this epoch).

    Every rank takes the smallest rank's number of steps (its last step may hold fewer than
    ``accumulation`` micro-batches); a rank with more batches stops early, the rows of the
    batches it skips are counted in ``dropped_rows``."""
    batches = [[math.ceil(r / batch_size) for r in ranks] for ranks in rows]
    steps = min(math.ceil(sum(b) / accumulation) for b in batches)
    kept, quotas = 0, []
    for b, r in zip(batches, rows):
        quota = per_worker(round_robin(b)[: steps * accumulation], len(b))
        kept += sum(min(q * batch_size, n) for q, n in zip(quota, r))
        quotas.append(quota)
    total = sum(map(sum, rows))
    return EpochPlan(epoch, quotas[rank], steps, total, total - kept)


class EcgTextStream(IterableDataset):
    """Batches of one epoch for this rank and loader worker; choose them with :meth:`set_epoch`."""

    def __init__(
        self,
        corpus: Path,
        formatter: ChatFormatter,
        cfg: StreamConfig,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        units: list[Unit] | None = None,
    ):
        self.units = units if units is not None else selected_units(corpus, cfg.selection)
        self.formatter, self.cfg = formatter, cfg
        self.rank, self.world_size, self.num_workers = rank, world_size, max(1, num_workers)
        self.epoch = 0
        self.skip: list[int] = [0] * self.num_workers
        self.quota: list[int | None] = [None] * self.num_workers

    def set_epoch(
        self, epoch: int, skip: list[int] | None = None, quota: list[int] | None = None
    ) -> None:
        """Choose the epoch the next iteration yields; worker ``w`` leaves out its first
        ``skip[w]`` batches and stops after its first ``quota[w]`` batches."""
        self.epoch = epoch
        self.skip = list(skip) if skip is not None else [0] * self.num_workers
        self.quota = list(quota) if quota is not None else [None] * self.num_workers

    @property
    def n_global(self) -> int:
        return self.world_size * self.num_workers

    @property
    def total_rows(self) -> int:
        """Rows of the selection (all ranks)."""
        return sum(u.rows for u in self.units)

    def deal(self) -> list[list[Unit]]:
        """Row groups of every global worker this epoch."""
        return assign_units(self.units, self.epoch, self.cfg.seed, self.cfg.shuffle, self.n_global)

    def worker_units(self, worker: int) -> list[Unit]:
        """Row groups of global worker ``rank * num_workers + worker`` this epoch."""
        return self.deal()[self.rank * self.num_workers + worker]

    def worker_rows(self, epoch: int) -> list[list[int]]:
        """``[rank][worker]`` row counts of ``epoch``, from row-group metadata only."""
        saved, self.epoch = self.epoch, epoch
        deal = self.deal()
        self.epoch = saved
        w = self.num_workers
        return [
            [sum(u.rows for u in deal[r * w + i]) for i in range(w)] for r in range(self.world_size)
        ]

    def plan(self, epoch: int, accumulation: int) -> EpochPlan:
        """This rank's :class:`EpochPlan` for ``epoch``."""
        return plan_epoch(
            epoch, self.worker_rows(epoch), self.cfg.batch_size, accumulation, self.rank
        )

    def batches_per_epoch(self) -> int:
        """Batches this rank yields in the current epoch (all its workers together)."""
        rows = self.worker_rows(self.epoch)[self.rank]
        return sum(math.ceil(r / self.cfg.batch_size) for r in rows)

    def _global(self, worker: int) -> int:
        return self.rank * self.num_workers + worker

    def rows(self, worker: int, start: int = 0) -> Iterator[dict]:
        """Rows of ``worker`` this epoch from its ``start``-th on; windows before ``start`` are
        not read at all."""
        g = self._global(worker)
        buffer = self.cfg.shuffle_buffer if self.cfg.shuffle else 1
        offset = 0
        for j, window in enumerate(windows(self.worker_units(worker), buffer)):
            n = sum(u.rows for u in window)
            if offset + n <= start:
                offset += n
                continue
            rows = [row for u in window for row in read_unit(u, self.cfg.columns)]
            order = range(n)
            if self.cfg.shuffle:
                rng = np.random.default_rng(derive_seed(self.cfg.seed, self.epoch, g, 1, j))
                order = rng.permutation(n).tolist()
            for i in order[max(0, start - offset) :]:
                yield rows[i]
            offset += n

    def tokenise(self, row: dict) -> dict:
        """``row`` with ``input_ids`` (and ``labels`` in train mode)."""
        if self.cfg.mode == "generate":
            row["input_ids"] = self.formatter.prompt_ids(row["messages"])
        else:
            row["input_ids"], row["labels"] = self.formatter.encode(row["messages"])
        return row

    def pool_batches(self) -> int:
        """Batches cut from one pool of rows."""
        return self.cfg.bucket_batches if self.cfg.shuffle else 1

    def batches(self, worker: int, skip: int = 0, quota: int | None = None) -> Iterator[dict]:
        """Length-aware batches of ``worker``: pools of ``bucket_batches`` batches sorted by length,
        full batches in a seeded order, a short batch last. The first ``skip`` batches are left
        out (rows of pools before them are neither read nor tokenised when a window allows),
        and at most ``quota`` batches are yielded."""
        size, per_pool = self.cfg.batch_size, self.pool_batches()
        pool_rows = size * per_pool
        first = skip // per_pool
        pad = self.formatter.tok.pad_token_id
        pad = self.formatter.tok.eos_token_id if pad is None else pad
        limit = math.inf if quota is None else quota
        index, p = first * per_pool, first
        rows = self.rows(worker, first * pool_rows)
        while index < limit:
            pool = [self.tokenise(r) for r in itertools.islice(rows, pool_rows)]
            if not pool:
                return
            for group in self._cut(pool, size, p, worker):
                if index >= limit:
                    return
                if index >= skip:
                    batch = collate(group, pad, self.cfg.mode)
                    batch["worker"], batch["index"] = worker, index
                    yield batch
                index += 1
            p += 1

    def _cut(self, pool: list[dict], size: int, p: int, worker: int) -> list[list[dict]]:
        """Sort pool ``p`` by length (training only), cut it into batches, shuffle the full ones
        (seeded by epoch, worker and pool) and put a short one last."""
        if not self.cfg.shuffle:
            return [pool[i : i + size] for i in range(0, len(pool), size)]
        pool = sorted(pool, key=lambda r: len(r["input_ids"]))
        groups = [pool[i : i + size] for i in range(0, len(pool), size)]
        full = [g for g in groups if len(g) == size]
        rng = random.Random(derive_seed(self.cfg.seed, self.epoch, self._global(worker), 2, p))
        rng.shuffle(full)
        return full + [g for g in groups if len(g) < size]

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        if info is not None and info.num_workers != self.num_workers:
            raise RuntimeError(
                f"stream built for {self.num_workers} workers, loader has {info.num_workers}"
            )
        return self.batches(worker, self.skip[worker], self.quota[worker])


class Reorder:
    """Hands out a loader's batches in a given worker order (whatever order the loader delivers
    them in), holding the few that arrive early."""

    def __init__(self, batches: Iterator[dict], n_workers: int):
        self.batches = batches
        self.waiting: list[list[dict]] = [[] for _ in range(n_workers)]

    def next(self, worker: int) -> dict:
        """The next batch of ``worker``."""
        while not self.waiting[worker]:
            batch = next(self.batches)
            self.waiting[batch["worker"]].append(batch)
        return self.waiting[worker].pop(0)


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
