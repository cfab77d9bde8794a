"""A corpus built once per test session from the real PTB-XL sample, for tests that only read it
(the report, the previews). Tests that change a corpus build their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build import build_corpus
from pipeline.config import BuildConfig


@pytest.fixture(scope="session")
def sample_corpus(ptbxl_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real PTB-XL sample (8 records at 500 Hz; the 100 Hz-only one is rejected) built with
    the default config and two examples per record (so question rows exist too). Read-only."""
    out = tmp_path_factory.mktemp("sample") / "corpus"
    cfg = BuildConfig.model_validate(
        {"ptbxl": ptbxl_sample, "out": out, "workers": 1, "text": {"examples_per_record": 2}}
    )
    build_corpus(cfg)
    return out
