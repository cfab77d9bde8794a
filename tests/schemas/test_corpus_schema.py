"""The Arrow schema and the Hugging Face features describe the same rows."""

from __future__ import annotations

import pytest

from schemas import CANONICAL_LEADS, corpus_schema, hf_features
from schemas.corpus import check_schema_version


def test_hf_features_match_the_arrow_schema():
    arrow = corpus_schema(5000)
    features = hf_features(5000)
    assert list(features) == arrow.names
    assert features.arrow_schema.equals(arrow, check_metadata=False) or [
        (f.name, f.type) for f in features.arrow_schema
    ] == [(f.name, f.type) for f in arrow]


def test_ecg_is_fixed_size_float16_in_canonical_order():
    ecg = corpus_schema(1000).field("ecg").type
    assert ecg.list_size == len(CANONICAL_LEADS) and ecg.value_type.list_size == 1000
    assert str(ecg.value_type.value_type) == "halffloat"


def test_schema_version_check():
    check_schema_version("1.9.0")
    with pytest.raises(ValueError):
        check_schema_version("2.0.0")
