"""Errors of the data room. Both carry the offending path or record so a skip can be logged."""
from __future__ import annotations


class VideoDecodeError(RuntimeError):
    """A video cannot be opened or decoded.

    kind: one of KINDS ("missing", "no_video" (e.g. audio-only), "no_frames", "truncated",
    "corrupt", "unsupported" (codec the backend lacks)), the key skipped samples are counted by.
    """

    KINDS = ("missing", "no_video", "no_frames", "truncated", "corrupt", "unsupported")

    def __init__(self, path: str, reason: str, kind: str = "corrupt"):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.kind = kind if kind in self.KINDS else "corrupt"


class RecordError(ValueError):
    """A dataset record (one json line or list item) fails schema validation.

    `where` names the file and line/item, `field` the bad key; the message says how to fix it.
    """

    def __init__(self, where: str, field: str, problem: str):
        super().__init__(f"{where}: field '{field}': {problem}")
        self.where = where
        self.field = field
        self.problem = problem
