"""``meit-corpus push`` on a corpus built from the real PTB-XL sample.

The live upload needs the Hub and a token, so it is not run here: ``--dry-run`` (the plan) is
tested through the CLI, and :func:`pipeline.publish.push` against a stand-in for ``HfApi`` that
selects files with huggingface_hub's own pattern filter (what its uploads do with
``allow_patterns``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from huggingface_hub.utils import filter_repo_objects

from pipeline.cli import main
from pipeline.publish import plan_push, push
from pipeline.shards import human_bytes
from schemas.layout import CARD, MANIFEST, PROGRESS_DIR, REPORT_DIR, read_manifest

REPO = "someone/meit-ptbxl-sample"


@pytest.fixture
def corpus(sample_corpus: Path, tmp_path: Path) -> Path:
    """A copy of the built sample with a report, a stray note and the build's own records."""
    out = tmp_path / "corpus"
    shutil.copytree(sample_corpus, out)
    (out / REPORT_DIR).mkdir(exist_ok=True)
    (out / REPORT_DIR / "index.html").write_text("<html>report</html>")
    (out / "notes.txt").write_text("not part of the corpus")
    assert any((out / PROGRESS_DIR).rglob("*"))  # the build left its records: never published
    return out


def expected(corpus: Path) -> list[str]:
    listed = {e.path for e in read_manifest(corpus).listed()}
    report = {f"{REPORT_DIR}/{p.name}" for p in (corpus / REPORT_DIR).iterdir()}
    return sorted(listed | report | {CARD, MANIFEST})


def test_dry_run_lists_the_manifest_files_card_and_report_and_sends_nothing(corpus, capsys):
    assert main(["push", str(corpus), "--repo", REPO, "--private", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"push {corpus} to the private dataset repository {REPO}:"
    files = {line.split()[-1]: line for line in lines[1:-1]}
    assert sorted(files) == expected(corpus)
    assert any(p.startswith("data/") for p in files) and "notes.txt" not in files
    assert not [p for p in files if p.startswith(PROGRESS_DIR)]
    shard = read_manifest(corpus).files[0].path
    assert human_bytes((corpus / shard).stat().st_size) in files[shard]
    total = sum((corpus / p).stat().st_size for p in files)
    assert lines[-1].startswith(f"{len(files)} files, {human_bytes(total)};")


def test_an_invalid_corpus_or_repository_name_is_refused_in_one_line(corpus, capsys):
    assert main(["push", str(corpus), "--repo", "not a name", "--dry-run"]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "--repo 'not a name'" in out
    assert main(["push", str(corpus), "--repo", "no-owner", "--dry-run"]) == 2
    assert "<user or organisation>/<dataset name>" in capsys.readouterr().out
    shard = read_manifest(corpus).files[0].path
    table = pq.read_table(corpus / shard)
    pq.write_table(table.slice(1), corpus / shard)  # a row lost after the build
    assert main(["push", str(corpus), "--repo", REPO, "--dry-run"]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"{corpus} is not a valid corpus: {shard}" in out


class FakeHub:
    """Records what ``push`` asks of the Hub; the remote holds an earlier build's files."""

    def __init__(self, remote: list[str]) -> None:
        self.remote, self.calls = list(remote), []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, allow_patterns, **kwargs):
        local = sorted(p.relative_to(folder_path).as_posix() for p in folder_path.rglob("*"))
        sent = list(filter_repo_objects(local, allow_patterns=allow_patterns))
        self.calls.append(("upload", repo_id, sent))
        self.remote = sorted(set(self.remote) | set(sent))

    def list_repo_files(self, repo_id, repo_type=None):
        return list(self.remote)

    def delete_files(self, repo_id, delete_patterns, **kwargs):
        self.calls.append(("delete", repo_id, delete_patterns))


class FakeLargeHub(FakeHub):
    """A huggingface_hub that still has ``upload_large_folder``."""

    def upload_large_folder(self, *, repo_id, folder_path, allow_patterns, **kwargs):
        self.upload_folder(repo_id=repo_id, folder_path=folder_path, allow_patterns=allow_patterns)


@pytest.mark.parametrize("hub", [FakeHub, FakeLargeHub], ids=["upload_folder", "large_folder"])
def test_push_uploads_the_plan_and_removes_an_earlier_builds_shards(corpus, hub):
    stale = "data/ptbxl/train-00000-of-00002.parquet"
    api = hub([stale, ".gitattributes", "notes/kept.md", CARD])
    url = push(plan_push(corpus, REPO, private=True), api)
    assert url == f"https://huggingface.co/datasets/{REPO}"
    (create, repo, kwargs), (upload, _, sent), (delete, _, deleted) = api.calls
    assert kwargs["repo_type"] == "dataset" and kwargs["private"] is True
    assert sent == expected(corpus)  # the files huggingface_hub's filter picks from the folder
    assert deleted == [stale]  # only the stale shard: files outside data/ meta/ report/ stay
