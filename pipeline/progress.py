"""The build's own state in the corpus folder: the checks on ``out``, the build lock, stray temp
files, and completion records.

Before any work a build checks that ``out`` is a writable folder apart from every input, that it
is empty, new or a corpus, and that no file in the corpus's own folders was put there by someone
else; then it takes the lock (:func:`build_lock`) and removes the temp files of killed runs.

A unit that finished writes ``_build/<shard path>.json`` after its shard. A rerun (or a refresh)
keeps a unit only when its completion record has the plan's key and its shard's size and sha256
are the recorded ones; anything else (no record, a record that does not parse or belongs to
another plan, a missing, truncated or altered shard) is rebuilt. Nothing on disk is trusted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from pipeline.errors import InputError
from pipeline.shards import file_digest, is_temp, write_text_atomic
from pipeline.units import UnitResult, WorkUnit
from schemas import (
    CARD,
    DATA_DIR,
    FINGERPRINTS,
    MANIFEST,
    MEIT_DIR,
    META_DIR,
    PROGRESS_DIR,
    REJECTIONS,
    REPORT_DIR,
    SPLITS,
    Manifest,
    meit_jsonl_path,
    parse_shard_path,
    read_manifest,
    source_dir,
)

LOCK_FILE = ".build.lock"
"""Held (``flock`` through ``filelock``) by the one build writing the folder."""
HOLDER_FILE = ".build.pid"
"""The pid of the build holding the lock (a lock file's own bytes are not safe to write)."""

# ---------------------------------------------------------------- completion records


def completion_path(out: Path, unit: WorkUnit) -> Path:
    """Where a unit's completion record lives."""
    return Path(out) / PROGRESS_DIR / f"{unit.relpath}.json"


def shard_matches(out: Path, result: UnitResult) -> bool:
    """True when the result's shard on disk has the recorded size and sha256 (size first: a
    ``stat`` rules out most damage without reading the file)."""
    shard = Path(out) / result.path
    try:
        if not shard.is_file() or shard.stat().st_size != result.size:
            return False
        return file_digest(shard) == (result.size, result.sha256)
    except OSError:
        return False


def finished_result(out: Path, unit: WorkUnit) -> UnitResult | None:
    """The stored result of a unit already done under the same plan, if its shard is intact."""
    done = completion_path(out, unit)
    try:
        result = UnitResult.from_json(done.read_text())
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    # Finalising may have renumbered the shard (no gaps per split): any shard path of the unit's
    # source and split, holding the recorded bytes.
    ref = parse_shard_path(result.path)
    if result.key != unit.key or ref is None or (ref.source, ref.split) != (unit.name, unit.split):
        return None
    if result.rows and not shard_matches(out, result):
        return None
    return result


def finished_results(
    out: Path, units: Sequence[WorkUnit], threads: int | None = None
) -> list[UnitResult | None]:
    """:func:`finished_result` of each unit (same order), the shards hashed ``threads`` at a time
    (default: one per core). Threads, not processes: file reads and ``hashlib`` on large buffers
    release the GIL, so a rerun checks every finished shard's sha256 on all cores at no start-up
    cost (a 940 MB corpus: see the README's speed section)."""
    threads = threads or os.cpu_count() or 1
    if threads == 1 or len(units) < 2:
        return [finished_result(out, unit) for unit in units]
    with ThreadPoolExecutor(min(threads, len(units)), thread_name_prefix="verify") as pool:
        return list(pool.map(lambda unit: finished_result(out, unit), units))


def record_completion(out: Path, unit: WorkUnit, result: UnitResult) -> None:
    """Write a unit's completion record (atomically, after its shard)."""
    write_text_atomic(completion_path(out, unit), result.to_json())


# ---------------------------------------------------------------- the output folder


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def overlap(out: Path, folder: Path) -> str | None:
    """How ``out`` overlaps an input ``folder`` (``is``, ``contains``, ``lies inside``), or None.

    Symbolic links are resolved first, so a link to the input is the input.
    """
    o, f = _resolved(out), _resolved(folder)
    if o == f:
        return "is"
    if o in f.parents:
        return "contains"
    if f in o.parents:
        return "lies inside"
    return None


def corpus_folders(out: Path, sources: Iterable[str]) -> list[Path]:
    """The folders a build writes into under ``out``: one per source, ``data/``, MEIT's jsonl,
    ``meta/``, progress (last)."""
    return [Path(out) / source_dir(s) for s in sorted(set(sources))] + [
        Path(out) / DATA_DIR,
        Path(out) / MEIT_DIR,
        Path(out) / META_DIR,
        Path(out) / PROGRESS_DIR,
    ]


def check_out(out: Path, inputs: Mapping[str, object], sources: Iterable[str]) -> None:
    """Refuse (:class:`InputError`, one line) an ``out`` that overlaps an input folder (itself or
    one of the corpus's folders in it, links resolved), that is a file, or that is a folder
    with files of its own and no corpus. ``inputs`` maps names to local folders (URLs skipped)."""
    out = Path(out)
    for name, root in inputs.items():
        if isinstance(root, str) and "://" in root:
            continue
        for folder in [out, *corpus_folders(out, sources)]:
            how = overlap(folder, Path(root))
            if how is not None:
                where = "out" if folder == out else f"out's folder {folder.name}"
                raise InputError(
                    f"{where} {folder} {how} the {name} input folder {root}: "
                    "write the corpus to a folder apart from its inputs"
                )
    if out.exists() and not out.is_dir():
        raise InputError(f"out {out} is a file, not a folder")
    if out.is_dir() and not (out / MANIFEST).is_file():
        # the build's top-level names (and a killed first build's of the layout before data/);
        # a card only beside build records (a killed build writes it before its manifest)
        mine = set(sources) | {DATA_DIR, META_DIR, PROGRESS_DIR, REPORT_DIR, "meit"}
        mine |= {"rejections.parquet", "fingerprints.parquet"}
        if (out / PROGRESS_DIR).is_dir():
            mine.add(CARD)
        others = sorted(
            p.name for p in out.iterdir() if not p.name.startswith(".") and p.name not in mine
        )
        if others:
            raise InputError(
                f"out {out} holds files that are not a corpus ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}): give an empty or new folder"
            )


def create_out(out: Path) -> None:
    """Create ``out`` and its parents, or refuse in one line (a file in the way, read-only).
    Whether a file can be written in it, the build lock's file tells (:func:`build_lock`)."""
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"out {out} cannot be written: {exc.strerror or exc}") from exc


def discard_if_unused(out: Path) -> None:
    """Remove ``out`` again when it holds nothing but the lock (a build created it, then
    stopped before writing): a refused build leaves no folder behind."""
    out = Path(out)
    try:
        if {p.name for p in out.iterdir()} <= {LOCK_FILE, HOLDER_FILE}:
            for name in (HOLDER_FILE, LOCK_FILE):
                (out / name).unlink(missing_ok=True)
            out.rmdir()
    except OSError:
        pass


@contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold the corpus folder's build lock, or refuse at once in one line naming the holder.

    A second build of the same folder does not wait: it would only redo or undo the first one's
    work. The lock is an ``flock``, so a killed build leaves no lock behind.
    """
    out = Path(out)
    lock = FileLock(str(out / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise InputError(
            f"out {out} is being written by another build ({lock_holder(out)}); "
            "wait for it to finish or give another out"
        ) from None
    except OSError as exc:
        raise InputError(f"out {out} cannot be written: {exc.strerror or exc}") from exc
    try:
        write_text_atomic(out / HOLDER_FILE, f"{os.getpid()}\n")
        yield
    finally:
        (out / HOLDER_FILE).unlink(missing_ok=True)
        lock.release()


@contextmanager
def claim_out(out: Path, sources: Iterable[str]) -> Iterator[None]:
    """Create ``out`` (or refuse: not writable), hold its build lock, remove the temp files of
    killed runs and refuse files no build wrote; a folder this call created and nothing else
    wrote into is removed again when the build fails."""
    out, sources = Path(out), set(sources)
    fresh = not out.exists()
    create_out(out)
    try:
        with build_lock(out):
            clean_stray_temps(out, sources)
            refuse_foreign(out, sources)
            yield
    except BaseException:
        if fresh:
            discard_if_unused(out)
        raise


def lock_holder(out: Path) -> str:
    """``pid N`` of the build holding ``out``'s lock, as it recorded itself."""
    try:
        return f"pid {int((Path(out) / HOLDER_FILE).read_text().strip())}"
    except (OSError, ValueError):
        return "pid unknown"


def clean_stray_temps(out: Path, sources: Iterable[str]) -> list[str]:
    """Delete the temp files (:func:`pipeline.shards.is_temp` names only) that killed runs left in
    ``out`` and the corpus's folders; return their paths relative to ``out``. Call it holding
    the build lock: then no writer of this folder is alive."""
    out = Path(out)
    folders = [out, *corpus_folders(out, sources)]
    folders += [
        d
        for pattern in ("*", f"{DATA_DIR}/*")
        for d in (out / PROGRESS_DIR).glob(pattern)
        if d.is_dir() and not d.is_symlink()
    ]
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if is_temp(path) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path.relative_to(out).as_posix())
    return removed


def recorded_shards(out: Path, sources: Iterable[str]) -> set[str]:
    """Shards named by completion records in ``_build/`` (written by a build of this folder):
    each record's planned path and the path it records (finalising may have renumbered it)."""
    progress = Path(out) / PROGRESS_DIR
    found = set()
    for s in sources:
        for p in (progress / source_dir(s)).glob("*.json"):
            if is_temp(p):
                continue
            found.add(f"{source_dir(s)}/{p.name.removesuffix('.json')}")
            try:
                path = UnitResult.from_json(p.read_text()).path
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                continue
            ref = parse_shard_path(path)
            if ref is not None and ref.source == s:
                found.add(path)
    return found


def previous_manifest(out: Path) -> Manifest | None:
    """The corpus's current manifest, or None when there is none (or it does not parse)."""
    try:
        return read_manifest(Path(out))
    except (OSError, ValueError):
        return None


def listed_files(out: Path) -> set[str]:
    """Files listed by the corpus's manifest (shards, ledger, jsonl, fingerprints, card)."""
    manifest = previous_manifest(out)
    return {f.path for f in manifest.listed()} if manifest else set()


def manifest_sources(out: Path) -> set[str]:
    """Sources of the corpus's manifest (none when it has none)."""
    manifest = previous_manifest(out)
    return set(manifest.counts) if manifest else set()


def foreign_files(out: Path, sources: Iterable[str]) -> list[str]:
    """Files no build of this corpus wrote: in its own folders (``<source>/``, ``meit/``), and
    Parquet or jsonl files anywhere under ``out`` (what validation would find unlisted).

    A build's own files are those its manifest lists, those its completion records name, the
    ledger and fingerprints, and names the pipeline gives its shards and jsonl in their folders.
    Other hidden names (``.DS_Store``, temps) in the corpus's folders are not reported.
    """
    out = Path(out)
    sources = set(sources)
    ours = listed_files(out) | recorded_shards(out, sources) | {REJECTIONS, FINGERPRINTS}
    ours |= {meit_jsonl_path(s, split) for s in sources for split in SPLITS}
    ours |= {source_dir(s) for s in sources} | {MEIT_DIR}
    found = set()
    for folder in corpus_folders(out, sources)[:-1]:
        if folder.is_dir():
            found |= {p for p in folder.iterdir() if not p.name.startswith(".")}
    if out.is_dir():
        found |= {p for pattern in ("*.parquet", "*.jsonl") for p in out.rglob(pattern)}
    return sorted(
        rel
        for rel in (p.relative_to(out).as_posix() for p in found)
        if rel not in ours and not _shard_named(out, rel, sources)
    )


def _shard_named(out: Path, rel: str, sources: set[str]) -> bool:
    """True for a file named as the pipeline names shards, directly in a source's folder: the
    pipeline's, even when a kill came between its rename and its completion record."""
    ref = parse_shard_path(rel)
    return (
        ref is not None
        and ref.source in sources
        and ref.split in SPLITS
        and (Path(out) / rel).is_file()
    )


def refuse_foreign(out: Path, sources: Iterable[str]) -> None:
    """Refuse (one line) a corpus folder holding files no build of it wrote."""
    found = foreign_files(out, sources)
    if found:
        raise InputError(
            f"out {out} holds {', '.join(found[:3])}{', ...' if len(found) > 3 else ''}, "
            "which no build of this corpus wrote: move it out (a build deletes only its own files)"
        )
