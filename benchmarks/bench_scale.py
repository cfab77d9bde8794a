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
import csv
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SAMPLE = SHARED / "physionet-sample" / "ptbxl"
STATEMENTS = SHARED / "mimic-iv-ecg" / "statements.tsv"
REAL = ["06000", "06001", "06002", "06004", "06005", "06006", "06007", "06008"]
PER_SHARD = 1000


def real_signals() -> list[np.ndarray]:
    """The 8 real 500 Hz PTB-XL records in canonical lead order, mV."""
    from pipeline.leads import canonical_order
    from pipeline.wfdb_io import read_record

    out = []
    for ecg_id in REAL:
        raw = read_record(SAMPLE / "records500" / "06000" / f"{ecg_id}_hr")
        out.append(raw.signal[canonical_order(raw.leads)])
    return out


def statements() -> list[tuple[str, ...]]:
    """Reports of 2-3 real MIMIC statements each, cycled through the catalogue."""
    with open(STATEMENTS, newline="") as f:
        lines = [r["statement"] for r in csv.DictReader(f, delimiter="\t")][:200]
    return [tuple(lines[i : i + 2 + i % 2]) for i in range(0, len(lines) - 3, 3)]


def generate(root: Path, n: int) -> Path:
    """An ``n``-study MIMIC-IV-ECG folder: headers written, ``.dat`` hard-linked to 8 real ones."""
    from pipeline.sources.mimic import MimicLayoutRecord, mimic_record_path, write_mimic_layout

    base = root.parent / "base"
    said = statements()
    t0 = datetime(2180, 1, 1)
    seeds = [
        MimicLayoutRecord(10000000 + k, 49000000 + k, t0, sig, said[k])
        for k, sig in enumerate(real_signals())
    ]
    write_mimic_layout(base, seeds)
    templates = [base / mimic_record_path(s.subject_id, s.study_id) for s in seeds]
    with (
        open(base / "record_list.csv", newline="") as f_list,
        open(base / "machine_measurements.csv", newline="") as f_mm,
    ):
        list_header = next(csv.reader(f_list))
        mm_header = next(csv.reader(f_mm))
    root.mkdir(parents=True)
    with (
        open(root / "record_list.csv", "w", newline="") as f_list,
        open(root / "machine_measurements.csv", "w", newline="") as f_mm,
    ):
        w_list, w_mm = csv.writer(f_list), csv.writer(f_mm)
        w_list.writerow(list_header)
        w_mm.writerow(mm_header)
        for i in range(n):
            add_study(root, i, templates, said, w_list, w_mm, t0, mm_header)
    return root


def add_study(root, i, templates, said, w_list, w_mm, t0, mm_header) -> None:
    """Write study ``i``: its header (names replaced), a hard-linked ``.dat``, its CSV rows."""
    from pipeline.sources.mimic import mimic_record_path

    subject, study = 11000000 + i // 2, 40000000 + i
    rel = mimic_record_path(subject, study)
    folder = root / Path(rel).parent
    folder.mkdir(parents=True, exist_ok=True)
    src = templates[i % len(templates)]
    header = src.with_suffix(".hea").read_text().replace(src.name, str(study))
    (folder / f"{study}.hea").write_text(header)
    os.link(src.with_suffix(".dat"), folder / f"{study}.dat")
    when = (t0 + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
    w_list.writerow([subject, study, study, when, rel])
    cells = {"subject_id": subject, "study_id": study, "ecg_time": when, "cart_id": 1}
    cells.update({f"report_{k}": s for k, s in enumerate(said[i % len(said)])})
    w_mm.writerow([cells.get(c, "") for c in mm_header])


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
    base = root.parent / "base"
    templates = sorted(p.with_suffix("") for p in base.rglob("*.hea"))
    with open(root / "machine_measurements.csv", newline="") as f:
        mm_header = next(csv.reader(f))
    with (
        open(root / "record_list.csv", "a", newline="") as f_list,
        open(root / "machine_measurements.csv", "a", newline="") as f_mm,
    ):
        w_list, w_mm = csv.writer(f_list), csv.writer(f_mm)
        add_study(root, n, templates, statements(), w_list, w_mm, datetime(2180, 1, 1), mm_header)


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
