"""Write differentiation maps as DICOM Parametric Maps (float) and colour overlays as Secondary Capture, with
``highdicom``, in the study of their source series.

:func:`write_parametric_map`: one Parametric Map instance per frame of the map (a 3D map: one instance; a DCE map
of 6 frames: 6 instances of one series, each a 3D volume, its frame named in the Content Description), float32
pixels as the NIfTI map holds them, a Real World Value Mapping without unit, the map's geometry as Plane
Position/Orientation and Pixel Measures, and references to the source images (per frame where the source slices
coincide with the map's; highdicom finds them) and series. :func:`write_overlay_series`: one RGB Secondary Capture
image per slice, for viewers without parametric map support, with references to the source images at that slice.

Both copy the patient and study of their first source series (highdicom does: patient and study modules), their
SeriesDescription is ``DIFFMAP <Sequence> [overlay ](monai-seq2seq)`` and nothing identifying is added (see
:mod:`.dicom_derived`). A map needs a source DICOM series: highdicom builds a Parametric Map only from source
images.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.sequence import Sequence as DicomSequence

from monai_seq2seq.core.protocols import FrameAxis

from .dicom_derived import (
    TOOL,
    SourceSeries,
    derived_uid,
    referenced_series_items,
    source_image_items,
    write_series_folder,
)
from .dicom_writer import _frames_first, affine_to_dicom_geometry

__all__ = ["MAP_SERIES_BASE", "OVERLAY_SERIES_BASE", "map_series_description", "write_parametric_map"]
__all__ += ["write_overlay_series", "patient_orientation"]

MAP_SERIES_BASE = 2000
"""A map series is numbered ``2000 + 1 + <its sequence's index in the protocol>``."""
OVERLAY_SERIES_BASE = 3000
"""An overlay series is numbered ``3000 + 1 + <its sequence's index in the protocol>``."""


def map_series_description(sequence: str, overlay: bool = False) -> str:
    """``DIFFMAP <sequence> [overlay ](monai-seq2seq)``."""
    return f"DIFFMAP {sequence} {'overlay ' if overlay else ''}({TOOL})"[:64]


def _needs_sources(sources: Sequence[SourceSeries], what: str) -> None:
    if not sources:
        raise ValueError(
            f"{what} needs a source DICOM series (highdicom derives a Parametric Map from source images only); the "
            "subject was read from NIfTI: write --output_format nifti, or read the subject from its DICOM study."
        )


def _frame_label(frame_axis: str | None, value: float) -> str:
    if frame_axis == FrameAxis.TIME:
        return f", frame t={value:g} s"
    if frame_axis == FrameAxis.BVALUE:
        return f", frame b={value:g} s/mm2"
    return ""


def _laterality(dataset, source: SourceSeries) -> None:
    """General Series Laterality (type 2C) as the source has it, else empty (unknown); highdicom leaves it out."""
    if "Laterality" not in dataset:
        dataset.Laterality = source.headers[0].get("Laterality", "")


def _frame_images(headers: Sequence, t: int, n_t: int, split: bool) -> Sequence:
    """Frame ``t``'s share of ``headers`` when ``split`` and they divide into ``n_t`` frames, else all of them."""
    if not split or n_t < 2 or len(headers) % n_t:
        return headers
    size = len(headers) // n_t
    return headers[t * size : (t + 1) * size]


def _derivation_text(dataset, text: str | None) -> None:
    """Derivation Description (type 3 of the Derivation Image Macro) in each frame's Derivation Image item."""
    if not text:
        return
    for frame in dataset.get("PerFrameFunctionalGroupsSequence", []):
        for item in frame.get("DerivationImageSequence", []):
            item.DerivationDescription = text[:1024]


def write_parametric_map(
    volume,
    affine,
    out_dir: str | os.PathLike,
    *,
    sequence: str,
    sources: Sequence[SourceSeries],
    description: str,
    frame_axis: str | None = None,
    frame_values: Sequence[float] | None = None,
    series_number: int = MAP_SERIES_BASE + 1,
    uid_seed: str | None = None,
    model_name: str = "Seq2Seq",
    software_version: str = "",
    created: dt.datetime | None = None,
    overwrite: bool = False,
    series_description: str | None = None,
    label: str = "DIFFMAP",
    derivation_description: str | None = None,
    split_first_source: bool = False,
) -> list[Path]:
    """Write a float map as Parametric Map instances (one per frame) of one new series into ``out_dir``.

    Args:
        volume: ``(X, Y, Z)`` or frames-first ``(T, X, Y, Z)`` map (the NIfTI map's values).
        affine: 4x4 RAS affine of the map's grid.
        out_dir: the series folder (replaced as a whole with ``overwrite``).
        sequence: the protocol sequence the map is of.
        sources: source series of one study; the first gives patient and study (the map's own sequence where it
            was read from DICOM), all are referenced.
        description: what the map is (the Real World Value Mapping's explanation and the Content Description, 64
            characters at most).
        frame_axis, frame_values: of a 4D map, one value per frame (named in each instance's Content Description).
        series_number: SeriesNumber.
        uid_seed: deterministic UIDs.
        model_name, software_version: ManufacturerModelName and SoftwareVersions.
        created: series and content date and time (default: now).
        overwrite: replace an existing series folder.
        series_description: SeriesDescription; ``None``: :func:`map_series_description` (``DIFFMAP <sequence>``).
        label: the Content Label and the Real World Value Mapping's LUT Label (``DIFFMAP``; another label also
            gives the series another UID than the differentiation map of the same sources).
        derivation_description: how the map was computed (1024 characters at most), written as the Derivation
            Description of each frame's Derivation Image item (where highdicom found its source images);
            ``None``: none.
        split_first_source: the first source holds the map's frames, frame-major (a derived series of the same
            frames and slices, as a synthetic series is written): instance ``t`` takes only frame ``t``'s images of
            it as source images. ``False``: every instance takes all of them.

    Returns:
        The written files, one per frame.

    Raises:
        ValueError: no source series, a bad shape or an affine DICOM cannot store.
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is False.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    _needs_sources(sources, f"the differentiation map of {sequence}")
    arr, affine = _frames_first(volume, affine)
    arr = arr.astype(np.float32)
    geo = affine_to_dicom_geometry(affine)
    created = created or dt.datetime.now()
    n_t = arr.shape[0]
    labels = [_frame_label(frame_axis, v) for v in frame_values] if frame_values is not None else []
    if len(labels) != n_t:
        labels = [f", frame {t + 1}" if n_t > 1 else "" for t in range(n_t)]
    patient = hd.CoordinateSystemNames.PATIENT
    positions = [
        hd.PlanePositionSequence(patient, (geo["origin"] + k * geo["slice_step"]).tolist()) for k in range(arr.shape[3])
    ]
    measures = hd.PixelMeasuresSequence(
        pixel_spacing=geo["pixel_spacing"],
        slice_thickness=geo["slice_spacing"],
        spacing_between_slices=geo["slice_spacing"],
    )
    low, high = float(arr.min()), float(arr.max())
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=label[:16],
        lut_explanation=description[:64],
        unit=codes.UCUM.NoUnits,
        value_range=(low, high),
        slope=1.0,
        intercept=0.0,
    )
    width = max(float(np.percentile(arr, 99.5)) - low, 1e-6)
    window = hd.VOILUTTransformation(window_center=low + width / 2, window_width=width, voi_lut_function="LINEAR_EXACT")
    series_uid = derived_uid(uid_seed, sources[0].uid, sequence, "map" if label == "DIFFMAP" else f"map {label}")
    files = []
    for t in range(n_t):
        pm = hd.pm.ParametricMap(
            source_images=_frame_images(sources[0].headers, t, n_t, split_first_source),
            further_source_images=[ds for s in sources[1:] if s.study_uid == sources[0].study_uid for ds in s.headers],
            pixel_array=np.ascontiguousarray(np.transpose(arr[t], (2, 1, 0))),  # (slices, Rows = Y, Columns = X)
            series_instance_uid=series_uid,
            series_number=int(series_number),
            sop_instance_uid=derived_uid(uid_seed, series_uid, t + 1),
            instance_number=t + 1,
            manufacturer=TOOL,
            manufacturer_model_name=model_name[:64],
            software_versions=software_version[:64] or TOOL,
            device_serial_number="none",
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            voi_lut_transformations=[window],
            content_description=f"{description}{labels[t]}"[:64],
            content_label=label[:16],
            pixel_measures=measures,
            plane_orientation=hd.PlaneOrientationSequence(patient, geo["orientation"]),
            plane_positions=positions,
            series_description=(series_description or map_series_description(sequence))[:64],
            series_date=created.date(),
            series_time=created.time().replace(microsecond=0),
            content_date=created.date(),
            content_time=created.time().replace(microsecond=0),
        )
        _laterality(pm, sources[0])
        _derivation_text(pm, derivation_description)
        files.append((f"PM_{t:03d}.dcm", pm))
    return write_series_folder(out_dir, files, overwrite)


def patient_orientation(direction: Sequence[float]) -> str:
    """The Patient Orientation letter of an LPS direction's dominant axis (``[0.9, 0.1, 0]`` -> ``"L"``).

    DICOM allows several letters for oblique directions (``"LP"``); highdicom's Secondary Capture accepts one.
    """
    vec = np.asarray(direction, dtype=float)
    axis = int(np.argmax(np.abs(vec)))
    return (("L", "R"), ("P", "A"), ("H", "F"))[axis][0 if vec[axis] > 0 else 1]


def write_overlay_series(
    rgb: np.ndarray,
    affine,
    out_dir: str | os.PathLike,
    *,
    sequence: str,
    sources: Sequence[SourceSeries],
    series_number: int = OVERLAY_SERIES_BASE + 1,
    uid_seed: str | None = None,
    model_name: str = "Seq2Seq",
    software_version: str = "",
    created: dt.datetime | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a colour overlay as one RGB Secondary Capture image per slice of one new series into ``out_dir``.

    Args:
        rgb: ``(X, Y, Z, 3)`` uint8 (the map's grid, colours last).
        affine: 4x4 RAS affine of that grid (gives the pixel spacing, orientation and the references per slice).
        out_dir: the series folder.
        sequence: the protocol sequence the map is of.
        sources: source series of one study (the first gives patient and study).
        series_number, uid_seed, model_name, software_version, created, overwrite: as
            :func:`write_parametric_map`.

    Returns:
        The written files, one per slice.

    Raises:
        ValueError: no source series, ``rgb`` not ``(X, Y, Z, 3)`` uint8.
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is False.
    """
    import highdicom as hd

    _needs_sources(sources, f"the overlay of {sequence}")
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"overlay of {sequence} must be (X, Y, Z, 3) uint8, got {rgb.shape} {rgb.dtype}.")
    geo = affine_to_dicom_geometry(np.asarray(affine, dtype=np.float64))
    orientation = (patient_orientation(geo["orientation"][:3]), patient_orientation(geo["orientation"][3:]))
    created = created or dt.datetime.now()
    series_uid = derived_uid(uid_seed, sources[0].uid, sequence, "overlay")
    n_x, n_y, n_z = rgb.shape[:3]
    files = []
    for k in range(n_z):
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=sources[0].headers[0],
            pixel_array=np.ascontiguousarray(np.transpose(rgb[:, :, k], (1, 0, 2))),  # (Rows = Y, Columns = X, 3)
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=series_uid,
            series_number=int(series_number),
            sop_instance_uid=derived_uid(uid_seed, series_uid, k + 1),
            instance_number=k + 1,
            manufacturer=TOOL,
            pixel_spacing=tuple(geo["pixel_spacing"]),
            patient_orientation=orientation,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            series_description=map_series_description(sequence, overlay=True),
            manufacturer_model_name=model_name[:64],
            software_versions=software_version[:64] or TOOL,
            content_date=created.date(),
            content_time=created.time().replace(microsecond=0),
        )
        sc.BurnedInAnnotation = "NO"
        references = source_image_items(sources, geo, k, (n_y, n_x))
        if references:
            sc.SourceImageSequence = DicomSequence(references)
            sc.ReferencedSeriesSequence = DicomSequence(referenced_series_items(references, sources))
        _laterality(sc, sources[0])
        files.append((f"SC_{k:04d}.dcm", sc))
    return write_series_folder(out_dir, files, overwrite)
