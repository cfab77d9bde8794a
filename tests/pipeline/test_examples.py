"""Rendering a unit's rows: the template catalogue a worker keeps between units is the one on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.examples import cached_catalog
from templates import TEMPLATES_DIR


def test_the_kept_catalogue_follows_the_template_files(tmp_path: Path):
    """Parsed once while the files are unchanged; an edited template is parsed again."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    first = cached_catalog(folder)
    assert cached_catalog(folder) is first
    edited = first.templates[0]
    path = folder / edited.path
    path.write_text(path.read_text() + "\nPlease be brief.\n")
    again = cached_catalog(folder)
    assert again.by_id(edited.id).source_text.rstrip().endswith("Please be brief.")
    assert again.by_id(edited.id).source_text != edited.source_text
