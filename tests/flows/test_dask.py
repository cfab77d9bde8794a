"""Units on Dask through prefect-dask's DaskTaskRunner: a LocalCluster with 2 process workers and an
external ``dask scheduler`` + ``dask worker`` on 127.0.0.1, each equal to the local build.

PREFECT_API_URL (the session's test server) is exported before any Dask worker starts, so workers
report to it instead of each starting a temporary Prefect server.

Equal shards alone would also come from a flow that ignored ``dask_address`` and used its local
process pool, so each test also reads the scheduler's task stream (distributed's own record of
what ran where): one ``process_unit_task`` per unit, each finished on a worker of that cluster,
whose process ids are the cluster's worker processes.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from pipeline.build import build, build_corpus
from pipeline.config import BuildConfig
from pipeline.finalise import validate_corpus
from schemas import DATA_DIR, PROGRESS_DIR
from tests.flows.mimic_clones import clone_mimic_layout

from .conftest import BIN, add_ptbxl_records, free_port, progress_shares, shard_digests

UNIT_TASK = "process_unit_task"


def units_ran_on_workers(tasks: list[dict], worker_pids: dict[str, int], out) -> set[int]:
    """Check the task stream: every unit of the build at ``out`` ran once, successfully, on a
    worker of the cluster; returns the process ids that ran them."""
    from distributed.utils import key_split

    units = [t for t in tasks if key_split(t["key"]) == UNIT_TASK]
    completion_records = list((out / PROGRESS_DIR).glob(f"{DATA_DIR}/*/*.json"))
    assert completion_records, "the build wrote no unit"
    assert len(units) == len(completion_records), sorted({key_split(t["key"]) for t in tasks})
    assert all(t["status"] == "OK" for t in units)
    assert {t["worker"] for t in units} <= set(worker_pids)
    pids = {worker_pids[t["worker"]] for t in units}
    assert os.getpid() not in pids
    return pids


N_ADDED = 16


@pytest.fixture(scope="module")
def inputs_and_local(ptbxl_sample, tmp_path_factory):
    """The real sample plus re-filed copies of its records, and the local build (in this process:
    a pool's start-up would only add time; shards do not depend on the worker count)."""
    tmp = tmp_path_factory.mktemp("dask")
    root = tmp / "ptbxl"
    shutil.copytree(ptbxl_sample, root)
    add_ptbxl_records(root, N_ADDED)
    cfg = BuildConfig(ptbxl=root, out=tmp / "local", workers=1, shards_per_split=4)
    t0 = time.perf_counter()
    build_corpus(cfg)
    print(f"\n[timing] local build (1 worker): {time.perf_counter() - t0:.1f} s")
    return cfg, shard_digests(cfg.out)


def test_local_cluster_equals_local_build(prefect_server, inputs_and_local, tmp_path):
    from distributed import Client, LocalCluster, get_task_stream

    from flows.build_corpus import build_corpus_flow

    cfg, local = inputs_and_local
    assert os.environ["PREFECT_API_URL"] == prefect_server
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        with get_task_stream(client=client) as stream:
            t0 = time.perf_counter()
            build_corpus_flow(
                cfg.model_copy(update={"out": tmp_path / "lc"}),
                dask_address=cluster.scheduler_address,
            )
            print(f"\n[timing] LocalCluster (2 process workers): {time.perf_counter() - t0:.1f} s")
        worker_pids = client.run(os.getpid)
    pids = units_ran_on_workers(stream.data, worker_pids, tmp_path / "lc")
    print(f"[dask] units ran in LocalCluster worker processes {sorted(pids)}")
    assert validate_corpus(tmp_path / "lc") == []
    assert shard_digests(tmp_path / "lc") == local


def start_external_cluster(procs, env: dict):
    """``dask scheduler`` + ``dask worker --nworkers 2`` on 127.0.0.1; (address, worker proc)."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs.start(
        "scheduler",
        [
            str(BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        env,
    )
    dask_worker = procs.start(
        "worker",
        [
            str(BIN / "dask"),
            "worker",
            address,
            "--host",
            "127.0.0.1",
            "--nworkers",
            "2",
            "--nthreads",
            "1",
            "--no-dashboard",
        ],
        env,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(2, timeout=90)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return address, dask_worker


def test_external_scheduler_equals_local_build(
    prefect_server, prefect_env, procs, inputs_and_local, tmp_path
):
    import psutil
    from distributed import Client, get_task_stream

    from flows.build_corpus import build_corpus_flow

    cfg, local = inputs_and_local
    address, dask_worker = start_external_cluster(
        procs, {**prefect_env, "PREFECT_API_URL": prefect_server}
    )
    with Client(address, timeout=30) as client:
        with get_task_stream(client=client) as stream:
            t0 = time.perf_counter()
            build_corpus_flow(
                cfg.model_copy(update={"out": tmp_path / "ext"}), dask_address=address
            )
            print(
                f"\n[timing] external scheduler + worker (2 procs): {time.perf_counter() - t0:.1f} s"
            )
        worker_pids = client.run(os.getpid)
    pids = units_ran_on_workers(stream.data, worker_pids, tmp_path / "ext")
    # ... and those processes are the ones `dask worker` started (not this test's children).
    started = {p.pid for p in psutil.Process(dask_worker.pid).children(recursive=True)}
    assert pids <= started, (pids, started)
    print(f"[dask] units ran in `dask worker` processes {sorted(pids)}")
    assert validate_corpus(tmp_path / "ext") == []
    assert shard_digests(tmp_path / "ext") == local


# ---------------------------------------------------------------- at scale: thousands of records

N_SCALE = 5000
SCALE_PER_SHARD = 250


@pytest.fixture(scope="module")
def scale_inputs_and_local(ptbxl_sample, mimic_statements_tsv, tmp_path_factory):
    """N_SCALE MIMIC-layout studies and their local build (in this process) with its plan."""
    tmp = tmp_path_factory.mktemp("dask-scale")
    t0 = time.perf_counter()
    root = clone_mimic_layout(tmp / "mimic", ptbxl_sample, mimic_statements_tsv, N_SCALE)
    print(f"\n[timing] {N_SCALE} MIMIC-layout studies generated: {time.perf_counter() - t0:.1f} s")
    cfg = BuildConfig(mimic=root, out=tmp / "local", workers=1, records_per_shard=SCALE_PER_SHARD)
    t0 = time.perf_counter()
    outcome = build(cfg)
    print(f"[timing] local build of {N_SCALE} (1 worker): {time.perf_counter() - t0:.1f} s")
    return cfg, shard_digests(cfg.out), outcome.plan


def subflow_parameters(name: str) -> dict:
    """The parameters the Prefect API stored for the latest run of flow ``name``."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[name])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    return runs[0].parameters


def test_external_scheduler_at_scale_equals_local_build(
    prefect_server, prefect_env, procs, scale_inputs_and_local, run_log_lines, tmp_path
):
    """N_SCALE records through an external scheduler + 2 workers: it completes (a flow run's
    parameters over 512 kB are refused by the API), equals the local build byte for byte, the
    units ran in the `dask worker` processes, the run logged progress at least every 10 %, and
    the process-units-dask subflow's parameters are one unit key each (~70 bytes, whatever a
    unit's record count: 800,035 records fit the API's 512 kB)."""
    import psutil
    from distributed import Client, get_task_stream

    from flows.build_corpus import build_corpus_flow

    cfg, local, plan = scale_inputs_and_local
    address, dask_worker = start_external_cluster(
        procs, {**prefect_env, "PREFECT_API_URL": prefect_server}
    )
    out = tmp_path / "ext"
    with Client(address, timeout=30) as client:
        with get_task_stream(client=client) as stream:
            t0 = time.perf_counter()
            build_corpus_flow(cfg.model_copy(update={"out": out}), dask_address=address)
            print(
                f"\n[timing] {N_SCALE} records on 2 dask workers: {time.perf_counter() - t0:.1f} s"
            )
        worker_pids = client.run(os.getpid)
    pids = units_ran_on_workers(stream.data, worker_pids, out)
    started = {p.pid for p in psutil.Process(dask_worker.pid).children(recursive=True)}
    assert pids <= started, (pids, started)
    assert len(list((out / PROGRESS_DIR).glob(f"{DATA_DIR}/*/*.json"))) == len(plan.units) > 10
    assert validate_corpus(out) == []
    assert shard_digests(out) == local
    params = subflow_parameters("process-units-dask")
    keys = [u.key for u in plan.units]
    assert params["keys"] == keys
    per_unit = len(json.dumps(params["keys"])) / len(keys)
    config_bytes = len(json.dumps(params)) - len(json.dumps(params["keys"]))
    projected = config_bytes + per_unit * (800_035 / 1000 + 3)  # full MIMIC, 1,000 a shard
    print(f"[dask] subflow parameters: {per_unit:.0f} B/unit + {config_bytes} B config")
    assert per_unit < 200 and projected < 512 * 1024, (per_unit, projected)
    shares = progress_shares(run_log_lines)
    assert shares and shares[-1] == 100, run_log_lines[-5:]
    largest = 100 * max(u.n_records for u in plan.units) / N_SCALE  # one unit's share, at most
    assert all(b - a <= 10 + largest + 1 for a, b in zip([0, *shares], shares)), shares
