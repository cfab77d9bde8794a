"""The corpus's dataset card (README.md) with the YAML ``configs:`` block Hugging Face reads.

``datasets.load_dataset(<corpus dir>)`` takes the ``default`` config (all sources); each source
also has its own config (``load_dataset(dir, "ptbxl")``).
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from pipeline.sources import Source
from schemas import CANONICAL_LEADS, SPLITS, Manifest


def _data_files(manifest: Manifest, source: str | None) -> list[dict]:
    files = []
    for split in SPLITS:
        paths = sorted(
            f.path
            for f in manifest.files
            if f.split == split and (source is None or f.source == source)
        )
        if paths:
            files.append({"split": split, "path": paths})
    return files


def card_front_matter(manifest: Manifest) -> dict:
    """The YAML header: one ``default`` config with every source, then one config per source."""
    configs = [
        {"config_name": "default", "default": True, "data_files": _data_files(manifest, None)}
    ]
    for source in sorted({f.source for f in manifest.files if f.source}):
        configs.append({"config_name": source, "data_files": _data_files(manifest, source)})
    return {"configs": configs, "task_categories": ["text-generation"], "tags": ["ecg", "meit"]}


def _counts_table(manifest: Manifest) -> str:
    lines = [
        "| source | seen | " + " | ".join(SPLITS) + " | rejected |",
        "|---" * (len(SPLITS) + 3) + "|",
    ]
    for name, c in sorted(manifest.counts.items()):
        kept = " | ".join(str(c.kept.get(s, 0)) for s in SPLITS)
        lines.append(f"| {name} | {c.seen} | {kept} | {c.rejected_total} |")
    return "\n".join(lines)


def _source_lines(manifest: Manifest, sources: Mapping[str, Source]) -> str:
    lines = []
    for n, c in sorted(manifest.counts.items()):
        src = sources.get(n)
        title, license_ = (src.title, src.license) if src else (n, "see the source")
        lines.append(
            f"- `{n}`: {title}{' (synthetic stand-in)' if c.synthetic else ''}, license {license_}"
            + (f". {src.card_text()}" if src else "")
        )
    return "\n".join(lines)


def render_card(manifest: Manifest, sources: Mapping[str, Source]) -> str:
    """The whole README.md of a corpus (``sources``: name -> source, for titles and licenses)."""
    synthetic = [n for n, c in manifest.counts.items() if c.synthetic]
    warning = (
        f"\n> **Synthetic data.** The {', '.join(sorted(synthetic))} records of this corpus were "
        "generated (neurokit2 `ecg_simulate`) by the meit-corpus demo; they are not PhysioNet "
        "data and are for trying the pipeline only.\n"
        if synthetic
        else ""
    )
    reasons = sorted({(n, r, k) for n, c in manifest.counts.items() for r, k in c.rejected.items()})
    rejected = "\n".join(f"- {n}: {r} × {k}" for n, r, k in reasons) or "- none"
    return (
        "---\n" + yaml.safe_dump(card_front_matter(manifest), sort_keys=False) + "---\n\n"
        "# MEIT ECG instruction corpus\n"
        f"{warning}\n"
        "ECG–report instruction pairs for Multimodal ECG Instruction Tuning, built by meit-corpus.\n\n"
        '```python\nfrom datasets import load_dataset\nds = load_dataset("<this folder>")  '
        '# or load_dataset("<this folder>", "ptbxl")\n```\n\n'
        f"## Sources\n{_source_lines(manifest, sources)}\n\n"
        f"## Counts\n{_counts_table(manifest)}\n\nRejected records by reason (details in "
        f"`rejections.parquet`):\n{rejected}\n\n"
        "## Rows\n"
        f"`ecg` is float16, {len(CANONICAL_LEADS)} × {manifest.n_samples} at {manifest.fs} Hz, "
        f"leads in the order {' '.join(manifest.lead_order)}. `messages` holds the user "
        "instruction then the assistant (the report, or a question's answer computed from the "
        "record's own data); `report_original` the text as in the source. `manifest.json` has "
        f"the build configuration, file checksums and counts (schema {manifest.schema_version}).\n\n"
        f"## Splits\n{_splits_section(manifest)}\n\n"
        f"## Text\n{_text_section(manifest)}\n"
    )


SPLIT_MODES = {
    "folds": "the dataset's own stratified folds (patient-level)",
    "patient": "stable hash of the patient id (patient-level)",
    "meit": "MEIT's released record-level split: **leaks patients across splits**; for "
    "comparison with the paper only",
}


def _splits_section(manifest: Manifest) -> str:
    lines = []
    for name, audit in sorted(manifest.splits.items()):
        patients = ", ".join(f"{s} {audit.patients.get(s, 0)}" for s in SPLITS)
        lines.append(
            f"- {name}: {SPLIT_MODES.get(audit.mode, audit.mode)}; patients: {patients}; "
            f"patients in more than one split: {audit.leaking_patients}"
        )
    return "\n".join(lines) or "- none"


def _text_section(manifest: Manifest) -> str:
    lines = []
    for name, t in sorted(manifest.text.items()):
        langs = ", ".join(f"{k} {v}" for k, v in t.get("languages", {}).items())
        cov = t.get("translation_coverage")
        cov_text = (
            f"; translation coverage {cov:.2%} of {t['foreign_tokens']} tokens" if cov else ""
        )
        lines.append(f"- {name}: report languages {langs or 'n/a'}{cov_text}")
    tasks = ", ".join(f"{k} {v}" for k, v in manifest.tasks.items())
    lines.append(f"- rows per task: {tasks or 'n/a'}; templates used: {len(manifest.templates)}")
    return "\n".join(lines)
