"""Register this package's readers with MONAI's ``LoadImage`` so that ``reader="Seq2SeqNiftiReader"`` works."""

from __future__ import annotations

__all__ = ["register_readers", "READER_NAMES"]

READER_NAMES = {
    "seq2seqniftireader": "Seq2SeqNiftiReader",
    "dicomseriesreader": "DicomSeriesReader",
    "seq2seqreader": "Seq2SeqReader",
}


def register_readers() -> list[str]:
    """Add ``Seq2SeqNiftiReader``, ``DicomSeriesReader`` and ``Seq2SeqReader`` (either of the two, chosen per file)
    to ``monai.transforms.io.array.SUPPORTED_READERS``.

    After this, ``LoadImage(reader="Seq2SeqNiftiReader")`` (names are case-insensitive) selects our reader, and
    ``LoadImage()`` without a reader tries ours first for ``.nii``/``.nii.gz`` files and DICOM folders (MONAI tries
    registered readers from last to first). Idempotent. Not done on import: call it explicitly.

    Returns:
        The registered keys.
    """
    from monai.transforms.io import array as io_array

    from .dicom_series import DicomSeriesReader
    from .nifti import Seq2SeqNiftiReader
    from .reader import Seq2SeqReader

    classes = {
        "seq2seqniftireader": Seq2SeqNiftiReader,
        "dicomseriesreader": DicomSeriesReader,
        "seq2seqreader": Seq2SeqReader,
    }
    for key, cls in classes.items():
        io_array.SUPPORTED_READERS[key] = cls
    return list(classes)
