"""Synthetic demo data in PhysioNet's exact folder layouts, so the build runs with no download.

:func:`write_demo` writes ``out/ptbxl/`` (PTB-XL v1.0.3 layout) and ``out/mimic-iv-ecg/``
(MIMIC-IV-ECG v1.0 layout) plus ``out/SYNTHETIC.md``, through the sources' own layout writers
(``write_ptbxl_layout`` in :mod:`pipeline.sources.ptbxl`, ``write_mimic_layout`` in
:mod:`pipeline.sources.mimic`), so the readers parse them exactly as they parse the real folders. :func:`with_demo_inputs` points a
build config at a fresh demo (what ``meit-corpus build`` with no input does).

The parts, in the order a demo is made:

    metadata   database rows / studies: ids, patients, reports, statements, measurements
    synthesis  the ECG simulator (neurokit2): one signal per record, agreeing with its metadata
    defects    the table of documented defects planted at fixed positions
    write      the two folders and SYNTHETIC.md

Every report, statement and measurement agrees with the record's heart rate (brady < 60 <= normal
<= 100 < tachy) and MIMIC's qrs_axis with the simulated axis. Mains hum is 50 Hz for PTB-XL and
60 Hz for MIMIC. ``record_list.csv`` is sorted by (subject_id, ecg_time) while
``machine_measurements.csv`` is sorted by (subject_id, study_id), so pairing the two files by row
order (a known peer bug) gives wrong pairs; only a key merge is right. A decimated 100 Hz copy of
each PTB-XL record is written to ``records100`` so ``filename_lr`` resolves too.

Everything is seeded from ``seed`` (per record from ``(seed, source, record id)``) and no wall
clock is read: two calls with the same arguments write byte-identical files.
"""

from pipeline.demo.defects import DEFECTS, DemoDefect
from pipeline.demo.write import DemoPaths, with_demo_inputs, with_existing_demo, write_demo

__all__ = [
    "DEFECTS",
    "DemoDefect",
    "DemoPaths",
    "with_demo_inputs",
    "with_existing_demo",
    "write_demo",
]
