"""Console output of the trainer: one rich progress bar on stderr, with per-command columns."""

from __future__ import annotations


def progress(title: str, fields: list[str], enabled: bool):
    """A rich progress bar on stderr: ``title``, bar, done/total, ``fields`` (rich text columns
    that may read ``task.fields``), elapsed and remaining time; a no-op one when not ``enabled``."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(title),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(f) for f in fields),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
