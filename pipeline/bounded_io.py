"""Bounded, checked file access for WFDB records: paths stay inside the dataset root, only regular
files are read (a FIFO, device or folder is ``unreadable``; nothing is opened that could block), and
never more bytes than the caller's limit. Local paths and fsspec URLs alike.
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePosixPath

from pipeline.errors import RecordRejected
from pipeline.storage import Location, is_url, join, name, parent


def resolve_record(root: Location, relpath: str) -> Location:
    """Record path (no extension) of ``relpath`` under ``root`` (a folder or URL); never outside it.

    The check is lexical (no absolute paths, no ``..``), so it costs no system call per record;
    symbolic links inside the dataset (a common way to lay out a download) are followed as given.
    """
    rel = PurePosixPath(relpath)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or "://" in relpath:
        raise RecordRejected("path_outside_root", f"path {relpath!r} leaves the dataset root")
    return join(root, relpath)


def named_file(record: Location, file_name: str, what: str) -> Location:
    """``file_name`` (as a header names it) beside ``record``, under the root check."""
    if "/" not in file_name and file_name not in (".", ".."):  # a plain name: the common case
        return join(parent(record), file_name)
    try:
        return resolve_record(parent(record), file_name)
    except RecordRejected:
        raise RecordRejected(
            "path_outside_root",
            f"{name(record)}.hea names {what} {file_name!r}, which leaves the dataset root",
        ) from None


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _not_regular(location: Location, kind: str) -> RecordRejected:
    return RecordRejected("unreadable", f"{name(location)} is {kind}, not a regular file")


def file_size(location: Location) -> int:
    """Size of the regular file at ``location``; never opens it (a FIFO cannot block).

    ``missing_file`` when it does not exist; ``unreadable`` for a FIFO, device, folder or an
    error, with the reason.
    """
    if is_url(location):
        import fsspec

        try:
            fs, path = fsspec.core.url_to_fs(str(location))
            info = fs.info(path)
        except FileNotFoundError:
            raise RecordRejected("missing_file", f"{name(location)} not found") from None
        except OSError as exc:
            raise RecordRejected("unreadable", f"{name(location)}: {exc}") from None
        if info.get("type", "file") != "file":
            raise _not_regular(location, f"a {info.get('type')}")
        size = info.get("size")
        return int(size) if size is not None else -1  # -1: unknown until read
    try:
        st = os.stat(location)
    except FileNotFoundError:
        raise RecordRejected("missing_file", f"{name(location)} not found") from None
    except OSError as exc:
        raise RecordRejected("unreadable", f"{name(location)}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(location, _kind(st.st_mode))
    return st.st_size


def read_regular(location: Location, limit: int) -> bytes:
    """At most ``limit`` bytes of the regular file at ``location`` (never blocks, never more).

    Local files are opened non-blocking and checked once open (``fstat``): a FIFO, device or
    folder is refused rather than read, even one swapped in after :func:`file_size`.
    """
    if is_url(location):
        import fsspec

        try:
            with fsspec.open(str(location), "rb") as f:
                return f.read(limit)
        except FileNotFoundError:
            raise RecordRejected("missing_file", f"{name(location)} not found") from None
        except OSError as exc:
            raise RecordRejected("unreadable", f"{name(location)}: {exc}") from None
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(location, flags)
    except FileNotFoundError:
        raise RecordRejected("missing_file", f"{name(location)} not found") from None
    except OSError as exc:
        raise RecordRejected("unreadable", f"{name(location)}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(location, _kind(st.st_mode))
        with open(fd, "rb", closefd=False) as f:
            return f.read(min(limit, st.st_size + 1))  # no buffer of ``limit`` for a small file
    except OSError as exc:
        raise RecordRejected("unreadable", f"{name(location)}: {exc.strerror}") from None
    finally:
        os.close(fd)
