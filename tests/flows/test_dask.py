"""Units on Dask through prefect-dask's DaskTaskRunner: a LocalCluster with 2 process workers and an
external ``dask scheduler`` + ``dask worker`` on 127.0.0.1, each equal to the local build.

PREFECT_API_URL (the session's test server) is exported before any Dask worker starts, so workers
report to it instead of each starting a temporary Prefect server.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from pipeline.config import BuildConfig
from pipeline.corpus import build_corpus, validate_corpus

from .conftest import BIN, add_ptbxl_records, free_port, shard_digests

N_ADDED = 16


@pytest.fixture(scope="module")
def inputs_and_local(ptbxl_sample, tmp_path_factory):
    """The real sample plus re-filed copies of its records, and the local (process pool) build."""
    tmp = tmp_path_factory.mktemp("dask")
    root = tmp / "ptbxl"
    shutil.copytree(ptbxl_sample, root)
    add_ptbxl_records(root, N_ADDED)
    cfg = BuildConfig(ptbxl=root, out=tmp / "local", workers=2, shards_per_split=4)
    t0 = time.perf_counter()
    build_corpus(cfg)
    print(f"\n[timing] local process pool (2 workers): {time.perf_counter() - t0:.1f} s")
    return cfg, shard_digests(cfg.out)


def test_local_cluster_equals_local_build(prefect_server, inputs_and_local, tmp_path):
    from distributed import LocalCluster

    from flows.build_corpus import build_corpus_flow

    cfg, local = inputs_and_local
    assert os.environ["PREFECT_API_URL"] == prefect_server
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        t0 = time.perf_counter()
        build_corpus_flow(
            cfg.model_copy(update={"out": tmp_path / "lc"}), dask_address=cluster.scheduler_address
        )
        print(f"\n[timing] LocalCluster (2 process workers): {time.perf_counter() - t0:.1f} s")
    assert validate_corpus(tmp_path / "lc") == []
    assert shard_digests(tmp_path / "lc") == local


def test_external_scheduler_equals_local_build(
    prefect_server, prefect_env, procs, inputs_and_local, tmp_path
):
    from distributed import Client

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
    procs.start(
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
    t0 = time.perf_counter()
    build_corpus_flow(cfg.model_copy(update={"out": tmp_path / "ext"}), dask_address=address)
    print(f"\n[timing] external scheduler + worker (2 procs): {time.perf_counter() - t0:.1f} s")
    assert validate_corpus(tmp_path / "ext") == []
    assert shard_digests(tmp_path / "ext") == local
