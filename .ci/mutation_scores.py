"""Per-module mutation scores from ``mutmut results --all true`` (killed + timeout over all)."""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*(?P<module>[\w.]+)\.x[\w]*?__mutmut_\d+: (?P<status>.+)$")
KILLED = {"killed", "timeout"}


def scores(lines: list[str]) -> dict[str, dict]:
    """Module -> counts by status, score, and the surviving mutant names."""
    out: dict[str, dict] = defaultdict(lambda: {"total": 0, "killed": 0, "survivors": []})
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        entry = out[m["module"]]
        entry["total"] += 1
        if m["status"].strip() in KILLED:
            entry["killed"] += 1
        else:
            entry["survivors"].append(f"{line.split(':')[0].strip()} ({m['status'].strip()})")
    for entry in out.values():
        entry["score"] = round(entry["killed"] / entry["total"], 3) if entry["total"] else None
    return dict(sorted(out.items()))


if __name__ == "__main__":
    print(json.dumps(scores(open(sys.argv[1]).read().splitlines()), indent=2))
