"""Helpers of .ci/mutate: a group's mutmut settings, and per-module scores from mutmut's results."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

GROUPS = Path(__file__).with_name("mutation.toml")
LINE = re.compile(r"^\s*(?P<module>[\w.]+)\.x[\wǁ]*?__mutmut_\d+: (?P<status>.+)$")
KILLED = {"killed", "timeout"}


def group_settings(pyproject: str, group: str, root: Path) -> str:
    """``pyproject`` text with its ``[tool.mutmut]`` narrowed to ``group``'s modules and to those of
    its tests that exist under ``root``, with the group's ``pytest_args`` (if any) added to pytest's."""
    spec = tomllib.loads(GROUPS.read_text())[group]
    existing = [p for p in spec["tests"] if (root / p).exists()]
    if not existing:
        raise SystemExit(f"mutation group {group}: none of its tests exist under {root}")
    head, sep, tail = pyproject.partition("[tool.mutmut]\n")
    if not sep:
        raise SystemExit("pyproject.toml has no [tool.mutmut] section")
    body = re.sub(r"only_mutate = \[.*?\]\n", "", tail, flags=re.S)
    body = re.sub(r"pytest_add_cli_args_test_selection = \[.*?\]\n", "", body, flags=re.S)
    extra = "".join(f"{json.dumps(a)}, " for a in spec.get("pytest_args", []))
    body = body.replace("pytest_add_cli_args = [", f"pytest_add_cli_args = [{extra}", 1)
    return (
        head
        + sep
        + f"only_mutate = {json.dumps(spec['mutate'])}\n"
        + f"pytest_add_cli_args_test_selection = {json.dumps(existing)}\n"
        + body
    )


def scores(lines: list[str]) -> dict[str, dict]:
    """Module -> total, killed (killed + timeout), score, and the surviving mutants by status."""
    out: dict[str, dict] = defaultdict(lambda: {"total": 0, "killed": 0, "survivors": []})
    for line in lines:
        m = LINE.match(line)
        if not m or m["status"].strip() == "not checked":
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


def main(argv: list[str]) -> None:
    """``groups`` | ``settings GROUP PYPROJECT`` | ``scores RESULTS...``."""
    if argv[0] == "groups":
        print(" ".join(tomllib.loads(GROUPS.read_text())))
    elif argv[0] == "settings":
        path = Path(argv[2])
        path.write_text(group_settings(path.read_text(), argv[1], path.parent))
    elif argv[0] == "scores":
        lines = [line for f in argv[1:] for line in Path(f).read_text().splitlines()]
        print(json.dumps(scores(lines), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1:])
