"""Exceptions of the I/O package: every one is a ``ValueError`` that names the file, tag or series at fault."""

from __future__ import annotations

__all__ = ["UnreadableFileError", "DicomTagError", "SeriesConsistencyError", "FrameValuesError"]


class UnreadableFileError(ValueError):
    """A file is missing, truncated, corrupt or not in the expected format; the message names the file."""


class DicomTagError(ValueError):
    """A required DICOM tag is missing or unusable; the message names the tag and the file."""


class SeriesConsistencyError(ValueError):
    """The files of one series contradict each other (orientation, spacing, frame values, slice counts)."""


class FrameValuesError(ValueError):
    """Frame values (DCE times, DWI b-values) do not fit the frames: wrong count, duplicates, bad order."""
