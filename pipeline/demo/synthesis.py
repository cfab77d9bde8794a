"""The repository's one ECG simulator: 12-lead records from ``neurokit2.ecg_simulate``.

Simulating costs ~1 s per 10 s record, so :func:`simulate_templates` simulates one long template
per rhythm class (heart rates 52, 75 and 112 bpm) and :func:`synthesise_ecg` makes each record a
time-warped window of one of them at its own heart rate (warp at most +-27 %), with per-lead gains
and seeded ``neurokit2.signal_distort`` noise (baseline wander, muscle-like noise, mains hum).

``ecg_simulate(method="multileads")`` returns a DataFrame with columns I II III aVR aVL aVF V1..V6,
each lead independently min-max scaled, so its limb leads break Einthoven's law and its lead II is
T-dominant. The records therefore take, by name, V1..V6 as themselves and the two R-dominant
simulated leads "I" and "aVL" as the x and y components of the frontal heart vector at the record's
QRS axis: I = x, II = x/2 + y*sqrt(3)/2, and III, aVR, aVL, aVF follow from I and II
(Einthoven/Goldberger), as in a real recording -- so a swapped aVL/aVF is detectable from the
signal alone.

The synthetic demo (:mod:`pipeline.demo`) and the trainer's test corpora use this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import neurokit2 as nk
import numpy as np

FS = 500
DURATION_S = 10


@dataclass(frozen=True)
class Rhythm:
    """A rhythm class: its PTB-XL code, template heart rate, heart-rate range and frequency."""

    code: str
    template_hr: float
    hr_range: tuple[int, int]
    """Inclusive integer heart rates (bpm) of records of this class."""
    probability: float


RHYTHMS: tuple[Rhythm, ...] = (
    Rhythm("SBRAD", 52.0, (45, 58), 0.2),
    Rhythm("SR", 75.0, (62, 95), 0.65),
    Rhythm("STACH", 112.0, (103, 125), 0.15),
)
"""Sinus bradycardia (< 60 bpm), sinus rhythm and sinus tachycardia (> 100 bpm)."""
AXIS_RANGE = (10, 75)
"""Inclusive frontal QRS axes (degrees) of records: always a normal axis ("lagetyp normal")."""

_SIM_LEADS: tuple[str, ...] = ("I", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
"""Simulated leads used: "I" and "aVL" (both R-dominant) as the frontal heart vector's x and y
components, V1..V6 as themselves. The other simulated leads are not used."""
_CHEST_GAINS: tuple[tuple[float, float], ...] = (
    (0.5, 0.9),
    (0.8, 1.5),
    (0.8, 1.5),
    (0.8, 1.4),
    (0.7, 1.2),
    (0.5, 1.0),
)


@dataclass(frozen=True)
class Template:
    """One long simulation of a rhythm class."""

    hr: float
    leads: np.ndarray
    """(8, M) in ``_SIM_LEADS`` order, median-centred, at :data:`FS`."""


def simulate_templates(seed: int, duration_s: int = DURATION_S) -> tuple[Template, ...]:
    """One multi-lead simulation per rhythm of :data:`RHYTHMS`, long enough for records of
    ``duration_s`` at the top of its heart-rate range (the expensive part, ~1 s each)."""
    templates = []
    for i, rhythm in enumerate(RHYTHMS):
        duration = math.ceil(duration_s * rhythm.hr_range[1] / rhythm.template_hr + 1.0)
        state = int(np.random.default_rng([seed, 3, i]).integers(2**31))
        frame = nk.ecg_simulate(
            duration=duration,
            sampling_rate=FS,
            method="multileads",
            heart_rate=rhythm.template_hr,
            random_state=state,
        )
        leads = np.stack([frame[name].to_numpy(dtype=np.float64) for name in _SIM_LEADS])
        leads -= np.median(leads, axis=1, keepdims=True)
        templates.append(Template(hr=rhythm.template_hr, leads=leads))
    return tuple(templates)


def synthesise_ecg(
    template: Template,
    hr: float,
    axis_deg: float,
    rng: np.random.Generator,
    powerline_hz: float,
    duration_s: int = DURATION_S,
) -> np.ndarray:
    """A (12, FS * duration_s) canonical-order record in mV at ``hr`` bpm and frontal QRS axis
    ``axis_deg``, drawn from ``rng``.

    Lead I is the x component, II = x/2 + y*sqrt(3)/2 (lead II's axis is +60 deg), and III, aVR,
    aVL, aVF follow from I and II by Einthoven's and Goldberger's equations.
    """
    n = FS * duration_s
    k = hr / template.hr
    m = template.leads.shape[1]
    offset = rng.uniform(0.0, m - 1 - (n - 1) * k)
    positions = offset + np.arange(n) * k
    grid = np.arange(m)
    base = np.stack([np.interp(positions, grid, lead) for lead in template.leads])
    amplitude = rng.uniform(0.9, 1.4)
    theta = math.radians(axis_deg)
    gains = [amplitude * math.cos(theta), amplitude * math.sin(theta)]
    base *= np.array(gains + [rng.uniform(lo, hi) for lo, hi in _CHEST_GAINS])[:, None]
    noisy = nk.signal_distort(
        base.ravel(),
        sampling_rate=FS,
        noise_amplitude=[0.2, 0.02, 0.01],
        noise_frequency=[0.3, 5, 25],
        powerline_amplitude=0.01,
        powerline_frequency=powerline_hz,
        random_state=int(rng.integers(2**31)),
        silent=True,
    ).reshape(base.shape)
    lead_i, chest = noisy[0], noisy[2:]
    lead_ii = noisy[0] / 2 + noisy[1] * math.sqrt(3) / 2
    limb = np.stack(
        [
            lead_i,
            lead_ii,
            lead_ii - lead_i,  # III
            -(lead_i + lead_ii) / 2,  # aVR
            lead_i - lead_ii / 2,  # aVL
            lead_ii - lead_i / 2,  # aVF
        ]
    )
    return np.concatenate([limb, chest])


def simulate_records(n: int, seed: int, duration_s: int = DURATION_S) -> np.ndarray:
    """``n`` distinct records, (n, 12, FS * duration_s) mV, cycling through :data:`RHYTHMS`.

    Record ``i`` has a seeded heart rate in its rhythm's range and axis in :data:`AXIS_RANGE`,
    with 50 Hz mains hum. Deterministic in (``n``, ``seed``, ``duration_s``).
    """
    templates = simulate_templates(seed, duration_s)
    out = np.empty((n, 12, FS * duration_s))
    for i in range(n):
        rng = np.random.default_rng([seed, 4, i])
        c = i % len(RHYTHMS)
        lo, hi = RHYTHMS[c].hr_range
        hr = int(rng.integers(lo, hi + 1))
        axis = int(rng.integers(AXIS_RANGE[0], AXIS_RANGE[1] + 1))
        out[i] = synthesise_ecg(templates[c], hr, axis, rng, 50.0, duration_s)
    return out
