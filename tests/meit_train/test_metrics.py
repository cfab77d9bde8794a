"""MEIT-mode scores (their evaluation script's implementations) against values computed by hand.

Two pairs, after MEIT's preprocessing (full stops split off, case kept):
  1. ref "Sinus rhythm . Normal ECG ."    hyp "Sinus rhythm . Abnormal ECG ."   (6 and 6 tokens)
  2. ref "Atrial fibrillation with rapid ventricular response ."  hyp: the same  (7 and 7 tokens)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meit_train import meit_metrics
from meit_train.meit_metrics import MeitScorer, preprocess
from tests.conftest import skip_or_fail

REFS = ["Sinus rhythm. Normal ECG.", "Atrial fibrillation with rapid ventricular response."]
HYPS = ["Sinus rhythm. Abnormal ECG.", "Atrial fibrillation with rapid ventricular response."]


@pytest.fixture(scope="module")
def scorer():
    if not (meit_metrics.DEBIAN_WORDNET / "data.noun").is_file():
        skip_or_fail(f"WordNet not installed ({meit_metrics.WORDNET_INSTALL})")
    with MeitScorer() as s:
        yield s


def test_preprocessing_splits_full_stops_and_keeps_case():
    assert preprocess(REFS[0]) == "Sinus rhythm . Normal ECG ."
    assert preprocess("QRS 100 ms.  Rate 60.") == "QRS 100 ms . Rate 60 ."


def test_bleu_rouge_cider_equal_hand_computed_values(scorer):
    got = scorer.batch(REFS, HYPS, meit_metrics.cider_document_frequency(REFS))
    # BLEU over the batch: matched / guessed n-grams, pair 1 + pair 2 (clipped counts; "." twice).
    p1, p2, p3, p4 = (5 + 7) / (6 + 7), (3 + 6) / (5 + 6), (1 + 5) / (4 + 5), (0 + 4) / (3 + 4)
    assert got["BLEU-1"] == pytest.approx(p1, rel=1e-6)  # equal lengths: no brevity penalty
    assert got["BLEU-2"] == pytest.approx((p1 * p2) ** (1 / 2), rel=1e-6)
    assert got["BLEU-3"] == pytest.approx((p1 * p2 * p3) ** (1 / 3), rel=1e-6)
    assert got["BLEU-4"] == pytest.approx((p1 * p2 * p3 * p4) ** (1 / 4), rel=1e-6)
    # ROUGE-L: LCS 5 of 6 and 6 tokens (P = R = 5/6, so F_beta = 5/6); pair 2 is 1.
    assert got["ROUGE-L"] == pytest.approx((5 / 6 + 1) / 2, rel=1e-6)
    # CIDEr-D: every idf weight is the same constant (see the module docstring), so per n the
    # clipped cosine of raw counts. Pair 1, unigrams: sum over hyp of min(h, r) * r =
    # Sinus 1 + rhythm 1 + "." 2*2 + ECG 1 = 7, norms sqrt(8) each; bigrams 3 of 5; trigrams
    # 1 of 4; 4-grams 0. Same bigram counts: no length penalty. Pair 2: 1 for every n. Times 10.
    pair1 = 10 * (7 / 8 + 3 / 5 + 1 / 4 + 0) / 4
    assert got["CIDEr-D"] == pytest.approx((pair1 + 10.0) / 2, rel=1e-6)


def test_cider_document_frequencies_are_one_document_as_in_meit():
    df = meit_metrics.cider_document_frequency(REFS + ["Sinus rhythm."])
    assert df[("sinus", "rhythm")] == 1.0  # in two references, counted once: one document
    assert set(df.values()) == {1.0}


def test_batches_of_32_are_averaged_with_equal_weight(scorer):
    refs = [REFS[0]] * 32 + [REFS[1]]
    hyps = [HYPS[0]] * 32 + [HYPS[1]]
    got = scorer.score(refs, hyps)
    assert got["batches"] == 2
    # batch 1: 32 copies of pair 1 (ROUGE-L 5/6); batch 2: pair 2 alone (1): mean of the two,
    # not the mean over the 33 pairs (0.838...).
    assert got["ROUGE-L"] == pytest.approx((5 / 6 + 1) / 2, rel=1e-6)
    # a batch of one pair has CIDEr-D 0 in MEIT's code (log reference length log 1 = 0)
    assert got["CIDEr-D"] == pytest.approx(10 * (7 / 8 + 3 / 5 + 1 / 4) / 4 / 2, rel=1e-6)


def test_word_tokenize_uses_punkt_english_abbreviations(scorer):
    tokens = scorer.word_tokenize("Dr. Smith read it. Sinus rhythm.")
    assert tokens == ["Dr.", "Smith", "read", "it", ".", "Sinus", "rhythm", "."]


def test_meteor_is_nltk_sentence_meteor_with_wordnet_synonyms(scorer):
    # 5 tokens matched in one chunk: P = R = 1, penalty 0.5 * (1/5)^3 = 0.004
    assert scorer.meteor("The ECG is large.", "The ECG is large.") == pytest.approx(0.996)
    # "quick" matches "fast" only through WordNet. NLTK looks synonyms up after Porter stemming,
    # so "big" does not match "large" (stem "larg"): 4 of 5 in 2 chunks, as below.
    assert scorer.meteor("The ECG is fast.", "The ECG is quick.") == pytest.approx(0.996)
    assert scorer.meteor("The ECG is large.", "The ECG is big.") == pytest.approx(0.75)
    # case is folded by METEOR itself; a missing word: 4 of 5 in 2 chunks
    fmean = 0.8
    want = fmean * (1 - 0.5 * (2 / 4) ** 3)
    assert scorer.meteor("The ECG is large.", "the ecg is small.") == pytest.approx(want)


def test_missing_wordnet_is_one_clear_error(tmp_path: Path):
    with pytest.raises(meit_metrics.MissingData, match="apt-get install wordnet-base"):
        meit_metrics.check_offline_data(tmp_path)
    with pytest.raises(meit_metrics.MissingData, match="apt-get install wordnet-base"):
        with meit_metrics.wordnet_reader(tmp_path):
            pass


def test_meit_mode_beside_or_instead_of_corpus_scores(scorer):
    from meit_train.evaluate import score_predictions

    preds = [{"reference": r, "hypothesis": h} for r, h in zip(REFS, HYPS)]
    got = score_predictions(None, preds, False, scorer)  # no corpus scorer: no Java started
    assert set(got) == {"n", "meit"} and got["n"] == 2
    assert got["meit"]["ROUGE-L"] == pytest.approx((5 / 6 + 1) / 2, rel=1e-6)
    assert got["meit"]["batches"] == 1
    assert "BERTScore-F1" in got["meit"] or got["meit"]["skipped"].startswith("BERTScore skipped")


def test_lexnames_is_the_wordnet_table():
    lines = meit_metrics.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[18] == "18\tnoun.person\t1"
    assert lines[44] == "44\tadj.ppl\t3"


def test_case_is_kept_by_bleu_rouge_and_cider(scorer):
    refs, hyps = ["Normal ECG."] * 2, ["normal ECG."] * 2  # "normal" is not "Normal"
    got = scorer.batch(refs, hyps, meit_metrics.cider_document_frequency(refs))
    assert got["BLEU-1"] == pytest.approx(2 / 3, rel=1e-6)
    assert got["ROUGE-L"] == pytest.approx(2 / 3, rel=1e-6)
    # unigrams 2 of 3 (norms sqrt 3), bigrams 1 of 2, trigrams 0, no 4-grams; times 10
    assert got["CIDEr-D"] == pytest.approx(10 * (2 / 3 + 1 / 2) / 4, rel=1e-6)
    assert got["METEOR"] == pytest.approx(scorer.meteor("Normal ECG.", "Normal ECG."))
