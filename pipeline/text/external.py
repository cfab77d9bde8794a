"""English for PTB-XL reports from outside the glossary: a pre-translated CSV keyed by ``ecg_id``,
or a local MarianMT model (optional, ``transformers``; nothing is downloaded)."""

from __future__ import annotations

import csv
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.text.language import WORD_RUN, Language, detect_language, fold_case, strip_boilerplate
from pipeline.text.translate import Translation, tidy
from pipeline.text.tsv import collapse

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
                [collapse(fold_case(bodies[i])) for i in todo],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            )
            outputs = model.generate(**batch, max_length=self.max_length)
            decoded = tokenizer.batch_decode(outputs, skip_special_tokens=True)
            english = dict(zip(todo, (tidy(d.lower()) for d in decoded), strict=True))
        out = []
        for i, (body, lang) in enumerate(zip(bodies, languages, strict=True)):
            runs = tuple(WORD_RUN.findall(body))
            if lang in {"en", self.source_language}:
                out.append(Translation(english.get(i, body), lang, (), len(runs), len(runs)))
            else:  # another language: returned as it is, every word untranslated
                out.append(Translation(body, lang, runs, len(runs), 0))
        return out

    def translate(self, report: str) -> Translation:
        """Translate one report (loads the model; prefer :meth:`translate_many`)."""
        return self.translate_many([report])[0]
