"""The one exception that turns a bad input record into a rejection with a reason."""

from __future__ import annotations


class RecordRejected(Exception):
    """A record cannot go into the corpus; ``reason`` is a stable slug, ``detail`` is for people."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
