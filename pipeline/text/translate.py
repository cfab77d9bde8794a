"""Offline translation of PTB-XL reports (German, Swedish -> English) with a curated glossary.

PTB-XL's ``report`` column is lower-case free text: mostly the German statements of the recording
devices, some English, a few Swedish. The device vocabulary is small, so a phrase glossary
(``glossary/de_en.tsv``, ``glossary/sv_en.tsv``) translates it deterministically.

Pipeline of :meth:`Translator.translate` (steps 1-3 are functions of
:mod:`pipeline.text.language`, step 4 is here):

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

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pipeline.text.language import (
    WORD_RUN,
    Language,
    detect_language,
    fold_case,
    normalise_german,
    normalise_swedish,
    strip_boilerplate,
)
from pipeline.text.tsv import collapse, read_pairs

GLOSSARY_DIR = Path(__file__).with_name("glossary")
GLOSSARY_HEADER = ("phrase", "english")

# --- step 4: glossary matching --------------------------------------------------------------

# Lead names, wave/interval names and English abbreviations used as they are in German text.
NEUTRAL_WORDS = frozenset(
    """i ii iii avr avl avf v r l f p q s t u qrs qs rs st pq pr qt qtc rr lvh rvh wpw lgl mv min
    sv""".split()
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
    return tuple((fold_case(k), v) for k, v in read_pairs(path, GLOSSARY_HEADER))


def compile_glossary(language: Language, rows: Iterable[tuple[str, str]]) -> Glossary:
    """Compile rows into one regex, longest phrase first, matched on word boundaries."""
    english = dict(rows)
    if not english:
        raise ValueError(f"empty {language} glossary")
    keys = sorted(english, key=lambda k: (-len(k), k))
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, keys)) + r")(?!\w)")
    words = {w.strip(",.;:!()") for k in keys for w in k.split()}
    runs = {r for k in keys for r in WORD_RUN.findall(k)}
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
            runs = WORD_RUN.findall(m.group(0))
            foreign = tuple(r for r in runs if r not in NEUTRAL_WORDS)
            at = start + m.start()
            out.append(_Piece(m.group(0), at, spaced(at), len(runs), foreign))

    position = 0
    for m in glossary.pattern.finditer(text):
        add_gap(position, m.start())
        english = glossary.english[m.group(0)]
        out.append(_Piece(english, m.start(), spaced(m.start()), len(WORD_RUN.findall(m.group(0)))))
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
    return tidy(text)


def tidy(text: str) -> str:
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
            n = len(WORD_RUN.findall(body))
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
