"""Clinical previews: ECG-paper geometry (25 mm/s, 10 mm per unit, mm-true figures), the record as
stored in WFDB drawn in mV, the row's own units said truthfully, and `inspect`'s one-line errors."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import wfdb

from pipeline.cli import main
from pipeline.inspect import find_row
from pipeline.preview import (
    DPI,
    PreviewError,
    chart,
    conditioned_view,
    header_figure,
    header_lines,
    input_root,
    raw_view,
)
from schemas import read_manifest

ROW = "ptbxl/6001"  # a real 500 Hz PTB-XL record of the shared sample
MM_PER_INCH = 25.4


def traces(ax) -> list:
    """The signal paths ecg_plot drew (lines with more points than a grid line or a pulse)."""
    return [line for line in ax.lines if len(line.get_ydata()) > 100]


def calibration_pulses(ax) -> list:
    """ecg_plot's 1-unit calibration pulses: 6-point paths shaped _|‾|_."""
    return [line for line in ax.lines if len(line.get_ydata()) == 6]


@pytest.fixture(scope="module")
def row_and_manifest(sample_corpus: Path):
    manifest = read_manifest(sample_corpus)
    return find_row(sample_corpus, manifest, ROW), manifest


def test_raw_view_is_the_wfdb_record_in_mv(row_and_manifest, sample_corpus, ptbxl_sample):
    row, manifest = row_and_manifest
    view = raw_view(row, manifest, sample_corpus)
    stored = wfdb.rdrecord(str(ptbxl_sample / "records500/06000/06001_hr"))
    lead_ii = stored.sig_name.index("II")
    assert view.unit.short == "mV" and view.fs == 500 and view.ecg.shape == (12, 5000)
    # exactly the stored samples (the corpus row is float16: it would differ by ~1e-3 mV)
    np.testing.assert_allclose(view.ecg[1], stored.p_signal[:, lead_ii], rtol=0, atol=1e-6)


def test_raw_chart_is_25_mm_per_s_and_10_mm_per_mv(row_and_manifest, sample_corpus):
    row, manifest = row_and_manifest
    view = raw_view(row, manifest, sample_corpus)
    fig, ax = chart(view)
    # 1 data unit of the axes is 1 mm of the saved figure at any dpi
    for dpi in (72, DPI):
        fig.set_dpi(dpi)
        (x0, y0), (x1, y1) = ax.transData.transform([(0, 0), (10, 10)])
        assert x1 - x0 == pytest.approx(10 * dpi / MM_PER_INCH, rel=1e-6)
        assert abs(y1 - y0) == pytest.approx(10 * dpi / MM_PER_INCH, rel=1e-6)
    # the rhythm strip (lead II, 10 s) spans 250 mm and its height in mm is 10 x its mV range
    strip = max(traces(ax), key=lambda line: len(line.get_xdata()))
    x, y = strip.get_xdata(), strip.get_ydata()
    assert x.max() - x.min() == pytest.approx(25 * (5000 - 1) / 500, abs=0.5)
    lead_ii = view.ecg[1]
    assert y.max() - y.min() == pytest.approx(10 * (lead_ii.max() - lead_ii.min()), rel=1e-6)
    # one shared scale: every calibration pulse is 10 mm (1 mV) high
    pulses = calibration_pulses(ax)
    assert len(pulses) == 4
    for pulse in pulses:
        assert np.ptp(pulse.get_ydata()) == pytest.approx(10.0)
    footer = " ".join(t.get_text() for t in ax.texts)
    assert "10 mm/mV" in footer and "25 mm/s" in footer


def test_a_normalised_row_is_not_labelled_mv(row_and_manifest):
    row, manifest = row_and_manifest
    zscore = manifest.model_copy(
        update={"config": {**manifest.config, "signal": {"normalise": "zscore"}}}
    )
    view = conditioned_view(row, zscore)
    _, ax = chart(view)
    said = " ".join(t.get_text() for t in ax.texts)
    assert not any(mv in said for mv in ("mm/mV", "amplitude: mV", "1 mV"))
    assert "10 mm/SD" in said and "z-score units" in said


def test_inspect_raw_writes_an_mm_true_png(sample_corpus: Path, tmp_path: Path, capsys):
    png = tmp_path / "preview.png"
    assert main(["inspect", str(sample_corpus), "--id", ROW, "--out", str(png), "--raw"]) == 0
    assert f"{ROW}: {png}" in capsys.readouterr().out
    manifest = read_manifest(sample_corpus)
    row = find_row(sample_corpus, manifest, ROW)
    conditioned = chart(conditioned_view(row, manifest))[0]
    raw = chart(raw_view(row, manifest, sample_corpus))[0]
    width_mm = conditioned.get_size_inches()[0] * MM_PER_INCH
    header = header_figure(header_lines(row, width_mm), width_mm)
    # the header, the raw chart above, the conditioned one below: each at its size, at DPI
    expected = [int(f.get_size_inches()[1] * DPI) for f in (header, raw, conditioned)]
    pixels = mpimg.imread(png)
    assert pixels.shape[:2] == (sum(expected), int(width_mm / MM_PER_INCH * DPI))


def test_raw_without_the_input_folder_is_one_line(row_and_manifest, sample_corpus: Path):
    row, manifest = row_and_manifest
    moved = manifest.model_copy(update={"config": {**manifest.config, "ptbxl": "gone/ptb-xl"}})
    with pytest.raises(PreviewError, match="input folder gone/ptb-xl .* is not found"):
        input_root(moved, "ptbxl", sample_corpus)
