"""Scale: a full build and three refreshes of an N-record MIMIC-IV-ECG-layout folder.

    .venv/bin/python benchmarks/bench_scale.py --records 20000 [--workers 2]

The folder is generated cheaply: 8 real PTB-XL signals re-encoded with MIMIC's conventions
(``pipeline.sources.mimic.write_mimic_layout``), then N studies whose headers are written and whose
``.dat`` are hard links to those 8 (so 800k records cost directory entries, not 9.6 GB). Statements
come from the real MIMIC-IV-ECG statement catalogue in ``../shared/data`` (cycled).

Every study gets machine measurements shaped like MIMIC's real row (intervals, axes, filter
settings; varied per study), and with ``--sums`` the folder gets PhysioNet's ``SHA256SUMS.txt``
(every header, data file and CSV, as both datasets publish it), kept up to date by the changes below.

Measured, each run in a fresh child process: a full build, a refresh with no change, a refresh
after one record's data changed, a refresh after one record was added. Per run: wall seconds,
records/s, bytes read by the build's processes (``rchar`` of /proc: page cache and the ~90 MiB of
Python modules and libraries each run imports included), peak RSS
of the main process and of the largest worker, and the shards written.

``--plan-only`` measures what fits at 800k records instead of a full build: discovery and the plan
(wall and the main process's peak RSS after each), ``--sample-units`` units of the plan spread over
it (records/s, worker RSS), and a second plan with those units done.
"""

from __future__ import annotations

import argparse
import hashlib
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


def generate(root: Path, n: int, sums: bool = False) -> Path:
    """An ``n``-study MIMIC-IV-ECG folder: headers written, ``.dat`` hard-linked to 8 real ones,
    machine measurements filled in; with ``sums`` its ``SHA256SUMS.txt``."""
    from tests.flows.mimic_clones import clone_mimic_layout

    clone_mimic_layout(root, SAMPLE, STATEMENTS, n, k=len(REAL))
    fill_measurements(root / "machine_measurements.csv")
    if sums:
        write_sums(root)
    return root


def fill_measurements(mm_csv: Path) -> None:
    """Give every row measurements like MIMIC's real one (study 40689238), varied by row."""
    import polars as pl

    mm = pl.read_csv(mm_csv, infer_schema=False)
    i = pl.int_range(pl.len())
    filled = mm.with_columns(
        pl.lit("0.005-150 Hz").alias("bandwidth"),
        pl.lit("60 Hz notch Baseline filter").alias("filtering"),
        (600 + i % 400).cast(pl.String).alias("rr_interval"),
        (40 + i % 7).cast(pl.String).alias("p_onset"),
        (128 + i % 11).cast(pl.String).alias("p_end"),
        (170 + i % 13).cast(pl.String).alias("qrs_onset"),
        (258 + i % 17).cast(pl.String).alias("qrs_end"),
        (518 + i % 19).cast(pl.String).alias("t_end"),
        (60 + i % 40).cast(pl.String).alias("p_axis"),
        (-30 + i % 120).cast(pl.String).alias("qrs_axis"),
        (20 + i % 70).cast(pl.String).alias("t_axis"),
    )
    filled.write_csv(mm_csv)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sums(root: Path) -> None:
    """``root/SHA256SUMS.txt`` listing every file under ``root`` (hard links hashed once)."""
    by_inode: dict[int, str] = {}
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name == "SHA256SUMS.txt":
            continue
        ino = path.stat().st_ino
        digest = by_inode.get(ino) or _sha256(path)
        if path.suffix == ".dat":
            by_inode[ino] = digest
        lines.append(f"{digest}  {path.relative_to(root).as_posix()}\n")
    (root / "SHA256SUMS.txt").write_text("".join(lines))


def update_sums(root: Path, rels: list[str]) -> None:
    """Re-list ``rels`` (and the two CSVs) in ``root/SHA256SUMS.txt`` when the folder has one."""
    sums = root / "SHA256SUMS.txt"
    if not sums.is_file():
        return
    rels = [*rels, "record_list.csv", "machine_measurements.csv"]
    kept = [ln for ln in sums.read_text().splitlines(True) if ln[66:].rstrip("\n") not in rels]
    kept += [f"{_sha256(root / r)}  {r}\n" for r in rels]
    sums.write_text("".join(kept))


def change_one(root: Path, i: int = 7) -> None:
    """Give study ``i`` its own copy of its data file with one sample changed."""
    from pipeline.sources.mimic import mimic_record_path

    dat = root / f"{mimic_record_path(11000000 + i // 2, 40000000 + i)}.dat"
    data = bytearray(dat.read_bytes())
    data[1000] ^= 0x01
    dat.unlink()
    dat.write_bytes(bytes(data))
    update_sums(root, [dat.relative_to(root).as_posix()])


def add_one(root: Path, n: int) -> None:
    """Append study ``n`` (a new record) to the folder and both CSVs."""
    from pipeline.sources.mimic import mimic_record_path
    from tests.flows.mimic_clones import append_study

    append_study(root, n, SAMPLE, STATEMENTS)
    rel = mimic_record_path(11000000 + n // 2, 40000000 + n)
    update_sums(root, [f"{rel}.hea", f"{rel}.dat"])


def peak_rss(pid: int) -> int:
    """A process's peak RSS so far (``VmHWM``, bytes; 0 when it is gone). Not ``getrusage``: a
    spawned child's counts the RSS it forked with (its parent's) before it exec'd."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next(ln for ln in f if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1]) * 1024


class Sampler:
    """Peak RSS (``VmHWM``) and bytes read (``rchar``) of this process and its children, sampled
    every 50 ms."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.seen: dict[int, tuple[int, int]] = {}  # pid -> (rchar, peak rss) at the last sample
        self.cpu: dict[int, float] = {}  # pid -> user + system CPU seconds at the last sample
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.is_set():
            for p in [self.me, *self.me.children(recursive=True)]:
                try:
                    io = p.io_counters().read_chars
                    cpu = p.cpu_times()
                except (psutil.Error, AttributeError):
                    continue
                self.cpu[p.pid] = cpu.user + cpu.system
                old = self.seen.get(p.pid, (0, 0))
                self.seen[p.pid] = (max(old[0], io), max(old[1], peak_rss(p.pid)))
            time.sleep(0.05)

    def main_rss(self) -> int:
        """This process's peak RSS so far (bytes)."""
        return peak_rss(os.getpid())

    def stop(self) -> dict:
        self.done.set()
        self.thread.join()
        main = self.seen.pop(self.me.pid, (0, 0))
        me = self.me.cpu_times()
        self.cpu[self.me.pid] = me.user + me.system
        return dict(
            cpu=sum(self.cpu.values()),
            read=main[0] + sum(r for r, _ in self.seen.values()),
            main_rss=max(main[1], self.main_rss()),
            worker_rss=max((r for _, r in self.seen.values()), default=0),
        )


def config(root: str, out: str, workers: int):
    """The build's config: 2 shards per 1,000 records and split (a fixed bucket count)."""
    from pipeline.config import BuildConfig

    shards = max(1, 2 * (sum(1 for _ in open(Path(root) / "record_list.csv")) - 1) // PER_SHARD)
    return BuildConfig(mimic=root, out=out, workers=workers, shards_per_split=shards)


def reset_peak() -> None:
    """Reset this process's ``VmHWM`` to its current RSS (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def measured_steps(log: dict):
    """The build's steps, each timed and with the main process's peak RSS during it (``VmHWM``
    reset before it) in ``log``: step name -> (wall s, peak bytes)."""
    import dataclasses

    from pipeline.build import Steps

    def wrap(name: str, step):
        def measured(*args, **kwargs):
            reset_peak()
            t0 = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                log[name] = (time.perf_counter() - t0, peak_rss(os.getpid()))

        return measured

    base = Steps()
    return Steps(**{f.name: wrap(f.name, getattr(base, f.name)) for f in dataclasses.fields(Steps)})


def run(conn, root: str, out: str, workers: int, mode: str) -> None:
    """One build in this (child) process, with its processes sampled for bytes read and RSS,
    and each step's wall and main-process peak RSS."""
    from pipeline.build import build

    sampler = Sampler()
    cfg = config(root, out, workers)
    steps: dict = {}
    start = time.perf_counter()
    outcome = build(cfg, mode, steps=measured_steps(steps))
    wall = time.perf_counter() - start
    found = sampler.stop()
    found["main_rss"] = max([found["main_rss"], *(rss for _, rss in steps.values())])
    conn.send(
        dict(
            wall=wall,
            records=sum(unit_records(u) for u in outcome.plan.todo),
            written=len(outcome.written),
            steps=steps,
            **found,
        )
    )


def run_plan(conn, root: str, out: str, workers: int, sample_units: int) -> None:
    """Discovery, the plan, a sample of its units spread over it, and the plan again."""
    from pipeline.execute import local_executor, run_units
    from pipeline.plan import discover, make_plan
    from pipeline.sources import registry

    sampler = Sampler()
    cfg = config(root, out, workers)
    Path(out).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sources = discover(cfg, registry())
    found = dict(discover_s=time.perf_counter() - t0, discover_rss=sampler.main_rss())
    with local_executor(cfg) as pool:
        t0 = time.perf_counter()
        plan = make_plan(cfg, sources, pool)
        found.update(plan_s=time.perf_counter() - t0, plan_rss=sampler.main_rss())
        step = max(1, len(plan.todo) // max(1, sample_units))
        sample = plan.todo[::step][:sample_units]
        t0 = time.perf_counter()
        run_units(sample, cfg, pool)
        found.update(
            units=len(plan.units),
            sampled=len(sample),
            sampled_records=sum(u.n_records for u in sample),
            units_s=time.perf_counter() - t0,
        )
        del plan  # a build holds one plan: measure the second without the first
        t0 = time.perf_counter()
        again = make_plan(cfg, sources, pool)
        found.update(replan_s=time.perf_counter() - t0, replan_todo=len(again.todo))
    found["records"] = sum(s.records.height for s in sources)
    conn.send({**found, **sampler.stop()})


def unit_records(unit) -> int:
    """Records of a work unit (whether it carries its rows or a count of them)."""
    return getattr(unit, "n_records", None) or len(unit.records)


def measure(root: Path, out: Path, workers: int, mode: str | int) -> dict:
    """A build (``mode`` full or refresh) or, for an int, :func:`run_plan` with that many sampled
    units, in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    target = run_plan if isinstance(mode, int) else run
    proc = ctx.Process(target=target, args=(child, str(root), str(out), workers, mode))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def report_plan(r: dict) -> None:
    """Print :func:`run_plan`'s figures as a table."""
    rate = r["sampled_records"] / r["units_s"] if r["units_s"] else 0.0
    print("| step | wall s | main peak RSS MiB so far |")
    print("|---|---:|---:|")
    print(
        f"| discovery ({r['records']} records kept) | {r['discover_s']:.1f} "
        f"| {mib(r['discover_rss'])} |"
    )
    print(f"| plan ({r['units']} units) | {r['plan_s']:.1f} | {mib(r['plan_rss'])} |")
    print(
        f"| {r['sampled']} sampled units ({r['sampled_records']} records, {rate:.0f} records/s) "
        f"| {r['units_s']:.1f} | |"
    )
    print(
        f"| plan again ({r['replan_todo']} units to do) | {r['replan_s']:.1f} "
        f"| {mib(r['main_rss'])} |"
    )
    print(
        f"worker peak RSS {mib(r['worker_rss'])} MiB; read {mib(r['read'])} MiB; "
        f"CPU {r['cpu']:.0f} s (all processes)",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", type=Path, help="generate (or reuse) the folder here")
    ap.add_argument("--sums", action="store_true", help="write SHA256SUMS.txt (as PhysioNet does)")
    ap.add_argument("--plan-only", action="store_true", help="discovery, plan and sampled units")
    ap.add_argument("--sample-units", type=int, default=8, help="units run with --plan-only")
    args = ap.parse_args()
    if not (SAMPLE.is_dir() and STATEMENTS.is_file()):
        print(f"needs the real samples under {SHARED}", file=sys.stderr)
        return 2
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="meit-scale-"))
    root, out = tmp / "mimic", tmp / "corpus"
    shutil.rmtree(out, ignore_errors=True)  # a corpus of an earlier run of this benchmark
    try:
        t0 = time.perf_counter()
        if not root.exists():
            generate(root, args.records, args.sums)
        print(f"generated {args.records} studies in {time.perf_counter() - t0:.1f} s")
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.plan_only:
            report_plan(measure(root, out, args.workers, args.sample_units))
            return 0
        print(
            "| run | wall s | CPU s | records processed | records/s | read MiB | main RSS MiB "
            "| worker RSS MiB | shards written |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        steps = [
            ("full build", "full", None),
            ("refresh, nothing changed", "refresh", None),
            ("refresh, one record's data changed", "refresh", lambda: change_one(root)),
            ("refresh, one record added", "refresh", lambda: add_one(root, args.records)),
        ]
        per_step = []
        for label, mode, before in steps:
            if before:
                before()
            r = measure(root, out, args.workers, mode)
            rate = r["records"] / r["wall"] if r["records"] else 0.0
            print(
                f"| {label} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['records']} | {rate:.0f} "
                f"| {mib(r['read'])} | {mib(r['main_rss'])} "
                f"| {mib(r['worker_rss'])} | {r['written']} |",
                flush=True,
            )
            per_step.append((label, r["steps"]))
        print("\nPer step (wall s / main-process peak RSS MiB during the step):")
        names = ["discover", "plan", "execute", "finalise", "validate"]
        print(f"| run | {' | '.join(names)} |")
        print(f"|---|{'---:|' * len(names)}")
        for label, steps in per_step:
            cells = [
                f"{steps[n][0]:.1f} / {mib(steps[n][1])}" if n in steps else "–" for n in names
            ]
            print(f"| {label} | {' | '.join(cells)} |")
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
