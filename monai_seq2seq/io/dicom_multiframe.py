"""Enhanced (multi-frame) MR DICOM: one flat per-frame header for each frame of the file.

An enhanced MR file (``NumberOfFrames > 1`` with ``PerFrameFunctionalGroupsSequence``) keeps the geometry,
scaling, diffusion and timing of each frame in functional-group macros. :func:`enhanced_frame_headers` lifts
them to the top level of one small dataset per frame (shared groups first, then the frame's own groups), so
that the classic single-frame code reads them with the usual keywords: ImagePositionPatient,
ImageOrientationPatient, PixelSpacing, SliceThickness, RescaleSlope/Intercept, DiffusionBValue (0018,9087),
TemporalPositionIdentifier (from TemporalPositionIndex), AcquisitionTime (from FrameAcquisitionDateTime),
RepetitionTime and EchoTime (from EffectiveEchoTime).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from monai_seq2seq.core.errors import DicomTagError

from .dicom_vendor import file_label

__all__ = ["is_multiframe", "enhanced_frame_headers"]

_SKIP = {"PixelData", "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "NumberOfFrames"}


def is_multiframe(ds: Dataset) -> bool:
    """Whether ``ds`` holds several frames (enhanced MR or any multi-frame image)."""
    n = ds.get("NumberOfFrames", None)
    try:
        many = n not in (None, "") and int(n) > 1
    except (TypeError, ValueError):
        many = False
    return many or "PerFrameFunctionalGroupsSequence" in ds


def _lift(target: Dataset, group_item: Dataset) -> None:
    """Copy the non-sequence elements of every macro (one-item sequence) of a functional-group item."""
    for macro in group_item:
        if macro.VR != "SQ" or not macro.value or macro.tag.is_private:  # vendor macros may repeat IPP etc.
            continue
        for elem in macro.value[0]:
            if elem.VR != "SQ" and not elem.tag.is_private:
                target[elem.tag] = elem


def enhanced_frame_headers(ds: Dataset) -> list[Dataset]:
    """One flat header per frame of an enhanced/multi-frame MR dataset (``filename`` kept for messages).

    Raises:
        DicomTagError: ``NumberOfFrames`` and the per-frame functional groups disagree, or a frame lacks them.
    """
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", []) or [])
    n = int(ds.get("NumberOfFrames", len(per_frame)) or len(per_frame))
    if len(per_frame) != n:
        raise DicomTagError(
            f"DICOM file {file_label(ds)!r}: NumberOfFrames (0028,0008) is {n} but PerFrameFunctionalGroupsSequence "
            f"(5200,9230) has {len(per_frame)} items."
        )
    shared = (ds.get("SharedFunctionalGroupsSequence", []) or [None])[0]
    base = Dataset()
    for elem in ds:
        if elem.keyword not in _SKIP:
            base[elem.tag] = elem
    headers = []
    for item in per_frame:
        fh = Dataset()
        fh.update(base)
        if shared is not None:
            _lift(fh, shared)
        _lift(fh, item)
        if "TemporalPositionIdentifier" not in fh and "TemporalPositionIndex" in fh:
            fh.TemporalPositionIdentifier = fh.TemporalPositionIndex
        dt = str(fh.get("FrameAcquisitionDateTime", "") or "")
        if dt and len(dt) >= 14:
            fh.AcquisitionTime = dt[8:].split("+")[0].split("-")[0]
        if "EchoTime" not in fh and "EffectiveEchoTime" in fh:
            fh.EchoTime = fh.EffectiveEchoTime
        fh.filename = file_label(ds)
        headers.append(fh)
    return headers
