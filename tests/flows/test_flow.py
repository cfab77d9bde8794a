"""The ``build-corpus`` flow against a real Prefect server: CLI parity, artifact, refresh mode."""

from __future__ import annotations

from pipeline.cli import main as cli_main
from pipeline.config import BuildConfig
from pipeline.finalise import validate_corpus
from schemas import CARD, REJECTIONS, read_manifest

from .conftest import progress_shares


def test_flow_and_cli_give_identical_shards(
    prefect_server, ptbxl_sample, tmp_path, digests, monkeypatch, run_log_lines
):
    """One orchestrator: the same inputs through the CLI and through the flow give byte-identical
    shards and ledger, and the same manifest (but for the config's out folder and workers). The
    flow's one pool (a stand-in that counts) hashes the inputs, then processes every unit."""
    from contextlib import contextmanager

    from prefect.client.orchestration import get_client

    import pipeline.build
    from flows.build_corpus import build_corpus_flow
    from tests.pipeline.test_plan import CountingExecutor

    assert (
        cli_main(
            [
                "build",
                "--ptbxl",
                str(ptbxl_sample),
                "--out",
                str(tmp_path / "cli"),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    pools = []

    @contextmanager
    def one_pool(config):
        with CountingExecutor() as pool:
            pools.append(pool)
            yield pool

    monkeypatch.setattr(pipeline.build, "local_executor", one_pool)
    cfg = BuildConfig(ptbxl=ptbxl_sample, out=tmp_path / "flow", workers=2)
    summary = build_corpus_flow(cfg)
    assert summary["changed"] and validate_corpus(tmp_path / "flow") == []
    assert len(pools) == 1 and pools[0].maps == 1  # fingerprints: one map over record chunks
    shares = progress_shares(run_log_lines)  # the local pool's progress lines, to 100 %
    assert shares and shares == sorted(shares) and shares[-1] == 100, run_log_lines
    assert pools[0].submits == 1 + len(summary["written"])  # the chunk, then one per unit
    cli, flow = digests(tmp_path / "cli"), digests(tmp_path / "flow")
    assert cli and cli == flow
    ledger = [(tmp_path / d / REJECTIONS).read_bytes() for d in ("cli", "flow")]
    assert ledger[0] == ledger[1]
    m_cli, m_flow = read_manifest(tmp_path / "cli"), read_manifest(tmp_path / "flow")
    assert m_cli.model_dump(exclude={"config"}) == m_flow.model_dump(exclude={"config"})
    local = {"out", "workers"}
    assert {k: v for k, v in m_cli.config.items() if k not in local} == {
        k: v for k, v in m_flow.config.items() if k not in local
    }
    assert [(tmp_path / d / CARD).read_text() for d in ("cli", "flow")] == [
        (tmp_path / "cli" / CARD).read_text()
    ] * 2

    async def artifact():
        async with get_client() as client:
            return await client.read_latest_artifacts()

    import asyncio

    latest = [a for a in asyncio.run(artifact()) if a.key == "corpus-counts"]
    assert latest and "| ptbxl | 9 | train |" in latest[0].data and "http" not in latest[0].data

    # refresh mode with nothing changed writes nothing
    before = sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "flow").rglob("*"))
    assert build_corpus_flow(cfg, mode="refresh") == {"written": [], "changed": False}
    assert sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "flow").rglob("*")) == before


def test_tasks_are_thin_and_retry_only_io():
    from flows import build_corpus as f

    io = {f.discover_task, f.plan_task, f.process_unit_task, f.process_units_local, f.finalise_task}
    for t in io:
        assert t.retries >= 1, t.name
    assert f.validate_task.retries == 0
    assert f.build_corpus_flow.name == "build-corpus"
    params = f.build_corpus_flow.parameters.properties
    assert set(params) == {"config", "mode", "dask_address"}


def test_flow_accepts_file_urls(prefect_server, ptbxl_sample, tmp_path, digests):
    """fsspec ``file://`` URLs work for inputs and output (other protocols: not yet)."""
    from flows.build_corpus import build_corpus_flow

    cfg = BuildConfig.model_validate(
        {"ptbxl": f"file://{ptbxl_sample}", "out": f"file://{tmp_path / 'out'}", "workers": 1}
    )
    assert cfg.out == tmp_path / "out"
    build_corpus_flow(cfg)
    assert validate_corpus(tmp_path / "out") == []


def test_flow_command_says_a_config_mistake_in_one_line(tmp_path, capsys):
    """``python -m flows.build_corpus --config bad.yaml``: one line and exit 2, not a traceback."""
    import pytest

    from flows.build_corpus import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("ptbxl: [a\n")
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err == [
        f"config error: {bad}:2:1: YAML syntax error: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 1)"
    ]
