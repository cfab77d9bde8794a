"""Inputs behind an fsspec URL build exactly the corpus their local copy builds.

A real HTTP server on 127.0.0.1 serves a copy of the real PTB-XL sample (fsspec's HTTP
filesystem: the same code path as s3:// or gs://, which need credentials or network to test).
"""

from __future__ import annotations

import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import wfdb

from pipeline.build import build_corpus
from pipeline.config import BuildConfig
from pipeline.errors import RecordRejected
from pipeline.finalise import validate_corpus
from pipeline.wfdb_io import read_record
from schemas import REJECTIONS


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture(scope="module")
def served(ptbxl_sample: Path, tmp_path_factory) -> tuple[Path, str]:
    """(local folder, URL of the same folder) for a copy of the sample plus a format-212 record."""
    root = tmp_path_factory.mktemp("www")
    shutil.copytree(ptbxl_sample, root / "ptbxl")
    rec = wfdb.rdrecord(str(ptbxl_sample / "records500/06000/06000_hr"))
    (root / "extra").mkdir()
    wfdb.wrsamp(
        "r212",
        fs=500,
        units=["mV"] * 12,
        sig_name=rec.sig_name,
        p_signal=rec.p_signal,
        fmt=["212"] * 12,
        adc_gain=[200.0] * 12,
        baseline=[0] * 12,
        write_dir=str(root / "extra"),
    )
    handler = functools.partial(QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_records_read_over_http_equal_local(served):
    root, url = served
    fast = read_record(f"{url}/ptbxl/records500/06000/06001_hr")
    local = read_record(root / "ptbxl/records500/06000/06001_hr")
    assert fast.leads == local.leads and np.array_equal(fast.signal, local.signal)
    fallback = read_record(f"{url}/extra/r212")  # format 212: the wfdb path, via a local copy
    np.testing.assert_array_equal(fallback.signal, read_record(root / "extra/r212").signal)
    with pytest.raises(RecordRejected) as err:
        read_record(f"{url}/ptbxl/records500/00000/00001_hr")
    assert err.value.reason == "missing_file"


def test_url_build_equals_local_build(served, tmp_path):
    root, url = served
    # content fingerprints: a stat's identity differs by store (mtime_ns here, ETag or
    # Last-Modified there), the bytes do not
    local_cfg = BuildConfig(ptbxl=root / "ptbxl", out=tmp_path / "local", workers=1)
    local = build_corpus(local_cfg.model_copy(update={"fingerprint": "content"}))
    remote_cfg = BuildConfig(ptbxl=f"{url}/ptbxl", out=tmp_path / "remote", workers=2)
    remote = build_corpus(remote_cfg.model_copy(update={"fingerprint": "content"}))
    assert [(f.path, f.sha256) for f in remote.files] == [(f.path, f.sha256) for f in local.files]
    assert remote.rejections.sha256 == local.rejections.sha256
    assert remote.fingerprints.sha256 == local.fingerprints.sha256
    assert validate_corpus(tmp_path / "remote") == []
    ledger = pq.read_table(tmp_path / "remote" / REJECTIONS).to_pylist()
    assert [(r["record_id"], r["reason"]) for r in ledger] == [("1", "missing_file")]


def test_url_outputs_are_refused_clearly():
    with pytest.raises(ValueError, match="out must be a local folder"):
        BuildConfig(out="s3://bucket/corpus")


def test_cli_takes_a_url_input(served, tmp_path):
    from pipeline.cli import main

    _, url = served
    out = tmp_path / "cli"
    assert main(["build", "--ptbxl", f"{url}/ptbxl", "--out", str(out), "--workers", "1"]) == 0
    assert validate_corpus(out) == []
