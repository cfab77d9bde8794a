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

import os
import shutil
import time

import pytest

from pipeline.build import build_corpus
from pipeline.config import BuildConfig
from pipeline.finalise import validate_corpus

from .conftest import BIN, add_ptbxl_records, free_port, shard_digests

UNIT_TASK = "process_unit_task"


def units_ran_on_workers(tasks: list[dict], worker_pids: dict[str, int], out) -> set[int]:
    """Check the task stream: every unit of the build at ``out`` ran once, successfully, on a
    worker of the cluster; returns the process ids that ran them."""
    from distributed.utils import key_split

    units = [t for t in tasks if key_split(t["key"]) == UNIT_TASK]
    completion_records = list((out / "_build").glob("*/*.json"))
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


def test_external_scheduler_equals_local_build(
    prefect_server, prefect_env, procs, inputs_and_local, tmp_path
):
    import psutil
    from distributed import Client, get_task_stream

    from flows.build_corpus import build_corpus_flow

    cfg, local = inputs_and_local
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**prefect_env, "PREFECT_API_URL": prefect_server}
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
