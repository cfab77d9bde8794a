"""pytest plugin for mutation runs (``make mutate``, ``-p tests.mutation_order``): fastest tests first.

mutmut's forkserver runs the tests it selected for a mutant in set order and stops at the first
failure (``-x``), so a killed mutant often paid for slow tests that could not kill it before a fast
one that did. Sorted by the call times mutmut recorded (``mutmut-stats.json`` in the directory the
tests run in), a killed mutant costs about its fastest failing test, as with mutmut's fork runner.
pytest then groups tests that share a module- or session-scoped fixture, keeping this order
between the groups, so no fixture is built twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

STATS = Path("mutmut-stats.json")


def fastest_first(nodeids: list[str], durations: dict[str, float]) -> list[str]:
    """``nodeids`` by recorded duration, unknown ones first (new tests are usually small)."""
    return sorted(nodeids, key=lambda n: durations.get(n, 0.0))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not STATS.is_file():
        return
    durations = json.loads(STATS.read_text()).get("duration_by_test", {})
    order = {n: i for i, n in enumerate(fastest_first([it.nodeid for it in items], durations))}
    items.sort(key=lambda it: order[it.nodeid])
