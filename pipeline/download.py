"""``meit-corpus download``: fetch a PhysioNet dataset (or a mirror of it), verified file by file.

1. :func:`read_listing` reads ``SHA256SUMS.txt`` at the source root (parsed by
   :func:`pipeline.checksums.sums_frame`); a source that is not there or unreachable is a
   :class:`SourceError` (one line, before any work).
2. :func:`plan_download` hashes the listed files already in the destination (threads: hashlib
   releases the GIL) and keeps those missing, mismatched or partly fetched (``<name>.part``).
3. :func:`download` fetches them in threads through fsspec, so the source may be PhysioNet's
   HTTPS tree, a mirror, an object-store copy or a folder. Each file is read from the byte its
   ``.part`` already holds: fsspec's HTTP file asks ``Range: bytes=<from>-<to>`` for every block
   (s3/gcs files read by ranges too), so a broken transfer resumes instead of starting over. The
   ``.part`` is checked against the listed sha256 and renamed into place; a mismatch starts that
   file again from zero once, then is reported. Transfer errors are retried (resuming).

Only listed files and their ``.part`` are ever written; nothing is deleted but a ``.part`` this
download wrote whose bytes turned out wrong.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import fsspec
import polars as pl

from pipeline.checksums import SUMS_FILE, sums_frame
from pipeline.errors import InputError
from pipeline.physionet import DATASETS
from pipeline.shards import human_bytes, publish, temp_path
from pipeline.storage import join
from schemas import sha256_file

PART = ".part"
CHUNK = 4 << 20
"""Bytes per read: one ranged request each over HTTP (PhysioNet's record files are smaller)."""
WORKERS = 8
RETRIES = 2
_BATCH = 4096  # tasks handed to the thread pool at a time (MIMIC-IV-ECG lists 1.6 M files)

T = TypeVar("T")
R = TypeVar("R")


class SourceError(Exception):
    """The source's ``SHA256SUMS.txt`` cannot be had (not found, unreachable): nothing was fetched."""


@dataclass(frozen=True, slots=True)
class FileTask:
    """One listed file to fetch: why, and what is already on disk."""

    path: str  # relative to the dataset root, POSIX
    sha256: str
    reason: str  # missing | mismatch (a local file with other bytes) | partial (a .part to resume)
    have: int = 0  # bytes already in the .part
    size: int | None = None  # the source's size, when asked (``sizes=True``)


@dataclass(frozen=True)
class DownloadPlan:
    """What a download of ``source`` into ``dest`` would fetch."""

    source: str
    dest: Path
    listed: int
    tasks: tuple[FileTask, ...]

    @property
    def present(self) -> int:
        """Listed files already in ``dest`` with the listed sha256."""
        return self.listed - len(self.tasks)

    @property
    def known_bytes(self) -> int:
        """Bytes still to fetch, over the tasks whose size is known."""
        return sum(max(t.size - t.have, 0) for t in self.tasks if t.size is not None)

    @property
    def unknown_sizes(self) -> int:
        """Tasks whose size the source did not tell."""
        return sum(t.size is None for t in self.tasks)


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one task."""

    path: str
    ok: bool
    fetched: int  # bytes transferred in this run
    resumed_from: int  # bytes the .part held when this run started it
    problem: str = ""


def part_path(target: Path) -> Path:
    """Where ``target`` is written until its sha256 is checked."""
    return target.with_name(target.name + PART)


def source_root(dataset: str, mirror: str | None = None) -> str:
    """Where ``dataset`` is fetched from: ``mirror`` (an fsspec URL or a folder) or PhysioNet."""
    return str(mirror) if mirror else DATASETS[dataset].url


def _filesystem(source: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(source)
    return fs, root.rstrip("/")


def transfer_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a transfer raises for a source or network problem (not a bug)."""
    errors: list[type[BaseException]] = [OSError, ValueError, TimeoutError]
    try:
        import aiohttp

        errors.append(aiohttp.ClientError)
    except ImportError:  # fsspec's HTTP needs aiohttp; other stores do not
        pass
    return tuple(errors)


def is_not_found(exc: BaseException) -> bool:
    """A 404 or a missing file (fsspec's HTTP turns every failed HEAD into FileNotFoundError,
    keeping the HTTP error as the cause; a refused connection is not "not found")."""
    if not isinstance(exc, FileNotFoundError):
        return False
    return exc.__cause__ is None or getattr(exc.__cause__, "status", None) == 404


def problem_line(exc: BaseException) -> str:
    """``exc`` in one line, naming the underlying error."""
    cause = exc.__cause__ if isinstance(exc, FileNotFoundError) and exc.__cause__ else exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__


def read_listing(source: str) -> tuple[bytes, pl.DataFrame]:
    """The bytes of ``source``'s ``SHA256SUMS.txt`` and its (path, sha256) frame.

    :class:`SourceError` when it is not found or cannot be read, :class:`InputError` when it
    does not parse."""
    where = str(join(source, SUMS_FILE))
    fs, root = _filesystem(source)
    try:
        raw = fs.cat_file(f"{root}/{SUMS_FILE}")
    except transfer_errors() as exc:
        if is_not_found(exc):
            raise SourceError(
                f"{where}: not found (check the dataset, or the --from URL)"
            ) from None
        raise SourceError(f"{where}: cannot be read ({problem_line(exc)})") from None
    frame = sums_frame(raw, where)
    return raw, frame.filter(pl.col("path") != SUMS_FILE).sort("path")


def _threaded(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` threads, in order, never holding more than a batch of
    futures (a pool's ``map`` submits everything at once)."""
    batch: list[T] = []
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for item in items:
            batch.append(item)
            if len(batch) == _BATCH:
                yield from pool.map(fn, batch)
                batch = []
        yield from pool.map(fn, batch)
    finally:  # Ctrl-C: files in flight finish (their .part stays), queued ones never start
        pool.shutdown(wait=True, cancel_futures=True)


def local_task(dest: Path, path: str, sha256: str) -> FileTask | None:
    """None when ``dest/path`` holds the listed bytes, else the task that fetches it."""
    target = dest / path
    if target.is_file() and sha256_file(target) == sha256:
        return None
    part = part_path(target)
    if part.is_file():
        return FileTask(path, sha256, "partial", have=part.stat().st_size)
    return FileTask(path, sha256, "mismatch" if target.exists() else "missing")


def _sized(fs: fsspec.AbstractFileSystem, root: str, task: FileTask) -> FileTask:
    try:
        size = fs.info(f"{root}/{task.path}").get("size")
    except transfer_errors():
        size = None
    return FileTask(task.path, task.sha256, task.reason, task.have, size)


def plan_download(
    source: str,
    dest: Path,
    listing: pl.DataFrame,
    workers: int = WORKERS,
    sizes: bool = False,
    on_checked: Callable[[int], None] = lambda n: None,
) -> DownloadPlan:
    """The files of ``listing`` that ``dest`` lacks or holds with other bytes (``on_checked``
    after each file looked at); with ``sizes``, each one's size at the source (one HEAD or
    ``fs.info`` each, in ``workers`` threads)."""
    dest = Path(dest)
    base = str(dest)
    tasks: list[FileTask] = []
    present: list[tuple[str, str]] = []  # to hash: stat-only checks are 7x faster unthreaded
    for path, sha256 in listing.select("path", "sha256").iter_rows():
        target = os.path.join(base, path)
        if os.path.isfile(target):
            present.append((path, sha256))
        elif os.path.isfile(target + PART):
            tasks.append(FileTask(path, sha256, "partial", os.path.getsize(target + PART)))
        else:
            tasks.append(
                FileTask(path, sha256, "mismatch" if os.path.exists(target) else "missing")
            )
    on_checked(listing.height - len(present))

    def check(row: tuple[str, str]) -> FileTask | None:
        task = local_task(dest, *row)
        on_checked(1)
        return task

    tasks += [t for t in _threaded(check, present, workers) if t is not None]
    tasks.sort(key=lambda t: t.path)
    if sizes and tasks:
        fs, root = _filesystem(source)
        tasks = list(_threaded(lambda t: _sized(fs, root, t), tasks, workers))
    return DownloadPlan(source, dest, listing.height, tuple(tasks))


def _copy(src, part: Path, start: int, chunk: int, on_bytes: Callable[[int], None]) -> int:
    """Append ``src`` from byte ``start`` to ``part`` (cut to ``start`` first); bytes copied."""
    if start:
        src.seek(start)
    copied = 0
    with open(part, "r+b" if start else "wb") as out:
        out.seek(start)
        out.truncate()
        while data := src.read(chunk):
            out.write(data)
            copied += len(data)
            on_bytes(len(data))
    return copied


def transfer(
    fs: fsspec.AbstractFileSystem,
    remote: str,
    part: Path,
    chunk: int = CHUNK,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_size: Callable[[int | None], None] = lambda n: None,
) -> int:
    """Fetch ``remote`` into ``part``, continuing after the bytes ``part`` holds (ranged reads).
    A source that serves no ranges (fsspec's ValueError) is streamed from zero. ``on_size`` gets
    the bytes this transfer expects to copy (None: unknown). Bytes copied."""
    have = part.stat().st_size if part.is_file() else 0
    with fs.open(remote, "rb", block_size=chunk, cache_type="none") as src:
        size = getattr(src, "size", None)
        start = have if size is None or have <= size else 0  # longer: not a prefix of this file
        on_size(None if size is None else size - start)
        try:
            return _copy(src, part, start, chunk, on_bytes)
        except ValueError:
            if start == 0 and not part.stat().st_size:
                raise
    with fs.open(remote, "rb", block_size=0) as src:  # no ranges: one streamed GET from zero
        return _copy(src, part, 0, chunk, on_bytes)


def fetch_file(
    fs: fsspec.AbstractFileSystem,
    remote: str,
    target: Path,
    task: FileTask,
    chunk: int = CHUNK,
    retries: int = RETRIES,
    backoff_s: float = 1.0,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_size: Callable[[int | None], None] = lambda n: None,
) -> FileOutcome:
    """Fetch one listed file into ``target``: resume its ``.part``, check the sha256, rename.

    A transfer error is retried ``retries`` times (each resuming); a wrong sha256 discards the
    ``.part`` and fetches once more from zero. The outcome says what failed, in one line."""
    part = part_path(target)
    part.parent.mkdir(parents=True, exist_ok=True)
    resumed_from = part.stat().st_size if part.is_file() else 0
    fetched, failures, fresh = 0, 0, False
    told: list[int | None] = []

    def tell_once(size: int | None) -> None:  # the first attempt's size is the one to show
        if not told:
            told.append(size)
            on_size(size)

    def outcome(ok: bool, problem: str = "") -> FileOutcome:  # a restart from zero saved nothing
        return FileOutcome(task.path, ok, fetched, 0 if fresh else resumed_from, problem)

    while True:
        try:
            fetched += transfer(fs, remote, part, chunk, on_bytes, tell_once)
        except transfer_errors() as exc:
            if is_not_found(exc):
                return outcome(False, "not found at the source")
            failures += 1
            if failures > retries:
                kept = part.stat().st_size if part.is_file() else 0
                return outcome(
                    False,
                    f"{problem_line(exc)} ({failures} tries; {kept} bytes kept in "
                    f"{part.name}, the next run resumes there)",
                )
            time.sleep(backoff_s * failures)
            continue
        digest = sha256_file(part)
        if digest == task.sha256:
            publish(part, target)
            return outcome(True)
        part.unlink()
        if fresh:
            return outcome(False, f"sha256 {digest}, {SUMS_FILE} lists {task.sha256}")
        fresh = True  # the .part or the transfer was bad: once more from zero


def write_listing(dest: Path, raw: bytes) -> None:
    """Put the source's ``SHA256SUMS.txt`` into ``dest`` (atomically), for ``verify-inputs`` and
    the build's fingerprints."""
    target = Path(dest) / SUMS_FILE
    if target.is_file() and target.read_bytes() == raw:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    tmp.write_bytes(raw)
    publish(tmp, target)


def download(
    plan: DownloadPlan,
    workers: int = WORKERS,
    chunk: int = CHUNK,
    retries: int = RETRIES,
    backoff_s: float = 1.0,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_size: Callable[[int | None], None] = lambda n: None,
    on_file: Callable[[FileOutcome], None] = lambda o: None,
) -> list[FileOutcome]:
    """Run ``plan`` on ``workers`` threads; one outcome per task, in the plan's order."""
    fs, root = _filesystem(plan.source)

    def one(task: FileTask) -> FileOutcome:
        remote, target = f"{root}/{task.path}", plan.dest / task.path
        done = fetch_file(fs, remote, target, task, chunk, retries, backoff_s, on_bytes, on_size)
        on_file(done)
        return done

    return list(_threaded(one, plan.tasks, workers))


def check_dest(dest: Path) -> None:
    """:class:`InputError` when ``dest`` exists and is not a folder."""
    if Path(dest).exists() and not Path(dest).is_dir():
        raise InputError(f"--to {dest} exists and is not a folder")


# ---- terminal presentation -------------------------------------------------------------


def plan_lines(plan: DownloadPlan) -> list[str]:
    """``--dry-run``: one line per file to fetch (size, why, path), then the totals."""
    lines = []
    for t in plan.tasks:
        size = "?" if t.size is None else human_bytes(max(t.size - t.have, 0))
        why = f"resume from {human_bytes(t.have)}" if t.reason == "partial" else t.reason
        lines.append(f"{size:>10}  {why:<20}  {t.path}")
    unknown = f" (+ {plan.unknown_sizes} of unknown size)" if plan.unknown_sizes else ""
    lines.append(
        f"would fetch {len(plan.tasks)} of {plan.listed} listed files, "
        f"{human_bytes(plan.known_bytes)}{unknown}, from {plan.source} into {plan.dest}; "
        f"{plan.present} already present with the listed sha256"
    )
    return lines


def result_lines(plan: DownloadPlan, outcomes: Sequence[FileOutcome]) -> tuple[list[str], bool]:
    """One line per failed file and a summary; whether every listed file is now in place."""
    failed = [o for o in outcomes if not o.ok]
    lines = [f"✗ {o.path}: {o.problem}" for o in failed]
    fetched = sum(o.fetched for o in outcomes)
    resumed = [o for o in outcomes if o.resumed_from]
    saved = sum(o.resumed_from for o in resumed)
    resume = f", {len(resumed)} resumed ({human_bytes(saved)} not fetched again)" if resumed else ""
    verdict = "✓" if not failed else "✗"
    lines.append(
        f"{verdict} {len(outcomes) - len(failed)} fetched ({human_bytes(fetched)}{resume}), "
        f"{plan.present} already present, {len(failed)} failed; {plan.listed} files listed in "
        f"{SUMS_FILE}, in {plan.dest}"
    )
    if failed:
        lines.append("run the same command again to fetch the failed files (partial ones resume)")
    return lines, not failed
