"""The corpus's dataset card (README.md): the Hub's YAML metadata and a body a researcher can cite.

The metadata is built with ``huggingface_hub.DatasetCardData`` and ``datasets``' own
``DatasetInfosDict`` (features from :func:`schemas.hf_features`, split sizes from the shards):
``license`` (per source; ``other`` with the list when sources differ or the data are synthetic),
``pretty_name``, ``language``, ``size_categories``, ``source_datasets``, ``task_categories``,
``tags``, ``configs`` and ``dataset_info``. ``datasets.load_dataset(<corpus dir>)`` takes the
``default`` config (all sources); each source also has its own (``load_dataset(dir, "ptbxl")``).

The body: a SYNTHETIC warning for the demo, sources and their licenses, counts and rejections,
splits with patients over the kept rows, the conditioning settings, the translation method and its
measured coverage, known limitations, a link to the statistics report, and BibTeX.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from pipeline.sources import Source
from schemas import CANONICAL_LEADS, REJECTIONS, REPORT_DIR, SPLITS, Manifest, hf_features

HUB_LICENSES = {"ptbxl": "cc-by-4.0", "mimic": "odbl"}
"""The Hub's license id of each built-in source (PhysioNet: PTB-XL CC BY 4.0, MIMIC-IV-ECG ODbL 1.0)."""
SOURCE_PAGES = {
    "ptbxl": "https://physionet.org/content/ptb-xl/1.0.3/",
    "mimic": "https://physionet.org/content/mimic-iv-ecg/1.0/",
}
"""Where each built-in source is published (the card's ``source_datasets``)."""
SYNTHETIC_LICENSE = "synthetic-demo-data"
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
)

CITATIONS = {
    "ptbxl": """@article{wagner2020ptbxl,
  title   = {{PTB-XL}, a large publicly available electrocardiography dataset},
  author  = {Wagner, Patrick and Strodthoff, Nils and Bousseljot, Ralf-Dieter and Kreiseler, Dieter
             and Lunze, Fatima I. and Samek, Wojciech and Schaeffter, Tobias},
  journal = {Scientific Data},
  volume  = {7},
  number  = {1},
  pages   = {154},
  year    = {2020},
  doi     = {10.1038/s41597-020-0495-6}
}

@misc{wagner2022ptbxl_physionet,
  title     = {{PTB-XL}, a large publicly available electrocardiography dataset (version 1.0.3)},
  author    = {Wagner, Patrick and Strodthoff, Nils and Bousseljot, Ralf-Dieter and Samek, Wojciech
               and Schaeffter, Tobias},
  publisher = {PhysioNet},
  year      = {2022},
  doi       = {10.13026/kfzx-aw45}
}""",
    "mimic": """@misc{gow2023mimicivecg,
  title     = {{MIMIC-IV-ECG}: Diagnostic Electrocardiogram Matched Subset (version 1.0)},
  author    = {Gow, Brian and Pollard, Tom and Nathanson, Larry A. and Johnson, Alistair and
               Moody, Benjamin and Fernandes, Chrystinne and Greenbaum, Nathaniel and
               Waks, Jonathan W. and Eslami, Parastou and Carbonati, Tanner and Chaudhari, Ashish
               and Herbst, Elizabeth and Moukheiber, Dana and Berkowitz, Seth and Mark, Roger and
               Horng, Steven},
  publisher = {PhysioNet},
  year      = {2023},
  doi       = {10.13026/4nqg-sb35}
}""",
}
PHYSIONET_CITATION = """@article{goldberger2000physionet,
  title   = {{PhysioBank}, {PhysioToolkit}, and {PhysioNet}: Components of a New Research Resource
             for Complex Physiologic Signals},
  author  = {Goldberger, Ary L. and Amaral, Luis A. N. and Glass, Leon and Hausdorff, Jeffrey M.
             and Ivanov, Plamen Ch. and Mark, Roger G. and Mietus, Joseph E. and Moody, George B.
             and Peng, Chung-Kang and Stanley, H. Eugene},
  journal = {Circulation},
  volume  = {101},
  number  = {23},
  pages   = {e215--e220},
  year    = {2000},
  doi     = {10.1161/01.CIR.101.23.e215}
}"""
MEIT_CITATION = """@article{wan2024meit,
  title   = {{MEIT}: Multi-Modal Electrocardiogram Instruction Tuning on Large Language Models for
             Report Generation},
  author  = {Wan, Zhongwei and Liu, Che and Wang, Xin and Tao, Chaofan and Shen, Hui and Peng,
             Zhenwu and Fu, Jie and Arcucci, Rossella and Yao, Huaxiu and Zhang, Mi},
  journal = {arXiv preprint arXiv:2403.04945},
  year    = {2024}
}"""

SPLIT_MODES = {
    "folds": "the dataset's own stratified folds (patient-level)",
    "patient": "stable hash of the patient id (patient-level)",
    "meit": "MEIT's released record-level split: **leaks patients across splits**; for "
    "comparison with the paper only",
}
TRANSLATION_METHODS = {
    "glossary": "an offline, deterministic glossary translator (`pipeline/text/glossary/`: "
    "curated German and Swedish phrases applied longest-match-first on word boundaries, after "
    "folding umlaut spellings)",
    "csv": "a public translation table keyed by record id (`text.translation_csv`)",
    "marian": "a local MarianMT model (`text.marian_model`)",
}


# ---------------------------------------------------------------- metadata


def shard_bytes(corpus: Path, manifest: Manifest) -> dict[str, tuple[int, int]]:
    """Per listed shard: (bytes on disk, uncompressed bytes of its row groups)."""
    sizes = {}
    for f in manifest.files:
        path = Path(corpus) / f.path
        meta = pq.read_metadata(path)
        data = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        sizes[f.path] = (path.stat().st_size, data)
    return sizes


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` value for a number of rows."""
    for limit, name in SIZE_CATEGORIES:
        if rows < limit:
            return name
    return "n>100M"


def card_license(manifest: Manifest, sources: Mapping[str, Source]) -> dict:
    """``license`` (one Hub id when every source has the same), else ``other`` with
    ``license_name`` naming the list and ``license_link`` to the card's Licenses section."""
    if any(c.synthetic for c in manifest.counts.values()):
        return {"license": "other", "license_name": SYNTHETIC_LICENSE, "license_link": "#licenses"}
    ids = sorted({HUB_LICENSES.get(n, _slug(sources, n)) for n in manifest.counts})
    if len(ids) == 1 and ids[0] in HUB_LICENSES.values():
        return {"license": ids[0]}
    return {"license": "other", "license_name": "-and-".join(ids), "license_link": "#licenses"}


def _slug(sources: Mapping[str, Source], name: str) -> str:
    src = sources.get(name)
    text = src.license if src is not None else f"{name}-license"
    return "-".join("".join(c if c.isalnum() or c == "." else " " for c in text).lower().split())


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


def _dataset_info(
    manifest: Manifest, sizes: Mapping[str, tuple[int, int]], configs: list[str]
) -> list[dict] | dict:
    """``dataset_info`` per config: features, and per split num_examples and num_bytes."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    features = hf_features(manifest.n_samples)
    infos = {}
    for config in configs:
        files = [f for f in manifest.files if config == "default" or f.source == config]
        splits = SplitDict()
        for split in SPLITS:
            mine = [f for f in files if f.split == split]
            if mine:
                splits.add(
                    SplitInfo(
                        name=split,
                        num_examples=sum(f.rows for f in mine),
                        num_bytes=sum(sizes.get(f.path, (0, 0))[1] for f in mine),
                    )
                )
        infos[config] = DatasetInfo(
            features=features,
            splits=splits,
            download_size=sum(sizes.get(f.path, (0, 0))[0] for f in files),
            dataset_size=sum(sizes.get(f.path, (0, 0))[1] for f in files),
        )
    data = DatasetCardData()
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return data.to_dict()["dataset_info"]


def card_front_matter(
    manifest: Manifest,
    sources: Mapping[str, Source] | None = None,
    sizes: Mapping[str, tuple[int, int]] | None = None,
) -> dict:
    """The YAML header: Hub metadata, one ``default`` config with every source, then one
    config per source, and ``dataset_info`` for each."""
    sources = sources or {}
    names = sorted({f.source for f in manifest.files if f.source})
    configs = [
        {"config_name": "default", "default": True, "data_files": _data_files(manifest, None)}
    ]
    for source in names:
        configs.append({"config_name": source, "data_files": _data_files(manifest, source)})
    synthetic = any(c.synthetic for c in manifest.counts.values())
    pages = [SOURCE_PAGES.get(n, n) for n in sorted(manifest.counts)]
    tags = ["ecg", "electrocardiogram", "medical", "physionet", "instruction-tuning", "meit"]
    return {
        "pretty_name": "MEIT ECG instruction corpus" + (" (SYNTHETIC demo)" if synthetic else ""),
        **card_license(manifest, sources),
        "language": ["en"],
        "size_categories": [size_category(sum(f.rows for f in manifest.files))],
        "source_datasets": ["original"] if synthetic else pages,
        "task_categories": ["text-generation"],
        "tags": tags + (["synthetic"] if synthetic else []),
        "configs": configs,
        "dataset_info": _dataset_info(manifest, sizes or {}, ["default", *names]),
    }


# ---------------------------------------------------------------- body


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


def _license_lines(manifest: Manifest, sources: Mapping[str, Source]) -> str:
    if any(c.synthetic for c in manifest.counts.values()):
        return (
            "The records are synthetic: generated by the meit-corpus demo (MIT), they are not "
            "PhysioNet data. Do not publish them as a dataset."
        )
    lines = []
    for n in sorted(manifest.counts):
        src = sources.get(n)
        title = src.title if src else n
        hub = HUB_LICENSES.get(n, "other")
        what = src.license if src else "see the source"
        lines.append(f"- `{n}` ({title}): `{hub}` ({what}), {SOURCE_PAGES.get(n, 'the source')}")
    return (
        "Each source's rows are under that source's license; a mix is under all of them:\n"
        + "\n".join(lines)
    )


def _splits_section(manifest: Manifest) -> str:
    lines = []
    for name, audit in sorted(manifest.splits.items()):
        patients = ", ".join(f"{s} {audit.patients.get(s, 0)}" for s in SPLITS)
        lines.append(
            f"- {name}: {SPLIT_MODES.get(audit.mode, audit.mode)}; patients of the kept rows: "
            f"{patients}; patients in more than one split: {audit.leaking_patients}"
        )
    return "\n".join(lines) or "- none"


def _conditioning_section(manifest: Manifest) -> str:
    signal = manifest.config.get("signal", {})

    def setting(key: str, unit: str = " Hz") -> str:
        value = signal.get(key)
        return "none" if value is None else f"`{value}`{unit}"

    return "\n".join(
        [
            f"- output rate {manifest.fs} Hz (other rates resampled with scipy's "
            "`resample_poly`, anti-aliased), "
            f"{signal.get('duration_s', manifest.n_samples / manifest.fs)} s "
            "(cropped or edge-padded; `n_cropped`, `n_padded` per row)",
            f"- band-pass {setting('bandpass_hz')}, high-pass {setting('highpass_hz')}, "
            f"notch {setting('notch_hz')} (Butterworth, zero-phase)",
            f"- normalisation {setting('normalise', '')} (`none`: millivolts as recorded)",
            f"- missing samples: gaps up to {signal.get('max_nan_gap_s', '?')} s interpolated "
            f"(`nan_repaired`); a lead with more than {signal.get('max_nan_fraction', '?')} "
            "missing is rejected; flat, saturated or missing leads are rejected",
            f"- full settings and their hash: `manifest.json` (`config`, `config_hash` "
            f"{manifest.config_hash[:12]})",
        ]
    )


def _text_section(manifest: Manifest) -> str:
    text_cfg = manifest.config.get("text", {})
    method = text_cfg.get("translation", "glossary")
    lines = [
        f"- PTB-XL's German and Swedish reports are translated to English with "
        f"{TRANSLATION_METHODS.get(method, method)}; `report_original` keeps the source text, "
        "`untranslated` the tokens left as they were.",
        "- MIMIC-IV-ECG machine statements are cleaned by named rules (device warnings and "
        "non-findings dropped, EKG -> ECG) and joined in order.",
    ]
    for name, t in sorted(manifest.text.items()):
        langs = ", ".join(f"{k} {v}" for k, v in t.get("languages", {}).items())
        cov = t.get("translation_coverage")
        measured = (
            f"; measured translation coverage {cov:.2%} of {t['foreign_tokens']} non-English "
            f"tokens, {t.get('incompletely_translated_reports', 0)} reports with a token left"
            if cov is not None
            else ""
        )
        top = ", ".join(f"`{tok}` {n}" for tok, n in t.get("top_untranslated", [])[:10])
        lines.append(
            f"- {name}: report languages {langs or 'n/a'}{measured}"
            + (f"; most frequent untranslated: {top}" if top else "")
        )
    tasks = ", ".join(f"{k} {v}" for k, v in manifest.tasks.items())
    lines.append(f"- rows per task: {tasks or 'n/a'}; templates used: {len(manifest.templates)}")
    return "\n".join(lines)


def _limitations(manifest: Manifest) -> str:
    lines = [
        "- Reports are machine or cardiologist statements, not free clinical narratives; "
        "translations are glossary-level, not fluent prose.",
        "- Question answers (rhythm, diagnosis, heart rate, intervals, axes) come from the "
        "source's own labels and machine measurements, which carry their errors.",
        "- `ecg` is stored as float16 (about 3 significant digits).",
        "- Records failing a quality check are left out (see the rejections); the corpus is not "
        "a random sample of the sources.",
    ]
    if any(a.mode == "meit" for a in manifest.splits.values()):
        lines.append("- MEIT's record-level split leaks patients between splits (see Splits).")
    return "\n".join(lines)


def _citations(manifest: Manifest) -> str:
    blocks = [CITATIONS[n] for n in sorted(manifest.counts) if n in CITATIONS]
    return "\n\n".join([*blocks, PHYSIONET_CITATION, MEIT_CITATION])


def render_card(
    manifest: Manifest,
    sources: Mapping[str, Source],
    sizes: Mapping[str, tuple[int, int]] | None = None,
) -> str:
    """The whole README.md of a corpus (``sources``: name -> source, for titles and licenses;
    ``sizes``: :func:`shard_bytes`, for the split sizes in ``dataset_info``)."""
    synthetic = sorted(n for n, c in manifest.counts.items() if c.synthetic)
    warning = (
        f"\n> [!WARNING]\n> **SYNTHETIC DATA — not for research or publication.** The "
        f"{', '.join(synthetic)} records of this corpus were generated (neurokit2 "
        "`ecg_simulate`) by the meit-corpus demo; they are not PhysioNet data and are for "
        "trying the pipeline only.\n"
        if synthetic
        else ""
    )
    reasons = sorted({(n, r, k) for n, c in manifest.counts.items() for r, k in c.rejected.items()})
    rejected = "\n".join(f"- {n}: {r} × {k}" for n, r, k in reasons) or "- none"
    front = card_front_matter(manifest, sources, sizes)
    return (
        "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n"
        f"# {front['pretty_name']}\n"
        f"{warning}\n"
        "ECG–report instruction pairs for Multimodal ECG Instruction Tuning (MEIT), built by "
        "meit-corpus.\n\n"
        '```python\nfrom datasets import load_dataset\nds = load_dataset("<this folder>")  '
        '# or load_dataset("<this folder>", "ptbxl")\n```\n\n'
        f"Statistics and figures: [{REPORT_DIR}/index.html]({REPORT_DIR}/index.html) (written by "
        "`meit-corpus report`).\n\n"
        f"## Sources\n{_source_lines(manifest, sources)}\n\n"
        f"## Counts\n{_counts_table(manifest)}\n\nRejected records by reason (details in "
        f"`{REJECTIONS}`):\n{rejected}\n\n"
        "## Rows\n"
        f"`ecg` is float16, {len(CANONICAL_LEADS)} × {manifest.n_samples} at {manifest.fs} Hz, "
        f"leads in the order {' '.join(manifest.lead_order)}. `messages` holds the user "
        "instruction then the assistant (the report, or a question's answer computed from the "
        "record's own data); `report_original` the text as in the source. `manifest.json` has "
        f"the build configuration, file checksums and counts (schema {manifest.schema_version}).\n\n"
        f"## Splits\n{_splits_section(manifest)}\n\n"
        f"## Conditioning\n{_conditioning_section(manifest)}\n\n"
        f"## Text\n{_text_section(manifest)}\n\n"
        f"## Known limitations\n{_limitations(manifest)}\n\n"
        f"## Licenses\n{_license_lines(manifest, sources)}\n\n"
        "## Citation\nCite the sources, PhysioNet and MEIT:\n\n"
        f"```bibtex\n{_citations(manifest)}\n```\n"
    )
