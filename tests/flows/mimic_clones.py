"""Large MIMIC-IV-ECG-layout folders made cheaply, for the Dask scale test and
``benchmarks/bench_scale.py``: a few real PTB-XL signals written in MIMIC's layout
(:func:`pipeline.sources.mimic.write_mimic_layout`), then N studies whose headers are those renamed
and whose ``.dat`` are hard links to theirs (800k studies cost directory entries, not 9.6 GB), with
2-3 real MIMIC statements each."""

from __future__ import annotations

import csv
import errno
import itertools
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

T0 = datetime(2180, 1, 1)


@dataclass(frozen=True)
class Seeds:
    """The real-signal records every clone links to, the reports, and the CSV headers."""

    templates: tuple[Path, ...]
    reports: tuple[tuple[str, ...], ...]
    list_header: tuple[str, ...]
    mm_header: tuple[str, ...]


def write_seeds(base: Path, ptbxl_sample: Path, statements_tsv: Path, k: int = 8) -> Seeds:
    """``k`` real 500 Hz PTB-XL records written in MIMIC's layout under ``base``."""
    from pipeline.leads import canonical_order
    from pipeline.sources.mimic import MimicLayoutRecord, mimic_record_path, write_mimic_layout
    from pipeline.wfdb_io import read_record

    with open(statements_tsv, newline="") as f:
        said = [r["statement"] for r in csv.DictReader(f, delimiter="\t")][:200]
    reports = tuple(tuple(said[i : i + 2 + i % 2]) for i in range(0, len(said) - 3, 3))
    seeds = []
    for n, hea in enumerate(sorted((ptbxl_sample / "records500").glob("*/*_hr.hea"))[:k]):
        raw = read_record(hea.with_suffix(""))
        signal = raw.signal[canonical_order(raw.leads)]
        seeds.append(MimicLayoutRecord(10000000 + n, 49000000 + n, T0, signal, reports[n]))
    write_mimic_layout(base, seeds)
    with open(base / "record_list.csv", newline="") as f:
        list_header = tuple(next(csv.reader(f)))
    with open(base / "machine_measurements.csv", newline="") as f:
        mm_header = tuple(next(csv.reader(f)))
    templates = tuple(base / mimic_record_path(s.subject_id, s.study_id) for s in seeds)
    return Seeds(templates, reports, list_header, mm_header)


def hard_link(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src``, or to a copy of it beside it once ``src`` has as many
    links as the file system allows (ext4: 65,000; 800k studies on 8 seeds need more)."""
    for n in itertools.count():
        spare = src if n == 0 else src.with_name(f"{src.name}.{n}")
        if not spare.exists():
            shutil.copyfile(src, spare)
        try:
            os.link(spare, dst)
            return
        except OSError as exc:
            if exc.errno != errno.EMLINK:
                raise


def add_study(root: Path, i: int, seeds: Seeds) -> tuple[list, list]:
    """Write study ``i`` (header renamed, ``.dat`` hard-linked); its two CSV rows."""
    from pipeline.sources.mimic import mimic_record_path

    subject, study = 11000000 + i // 2, 40000000 + i
    rel = mimic_record_path(subject, study)
    folder = root / Path(rel).parent
    folder.mkdir(parents=True, exist_ok=True)
    src = seeds.templates[i % len(seeds.templates)]
    header = src.with_suffix(".hea").read_text().replace(src.name, str(study))
    (folder / f"{study}.hea").write_text(header)
    hard_link(src.with_suffix(".dat"), folder / f"{study}.dat")
    when = (T0 + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
    cells = {"subject_id": subject, "study_id": study, "ecg_time": when, "cart_id": 1}
    cells.update({f"report_{k}": s for k, s in enumerate(seeds.reports[i % len(seeds.reports)])})
    return [subject, study, study, when, rel], [cells.get(c, "") for c in seeds.mm_header]


def clone_mimic_layout(
    root: Path, ptbxl_sample: Path, statements_tsv: Path, n: int, k: int = 4
) -> Path:
    """An ``n``-study MIMIC-IV-ECG folder at ``root`` linking to ``k`` seed records."""
    seeds = write_seeds(root.parent / f"{root.name}-seeds", ptbxl_sample, statements_tsv, k)
    root.mkdir(parents=True)
    with (
        open(root / "record_list.csv", "w", newline="") as f_list,
        open(root / "machine_measurements.csv", "w", newline="") as f_mm,
    ):
        w_list, w_mm = csv.writer(f_list), csv.writer(f_mm)
        w_list.writerow(seeds.list_header)
        w_mm.writerow(seeds.mm_header)
        for i in range(n):
            listed, measured = add_study(root, i, seeds)
            w_list.writerow(listed)
            w_mm.writerow(measured)
    return root


def append_study(root: Path, i: int, ptbxl_sample: Path, statements_tsv: Path) -> None:
    """Add study ``i`` to an existing clone folder (files and both CSVs)."""
    seeds = write_seeds(root.parent / f"{root.name}-seeds-{i}", ptbxl_sample, statements_tsv, 1)
    listed, measured = add_study(root, i, seeds)
    for name, row in (("record_list.csv", listed), ("machine_measurements.csv", measured)):
        with open(root / name, "a", newline="") as f:
            csv.writer(f).writerow(row)
