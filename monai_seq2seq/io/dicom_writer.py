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
from typing import Any

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


def _frames_first(volume, affine) -> tuple[np.ndarray, np.ndarray]:
    """``volume`` as a float64 ``(T, X, Y, Z)`` array and its float64 4x4 affine (``volume.affine`` if ``None``)."""
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
    return arr, affine


def _checked_frames(
    n_t: int, meta: dict, frame_axis: str | None, frame_values: Sequence[float] | None
) -> tuple[str | None, list[float] | None]:
    """Frame axis and values (from ``meta`` where not given), checked against the ``n_t`` frames."""
    frame_axis = frame_axis if frame_axis is not None else meta.get("frame_axis")
    if frame_values is None and "frame_values" in meta:
        frame_values = [float(v) for v in meta["frame_values"]]
    if n_t > 1 and frame_axis is None:
        raise ValueError(f"volume has {n_t} frames; pass frame_axis ('time' or 'bvalue') and frame_values.")
    if frame_axis is not None:
        if frame_values is None:
            raise ValueError(f"frame_axis {frame_axis!r} needs frame_values (one per frame).")
        # one frame per b-value: the reader splits a series by b-value
        frame_values = validate_frame_values(
            frame_axis, frame_values, n_t, source="write_dicom_series", allow_duplicates=False
        )
    return frame_axis, frame_values


def _series_tags(
    *,
    study_uid: str,
    series_uid: str,
    for_uid: str,
    frame_axis: str | None,
    geo: dict,
    shape: tuple[int, int],
    series_description: str,
    protocol_name: str | None,
    patient_id: str,
    patient_name: str,
    study_id: str,
    series_number: int,
    series_time_s: float,
    study_date: str,
    scan_options: str | Sequence[str] | None,
    contrast_agent: str | None,
    repetition_time_ms: float | None,
    echo_time_ms: float | None,
    manufacturer: str,
) -> dict[str, Any]:
    """Keyword -> value of the tags every file of the series shares (``shape``: ``(Rows, Columns)``)."""
    options = [scan_options] if isinstance(scan_options, str) else list(scan_options or [])
    image_type = ["ORIGINAL", "PRIMARY", "OTHER"]
    if frame_axis == FrameAxis.BVALUE:
        image_type = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
    tags = {
        "SpecificCharacterSet": "ISO_IR 100",
        "ImageType": image_type,
        "SOPClassUID": MRImageStorage,
        "StudyDate": study_date,
        "SeriesDate": study_date,
        "ContentDate": study_date,
        "StudyTime": _tm(series_time_s),
        "SeriesTime": _tm(series_time_s),
        "AccessionNumber": "",
        "Modality": "MR",
        "Manufacturer": manufacturer,
        "ReferringPhysicianName": "",
        "SeriesDescription": series_description,
        "PatientName": patient_name,
        "PatientID": patient_id,
        "PatientBirthDate": "",
        "PatientSex": "",
        "ScanningSequence": "GR",
        "SequenceVariant": "NONE",
        "ScanOptions": options if options else "",
        "MRAcquisitionType": "3D",
        "ProtocolName": protocol_name if protocol_name is not None else series_description,
        "SliceThickness": _ds(geo["slice_spacing"]),
        "SpacingBetweenSlices": _ds(geo["slice_spacing"]),
        "RepetitionTime": _ds(repetition_time_ms) if repetition_time_ms is not None else "",
        "EchoTime": _ds(echo_time_ms) if echo_time_ms is not None else "",
        "EchoTrainLength": "",
        "MagneticFieldStrength": "1.5",
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid,
        "StudyID": study_id,
        "SeriesNumber": int(series_number),
        "ImageOrientationPatient": [_ds(v) for v in geo["orientation"]],
        "FrameOfReferenceUID": for_uid,
        "PositionReferenceIndicator": "",
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "Rows": shape[0],
        "Columns": shape[1],
        "PixelSpacing": [_ds(v) for v in geo["pixel_spacing"]],
        "BitsAllocated": 16,
        "BitsStored": 16,
        "HighBit": 15,
        "PixelRepresentation": 0,
    }
    if contrast_agent:
        tags["ContrastBolusAgent"] = contrast_agent
    return tags


def _frame_tags(
    frame_axis: str | None, frame_values: list[float] | None, n_t: int, t: int, series_time_s: float
) -> dict[str, Any]:
    """Keyword -> value of the tags of frame ``t`` of ``n_t``: times, temporal position (DCE) or b-value (DWI)."""
    times = [0.0] * n_t
    if frame_axis == FrameAxis.TIME:
        times = [float(v) - frame_values[0] for v in frame_values]
    tags: dict[str, Any] = {
        "AcquisitionTime": _tm(series_time_s + times[t]),
        "ContentTime": _tm(series_time_s + times[t]),
        "AcquisitionNumber": t + 1,
    }
    if frame_axis == FrameAxis.TIME:
        tags.update(TemporalPositionIdentifier=t + 1, NumberOfTemporalPositions=n_t, TriggerTime=_ds(times[t] * 1000.0))
        if n_t > 1:
            tags["TemporalResolution"] = _ds((times[1] - times[0]) * 1000.0)
    if frame_axis == FrameAxis.BVALUE:
        tags.update(DiffusionBValue=float(frame_values[t]), DiffusionDirectionality="ISOTROPIC")
    return tags


def _slice_position_tags(geo: dict, k: int) -> dict[str, Any]:
    """ImagePositionPatient and SliceLocation of slice ``k``."""
    pos = geo["origin"] + k * geo["slice_step"]
    return {"ImagePositionPatient": [_ds(v) for v in pos], "SliceLocation": _ds(float(pos @ geo["normal"]))}


def _slice_dataset(sop_uid: str, instance: int, tags: Sequence[dict], pixels: np.ndarray, slope, intercept) -> Dataset:
    """The dataset of one file: file meta, rescale, ``pixels`` ``(Rows, Columns)``, then the ``tags`` dicts in order
    (a later one overrides an earlier one and all of the above: ``extra_tags`` come last)."""
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = MRImageStorage
    fm.MediaStorageSOPInstanceUID = sop_uid
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = fm
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = instance
    ds.RescaleIntercept = _ds(intercept)
    ds.RescaleSlope = _ds(slope) if slope != 1.0 else "1"
    ds.RescaleType = "US"
    ds.PixelData = np.ascontiguousarray(pixels).astype("<u2").tobytes()
    for group in tags:
        for key, value in group.items():
            setattr(ds, key, value)
    return ds


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
    arr, affine = _frames_first(volume, affine)
    n_t, n_x, n_y, n_z = arr.shape
    frame_axis, frame_values = _checked_frames(n_t, getattr(volume, "meta", {}) or {}, frame_axis, frame_values)
    geo = affine_to_dicom_geometry(affine)
    stored, slope, intercept = _to_uint16(arr)

    def uid(tag: str) -> str:
        return generate_uid(entropy_srcs=[uid_seed, tag]) if uid_seed is not None else generate_uid()

    study_uid = study_instance_uid or uid("study")
    series_uid = series_instance_uid or uid(f"series-{series_number}-{series_description}")
    series = _series_tags(
        study_uid=study_uid,
        series_uid=series_uid,
        for_uid=frame_of_reference_uid or uid("frame-of-reference"),
        frame_axis=frame_axis,
        geo=geo,
        shape=(n_y, n_x),
        series_description=series_description,
        protocol_name=protocol_name,
        patient_id=patient_id,
        patient_name=patient_name,
        study_id=study_id,
        series_number=series_number,
        series_time_s=series_time_s,
        study_date=study_date,
        scan_options=scan_options,
        contrast_agent=contrast_agent,
        repetition_time_ms=repetition_time_ms,
        echo_time_ms=echo_time_ms,
        manufacturer=manufacturer,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for t in range(n_t):
        frame = _frame_tags(frame_axis, frame_values, n_t, t, series_time_s)
        for k in range(n_z):
            instance = t * n_z + k + 1
            tags = (series, frame, _slice_position_tags(geo, k), extra_tags or {})
            pixels = stored[t, :, :, k].T  # (Rows, Columns) = (Y, X)
            ds = _slice_dataset(uid(f"{series_uid}-{instance}"), instance, tags, pixels, slope, intercept)
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
