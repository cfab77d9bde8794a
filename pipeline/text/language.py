"""Language handling of PTB-XL reports before translation: boilerplate removal, language detection
and spelling normalisation (steps 1-3 of :meth:`pipeline.text.translate.Translator.translate`).

PTB-XL's ``report`` column is lower-case free text: mostly the German statements of the recording
devices, some English, a few Swedish, with annotation tails and device status lines that are not
report text. Everything here is a pure function of the text (and, for German, of the glossary's
vocabulary, passed in).
"""

from __future__ import annotations

import itertools
import re
from typing import Literal

from pipeline.text.tsv import collapse

Language = Literal["de", "sv", "en"]

# Runs of letters: the words counted by detection, normalisation and coverage.
WORD_RUN = re.compile(r"[^\W\d_]+")

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


def fold_case(text: str) -> str:
    """Lower case, ``#`` -> ``ü`` next to a letter, ``ß`` -> ``ss``."""
    text = text.lower().replace("ß", "ss")
    return re.sub(r"(?<=[^\W\d_])#|#(?=[^\W\d_])", "ü", text)


def detect_language(text: str) -> Language:
    """``de``, ``sv`` or ``en`` by counting marker words; no marker or a tie with English -> ``en``.

    Apply to the report after :func:`strip_boilerplate` (an ``edit:`` tail may be German).
    """
    runs = WORD_RUN.findall(fold_case(text))
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
    text = collapse(fold_case(text))
    text = WORD_RUN.sub(lambda m: _fold_umlauts(m.group(0), vocabulary), text)
    return _LINE_HYPHEN.sub(lambda m: _join_line_hyphen(m, vocabulary), text)


def normalise_swedish(text: str) -> str:
    """Lower case (stray ``Å Ä Ö``) and single spaces."""
    return collapse(text.lower())
