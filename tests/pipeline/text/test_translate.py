"""PTB-XL report translation: real German/Swedish reports, English pass-through, coverage."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline.text import Translation, Translator, load_translator, strip_boilerplate
from pipeline.text.translate import GLOSSARY_DIR

# (ecg_id, report exactly as in ptbxl_database.csv, expected English)
GERMAN = [
    (1, "sinusrhythmus periphere niederspannung", "sinus rhythm. low limb lead voltage."),
    (
        4439,
        (
            "sinusrhythmus linkstyp sonst normales ekg 4.46                          unbestÄtigter "
            "bericht Edit: NORM 80, (NORM 100)"
        ),
        "sinus rhythm. left axis deviation. otherwise normal ecg.",
    ),
    (
        6258,
        "sinusrhythmus mÄssige amplitudenkriterien f#r linkshypertrophie",
        "sinus rhythm. moderate voltage criteria for left ventricular hypertrophy.",
    ),
    (
        415,
        "sinusrhythmus ueberdrehter linkstyp linksanteriorer hemiblock",
        "sinus rhythm. marked left axis deviation. left anterior fascicular block.",
    ),
    (
        4399,
        (
            "vorhofflimmern/-flattern lagetyp normal mÄssige amplitudenkriterien fÜr "
            "linkshypertrophie "
            "st abnorm, mÖglicherweise    anteriorer innenschichtsschaden    inferiorer "
            "innenschichtsschaden qt-verlÄngerung 4.46                          unbestÄtigter "
            "bericht"
        ),
        (
            "atrial fibrillation/flutter. normal axis. moderate voltage criteria for left "
            "ventricular "
            "hypertrophy. st abnormal, possibly anterior subendocardial injury. inferior "
            "subendocardial injury. prolonged qt."
        ),
    ),
    (
        390,
        "sinusrhythmus linkstyp unspezifische intraventrikulÄre leitungsstÖrung",
        "sinus rhythm. left axis deviation. non-specific intraventricular conduction disturbance.",
    ),
    (
        4400,
        (
            "sinusrhythmus linkstyp qrs(t) abnorm    anteroseptaler infarkt     wahrscheinlich alt "
            "   "
            "inferiorer infarkt     alter unbest. 4.46                          unbestÄtigter "
            "bericht"
        ),
        (
            "sinus rhythm. left axis deviation. qrs(t) abnormal, anteroseptal infarct, probably "
            "old. "
            "inferior infarct, age undetermined."
        ),
    ),
    (
        5351,
        (
            "vorhofflimmern/-flattern ueberdrehter linkstyp qrs(t) abnormal    anteroseptaler "
            "infarkt "
            "    wahrscheinlich alt    inferiorer infarkt     wahrscheinlich alt st & t abnormal, "
            "wahrscheinlich    hochlaterale ischÄmie oder linksbelastung"
        ),
        (
            "atrial fibrillation/flutter. marked left axis deviation. qrs(t) abnormal, "
            "anteroseptal "
            "infarct, probably old. inferior infarct, probably old. st and t abnormal, probably "
            "high "
            "lateral ischaemia or left ventricular strain."
        ),
    ),
    (
        2402,
        "sinusrhythmus linkstyp linksschenkelblock t neg in avl",
        "sinus rhythm. left axis deviation. left bundle branch block. t negative in avl.",
    ),
    (
        3783,
        (
            "sinusrhythmus p-sinistrocardiale lagetyp normal qrs(t) abnorm    inferiorer infarkt "
            "mÖglich"
        ),
        (
            "sinus rhythm. left atrial enlargement. normal axis. qrs(t) abnormal, inferior "
            "infarct, "
            "possible."
        ),
    ),
    (
        724,
        (
            "sinusrhythmus r-s #bergang in v ableitungen nach rechts verschoben unvollstÄndiger "
            "rechtsschenkelblock sonst normales ekg"
        ),
        (
            "sinus rhythm. r/s transition in the precordial leads shifted to the right. incomplete "
            "right bundle branch block. otherwise normal ecg."
        ),
    ),
    (
        11560,
        (
            "supraventrikulÄre extrasystole(n), trigeminus sinusrhythmus lagetyp normal st & t "
            "abnormal, wahrscheinlich    inferiore ischÄmie oder linksbelastung"
        ),
        (
            "supraventricular extrasystole(s), trigeminy. sinus rhythm. normal axis. st and t "
            "abnormal, probably inferior ischaemia or left ventricular strain."
        ),
    ),
    (
        3729,
        (
            "sinusrhythmus verdacht auf p-sinistrocardiale ueberdrehter linkstyp r-s Übergang in v "
            "ableitungen nach links verschoben linksanteriorer hemiblock t abnorm in hochlateralen "
            "ableitungen"
        ),
        (
            "sinus rhythm. suspected left atrial enlargement. marked left axis deviation. r/s "
            "transition in the precordial leads shifted to the left. left anterior fascicular "
            "block. "
            "t abnormal in high lateral leads."
        ),
    ),
    (
        5636,
        (
            "sinusrhythmus lagetyp normal qrs(t) abnorm    anteroseptaler infarkt     "
            "wahrscheinlich "
            "alt st & t abnorm, wahrscheinlich    anterolaterale ischÄmie oder linksbelastung t "
            "abnorm "
            "in inferolateralen ableitungen 4.46                          unbestÄtigter be"
        ),
        (
            "sinus rhythm. normal axis. qrs(t) abnormal, anteroseptal infarct, probably old. st "
            "and t "
            "abnormal, probably anterolateral ischaemia or left ventricular strain. t abnormal in "
            "inferolateral leads."
        ),
    ),
    (
        5658,
        "schrittmacher ekg 4.46                          unbestÄtigter bericht",
        "pacemaker ecg.",
    ),
    (
        4442,
        (
            "tachykardes vorhofflimmern linkstyp linksschenkelblock linkshypertrophie mÖglich 4.46"
            "                          unbestÄtigter bericht"
        ),
        (
            "rapid atrial fibrillation. left axis deviation. left bundle branch block. possible "
            "left "
            "ventricular hypertrophy."
        ),
    ),
    (
        9068,
        (
            "vorhofflimmern/-flattern linkstyp qrs(t) abnorm    anteroseptaler infarkt     "
            "wahrscheinlich alt st & t abnorm, wahrscheinlich    anterolaterale ischÄmie oder "
            "linksbelastung    inferolaterale ischÄmie oder linksbelastung 4.46                    "
            "      unbe"
        ),
        (
            "atrial fibrillation/flutter. left axis deviation. qrs(t) abnormal, anteroseptal "
            "infarct, "
            "probably old. st and t abnormal, probably anterolateral ischaemia or left ventricular "
            "strain, inferolateral ischaemia or left ventricular strain."
        ),
    ),
    (
        2750,  # cut at 255 characters inside "leitungsstörung"
        (
            "ventrikulÄre extrasystole(n) uniform supraventrikulÄre extrasystole(n) vorhofs es "
            "sinusrhythmus infarkt inferior chronisch moeglich                                     "
            "   "
            "                                     linksanteriorer hemiblock intraventr. leitungss"
        ),
        (
            "ventricular extrasystole(s), uniform. supraventricular extrasystole(s). atrial "
            "extrasystoles. sinus rhythm. infarct. inferior chronic, possible. left anterior "
            "fascicular block."
        ),
    ),
    (
        5343,  # cut inside "anterolateralen ableitungen"
        (
            "ventrikulÄre extrasystole(n) supraventrikulÄre arrhythmie verdacht auf "
            "p-sinistrocardiale "
            "lagetyp normal periphere niederspannung qrs(t) abnorm    anteroseptaler infarkt     "
            "wahrscheinlich alt    inferiorer infarkt     alter unbest. t abnorm in anterolate"
        ),
        (
            "ventricular extrasystole(s). supraventricular arrhythmia. suspected left atrial "
            "enlargement. normal axis. low limb lead voltage. qrs(t) abnormal, anteroseptal "
            "infarct, "
            "probably old. inferior infarct, age undetermined. t abnormal."
        ),
    ),
]

SWEDISH = [
    (
        380,
        (
            "sinusrytm vÄnster el-axel st-t sÄnkning, sÅsom vid    anterolateral ischemi eller "
            "vÄnster "
            "belastning t-fÖrÄndring, sÅsom vid    anterior myokardaffektion"
        ),
        (
            "sinus rhythm. left axis deviation. st-t depression, as in anterolateral ischaemia or "
            "left "
            "ventricular strain. t wave change, as in anterior myocardial involvement."
        ),
    ),
    (
        7778,
        (
            "ventrikulÄr(a) extrasystoli(er) sinusrytmconsensus label derived from: {'NST_': 50.0, "
            "'PVC': 100.0, 'SR': 0.0},{'NORM': 100.0, 'SR': 0.0}"
        ),
        "ventricular extrasystole(s). sinus rhythm.",
    ),
    (
        384,
        "sinusrytm vÄnster el-axel eljest normalt ekg",
        "sinus rhythm. left axis deviation. otherwise normal ecg.",
    ),
    (
        386,
        "fÖrmaksflimmer med hÖg kammarfrekvens vÄnster el-axel vÄnster kammarhypertrofi",
        (
            "atrial fibrillation with rapid ventricular response. left axis deviation. left "
            "ventricular hypertrophy."
        ),
    ),
    (
        5925,
        "regelbunden rytm, inga p-vÅg funna vÄnster el-axel vÄnstersidigt skÄnkelblock",
        "regular rhythm, no p wave detected. left axis deviation. left bundle branch block.",
    ),
    (
        1426,
        (
            "ventrikulÄr(a) extrasystoli(er) interpolerade ventrikulÄr(a) extrasystoli(er) "
            "sinustachykardi misstÄnkt vÄnster kammarhypertrofi"
        ),
        (
            "ventricular extrasystole(s). interpolated ventricular extrasystole(s). sinus "
            "tachycardia. suspected left ventricular hypertrophy."
        ),
    ),
    (
        5927,
        (
            "sinusrytm vÄnster el-axel gammal anterior infarkt med st-hÖjning  som inger misstanke "
            "pÅ "
            "akinesi/aneurism"
        ),
        (
            "sinus rhythm. left axis deviation. old anterior infarct, with st elevation suggesting "
            "akinesia/aneurysm."
        ),
    ),
    (
        1392,
        "sinusrytm a-v block i p fÖrlÄngd ospecifik t-fÖrÄndring                       !",
        "sinus rhythm. first degree av block. prolonged p wave. non-specific t wave change.",
    ),
]

ENGLISH = [
    "sinus rhythm. minor non-specific t wave flattening in v3,4.",
    "sinus rhythm. normal ecg.",
    "trace only requested.",
    (
        "sinus bradycardia.. compared with tracings of 17 & 19:3:92, it is very similar to the "
        "latter, but there is now bradycardia. the t wave changes persist."
    ),
]


@pytest.fixture(scope="module")
def translator() -> Translator:
    return load_translator()


@pytest.fixture(scope="module")
def sample_rows(ptbxl_reports_csv: Path) -> list[dict[str, str]]:
    with ptbxl_reports_csv.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def sample_translations(
    translator: Translator, sample_rows: list[dict[str, str]]
) -> list[Translation]:
    return [translator.translate(row["report"]) for row in sample_rows]


def _german_only_words(translator: Translator) -> set[str]:
    """Words of the German/Swedish glossaries that never occur in their English side."""
    english = {
        w
        for g in (translator.de, translator.sv)
        for e in g.english.values()
        for w in re.findall(r"[^\W\d_]+", e)
    }
    return (translator.de.vocabulary | translator.sv.vocabulary) - english


# --- real reports -----------------------------------------------------------------------------


def test_cases_are_verbatim_rows(sample_rows: list[dict[str, str]], ptbxl_sample: Path) -> None:
    with (ptbxl_sample / "ptbxl_database.csv").open(newline="", encoding="utf-8") as handle:
        rows = sample_rows + list(csv.DictReader(handle))
    by_id = {int(r["ecg_id"]): r["report"] for r in rows}
    for ecg_id, report, _ in GERMAN + SWEDISH:
        assert by_id[ecg_id] == report, ecg_id


@pytest.mark.parametrize(("ecg_id", "report", "english"), GERMAN, ids=[str(c[0]) for c in GERMAN])
def test_german_reports(translator: Translator, ecg_id: int, report: str, english: str) -> None:
    out = translator.translate(report)
    assert out.language == "de"
    assert out.text == english
    assert out.untranslated == ()
    assert not set(re.findall(r"[^\W\d_]+", out.text)) & _german_only_words(translator)


@pytest.mark.parametrize(("ecg_id", "report", "english"), SWEDISH, ids=[str(c[0]) for c in SWEDISH])
def test_swedish_reports(translator: Translator, ecg_id: int, report: str, english: str) -> None:
    out = translator.translate(report)
    assert out.language == "sv"
    assert out.text == english
    assert out.untranslated == ()
    assert not set(re.findall(r"[^\W\d_]+", out.text)) & _german_only_words(translator)


@pytest.mark.parametrize("report", ENGLISH)
def test_english_passes_unchanged(translator: Translator, report: str) -> None:
    out = translator.translate(report)
    assert (out.language, out.text, out.untranslated) == ("en", report, ())


def test_english_rows_of_sample_unchanged(
    sample_rows: list[dict[str, str]], sample_translations: list[Translation]
) -> None:
    english = [(r, t) for r, t in zip(sample_rows, sample_translations) if t.language == "en"]
    assert 1080 <= len(english) <= 1180  # PROVENANCE: about 1,130
    for row, out in english:
        assert out.text == strip_boilerplate(row["report"])
        if "edit:" not in row["report"].lower():
            assert out.text == row["report"]
        assert not re.search(r"\b(sinusrhythmus|lagetyp|linkstyp|sinusrytm)\b", out.text)


def test_language_counts_match_provenance(sample_translations: list[Translation]) -> None:
    counts = {
        lang: sum(t.language == lang for t in sample_translations) for lang in ["de", "sv", "en"]
    }
    assert 1700 <= counts["de"] <= 1800  # about 1,750
    assert 50 <= counts["sv"] <= 70  # about 58


def _coverage(translations: list[Translation], language: str) -> tuple[int, int, float, list]:
    """Reports, word tokens, share of tokens translated, and the most frequent untranslated words
    of ``language``: the sums the build's manifest reports (``translation_coverage``)."""
    chosen = [t for t in translations if t.language == language]
    for t in chosen:  # what the build's per-unit sums rely on
        assert t.n_tokens - t.n_translated == len(t.untranslated), t
    tokens = sum(t.n_tokens for t in chosen)
    missing = Counter(w for t in chosen for w in t.untranslated).most_common(20)
    return len(chosen), tokens, sum(t.n_translated for t in chosen) / tokens, missing


def test_german_coverage_at_least_98_percent(sample_translations: list[Translation]) -> None:
    reports, tokens, share, missing = _coverage(sample_translations, "de")
    assert reports >= 1700
    assert tokens > 15_000
    assert share >= 0.98, missing


def test_swedish_coverage(sample_translations: list[Translation]) -> None:
    reports, _, share, missing = _coverage(sample_translations, "sv")
    assert reports >= 50
    assert share >= 0.98, missing


def test_physionet_sample_rows(translator: Translator, ptbxl_sample: Path) -> None:
    with (ptbxl_sample / "ptbxl_database.csv").open(newline="", encoding="utf-8") as handle:
        out = {int(r["ecg_id"]): translator.translate(r["report"]) for r in csv.DictReader(handle)}
    assert (
        out[6001].text
        == "sinus rhythm. broad p wave. normal axis. st and t abnormal, pathological."
    )
    assert out[6007].text == "sinus rhythm. normal ecg."
    assert out[6002].text == (
        "sinus bradycardia. otherwise normal ecg. the bradycardia may be physiological."
    )
    assert all(not t.untranslated for t in out.values())


# --- spelling variants, truncation -----------------------------------------------------------


@pytest.mark.parametrize(
    "variants",
    [
        [
            "ventrikuläre extrasystole(n)",
            "ventrikulaere extrasystole(n)",
            "ventrikulÄre extrasystole(n)",
            "VENTRIKULÄRE EXTRASYSTOLE(N)",
        ],
        [
            "mässige amplitudenkriterien für linkshypertrophie",
            "maessige amplitudenkriterien fuer linkshypertrophie",
            "mÄssige amplitudenkriterien fÜr linkshypertrophie",
            "mÄssige amplitudenkriterien f#r linkshypertrophie",
            "mäßige amplitudenkriterien für linkshypertrophie",
        ],
        [
            "sinusrhythmus überdrehter linkstyp",
            "sinusrhythmus ueberdrehter linkstyp",
            "sinusrhythmus Überdrehter linkstyp",
            "sinusrhythmus #berdrehter linkstyp",
        ],
        ["qt-verlängerung", "qt-verlaengerung", "qt-verlÄngerung"],
        [
            "r-s übergang in v ableitungen nach rechts verschoben",
            "r-s #bergang in v ableitungen nach rechts verschoben",
            "r-s Übergang in v ableitungen nach rechts verschoben",
            "r-s uebergang in v ableitungen nach rechts verschoben",
        ],
    ],
)
def test_umlaut_spellings_translate_identically(
    translator: Translator, variants: list[str]
) -> None:
    outs = {translator.translate("sinusrhythmus " + v).text for v in variants}
    assert len(outs) == 1, outs
    assert all(not translator.translate("sinusrhythmus " + v).untranslated for v in variants)


def test_alter_unbest_is_translated_not_dropped(translator: Translator) -> None:
    out = translator.translate("qrs(t) abnorm    inferiorer infarkt     alter unbest.")
    assert out.text == "qrs(t) abnormal, inferior infarct, age undetermined."


def test_truncated_phrase_dropped_and_dangling_words_removed(translator: Translator) -> None:
    out = translator.translate(
        "sinusrhythmus lagetyp normal unspezifische intraventrikulÄre leitungsstÖrung qrs(t) abnorm"
        "    inferiorer myokardschaden mÖglich st & t abnorm, mÖglicherweise neuer    "
        "anteroseptaler myokard- oder perikards"
    )
    assert out.untranslated == ()
    assert out.text.endswith("st and t abnormal, possibly new anteroseptal.")


def test_unknown_words_are_kept_and_reported(translator: Translator) -> None:
    out = translator.translate("bradykardes vorhofflattern seitenlagetyp path. ekg")
    assert out.text == "slow atrial flutter. seitenlagetyp abnormal ecg."
    assert out.untranslated == ("seitenlagetyp",)
    assert (out.n_tokens, out.n_translated) == (5, 4)


# --- glossary files -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["de_en.tsv", "sv_en.tsv"])
def test_glossary_files_are_clean(name: str) -> None:
    lines = (GLOSSARY_DIR / name).read_text(encoding="utf-8").splitlines()
    rows = [ln.split("\t") for ln in lines if ln.strip() and not ln.startswith("#")][1:]
    assert rows
    for phrase, english in rows:
        assert phrase == phrase.lower().strip() and "  " not in phrase
        assert english == english.strip() and english == english.lower()
        assert "#" not in phrase and "ß" not in phrase  # canonical spelling: ü, ss


def test_load_translator_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_translator(tmp_path)
    (tmp_path / "de_en.tsv").write_text("phrase\tenglish\nx\ty\nx\tz\n", encoding="utf-8")
    (tmp_path / "sv_en.tsv").write_text("phrase\tenglish\na\tb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate"):
        load_translator(tmp_path)
    (tmp_path / "de_en.tsv").write_text("word\tenglish\nx\ty\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        load_translator(tmp_path)
