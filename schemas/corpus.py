"""Arrow schema and Hugging Face features of corpus rows and rejection rows.

The ECG column is a fixed-size list of 12 fixed-size lists of ``T`` float16 values, in
:data:`CANONICAL_LEADS` order. ``T`` (samples per lead) is a build setting, so the schema is a
function of it; the row shape never depends on anything else.
"""

from __future__ import annotations

import json

import pyarrow as pa

SCHEMA_VERSION = "1.0.0"
"""Bumped on any change of row shape; readers refuse a corpus with another major version."""

CANONICAL_LEADS: tuple[str, ...] = (
    "I",
    "II",
    "III",
    "aVR",
    "aVL",
    "aVF",
    "V1",
    "V2",
    "V3",
    "V4",
    "V5",
    "V6",
)
SPLITS: tuple[str, ...] = ("train", "validation", "test")

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])

_COLUMN_DOCS: dict[str, str] = {
    "id": "globally unique row id: '<source>/<record_id>' for a record's report example, "
    "'<source>/<record_id>/<task>' for its extra question-answer examples",
    "example": "0 for the record's report example, 1.. for extra question-answer examples",
    "source": "dataset the record comes from ('ptbxl', 'mimic', ...)",
    "record_id": "the record's id inside its source (PTB-XL ecg_id, MIMIC study_id)",
    "patient_id": "the patient's id inside its source (PTB-XL patient_id, MIMIC subject_id)",
    "split": "train, validation or test; patient-level",
    "ecg": "12 x T float16, canonical lead order, after conditioning",
    "fs": "sampling rate of `ecg` in Hz",
    "messages": "chat form: the user instruction, then the assistant report",
    "template_id": "id of the instruction template that produced the user turn",
    "task": "task family of the template",
    "report": "the cleaned report (the assistant turn)",
    "report_original": "the report exactly as in the source files",
    "report_language": "language the report was written in (de, sv, en; csv = pre-translated)",
    "untranslated": "source-language tokens the translator could not translate (empty = complete)",
    "dropped_statements": "MIMIC machine statements dropped as non-findings (device warnings)",
    "age": "age in years when known (PTB-XL 300 = over 89, kept as 90)",
    "sex": "'male', 'female' or null",
    "source_fs": "sampling rate of the source record in Hz",
    "n_cropped": "samples removed per lead to reach the fixed length",
    "n_padded": "samples added per lead (edge value) to reach the fixed length",
    "nan_repaired": "samples per record that were NaN/inf and were interpolated",
    "scp_codes": "PTB-XL SCP statements with likelihood (JSON object), null elsewhere",
    "strat_fold": "PTB-XL stratified fold, null elsewhere",
    "measurements": "MIMIC machine measurements (JSON object), null elsewhere",
}


def corpus_schema(n_samples: int) -> pa.Schema:
    """Arrow schema of one corpus row for ``n_samples`` samples per lead."""
    ecg_type = pa.list_(pa.list_(pa.float16(), n_samples), len(CANONICAL_LEADS))
    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("example", pa.int32(), nullable=False),
        pa.field("patient_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("ecg", ecg_type, nullable=False),
        pa.field("fs", pa.int32(), nullable=False),
        pa.field("messages", pa.list_(MESSAGE_TYPE), nullable=False),
        pa.field("template_id", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("report", pa.string(), nullable=False),
        pa.field("report_original", pa.string(), nullable=False),
        pa.field("report_language", pa.string(), nullable=False),
        pa.field("untranslated", pa.list_(pa.string()), nullable=False),
        pa.field("dropped_statements", pa.list_(pa.string()), nullable=False),
        pa.field("age", pa.float32()),
        pa.field("sex", pa.string()),
        pa.field("source_fs", pa.int32(), nullable=False),
        pa.field("n_cropped", pa.int32(), nullable=False),
        pa.field("n_padded", pa.int32(), nullable=False),
        pa.field("nan_repaired", pa.int32(), nullable=False),
        pa.field("scp_codes", pa.string()),
        pa.field("strat_fold", pa.int32()),
        pa.field("measurements", pa.string()),
    ]
    fields = [f.with_metadata({"description": _COLUMN_DOCS[f.name]}) for f in fields]
    meta = {
        "meit_corpus.schema_version": SCHEMA_VERSION,
        "meit_corpus.lead_order": json.dumps(list(CANONICAL_LEADS)),
        "huggingface": json.dumps({"info": {"features": hf_features_dict(n_samples)}}),
    }
    return pa.schema(fields, metadata=meta)


def rejection_schema() -> pa.Schema:
    """Arrow schema of the rejection ledger: one row per rejected input record."""
    return pa.schema(
        [
            pa.field("source", pa.string(), nullable=False),
            pa.field("record_id", pa.string(), nullable=False),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("detail", pa.string(), nullable=False),
        ]
    )


def hf_features_dict(n_samples: int) -> dict:
    """The Hugging Face ``Features`` of a row, as the JSON dict ``datasets`` stores in Parquet."""

    def value(dtype: str) -> dict:
        return {"dtype": dtype, "_type": "Value"}

    return {
        "id": value("string"),
        "source": value("string"),
        "record_id": value("string"),
        "example": value("int32"),
        "patient_id": value("string"),
        "split": value("string"),
        "ecg": {
            "feature": {"feature": value("float16"), "length": n_samples, "_type": "List"},
            "length": len(CANONICAL_LEADS),
            "_type": "List",
        },
        "fs": value("int32"),
        "messages": {
            "feature": {"role": value("string"), "content": value("string")},
            "_type": "List",
        },
        "template_id": value("string"),
        "task": value("string"),
        "report": value("string"),
        "report_original": value("string"),
        "report_language": value("string"),
        "untranslated": {"feature": value("string"), "_type": "List"},
        "dropped_statements": {"feature": value("string"), "_type": "List"},
        "age": value("float32"),
        "sex": value("string"),
        "source_fs": value("int32"),
        "n_cropped": value("int32"),
        "n_padded": value("int32"),
        "nan_repaired": value("int32"),
        "scp_codes": value("string"),
        "strat_fold": value("int32"),
        "measurements": value("string"),
    }


def hf_features(n_samples: int):  # -> datasets.Features (import kept local: optional dependency)
    """The Hugging Face ``datasets.Features`` of a row."""
    from datasets import Features

    return Features.from_dict(hf_features_dict(n_samples))


def check_schema_version(found: str) -> None:
    """Raise ``ValueError`` unless ``found`` has this code's major schema version."""
    if found.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise ValueError(
            f"corpus schema version {found} is not readable by this code (schema {SCHEMA_VERSION})"
        )
