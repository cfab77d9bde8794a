"""``meit-corpus push``: publish a corpus folder as a Hugging Face dataset repository.

What goes up is what makes the folder a checked dataset, and nothing else:

- the files its manifest lists: the shards (``data/``), the rejection ledger, the input
  fingerprints and MEIT's jsonl (``meta/``). The ledger and fingerprints go too because the
  manifest lists them with their sha256: without them a clone would fail ``meit-corpus validate``,
  the card's counts (seen = kept + rejected) could not be checked, and a refresh from the clone
  would have to rebuild everything. They are not data: ``load_dataset`` reads ``data/`` only;
- the card (``README.md``) and ``manifest.json``;
- ``report/`` when ``meit-corpus report`` wrote one (the card links it).

Never ``_build/`` (a build's resume records), locks, or any file the manifest does not list. The
corpus is validated first; an invalid one is refused. After the upload, remote files under those
folders that this corpus does not have (shards of an earlier, differently sharded push) are
deleted, so the repository never mixes two builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.finalise import validate_corpus
from pipeline.shards import human_bytes
from schemas.layout import CARD, DATA_DIR, MANIFEST, META_DIR, REPORT_DIR, read_manifest

MANAGED = (DATA_DIR, META_DIR, REPORT_DIR)
"""Remote folders a push owns: what it did not upload there is deleted."""


class PushError(Exception):
    """The folder cannot be pushed (not a valid corpus, a bad repository name): nothing was sent."""


@dataclass(frozen=True)
class PushPlan:
    """What ``push`` would upload: repository, visibility, and (path, bytes) of every file."""

    repo: str
    folder: Path
    private: bool
    files: tuple[tuple[str, int], ...]

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.files]


def check_repo(repo: str) -> None:
    """:class:`PushError` unless ``repo`` is a valid Hub repository id (``user/name``)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise PushError(f"--repo {repo!r}: {str(exc).splitlines()[0]}") from None
    if repo.count("/") != 1:
        raise PushError(f"--repo {repo!r}: give it as <user or organisation>/<dataset name>")


def published_files(folder: Path) -> list[str]:
    """The corpus's files to publish, relative POSIX paths, sorted (see the module doc)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    paths = {entry.path for entry in manifest.listed()} | {CARD, MANIFEST}
    report = folder / REPORT_DIR
    if report.is_dir():
        paths |= {p.relative_to(folder).as_posix() for p in report.rglob("*") if p.is_file()}
    return sorted(paths)


def plan_push(folder: Path, repo: str, private: bool = False) -> PushPlan:
    """The upload of a valid corpus ``folder`` to ``repo``; :class:`PushError` for an invalid
    corpus (the first problem named) or repository name."""
    check_repo(repo)
    folder = Path(folder)
    problems = validate_corpus(folder)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PushError(
            f"{folder} is not a valid corpus: {problems[0]}{more}; see meit-corpus validate"
        )
    files = tuple((p, (folder / p).stat().st_size) for p in published_files(folder))
    return PushPlan(repo, folder, private, files)


def plan_lines(plan: PushPlan) -> list[str]:
    """``--dry-run``: the repository, every file with its size, the total."""
    visibility = "private" if plan.private else "public"
    lines = [f"push {plan.folder} to the {visibility} dataset repository {plan.repo}:"]
    lines += [f"{human_bytes(size):>10}  {path}" for path, size in plan.files]
    lines.append(
        f"{len(plan.files)} files, {human_bytes(plan.total_bytes)}; remote files under "
        f"{', '.join(d + '/' for d in MANAGED)} that are not in this list would be deleted"
    )
    return lines


def stale_remote(remote: list[str], plan: PushPlan) -> list[str]:
    """Remote files in the folders a push owns that this corpus does not have."""
    ours = set(plan.paths)
    return sorted(p for p in remote if p.split("/", 1)[0] in MANAGED and p not in ours)


def push(plan: PushPlan, api=None) -> str:
    """Create the dataset repository (kept if it exists), upload the plan's files, delete stale
    ones; the repository's URL. ``api`` is a ``huggingface_hub.HfApi`` (token from the usual
    login or ``HF_TOKEN``). Uses ``upload_large_folder`` (resumable, multi-commit) where the
    installed huggingface_hub has it, else ``upload_folder``, which took over its role."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    url = api.create_repo(plan.repo, repo_type="dataset", private=plan.private, exist_ok=True)
    upload = getattr(api, "upload_large_folder", None)
    if upload is not None:
        upload(
            repo_id=plan.repo,
            folder_path=plan.folder,
            repo_type="dataset",
            allow_patterns=plan.paths,
        )
    else:
        api.upload_folder(
            repo_id=plan.repo,
            folder_path=plan.folder,
            repo_type="dataset",
            allow_patterns=plan.paths,
            commit_message="meit-corpus push",
        )
    stale = stale_remote(api.list_repo_files(plan.repo, repo_type="dataset"), plan)
    if stale:
        api.delete_files(
            plan.repo,
            delete_patterns=stale,
            repo_type="dataset",
            commit_message="meit-corpus push: remove files of an earlier build",
        )
    return str(url)
