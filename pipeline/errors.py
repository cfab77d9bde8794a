"""Errors from bad inputs: one record (a rejection with a reason) or the inputs as a whole."""

from __future__ import annotations


class RecordRejected(Exception):
    """A record cannot go into the corpus; ``reason`` is a stable slug, ``detail`` is for people."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class InputError(ValueError):
    """The inputs contradict themselves as a whole (not one bad record): the build stops."""
