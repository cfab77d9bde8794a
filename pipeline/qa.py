"""Question–answer task families: which facts each needs, plausible ranges, the seeded draw.

This is the one list of tasks: the config's task weights, the template context and the template
folders all follow :data:`TASK_FACTS`. Every answer is a fact computed from the record's own
fields by its source (:meth:`pipeline.sources.Source.facts`), never invented; a task is offered
only when all of its facts are present.
"""

from __future__ import annotations

from pipeline.hashing import stable_unit

REPORT_TASK = "report_generation"
TASK_FACTS: dict[str, tuple[str, ...]] = {
    "rhythm": ("rhythm_statements",),
    "diagnosis": ("diagnostic_statements",),
    "heart_rate": ("heart_rate_bpm",),
    "intervals": ("pr_ms", "qrs_ms", "qt_ms"),
    "axes": ("p_axis", "qrs_axis", "t_axis"),
}
"""Each question–answer task and the facts its answer needs."""

TASKS: tuple[str, ...] = (REPORT_TASK, *TASK_FACTS)

FACT_COLUMNS: dict[str, str] = {
    "rhythm_statements": "scp_codes",
    "diagnostic_statements": "scp_codes",
    "heart_rate_bpm": "measurements",
    "pr_ms": "measurements",
    "qrs_ms": "measurements",
    "qt_ms": "measurements",
    "p_axis": "measurements",
    "qrs_axis": "measurements",
    "t_axis": "measurements",
}
"""The row column (schema field) each fact is computed from."""

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


def no_facts() -> dict:
    """Every fact, unknown (a source fills in what its records support)."""
    return {name: None for names in TASK_FACTS.values() for name in names}


def in_range(name: str, value: float | None) -> float | None:
    """``value`` if it lies in the plausible range of ``name``, else None."""
    if value is None:
        return None
    lo, hi = RANGES[name]
    return value if lo <= value <= hi else None


def available_tasks(facts: dict) -> list[str]:
    """Question–answer tasks whose every fact is present for this record."""
    return [t for t, names in TASK_FACTS.items() if all(facts.get(n) is not None for n in names)]


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
