"""PTB-XL report language handling: boilerplate tails, language detection, German normalisation."""

from __future__ import annotations

import pytest

from pipeline.text import detect_language, load_translator, normalise_german, strip_boilerplate


@pytest.fixture(scope="module")
def german_vocabulary() -> frozenset[str]:
    """Words of the packaged German glossary (what the translator normalises towards)."""
    return load_translator().de.vocabulary


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (
            "sinusrhythmus lagetyp normal 4.46                          unbestÄtigter bericht",
            "sinusrhythmus lagetyp normal",
        ),
        (
            "sinusrhythmus lagetyp normal 4.46                          unbestÄtigter be",
            "sinusrhythmus lagetyp normal",
        ),
        (
            "sinusrhythmus lagetyp normal 4.46                          u",
            "sinusrhythmus lagetyp normal",
        ),
        (
            "sinusrhythmus lagetyp normal 4.46                        ",
            "sinusrhythmus lagetyp normal",
        ),
        (
            "sinus rhythm. normal ecg. Edit: NORM, in manchen Schlägen QSIII",
            "sinus rhythm. normal ecg.",
        ),
        (
            (
                "sinusrhythmus lagetyp normal normales ekg 4.46                          "
                "unbestÄtigter "
                "bericht Edit: NORM 100, (NORM 100)"
            ),
            "sinusrhythmus lagetyp normal normales ekg",
        ),
        (
            "pacemaker ekgconsensus label derived from: {'PACE': 100.0},{'ASMI': 100.0}",
            "pacemaker ekg",
        ),
        (
            "sinus rhythm. prolonged pr interval (0.22 sec). p waves are inconspicuous.",
            "sinus rhythm. prolonged pr interval (0.22 sec). p waves are inconspicuous.",
        ),
        ("inferiorer infarkt     alter unbest.", "inferiorer infarkt     alter unbest."),
    ],
)
def test_strip_boilerplate(raw: str, body: str) -> None:
    assert strip_boilerplate(raw) == body


def test_normalise_german_folds_only_glossary_words(german_vocabulary: frozenset[str]) -> None:
    vocab = german_vocabulary
    assert normalise_german("ueberdrehter  linkstyp", vocab) == "überdrehter linkstyp"
    assert normalise_german("t-veraenderungen", vocab) == "t-veränderungen"
    assert normalise_german("f#r linkshypertrophie", vocab) == "für linkshypertrophie"
    assert normalise_german("ischaemia bauer quer", vocab) == "ischaemia bauer quer"
    assert normalise_german("partieller rechtsschen- kelblock", vocab) == (
        "partieller rechtsschenkelblock"
    )
    assert normalise_german("st- hebung", vocab) == "st-hebung"
    assert normalise_german("myokard- oder", vocab) == "myokard- oder"
    assert normalise_german("ueberdrehter") == "ueberdrehter"  # no vocabulary, no ae/oe/ue fold


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("sinusrhythmus normales ekg", "de"),
        ("idioventrikulÄrrhythmus", "de"),
        ("pacemaker ekg", "de"),
        ("sinusrytm normalt ekg", "sv"),
        ("ventrikulÄr(a) extrasystoli(er) sinusrytm", "sv"),
        ("sinus rhythm. normal ecg.", "en"),
        ("trace only requested.", "en"),
        ("", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language
