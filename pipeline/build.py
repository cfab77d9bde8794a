"""The one orchestrator: ``build(cfg, mode, executor)`` = discover -> plan -> execute -> finalise ->
validate. The CLI calls it directly; the Prefect flow calls it with each step wrapped in a task.

A fresh build is a plan against nothing; a rerun resumes a killed build; a refresh rewrites only
the shards whose records or inputs changed (``mode="refresh"`` writes nothing at all when nothing
changed, ``"full"`` always finalises). One executor (a local process pool unless one is given,
e.g. a Dask client's) fingerprints the inputs and then processes the units.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.config import BuildConfig
from pipeline.errors import InputError
from pipeline.execute import local_executor, run_units
from pipeline.finalise import finalise, validate_corpus
from pipeline.plan import Plan, discover, make_plan
from pipeline.sources import Source, registry
from pipeline.units import SourceInput, UnitResult
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
    validate: Callable[[Path], list[str]] = validate_corpus


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
    sources = steps.discover(cfg, registry(extra_sources))
    with nullcontext(executor) if executor is not None else local_executor(cfg) as pool:
        plan = steps.plan(cfg, sources, pool)
        if mode == "refresh" and plan.nothing_to_do:
            return BuildOutcome(plan, None, [])
        if on_plan:
            on_plan(sum(len(u.records) for u in plan.todo))
        results = steps.execute(plan.todo, cfg, pool, on_done) if plan.todo else []
    manifest = steps.finalise(cfg, plan, results, mode)
    problems = steps.validate(cfg.out)
    if problems:
        raise CorpusInvalid("corpus is not valid: " + "; ".join(problems))
    return BuildOutcome(plan, manifest, sorted(r.path for r in results if r.rows))


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
