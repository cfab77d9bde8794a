"""README "Running with Prefect", step by step, against a real server on 127.0.0.1, as from a fresh
clone: work pool, process worker, ``prefect deploy --all``, ``prefect deployment run
build-corpus/full`` with the deployment's default parameters (no input: the flow writes the
synthetic demo itself), the UI, ``build-corpus/refresh`` (nothing changed, then one added record),
and a 20,000-record run through the same process worker whose progress and counts are read back
from the API.

The repository's ``prefect.yaml`` is deployed as it is (``--prefect-file``); what the server holds
(parameters, the refresh cron schedule and its timezone) is read back and compared with the file.
Its paths are relative to the folder ``prefect deploy`` runs in, so the test deploys from a
temporary folder that holds only a link to ``flows/``, as a fresh clone holds no ``demo-data``:
deploying from the repository root would build into the developer's own ./corpus.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipeline.finalise import validate_corpus
from schemas import read_manifest
from tests.flows.mimic_clones import clone_mimic_layout

from .conftest import (
    BIN,
    REPO,
    Procs,
    add_ptbxl_records,
    progress_shares,
    shard_digests,
    tree_state,
)

POOL = "meit-local"
README_STEPS = [
    "prefect server start --host 127.0.0.1 --port 4200",
    f"prefect work-pool create {POOL} --type process",
    f"prefect worker start --pool {POOL}",
    "prefect --no-prompt deploy --all",
    "prefect deployment run build-corpus/full --watch",
    "prefect deployment run build-corpus/refresh --watch",
]
WROTE_DEMO = "no input given: wrote the SYNTHETIC demo inputs"
USED_DEMO = "no input given: building the SYNTHETIC demo inputs"


def run(args: list[str], env: dict, timeout: float = 300, cwd: Path = REPO) -> str:
    import subprocess

    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@dataclass
class Deployed:
    """``prefect.yaml`` deployed from a fresh folder, with a process worker polling its pool."""

    env: dict
    site: Path
    procs: Procs
    declared: dict

    def run(self, name: str, params: dict | None = None) -> tuple[str, str]:
        """``prefect deployment run NAME [--params ...] --watch``: the flow run's id and final
        state. With ``params`` None the deployment's own default parameters are used."""
        args = [str(BIN / "prefect"), "deployment", "run", name, "--watch"]
        if params is not None:
            args += ["--params", json.dumps(params)]
        printed = run([*args, "--watch-timeout", "480"], self.env, timeout=540)
        run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", printed).group(1)
        return run_id, flow_run(run_id).state.name

    def worker_log(self) -> str:
        return self.procs.log("worker")[-3000:]


def flow_run(run_id: str):
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(read())


LAST_LINES = ("corpus written to ", "nothing changed since the last build")


def run_logs(run_id: str, timeout: float = 60) -> list[str]:
    """The messages the API holds for a flow run (its tasks' included), oldest first; waits for
    the flow's last line, since a run's logs reach the API in batches, after its state."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    async def read() -> list[str]:
        found: list[str] = []
        async with get_client() as client:
            while True:
                page = await client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
                    limit=200,
                    offset=len(found),
                    sort=LogSort.TIMESTAMP_ASC,
                )
                found += [log.message for log in page]
                if len(page) < 200:
                    return found

    deadline = time.monotonic() + timeout
    while True:
        lines = asyncio.run(read())
        if any(line.startswith(LAST_LINES) for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(1)


def run_artifact(run_id: str, key: str) -> str:
    """The markdown of the artifact ``key`` that flow run ``run_id`` created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterId,
    )

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
            )

    found = asyncio.run(read())
    assert len(found) == 1, found
    return found[0].data


def read_deployments(names: list[str]) -> dict:
    """The server's records of the named deployments."""
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return {n: await client.read_deployment_by_name(n) for n in names}

    return asyncio.run(read())


def test_readme_prefect_section_is_what_this_test_runs():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Running with Prefect", 1)[1]
    for step in README_STEPS:
        assert step in section, step
    assert "write_demo" not in section  # no step 0: a run writes the demo itself
    assert "build-corpus/<deployment>" in section or "<flow>/<deployment>" in section
    assert "/.prefect-home/" in (REPO / ".gitignore").read_text().splitlines()


@pytest.fixture(scope="module")
def deployed(prefect_server, prefect_env, tmp_path_factory):
    """A fresh clone's deployment: a folder with nothing but ``flows/`` (no demo-data, no corpus),
    the pool created on the session's server, a process worker, ``prefect.yaml`` deployed
    unchanged. The worker's runs log at INFO (the suite's own default is WARNING)."""
    env = {
        **prefect_env,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    prefect = str(BIN / "prefect")
    site = tmp_path_factory.mktemp("site")
    (site / "flows").symlink_to(REPO / "flows", target_is_directory=True)
    procs = Procs(tmp_path_factory.mktemp("deploy-logs"))
    try:
        run([prefect, "work-pool", "create", POOL, "--type", "process"], env)
        procs.start("worker", [prefect, "worker", "start", "--pool", POOL], env, cwd=site)
        deploy = [prefect, "--no-prompt", "deploy", "--all", "--prefect-file"]
        run([*deploy, str(REPO / "prefect.yaml")], env, cwd=site)
        declared = yaml.safe_load((REPO / "prefect.yaml").read_text())
        yield Deployed(env, site, procs, declared)
    finally:
        procs.stop_all()


def test_fresh_clone_full_then_refresh_with_default_parameters(deployed, prefect_server):
    site = deployed.site
    defaults = {d["name"]: d for d in deployed.declared["deployments"]}
    config = defaults["full"]["parameters"]["config"]
    assert not {"ptbxl", "mimic", "sources"} & set(config)  # the defaults build the demo
    assert not (REPO / ".prefect").exists() or (REPO / ".prefect").is_dir()

    # What the server holds is what prefect.yaml says (and what the README promises).
    server = read_deployments(["build-corpus/full", "build-corpus/refresh"])
    for name, deployment in server.items():
        spec = defaults[name.split("/")[1]]
        assert deployment.parameters == spec["parameters"], name
        assert deployment.parameters["config"]["shards_per_split"] == 8
        assert deployment.work_pool_name == POOL == spec["work_pool"]["name"]
        assert deployment.entrypoint == "flows/build_corpus.py:build_corpus_flow"
        assert json.dumps(deployment.pull_steps).count(str(site.resolve())) == 1
    assert server["build-corpus/full"].parameters["mode"] == "full"
    assert server["build-corpus/full"].schedules == []
    refresh = server["build-corpus/refresh"]
    assert refresh.parameters["mode"] == "refresh"
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in refresh.schedules] == [
        ("0 3 * * 1", "Europe/Berlin", True)  # README: Mondays 03:00 Europe/Berlin
    ]
    assert [(s["cron"], s["timezone"]) for s in defaults["refresh"]["schedules"]] == [
        ("0 3 * * 1", "Europe/Berlin")
    ]

    # A fresh clone: no demo-data yet. The run writes it, says so, and builds it.
    assert not (site / "demo-data").exists()
    t0 = time.perf_counter()
    run_id, state = deployed.run("build-corpus/full")
    assert state == "Completed", deployed.worker_log()
    print(f"\n[timing] deployment run build-corpus/full (demo): {time.perf_counter() - t0:.1f} s")
    logs = run_logs(run_id)
    assert any(line.startswith(WROTE_DEMO) for line in logs), logs
    assert (site / "demo-data" / "SYNTHETIC.md").is_file()
    out = site / config["out"]
    assert validate_corpus(out) == []
    manifest = read_manifest(out)
    assert manifest.config["shards_per_split"] == 8 and manifest.config["workers"] == 0
    assert set(manifest.counts) == {"ptbxl", "mimic"}
    assert all(c.synthetic for c in manifest.counts.values())
    assert manifest.counts["ptbxl"].rejected == {"empty_report": 1, "flat_lead": 1}
    assert manifest.refreshes[-1].mode == "full"

    # The UI the README points at answers on the same port.
    with urllib.request.urlopen(prefect_server.removesuffix("/api") + "/", timeout=10) as r:
        assert r.status == 200

    # The weekly refresh with its defaults: the demo is there, so it is read, not rewritten,
    # and nothing changed: no file of the corpus is touched.
    before_state = tree_state(out)
    run_id, state = deployed.run("build-corpus/refresh")
    assert state == "Completed", deployed.worker_log()
    logs = run_logs(run_id)
    assert any(line.startswith(USED_DEMO) for line in logs), logs
    assert not any(line.startswith(WROTE_DEMO) for line in logs), logs
    assert tree_state(out) == before_state

    # One added record: one unit to redo, which the flow runs in its own process; only its
    # shard changes.
    before = shard_digests(out)
    added = add_ptbxl_records(site / "demo-data" / "ptbxl", 1)
    run_id, state = deployed.run("build-corpus/refresh")
    assert state == "Completed", deployed.worker_log()
    after = shard_digests(out)
    last = read_manifest(out).refreshes[-1]
    assert last.mode == "refresh" and last.added_ids == [f"ptbxl/{i}" for i in added]
    assert last.changed == 0 and last.removed == 0
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert len(changed) == 1 and changed == set(last.written)
    assert all(after[p] == d for p, d in before.items() if p not in changed)
    assert validate_corpus(out) == []


N_WORKER = 20_000
WORKER_PER_SHARD = 500
UNIT_LINE = re.compile(r"^(\S+\.parquet): (\d+) rows, (\d+) rejected$")


def test_20000_records_through_the_process_worker(
    deployed, ptbxl_sample, mimic_statements_tsv, tmp_path
):
    """20,000 MIMIC-layout records (hard-linked clones) built by ``build-corpus/full`` in the
    process worker: the run's logs, read back from the API, report progress at least every 10 %
    (one unit is 2.5 % of the records) up to 100 %, and the run leaves its counts artifact."""
    t0 = time.perf_counter()
    root = clone_mimic_layout(tmp_path / "mimic", ptbxl_sample, mimic_statements_tsv, N_WORKER)
    print(f"\n[timing] {N_WORKER} MIMIC-layout studies generated: {time.perf_counter() - t0:.1f} s")
    out = tmp_path / "corpus"
    config = {"mimic": str(root), "out": str(out), "workers": 2}
    config["records_per_shard"] = WORKER_PER_SHARD
    t0 = time.perf_counter()
    run_id, state = deployed.run("build-corpus/full", {"config": config})
    assert state == "Completed", deployed.worker_log()
    print(
        f"[timing] {N_WORKER} records through the process worker: {time.perf_counter() - t0:.1f} s"
    )

    logs = run_logs(run_id)
    shares = progress_shares(logs)
    assert len(shares) >= 10 and shares == sorted(shares) and shares[-1] == 100, shares
    # A line is due each time another 10 % is done, so two lines are at most 10 % plus the one
    # unit that crossed the mark apart (a unit's share of the units or of the records; +1 for
    # the rounding of the printed percentages).
    units = [int(m.group(2)) + int(m.group(3)) for m in map(UNIT_LINE.match, logs) if m]
    n_units = int(
        re.search(r"/(\d+) units", next(x for x in logs if x.startswith("progress"))).group(1)
    )
    assert len(units) == n_units > 30 and sum(units) == N_WORKER
    one_unit = 100 * max(1 / n_units, max(units) / N_WORKER)
    assert all(b - a <= 10 + one_unit + 1 for a, b in zip([0, *shares], shares)), shares
    manifest = read_manifest(out)
    counts = manifest.counts["mimic"]
    assert counts.seen == N_WORKER == counts.kept_total + counts.rejected_total
    artifact = run_artifact(run_id, "corpus-counts")
    for split, kept in counts.kept.items():
        assert f"| mimic | {N_WORKER} | {split} | {kept} |" in artifact, artifact
    for reason, n in counts.rejected.items():
        assert f"| mimic | {reason} | {n} |" in artifact, artifact
