"""The ``build-corpus`` Prefect flow: thin tasks over :mod:`pipeline` (no signal or text logic).

discover -> plan (fingerprints, units to do) -> process units -> finalise (ledger, manifest, card,
fingerprints, refresh history) -> validate -> a markdown artifact with the counts.

Units run in a local process pool (``pipeline.build.run_units``) or, when ``dask_address`` names a
Dask scheduler, one Prefect task per unit on that cluster through prefect-dask's ``DaskTaskRunner``.
Tasks exchange paths, ids and metadata rows, never signal arrays. Correctness rests on the
pipeline's atomic writes and completion records (a killed run resumes), not on Prefect's caching,
which is off (``NO_CACHE``).

Run directly: ``python -m flows.build_corpus --config build.yaml [--mode refresh]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.build import SourceInput, UnitResult, WorkUnit, discover, process_unit, run_units
from pipeline.config import BuildConfig, load_config
from pipeline.corpus import validate_corpus
from pipeline.refresh import RefreshPlan, finalise_refresh, plan_refresh
from schemas import Manifest

IO_RETRIES = {"retries": 2, "retry_delay_seconds": 5}


@task(name="discover", cache_policy=NO_CACHE, **IO_RETRIES)
def discover_task(config: BuildConfig) -> list[SourceInput]:
    """List every source's records (metadata only), with splits and metadata rejections."""
    sources = discover(config)
    log = get_run_logger()
    for s in sources:
        log.info("%s: %d records seen, %d rejected on metadata", s.name, s.seen, len(s.rejections))
    return sources


@task(name="plan", cache_policy=NO_CACHE, **IO_RETRIES)
def plan_task(config: BuildConfig, sources: list[SourceInput]) -> RefreshPlan:
    """Fingerprint the inputs, plan the units and compare with the corpus on disk."""
    plan = plan_refresh(config, sources)
    c = plan.changes
    get_run_logger().info(
        "%d units planned, %d to write, %d kept; records added %d, changed %d, removed %d%s",
        len(plan.units),
        len(plan.todo),
        len(plan.done),
        len(c.added),
        len(c.changed),
        len(c.removed),
        "; config changed" if plan.config_changed else "",
    )
    return plan


@task(
    name="process-unit",
    cache_policy=NO_CACHE,
    task_run_name="unit {unit.source}/{unit.split}-{unit.index}",
    **IO_RETRIES,
)
def process_unit_task(unit: WorkUnit, config: BuildConfig, out: str) -> UnitResult:
    """Read, condition, render and write one shard (atomic; skipped when already complete)."""
    result = process_unit(unit, config, Path(out))
    get_run_logger().info(
        "%s: %d rows, %d rejected", result.path, result.rows, len(result.rejections)
    )
    return result


@task(name="process-units", cache_policy=NO_CACHE, **IO_RETRIES)
def process_units_local(units: list[WorkUnit], config: BuildConfig) -> list[UnitResult]:
    """All units in a local process pool (``config.workers``, 0 = all cores)."""
    log = get_run_logger()
    return run_units(
        units,
        config,
        config.out,
        on_done=lambda r: log.info("%s: %d rows, %d rejected", r.path, r.rows, len(r.rejections)),
    )


@flow(name="process-units-dask")
def process_units_dask(units: list[WorkUnit], config: BuildConfig) -> list[UnitResult]:
    """One task per unit on the Dask cluster this subflow's task runner points at."""
    futures = process_unit_task.map(units, unmapped(config), unmapped(str(config.out)))
    return [f.result() for f in futures]


@task(name="finalise", cache_policy=NO_CACHE, **IO_RETRIES)
def finalise_task(
    config: BuildConfig,
    sources: list[SourceInput],
    plan: RefreshPlan,
    results: list[UnitResult],
    mode: str,
) -> Manifest:
    """Write the rejection ledger, fingerprints, manifest (with refresh history) and card."""
    return finalise_refresh(config, sources, plan, results, mode)


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(out: str) -> list[str]:
    """Checksums, schema and counts of the written corpus; raises when anything is wrong."""
    problems = validate_corpus(Path(out))
    if problems:
        raise RuntimeError("corpus is not valid: " + "; ".join(problems))
    return problems


def counts_markdown(manifest: Manifest | None, plan: RefreshPlan, out: str) -> str:
    """The artifact: kept per split, rejected per reason, and what this run changed (no links)."""
    lines = [f"# Corpus `{out}`", ""]
    c = plan.changes
    lines += [
        f"Records added {len(c.added)}, changed {len(c.changed)}, removed {len(c.removed)}; "
        f"shards written {len(plan.todo)}, kept {len(plan.done)}, "
        f"removed {len(plan.stale_shards)}.",
        "",
    ]
    if manifest is None:
        return "\n".join(lines + ["Nothing changed: no file was written."])
    lines += ["| source | seen | split | kept |", "|---|---:|---|---:|"]
    for name, counts in manifest.counts.items():
        for split, n in counts.kept.items():
            lines.append(f"| {name} | {counts.seen} | {split} | {n} |")
    lines += ["", "| source | reason | rejected |", "|---|---|---:|"]
    for name, counts in manifest.counts.items():
        for reason, n in counts.rejected.items():
            lines.append(f"| {name} | {reason} | {n} |")
    rows = sum(f.rows for f in manifest.files)
    lines += [
        "",
        f"{len(manifest.files)} shards, {rows} rows, schema {manifest.schema_version}, "
        f"{manifest.fs} Hz x {manifest.n_samples} samples, "
        f"config {manifest.config_hash[:12]}.",
    ]
    return "\n".join(lines)


@flow(name="build-corpus", log_prints=True)
def build_corpus_flow(
    config: BuildConfig, mode: Literal["full", "refresh"] = "full", dask_address: str | None = None
) -> dict:
    """Build (``full``) or incrementally refresh (``refresh``) the corpus described by ``config``.

    ``full`` always finalises; ``refresh`` writes nothing when no input changed. Both rewrite only
    shards whose records or inputs changed and resume a killed run. ``dask_address`` (e.g.
    ``tcp://127.0.0.1:8786``) runs the units on that Dask scheduler; None = local process pool.
    """
    log = get_run_logger()
    if config.ptbxl is None and config.mimic is None:
        raise ValueError("no input: give a PTB-XL and/or a MIMIC-IV-ECG folder")
    sources = discover_task(config)
    plan = plan_task(config, sources)
    out = str(config.out)
    if mode == "refresh" and plan.nothing_to_do:
        log.info("nothing changed since the last build: no file written")
        create_markdown_artifact(
            counts_markdown(None, plan, out), key="corpus-counts", description="build-corpus counts"
        )
        return {"written": [], "changed": False}
    if not plan.todo:
        results: list[UnitResult] = []
    elif dask_address:
        from prefect_dask import DaskTaskRunner

        runner = DaskTaskRunner(address=dask_address)
        results = process_units_dask.with_options(task_runner=runner)(plan.todo, config)
    else:
        results = process_units_local(plan.todo, config)
    manifest = finalise_task(config, sources, plan, results, mode)
    validate_task(out)
    create_markdown_artifact(
        counts_markdown(manifest, plan, out), key="corpus-counts", description="build-corpus counts"
    )
    written = sorted(r.path for r in results if r.rows)
    log.info("corpus written to %s: %d shards written, %d kept", out, len(written), len(plan.done))
    return {"written": written, "changed": True, "files": [f.path for f in manifest.files]}


def main(argv: list[str] | None = None) -> None:
    """``python -m flows.build_corpus``: run the flow once (needs a Prefect API or starts one)."""
    p = argparse.ArgumentParser(prog="python -m flows.build_corpus")
    p.add_argument("--config", type=Path)
    p.add_argument("--ptbxl")
    p.add_argument("--mimic")
    p.add_argument("--out", type=Path)
    p.add_argument("--mode", choices=["full", "refresh"], default="full")
    p.add_argument("--dask-address")
    a = p.parse_args(argv)
    cfg = load_config(a.config, ptbxl=a.ptbxl, mimic=a.mimic, out=a.out)
    build_corpus_flow(cfg, mode=a.mode, dask_address=a.dask_address)


if __name__ == "__main__":
    main()
