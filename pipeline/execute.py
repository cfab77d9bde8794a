"""Execute a plan: process each unit (read, check, condition, render, write one shard) on any
``concurrent.futures.Executor``: a local process pool, a Dask client's executor, or this process.

A unit is resume-safe: its shard is written atomically and then its completion record
(:mod:`pipeline.progress`); a unit already complete under the same plan returns its stored result.
Every input record of a unit ends in a shard row or in its result's rejections.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from pipeline.conditioning import Loaded, condition, load_one
from pipeline.config import BuildConfig
from pipeline.errors import RecordRejected
from pipeline.examples import UnitTools, text_rejection, text_stats, to_table
from pipeline.progress import finished_result, record_completion
from pipeline.reports import ReportText
from pipeline.shards import ShardWriter
from pipeline.storage import as_location
from pipeline.units import UnitResult, WorkUnit
from schemas import Rejection, corpus_schema


def chunks(items: Sequence[dict], size: int) -> Iterator[Sequence[dict]]:
    """Consecutive slices of at most ``size`` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def process_unit(unit: WorkUnit, cfg: BuildConfig, out: Path) -> UnitResult:
    """Read, check, condition, render and write one shard; resume-safe and atomic."""
    out = Path(out)
    previous = finished_result(out, unit)
    if previous is not None:
        return previous
    tools = UnitTools.load(cfg, unit)
    min_words = unit.source.min_report_words(cfg.text)
    rejections: list[Rejection] = []
    texts: dict[str, ReportText] = {}
    templates: Counter = Counter()
    tasks: Counter = Counter()

    def reject(row: dict, reason: str, detail: str) -> None:
        rejections.append(Rejection(unit.name, row["record_id"], reason, detail))

    root = as_location(unit.root)
    records = unit.records  # read from the unit's rows file, once
    shard = out / unit.relpath
    kept = 0
    with ShardWriter(shard, corpus_schema(cfg.signal.n_samples)) as writer:
        for batch in chunks(records, cfg.batch_size):
            groups: dict[tuple[float, int], list[Loaded]] = {}
            for row in batch:
                text = texts[row["record_id"]] = unit.source.clean_report(tools.cleaner, row)
                verdict = text_rejection(text, min_words)
                if verdict is not None:
                    reject(row, *verdict)
                    continue
                try:
                    loaded = load_one(root, row, cfg)
                except RecordRejected as exc:
                    reject(row, exc.reason, exc.detail)
                    continue
                groups.setdefault((loaded.fs, loaded.signal.shape[1]), []).append(loaded)
            for group in groups.values():
                conditioned = condition(group, cfg, reject)
                if conditioned is not None:
                    kept += len(conditioned.rows)
                    table = to_table(conditioned, texts, unit, cfg, tools)
                    templates.update(table.column("template_id").to_pylist())
                    tasks.update(table.column("task").to_pylist())
                    writer.write(table)
    rows = writer.rows
    if rows == 0:
        shard.unlink(missing_ok=True)  # an earlier build's shard of this unit
    result = UnitResult(
        key=unit.key,
        source=unit.name,
        split=unit.split,
        path=unit.relpath,
        rows=rows,
        sha256=writer.sha256,
        inputs=len(records),
        size=writer.size,
        kept=kept,
        rejections=sorted(rejections, key=lambda r: r.record_id),
        templates=dict(sorted(templates.items())),
        tasks=dict(sorted(tasks.items())),
        text=text_stats([texts[r["record_id"]] for r in records if r["record_id"] in texts]),
    )
    try:
        record_completion(out, unit, result)
    except BaseException:
        shard.unlink(missing_ok=True)  # no shard without its record (e.g. the disk filled up)
        raise
    return result


def worker_count(cfg: BuildConfig) -> int:
    """Worker processes to use: the config's, or all cores."""
    return cfg.workers or os.cpu_count() or 1


PARENT_GONE_EXIT = 70
"""A worker's exit status when it quits because the build that started it is gone."""


def exit_with_parent(parent: int, interval_s: float = 0.5) -> None:
    """Make this (worker) process quit when process ``parent`` is gone.

    A pool's initializer: a ``kill -9`` of the build gives its workers no signal, and a worker
    waiting on the pool's queue would wait forever. A daemon thread polls ``os.getppid()`` (the
    worker is re-parented when its parent dies) and ends the process; a temp file it leaves is
    removed by the next build. Polling, not ``prctl(PR_SET_PDEATHSIG)``: that fires when the
    *thread* that started the worker ends, and pools are started from Prefect's task threads.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(PARENT_GONE_EXIT)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextmanager
def local_executor(cfg: BuildConfig) -> Iterator[Executor | None]:
    """A spawn process pool of :func:`worker_count` workers (which quit when this process dies),
    or None when one worker is asked."""
    workers = worker_count(cfg)
    if workers == 1:
        yield None
        return
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        yield pool


def run_units(
    units: Sequence[WorkUnit],
    cfg: BuildConfig,
    executor: Executor | None = None,
    on_done: Callable[[UnitResult], None] | None = None,
) -> list[UnitResult]:
    """Process every unit on ``executor`` (largest first), or in this process when None.

    Results come back in the order the units were submitted.
    """
    results: list[UnitResult] = []
    if executor is None:
        for unit in units:
            results.append(process_unit(unit, cfg, cfg.out))
            if on_done:
                on_done(results[-1])
        return results
    # Largest units first so the pool does not end waiting on one big straggler.
    order = sorted(units, key=lambda u: -u.n_records)
    futures = [executor.submit(process_unit, u, cfg, cfg.out) for u in order]
    try:
        for future in futures:
            results.append(future.result())
            if on_done:
                on_done(results[-1])
    except BaseException:
        for future in futures:  # a failed unit (a full disk) ends the build: start no other
            future.cancel()
        raise
    return results
