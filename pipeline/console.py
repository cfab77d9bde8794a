"""Terminal presentation for the CLI (rich): the build's progress bar and summary table, the
download's progress bars."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from pipeline.download import DownloadPlan, FileOutcome
from pipeline.units import UnitResult
from schemas import SPLITS, Manifest


@contextmanager
def build_progress(console: Console) -> Iterator[tuple]:
    """A progress bar over records; yields (on_plan, on_done) callbacks for ``build_corpus``.
    The bar appears once the build is planned, so a mistake found before is its one line alone."""
    progress = Progress(
        TextColumn("[bold]building"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("build", total=None)

    def on_plan(total: int) -> None:
        progress.update(task, total=total)
        progress.start()

    def on_done(result: UnitResult) -> None:
        progress.advance(task, result.inputs)

    try:
        yield on_plan, on_done
    finally:
        if progress.live.is_started:
            progress.stop()


def summary_table(manifest: Manifest) -> Table:
    """Kept per split and rejected per reason, one row per source."""
    table = Table(title="corpus")
    table.add_column("source")
    table.add_column("seen", justify="right")
    for split in SPLITS:
        table.add_column(split, justify="right")
    table.add_column("rejected (reason × n)")
    for name, c in manifest.counts.items():
        reasons = ", ".join(f"{r} × {n}" for r, n in c.rejected.items()) or "-"
        label = f"{name} (synthetic)" if c.synthetic else name
        table.add_row(label, str(c.seen), *(str(c.kept.get(s, 0)) for s in SPLITS), reasons)
    return table


@contextmanager
def download_progress(console: Console, plan: DownloadPlan) -> Iterator[tuple]:
    """A rich bar over bytes (total: the sizes known so far, the others estimated at their mean),
    with files done, rate and ETA; yields (on_bytes, on_size, on_file) for :func:`download`."""
    progress = Progress(
        TextColumn("[bold]downloading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[files]}"),
        console=console,
        transient=False,
    )
    n = len(plan.tasks)
    task = progress.add_task("download", total=None, files=f"0/{n} files")
    seen = {"sized": 0, "bytes": 0, "files": 0}
    lock = threading.Lock()

    def on_size(size: int | None) -> None:
        if size is None:
            return
        with lock:
            seen["sized"] += 1
            seen["bytes"] += size
            total = seen["bytes"] + (n - seen["sized"]) * seen["bytes"] // seen["sized"]
        progress.update(task, total=total)

    def on_file(outcome: FileOutcome) -> None:
        with lock:
            seen["files"] += 1
            files = seen["files"]
        progress.update(task, files=f"{files}/{n} files")

    with progress:
        yield (lambda k: progress.advance(task, k)), on_size, on_file


@contextmanager
def check_progress(console: Console, total: int) -> Iterator[Callable[[int], None]]:
    """A bar over the listed files while those already in the folder are hashed (minutes for
    MIMIC-IV-ECG's 90 GB); yields its ``advance``. Gone when done."""
    progress = Progress(
        TextColumn("[bold]checking"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files already here"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a log gets no trace of it
    )
    task = progress.add_task("check", total=total)
    with progress:
        yield lambda n: progress.advance(task, n)


def print_lines(console: Console, lines: Iterable[str]) -> None:
    """Each line as plain text (no markup, no wrapping)."""
    for line in lines:
        console.print(escape(line), highlight=False, soft_wrap=True)
