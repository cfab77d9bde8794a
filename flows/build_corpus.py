"""The ``build-corpus`` Prefect flow: :func:`pipeline.build.build` with each step in a task.

The control flow (no input check, discover -> plan -> execute -> finalise -> validate, the
"nothing changed" exit) is the pipeline's own; this module only wraps the steps in tasks, logs,
and writes a markdown artifact with the counts. Units run in the build's local process pool or,
when ``dask_address`` names a Dask scheduler, one Prefect task per unit on that cluster through
prefect-dask's ``DaskTaskRunner``; the inputs are then fingerprinted on the same cluster. Tasks
exchange paths, ids and unit keys, never metadata rows or signal arrays (a unit's rows are in the
file the plan wrote; its worker reads them). Progress is logged every 10 % of units or records.
Correctness rests on the pipeline's atomic writes and completion records (a killed run resumes), not on Prefect's caching, which is
off (``NO_CACHE``).

With no input in its config (the deployments' default parameters) a run builds the synthetic demo
in ``./demo-data`` of its working folder, writing it first when it is missing, as
``meit-corpus build`` does; the run log says which.

Run directly: ``python -m flows.build_corpus --config build.yaml [--mode refresh]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.build import BuildOutcome, Steps, build
from pipeline.config import BuildConfig
from pipeline.config_file import config_error_line, load_config
from pipeline.demo import with_existing_demo
from pipeline.execute import process_unit, run_units
from pipeline.finalise import finalise
from pipeline.plan import Plan, discover, make_plan
from pipeline.sources import registry
from pipeline.unit_files import read_unit
from pipeline.units import UnitResult, WorkUnit
from pipeline.validate import validate_build
from schemas import Manifest

IO_RETRIES = {"retries": 2, "retry_delay_seconds": 5}
DEMO_INPUTS = Path("demo-data")
"""Where a run with no input finds (or writes) the synthetic demo: relative to the run's working
folder, which for a deployment is the folder ``prefect deploy`` ran in."""


@task(name="demo-inputs", cache_policy=NO_CACHE)
def demo_inputs_task(config: BuildConfig) -> BuildConfig:
    """No input given: ``config`` on the synthetic demo in ./demo-data, written when missing."""
    config, written = with_existing_demo(config, DEMO_INPUTS)
    get_run_logger().info(
        "no input given: %s the SYNTHETIC demo inputs %s %s (not PhysioNet data; give "
        "config.ptbxl and/or config.mimic to build real folders)",
        *(("wrote", "to") if written else ("building", "in")),
        DEMO_INPUTS.resolve(),
    )
    return config


@task(name="discover", cache_policy=NO_CACHE, **IO_RETRIES)
def discover_task(config: BuildConfig, sources):
    """List every source's records (metadata only), with splits and metadata rejections."""
    found = discover(config, sources)
    for s in found:
        get_run_logger().info(
            "%s: %d records seen, %d rejected on metadata", s.name, s.seen, len(s.rejections)
        )
    return found


@task(name="plan", cache_policy=NO_CACHE, **IO_RETRIES)
def plan_task(config: BuildConfig, sources, executor: Executor | None) -> Plan:
    """Fingerprint the inputs (on the build's pool or cluster), plan, compare with the disk."""
    plan = make_plan(config, sources, executor)
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
    task_run_name="unit {unit.source.name}/{unit.split}-{unit.index}",
    **IO_RETRIES,
)
def process_unit_task(unit: WorkUnit, config: BuildConfig, out: str) -> UnitResult:
    """Read, condition, render and write one shard (atomic; skipped when already complete)."""
    result = process_unit(unit, config, Path(out))
    get_run_logger().info(
        "%s: %d rows, %d rejected", result.path, result.rows, len(result.rejections)
    )
    return result


@dataclass
class ProgressLog:
    """An ``on_done`` callback that logs ``progress: i/n units, j/m records (p %)`` each time
    another ``step`` of the units or of the records is done, and at the end."""

    units: int
    records: int
    log: Any
    step: float = 0.1
    done_units: int = 0
    done_records: int = 0
    steps_logged: int = 0

    @classmethod
    def of(cls, units: Sequence[WorkUnit], log: Any) -> "ProgressLog":
        return cls(len(units), sum(u.n_records for u in units), log)

    def __call__(self, result: UnitResult) -> None:
        self.done_units += 1
        self.done_records += result.inputs
        share = max(self.done_units / self.units, self.done_records / max(1, self.records))
        reached = int(share / self.step + 1e-9)
        if reached > self.steps_logged or self.done_units == self.units:
            self.steps_logged = reached
            self.log.info(
                "progress: %d/%d units, %d/%d records (%d %%)",
                self.done_units,
                self.units,
                self.done_records,
                self.records,
                round(100 * share),
            )


@task(name="process-units", cache_policy=NO_CACHE, **IO_RETRIES)
def process_units_local(
    units: list[WorkUnit], config: BuildConfig, executor: Executor | None, on_done=None
) -> list[UnitResult]:
    """All units in the build's local process pool (``config.workers``, 0 = all cores)."""
    log = get_run_logger()
    progress = ProgressLog.of(units, log)

    def done(r: UnitResult) -> None:
        log.info("%s: %d rows, %d rejected", r.path, r.rows, len(r.rejections))
        progress(r)
        if on_done:
            on_done(r)

    return run_units(units, config, executor, done)


@flow(name="process-units-dask")
def process_units_dask(keys: list[str], config: BuildConfig) -> list[UnitResult]:
    """One task per unit on the Dask cluster this subflow's task runner points at.

    The units come as their keys (a flow run's parameters go to the Prefect API, which refuses
    more than 512 kB): each is read back from the rows file the plan wrote, and each worker reads
    its unit's metadata rows itself.
    """
    out = str(config.out)
    sources = registry()
    units = [read_unit(out, key, sources) for key in keys]
    progress = ProgressLog.of(units, get_run_logger())
    futures = process_unit_task.map(units, unmapped(config), unmapped(out))
    results = []
    for future in futures:
        results.append(future.result())
        progress(results[-1])
    return results


def dask_execute(address: str) -> Callable[..., list[UnitResult]]:
    """The execute step for a Dask cluster: the units as Prefect tasks on ``address``."""
    from prefect_dask import DaskTaskRunner

    def execute(units, config, executor=None, on_done=None) -> list[UnitResult]:
        runner = DaskTaskRunner(address=address)
        keys = [u.key for u in units]
        return process_units_dask.with_options(task_runner=runner)(keys, config)

    return execute


@task(name="finalise", cache_policy=NO_CACHE, **IO_RETRIES)
def finalise_task(config: BuildConfig, plan: Plan, results: list[UnitResult], mode: str):
    """Write the rejection ledger, fingerprints, manifest (with refresh history) and card."""
    return finalise(config, plan, results, mode)


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(out: Path) -> list[str]:
    """Checksums, schema and counts of the shards this build wrote, and the corpus-wide
    invariants over every shard (the build raises on any problem)."""
    return validate_build(Path(out))


def prefect_steps(dask_address: str | None) -> Steps:
    """The pipeline's steps, each a Prefect task (the units on Dask when an address is given)."""
    return Steps(
        discover=discover_task,
        plan=plan_task,
        execute=dask_execute(dask_address) if dask_address else process_units_local,
        finalise=finalise_task,
        validate=validate_task,
    )


@contextmanager
def cluster_executor(dask_address: str | None) -> Iterator[Executor | None]:
    """A ``concurrent.futures`` executor on the Dask cluster, or None (the build's local pool)."""
    if not dask_address:
        yield None
        return
    from distributed import Client

    with Client(dask_address) as client:
        yield client.get_executor()


def counts_markdown(manifest: Manifest | None, plan: Plan, out: str) -> str:
    """The artifact: kept per split, rejected per reason, and what this run changed (no links)."""
    lines = [f"# Corpus `{out}`", ""]
    c = plan.changes
    removed = manifest.refreshes[-1].removed_shards if manifest else plan.stale_shards
    lines += [
        f"Records added {len(c.added)}, changed {len(c.changed)}, removed {len(c.removed)}; "
        f"shards written {len(plan.todo)}, kept {len(plan.done)}, removed {len(removed)}.",
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
    With no input in ``config``, the synthetic demo in ./demo-data (written when missing).
    """
    if not config.inputs():
        config = demo_inputs_task(config)
    with cluster_executor(dask_address) as executor:
        outcome: BuildOutcome = build(
            config, mode, executor=executor, steps=prefect_steps(dask_address)
        )
    out = str(config.out)
    create_markdown_artifact(
        counts_markdown(outcome.manifest, outcome.plan, out),
        key="corpus-counts",
        description="build-corpus counts",
    )
    log = get_run_logger()
    if outcome.manifest is None:
        log.info("nothing changed since the last build: no file written")
        return {"written": [], "changed": False}
    log.info(
        "corpus written to %s: %d shards written, %d kept",
        out,
        len(outcome.written),
        len(outcome.plan.done),
    )
    files = [f.path for f in outcome.manifest.files]
    return {"written": outcome.written, "changed": True, "files": files}


def main(argv: list[str] | None = None) -> None:
    """``python -m flows.build_corpus``: run the flow once (needs a Prefect API or starts one)."""
    p = argparse.ArgumentParser(prog="python -m flows.build_corpus", allow_abbrev=False)
    p.add_argument("--config", type=Path)
    p.add_argument("--ptbxl")
    p.add_argument("--mimic")
    p.add_argument("--out", type=Path)
    p.add_argument("--mode", choices=["full", "refresh"], default="full")
    p.add_argument("--dask-address")
    a = p.parse_args(argv)
    try:
        cfg = load_config(a.config, ptbxl=a.ptbxl, mimic=a.mimic, out=a.out)
    except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
        print(f"config error: {config_error_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    build_corpus_flow(cfg, mode=a.mode, dask_address=a.dask_address)


if __name__ == "__main__":
    main()
