"""Build speed against a floor, in one run, on clones of the real PTB-XL 500 Hz records.

    .venv/bin/python benchmarks/bench_build.py --records 4000

(a) the build (band-pass 0.5–40 Hz + z-score, all cores, the real pipeline), against
(b) a floor doing only the unavoidable work on the same records with the same cores: read the
samples (numpy, format 16), cast to float16, write Parquet with the tuned settings.
Prints records/s of both, their ratio (target <= 1.5), and the peak RSS of the worker processes at
two input sizes (memory must not grow with the number of records).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "physionet-sample" / "ptbxl"
REAL = ["06000", "06001", "06002", "06004", "06005", "06006", "06007", "06008"]


def clone_dataset(root: Path, n: int) -> Path:
    """A PTB-XL folder of ``n`` records cloned from the 8 real ones (hard links for the .dat)."""
    with open(SAMPLE / "ptbxl_database.csv", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if r["ecg_id"] != "1"]
    out_rows = []
    for i in range(n):
        ecg_id = 100000 + i
        src = rows[i % len(rows)]
        folder = root / "records500" / f"{ecg_id // 1000 * 1000:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{ecg_id:06d}_hr"
        real = SAMPLE / "records500" / "06000" / f"{REAL[i % len(REAL)]}_hr"
        header = real.with_suffix(".hea").read_text().replace(real.name, name)
        (folder / f"{name}.hea").write_text(header)
        os.link(real.with_suffix(".dat"), folder / f"{name}.dat")
        out_rows.append(
            dict(
                src,
                ecg_id=str(ecg_id),
                patient_id=f"{ecg_id}.0",
                filename_hr=f"records500/{ecg_id // 1000 * 1000:06d}/{name}",
            )
        )
    with open(root / "ptbxl_database.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(out_rows)
    return root


def floor_unit(paths: list[str], out: str) -> int:
    """The floor for one shard: read format-16 samples, cast to float16, write tuned Parquet."""
    from pipeline.shards import ShardWriter

    schema = pa.schema([("id", pa.string()), ("ecg", pa.list_(pa.list_(pa.float16(), 5000), 12))])
    with ShardWriter(Path(out), schema) as writer:
        for i in range(0, len(paths), 64):
            batch = paths[i : i + 64]
            x = np.stack([np.fromfile(p, dtype="<i2").reshape(5000, 12).T for p in batch])
            x16 = (x.astype(np.float32) / 1000.0).astype(np.float16)
            flat = pa.array(x16.reshape(-1), type=pa.float16())
            ecg = pa.FixedSizeListArray.from_arrays(
                pa.FixedSizeListArray.from_arrays(flat, 5000), 12
            )
            writer.write(pa.Table.from_arrays([pa.array(batch), ecg], schema=schema))
    return len(paths)


def run_floor(root: Path, out: Path, per_shard: int, workers: int) -> None:
    paths = sorted(str(p) for p in root.rglob("*.dat"))
    chunks = [paths[i : i + per_shard] for i in range(0, len(paths), per_shard)]
    outs = [str(out / f"floor-{i:05d}.parquet") for i in range(len(chunks))]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(floor_unit, chunks, outs))


def run_build(root: Path, out: Path, per_shard: int, workers: int) -> None:
    from pipeline.build import build_corpus
    from pipeline.config import BuildConfig

    cfg = BuildConfig.model_validate(
        {
            "ptbxl": root,
            "out": out,
            "workers": workers,
            "records_per_shard": per_shard,
            "signal": {"bandpass_hz": [0.5, 40.0], "normalise": "zscore"},
        }
    )
    build_corpus(cfg)


def timed_in_child(fn_name: str, *args) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the worker processes, measured in a fresh child."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_measure, args=(child, fn_name, *args))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def _measure(conn, fn_name: str, *args) -> None:
    fn = {"floor": run_floor, "build": run_build}[fn_name]
    start = time.perf_counter()
    fn(*args)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    conn.send((wall, peak_kib / 1024))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=4000)
    ap.add_argument("--per-shard", type=int, default=500)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    if not SAMPLE.is_dir():
        print(f"needs the real PTB-XL sample at {SAMPLE}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="meit-bench-"))
    try:
        results = {}
        for n in (args.records // 2, args.records):
            data = clone_dataset(tmp / f"in-{n}", n)
            for name in ("floor", "build"):
                out = tmp / f"{name}-{n}"
                out.mkdir()
                results[(name, n)] = timed_in_child(name, data, out, args.per_shard, args.workers)
        n = args.records
        floor_s, build_s = results[("floor", n)][0], results[("build", n)][0]
        print(f"records: {n}, workers: {args.workers}, records per shard: {args.per_shard}")
        print(f"floor : {floor_s:7.2f} s  {n / floor_s:8.1f} records/s")
        print(f"build : {build_s:7.2f} s  {n / build_s:8.1f} records/s  (band-pass + z-score)")
        print(f"ratio build / floor: {build_s / floor_s:.2f}  (target <= 1.5)")
        for name in ("floor", "build"):
            half, full = results[(name, args.records // 2)][1], results[(name, n)][1]
            print(
                f"peak worker RSS {name}: {half:.0f} MiB at {args.records // 2} records, "
                f"{full:.0f} MiB at {n}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
