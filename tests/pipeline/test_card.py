"""The dataset card and the Hub-shaped folder it describes.

``huggingface_hub.DatasetCard`` parses the card a build writes, with the metadata the Hub reads
(values checked against the Hub's own lists, written here as data: its validation endpoint needs
the network); ``datasets`` reads the card's ``dataset_info`` back; and polars, pyarrow and
``datasets.load_dataset`` (offline, through the card's configs) read exactly the manifest's rows
from ``data/``. Corpora: a small synthetic demo (both sources) and the real PTB-XL sample.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from pipeline.build import build_corpus
from pipeline.card import render_card
from pipeline.config import BuildConfig
from pipeline.demo import write_demo
from pipeline.sources import registry
from schemas import CARD, DATA_DIR, SPLITS, SourceCounts, corpus_schema, read_manifest

# The Hub's allowed values (huggingface.co/docs/hub/datasets-cards; the licenses table of
# huggingface.co/docs/hub/repositories-licenses), the part a corpus card can use.
HUB_LICENSES = {
    "apache-2.0", "mit", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0",
    "odbl", "odc-by", "pddl", "cdla-permissive-2.0", "other", "unknown",
}  # fmt: skip
HUB_SIZE_CATEGORIES = [
    "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B",
    "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T",
]  # fmt: skip
HUB_TASK_CATEGORIES = {"text-generation", "image-to-text", "time-series-forecasting", "other"}
BIBTEX_KEYS = ["wagner2020ptbxl", "gow2023mimicivecg", "goldberger2000physionet", "wan2024meit"]


@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic demo (12 PTB-XL + 12 MIMIC records, planted defects included)."""
    tmp = tmp_path_factory.mktemp("card")
    demo = write_demo(tmp / "inputs", n_ptbxl=12, n_mimic=12)
    out = tmp / "corpus"
    cfg = BuildConfig(ptbxl=demo.ptbxl, mimic=demo.mimic, out=out, workers=1, synthetic=True)
    build_corpus(cfg)
    return out


def load_card(corpus: Path):
    from huggingface_hub import DatasetCard

    return DatasetCard.load(corpus / CARD)


def manifest_rows(corpus: Path, source: str | None = None) -> dict[str, int]:
    """Rows per split the manifest lists (of one source, or all)."""
    files = [f for f in read_manifest(corpus).files if source in (None, f.source)]
    return {s: sum(f.rows for f in files if f.split == s) for s in SPLITS if any(f.split == s for f in files)}  # fmt: skip


def test_demo_card_metadata_is_what_the_hub_reads(demo_corpus: Path):
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    card = load_card(demo_corpus)
    data = card.data.to_dict()
    assert DatasetCardData(**data).to_dict() == data  # round trip through the Hub's model
    assert data["license"] == "other" and data["license_name"] == "synthetic-demo-data"
    assert data["pretty_name"] == "MEIT ECG instruction corpus (SYNTHETIC demo)"
    assert data["language"] == ["en"]
    assert data["source_datasets"] == ["original"]
    assert data["size_categories"] == ["n<1K"]
    assert data["task_categories"] == ["text-generation"]
    assert {data["license"]} <= HUB_LICENSES
    assert set(data["size_categories"]) <= set(HUB_SIZE_CATEGORIES)
    assert set(data["task_categories"]) <= HUB_TASK_CATEGORIES
    assert [c["config_name"] for c in data["configs"]] == ["default", "mimic", "ptbxl"]
    # dataset_info, read back by ``datasets``: features of the corpus schema, split sizes
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert sorted(infos) == ["default", "mimic", "ptbxl"]
    n_samples = read_manifest(demo_corpus).n_samples
    for config, info in infos.items():
        assert list(info.features) == corpus_schema(n_samples).names
        expected = manifest_rows(demo_corpus, None if config == "default" else config)
        assert {s: info.splits[s].num_examples for s in info.splits} == expected
        assert all(info.splits[s].num_bytes > 0 for s in info.splits)
        assert info.download_size > 0


def test_demo_card_body_flags_synthetic_data_and_cites(demo_corpus: Path):
    text = load_card(demo_corpus).text
    assert "> **SYNTHETIC DATA" in text.split("## Sources")[0]  # before anything else
    assert "[report/index.html](report/index.html) (written by `meit-corpus report`)" in text
    assert re.findall(r"^@\w+\{(\w+),", text, re.M) == [
        "gow2023mimicivecg",
        "wagner2020ptbxl",
        "wagner2022ptbxl_physionet",
        "goldberger2000physionet",
        "wan2024meit",
    ]
    bibtex = text.split("```bibtex\n")[1].split("```")[0]
    assert bibtex.count("{") == bibtex.count("}")
    for section in ("## Conditioning", "## Text", "## Known limitations", "## Licenses"):
        assert section in text


def test_real_card_license_coverage_and_patients_of_kept_rows(sample_corpus: Path):
    card = load_card(sample_corpus)
    assert card.data.license == "cc-by-4.0"
    assert card.data.source_datasets == ["https://physionet.org/content/ptb-xl/1.0.3/"]
    text = card.text
    manifest = read_manifest(sample_corpus)
    coverage = manifest.text["ptbxl"]["translation_coverage"]
    assert f"measured translation coverage {coverage:.2%}" in text
    # patients per split over the rows the corpus keeps (ecg_id 1 is rejected: not counted)
    rows = pl.read_parquet(
        sample_corpus / DATA_DIR / "**/*.parquet", columns=["patient_id", "split"]
    )
    kept = {s: rows.filter(pl.col("split") == s)["patient_id"].n_unique() for s in SPLITS}
    assert manifest.splits["ptbxl"].patients == kept == {"train": 6, "validation": 0, "test": 2}
    assert "patients of the kept rows: train 6, validation 0, test 2" in text


def test_mixed_sources_are_license_other_with_the_list(sample_corpus: Path):
    from huggingface_hub import DatasetCard

    manifest = read_manifest(sample_corpus)
    mixed = manifest.model_copy(update={"counts": {**manifest.counts, "mimic": SourceCounts()}})
    card = DatasetCard(render_card(mixed, registry()))
    assert card.data.license == "other"
    assert card.data.license_name == "cc-by-4.0-and-odbl"
    assert card.data.license_link == "#licenses"
    licenses = card.text.split("## Licenses\n")[1].split("\n## ")[0]
    assert "`ptbxl` (PTB-XL v1.0.3): `cc-by-4.0`" in licenses
    assert "`mimic` (MIMIC-IV-ECG v1.0): `odbl`" in licenses


def test_data_folder_globs_to_exactly_the_manifests_rows(demo_corpus: Path, tmp_path: Path):
    from datasets import load_dataset

    manifest = read_manifest(demo_corpus)
    listed = {}
    for f in manifest.files:
        for rid in pq.read_table(demo_corpus / f.path, columns=["id"])["id"].to_pylist():
            listed[rid] = f.split
    assert len(listed) == sum(f.rows for f in manifest.files)
    scanned = pl.scan_parquet(f"{demo_corpus}/{DATA_DIR}/**/*.parquet").select("id", "split")
    assert dict(scanned.collect().iter_rows()) == listed
    dataset = pads.dataset(demo_corpus / DATA_DIR)
    assert dataset.count_rows() == len(listed)
    assert set(dataset.to_table(columns=["id"])["id"].to_pylist()) == set(listed)
    loaded = load_dataset(str(demo_corpus), cache_dir=str(tmp_path / "hf"))
    assert {s: loaded[s].num_rows for s in loaded} == manifest_rows(demo_corpus)
    got = {rid: s for s in loaded for rid in loaded[s]["id"]}
    assert got == listed
    ptbxl = load_dataset(str(demo_corpus), "ptbxl", cache_dir=str(tmp_path / "hf"))
    assert {s: ptbxl[s].num_rows for s in ptbxl} == manifest_rows(demo_corpus, "ptbxl")
