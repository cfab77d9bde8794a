"""Streaming, sharding, shuffling, epoch plans, seeking and tokenisation of corpus shards."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from meit_train import data as data_mod
from meit_train.corpus import CorpusError, Selection, load_manifest, selected_units
from meit_train.data import (
    IGNORE_INDEX,
    ChatFormatter,
    EcgTextStream,
    StreamConfig,
    make_loader,
    per_worker,
)
from tests.meit_train.conftest import TINY_ROWS, UNEVEN_ROWS

MESSAGES = [
    {"role": "user", "content": "describe: "},
    {"role": "assistant", "content": "sinus rhythm."},
]


def ids_of(stream: EcgTextStream, workers: int) -> list[str]:
    """Every row id one rank yields in one epoch, via a DataLoader with ``workers`` workers."""
    return [i for b in make_loader(stream, workers, False) for i in b["id"]]


def stream(corpus, tok, rank=0, world=1, workers=0, batch_size=4, **kw) -> EcgTextStream:
    cfg = StreamConfig(batch_size=batch_size, shuffle_buffer=8, bucket_batches=2, **kw)
    return EcgTextStream(corpus, ChatFormatter(tok, 64), cfg, rank, world, workers)


@pytest.fixture(scope="module")
def tok(tiny_gpt2):
    return AutoTokenizer.from_pretrained(str(tiny_gpt2))


@pytest.mark.parametrize("world,workers", [(1, 0), (2, 2), (3, 1)])
def test_ranks_and_workers_cover_the_split_disjointly(tiny_corpus, tok, world, workers):
    n_train = sum(n for (_, split), n in TINY_ROWS.items() if split == "train")
    seen = Counter()
    for rank in range(world):
        seen.update(ids_of(stream(tiny_corpus, tok, rank, world, workers), workers))
    assert len(seen) == n_train and set(seen.values()) == {1}


def test_seeded_shuffle_is_reproducible_and_changes_with_epoch(tiny_corpus, tok):
    a, b = stream(tiny_corpus, tok, seed=3), stream(tiny_corpus, tok, seed=3)
    assert ids_of(a, 0) == ids_of(b, 0)
    a.set_epoch(1)
    assert ids_of(a, 0) != ids_of(b, 0)
    assert sorted(ids_of(a, 0)) == sorted(ids_of(b, 0))


def test_shuffle_mixes_shards_and_sources(tiny_corpus, tok):
    first = ids_of(stream(tiny_corpus, tok, seed=1), 0)[:12]
    assert len({i.split("/")[0] for i in first}) == 2 or len(set(first)) == 12


def test_epoch_plans_match_the_batches_of_uneven_epochs(uneven_corpus, tok):
    """The reported crash's corpus: batch counts differ between epochs, and each epoch's plan
    (from row-group metadata only) equals what the loader's workers yield, every row once."""
    s = stream(uneven_corpus, tok, workers=2, batch_size=2)
    totals = []
    for epoch in range(4):
        plan = s.plan(epoch, accumulation=2)
        s.set_epoch(epoch, quota=plan.batches)
        batches = list(make_loader(s, 2, False))
        assert per_worker([b["worker"] for b in batches], 2) == plan.batches
        ids = Counter(i for b in batches for i in b["id"])
        assert len(ids) == UNEVEN_ROWS[("ptbxl", "train")] and set(ids.values()) == {1}
        assert plan.steps == -(-sum(plan.batches) // 2) and plan.dropped_rows == 0
        totals.append(sum(plan.batches))
    assert totals[:2] == [22, 21]  # the crash: steps sized from epoch 0 overran epoch 1


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_take_equal_steps_and_dropped_rows_are_counted(uneven_corpus, tok, world):
    """Under DDP every rank takes the same number of steps; the rows a rank leaves out for that
    are exactly the plan's ``dropped_rows``; no row is read twice."""
    for epoch in range(3):
        seen, steps, dropped = Counter(), set(), set()
        for rank in range(world):
            s = stream(uneven_corpus, tok, rank, world, workers=2, batch_size=2)
            plan = s.plan(epoch, accumulation=2)
            s.set_epoch(epoch, quota=plan.batches)
            seen.update(ids_of(s, 2))
            steps.add(plan.steps)
            dropped.add(plan.dropped_rows)
            assert -(-sum(plan.batches) // 2) == plan.steps
        assert len(steps) == 1 and len(dropped) == 1 and set(seen.values()) == {1}
        assert len(seen) + dropped.pop() == UNEVEN_ROWS[("ptbxl", "train")]


class CountingFormatter(ChatFormatter):
    """Counts the rows it tokenises."""

    calls = 0

    def encode(self, messages):
        CountingFormatter.calls += 1
        return super().encode(messages)


def test_skip_seeks_without_reading_or_tokenising_the_skipped_rows(uneven_corpus, tok, monkeypatch):
    """A worker started at batch k yields exactly batches k.. of a full pass; windows before
    batch k are not read, and rows before its pool are not tokenised."""
    cfg = StreamConfig(batch_size=2, shuffle_buffer=8, bucket_batches=2, seed=5)
    full = EcgTextStream(uneven_corpus, ChatFormatter(tok, 64), cfg)
    full.set_epoch(1)
    want = [b["id"] for b in make_loader(full, 0, False)]
    reads = []
    real_read = data_mod.read_unit
    monkeypatch.setattr(data_mod, "read_unit", lambda u, c: reads.append(u) or real_read(u, c))
    counting = EcgTextStream(uneven_corpus, CountingFormatter(tok, 64), cfg)
    for k in (0, 5, 12, len(want) - 1):
        reads.clear()
        CountingFormatter.calls = 0
        counting.set_epoch(1, skip=[k])
        got = [b["id"] for b in make_loader(counting, 0, False)]
        assert got == want[k:]
        pool_start = (k // 2) * 2 * 2  # first row of the pool holding batch k (2 batches of 2)
        assert CountingFormatter.calls == UNEVEN_ROWS[("ptbxl", "train")] - pool_start
        if k >= 12:
            assert len(reads) < len(full.units)


def test_template_filter_reads_only_the_chosen_instructions(tiny_corpus, tok):
    ids = ["report.meit_ptbxl", "report.meit_mimic"]
    s = stream(tiny_corpus, tok, shuffle=False, template_ids=ids)
    got = ids_of(s, 0)
    want = []
    for u in selected_units(tiny_corpus, Selection("train")):
        table = pq.ParquetFile(u.path).read_row_group(u.row_group, columns=["id", "template_id"])
        want += [
            i for i, t in zip(table["id"].to_pylist(), table["template_id"].to_pylist()) if t in ids
        ]
    assert sorted(got) == sorted(want) and 0 < len(got) < sum(
        n for (_, split), n in TINY_ROWS.items() if split == "train"
    )
    rows = [r for u in s.units for r in data_mod.read_unit(u, data_mod.COLUMNS)]
    assert {r["messages"][0]["content"].split()[0] for r in rows} <= {"generate", "Given"}


def test_no_rows_for_a_selection_is_one_clear_error(tiny_corpus):
    with pytest.raises(CorpusError, match=r"no rows .* split 'validation', source mimic .*ptbxl/"):
        selected_units(tiny_corpus, Selection("validation", ["mimic"]))


def test_source_filter_and_generate_mode(tiny_corpus, tok):
    s = stream(tiny_corpus, tok, split="test", sources=["mimic"], shuffle=False, mode="generate")
    batches = list(make_loader(s, 0, False))
    assert {src for b in batches for src in b["source"]} == {"mimic"}
    b = batches[0]
    assert b["ecg"].shape[1:] == (12, 1000) and "labels" not in b
    assert (b["attention_mask"][:, -1] == 1).all()  # left-padded prompts end at the last column


def test_loss_is_masked_through_the_assistant_tag(tok):
    f = ChatFormatter(tok, 128)
    ids, labels = f.encode(MESSAGES)
    prompt = f.prompt_ids(MESSAGES)
    assert tok.decode(prompt).endswith("<|assistant|>\n")
    assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert labels[len(prompt) :] == ids[len(prompt) :] and ids[-1] == tok.eos_token_id
    assert tok.decode(ids[len(prompt) : -1]) == "sinus rhythm."
    assert len(f.encode(MESSAGES)[0]) > 8 and len(ChatFormatter(tok, 8).encode(MESSAGES)[0]) == 8


def test_meit_layout_is_used_whatever_the_chat_template(tiny_gpt2):
    """``prompt_format: meit`` (default) ignores a chat template and strips the instruction;
    ``chat`` uses the template and is refused for a tokenizer without one."""
    tok = AutoTokenizer.from_pretrained(str(tiny_gpt2))
    with pytest.raises(ValueError, match="chat template"):
        ChatFormatter(tok, 128, "chat")
    tok.chat_template = (
        "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"
        "{% if add_generation_prompt %} {% endif %}"
    )
    meit, chat = ChatFormatter(tok, 128), ChatFormatter(tok, 128, "chat")
    assert meit.prompt_text(MESSAGES) == "<|user|>\ndescribe:\n<|assistant|>\n"
    assert chat.prompt_text(MESSAGES).startswith("[INST] describe: ")
    ids, labels = chat.encode(MESSAGES)
    assert tok.decode([i for i, lab in zip(ids, labels) if lab != IGNORE_INDEX]) == (
        "sinus rhythm.<|endoftext|>"
    )


@pytest.fixture(scope="module")
def llama_bos_tokenizer(tmp_path_factory):
    """A Llama tokenizer that adds its BOS by default (as Llama-2's does), character-level."""
    from transformers import LlamaTokenizer

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for ch in "abcdefghijklmnopqrstuvwxyz\u2581<>|\n:.,ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        vocab.setdefault(ch, len(vocab))
    path = tmp_path_factory.mktemp("llama-tok")
    LlamaTokenizer(vocab=vocab, merges=[], add_bos_token=True).save_pretrained(str(path))
    return AutoTokenizer.from_pretrained(str(path))


def test_llama_bos_is_kept_and_the_example_is_tokenised_as_meit_does(llama_bos_tokenizer):
    """MEIT tokenises the whole example with the tokenizer's defaults: BOS first, and the answer
    as it falls in the joint text (no second word-start marker after the newline)."""
    tok = llama_bos_tokenizer
    f = ChatFormatter(tok, 128)
    ids, labels = f.encode(MESSAGES)
    assert ids[0] == tok.bos_token_id and labels[0] == IGNORE_INDEX
    assert f.prompt_ids(MESSAGES)[0] == tok.bos_token_id
    meit = tok("<|user|>\ndescribe:\n<|assistant|>\nsinus rhythm.")["input_ids"]
    assert ids == meit + [tok.eos_token_id]
    assert ids[: len(f.prompt_ids(MESSAGES))] == f.prompt_ids(MESSAGES)


def test_other_major_schema_version_is_refused(tiny_corpus, tmp_path):
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(tiny_corpus, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["schema_version"] = "9.0.0"
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CorpusError, match="schema version"):
        load_manifest(copy)
