"""Scale: a full build and three refreshes of an N-record MIMIC-IV-ECG-layout folder.

    .venv/bin/python benchmarks/bench_scale.py --records 20000 [--workers 2]

The folder is generated cheaply: 8 real PTB-XL signals re-encoded with MIMIC's conventions
(``pipeline.sources.mimic.write_mimic_layout``), then N studies whose headers are written and whose
``.dat`` are hard links to those 8 (so 800k records cost directory entries, not 9.6 GB). Statements
come from the real MIMIC-IV-ECG statement catalogue in ``../shared/data`` (cycled).

Measured, each run in a fresh child process: a full build, a refresh with no change, a refresh
after one record's data changed, a refresh after one record was added. Per run: wall seconds,
records/s, bytes read by the build's processes (``rchar`` of /proc: page cache and the ~90 MiB of
Python modules and libraries each run imports included), peak RSS
of the main process and of the largest worker, and the shards written.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the folder generator is shared with the Dask scale test
SHARED = REPO.parent / "shared" / "data"
SAMPLE = SHARED / "physionet-sample" / "ptbxl"
STATEMENTS = SHARED / "mimic-iv-ecg" / "statements.tsv"
REAL = ["06000", "06001", "06002", "06004", "06005", "06006", "06007", "06008"]
PER_SHARD = 1000


def generate(root: Path, n: int) -> Path:
    """An ``n``-study MIMIC-IV-ECG folder: headers written, ``.dat`` hard-linked to 8 real ones."""
    from tests.flows.mimic_clones import clone_mimic_layout

    return clone_mimic_layout(root, SAMPLE, STATEMENTS, n, k=len(REAL))


def change_one(root: Path, i: int = 7) -> None:
    """Give study ``i`` its own copy of its data file with one sample changed."""
    from pipeline.sources.mimic import mimic_record_path

    dat = root / f"{mimic_record_path(11000000 + i // 2, 40000000 + i)}.dat"
    data = bytearray(dat.read_bytes())
    data[1000] ^= 0x01
    dat.unlink()
    dat.write_bytes(bytes(data))


def add_one(root: Path, n: int) -> None:
    """Append study ``n`` (a new record) to the folder and both CSVs."""
    from tests.flows.mimic_clones import append_study

    append_study(root, n, SAMPLE, STATEMENTS)


def run(conn, root: str, out: str, workers: int, mode: str) -> None:
    """One build in this (child) process, with its processes sampled for bytes read and RSS."""
    from pipeline.build import build
    from pipeline.config import BuildConfig

    me = psutil.Process()
    seen: dict[int, tuple[int, int]] = {}  # pid -> (rchar, rss) at the last sample
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for p in [me, *me.children(recursive=True)]:
                try:
                    io, rss = p.io_counters().read_chars, p.memory_info().rss
                except (psutil.Error, AttributeError):
                    continue
                old = seen.get(p.pid, (0, 0))
                seen[p.pid] = (max(old[0], io), max(old[1], rss))
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    shards = max(1, 2 * (sum(1 for _ in open(Path(root) / "record_list.csv")) - 1) // PER_SHARD)
    cfg = BuildConfig(mimic=root, out=out, workers=workers, shards_per_split=shards)
    start = time.perf_counter()
    outcome = build(cfg, mode)
    wall = time.perf_counter() - start
    done.set()
    thread.join()
    main = seen.pop(me.pid, (0, 0))
    workers_rss = max((r for _, r in seen.values()), default=0)
    conn.send(
        dict(
            wall=wall,
            records=sum(unit_records(u) for u in outcome.plan.todo),
            read=main[0] + sum(r for r, _ in seen.values()),
            main_rss=main[1],
            worker_rss=workers_rss,
            written=len(outcome.written),
        )
    )


def unit_records(unit) -> int:
    """Records of a work unit (whether it carries its rows or a count of them)."""
    return getattr(unit, "n_records", None) or len(unit.records)


def measure(root: Path, out: Path, workers: int, mode: str) -> dict:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=run, args=(child, str(root), str(out), workers, mode))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", type=Path, help="generate (or reuse) the folder here")
    args = ap.parse_args()
    if not (SAMPLE.is_dir() and STATEMENTS.is_file()):
        print(f"needs the real samples under {SHARED}", file=sys.stderr)
        return 2
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="meit-scale-"))
    root, out = tmp / "mimic", tmp / "corpus"
    try:
        t0 = time.perf_counter()
        if not root.exists():
            generate(root, args.records)
        print(f"generated {args.records} studies in {time.perf_counter() - t0:.1f} s")
        print(
            "| run | wall s | records processed | records/s | read MiB | main RSS MiB "
            "| worker RSS MiB | shards written |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        steps = [
            ("full build", "full", None),
            ("refresh, nothing changed", "refresh", None),
            ("refresh, one record's data changed", "refresh", lambda: change_one(root)),
            ("refresh, one record added", "refresh", lambda: add_one(root, args.records)),
        ]
        for label, mode, before in steps:
            if before:
                before()
            r = measure(root, out, args.workers, mode)
            rate = r["records"] / r["wall"] if r["records"] else 0.0
            print(
                f"| {label} | {r['wall']:.1f} | {r['records']} | {rate:.0f} "
                f"| {r['read'] / 2**20:.0f} | {r['main_rss'] / 2**20:.0f} "
                f"| {r['worker_rss'] / 2**20:.0f} | {r['written']} |",
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
