"""The PhysioNet datasets ``meit-corpus download`` fetches: names, versions and base URLs, as data.

PhysioNet serves every project version under ``https://physionet.org/files/<slug>/<version>/`` (the
same tree as its zip), with ``SHA256SUMS.txt`` at that root listing every file. A new version is one
line here; nothing else names these URLs.
"""

from __future__ import annotations

from dataclasses import dataclass

PHYSIONET_FILES = "https://physionet.org/files"


@dataclass(frozen=True)
class PhysioNetDataset:
    """One open-access PhysioNet project at one version."""

    name: str  # what the user types: ``meit-corpus download <name>``
    slug: str  # PhysioNet's project slug
    version: str
    license: str
    records: int  # ECGs in this version (for the help text)

    @property
    def url(self) -> str:
        """The version's root, ending in ``/`` (``SHA256SUMS.txt`` lies directly under it)."""
        return f"{PHYSIONET_FILES}/{self.slug}/{self.version}/"


DATASETS: dict[str, PhysioNetDataset] = {
    d.name: d
    for d in (
        PhysioNetDataset("ptbxl", "ptb-xl", "1.0.3", "CC BY 4.0", 21_799),
        PhysioNetDataset("mimic-iv-ecg", "mimic-iv-ecg", "1.0", "ODbL 1.0", 800_035),
    )
}
"""Datasets by the name ``meit-corpus download`` takes."""
