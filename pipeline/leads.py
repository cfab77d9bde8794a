"""Lead names: map whatever a header calls a lead onto the canonical 12-lead order, by name."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.errors import RecordRejected
from schemas import CANONICAL_LEADS

_ALIASES = {"avr": "aVR", "avl": "aVL", "avf": "aVF"}


def canonical_name(name: str) -> str:
    """Canonical spelling of a lead name (``AVR`` -> ``aVR``, ``v1`` -> ``V1``)."""
    key = name.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    return key.upper()


def canonical_order(names: Sequence[str]) -> np.ndarray:
    """Indices that pick the canonical leads out of a record whose leads are ``names``.

    Raises ``RecordRejected("missing_leads")`` when a canonical lead is absent and
    ``RecordRejected("duplicate_leads")`` when one appears twice.
    """
    canon = [canonical_name(n) for n in names]
    if len(set(canon)) != len(canon):
        raise RecordRejected("duplicate_leads", f"leads {list(names)}")
    position = {n: i for i, n in enumerate(canon)}
    missing = [lead for lead in CANONICAL_LEADS if lead not in position]
    if missing:
        raise RecordRejected("missing_leads", f"missing {missing}; record has {list(names)}")
    return np.array([position[lead] for lead in CANONICAL_LEADS], dtype=np.intp)
