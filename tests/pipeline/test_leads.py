"""Leads are put in the canonical order by name, whatever the header's order and spelling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import RecordRejected
from pipeline.leads import canonical_order
from schemas import CANONICAL_LEADS

PTBXL = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
MIMIC = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]


def test_ptbxl_upper_case_names_map_in_place():
    assert canonical_order(PTBXL).tolist() == list(range(12))


def test_mimic_avf_before_avl_is_swapped_back():
    order = canonical_order(MIMIC)
    assert [MIMIC[i] for i in order] == list(CANONICAL_LEADS)
    assert order[4] == 5 and order[5] == 4


def test_any_permutation_is_undone():
    rng = np.random.default_rng(0)
    perm = rng.permutation(12)
    names = [PTBXL[i] for i in perm]
    data = np.array(perm)[:, None] * np.ones((12, 3))
    assert data[canonical_order(names)][:, 0].tolist() == list(range(12))


def test_missing_and_duplicate_leads_are_rejections():
    with pytest.raises(RecordRejected) as err:
        canonical_order(PTBXL[:8])
    assert err.value.reason == "missing_leads" and "V6" in err.value.detail
    with pytest.raises(RecordRejected) as err:
        canonical_order(PTBXL + ["avr"])
    assert err.value.reason == "duplicate_leads"


def test_rejection_details_quote_the_header():
    with pytest.raises(RecordRejected) as err:
        canonical_order(PTBXL[:8])
    assert err.value.detail == f"missing ['V3', 'V4', 'V5', 'V6']; record has {PTBXL[:8]}"
    names = [*PTBXL, " avr "]
    with pytest.raises(RecordRejected) as err:
        canonical_order(names)
    assert err.value.detail == f"leads {names}"


SPELLINGS = {lead: {lead, lead.upper(), lead.lower()} for lead in CANONICAL_LEADS}


@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(
    st.permutations(range(15)),
    st.lists(st.sampled_from(["", " ", "\t"]), min_size=30, max_size=30),
    st.data(),
)
def test_any_order_spelling_and_extra_leads_map_by_name(perm, pads, data):
    """12 canonical leads in any case and padding, plus Frank leads X Y Z, in any order."""
    spelt = [data.draw(st.sampled_from(sorted(SPELLINGS[lead]))) for lead in CANONICAL_LEADS]
    pool = [*spelt, "X", "Y", "Z"]
    names = [pads[2 * i] + pool[p] + pads[2 * i + 1] for i, p in enumerate(perm)]
    order = canonical_order(names)
    assert order.dtype == np.intp
    assert [perm[i] for i in order] == list(range(12))
