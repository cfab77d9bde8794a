"""Terminal presentation for the CLI: a progress bar and the end-of-build summary table (rich)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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
