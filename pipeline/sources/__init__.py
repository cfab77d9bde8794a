"""Datasets: one file per source implementing :class:`Source`, and the registry of them.

A source knows its folder layout (``prepare`` lists the records as a record frame, see
:mod:`pipeline.sources.record`), how its patients are split, how its reports become English, which
question–answer facts its metadata supports, and what its dataset card says. Everything else in
the pipeline is the same for every source.

Adding a dataset (e.g. CODE-15, Chapman-Shaoxing): write ``pipeline/sources/<name>.py`` with one
class implementing :class:`Source` (plus its tests), add an instance to :data:`BUILTIN`, and give its
folder in the build config as ``sources: {<name>: <folder>}``. A source that lives elsewhere (a
plug-in, or the tests' toy source) is passed to :func:`pipeline.build.build` in ``extra_sources``.

A dataset file may also hold a plain ``write_<name>_layout(root, records)`` that writes a small
folder in its layout (``write_ptbxl_layout``, ``write_mimic_layout``: the demo and the tests use
them). It is not part of :class:`Source`: its records are shaped by the dataset's own files, and
a build never writes inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pipeline.sources.mimic import MIMIC
from pipeline.sources.ptbxl import PTBXL

if TYPE_CHECKING:
    import polars as pl

    from pipeline.config import BuildConfig, TextConfig
    from pipeline.reports import ReportCleaner, ReportText
    from pipeline.storage import Location


@runtime_checkable
class Source(Protocol):
    """What the pipeline needs to know about one dataset."""

    name: str
    """Id in row ids, shard paths and configs (``ptbxl``)."""
    title: str
    """Dataset name and version for the dataset card (``PTB-XL v1.0.3``)."""
    display_name: str
    """The name instruction templates may say (``PTB-XL``)."""
    license: str
    split_rule: Literal["folds", "patient"]
    """``folds``: the source's own ``strat_fold`` (config ``split.ptbxl_folds``); ``patient``: a
    seeded hash of the patient id (or MEIT's record-level hash with ``split.mode: meit``)."""

    def prepare(self, root: Location, cfg: BuildConfig) -> pl.DataFrame:
        """The records of the folder ``root`` as a record frame, sorted, metadata only.

        Rows that cannot be used may stay in the frame with a reason slug and detail in the
        optional ``_reject_reason`` / ``_reject_detail`` columns (:mod:`pipeline.sources.record`):
        discovery turns them into rejections. An unusable folder as a whole (a missing file or
        column) is an :class:`pipeline.errors.InputError`.
        """
        ...

    def load_resources(self, root: Location) -> Mapping[str, Any]:
        """Lookup tables a worker loads once per shard (e.g. PTB-XL's SCP statements)."""
        ...

    def clean_report(self, cleaner: ReportCleaner, row: dict) -> ReportText:
        """The record's English report."""
        ...

    def min_report_words(self, text: TextConfig) -> int:
        """Reports with fewer words after cleaning are rejected."""
        ...

    def facts(self, row: dict, resources: Mapping[str, Any], text: TextConfig) -> dict:
        """Question–answer facts the record supports (keys of :func:`pipeline.qa.no_facts`)."""
        ...

    def card_text(self) -> str:
        """A paragraph about the source for the corpus's dataset card."""
        ...


BUILTIN: tuple[Source, ...] = (PTBXL, MIMIC)
"""The sources every build knows, in the order a build processes them."""


def registry(extra: Sequence[Source] = ()) -> dict[str, Source]:
    """Name -> source for the built-in sources and ``extra`` ones (a name may not repeat)."""
    out: dict[str, Source] = {}
    for source in (*BUILTIN, *extra):
        if source.name in out:
            raise ValueError(f"two sources are named {source.name!r}")
        out[source.name] = source
    return out
