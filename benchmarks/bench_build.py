"""Build speed against a floor, in one run, on clones of the real PTB-XL 500 Hz records.

    .venv/bin/python benchmarks/bench_build.py                    # 4,000 and 20,000 records
    .venv/bin/python benchmarks/bench_build.py --records 4000 --repeats 5

For each size, three runs on the same records with the same cores, each in a fresh process:

- floor: only the unavoidable work: read each WFDB record (header, then the format-16 samples
  scaled by the header's gain), cast to float16, write Parquet with the pipeline's tuned settings
  (:class:`pipeline.shards.ShardWriter`), one spawn worker per core as the build has;
- build, default settings: ``meit-corpus build`` end to end (discover, plan, units, finalise,
  validate), the real pipeline;
- build, band-pass 0.5-40 Hz + z-score: the same with filtering and normalisation.

The runs are interleaved (floor, default, filtered, in a rotating order) ``--repeats`` times and
each one's best wall time is kept, so a burst of load from other jobs on a shared machine hits
one sample rather than one side of the ratio. Then a rerun's check of the finished shards is
timed on the last default build: one shard at a time, and on the plan's thread pool. Prints the best and median wall times, records/s,
the ratios build / floor (targets: default <= 1.25, filtered <= 1.5; wall time, and the CPU
seconds of all processes as a check less sensitive to other load), the worker processes' peak RSS,
and the load average before and after. "cores busy" (CPU seconds over wall seconds) well under the
worker count means other jobs held the cores: read the CPU ratio then.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import resource
import shutil
import statistics
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
RUNS = ("floor", "default", "filtered")
TARGETS = {"default": 1.25, "filtered": 1.5}
SIGNAL = {
    "default": {},
    "filtered": {"bandpass_hz": [0.5, 40.0], "normalise": "zscore"},
}


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


def read_record(base: str) -> np.ndarray:
    """One WFDB record's 12 x 5000 samples in mV: the header's gains, then the format-16 data."""
    lines = Path(base + ".hea").read_text().splitlines()
    gains = np.array([float(line.split()[2].split("(")[0].split("/")[0]) for line in lines[1:13]])
    x = np.fromfile(base + ".dat", dtype="<i2").reshape(5000, 12).T
    return x.astype(np.float32) / gains[:, None].astype(np.float32)


def floor_unit(bases: list[str], out: str) -> int:
    """The floor for one shard: read the records, cast to float16, write tuned Parquet."""
    from pipeline.shards import ShardWriter

    schema = pa.schema([("id", pa.string()), ("ecg", pa.list_(pa.list_(pa.float16(), 5000), 12))])
    with ShardWriter(Path(out), schema) as writer:
        for i in range(0, len(bases), 64):
            batch = bases[i : i + 64]
            x16 = np.stack([read_record(b) for b in batch]).astype(np.float16)
            flat = pa.array(x16.reshape(-1), type=pa.float16())
            ecg = pa.FixedSizeListArray.from_arrays(
                pa.FixedSizeListArray.from_arrays(flat, 5000), 12
            )
            writer.write(pa.Table.from_arrays([pa.array(batch), ecg], schema=schema))
    return len(bases)


def run_floor(root: Path, out: Path, per_shard: int, workers: int) -> None:
    bases = sorted(str(p.with_suffix("")) for p in root.rglob("*.dat"))
    chunks = [bases[i : i + per_shard] for i in range(0, len(bases), per_shard)]
    outs = [str(out / f"floor-{i:05d}.parquet") for i in range(len(chunks))]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(floor_unit, chunks, outs))


def run_build(root: Path, out: Path, per_shard: int, workers: int, kind: str) -> None:
    from pipeline.build import build_corpus
    from pipeline.config import BuildConfig

    cfg = BuildConfig.model_validate(
        {
            "ptbxl": root,
            "out": out,
            "workers": workers,
            "records_per_shard": per_shard,
            "signal": SIGNAL[kind],
        }
    )
    build_corpus(cfg)


def timed_in_child(kind: str, *args) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (the child and its workers) and the workers' peak RSS (MiB),
    measured in a fresh child."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_measure, args=(child, kind, *args))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def _measure(conn, kind: str, *args) -> None:
    start = time.perf_counter()
    if kind == "floor":
        run_floor(*args)
    else:
        run_build(*args, kind)
    wall = time.perf_counter() - start
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    conn.send((wall, cpu, children.ru_maxrss / 1024))


def recheck(root: Path, out: Path, per_shard: int, workers: int, repeats: int = 3) -> str:
    """What a rerun spends verifying the finished shards of the corpus at ``out`` (sha256 of
    each against its completion record): one at a time, and on the thread pool the plan uses."""
    from pipeline.config import BuildConfig
    from pipeline.plan import discover, make_plan
    from pipeline.progress import finished_result, finished_results
    from pipeline.sources import registry

    cfg = BuildConfig.model_validate(
        {"ptbxl": root, "out": out, "workers": workers, "records_per_shard": per_shard}
    )
    units = make_plan(cfg, discover(cfg, registry()), None).units
    size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    one, pool = [], []
    for _ in range(repeats):  # interleaved, best kept
        start = time.perf_counter()
        assert all(finished_result(out, u) for u in units)
        one.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert all(finished_results(out, units))
        pool.append(time.perf_counter() - start)
    return (
        f"  rerun check of {len(units)} shards ({size / 2**20:.0f} MiB, in the page cache): "
        f"one at a time {min(one):.2f} s, {os.cpu_count()} threads {min(pool):.2f} s"
    )


def measure_size(tmp: Path, n: int, args: argparse.Namespace) -> dict[str, list[tuple]]:
    """Every run's (wall s, CPU s, peak worker RSS MiB) at ``n`` records, interleaved, repeated;
    the default build of the last round is kept for :func:`recheck`."""
    data = clone_dataset(tmp / f"in-{n}", n)
    samples: dict[str, list[tuple]] = {k: [] for k in RUNS}
    for rep in range(args.repeats):
        for kind in RUNS[rep % 3 :] + RUNS[: rep % 3]:
            out = tmp / f"{kind}-{n}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            samples[kind].append(timed_in_child(kind, data, out, args.per_shard, args.workers))
            if kind != "default" or rep < args.repeats - 1:
                shutil.rmtree(out, ignore_errors=True)
    print(recheck(data, tmp / f"default-{n}", args.per_shard, args.workers), flush=True)
    shutil.rmtree(tmp / f"default-{n}", ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    return samples


def report(n: int, samples: dict[str, list[tuple]]) -> list[str]:
    """The lines printed for one size."""
    best = {k: min(w for w, _, _ in v) for k, v in samples.items()}
    cpu = {k: min(c for _, c, _ in v) for k, v in samples.items()}
    lines = []
    for kind in RUNS:
        walls = [w for w, _, _ in samples[kind]]
        rss = max(r for _, _, r in samples[kind])
        lines.append(
            f"  {kind:8s}: best {best[kind]:7.2f} s  median {statistics.median(walls):7.2f} s  "
            f"{n / best[kind]:8.1f} records/s  CPU {cpu[kind]:7.2f} s  "
            f"(cores busy {cpu[kind] / best[kind]:.1f})  peak worker RSS {rss:.0f} MiB"
        )
    for kind, target in TARGETS.items():
        ratio = best[kind] / best["floor"]
        verdict = "ok" if ratio <= target else "over"
        lines.append(
            f"  ratio {kind} / floor: {ratio:.2f}  (target <= {target}: {verdict}; "
            f"CPU seconds {cpu[kind] / cpu['floor']:.2f})"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, nargs="+", default=[4000, 20000])
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each (best kept)")
    ap.add_argument("--per-shard", type=int, default=500)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    if not SAMPLE.is_dir():
        print(f"needs the real PTB-XL sample at {SAMPLE}", file=sys.stderr)
        return 2
    print(
        f"workers: {args.workers}, records per shard: {args.per_shard}, repeats: {args.repeats}, "
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="meit-bench-"))
    try:
        for n in args.records:
            print(f"records: {n}", flush=True)
            samples = measure_size(tmp, n, args)
            print("\n".join(report(n, samples)), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
