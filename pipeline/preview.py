"""Clinical ECG previews: one corpus row (and, with ``raw``, its record as stored) on ECG paper.

The drawing is ``ecg_plot``'s (its ``12lead`` layout: I/II/III, aVR/aVL/aVF, V1–V3, V4–V6 at 2.5 s
each, a 10 s lead II rhythm strip, 25 mm/s, 10 mm per unit, a 1 mm / 5 mm grid, a calibration
pulse, one amplitude scale shared by every lead, lead names; its geometry is in millimetres and
its figures are sized so that 1 mm of grid is 1 mm at any dpi). ``wfdb.plot``'s ``ecg_grids``
was not used: it stacks one autoscaled axes per lead, with a 0.125 mV minor grid and no layout,
calibration pulse or rhythm strip.

Amplitude honesty: a corpus row holds the *conditioned* signal, in the units the build's
``signal.normalise`` left it in (mV only for ``none``); its chart says that unit, never mV for
normalised values. The raw chart reads the record through its source's metadata reader and the
pipeline's WFDB reader (:func:`pipeline.conditioning.load_one`) and is drawn in mV.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas import CANONICAL_LEADS, Manifest

SPEED_MM_S = 25.0
GAIN_MM = 10.0  # mm per unit of the chart (per mV for a chart in mV)
DPI = 150
HEADER_FONT_PT = 8.0
MM_PER_INCH = 25.4


class PreviewError(ValueError):
    """A preview cannot be drawn (no input folder for ``--raw``, a record that no longer reads)."""


@dataclass(frozen=True)
class Unit:
    """What one unit of a chart's amplitude is: ``short`` in the scale (mm/<short>), ``long`` in words."""

    short: str
    long: str


MV = Unit("mV", "mV")
UNITS: dict[str, Unit] = {
    "none": MV,
    "zscore": Unit("SD", "z-score units (each lead scaled to mean 0, SD 1; not mV)"),
    "meit": Unit("unit", "min-max units (the record scaled to 0..1; not mV)"),
}


@dataclass(frozen=True)
class SignalView:
    """A 12 x N signal in canonical lead order with its rate, unit and a one-line label."""

    ecg: np.ndarray
    fs: float
    unit: Unit
    label: str


def row_unit(normalise: str) -> Unit:
    """The unit of a corpus row's ``ecg`` built with ``signal.normalise`` = ``normalise``."""
    return UNITS.get(normalise, Unit("unit", f"{normalise} units (not mV)"))


def conditioned_view(row: dict, manifest: Manifest) -> SignalView:
    """The row's ``ecg`` as stored in the corpus, in the units the manifest's config gives."""
    normalise = manifest.config.get("signal", {}).get("normalise", "none")
    unit = row_unit(normalise)
    label = f"corpus row, conditioned (normalise: {normalise}), {row['fs']} Hz, {unit.long}"
    return SignalView(np.asarray(row["ecg"], dtype=np.float64), float(row["fs"]), unit, label)


# ---------------------------------------------------------------- the record as stored


def input_root(manifest: Manifest, source: str, corpus: Path) -> str | Path:
    """The source's input folder the manifest records: as written (a URL, or a path from the
    working directory), else beside the corpus (the demo's ``demo-data/`` is written there)."""
    from pipeline.storage import is_url

    cfg = manifest.config
    recorded = (
        cfg.get(source) if source in ("ptbxl", "mimic") else cfg.get("sources", {}).get(source)
    )
    if not recorded:
        raise PreviewError(f"--raw: the manifest records no input folder for source {source!r}")
    if is_url(recorded):
        return recorded
    for candidate in (Path(recorded), Path(corpus).resolve().parent / recorded):
        if candidate.is_dir():
            return candidate
    raise PreviewError(
        f"--raw: the {source} input folder {recorded} (from the manifest) is not found "
        f"from here nor beside {corpus}"
    )


def raw_view(row: dict, manifest: Manifest, corpus: Path) -> SignalView:
    """The row's record read from its WFDB files (canonical lead order, mV, the source's rate)."""
    import polars as pl

    from pipeline.conditioning import load_one
    from pipeline.config import BuildConfig
    from pipeline.errors import InputError, RecordRejected
    from pipeline.sources import registry

    name = row["source"]
    sources = registry()
    if name not in sources:
        raise PreviewError(f"--raw: source {name!r} is not a built-in source")
    root = input_root(manifest, name, corpus)
    only = {"ptbxl": None, "mimic": None, "sources": {}}
    only |= {name: root} if name in ("ptbxl", "mimic") else {"sources": {name: root}}
    try:
        cfg = BuildConfig.model_validate({**manifest.config, **only, "limit": None})
        frame = sources[name].prepare(root, cfg)
        match = frame.filter(pl.col("record_id") == row["record_id"])
        if not match.height:
            raise PreviewError(f"--raw: record {row['record_id']} is not listed in {root}")
        loaded = load_one(root, match.row(0, named=True), cfg)
    except (InputError, RecordRejected, OSError, ValueError) as exc:
        if isinstance(exc, PreviewError):
            raise
        raise PreviewError(f"--raw: {name}/{row['record_id']} in {root}: {exc}") from None
    label = f"record as stored in WFDB, {loaded.fs:g} Hz, mV (no conditioning)"
    return SignalView(np.asarray(loaded.signal, dtype=np.float64), float(loaded.fs), MV, label)


# ---------------------------------------------------------------- drawing


def relabel_units(ax, unit: Unit) -> None:
    """Say ``unit`` instead of mV in ``ecg_plot``'s footer (scale, amplitude and calibration)."""
    if unit == MV:
        return
    for text in ax.texts:
        said = text.get_text()
        if "mV" in said:
            said = said.replace("mm/mV", f"mm/{unit.short}")
            said = said.replace("amplitude: mV", f"amplitude: {unit.long}")
            text.set_text(said.replace("1 mV", f"1 {unit.short}"))


def chart(view: SignalView):
    """``(Figure, Axes)`` of ``view`` on ECG paper; the axes' data coordinates are millimetres."""
    import ecg_plot

    duration = view.ecg.shape[1] / view.fs
    style = ecg_plot.Style(
        line_color="black", major_color="#f2a7a7", minor_color="#fbe0e0", line_width=0.2
    )
    drawn = ecg_plot.plot(
        np.where(np.isfinite(view.ecg), view.ecg, np.nan),
        sample_rate=view.fs,
        lead_names=list(CANONICAL_LEADS),
        layout="12lead",
        time_mode="sequential",
        rhythm_lead="II",
        window=(0.0, min(duration, 10.0)),
        speed=SPEED_MM_S,
        gain=GAIN_MM,
        style=style,
        title=view.label,
    )
    fig, ax = drawn.to_matplotlib()
    relabel_units(ax, view.unit)
    return fig, ax


def header_lines(row: dict, width_mm: float) -> list[str]:
    """The header: id, split, template and task, then the instruction and the report, wrapped."""
    chars = int(width_mm / (HEADER_FONT_PT * MM_PER_INCH / 72 * 0.55))
    user = next((m["content"] for m in row["messages"] if m["role"] == "user"), "")
    answer = row["messages"][-1]["content"] if row["messages"] else ""
    first = (
        f"{row['id']}   split {row['split']}   template {row['template_id']}   task {row['task']}"
    )
    lines = [first]
    lines += textwrap.wrap(f"Instruction: {user}", chars) or ["Instruction:"]
    lines += textwrap.wrap(f"Report: {answer}", chars) or ["Report:"]
    return lines


def header_figure(lines: list[str], width_mm: float):
    """A figure ``width_mm`` wide holding ``lines`` of text (same mm scale as the charts)."""
    from matplotlib.figure import Figure

    line_mm = HEADER_FONT_PT * MM_PER_INCH / 72 * 1.5
    height_mm = 6 + line_mm * len(lines)
    fig = Figure(figsize=(width_mm / MM_PER_INCH, height_mm / MM_PER_INCH))
    for k, line in enumerate(lines):
        y = 1 - (4 + line_mm * (k + 0.8)) / height_mm
        fig.text(12 / width_mm, y, line, fontsize=HEADER_FONT_PT, family="sans-serif")
    return fig


def figure_pixels(fig, dpi: int) -> np.ndarray:
    """The RGBA pixels of ``fig`` saved at ``dpi`` (its full size, nothing cropped)."""
    import matplotlib.image as mpimg

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    buf.seek(0)
    return mpimg.imread(buf, format="png")


def stack(images: list[np.ndarray]) -> np.ndarray:
    """Images one above the other, left-aligned, narrower ones padded with white."""
    width = max(im.shape[1] for im in images)
    padded = [
        np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=1.0) for im in images
    ]
    return np.concatenate(padded, axis=0)


def draw_preview(row: dict, views: list[SignalView], out: Path, dpi: int = DPI) -> Path:
    """Write a PNG of the header and one chart per view (the raw record above the row)."""
    import matplotlib.image as mpimg

    charts = [chart(v)[0] for v in views]
    width_mm = max(f.get_size_inches()[0] for f in charts) * MM_PER_INCH
    figures = [header_figure(header_lines(row, width_mm), width_mm), *charts]
    pixels = stack([figure_pixels(f, dpi) for f in figures])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    mpimg.imsave(out, pixels, dpi=dpi)
    return out
