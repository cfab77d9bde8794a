"""`make lint`'s import rules (.ci/imports.py): circles, counted inside functions too, and the
imports the trainer and the pure library may not make."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def rules():
    spec = importlib.util.spec_from_file_location("import_rules", REPO / ".ci" / "imports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_this_repository_keeps_the_rules():
    assert rules().violations(REPO) == []


def test_a_circle_through_an_import_inside_a_function_is_found(tmp_path):
    root = tree(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/a.py": "from pipeline.b import x\n",
            "pipeline/b.py": "def x():\n    from pipeline import c\n",
            "pipeline/c.py": "import pipeline.a\n",
            "pipeline/d.py": "from pipeline.a import y\n",
        },
    )
    assert rules().violations(root) == ["import circle: pipeline.a <-> pipeline.b <-> pipeline.c"]


def test_relative_imports_and_forbidden_packages(tmp_path):
    root = tree(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/x.py": "from . import y\n",
            "pipeline/y.py": "def f():\n    from .x import g\n    import prefect\n",
            "meit_train/__init__.py": "",
            "meit_train/t.py": "from schemas import MANIFEST\nfrom pipeline.x import g\n",
            "schemas/__init__.py": "",
        },
    )
    assert rules().violations(root) == [
        "import circle: pipeline.x <-> pipeline.y",
        "meit_train/t.py: imports pipeline.x (not allowed)",
        "meit_train/t.py: imports pipeline.x.g (not allowed)",
        "pipeline/y.py: imports prefect (not allowed)",
    ]
