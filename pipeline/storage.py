"""Where inputs live: a local folder (a ``Path``) or an fsspec URL (``s3://``, ``gs://``, ``http://``).

Local inputs keep the fast local calls (``np.fromfile``, memory-mapped CSV reads); URL inputs go
through fsspec, so workers on several machines can read one shared copy of the dataset (for example
PhysioNet's open-data buckets). ``file://`` URLs are turned into local paths by the config.
"""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

Location = str | Path
"""A local path, or an fsspec URL string."""


def is_url(location: Location) -> bool:
    """True for an fsspec URL (``scheme://...``), False for a local path."""
    return isinstance(location, str) and "://" in location


def as_location(location: Location) -> Location:
    """A URL stays a string; anything else becomes a ``Path``."""
    return location if is_url(location) else Path(location)


def join(root: Location, relative: str) -> Location:
    """``relative`` (POSIX separators) under ``root``."""
    if is_url(root):
        return f"{str(root).rstrip('/')}/{PurePosixPath(relative).as_posix()}"
    return Path(root) / relative


def parent(location: Location) -> Location:
    """The folder holding ``location``."""
    if is_url(location):
        return str(location).rsplit("/", 1)[0]
    return Path(location).parent


def name(location: Location) -> str:
    """The last component of ``location``."""
    return str(location).rstrip("/").rsplit("/", 1)[-1] if is_url(location) else Path(location).name


def read_bytes(location: Location) -> bytes:
    """The whole file; ``FileNotFoundError`` when it does not exist."""
    if not is_url(location):
        return Path(location).read_bytes()
    import fsspec

    with fsspec.open(str(location), "rb") as f:
        return f.read()


def exists(location: Location) -> bool:
    """True when the file exists."""
    if not is_url(location):
        return Path(location).is_file()
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(location))
    return fs.exists(path)


def csv_source(location: Location) -> Path | io.BytesIO:
    """Something ``polars.read_csv`` reads: the local path, or the URL's bytes."""
    return Path(location) if not is_url(location) else io.BytesIO(read_bytes(location))
