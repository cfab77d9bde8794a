"""README "Running with Prefect", step by step, against a real server on 127.0.0.1: work pool,
process worker, ``prefect deploy --all``, ``prefect deployment run build-corpus/full``, the UI, and
``build-corpus/refresh`` after adding records (only the affected shards change).

The repository's ``prefect.yaml`` is deployed as it is (``--prefect-file``), and both runs use its
default parameters (no ``--params``); what the server holds (parameters, the refresh cron schedule
and its timezone) is read back and compared with the file. Its paths are relative to the folder
``prefect deploy`` runs in, so the test deploys from a temporary folder that holds the inputs at
those paths (the real PTB-XL sample and its MIMIC-layout re-encoding) and a link to ``flows/``:
deploying from the repository root would build into the developer's own ./corpus.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import urllib.request
from pathlib import Path

import yaml

from pipeline.finalise import validate_corpus
from schemas import read_manifest
from tests.pipeline.test_corpus import write_mimic_from_ptbxl

from .conftest import BIN, REPO, add_ptbxl_records, shard_digests

POOL = "meit-local"
README_STEPS = [
    "prefect server start --host 127.0.0.1 --port 4200",
    f"prefect work-pool create {POOL} --type process",
    f"prefect worker start --pool {POOL}",
    "prefect --no-prompt deploy --all",
    "prefect deployment run build-corpus/full --watch",
    "prefect deployment run build-corpus/refresh --watch",
]


def run(args: list[str], env: dict, timeout: float = 300, cwd: Path = REPO) -> str:
    import subprocess

    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def run_deployment(prefect: str, name: str, params: dict | None, env: dict) -> str:
    """``prefect deployment run NAME [--params ...] --watch``; the final state of that flow run.
    With ``params`` None the deployment's own default parameters are used."""
    args = ["deployment", "run", name, "--watch"]
    if params is not None:
        args += ["--params", json.dumps(params)]
    printed = run([prefect, *args, "--watch-timeout", "240"], env, timeout=300)
    return run_state(printed)


def run_state(cli_output: str) -> str:
    """The final state of the flow run that ``prefect deployment run`` printed the id of."""
    from prefect.client.orchestration import get_client

    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", cli_output).group(1)

    async def read():
        async with get_client() as client:
            return (await client.read_flow_run(run_id)).state.name

    return asyncio.run(read())


def test_readme_prefect_section_is_what_this_test_runs():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Running with Prefect", 1)[1]
    for step in README_STEPS:
        assert step in section, step


def read_deployments(names: list[str]) -> dict:
    """The server's records of the named deployments."""
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return {n: await client.read_deployment_by_name(n) for n in names}

    return asyncio.run(read())


def test_deployments_full_then_refresh(prefect_server, prefect_env, procs, ptbxl_sample, tmp_path):
    env = {
        **prefect_env,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    }
    prefect = str(BIN / "prefect")
    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())
    defaults = {d["name"]: d for d in declared["deployments"]}
    config = defaults["full"]["parameters"]["config"]

    # The deploy folder: inputs where the file's default config looks for them, and the flow code.
    site = tmp_path / "site"
    site.mkdir()
    (site / "flows").symlink_to(REPO / "flows", target_is_directory=True)
    ptbxl, mimic, out = site / config["ptbxl"], site / config["mimic"], site / config["out"]
    shutil.copytree(ptbxl_sample, ptbxl)
    write_mimic_from_ptbxl(ptbxl_sample, mimic)

    run([prefect, "work-pool", "create", POOL, "--type", "process"], env)  # a fresh server
    worker = procs.start("worker", [prefect, "worker", "start", "--pool", POOL], env, cwd=site)
    deploy = [
        prefect,
        "--no-prompt",
        "deploy",
        "--all",
        "--prefect-file",
        str(REPO / "prefect.yaml"),
    ]
    run(deploy, env, cwd=site)
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

    t0 = time.perf_counter()
    state = run_deployment(prefect, "build-corpus/full", None, env)
    assert state == "Completed", procs.log("worker")[-3000:]
    print(f"\n[timing] deployment run build-corpus/full: {time.perf_counter() - t0:.1f} s")
    assert validate_corpus(out) == []
    manifest = read_manifest(out)
    assert manifest.config["shards_per_split"] == 8 and manifest.config["workers"] == 0
    assert manifest.counts["ptbxl"].seen == 9 and manifest.counts["mimic"].kept_total == 8
    assert manifest.refreshes[-1].mode == "full"
    before = shard_digests(out)

    # The UI the README points at answers on the same port.
    with urllib.request.urlopen(prefect_server.removesuffix("/api") + "/", timeout=10) as r:
        assert r.status == 200

    # One added record: one unit to redo, which the flow runs in its own process; with more, the
    # `workers: 0` default starts a process pool (the full run above does), which costs ~6 s on
    # the busy 2-core machines (sample build, workers 0 vs 1) and tests nothing new here.
    added = add_ptbxl_records(ptbxl, 1)
    state = run_deployment(prefect, "build-corpus/refresh", None, env)
    assert state == "Completed", procs.log("worker")[-3000:]
    after = shard_digests(out)
    last = read_manifest(out).refreshes[-1]
    assert last.mode == "refresh" and last.added_ids == [f"ptbxl/{i}" for i in added]
    assert last.changed == 0 and last.removed == 0
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert len(changed) == 1 and changed == set(last.written)
    assert all(after[p] == d for p, d in before.items() if p not in changed)
    assert validate_corpus(out) == []
    assert worker.poll() is None, "the worker died"
