"""Input checks of ``meit-train`` and ``meit-eval``, run before any weights are loaded.

Each failed check raises :class:`InputError` with one line that names the mistake; the CLI prints
it and exits 2. Nothing here imports torch, so the checks are cheap and the missing ``train`` extra
is itself one of them.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from meit_train.corpus import CorpusError, Selection, load_manifest, normalisation, selected_units

TRAIN_EXTRA = 'pip install "meit-corpus[train]"'
RUN_FILES = ("run.json", "config.yaml", "metrics.jsonl", "checkpoints", "final", "best")
"""What a run directory holds; ``--overwrite`` removes exactly these and the ``eval-*`` files."""
WEIGHTS = ("final", "best", "latest")
"""Which weights of a run ``meit-eval`` loads: the end of training, the best validation loss, or
the newest checkpoint (``final`` falls back to the newest checkpoint of an unfinished run)."""


class InputError(ValueError):
    """A user mistake in the command line or its inputs (one line, exit 2)."""


def require_train_extra() -> None:
    """Raise unless torch, transformers and peft import (they come with the ``train`` extra)."""
    missing = []
    for name in ("torch", "transformers", "peft"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise InputError(f"{', '.join(missing)} not installed; the trainer needs: {TRAIN_EXTRA}")


def offline() -> bool:
    """Whether the Hugging Face hub may not be contacted (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def check_model(name: str) -> None:
    """``name`` is a local model folder (with ``config.json``), a hub model in the local cache,
    or a hub name while online."""
    path = Path(name)
    if path.exists():
        if not (path / "config.json").exists():
            raise InputError(f"model folder {name} has no config.json (not a Hugging Face model)")
        return
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # an invalid repo id is simply not cached
        cached = None
    if isinstance(cached, str):
        return
    if offline() or name.startswith((".", "/", "~")):
        raise InputError(
            f"model {name} is neither a local folder nor in the Hugging Face cache"
            + (" (offline: HF_HUB_OFFLINE is set)" if offline() else "")
        )


def check_corpus(corpus: Path, selection: Selection, normalise: str | None = None) -> int:
    """Rows of ``selection`` in ``corpus`` (readable manifest, rows present, normalisation as
    required)."""
    try:
        manifest = load_manifest(corpus)
        if normalise is not None and normalisation(manifest) != normalise:
            raise InputError(
                f"corpus {corpus} was built with normalise: {normalisation(manifest)}, this run "
                f"needs normalise: {normalise} (rebuild with signal.normalise: {normalise}, "
                "or set data.normalise: null)"
            )
        return sum(u.rows for u in selected_units(corpus, selection))
    except CorpusError as e:
        raise InputError(str(e)) from e


def read_run(run: Path) -> dict:
    """``run.json`` of a training run."""
    path = Path(run) / "run.json"
    if not Path(run).is_dir():
        raise InputError(f"run folder {run} does not exist")
    if not path.exists():
        raise InputError(f"{run} is not a meit-train run (no run.json)")
    return json.loads(path.read_text())


def weights_path(run: Path, which: str = "final") -> Path:
    """The ``trainable.pt`` of ``run`` that ``which`` names (see :data:`WEIGHTS`)."""
    run = Path(run)
    ckpts = sorted((run / "checkpoints").glob("step-*"))
    if which == "best":
        path = run / "best" / "trainable.pt"
        if not path.exists():
            raise InputError(f"{run} has no best/ weights (train with eval_every > 0)")
        return path
    final = run / "final" / "trainable.pt"
    if which == "final" and final.exists():
        return final
    if not ckpts:
        raise InputError(f"{run} has neither final weights nor checkpoints")
    return ckpts[-1] / "trainable.pt"


@dataclass(frozen=True)
class RunDir:
    """What ``--out`` holds before training."""

    finished: bool
    checkpoints: int


def inspect_out(out: Path) -> RunDir:
    """Whether ``out`` holds a finished run and how many checkpoints."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    return RunDir((out / "final").exists(), len(list((out / "checkpoints").glob("step-*"))))


def clear_run(out: Path) -> None:
    """Remove a run's files from ``out`` (nothing else in it)."""
    for name in RUN_FILES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for stale in out.glob("eval-*"):
        stale.unlink()


def describe_validation(error) -> str:
    """A pydantic ``ValidationError`` as one line: ``loc: message; loc: message``."""
    parts = []
    for e in error.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "config"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def check_train_inputs(
    corpus: Path, model: str, out: Path, cfg, overwrite: bool, resume_from: Path | None
) -> str:
    """Everything ``meit-train`` needs, checked before loading weights; returns what happens to
    ``out``: ``new``, ``resume`` (an unfinished run continues) or ``overwrite``."""
    data = cfg.data
    check_corpus(corpus, Selection(data.split, data.sources, data.template_ids), data.normalise)
    if cfg.eval_every:
        check_corpus(corpus, Selection(data.validation_split, data.sources, data.template_ids))
    check_model(model)
    if resume_from is not None and not (Path(resume_from) / "state.json").exists():
        raise InputError(f"--resume-from {resume_from} is not a checkpoint (no state.json)")
    state = inspect_out(Path(out))
    if state.finished and not overwrite:
        raise InputError(
            f"{out} holds a finished run (final/); pass --overwrite to train it again from the "
            "start, or choose another --out"
        )
    if overwrite:
        return "overwrite"
    return "resume" if state.checkpoints else "new"


def check_eval_inputs(
    corpus: Path,
    run: Path,
    split: str,
    sources: list[str] | None,
    weights: str,
    model: str | None,
    all_templates: bool = False,
) -> int:
    """Everything ``meit-eval`` needs, checked before loading weights; returns the row count."""
    from meit_train.config import TrainConfig

    info = read_run(run)
    cfg = TrainConfig.model_validate(info["config"])
    weights_path(run, weights)
    template_ids = None if all_templates else cfg.data.template_ids
    try:
        rows = check_corpus(corpus, Selection(split, sources, template_ids))
    except InputError as e:
        hint = " (--all-templates lifts the run's template filter)" if template_ids else ""
        raise InputError(f"{e}{hint}") from e
    check_model(model or info["model"])
    return rows
