"""Write a 3D or 4D volume as a DICOM MR series (one file per slice and frame) with correct geometry tags.

The volume follows the in-memory contract: 3D ``(X, Y, Z)`` or ``(1, X, Y, Z)``; 4D channel-first
``(T, X, Y, Z)`` with ``frame_axis``/``frame_values``. ``affine`` maps ``(i, j, k, 1)`` to RAS mm (MONAI).
Index ``i`` runs along the DICOM columns and ``j`` along the rows, so each slice is stored transposed
(``Rows = Y``, ``Columns = X``); :func:`~monai_seq2seq.io.dicom_series.read_dicom_series` reads it back
to the same array and affine when the slice axis points along ``row x column`` (a right-handed LPS frame,
as most scanners write); otherwise it reads back the same image with the slice axis reversed.

Tags written: the MR Image IOD basics (SOP/Study/Series/Frame of Reference UIDs, patient/study ids),
ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness, SpacingBetweenSlices,
SliceLocation, RescaleSlope/Intercept (values are stored as uint16, exact for integer volumes in range),
for DCE TemporalPositionIdentifier (1-based), NumberOfTemporalPositions, TriggerTime (ms),
AcquisitionTime/ContentTime (series time + frame time), TemporalResolution, and for DWI DiffusionBValue
(0018,9087) with ImageType ``DIFFUSION``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from monai_seq2seq.core.protocols import BREAST, FrameAxis, Protocol, get_protocol

from .sidecar import validate_frame_values

__all__ = ["write_dicom_series", "write_dicom_study", "affine_to_dicom_geometry"]

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_to_dicom_geometry(affine: np.ndarray) -> dict:
    """DICOM geometry of a RAS affine: orientation, spacings, origin (LPS) and slice step.

    Returns:
        dict with ``orientation`` (6 floats), ``pixel_spacing`` ``[row spacing, column spacing]``,
        ``slice_step`` (LPS vector between consecutive slices), ``slice_spacing`` (mm), ``origin`` (LPS),
        ``normal`` (row x column).

    Raises:
        ValueError: the affine is not 4x4, singular, or has non-orthogonal in-plane axes or a slice axis that
            is not perpendicular to the slice plane (DICOM MR images cannot store shear).
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {a.shape}.")
    lps = _RAS_TO_LPS @ a
    vi, vj, vk = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    si, sj, sk = (float(np.linalg.norm(v)) for v in (vi, vj, vk))
    if min(si, sj, sk) <= 1e-9:
        raise ValueError(f"affine has a zero-length axis: {a.tolist()}.")
    row_cos, col_cos = vi / si, vj / sj
    if abs(row_cos @ col_cos) > 1e-4:
        raise ValueError(f"affine in-plane axes are not orthogonal (cos = {row_cos @ col_cos:.6f}).")
    normal = np.cross(row_cos, col_cos)
    if np.linalg.norm(np.cross(vk / sk, normal)) > 1e-4:
        raise ValueError("affine slice axis is not perpendicular to the slice plane (sheared); cannot write DICOM.")
    return {
        "orientation": [*row_cos.tolist(), *col_cos.tolist()],
        "pixel_spacing": [sj, si],
        "slice_step": vk,
        "slice_spacing": sk,
        "origin": lps[:3, 3],
        "normal": normal,
    }


def _ds(value: float) -> str:
    """Format a float for a DS element (at most 16 characters, as many significant digits as fit)."""
    value = float(value)
    if value == 0:
        return "0"
    for digits in range(12, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"cannot format {value!r} as DICOM DS.")


def _tm(seconds: float) -> str:
    seconds = seconds % 86400.0
    hh, rem = divmod(seconds, 3600.0)
    mm, ss = divmod(rem, 60.0)
    return f"{int(hh):02d}{int(mm):02d}{ss:09.6f}"


def _to_uint16(volume: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Store values as uint16 with slope/intercept; integer volumes within 0..65535 (after offset) are exact."""
    vmin, vmax = float(volume.min()), float(volume.max())
    integer = np.all(np.isfinite(volume)) and np.array_equal(volume, np.round(volume))
    if integer and vmax - vmin <= 65535:
        intercept = vmin if vmin < 0 or vmax > 65535 else 0.0
        return np.round(volume - intercept).astype(np.uint16), 1.0, intercept
    if not np.all(np.isfinite(volume)):
        raise ValueError("volume has non-finite values; cannot write DICOM.")
    slope = (vmax - vmin) / 65535.0 if vmax > vmin else 1.0
    stored = np.round((volume - vmin) / slope).clip(0, 65535).astype(np.uint16)
    return stored, slope, vmin


def write_dicom_series(
    volume,
    affine=None,
    out_dir: str | os.PathLike = ".",
    *,
    frame_axis: str | None = None,
    frame_values: Sequence[float] | None = None,
    series_description: str = "monai-seq2seq",
    protocol_name: str | None = None,
    patient_id: str = "ANON",
    patient_name: str = "Anonymous",
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    study_id: str = "1",
    series_number: int = 1,
    series_time_s: float = 8 * 3600.0,
    study_date: str = "20240101",
    scan_options: str | Sequence[str] | None = None,
    contrast_agent: str | None = None,
    repetition_time_ms: float | None = None,
    echo_time_ms: float | None = None,
    manufacturer: str = "monai-seq2seq",
    extra_tags: dict | None = None,
    uid_seed: str | None = None,
    file_prefix: str = "IM",
) -> list[Path]:
    """Write ``volume`` as a DICOM MR series, one file per slice (and frame), into ``out_dir``.

    Args:
        volume: ``(X, Y, Z)``, ``(1, X, Y, Z)`` or channel-first 4D ``(T, X, Y, Z)`` array/tensor/MetaTensor.
        affine: 4x4 RAS affine of the spatial axes; taken from ``volume.affine`` (MetaTensor) when ``None``.
        out_dir: output folder (created).
        frame_axis: ``"time"`` (DCE) or ``"bvalue"`` (DWI) for 4D; from ``volume.meta`` when ``None``.
        frame_values: seconds after the first frame (time) or b-values (s/mm^2), one per frame.
        series_description: SeriesDescription (0008,103E); also ProtocolName unless ``protocol_name`` is given.
        patient_id, patient_name, study_id, study_date: patient/study identification.
        study_instance_uid, series_instance_uid, frame_of_reference_uid: UIDs (generated when ``None``).
        series_number: SeriesNumber.
        series_time_s: AcquisitionTime of the first frame, seconds after midnight.
        scan_options: ScanOptions (0018,0022), e.g. ``"FS"`` for fat saturation.
        contrast_agent: ContrastBolusAgent (0018,0010), e.g. ``"Gadobutrol"``.
        repetition_time_ms, echo_time_ms: RepetitionTime / EchoTime.
        manufacturer: Manufacturer (0008,0070).
        extra_tags: more elements by keyword, set on every file (e.g. ``{"InstitutionName": "X"}``).
        uid_seed: makes generated UIDs deterministic: same inputs and seed give byte-identical files.
        file_prefix: file names are ``<prefix>_<frame:03d>_<slice:04d>.dcm``.

    Returns:
        The written file paths, frame-major then slice order.

    Raises:
        ValueError: bad shape, missing/mismatched frame values, or an affine DICOM cannot represent.
    """
    meta = getattr(volume, "meta", {}) or {}
    if affine is None:
        affine = getattr(volume, "affine", None)
        if affine is None:
            raise ValueError("write_dicom_series needs an affine (or a MetaTensor volume).")
    affine = np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, dtype=np.float64)
    arr = np.asarray(volume.detach().cpu() if hasattr(volume, "detach") else volume, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"volume must be (X, Y, Z) or (T, X, Y, Z), got shape {arr.shape}.")
    n_t = arr.shape[0]
    frame_axis = frame_axis if frame_axis is not None else meta.get("frame_axis")
    if frame_values is None and "frame_values" in meta:
        frame_values = [float(v) for v in meta["frame_values"]]
    if n_t > 1 and frame_axis is None:
        raise ValueError(f"volume has {n_t} frames; pass frame_axis ('time' or 'bvalue') and frame_values.")
    if frame_axis is not None:
        if frame_values is None:
            raise ValueError(f"frame_axis {frame_axis!r} needs frame_values (one per frame).")
        frame_values = validate_frame_values(frame_axis, frame_values, n_t, source="write_dicom_series")
    geo = affine_to_dicom_geometry(affine)
    stored, slope, intercept = _to_uint16(arr)
    n_x, n_y, n_z = arr.shape[1:]

    def uid(tag: str) -> str:
        return generate_uid(entropy_srcs=[uid_seed, tag]) if uid_seed is not None else generate_uid()

    study_uid = study_instance_uid or uid("study")
    series_uid = series_instance_uid or uid(f"series-{series_number}-{series_description}")
    for_uid = frame_of_reference_uid or uid("frame-of-reference")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = [scan_options] if isinstance(scan_options, str) else list(scan_options or [])
    paths: list[Path] = []
    times = [0.0] * n_t
    if frame_axis == FrameAxis.TIME:
        times = [float(v) - frame_values[0] for v in frame_values]
    resolution_ms = (times[1] - times[0]) * 1000.0 if n_t > 1 and frame_axis == FrameAxis.TIME else None

    for t in range(n_t):
        for k in range(n_z):
            instance = t * n_z + k + 1
            sop_uid = uid(f"{series_uid}-{instance}")
            fm = FileMetaDataset()
            fm.MediaStorageSOPClassUID = MRImageStorage
            fm.MediaStorageSOPInstanceUID = sop_uid
            fm.TransferSyntaxUID = ExplicitVRLittleEndian
            fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            ds = Dataset()
            ds.file_meta = fm
            ds.SpecificCharacterSet = "ISO_IR 100"
            image_type = ["ORIGINAL", "PRIMARY", "OTHER"]
            if frame_axis == FrameAxis.BVALUE:
                image_type = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
            ds.ImageType = image_type
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = sop_uid
            ds.StudyDate = study_date
            ds.SeriesDate = study_date
            ds.ContentDate = study_date
            ds.StudyTime = _tm(series_time_s)
            ds.SeriesTime = _tm(series_time_s)
            ds.AcquisitionTime = _tm(series_time_s + times[t])
            ds.ContentTime = _tm(series_time_s + times[t])
            ds.AccessionNumber = ""
            ds.Modality = "MR"
            ds.Manufacturer = manufacturer
            ds.ReferringPhysicianName = ""
            ds.SeriesDescription = series_description
            ds.PatientName = patient_name
            ds.PatientID = patient_id
            ds.PatientBirthDate = ""
            ds.PatientSex = ""
            ds.ScanningSequence = "GR"
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = options if options else ""
            ds.MRAcquisitionType = "3D"
            ds.ProtocolName = protocol_name if protocol_name is not None else series_description
            ds.SliceThickness = _ds(geo["slice_spacing"])
            ds.SpacingBetweenSlices = _ds(geo["slice_spacing"])
            ds.RepetitionTime = _ds(repetition_time_ms) if repetition_time_ms is not None else ""
            ds.EchoTime = _ds(echo_time_ms) if echo_time_ms is not None else ""
            ds.EchoTrainLength = ""
            ds.MagneticFieldStrength = "1.5"
            if contrast_agent:
                ds.ContrastBolusAgent = contrast_agent
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.StudyID = study_id
            ds.SeriesNumber = int(series_number)
            ds.AcquisitionNumber = t + 1
            ds.InstanceNumber = instance
            pos = geo["origin"] + k * geo["slice_step"]
            ds.ImagePositionPatient = [_ds(v) for v in pos]
            ds.ImageOrientationPatient = [_ds(v) for v in geo["orientation"]]
            ds.FrameOfReferenceUID = for_uid
            ds.PositionReferenceIndicator = ""
            ds.SliceLocation = _ds(float(pos @ geo["normal"]))
            if frame_axis == FrameAxis.TIME:
                ds.TemporalPositionIdentifier = t + 1
                ds.NumberOfTemporalPositions = n_t
                ds.TriggerTime = _ds(times[t] * 1000.0)
                if resolution_ms is not None:
                    ds.TemporalResolution = _ds(resolution_ms)
            if frame_axis == FrameAxis.BVALUE:
                ds.add_new(0x00189087, "FD", float(frame_values[t]))
                ds.DiffusionDirectionality = "ISOTROPIC"
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = n_y
            ds.Columns = n_x
            ds.PixelSpacing = [_ds(v) for v in geo["pixel_spacing"]]
            ds.BitsAllocated = 16
            ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 0
            ds.RescaleIntercept = _ds(intercept)
            ds.RescaleSlope = _ds(slope) if slope != 1.0 else "1"
            ds.RescaleType = "US"
            pixels = np.ascontiguousarray(stored[t, :, :, k].T)  # (Rows, Columns) = (Y, X)
            ds.PixelData = pixels.astype("<u2").tobytes()
            for key, value in (extra_tags or {}).items():
                setattr(ds, key, value)
            path = out / f"{file_prefix}_{t:03d}_{k:04d}.dcm"
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
            paths.append(path)
    return paths


CONTRAST_SEQUENCES = ("T1Gd", "DCE", "FatSatDCE")
"""Sequences written with ContrastBolusAgent by :func:`write_dicom_study` (DCE: the series as a whole)."""


def write_dicom_study(
    sequences: dict,
    out_dir: str | os.PathLike,
    *,
    protocol: str | Protocol = BREAST,
    patient_id: str = "ANON",
    uid_seed: str | None = None,
    contrast_agent: str = "GADOLINIUM",
    **series_kwargs,
) -> dict[str, list[Path]]:
    """Write several sequences of one subject as one DICOM study: ``<out_dir>/<Sequence>/*.dcm``.

    All series share StudyInstanceUID and FrameOfReferenceUID; each gets its canonical name as
    SeriesDescription/ProtocolName (which :func:`~monai_seq2seq.io.dicom_identify.identify_sequence` maps back),
    SeriesNumber = code index + 1, ScanOptions ``FS`` for ``FatSat*`` sequences and ContrastBolusAgent for
    :data:`CONTRAST_SEQUENCES`. With ``out_dir = <root>/<sid>/dicom`` this is the breast layout's optional DICOM.

    Args:
        sequences: canonical name (or alias) -> ``MetaTensor`` channel-first ``(1, X, Y, Z)`` / ``(T, X, Y, Z)``
            with its affine and, for 4D, ``frame_axis``/``frame_values`` in its meta. Other keys of a sample dict
            (``"available"``, ``"subject"``, ``"label"``...) are ignored.
        out_dir: the study folder.
        protocol: names the sequences.
        patient_id: PatientID of every series.
        uid_seed: deterministic UIDs.
        contrast_agent: ContrastBolusAgent of contrast-enhanced sequences.
        series_kwargs: more :func:`write_dicom_series` arguments for every series (``affine=`` for plain arrays).

    Returns:
        canonical name -> written files.
    """
    proto = get_protocol(protocol)
    seed = uid_seed if uid_seed is not None else generate_uid()
    study_uid = generate_uid(entropy_srcs=[seed, "study"])
    for_uid = generate_uid(entropy_srcs=[seed, "frame-of-reference"])
    written: dict[str, list[Path]] = {}
    for key, volume in sequences.items():
        if not isinstance(key, str) or key not in proto or not hasattr(volume, "shape"):
            continue
        name = proto.canonical(key)
        kwargs = dict(series_kwargs)
        kwargs.setdefault("series_description", name)
        if name.lower().startswith("fatsat"):
            kwargs.setdefault("scan_options", "FS")
        if name in CONTRAST_SEQUENCES:
            kwargs.setdefault("contrast_agent", contrast_agent)
        written[name] = write_dicom_series(
            volume,
            kwargs.pop("affine", None),  # None: the MetaTensor's own affine
            Path(out_dir) / name,
            patient_id=patient_id,
            study_instance_uid=study_uid,
            frame_of_reference_uid=for_uid,
            series_number=proto.index(name) + 1,
            uid_seed=f"{seed}-{name}",
            **kwargs,
        )
    return written
