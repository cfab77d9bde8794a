"""Config files: strict YAML (a key given twice is an error) into :class:`BuildConfig`, and one
readable line for any config mistake (pydantic errors joined; YAML errors with file:line:col)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.config import BuildConfig


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last
    one silently, so ``fs: 500`` ... ``fs: 250`` would build at 250 Hz without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                line = first.setdefault(key, key_node.start_mark.line)
            except TypeError:  # an unhashable key: SafeLoader says so itself
                continue
            if line != key_node.start_mark.line:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {line + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> object:
    """A YAML file's content; ``ValueError`` with one line (file, line and column) when it cannot
    be read, is not UTF-8 or is not valid YAML."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        context = ""
        if exc.context and exc.context_mark:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise ValueError(f"{where}: YAML syntax error: {exc.problem}{context}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: YAML error: {exc}") from None


PATH_SETTINGS: tuple[tuple[str, str | None], ...] = (
    ("ptbxl", None),
    ("mimic", None),
    ("out", None),
    ("text", "translation_csv"),
    ("text", "marian_model"),
)
"""Settings that name a local file or folder (plus every folder under ``sources``): in a config
file, a relative one is relative to the file, not to the folder the command runs in."""


def _joined(base: Path, value: object) -> object:
    """``value`` joined to ``base`` when it is a relative local path (``~`` expanded); URLs,
    absolute paths and non-strings as they are."""
    if not isinstance(value, str) or "://" in value or not value:
        return value
    path = Path(value).expanduser()
    return value if path.is_absolute() else str(base / path)


def relative_to_file(data: dict, base: Path) -> dict:
    """A config file's settings with its relative paths (:data:`PATH_SETTINGS`, ``sources``)
    joined to ``base``, the file's folder. Returns a new dict; wrong shapes are left for the
    model's validation to name."""
    out = dict(data)
    for key, sub in PATH_SETTINGS:
        if sub is None and key in out:
            out[key] = _joined(base, out[key])
        elif sub is not None and isinstance(out.get(key), dict) and sub in out[key]:
            out[key] = {**out[key], sub: _joined(base, out[key][sub])}
    if isinstance(out.get("sources"), dict):
        out["sources"] = {k: _joined(base, v) for k, v in out["sources"].items()}
    return out


def load_config(path: Path | None, **overrides: object) -> BuildConfig:
    """Read a YAML config (or none) and apply non-None command-line overrides on top. Relative
    paths in the file are relative to its folder; those of the overrides to the working folder."""
    data: dict = {}
    if path is not None:
        loaded = read_yaml(path)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(
                f"{path}: the config must be a mapping of settings, not a {type(loaded).__name__}"
            )
        data.update(relative_to_file(loaded, Path(path).parent))
    data.update({k: v for k, v in overrides.items() if v is not None})
    return BuildConfig.model_validate(data)


def config_error_line(exc: Exception) -> str:
    """One readable line for a config problem (pydantic errors joined, others as they are)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"])
            msg = (
                "unknown key"
                if err["type"] == "extra_forbidden"
                else err["msg"].removeprefix("Value error, ")
            )
            # Whole-config checks (no location) name their settings themselves.
            parts.append(f"{where}: {msg}" if where else msg)
        return "; ".join(parts)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return " ".join(str(exc).split())
