"""A small synthetic corpus in the real shard layout, for tests and benchmarks.

The ``ecg`` column is written without dictionary encoding: reading it is ~5x faster that way.

ECGs come from ``neurokit2.ecg_simulate(method="multileads")`` (a few distinct simulations, re-used
with a per-row gain and noise); reports are short phrases from a fixed list, so a tiny model can
learn them. Rows are written with :func:`schemas.corpus_schema` and described by a :class:`Manifest`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import (
    CANONICAL_LEADS,
    SCHEMA_VERSION,
    FileEntry,
    Manifest,
    SourceCounts,
    corpus_schema,
)
from schemas.corpus import rejection_schema

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


def simulate_ecgs(n_distinct: int, n_samples: int, fs: int, seed: int) -> np.ndarray:
    """``n_distinct`` simulated 12-lead ECGs, shape (n, 12, n_samples), float32 mV."""
    import neurokit2 as nk

    sim_fs = 500  # ecgsyn can stall at low rates; simulate at 500 Hz and decimate
    step = max(1, round(sim_fs / fs))
    out = np.empty((n_distinct, len(CANONICAL_LEADS), n_samples), np.float32)
    for i in range(n_distinct):
        df = nk.ecg_simulate(
            duration=int(np.ceil(n_samples * step / sim_fs)) + 1,
            sampling_rate=sim_fs,
            method="multileads",
            heart_rate=55 + 15 * (i % 4),
            random_state=seed + i,
        )
        out[i] = df[list(CANONICAL_LEADS)].to_numpy().T[:, ::step][:, :n_samples]
    return out


def ecg_array(sig: np.ndarray) -> pa.FixedSizeListArray:
    """Arrow ``ecg`` column from an (n, 12, T) array, built without Python lists."""
    n, leads, t = sig.shape
    flat = pa.array(np.ascontiguousarray(sig, np.float16).reshape(-1), pa.float16())
    return pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(flat, t), leads)


def normalise_meit(sig: np.ndarray) -> np.ndarray:
    """MEIT's min-max over each whole record (all leads and samples) of (n, 12, T) ``sig``."""
    lo = sig.min(axis=(1, 2), keepdims=True)
    span = sig.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (sig - lo) / np.where(span > 0, span, 1), 0.0)


def _rows(
    source: str,
    split: str,
    start: int,
    n: int,
    ecgs: np.ndarray,
    fs: int,
    rng,
    normalise: str = "none",
) -> dict:
    """Column dict of ``n`` rows of ``source``/``split``."""
    k = np.arange(start, start + n) % len(REPORTS)
    sig = ecgs[k % len(ecgs)] * rng.uniform(0.8, 1.2, (n, 1, 1))
    sig = sig + rng.normal(0, 0.01, sig.shape)
    sig = (normalise_meit(sig) if normalise == "meit" else sig).astype(np.float16)
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
        "ecg": ecg_array(sig),
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    rows = rows or {
        ("ptbxl", "train"): 32,
        ("ptbxl", "test"): 8,
        ("mimic", "train"): 0,
        ("mimic", "test"): 8,
    }
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
            rel = f"{source}/{split}-{s:05d}-of-{n_shards:05d}.parquet"
            (out / source).mkdir(exist_ok=True)
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
                    path=rel, rows=len(chunk), sha256=_sha256(out / rel), source=source, split=split
                )
            )
            start += len(chunk)
    pq.write_table(rejection_schema().empty_table(), out / "rejections.parquet")
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
        rejections=FileEntry(
            path="rejections.parquet", rows=0, sha256=_sha256(out / "rejections.parquet")
        ),
        counts=counts,
    )
    (out / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return out
