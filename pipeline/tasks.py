"""Structured facts a record's own metadata supports, for the question–answer task families.

Every answer is computed from the record's fields, never invented:

* ``rhythm`` and ``diagnosis`` (PTB-XL): the record's SCP-ECG statements (``scp_codes``), described
  with PTB-XL's ``scp_statements.csv``; diagnostic statements only at likelihood >= a threshold
  (rhythm statements carry likelihood 0, "unspecified", in PTB-XL and always count).
* ``heart_rate``, ``intervals``, ``axes`` (MIMIC-IV-ECG): the machine measurements, range-checked;
  values outside physiological ranges (e.g. the 29999 sentinels) are dropped, and a task is only
  offered when all of its values survive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from pipeline.splits import stable_unit
from pipeline.storage import Location, csv_source, exists, join

# Plausible ranges (inclusive). Outside them a machine value is treated as missing.
RANGES: dict[str, tuple[float, float]] = {
    "heart_rate_bpm": (20, 300),
    "pr_ms": (50, 400),
    "qrs_ms": (40, 250),
    "qt_ms": (200, 700),
    "p_axis": (-180, 360),
    "qrs_axis": (-180, 360),
    "t_axis": (-180, 360),
}
TASK_FIELDS: dict[str, tuple[str, ...]] = {
    "rhythm": ("rhythm_statements",),
    "diagnosis": ("diagnostic_statements",),
    "heart_rate": ("heart_rate_bpm",),
    "intervals": ("pr_ms", "qrs_ms", "qt_ms"),
    "axes": ("p_axis", "qrs_axis", "t_axis"),
}


@dataclass(frozen=True)
class ScpStatement:
    """One SCP-ECG statement of PTB-XL's catalogue."""

    code: str
    description: str
    diagnostic: bool
    rhythm: bool


def load_scp_statements(root: Location) -> dict[str, ScpStatement]:
    """PTB-XL's ``scp_statements.csv`` (code -> statement); empty when the file is absent."""
    path = join(root, "scp_statements.csv")
    if not exists(path):
        return {}
    frame = pl.read_csv(csv_source(path), infer_schema_length=0)
    code_col = frame.columns[0]
    out = {}
    for row in frame.iter_rows(named=True):
        out[row[code_col]] = ScpStatement(
            code=row[code_col],
            description=(row.get("description") or row[code_col]).strip(),
            diagnostic=(row.get("diagnostic") or "") not in ("", "0", "0.0"),
            rhythm=(row.get("rhythm") or "") not in ("", "0", "0.0"),
        )
    return out


def in_range(name: str, value: float | None) -> float | None:
    """``value`` if it lies in the plausible range of ``name``, else None."""
    if value is None:
        return None
    lo, hi = RANGES[name]
    return value if lo <= value <= hi else None


def _number(data: dict, key: str) -> float | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def measurement_facts(measurements_json: str | None) -> dict[str, int | None]:
    """Heart rate, PR/QRS/QT and the P/QRS/T axes from MIMIC's machine measurements."""
    data = json.loads(measurements_json) if measurements_json else {}
    rr = _number(data, "rr_interval")
    p_on, qrs_on = _number(data, "p_onset"), _number(data, "qrs_onset")
    qrs_end, t_end = _number(data, "qrs_end"), _number(data, "t_end")

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    sentinel_free = {
        k: v
        for k, v in (
            ("p_onset", p_on),
            ("qrs_onset", qrs_on),
            ("qrs_end", qrs_end),
            ("t_end", t_end),
        )
        if v is not None and 0 <= v < 5000
    }
    p_on, qrs_on = sentinel_free.get("p_onset"), sentinel_free.get("qrs_onset")
    qrs_end, t_end = sentinel_free.get("qrs_end"), sentinel_free.get("t_end")
    raw = {
        "heart_rate_bpm": 60000.0 / rr if rr and rr > 0 else None,
        "pr_ms": diff(qrs_on, p_on),
        "qrs_ms": diff(qrs_end, qrs_on),
        "qt_ms": diff(t_end, qrs_on),
        "p_axis": _number(data, "p_axis"),
        "qrs_axis": _number(data, "qrs_axis"),
        "t_axis": _number(data, "t_axis"),
    }
    facts = {}
    for name, value in raw.items():
        checked = in_range(name, value)
        facts[name] = None if checked is None else int(round(checked))
    return facts


def scp_facts(
    scp_json: str | None, catalogue: dict[str, ScpStatement], min_likelihood: float
) -> dict[str, list[str] | None]:
    """Rhythm statements and diagnostic statements (likelihood >= ``min_likelihood``), described."""
    codes = json.loads(scp_json) if scp_json else {}
    rhythm, diagnostic = [], []
    for code, likelihood in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])):
        st = catalogue.get(code)
        if st is None:
            continue
        if st.rhythm:
            rhythm.append(st.description)
        elif st.diagnostic and likelihood >= min_likelihood:
            diagnostic.append(st.description)
    return {"rhythm_statements": rhythm or None, "diagnostic_statements": diagnostic or None}


def record_facts(
    row: dict, source: str, catalogue: dict[str, ScpStatement], min_likelihood: float
) -> dict:
    """All task facts of one record (None where the record's data does not support them)."""
    facts: dict = {name: None for fields in TASK_FIELDS.values() for name in fields}
    if source == "ptbxl" or row.get("scp_codes"):
        facts.update(scp_facts(row.get("scp_codes"), catalogue, min_likelihood))
    if source == "mimic" or row.get("measurements"):
        facts.update(measurement_facts(row.get("measurements")))
    return facts


def available_tasks(facts: dict) -> list[str]:
    """Question–answer tasks whose every fact is present for this record."""
    return [t for t, names in TASK_FIELDS.items() if all(facts.get(n) is not None for n in names)]


def draw_tasks(
    row_id: str, available: list[str], weights: dict[str, float], k: int, seed: int
) -> list[str]:
    """Up to ``k`` distinct tasks, drawn without replacement by weight, seeded by the row id."""
    pool = [t for t in available if weights.get(t, 0) > 0]
    chosen: list[str] = []
    for i in range(min(k, len(pool))):
        total = sum(weights[t] for t in pool)
        u = stable_unit(f"task{i}", row_id, seed) * total
        for t in pool:
            u -= weights[t]
            if u < 0:
                break
        chosen.append(t)
        pool.remove(t)
    return chosen
