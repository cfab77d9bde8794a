"""Offline translation of PTB-XL reports (German, Swedish -> English) with a curated glossary.

PTB-XL's ``report`` column is lower-case free text: mostly the German statements of the recording
devices, some English, a few Swedish. The device vocabulary is small, so a phrase glossary
(``glossary/de_en.tsv``, ``glossary/sv_en.tsv``) translates it deterministically.

Pipeline of :meth:`Translator.translate` (every step is a function below):

1. :func:`strip_boilerplate` removes annotation that is not report text, for every language:
   ``consensus label derived from: {...}`` and ``edit: ...`` tails (SCP codes and notes added by
   the annotators), and the device status line ``4.46 unbestätigter bericht`` ("unconfirmed
   report", with any leading ``d.dd`` number) at the end, also when truncated (``4.46 unbe``).
   ``alter unbest.`` is *not* boilerplate: it qualifies an infarct ("age undetermined") and is
   translated.
2. :func:`detect_language` picks ``de``, ``sv`` or ``en`` from marker-word hits. English text is
   returned as it is (only step 1 applies).
3. :func:`normalise_german` / :func:`normalise_swedish`: lower case (folds the stray upper-case
   ``Ä Ö Ü Å``), ``#`` -> ``ü`` inside words, ``ß`` -> ``ss``, one space between words; then,
   German only, ``ae oe ue`` -> ``ä ö ü`` in a word only when the folded word is in the glossary
   (so ``ischaemia`` or ``bauer`` are never touched), and a line-break hyphen (``rechtsschen-
   kelblock``, ``st- hebung``) is joined when the joined word is in the glossary.
4. One compiled regex of all glossary phrases (longest first, on word boundaries) replaces
   phrases by their English. Left-over words are kept as they are: lead and wave names (``v1-v3``,
   ``avl``, ``qrs``, ``st``, ``t``) are language-neutral, anything else is reported in
   :attr:`Translation.untranslated`. A last word that is a truncated glossary word (the release
   cuts reports at 255 characters: ``leitungss``, ``anterolate``) is dropped.

Output convention (documented in the glossary headers too): lower case like PTB-XL's English
reports; one statement per sentence, each ending with ``.`` and separated by one space; British
spelling as in PTB-XL's English reports (``ischaemia``). In the glossary the English side says
how it joins: ending in ``.`` closes a statement; starting with ``,`` qualifies the previous
statement (``anteroseptal infarct`` + ``, probably old.``); starting with ``+`` is a list item that
joins a directly preceding list item with ``, `` (``t abnormal in anterior leads, lateral leads.``);
anything else is running text.
"""

from __future__ import annotations

import csv
import importlib
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pipeline.text.tsv import collapse, read_pairs

Language = Literal["de", "sv", "en"]

GLOSSARY_DIR = Path(__file__).with_name("glossary")
GLOSSARY_HEADER = ("phrase", "english")

# --- step 1: boilerplate ---------------------------------------------------------------------

_CONSENSUS_TAIL = re.compile(r"consensus label derived from:.*$", re.IGNORECASE | re.DOTALL)
_EDIT_TAIL = re.compile(r"\bedit:.*$", re.IGNORECASE | re.DOTALL)


def _prefix_pattern(word: str) -> str:
    """Regex for any non-empty prefix of ``word`` (``ab`` -> ``a(?:b)?``)."""
    out = ""
    for ch in reversed(word[1:]):
        out = f"(?:{re.escape(ch)}{out})?"
    return re.escape(word[0]) + out


_STATUS_TAIL = re.compile(
    r"(?:^|\s)\d\.\d\d(?:\s+(?:"
    + _prefix_pattern("unbestätigter")
    + "|unbestaetigter)(?:\\s+"
    + _prefix_pattern("bericht")
    + r")?)?\s*$",
    re.IGNORECASE,
)
_TAILS = (_CONSENSUS_TAIL, _EDIT_TAIL, _STATUS_TAIL)


def strip_boilerplate(report: str) -> str:
    """Remove annotation tails and the status line; text without them is returned unchanged."""
    text = report
    for rule in _TAILS:
        cut = rule.sub("", text)
        if cut != text:
            text = cut.rstrip()
    return text


# --- step 2: language detection -------------------------------------------------------------

_RUN = re.compile(r"[^\W\d_]+")


def _words(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``."""
    return frozenset(text.split())


_DE_MARKERS = _words(
    """sinusrhythmus sinusarrhythmie arrhythmie sinusbradykardie sinustachykardie lagetyp linkstyp
    rechtstyp steiltyp linkslagetyp ekg normales sonst abnorm abnormes abnormales infarkt
    wahrscheinlich möglich mögl moeglich oder und nicht auszuschliessen verdacht auf unbest
    linksschenkelblock rechtsschenkelblock unvollständiger vorhofflimmern vorhofflattern
    schrittmacher ableitungen ischämie linksbelastung niederspannung periphere extrasystole
    ventrikuläre supraventrikuläre unspezifisches unspezifische unspezifischer myokardschaden
    ueberdrehter überdrehter linkshypertrophie pathologisch pathologisches neg negativ flach mit
    über nach verschoben leitungsstörung leitungsstoerung grenzbefund hebung senkung
    verlängerung veränderungen veraenderungen tachykardes intraventrikuläre intraventr rhythmus
    idioventrikulärrhythmus regelmässiger beschleunigter linksposteriorer linksanteriorer llt
    mlt slt grades schwierig bestimmbare achse verbreiterung sinistrocardiale dextrocardiale
    schenkelblock kammerhypertrophie rechtshypertrophie vorhof sinusrhyrhmus"""
)
_SV_MARKERS = _words(
    """sinusrytm sinusbradykardi sinustachykardi vänster höger el axel eljest normalt såsom vid
    eller misstänkt ej bör övervägas avvikande förlopp förmaksflimmer förmak kammarhypertrofi
    kammarfrekvens kammarbelastning med hög sannolikt äldre ålder skänkelblock ospecifikt
    ospecifik inkomplett och inga inget som på extraslag myokardskada myokardaffektion kan
    uteslutas förändring förändringar extrasystoli ventrikulära ventrikulär supraventrikulär
    hypertrofi belastning ischemi lateralt anteriort vänstersidigt högersidigt förlängd flacka
    patologiskt regelbunden rytm fladder vågor funna bestämbar bestämmbar svårbestämmbar
    amplituder amplitudkriterier extremitetsavledningarna"""
)
_EN_MARKERS = _words(
    """rhythm ecg the of and is are with was wave waves axis deviation left right bundle branch
    atrial ventricular fibrillation flutter possible probable probably old infarct infarction
    myocardial ischaemia ischemia ischaemic hypertrophy voltage voltages lead leads limb
    premature contraction contractions tachycardia bradycardia arrhythmia otherwise no definite
    pathology trace only requested segment segments depressed elevated inverted flattening
    interval prolonged changes abnormality enlargement complexes suggesting consistent"""
)


def _fold_case(text: str) -> str:
    """Lower case, ``#`` -> ``ü`` next to a letter, ``ß`` -> ``ss``."""
    text = text.lower().replace("ß", "ss")
    return re.sub(r"(?<=[^\W\d_])#|#(?=[^\W\d_])", "ü", text)


def detect_language(text: str) -> Language:
    """``de``, ``sv`` or ``en`` by counting marker words; no marker or a tie with English -> ``en``.

    Apply to the report after :func:`strip_boilerplate` (an ``edit:`` tail may be German).
    """
    runs = _RUN.findall(_fold_case(text))
    scores = {
        "en": sum(r in _EN_MARKERS for r in runs),
        "de": sum(r in _DE_MARKERS for r in runs),
        "sv": sum(r in _SV_MARKERS for r in runs),
    }
    best = max(scores.values())
    if best == 0 or scores["en"] == best:
        return "en"
    return "de" if scores["de"] >= scores["sv"] else "sv"


# --- step 3: normalisation ------------------------------------------------------------------

_UMLAUT_PAIRS = (("ae", "ä"), ("oe", "ö"), ("ue", "ü"))
_DIGRAPH = re.compile(r"ae|oe|ue")
_LINE_HYPHEN = re.compile(r"([^\W\d_]+)- ([^\W\d_]+)")


def _fold_umlauts(word: str, vocabulary: frozenset[str]) -> str:
    """``word`` with some of its ae/oe/ue folded to ä/ö/ü if that makes a vocabulary word."""
    if word in vocabulary:
        return word
    spots = [m.start() for m in _DIGRAPH.finditer(word)][:4]
    folds = dict(_UMLAUT_PAIRS)
    for n in range(len(spots), 0, -1):
        for chosen in itertools.combinations(spots, n):
            out, last = [], 0
            for i in chosen:
                out += [word[last:i], folds[word[i : i + 2]]]
                last = i + 2
            candidate = "".join(out) + word[last:]
            if candidate in vocabulary:
                return candidate
    return word


def _join_line_hyphen(match: re.Match[str], vocabulary: frozenset[str]) -> str:
    """``rechtsschen- kelblock`` -> ``rechtsschenkelblock`` when the result is a glossary word."""
    left, right = match.group(1), match.group(2)
    for joined in (left + right, f"{left}-{right}"):
        if joined in vocabulary:
            return joined
    return match.group(0)


def normalise_german(text: str, vocabulary: frozenset[str] = frozenset()) -> str:
    """Fold the spelling variants of a German report so one glossary entry covers them all.

    Always: lower case (stray ``Ä Ö Ü``), ``#`` -> ``ü`` inside words, ``ß`` -> ``ss``, single
    spaces. Only where the result is in ``vocabulary`` (words of the glossary): ``ae oe ue`` ->
    ``ä ö ü`` and joining of line-break hyphens. With the default empty vocabulary those two
    vocabulary-guarded folds do nothing.
    """
    text = collapse(_fold_case(text))
    text = _RUN.sub(lambda m: _fold_umlauts(m.group(0), vocabulary), text)
    return _LINE_HYPHEN.sub(lambda m: _join_line_hyphen(m, vocabulary), text)


def normalise_swedish(text: str) -> str:
    """Lower case (stray ``Å Ä Ö``) and single spaces."""
    return collapse(text.lower())


# --- step 4: glossary matching --------------------------------------------------------------

# Lead names, wave/interval names and English abbreviations used as they are in German text.
NEUTRAL_WORDS = _words(
    "i ii iii avr avl avf v r l f p q s t u qrs qs rs st pq pr qt qtc rr lvh rvh wpw lgl mv min sv"
)


@dataclass(frozen=True)
class Translation:
    """One translated report.

    ``n_tokens`` counts the words (letter runs) of the normalised, boilerplate-free report;
    ``n_translated`` those covered by a glossary phrase or language-neutral (lead and wave names);
    ``untranslated`` lists the rest, in order (``n_tokens - n_translated`` of them).
    """

    text: str
    language: Language
    untranslated: tuple[str, ...]
    n_tokens: int
    n_translated: int


@dataclass(frozen=True)
class Glossary:
    """One language's glossary compiled into a single longest-first regex."""

    language: Language
    english: Mapping[str, str]
    pattern: re.Pattern[str]
    vocabulary: frozenset[str]


def read_glossary(path: Path) -> tuple[tuple[str, str], ...]:
    """Rows of a ``phrase<TAB>english`` glossary; phrases are lower-cased (``ß`` -> ``ss``)."""
    return tuple((_fold_case(k), v) for k, v in read_pairs(path, GLOSSARY_HEADER))


def compile_glossary(language: Language, rows: Iterable[tuple[str, str]]) -> Glossary:
    """Compile rows into one regex, longest phrase first, matched on word boundaries."""
    english = dict(rows)
    if not english:
        raise ValueError(f"empty {language} glossary")
    keys = sorted(english, key=lambda k: (-len(k), k))
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, keys)) + r")(?!\w)")
    words = {w.strip(",.;:!()") for k in keys for w in k.split()}
    runs = {r for k in keys for r in _RUN.findall(k)}
    return Glossary(language, MappingProxyType(english), pattern, frozenset(words | runs))


@dataclass(frozen=True)
class _Piece:
    """One output fragment with its word counts.

    ``start``: its offset in the source; ``spaced``: whitespace preceded it there; ``foreign``:
    its untranslated words (only source text that no glossary phrase matched has any).
    """

    text: str
    start: int
    spaced: bool
    n_words: int
    foreign: tuple[str, ...] = ()


# English words that cannot end a statement; dropped after a cut-off phrase.
_DANGLING = frozenset({"in", "over", "with", "and", "or", "to", "for", "of", "of the", "the"})


def _truncated_tail(pieces: list[_Piece], text: str, glossary: Glossary, window: int = 6) -> int:
    """Index of the first piece of a cut-off phrase at the end, or ``len(pieces)`` if none.

    The release cuts reports at 255 characters, leaving a glossary phrase unfinished
    (``intraventr. leitungss``, ``anterolate``). When the last piece is an unknown word and the
    text from some recent piece on is a proper prefix of a glossary phrase, those pieces go.
    """
    if not pieces or not pieces[-1].foreign:
        return len(pieces)
    for i in range(max(0, len(pieces) - window), len(pieces)):
        tail = text[pieces[i].start :].rstrip()
        if any(k.startswith(tail) and k != tail for k in glossary.english):
            return i
    return len(pieces)


def _pieces(glossary: Glossary, text: str) -> list[_Piece]:
    """Glossary matches as English pieces, unmatched words as they are."""
    out: list[_Piece] = []

    def spaced(at: int) -> bool:
        return at > 0 and text[at - 1].isspace()

    def add_gap(start: int, end: int) -> None:
        for m in re.finditer(r"\S+", text[start:end]):
            runs = _RUN.findall(m.group(0))
            foreign = tuple(r for r in runs if r not in NEUTRAL_WORDS)
            at = start + m.start()
            out.append(_Piece(m.group(0), at, spaced(at), len(runs), foreign))

    position = 0
    for m in glossary.pattern.finditer(text):
        add_gap(position, m.start())
        english = glossary.english[m.group(0)]
        out.append(_Piece(english, m.start(), spaced(m.start()), len(_RUN.findall(m.group(0)))))
        position = m.end()
    add_gap(position, len(text))
    return out


def _render(pieces: Iterable[_Piece]) -> str:
    """Join pieces following the glossary's punctuation convention (see module docstring)."""
    text, last_was_item = "", False
    for piece in pieces:
        frag = piece.text
        if frag in {".", ";", "!"}:
            text, last_was_item = text.rstrip(" .,:") + ".", False
            continue
        if frag.startswith(","):
            text, last_was_item = text.rstrip(" .,:") + frag, False
            continue
        is_item = frag.startswith("+")
        frag = frag.lstrip("+")
        if is_item and last_was_item:
            text = text.rstrip(" .") + ", " + frag
        else:
            text += (" " if piece.spaced and text else "") + frag
        last_was_item = is_item
    return _tidy(text)


def _tidy(text: str) -> str:
    """One space, no space before ``,`` or ``.``, no doubled stops, one final period."""
    text = collapse(text)
    text = re.sub(r"\s+([,.;:)])", r"\1", text)
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"[,:;]*\.[,.:;]*", ".", text)
    text = re.sub(r",+", ",", text)
    text = text.rstrip(" ,:;-/")
    return text + "." if text and not text.endswith(".") else text


def translate_with(glossary: Glossary, text: str) -> Translation:
    """Translate normalised, boilerplate-free ``text`` with one language's glossary."""
    pieces = _pieces(glossary, text)
    cut = _truncated_tail(pieces, text, glossary)
    if cut < len(pieces):
        pieces = pieces[:cut]
        while pieces and not pieces[-1].foreign and pieces[-1].text in _DANGLING:
            pieces.pop()  # "t abnorm in anterolate" -> "t abnormal", not "t abnormal in."
    untranslated = tuple(w for p in pieces for w in p.foreign)
    n_tokens = sum(p.n_words for p in pieces)
    return Translation(
        _render(pieces), glossary.language, untranslated, n_tokens, n_tokens - len(untranslated)
    )


# --- the translator -------------------------------------------------------------------------


@dataclass(frozen=True)
class Translator:
    """German and Swedish glossaries compiled once; :meth:`translate` handles any report."""

    de: Glossary
    sv: Glossary

    def normalise(self, text: str, language: Language) -> str:
        """Language-specific normalisation with this translator's vocabulary."""
        if language == "de":
            return normalise_german(text, self.de.vocabulary)
        return normalise_swedish(text) if language == "sv" else text

    def translate(self, report: str) -> Translation:
        """English for one PTB-XL report (English reports only lose their boilerplate tails)."""
        body = strip_boilerplate(report)
        language = detect_language(body)
        if language == "en":
            n = len(_RUN.findall(body))
            return Translation(body, "en", (), n, n)
        glossary = self.de if language == "de" else self.sv
        return translate_with(glossary, self.normalise(body, language))


def load_translator(glossary_dir: Path | str | None = None) -> Translator:
    """Read ``de_en.tsv`` and ``sv_en.tsv`` (default: the packaged glossaries) and compile them."""
    folder = Path(glossary_dir) if glossary_dir is not None else GLOSSARY_DIR
    return Translator(
        de=compile_glossary("de", read_glossary(folder / "de_en.tsv")),
        sv=compile_glossary("sv", read_glossary(folder / "sv_en.tsv")),
    )


# --- coverage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageStats:
    """Token coverage of translated reports of one language (or of all non-English ones)."""

    language: str
    n_reports: int
    n_tokens: int
    n_translated: int
    top_untranslated: tuple[tuple[str, int], ...]

    @property
    def share(self) -> float:
        """Share of tokens translated (1.0 when there are no tokens)."""
        return self.n_translated / self.n_tokens if self.n_tokens else 1.0


def coverage(
    translations: Iterable[Translation], language: Language | None = None, top: int = 20
) -> CoverageStats:
    """Coverage over the translations of ``language`` (``None``: all German and Swedish ones).

    The denominator is the word tokens (letter runs) of those reports after boilerplate removal
    and normalisation; lead and wave names count as translated (they are the same in English).
    """
    chosen = [
        t for t in translations if (t.language == language if language else t.language != "en")
    ]
    missing = Counter(w for t in chosen for w in t.untranslated)
    return CoverageStats(
        language=language or "de+sv",
        n_reports=len(chosen),
        n_tokens=sum(t.n_tokens for t in chosen),
        n_translated=sum(t.n_translated for t in chosen),
        top_untranslated=tuple(missing.most_common(top)),
    )


# --- alternatives: pre-translated CSV, MarianMT ---------------------------------------------

PRETRANSLATED_COLUMNS = ("report_en", "english", "translation", "report")


def load_pretranslated_csv(path: Path | str) -> dict[int, str]:
    """English reports keyed by ``ecg_id`` from a CSV with ``ecg_id`` and an English column.

    The English column is the first present of ``report_en``, ``english``, ``translation``,
    ``report``. Empty cells are skipped; a missing file, a missing column, a bad ``ecg_id`` or a
    duplicate ``ecg_id`` is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pre-translated reports not found: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        text_column = next((c for c in PRETRANSLATED_COLUMNS if c in columns), None)
        if "ecg_id" not in columns or text_column is None:
            raise ValueError(
                f"{path}: needs an 'ecg_id' column and one of {', '.join(PRETRANSLATED_COLUMNS)}; "
                f"found {columns}"
            )
        out: dict[int, str] = {}
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): v for k, v in row.items() if k is not None}
            try:
                ecg_id = int(float(row["ecg_id"]))
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: bad ecg_id {row['ecg_id']!r}") from None
            if ecg_id in out:
                raise ValueError(f"{path}:{line}: duplicate ecg_id {ecg_id}")
            text = (row[text_column] or "").strip()
            if text:
                out[ecg_id] = text
    return out


@dataclass(frozen=True)
class MarianTranslator:
    """MarianMT (``transformers``) from a local directory; imported and loaded on first use.

    ``model_dir`` must hold a saved model and tokenizer (``from_pretrained(local_dir)``); nothing
    is downloaded. Boilerplate is stripped and English reports pass through as in
    :class:`Translator`. Reports of ``source_language`` count as fully translated (a neural model
    reports no coverage); reports of another non-English language are returned unchanged with all
    their words in ``untranslated``.
    """

    model_dir: Path
    source_language: Language = "de"
    max_length: int = 256

    def __post_init__(self) -> None:
        path = Path(self.model_dir)
        if not path.is_dir():
            raise FileNotFoundError(
                f"MarianMT model directory not found: {path} (save a model there with "
                "save_pretrained; nothing is downloaded)"
            )
        object.__setattr__(self, "model_dir", path)

    def _load(self) -> tuple[Any, Any]:
        transformers = importlib.import_module("transformers")
        tokenizer = transformers.MarianTokenizer.from_pretrained(str(self.model_dir))
        model = transformers.MarianMTModel.from_pretrained(str(self.model_dir))
        return tokenizer, model

    def translate_many(self, reports: Iterable[str]) -> list[Translation]:
        """Translate a batch; the model is loaded once per call."""
        bodies = [strip_boilerplate(r) for r in reports]
        languages = [detect_language(b) for b in bodies]
        todo = [i for i, lang in enumerate(languages) if lang == self.source_language]
        english = dict.fromkeys(todo, "")
        if todo:
            tokenizer, model = self._load()
            batch = tokenizer(
                [collapse(_fold_case(bodies[i])) for i in todo],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            )
            outputs = model.generate(**batch, max_length=self.max_length)
            decoded = tokenizer.batch_decode(outputs, skip_special_tokens=True)
            english = dict(zip(todo, (_tidy(d.lower()) for d in decoded), strict=True))
        out = []
        for i, (body, lang) in enumerate(zip(bodies, languages, strict=True)):
            runs = tuple(_RUN.findall(body))
            if lang in {"en", self.source_language}:
                out.append(Translation(english.get(i, body), lang, (), len(runs), len(runs)))
            else:  # another language: returned as it is, every word untranslated
                out.append(Translation(body, lang, runs, len(runs), 0))
        return out

    def translate(self, report: str) -> Translation:
        """Translate one report (loads the model; prefer :meth:`translate_many`)."""
        return self.translate_many([report])[0]
