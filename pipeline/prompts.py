"""Instruction templates: load the catalog under ``templates/``, choose one per record, render it.

A question template (the user turn) names its answer template (the assistant turn) in its
metadata; ``templates/answers/`` holds those. The choice is a seeded hash of the row id over the
templates eligible for the record (its source and the facts the template requires), so a rebuild
chooses the same template for every record. Rendering is sandboxed and strict: a variable a
template uses but the record lacks is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from pipeline.hashing import stable_unit
from pipeline.qa import FACT_COLUMNS
from templates import TEMPLATES_DIR

CONTEXT_FIELDS: dict[str, str] = {
    "age": "age",
    "sex": "sex",
    "source": "source",
    "dataset_name": "source",
    "fs": "fs",
    "duration_s": "ecg",
    "n_leads": "ecg",
    "report": "report",
    **FACT_COLUMNS,
}
"""Variables a template may use, each with the row column (schema field) it is computed from."""


@dataclass(frozen=True)
class Template:
    """One instruction template and its metadata."""

    id: str
    task: str
    register: str
    origin: str
    source_text: str
    path: str
    sources: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    answer: str | None = None

    def applies_to(self, source: str, context: Mapping[str, object]) -> bool:
        """True when the template may be used for a record of ``source`` with ``context``."""
        if self.sources and source not in self.sources:
            return False
        return all(context.get(name) not in (None, [], "") for name in self.requires)


@dataclass(frozen=True)
class Catalog:
    """All templates, sorted by id, with their compiled forms."""

    templates: tuple[Template, ...]
    compiled: Mapping[str, jinja2.Template] = field(repr=False)

    def by_id(self, template_id: str) -> Template:
        """The template with this id."""
        for t in self.templates:
            if t.id == template_id:
                return t
        raise KeyError(template_id)


def parse_template_file(path: Path, root: Path) -> Template:
    """Split a ``.j2`` file into its YAML metadata comment and its template text."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("{#"):
        raise ValueError(f"{path}: a template must start with a {{# metadata #}} comment")
    end = text.index("#}")
    meta_text = text[2:end].strip().strip("-")
    body = text[end + 2 :]
    body = body[1:] if body.startswith("\n") else body
    meta = yaml.safe_load(meta_text) or {}
    missing = {"id", "task", "register", "origin"} - set(meta)
    if missing:
        raise ValueError(f"{path}: metadata lacks {sorted(missing)}")
    unknown = set(meta) - {"id", "task", "register", "origin", "sources", "requires", "answer"}
    if unknown:
        raise ValueError(f"{path}: unknown metadata keys {sorted(unknown)}")
    return Template(
        id=str(meta["id"]),
        task=str(meta["task"]),
        register=str(meta["register"]),
        origin=str(meta["origin"]),
        source_text=body,
        path=path.relative_to(root).as_posix(),
        sources=tuple(meta.get("sources") or ()),
        requires=tuple(meta.get("requires") or ()),
        answer=meta.get("answer"),
    )


def make_environment() -> SandboxedEnvironment:
    """The sandboxed, strict Jinja environment every template renders in."""
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
    )


def load_catalog(directory: Path | None = None) -> Catalog:
    """Load and compile every ``*.j2`` template under ``directory`` (default: ``templates/``)."""
    root = Path(directory) if directory is not None else TEMPLATES_DIR
    templates = sorted(
        (parse_template_file(p, root) for p in sorted(root.rglob("*.j2"))), key=lambda t: t.id
    )
    ids = [t.id for t in templates]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate template ids: {duplicates}")
    known = set(ids)
    for t in templates:
        if t.task != "answer" and t.answer not in known:
            raise ValueError(f"{t.path}: answer template {t.answer!r} not in the catalog")
    env = make_environment()
    compiled = {t.id: env.from_string(t.source_text) for t in templates}
    return Catalog(templates=tuple(templates), compiled=compiled)


def choose_template(
    catalog: Catalog,
    row_id: str,
    source: str,
    context: Mapping[str, object],
    seed: int,
    task: str = "report_generation",
) -> Template:
    """The template for one record: a seeded hash of ``row_id`` over the eligible templates."""
    candidates = [t for t in catalog.templates if t.task == task and t.applies_to(source, context)]
    if not candidates:
        raise ValueError(f"no {task} template applies to a {source} record")
    return candidates[int(stable_unit(f"template/{task}", row_id, seed) * len(candidates))]


def render(catalog: Catalog, template: Template, context: Mapping[str, object]) -> str:
    """Render ``template`` with ``context`` (strict: an undefined variable raises)."""
    return catalog.compiled[template.id].render(**context)


def render_pair(
    catalog: Catalog, template: Template, context: Mapping[str, object]
) -> tuple[str, str]:
    """The (user, assistant) turns of one example: the question and its data-derived answer."""
    if template.answer is None:
        raise ValueError(f"template {template.id} names no answer template")
    return render(catalog, template, context), render(
        catalog, catalog.by_id(template.answer), context
    )
