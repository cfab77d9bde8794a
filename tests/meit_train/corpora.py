"""Small synthetic corpora in the real shard layout, for the trainer's tests and benchmarks.

Written with the corpus contract of :mod:`schemas` (row schema, ``encode_ecg``, shard names,
``sha256_file``, the manifest model, the ledger), so the trainer reads them exactly as it reads a
built corpus; the ``ecg`` column is written without dictionary encoding (reading it is ~5x faster
that way). ECGs come from the pipeline's one simulator (:mod:`pipeline.demo.synthesis`): a few
distinct records, resampled and cropped as the pipeline conditions signals, re-used with a per-row
gain and noise. Reports are short phrases from a fixed list, so a tiny model can learn them.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.demo.synthesis import FS, simulate_records
from pipeline.signal import fix_length, resample
from pipeline.signal import normalise as normalise_signal
from schemas import (
    CANONICAL_LEADS,
    MANIFEST,
    REJECTIONS,
    SCHEMA_VERSION,
    FileEntry,
    Manifest,
    SourceCounts,
    corpus_schema,
    encode_ecg,
    rejection_table,
    sha256_file,
    shard_path,
)

REPORTS = (
    "sinus rhythm. normal ecg.",
    "sinus bradycardia. otherwise normal ecg.",
    "atrial fibrillation with rapid ventricular response.",
    "sinus tachycardia. left axis deviation.",
    "sinus rhythm. left ventricular hypertrophy.",
    "sinus rhythm. inferior infarct, age undetermined.",
)
INSTRUCTIONS = {
    "ptbxl": "generate a description of the ECG embeddings: ",
    "mimic": "Given the ECG signal embeddings, please help me generate an accurate description "
    "for this ECG signal embeddings: ",
}
"""MEIT's two fixed prompts (template ids ``report.meit_<source>``), verbatim."""
OTHER_TEMPLATE = ("report.synthetic.plain", "Describe this ECG.")
"""The instruction of every third row, so that a template filter has something to filter."""
DEFAULT_ROWS = {
    ("ptbxl", "train"): 32,
    ("ptbxl", "test"): 8,
    ("mimic", "train"): 0,
    ("mimic", "test"): 8,
}


def simulate_ecgs(n_distinct: int, n_samples: int, fs: int, seed: int) -> np.ndarray:
    """``n_distinct`` simulated 12-lead ECGs, shape (n, 12, n_samples), float32 mV."""
    records = simulate_records(n_distinct, seed, duration_s=math.ceil(n_samples / fs))
    signals, _, _ = fix_length(resample(records, FS, fs), n_samples)
    return signals.astype(np.float32)


def _rows(
    source: str, split: str, start: int, n: int, ecgs: np.ndarray, fs: int, rng, norm: str
) -> dict:
    """Column dict of ``n`` rows of ``source``/``split``, ids from ``start``."""
    k = np.arange(start, start + n) % len(REPORTS)
    sig = ecgs[k % len(ecgs)] * rng.uniform(0.8, 1.2, (n, 1, 1))
    sig = normalise_signal(sig + rng.normal(0, 0.01, sig.shape), norm)
    reports = [REPORTS[i] for i in k]
    ids = [str(100000 + start + j) for j in range(n)]
    templates = [
        OTHER_TEMPLATE if j % 3 == 2 else (f"report.meit_{source}", INSTRUCTIONS[source])
        for j in range(start, start + n)
    ]
    msgs = [
        [{"role": "user", "content": t[1]}, {"role": "assistant", "content": r}]
        for t, r in zip(templates, reports)
    ]
    return {
        "id": [f"{source}/{i}" for i in ids],
        "source": [source] * n,
        "record_id": ids,
        "patient_id": [str(int(i) // 2) for i in ids],
        "split": [split] * n,
        "ecg": encode_ecg(sig),
        "fs": [fs] * n,
        "messages": msgs,
        "template_id": [t[0] for t in templates],
        "task": ["report_generation"] * n,
        "report": reports,
        "report_original": reports,
        "report_language": ["en"] * n,
        "age": [60.0] * n,
        "sex": ["male"] * n,
        "source_fs": [fs] * n,
        "n_cropped": [0] * n,
        "n_padded": [0] * n,
        "nan_repaired": [0] * n,
        "scp_codes": [None] * n,
        "strat_fold": [None] * n,
        "measurements": [None] * n,
    }


def _default(field: pa.Field, n: int) -> list:
    """``n`` filler values for a schema column this writer does not know (null, 0, "" or [])."""
    if field.nullable:
        return [None] * n
    t = field.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [[] for _ in range(n)]
    if pa.types.is_string(t):
        return [""] * n
    return [0] * n


def _complete(columns: dict, schema: pa.Schema, n: int) -> dict:
    """``columns`` plus filler for every other column of ``schema`` (the schema may grow)."""
    return {f.name: columns[f.name] if f.name in columns else _default(f, n) for f in schema}


def write_synthetic_corpus(
    out: Path,
    rows: dict[tuple[str, str], int] | None = None,
    n_samples: int = 1000,
    fs: int = 100,
    shards: int = 2,
    row_group_size: int = 8,
    seed: int = 0,
    normalise: str = "none",
) -> Path:
    """Write a corpus with ``rows[(source, split)]`` rows each into ``out``; return ``out``.

    ``normalise``: ``none`` or ``meit`` (min-max per record), recorded in the manifest's config as
    the pipeline records it (``signal.normalise``)."""
    if normalise not in ("none", "meit"):
        raise ValueError(f"normalise must be none or meit, not {normalise!r}")
    rows = rows or DEFAULT_ROWS
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ecgs = simulate_ecgs(4, n_samples, fs, seed)
    schema = corpus_schema(n_samples)
    files, counts, start = [], {}, 0
    for (source, split), n in sorted(rows.items()):
        counts.setdefault(source, SourceCounts(synthetic=True))
        counts[source].seen += n
        counts[source].kept[split] = n
        if n == 0:
            continue
        n_shards = min(shards, n)
        for s, chunk in enumerate(np.array_split(np.arange(n), n_shards)):
            rel = shard_path(source, split, s, n_shards)
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            cols = _rows(source, split, start, len(chunk), ecgs, fs, rng, normalise)
            table = pa.Table.from_pydict(_complete(cols, schema, len(chunk)), schema)
            pq.write_table(
                table,
                out / rel,
                row_group_size=row_group_size,
                use_dictionary=[c for c in schema.names if c != "ecg"],
            )
            files.append(
                FileEntry(
                    path=rel,
                    rows=len(chunk),
                    sha256=sha256_file(out / rel),
                    source=source,
                    split=split,
                )
            )
            start += len(chunk)
    (out / REJECTIONS).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rejection_table([]), out / REJECTIONS)
    config = {
        "synthetic": True,
        "n_samples": n_samples,
        "fs": fs,
        "seed": seed,
        "signal": {"fs": fs, "normalise": normalise},
    }
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        config=config,
        config_hash=hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        lead_order=list(CANONICAL_LEADS),
        fs=fs,
        n_samples=n_samples,
        files=files,
        rejections=FileEntry(path=REJECTIONS, rows=0, sha256=sha256_file(out / REJECTIONS)),
        counts=counts,
    )
    (out / MANIFEST).write_text(manifest.model_dump_json(indent=2))
    return out
