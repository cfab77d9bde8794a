"""README "Running with Prefect", step by step, against a real server on 127.0.0.1: work pool,
process worker, ``prefect deploy --all``, ``prefect deployment run build-corpus/full``, the UI, and
``build-corpus/refresh`` after adding records (only the affected shards change)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request

from pipeline.corpus import read_manifest, validate_corpus

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


def run(args: list[str], env: dict, timeout: float = 300) -> str:
    import subprocess

    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def run_deployment(prefect: str, name: str, params: dict, env: dict) -> str:
    """``prefect deployment run NAME --params ... --watch``; the final state of that flow run."""
    args = ["deployment", "run", name, "--params", json.dumps(params), "--watch"]
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


def test_deployments_full_then_refresh(prefect_server, prefect_env, procs, sample_copy, tmp_path):
    env = {
        **prefect_env,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    }
    prefect = str(BIN / "prefect")
    pools = run([prefect, "work-pool", "ls"], env)
    if POOL not in pools:
        run([prefect, "work-pool", "create", POOL, "--type", "process"], env)
    worker = procs.start("worker", [prefect, "worker", "start", "--pool", POOL], env)
    run([prefect, "--no-prompt", "deploy", "--all"], env)
    assert not (REPO / ".prefect").exists() or (REPO / ".prefect").is_dir()

    out = tmp_path / "corpus"
    params = {
        "config": {"ptbxl": str(sample_copy), "out": str(out), "workers": 1, "shards_per_split": 4}
    }
    t0 = time.perf_counter()
    state = run_deployment(prefect, "build-corpus/full", params, env)
    assert state == "Completed", procs.log("worker")[-3000:]
    print(f"\n[timing] deployment run build-corpus/full: {time.perf_counter() - t0:.1f} s")
    assert validate_corpus(out) == []
    manifest = read_manifest(out)
    assert manifest.counts["ptbxl"].seen == 9 and manifest.refreshes[-1].mode == "full"
    before = shard_digests(out)

    # The UI the README points at answers on the same port.
    with urllib.request.urlopen(prefect_server.removesuffix("/api") + "/", timeout=10) as r:
        assert r.status == 200

    added = add_ptbxl_records(sample_copy, 3)
    state = run_deployment(prefect, "build-corpus/refresh", params, env)
    assert state == "Completed", procs.log("worker")[-3000:]
    after = shard_digests(out)
    last = read_manifest(out).refreshes[-1]
    assert last.mode == "refresh" and last.added_ids == [f"ptbxl/{i}" for i in added]
    assert last.changed == 0 and last.removed == 0
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed and changed == set(last.written)
    assert all(after[p] == d for p, d in before.items() if p not in changed)
    assert validate_corpus(out) == []
    assert worker.poll() is None, "the worker died"
