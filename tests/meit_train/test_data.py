"""Streaming, sharding, shuffling and tokenisation of corpus shards."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from transformers import AutoTokenizer

from meit_train.corpus import CorpusError, load_manifest
from meit_train.data import IGNORE_INDEX, ChatFormatter, EcgTextStream, StreamConfig, make_loader
from tests.meit_train.conftest import TINY_ROWS

MESSAGES = [
    {"role": "user", "content": "describe: "},
    {"role": "assistant", "content": "sinus rhythm."},
]


def ids_of(stream: EcgTextStream, workers: int) -> list[str]:
    """Every row id one rank yields in one epoch, via a DataLoader with ``workers`` workers."""
    return [i for b in make_loader(stream, workers, False) for i in b["id"]]


def stream(corpus, tok, rank=0, world=1, workers=0, **kw) -> EcgTextStream:
    cfg = StreamConfig(batch_size=4, shuffle_buffer=8, bucket_batches=2, **kw)
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


def test_batches_per_epoch_matches_iteration(tiny_corpus, tok):
    s = stream(tiny_corpus, tok, world=2, rank=1, workers=2, drop_uneven=True)
    assert s.batches_per_epoch() == sum(1 for _ in make_loader(s, 2, False))


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


def test_chat_template_is_used_when_present(tiny_llama):
    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    f = ChatFormatter(tok, 128)
    assert f.use_template
    ids, labels = f.encode(MESSAGES)
    assert (
        tok.decode([i for i, lab in zip(ids, labels) if lab != IGNORE_INDEX])
        == "sinus rhythm.<|endoftext|>"
    )


def test_other_major_schema_version_is_refused(tiny_corpus, tmp_path):
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(tiny_corpus, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["schema_version"] = "9.0.0"
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CorpusError, match="schema version"):
        load_manifest(copy)
