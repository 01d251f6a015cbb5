"""Exceptions raised by :mod:`stc_ext.data`.

Every message names the offending path (or file and line) so that a user can fix the data
without reading this package's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["AnnotationError", "DataError", "MissingFilesError", "VideoDecodeError"]


class DataError(ValueError):
    """Base class of the data errors (a ``ValueError``: the data, not the code, is wrong)."""


class AnnotationError(DataError):
    """A split file, class list or annotation CSV is missing, malformed or inconsistent."""


class VideoDecodeError(DataError):
    """A video (file or frame folder) cannot be decoded: corrupt, truncated, empty or unreadable.

    Attributes:
        path: the video that failed.
        reason: a short human-readable cause (the decoder's message where there is one).
    """

    def __init__(self, path: str | Path, reason: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason if reason is not None else ""
        # One-argument form: a DataLoader worker re-raises exceptions as ``type(msg)``.
        super().__init__(f"{self.path}: {reason}" if reason is not None else self.path)

    def __reduce__(self):
        return (type(self), (self.path, self.reason or None))


class MissingFilesError(DataError):
    """Files listed in an annotation are absent; all of them are listed at once.

    Attributes:
        missing: the absent paths, in annotation order.
    """

    def __init__(self, missing: Sequence[str | Path], what: str, shown: int = 20) -> None:
        self.missing = [str(p) for p in missing]
        listing = "\n  ".join(self.missing[:shown])
        more = f"\n  ... and {len(self.missing) - shown} more" if len(self.missing) > shown else ""
        super().__init__(
            f"{what}: {len(self.missing)} listed video(s) not found:\n  {listing}{more}"
        )
