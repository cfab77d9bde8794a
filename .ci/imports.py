"""Import rules of the repository, checked by ``make lint`` (imports inside functions count too).

1. No import circle among the project's modules.
2. The trainer (``meit_train``) imports nothing from ``pipeline`` or ``flows``: only ``schemas``.
3. ``pipeline`` and ``schemas`` import nothing from ``flows`` and never ``prefect`` (pure library).
4. ``schemas`` imports nothing from ``pipeline`` or ``meit_train`` (it is the contract both read).

Prints each violation on one line and exits 1 when there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("pipeline", "schemas", "flows", "meit_train", "templates")
FORBIDDEN = {
    "meit_train": ("pipeline", "flows"),
    "pipeline": ("flows", "prefect", "prefect_dask"),
    "schemas": ("pipeline", "meit_train", "flows", "prefect"),
}


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imported(path: Path, module: str) -> Iterator[str]:
    """Every absolute module name ``path`` imports (``from a import b`` yields ``a`` and ``a.b``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's own submodules not counted)."""
    mods = modules(root)
    return {
        m: {t for t in imported(p, m) if t in mods and t != m and not m.startswith(t + ".")}
        for m, p in mods.items()
    }


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(g):
        if start in index:
            continue
        work = [(start, iter(sorted(g[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def violations(root: Path) -> list[str]:
    """Every broken rule, one line each."""
    problems = [f"import circle: {' <-> '.join(c)}" for c in cycles(graph(root))]
    mods = modules(root)
    for m, path in mods.items():
        banned = FORBIDDEN.get(m.split(".")[0], ())
        for target in sorted(set(imported(path, m))):
            top = target.split(".")[0]
            if top in banned:
                problems.append(f"{path.relative_to(root)}: imports {target} (not allowed)")
    return sorted(set(problems))


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    problems = violations(root)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
