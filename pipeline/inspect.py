"""Look at a built corpus: summary statistics and a 12-lead picture of one record."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas import CANONICAL_LEADS, Manifest


def corpus_stats(corpus: Path, manifest: Manifest) -> dict:
    """Rows per source and split, report length (words) and templates used."""
    rows: dict[str, dict[str, int]] = {}
    words: list[int] = []
    for f in manifest.files:
        rows.setdefault(f.source or "?", {})[f.split or "?"] = f.rows
        reports = pq.read_table(Path(corpus) / f.path, columns=["report"])["report"]
        words.extend(len(r.split()) for r in reports.to_pylist())
    lengths = np.array(words or [0])
    return {
        "rows": rows,
        "report_words": {
            "mean": float(lengths.mean()),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
        },
        "templates_used": len(manifest.templates),
        "rejected": {n: c.rejected for n, c in manifest.counts.items()},
    }


def find_row(corpus: Path, manifest: Manifest, row_id: str | None) -> dict:
    """One row as a dict: the row ``row_id``, or the first row of the corpus when None."""
    for f in manifest.files:
        if row_id is not None and f.source and not row_id.startswith(f"{f.source}/"):
            continue
        table = pq.read_table(Path(corpus) / f.path)
        if row_id is not None:
            table = table.filter(pc.equal(table["id"], row_id))
        if table.num_rows:
            return table.slice(0, 1).to_pylist()[0]
    raise KeyError(f"no row with id {row_id!r} in {corpus}")


def plot_row(row: dict, png: Path) -> Path:
    """Draw the row's 12 leads with its instruction and report; write a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ecg = np.asarray(row["ecg"], dtype=np.float32)
    t = np.arange(ecg.shape[1]) / row["fs"]
    fig, axes = plt.subplots(6, 2, figsize=(14, 11), sharex=True)
    for i, ax in enumerate(axes.T.reshape(-1)):
        ax.plot(t, ecg[i], lw=0.6, color="black")
        ax.set_ylabel(CANONICAL_LEADS[i], rotation=0, labelpad=14)
        ax.grid(True, lw=0.3, color="tab:red", alpha=0.4)
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    user = row["messages"][0]["content"]
    report = row["messages"][-1]["content"]
    title = (
        f"{row['id']}  (split {row['split']}, template {row['template_id']})\n"
        + textwrap.fill(f"USER: {user}", 150)
        + "\n"
        + textwrap.fill(f"REPORT: {report}", 150)
    )
    fig.suptitle(title, fontsize=9, ha="left", x=0.02)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png
