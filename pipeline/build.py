"""The one orchestrator: ``build(cfg, mode, executor)`` = discover -> plan -> execute -> finalise ->
validate. The CLI calls it directly; the Prefect flow calls it with each step wrapped in a task.

A fresh build is a plan against nothing; a rerun resumes a killed build; a refresh rewrites only
the shards whose records or inputs changed (``mode="refresh"`` writes nothing at all when nothing
changed, ``"full"`` always finalises). One executor (a local process pool unless one is given,
e.g. a Dask client's) fingerprints the inputs and then processes the units.

Before any work ``out`` is checked (:func:`pipeline.progress.check_out`: apart from every input,
a folder, writable, new or empty or a corpus, no file in its folders that no build wrote; no
source of the corpus on disk left without an input unless ``cfg.replace``, :func:`refuse_stale`)
and locked: a second build of the same folder exits at once with one line naming the holder's pid,
rather than wait (it would only redo or undo the first one's work). A full disk anywhere ends the
build with :class:`pipeline.shards.DiskFull`: what was being written and about how much space the
rest needs; no temp file is left, and the same build run again resumes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.config import BuildConfig
from pipeline.errors import InputError
from pipeline.execute import local_executor, run_units
from pipeline.finalise import finalise
from pipeline.plan import Plan, discover, make_plan
from pipeline.progress import check_out, claim_out, finished_result, manifest_sources
from pipeline.shards import DiskFull
from pipeline.sources import Source, registry
from pipeline.units import SourceInput, UnitResult
from pipeline.validate import validate_build
from schemas import Manifest

Mode = Literal["full", "refresh"]


class CorpusInvalid(RuntimeError):
    """The finished corpus does not match its manifest (a bug or a disk problem, never input)."""


@dataclass(frozen=True)
class Steps:
    """The steps of a build. The defaults are the pipeline's functions; the Prefect flow passes
    the same functions wrapped in tasks, so both paths share this module's control flow."""

    discover: Callable[[BuildConfig, Mapping[str, Source]], list[SourceInput]] = discover
    plan: Callable[[BuildConfig, list[SourceInput], Executor | None], Plan] = make_plan
    execute: Callable[..., list[UnitResult]] = run_units
    finalise: Callable[[BuildConfig, Plan, list[UnitResult], str], Manifest] = finalise
    validate: Callable[[Path], list[str]] = validate_build  # what this build wrote in full


@dataclass(frozen=True)
class BuildOutcome:
    """What a build did: its plan, the manifest (None when a refresh found nothing to do), and
    the shards it wrote."""

    plan: Plan
    manifest: Manifest | None
    written: list[str]


def build(
    cfg: BuildConfig,
    mode: Mode = "full",
    executor: Executor | None = None,
    steps: Steps = Steps(),
    extra_sources: Sequence[Source] = (),
    on_plan: Callable[[int], None] | None = None,
    on_done: Callable[[UnitResult], None] | None = None,
) -> BuildOutcome:
    """Bring ``cfg.out`` up to date with the inputs of ``cfg`` and validate it.

    ``extra_sources`` are sources beyond :data:`pipeline.sources.BUILTIN`; ``on_plan`` gets the
    number of records to process, ``on_done`` each unit's result as it finishes.
    """
    if not cfg.inputs():
        raise InputError("no input: give a PTB-XL and/or a MIMIC-IV-ECG folder")
    out = Path(cfg.out)
    names = set(cfg.inputs()) | {s.name for s in extra_sources} | manifest_sources(out)
    check_out(out, input_folders(cfg), names)
    refuse_stale(cfg)
    with claim_out(out, names):
        plan: Plan | None = None
        try:
            sources = steps.discover(cfg, registry(extra_sources))
            with nullcontext(executor) if executor is not None else local_executor(cfg) as pool:
                plan = steps.plan(cfg, sources, pool)
                if mode == "refresh" and plan.nothing_to_do:
                    return BuildOutcome(plan, None, [])
                if on_plan:
                    on_plan(sum(u.n_records for u in plan.todo))
                results = steps.execute(plan.todo, cfg, pool, on_done) if plan.todo else []
            manifest = steps.finalise(cfg, plan, results, mode)
        except DiskFull as exc:
            raise with_estimate(exc, cfg, plan) from exc
        problems = steps.validate(cfg.out)
    if problems:
        raise CorpusInvalid("corpus is not valid: " + "; ".join(problems))
    return BuildOutcome(plan, manifest, manifest.refreshes[-1].written)


def stale_sources(cfg: BuildConfig) -> list[str]:
    """Sources whose shards the corpus on disk holds and this build has no input for."""
    return sorted(manifest_sources(Path(cfg.out)) - set(cfg.inputs()))


def refuse_stale(cfg: BuildConfig) -> None:
    """Refuse (one line) a build that would leave, or silently remove, an earlier build's shards
    of sources it no longer builds; with ``cfg.replace`` they are removed when finalising."""
    stale = stale_sources(cfg)
    if stale and not cfg.replace:
        names = " and ".join(stale)
        raise InputError(
            f"out {cfg.out} holds {names} shards of an earlier build and this build has no "
            f"{names} input: give its input again, or pass --replace (config replace: true) "
            "to remove them"
        )


def input_folders(cfg: BuildConfig) -> dict[str, Path | str]:
    """Every input folder of ``cfg`` by name (the sources, and a local MarianMT model)."""
    folders = dict(cfg.inputs())
    if cfg.text.marian_model is not None:
        folders["text.marian_model"] = cfg.text.marian_model
    return folders


FINALISE_BYTES_PER_RECORD = 1024
"""Room for a record's share of the ledger, fingerprints, manifest, card and MEIT jsonl (an upper
bound: the real PTB-XL sample needs about 300 bytes a record with the jsonl)."""
FINALISE_BYTES = 64 * 1024
"""And for the files finalising writes whatever their size (a file takes whole disk blocks)."""


def space_needed(cfg: BuildConfig, plan: Plan) -> tuple[int, int]:
    """(bytes, records) the rest of the build still has to write: the records of every unit
    without an intact shard, at the bytes per record of the shards already written plus a quarter
    (12 leads of float16, uncompressed, when none is), plus the files written when finalising."""
    out = Path(cfg.out)
    left, written = 0, []
    for unit in plan.units:
        result = finished_result(out, unit)
        if result is None:
            left += unit.n_records
        elif result.rows:
            written.append(result)
    if written:
        per_record = 1.25 * sum(r.size for r in written) / max(1, sum(r.inputs for r in written))
    else:
        per_record = 2 * 12 * cfg.signal.n_samples * cfg.text.examples_per_record
    seen = sum(s.seen for s in plan.sources)
    return int(left * per_record + seen * FINALISE_BYTES_PER_RECORD + FINALISE_BYTES), left


def with_estimate(exc: DiskFull, cfg: BuildConfig, plan: Plan | None) -> DiskFull:
    """``exc`` with the space the rest of the build needs and the space free (when planned)."""
    if plan is None:
        return exc
    needed, left = space_needed(cfg, plan)
    try:
        free = shutil.disk_usage(cfg.out).free
    except OSError:
        free = 0
    return DiskFull(exc.path, exc.reason, needed=needed, free=free, records_left=left)


def build_corpus(
    cfg: BuildConfig,
    on_done: Callable[[UnitResult], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    extra_sources: Sequence[Source] = (),
) -> Manifest:
    """``build(cfg, "full")``'s manifest: build, resume, or bring up to date, then validate."""
    outcome = build(cfg, "full", extra_sources=extra_sources, on_plan=on_plan, on_done=on_done)
    assert outcome.manifest is not None  # mode "full" always finalises
    return outcome.manifest
