"""Write a synthetic volume as a derived DICOM MR series in the study of its source series.

One file per slice (and frame) of the MR Image IOD, as :func:`~monai_seq2seq.io.write_dicom_series` writes
acquired ones and :func:`~monai_seq2seq.io.read_dicom_series` reads them, with what makes it a derived series:

- the patient, study and frame of reference of the source series (:mod:`.dicom_derived`), or a new study for a
  subject without one;
- new Series and SOP Instance UIDs; ImageType ``DERIVED\\SECONDARY\\OTHER``; ScanningSequence ``RM`` (research
  mode: nothing was acquired), acquisition attributes (TR, TE) empty;
- SeriesDescription ``SYNTHETIC <Sequence> (monai-seq2seq)``, ProtocolName ``<Sequence>`` (so the reader names
  the sequence), DerivationDescription (given by the caller: network, bundle version, weights hash, sources),
  ImageComments ``SYNTHETIC IMAGE - not acquired``;
- per slice a Source Image Sequence of the source images at that position and the Referenced Series Sequence
  (Common Instance Reference) of the series they belong to;
- the geometry of the synthetic grid (Image Position/Orientation, Pixel Spacing, Slice Thickness) and the
  intensities as uint16 with one Rescale Slope/Intercept for the whole series (within half a step of the float
  values);
- 4D: per DCE frame Temporal Position Identifier, Number of Temporal Positions, Temporal Resolution and the frame
  time as Acquisition Time (creation time + seconds after the first frame; Trigger Time is for cardiac-gated
  images only), per DWI frame Diffusion B-Value.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage

from monai_seq2seq.core.protocols import FrameAxis

from .dicom_derived import (
    TOOL,
    SourceSeries,
    copy_patient_study,
    derived_uid,
    new_study,
    referenced_series_items,
    source_image_items,
    write_series_folder,
)
from .dicom_writer import _ds, _frames_first, _tm, _to_uint16, affine_to_dicom_geometry
from .sidecar import validate_frame_values

__all__ = ["SYNTHETIC_SERIES_BASE", "synthetic_series_description", "write_synthetic_series"]

SYNTHETIC_SERIES_BASE = 1000
"""A synthetic series is numbered ``1000 + 1 + <its index in the protocol>`` (1003 for the brain's T2)."""


def synthetic_series_description(sequence: str) -> str:
    """``SYNTHETIC <sequence> (monai-seq2seq)``: what viewers list, and what recognises the series."""
    return f"SYNTHETIC {sequence} ({TOOL})"[:64]


def _frame_tags(frame_axis: str | None, frame_values: list[float] | None, n_t: int, t: int, base_s: float) -> dict:
    """Temporal position and time (DCE) or b-value (DWI) of frame ``t``.

    DCE frame times go into AcquisitionTime (``base_s`` + seconds after the first frame), not TriggerTime: the MR
    Image module permits Trigger Time only for cardiac-gated images (dciodvfy: "present when condition
    unsatisfied"); :func:`~monai_seq2seq.io.read_dicom_series` times frames by AcquisitionTime when TriggerTime is
    absent.
    """
    if frame_axis == FrameAxis.TIME:
        times = [float(v) - float(frame_values[0]) for v in frame_values]
        tags = {"TemporalPositionIdentifier": t + 1, "NumberOfTemporalPositions": n_t, "AcquisitionNumber": t + 1}
        tags["AcquisitionTime"] = _tm(base_s + times[t])
        if n_t > 1:
            tags["TemporalResolution"] = _ds((times[1] - times[0]) * 1000.0)
        return tags
    if frame_axis == FrameAxis.BVALUE:
        return {"DiffusionBValue": float(frame_values[t]), "AcquisitionNumber": t + 1}
    return {}


def _series_dataset(
    sequence: str,
    sources: Sequence[SourceSeries],
    subject_id: str | None,
    uid_seed: str | None,
    created: dt.datetime,
) -> Dataset:
    """Patient, study, frame of reference and series attributes every file shares (no geometry, no pixels)."""
    ds = Dataset()
    if sources:
        copy_patient_study(sources[0].headers[0], ds)
    else:
        if not subject_id:
            raise ValueError(f"synthetic {sequence} has no source DICOM series and no subject id to name a new study.")
        new_study(ds, subject_id, uid_seed, created)
    ds.Modality = "MR"
    ds.SeriesDescription = synthetic_series_description(sequence)
    ds.ProtocolName = sequence
    ds.SeriesDate = ds.ContentDate = ds.InstanceCreationDate = created.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = ds.InstanceCreationTime = created.strftime("%H%M%S")
    return ds


def _image_tags(ds: Dataset, geo: dict, shape: tuple[int, int], slope: float, intercept: float) -> None:
    """The MR image, image plane and pixel attributes shared by every file (all but position and pixels)."""
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    ds.SOPClassUID = MRImageStorage
    ds.ScanningSequence = "RM"
    ds.SequenceVariant = "NONE"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = ""
    ds.RepetitionTime = ""
    ds.EchoTime = ""
    ds.EchoTrainLength = ""
    ds.ImageComments = "SYNTHETIC IMAGE - not acquired"
    ds.BurnedInAnnotation = "NO"
    ds.ImageOrientationPatient = [_ds(v) for v in geo["orientation"]]
    ds.PixelSpacing = [_ds(v) for v in geo["pixel_spacing"]]
    ds.SliceThickness = _ds(geo["slice_spacing"])
    ds.SpacingBetweenSlices = _ds(geo["slice_spacing"])
    ds.Rows, ds.Columns = shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = _ds(intercept)
    ds.RescaleSlope = _ds(slope) if slope != 1.0 else "1"


def _file_dataset(shared: Dataset, sop_uid: str, instance: int, tags: dict, pixels: np.ndarray) -> Dataset:
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = MRImageStorage
    fm.MediaStorageSOPInstanceUID = sop_uid
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.update(shared)
    ds.file_meta = fm
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = instance
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels).astype("<u2").tobytes()
    return ds


def write_synthetic_series(
    volume,
    affine,
    out_dir: str | os.PathLike,
    *,
    sequence: str,
    sources: Sequence[SourceSeries] = (),
    derivation_description: str,
    frame_axis: str | None = None,
    frame_values: Sequence[float] | None = None,
    series_number: int = SYNTHETIC_SERIES_BASE + 1,
    subject_id: str | None = None,
    uid_seed: str | None = None,
    model_name: str = "Seq2Seq",
    software_version: str = "",
    created: dt.datetime | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a synthetic volume as a derived MR series into ``out_dir`` (one file per slice and frame, atomically).

    Args:
        volume: ``(X, Y, Z)`` or frames-first ``(T, X, Y, Z)`` array or tensor (the NIfTI output's values).
        affine: 4x4 RAS affine of the synthetic grid.
        out_dir: the series folder (replaced as a whole with ``overwrite``).
        sequence: the protocol name of the synthetic sequence.
        sources: the source series, all of one study: the first gives patient, study and frame of reference; each
            is referenced slice by slice. Empty: a new study (``subject_id`` needed).
        derivation_description: DerivationDescription (0008,2111): synthetic, by what, from what (1024 characters
            at most).
        frame_axis, frame_values: ``"time"`` (seconds) or ``"bvalue"`` (s/mm^2) for 4D volumes, one per frame.
        series_number: SeriesNumber.
        subject_id: PatientID of a new study (no ``sources``).
        uid_seed: deterministic UIDs (with the source series' UID).
        model_name: ManufacturerModelName (the network).
        software_version: SoftwareVersions (this toolkit's version).
        created: Series/Content/Instance Creation date and time (default: now).
        overwrite: replace an existing series folder.

    Returns:
        The written files, frame-major then slice order.

    Raises:
        ValueError: bad shape, frame values that do not fit, an affine DICOM cannot store, or no source and no
            subject id.
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is False.
    """
    arr, affine = _frames_first(volume, affine)
    n_t, n_x, n_y, n_z = arr.shape
    if n_t > 1 and frame_axis is None:
        raise ValueError(f"synthetic {sequence} has {n_t} frames; pass frame_axis and frame_values.")
    if frame_axis is not None:
        frame_values = validate_frame_values(
            frame_axis, frame_values, n_t, source=f"synthetic {sequence}", allow_duplicates=False
        )
    geo = affine_to_dicom_geometry(affine)
    stored, slope, intercept = _to_uint16(arr)
    created = created or dt.datetime.now()
    base_s = created.hour * 3600.0 + created.minute * 60.0 + created.second
    seed_root = sources[0].uid if sources else subject_id
    series_uid = derived_uid(uid_seed, seed_root, sequence, "series")
    shared = _series_dataset(sequence, sources, subject_id, uid_seed, created)
    shared.SeriesInstanceUID = series_uid
    shared.SeriesNumber = int(series_number)
    shared.DerivationDescription = derivation_description[:1024]
    shared.Manufacturer, shared.ManufacturerModelName = TOOL, model_name[:64]
    shared.SoftwareVersions = software_version[:64]
    _image_tags(shared, geo, (n_y, n_x), slope, intercept)
    references = [source_image_items(sources, geo, k, (n_y, n_x)) for k in range(n_z)]
    files = []
    for t in range(n_t):
        frame = _frame_tags(frame_axis, frame_values, n_t, t, base_s)
        for k in range(n_z):
            instance = t * n_z + k + 1
            pos = geo["origin"] + k * geo["slice_step"]
            tags = dict(frame, ImagePositionPatient=[_ds(v) for v in pos], SliceLocation=_ds(pos @ geo["normal"]))
            if references[k]:
                tags["SourceImageSequence"] = DicomSequence(references[k])
                tags["ReferencedSeriesSequence"] = DicomSequence(referenced_series_items(references[k], sources))
            sop_uid = derived_uid(uid_seed, series_uid, instance)
            pixels = stored[t, :, :, k].T  # (Rows, Columns) = (Y, X)
            files.append((f"IM_{t:03d}_{k:04d}.dcm", _file_dataset(shared, sop_uid, instance, tags, pixels)))
    return write_series_folder(out_dir, files, overwrite)
