"""One MONAI ``ImageReader`` for a datalist's entries: NIfTI files and DICOM series, chosen per entry.

A datalist entry names a sequence by a NIfTI file (``<sid>_DCE.nii.gz``), a DICOM series folder
(``<sid>/dicom/DCE``) or a list of DICOM files (a series that shares its folder with others, as
:func:`monai_seq2seq.data.dicom_study.scan_dicom_study` writes it). :class:`Seq2SeqReader` reads each with the
project's reader for it -- :class:`~.nifti.Seq2SeqNiftiReader` or :class:`~.dicom_series.DicomSeriesReader` --
so one ``LoadImaged`` (the bundles' ``load``) reads a subject whose T1 is NIfTI and whose DWI is DICOM::

    LoadImaged(keys, reader=Seq2SeqReader(protocol="breast"), ensure_channel_first=True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.data import ImageReader
from monai.utils import ensure_tuple

from monai_seq2seq.core.errors import UnreadableFileError
from monai_seq2seq.core.protocols import BREAST, Protocol

from .dicom_series import DicomSeriesReader, _is_candidate
from .nifti import Seq2SeqNiftiReader

__all__ = ["Seq2SeqReader", "is_dicom_source"]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_dicom_source(data: str | os.PathLike | Sequence[str | os.PathLike]) -> bool:
    """True for a folder, a DICOM file or a list of DICOM files (``.dcm``/``.ima``/no suffix with the DICOM
    preamble); False for NIfTI files and paths that do not exist."""
    names = [Path(n) for n in ensure_tuple(data)]
    if not names:
        return False
    if len(names) == 1 and names[0].is_dir():
        return True
    return all(n.is_file() and not n.name.lower().endswith(_NIFTI_SUFFIXES) and _is_candidate(n) for n in names)


class _Read:
    """What :meth:`Seq2SeqReader.read` returns: the chosen reader and what it read (or the error to raise)."""

    def __init__(self, reader: ImageReader | None, img=None, error: Exception | None = None):
        self.reader, self.img, self.error = reader, img, error


class Seq2SeqReader(ImageReader):
    """Read a NIfTI file with :class:`~.nifti.Seq2SeqNiftiReader`, a DICOM folder or files with
    :class:`~.dicom_series.DicomSeriesReader`.

    Args:
        protocol: names the sequence of DICOM series (``meta["sequence"]``).
        bvalues: b-values of DWI DICOM series whose files carry none (see
            :func:`~.dicom_series.read_dicom_series`); without it such a series is refused.
        frame_axis, require_frame_values: passed to :class:`~.nifti.Seq2SeqNiftiReader`.
        nifti_kwargs: more :class:`~.nifti.Seq2SeqNiftiReader` arguments.

    Raises (at ``get_data``; ``read`` never raises, so that ``LoadImage`` does not swallow the cause):
        UnreadableFileError: a path that does not exist, or is neither NIfTI nor DICOM (named), and the errors
            of the chosen reader.
    """

    def __init__(
        self,
        protocol: str | Protocol = BREAST,
        bvalues: Sequence[float] | None = None,
        frame_axis: str | None = None,
        require_frame_values: bool = False,
        **nifti_kwargs,
    ):
        super().__init__()
        self.nifti = Seq2SeqNiftiReader(
            frame_axis=frame_axis, require_frame_values=require_frame_values, **nifti_kwargs
        )
        self.dicom = DicomSeriesReader(protocol=protocol, bvalues=None if bvalues is None else list(bvalues))

    def verify_suffix(self, filename) -> bool:
        """True for NIfTI files, folders and DICOM files."""
        names = [str(n) for n in ensure_tuple(filename)]
        return bool(names) and (all(n.lower().endswith(_NIFTI_SUFFIXES) for n in names) or is_dicom_source(names))

    def choose(self, data) -> ImageReader:
        """The reader for ``data``.

        Raises:
            UnreadableFileError: ``data`` does not exist, or is neither NIfTI nor DICOM.
        """
        names = [str(n) for n in ensure_tuple(data)]
        if names and all(n.lower().endswith(_NIFTI_SUFFIXES) for n in names):
            return self.nifti
        if is_dicom_source(names):
            return self.dicom
        missing = [n for n in names if not os.path.exists(n)]
        if missing:
            raise UnreadableFileError(
                f"image path {missing[0]!r} does not exist (expected a NIfTI file or a DICOM folder)."
            )
        raise UnreadableFileError(
            f"{names[0]!r} is neither a NIfTI file (.nii, .nii.gz) nor a DICOM series (a folder, or DICOM files); "
            "convert it to NIfTI or point the datalist at its DICOM folder."
        )

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs) -> _Read:
        """Choose the reader and read; an error is kept for :meth:`get_data` to raise."""
        try:
            reader = self.choose(data)
        except UnreadableFileError as err:
            return _Read(None, error=err)
        try:
            return _Read(reader, reader.read(data, **kwargs))
        except Exception as err:
            return _Read(reader, error=err)

    def get_data(self, img: _Read) -> tuple[np.ndarray, dict]:
        """The chosen reader's ``get_data``: ``(X, Y, Z[, T])`` and its meta (frame meta for 4D)."""
        if img.error is not None:
            raise img.error
        return img.reader.get_data(img.img)
