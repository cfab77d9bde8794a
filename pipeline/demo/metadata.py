"""The demo's metadata: PTB-XL database rows and MIMIC-IV-ECG studies that agree with the signals.

Every record gets a rhythm class and heart rate (:data:`pipeline.demo.synthesis.RHYTHMS`) and a
frontal QRS axis; its report, SCP codes, machine statements and measurements say the same (brady
< 60 <= normal <= 100 < tachy, MIMIC's ``qrs_axis`` = the simulated axis). Patients (PTB-XL) and
subjects (MIMIC) have 2-4 records each; a PTB-XL patient's records share one fold.

PTB-XL ecg_ids start just below 1000 so the records span the ``records500/00000`` and
``records500/01000`` folders. Everything is drawn from ``numpy`` generators seeded by ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

import numpy as np

from pipeline.demo.synthesis import AXIS_RANGE, RHYTHMS
from pipeline.sources.mimic import MEASUREMENT_COLUMNS, MIMIC_WARNING

SCP_ROWS: tuple[str, ...] = (
    "NORM,normal ECG,1.0,,,NORM,NORM,Normal/abnormal,normal ECG,1,,,F-000B7",
    "SR,sinus rhythm,,,1.0,,,Statements related to impulse formation (abnormalities),"
    "sinus rhythm,20,MDC_ECG_RHY_SINUS_RHY,,",
    "STACH,sinus tachycardia,,,1.0,,,Statements related to impulse formation "
    "(abnormalities),sinus tachycardia,21,MDC_ECG_RHY_SINUS_TACHY,,",
    "SBRAD,sinus bradycardia,,,1.0,,,Statements related to impulse formation "
    "(abnormalities),sinus bradycardia,22,MDC_ECG_RHY_SINUS_BRADY,,",
)
"""Verbatim rows of PTB-XL v1.0.3's scp_statements.csv for the codes the demo uses, in file order."""

_FOLD_CYCLE: tuple[int, ...] = (10, 9, 1, 2, 3, 4, 5, 6, 7, 8)  # test and validation first
_UNBEST = "4.46" + " " * 26 + "unbestÄtigter bericht"
_PTBXL_REPORTS = MappingProxyType(
    {
        ("de", "SR"): (
            "sinusrhythmus normales ekg",
            "sinusrhythmus lagetyp normal normales ekg",
            f"sinusrhythmus lagetyp normal normales ekg {_UNBEST}",
        ),
        ("de", "SBRAD"): (
            "sinusbradykardie sonst normales ekg",
            "sinusbradykardie lagetyp normal sonst normales ekg",
            f"sinusbradykardie lagetyp normal sonst normales ekg {_UNBEST}",
        ),
        ("de", "STACH"): (
            "sinustachykardie sonst normales ekg",
            "sinustachykardie lagetyp normal sonst normales ekg",
            f"sinustachykardie lagetyp normal sonst normales ekg {_UNBEST}",
        ),
        ("en", "SR"): ("sinus rhythm. normal ecg.", "sinus rhythm normal ecg."),
        ("en", "SBRAD"): ("sinus bradycardia. otherwise normal ecg.",),
        ("en", "STACH"): ("sinus tachycardia. otherwise normal ecg.",),
        ("sv", "SR"): ("sinusrytm normalt ekg",),
    }
)
_SCP_CODES = MappingProxyType(
    {
        "SR": "{'NORM': 100.0, 'SR': 0.0}",
        "SBRAD": "{'NORM': 80.0, 'SBRAD': 0.0}",
        "STACH": "{'NORM': 80.0, 'STACH': 0.0}",
    }
)
_DEVICES = MappingProxyType(
    {
        "de": ("CS-12   E", "CS100    3", "CS-12"),
        "en": ("AT-6 C 5.5", "AT-6     6", "AT-6 C 5.8"),
        "sv": ("AT-6 C 5.0",),
    }
)
_MIMIC_RHYTHM = MappingProxyType(
    {"SR": "Sinus rhythm", "SBRAD": "Sinus bradycardia", "STACH": "Sinus tachycardia"}
)


@dataclass(frozen=True)
class Heart:
    """What a record's signal is simulated from: rhythm class (index into RHYTHMS), rate, axis."""

    rhythm: int
    hr: int
    axis: int


@dataclass(frozen=True)
class PtbxlMeta:
    """One demo PTB-XL record: its ecg_id, heart and ``ptbxl_database.csv`` cells."""

    ecg_id: int
    heart: Heart
    fields: dict[str, str]


@dataclass(frozen=True)
class MimicMeta:
    """One demo MIMIC-IV-ECG study: its ids, time, heart, statements and machine cells."""

    subject_id: int
    study_id: int
    ecg_time: datetime
    heart: Heart
    statements: tuple[str, ...]
    machine: dict[str, str]


def _group_sizes(n: int, rng: np.random.Generator) -> list[int]:
    """Records per patient/subject: 2-4 each, summing to n."""
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.choice((2, 3, 4))))
    sizes[-1] -= sum(sizes) - n
    if sizes[-1] < 2 and len(sizes) > 1:
        last = sizes.pop()
        sizes[-1] += last
    return sizes


def _heart(rng: np.random.Generator) -> Heart:
    """A rhythm class by its probability, an integer heart rate in its range, and an axis."""
    cls = int(rng.choice(len(RHYTHMS), p=[r.probability for r in RHYTHMS]))
    lo, hi = RHYTHMS[cls].hr_range
    hr = int(rng.integers(lo, hi + 1))
    return Heart(cls, hr, int(rng.integers(AXIS_RANGE[0], AXIS_RANGE[1] + 1)))


def _fmt_float(value: float | None) -> str:
    return "" if value is None else f"{float(value):.1f}"


def _ptbxl_patients(n_patients: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """Patient-level database cells (id, demographics, fold) as PTB-XL formats them."""
    patient_ids = rng.choice(np.arange(1, 21800), size=n_patients, replace=False)
    return [
        {
            "patient_id": f"{float(pid):.1f}",
            "age": _fmt_float(int(rng.integers(18, 89))),
            "sex": str(int(rng.integers(0, 2))),
            "height": _fmt_float(int(rng.integers(150, 195)) if rng.random() < 0.4 else None),
            "weight": _fmt_float(int(rng.integers(50, 110)) if rng.random() < 0.6 else None),
            "strat_fold": str(_FOLD_CYCLE[p % len(_FOLD_CYCLE)]),
        }
        for p, pid in enumerate(patient_ids)
    ]


def ptbxl_metadata(n: int, seed: int) -> list[PtbxlMeta]:
    """``n`` PTB-XL records in ecg_id order, their patients in random order."""
    rng = np.random.default_rng([seed, 10])
    sizes = _group_sizes(n, rng)
    patients = _ptbxl_patients(len(sizes), rng)
    owners = np.repeat(np.arange(len(sizes)), sizes)[rng.permutation(n)]
    first_id = max(1, 1000 - n // 2)
    when = datetime(1989, 1, 2, 8, 0, 0) + timedelta(days=int(rng.integers(0, 3000)))
    out = []
    for i, owner in enumerate(owners):
        when += timedelta(seconds=int(rng.integers(600, 3 * 86400)))
        heart = _heart(rng)
        code = RHYTHMS[heart.rhythm].code
        lang = str(rng.choice(("de", "en", "sv"), p=(0.6, 0.32, 0.08)))
        if (lang, code) not in _PTBXL_REPORTS:
            lang = "de"
        choices = _PTBXL_REPORTS[(lang, code)]
        report = choices[int(rng.integers(len(choices)))]
        devices = _DEVICES[lang]
        device = devices[int(rng.integers(len(devices)))]
        fields = {
            **patients[int(owner)],
            "validated_by": "" if lang == "de" else _fmt_float(int(rng.integers(0, 2))),
            "nurse": _fmt_float(int(rng.integers(0, 12))),
            "site": _fmt_float(int(rng.integers(0, 3))),
            "device": device,
            "recording_date": when.strftime("%Y-%m-%d %H:%M:%S"),
            "report": report,
            "scp_codes": _SCP_CODES[code],
            "heart_axis": "MID" if "lagetyp normal" in report else "",
            "second_opinion": "False",
            "initial_autogenerated_report": "False",
            "validated_by_human": "True",
        }
        out.append(PtbxlMeta(first_id + i, heart, fields))
    return out


def _mimic_statements(code: str, rng: np.random.Generator) -> tuple[str, ...]:
    lines = [MIMIC_WARNING] if rng.random() < 0.12 else []
    lines.append(_MIMIC_RHYTHM[code])
    if rng.random() < 0.3:
        lines += ["Possible right atrial abnormality", "", "Borderline ECG"]
    else:
        lines.append("Normal ECG" if code == "SR" else "Normal ECG except for rate")
    return tuple(lines)


def _mimic_measurements(heart: Heart, rng: np.random.Generator) -> dict[str, str]:
    """Machine measurements (bandwidth … t_axis) that agree with the heart rate and axis."""
    rr = round(60000 / heart.hr)
    p_onset = int(rng.integers(30, 60))
    p_end = p_onset + int(rng.integers(85, 115))
    qrs_onset = p_onset + int(rng.integers(125, 190))
    qrs_end = qrs_onset + int(rng.integers(80, 105))
    qt = round(rng.uniform(390, 440) * math.sqrt(rr / 1000))  # Bazett, QTc 390-440 ms
    values = (rr, p_onset, p_end, qrs_onset, qrs_end, qrs_onset + qt)
    values += (int(rng.integers(20, 76)), heart.axis, int(rng.integers(10, 71)))
    cells = ("0.005-150 Hz", "60 Hz notch Baseline filter", *(str(v) for v in values))
    return dict(zip(MEASUREMENT_COLUMNS, cells, strict=True))


def mimic_metadata(n: int, seed: int) -> list[MimicMeta]:
    """``n`` MIMIC-IV-ECG studies in (subject_id, ecg_time) order."""
    rng = np.random.default_rng([seed, 20])
    sizes = _group_sizes(n, rng)
    subject_ids = np.sort(
        rng.choice(np.arange(10_000_000, 20_000_000), size=len(sizes), replace=False)
    )
    study_ids = rng.choice(np.arange(40_000_000, 50_000_000), size=n, replace=False)
    carts = rng.choice(np.arange(6_000_000, 7_000_000), size=4, replace=False)
    epoch = datetime(2110 + seed % 80, 1, 1)
    out: list[MimicMeta] = []
    for subject_id, size in zip(subject_ids, sizes):
        when = epoch + timedelta(
            days=int(rng.integers(0, 3650)), minutes=int(rng.integers(0, 24 * 60))
        )
        for _ in range(size):
            heart = _heart(rng)
            statements = _mimic_statements(RHYTHMS[heart.rhythm].code, rng)
            measurements = _mimic_measurements(heart, rng)
            cart = str(carts[int(rng.integers(len(carts)))])
            study_id = int(study_ids[len(out)])
            machine = {"cart_id": cart, **measurements}
            out.append(MimicMeta(int(subject_id), study_id, when, heart, statements, machine))
            when += timedelta(minutes=int(rng.integers(20, 60 * 24 * 90)))
    return out
