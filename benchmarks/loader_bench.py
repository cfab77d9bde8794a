"""Loader throughput against MEIT's per-sample WFDB reads, on the same records, in one run.

Writes (or takes) a corpus, writes a WFDB copy (format 16, 1 µV units) of every record of the
chosen split, then times (a) our streaming loader end to end (Parquet → shuffle → tokenise → padded
batch) and (b) what MEIT's collator does per sample: ``wfdb.rdsamp`` + the same tokenisation and
stacking. Prints samples/s of both and the ratio.

    python benchmarks/loader_bench.py [--corpus DIR] [--rows 512] [--workers 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas import CANONICAL_LEADS  # noqa: E402


def write_wfdb_copies(corpus: Path, split: str, out: Path) -> list[tuple[str, dict, list]]:
    """WFDB copies of the split's records; returns (record path, messages, ...) per row."""
    import pyarrow.parquet as pq
    import wfdb

    from meit_train.corpus import load_manifest, select_files

    m = load_manifest(corpus)
    rows = []
    out.mkdir(parents=True, exist_ok=True)
    for path in select_files(corpus, m, split):
        t = pq.read_table(path, columns=["id", "ecg", "messages"])
        ecg = t.column("ecg").combine_chunks().flatten().flatten().to_numpy(zero_copy_only=False)
        ecg = ecg.reshape(len(t), len(CANONICAL_LEADS), -1).astype(np.float64)
        for i, (rid, msgs) in enumerate(
            zip(t.column("id").to_pylist(), t.column("messages").to_pylist())
        ):
            name = rid.replace("/", "_")
            wfdb.wrsamp(
                name,
                fs=m.fs,
                units=["mV"] * 12,
                sig_name=list(CANONICAL_LEADS),
                p_signal=ecg[i].T,
                fmt=["16"] * 12,
                adc_gain=[1000.0] * 12,
                baseline=[0] * 12,
                write_dir=str(out),
            )
            rows.append((str(out / name), msgs))
    return rows


def bench_loader(corpus: Path, tok, split: str, batch: int, workers: int) -> tuple[int, float]:
    """(samples, seconds) for one pass of the streaming loader."""
    from meit_train.data import ChatFormatter, EcgTextStream, StreamConfig, make_loader

    cfg = StreamConfig(batch_size=batch, split=split, shuffle_buffer=256)
    stream = EcgTextStream(corpus, ChatFormatter(tok, 128), cfg, num_workers=workers)
    t0 = time.perf_counter()
    n = sum(len(b["id"]) for b in make_loader(stream, workers, False))
    return n, time.perf_counter() - t0


def bench_wfdb(rows: list, tok, batch: int) -> tuple[int, float]:
    """(samples, seconds) for MEIT-style collation: rdsamp per sample, tokenise, stack."""
    import torch
    import wfdb

    from meit_train.data import ChatFormatter, collate

    fmt = ChatFormatter(tok, 128)
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        samples = []
        for rec, msgs in rows[i : i + batch]:
            sig, _ = wfdb.rdsamp(rec)
            ids, labels = fmt.encode(msgs)
            samples.append(
                {
                    "ecg": sig.T.astype(np.float32),
                    "input_ids": ids,
                    "labels": labels,
                    "id": rec,
                    "source": "",
                    "report": "",
                }
            )
        collate(samples, tok.eos_token_id, "train")
    torch.set_num_threads(torch.get_num_threads())
    return len(rows), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--corpus", type=Path, help="an existing corpus (default: write a synthetic one)"
    )
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--split", default="train")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=0)
    a = p.parse_args(argv)
    from meit_train.tiny import make_tokenizer
    from tests.meit_train.corpora import write_synthetic_corpus

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = a.corpus or write_synthetic_corpus(
            tmp / "corpus",
            {("mimic", a.split): a.rows},
            n_samples=5000,
            fs=500,
            shards=4,
            row_group_size=64,
        )
        tok = make_tokenizer(tmp / "tok")
        rows = write_wfdb_copies(corpus, a.split, tmp / "wfdb")
        bench_loader(corpus, tok, a.split, a.batch, a.workers)  # warm the page cache
        n1, t1 = bench_loader(corpus, tok, a.split, a.batch, a.workers)
        n2, t2 = bench_wfdb(rows, tok, a.batch)
    s1, s2 = n1 / t1, n2 / t2
    print(f"records: {n1} (12 x 5000 samples), batch {a.batch}, loader workers {a.workers}")
    print(f"streaming loader : {s1:9.1f} samples/s")
    print(f"wfdb.rdsamp/sample: {s2:9.1f} samples/s")
    print(f"ratio            : {s1 / s2:9.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
