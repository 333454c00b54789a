"""Read DICOM MR series from a folder into arrays with MONAI (RAS) affines, splitting 4D series into frames.

Steps: read every DICOM header of a folder (:func:`scan_dicom_folder`), group the files into series by
SeriesInstanceUID, expand Siemens mosaics and enhanced (multi-frame) MR files into slices, split a 4D
series into frames -- by b-value (:func:`~monai_seq2seq.io.dicom_vendor.get_bvalue`: (0018,9087) or vendor
fields) for DWI, by Temporal Position Identifier, Trigger Time or Acquisition Time for DCE -- then order the
slices of each frame by ImagePositionPatient projected on the slice normal (``row x column`` direction
cosines, ascending), check that the geometry is consistent, and stack.

Array and affine convention (the same as ``monai.data.ITKReader`` and ``NibabelReader``): the array is
indexed ``[i, j, k]`` = ``[column, row, slice]``, shape ``(X, Y, Z)`` = ``(Columns, Rows, slices)`` for 3D and
``(X, Y, Z, T)`` for 4D with ``original_channel_dim = -1`` (``EnsureChannelFirst`` gives ``(T, X, Y, Z)``);
``meta["affine"]`` maps ``(i, j, k, 1)`` to RAS millimetres. 4D series get ``meta["frame_axis"]`` and
``meta["frame_values"]`` (seconds after the first frame, or b-values in s/mm^2) in frame order (increasing).
``meta["sequence"]`` is the canonical name from :func:`~monai_seq2seq.io.dicom_identify.identify_sequence`
when the tags identify it.
"""

from __future__ import annotations

import gzip
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from monai.data import ImageReader
from monai.utils import ensure_tuple
from pydicom.dataset import Dataset

from monai_seq2seq.core.errors import DicomTagError, FrameValuesError, SeriesConsistencyError, UnreadableFileError
from monai_seq2seq.core.protocols import BREAST, FrameAxis, Protocol, get_protocol

from .dicom_identify import identify_sequence
from .dicom_multiframe import enhanced_frame_headers, is_multiframe
from .dicom_vendor import (
    file_label,
    get_acquisition_time_s,
    get_bvalue,
    get_diffusion_direction,
    get_float,
    get_floats,
    get_trigger_time_s,
    require_tag,
    siemens_mosaic_count,
)

__all__ = [
    "DicomSlice",
    "read_dicom_file",
    "dicom_files",
    "scan_dicom_folder",
    "DicomSeriesPlan",
    "plan_dicom_series",
    "read_dicom_series",
    "DicomSeriesReader",
    "LPS_TO_RAS",
]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ORIENTATION_TOL = 1e-4
POSITION_TOL = 1e-3  # mm
POSITION_KEY = 1e-2  # mm: positions closer than this count as the same slice position
SPACING_RTOL = 1e-2


def _open(path: str):
    return gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")


def read_dicom_file(path: str | os.PathLike, stop_before_pixels: bool = True) -> Dataset:
    """Read one DICOM file (``.gz`` compressed files too).

    Raises:
        UnreadableFileError: missing, truncated or not DICOM; the message names the file.
    """
    path = str(path)
    try:
        with _open(path) as f:
            ds = pydicom.dcmread(f, stop_before_pixels=stop_before_pixels)
    except FileNotFoundError as err:
        raise UnreadableFileError(f"DICOM file {path!r} does not exist.") from err
    except Exception as err:
        raise UnreadableFileError(f"cannot read DICOM file {path!r}: {type(err).__name__}: {err}") from err
    ds.filename = path
    if not stop_before_pixels and "PixelData" not in ds:
        raise DicomTagError(f"DICOM file {path!r} lacks the required tag PixelData (7FE0,0010).")
    return ds


@dataclass
class DicomSlice:
    """One 2D slice of a series (a whole file, or one tile of a Siemens mosaic).

    Attributes:
        path: the file.
        header: the file's dataset (no pixel data).
        position: ImagePositionPatient of the slice (LPS, mm), corrected for mosaics.
        row_cos: direction of increasing column index (ImageOrientationPatient[:3]).
        col_cos: direction of increasing row index (ImageOrientationPatient[3:]).
        spacing: PixelSpacing ``(between rows, between columns)`` in mm.
        shape: ``(Rows, Columns)`` of the slice.
        mosaic_index: tile index inside a mosaic, ``None`` for ordinary files.
        frame_index: frame index inside an enhanced/multi-frame file, ``None`` for single-frame files.
    """

    path: str
    header: Dataset = field(repr=False)
    position: np.ndarray
    row_cos: np.ndarray
    col_cos: np.ndarray
    spacing: tuple[float, float]
    shape: tuple[int, int]
    mosaic_index: int | None = None
    frame_index: int | None = None

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_cos, self.col_cos)


def _slices_of(ds: Dataset) -> list[DicomSlice]:
    if is_multiframe(ds):
        if "PerFrameFunctionalGroupsSequence" not in ds:
            raise DicomTagError(
                f"DICOM file {file_label(ds)!r} has {ds.get('NumberOfFrames')} frames but no "
                "PerFrameFunctionalGroupsSequence (5200,9230) to place them."
            )
        out = []
        for i, fh in enumerate(enhanced_frame_headers(ds)):
            (s,) = _slices_of(fh)
            s.header, s.frame_index = fh, i
            out.append(s)
        return out
    path = file_label(ds)
    rows = int(require_tag(ds, "Rows"))
    cols = int(require_tag(ds, "Columns"))
    iop = np.asarray(get_floats(ds, "ImageOrientationPatient", count=6))
    row_cos, col_cos = iop[:3], iop[3:]
    if (
        abs(np.linalg.norm(row_cos) - 1) > 1e-3
        or abs(np.linalg.norm(col_cos) - 1) > 1e-3
        or abs(row_cos @ col_cos) > 1e-3
    ):
        raise DicomTagError(
            f"DICOM file {path!r}: ImageOrientationPatient (0020,0037) {iop.tolist()} is not two orthonormal vectors."
        )
    row_cos, col_cos = row_cos / np.linalg.norm(row_cos), col_cos / np.linalg.norm(col_cos)
    spacing = tuple(get_floats(ds, "PixelSpacing", count=2))
    if min(spacing) <= 0:
        raise DicomTagError(f"DICOM file {path!r}: PixelSpacing (0028,0030) must be positive, got {list(spacing)}.")
    ipp = np.asarray(get_floats(ds, "ImagePositionPatient", count=3))
    n_mosaic = siemens_mosaic_count(ds)
    if n_mosaic == 1:
        return [DicomSlice(path, ds, ipp, row_cos, col_cos, spacing, (rows, cols))]
    return _mosaic_slices(ds, n_mosaic, DicomSlice(path, ds, ipp, row_cos, col_cos, spacing, (rows, cols)))


def _mosaic_slices(ds: Dataset, n_mosaic: int, mosaic: DicomSlice) -> list[DicomSlice]:
    """The tiles of a Siemens mosaic as slices: ``n_mosaic`` tiles of ``(Rows / m, Columns / m)``.

    The position of the first tile is nibabel's ``MosaicWrapper.image_position`` (ImagePositionPatient refers to
    the corner of the whole mosaic). The slice direction is ours: ``row x column`` of the renormalised cosines,
    with the sign of the CSA header's slice normal. nibabel's ``slice_normal`` crosses the cosines as written (a
    normal of length 0.9999997 in nibabel's siemens_dwi_0.dcm.gz, so slices 2.999958 mm apart where
    SpacingBetweenSlices says 3.0; tests/test_io_dicom_real.py) and stops on an ``assert`` when the two normals
    disagree.
    """
    import warnings

    from nibabel.nicom import csareader

    with warnings.catch_warnings():  # "The DICOM readers are highly experimental": we use the geometry only
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom.dicomwrappers import MosaicWrapper

    from .dicom_vendor import siemens_csa_image_header

    path, (rows, cols) = mosaic.path, mosaic.shape
    m = int(np.ceil(np.sqrt(n_mosaic)))
    if rows % m or cols % m:
        raise DicomTagError(f"DICOM file {path!r}: mosaic of {rows}x{cols} cannot hold {m}x{m} tiles.")
    csa = siemens_csa_image_header(ds)
    pos0 = np.asarray(MosaicWrapper(ds, csa, n_mosaic).image_position, dtype=np.float64)
    normal = mosaic.normal
    csa_normal = csareader.get_slice_normal(csa)
    if csa_normal is not None and float(np.dot(csa_normal, normal)) < 0:
        normal = -normal
    gap = get_float(ds, "SpacingBetweenSlices") or get_float(ds, "SliceThickness")
    if not gap:
        raise DicomTagError(f"DICOM file {path!r}: mosaic needs SpacingBetweenSlices (0018,0088) or SliceThickness.")
    tile = (rows // m, cols // m)
    return [
        DicomSlice(
            path, ds, pos0 + k * gap * normal, mosaic.row_cos, mosaic.col_cos, mosaic.spacing, tile, mosaic_index=k
        )
        for k in range(n_mosaic)
    ]


def _is_candidate(path: Path) -> bool:
    name = path.name.lower()
    if name.startswith(".") or name == "dicomdir":
        return False
    if name.endswith((".dcm", ".dcm.gz", ".ima", ".dicom")):
        return True
    if "." in name:  # other suffixes (json, txt, nii...) are not DICOM
        return False
    try:
        return pydicom.misc.is_dicom(str(path))
    except OSError:
        return False


def dicom_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """The files under ``folder`` that look like DICOM, sorted: ``.dcm``, ``.dcm.gz``, ``.ima``, ``.dicom``, or no
    suffix with the DICOM preamble (``DICOMDIR`` and hidden files are left out).

    Raises:
        UnreadableFileError: the folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UnreadableFileError(f"DICOM folder {str(folder)!r} does not exist or is not a folder.")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.is_file() and _is_candidate(p))


def scan_dicom_folder(folder: str | os.PathLike, recursive: bool = True) -> dict[str, list[Dataset]]:
    """Headers of all DICOM files under ``folder``, grouped by SeriesInstanceUID (sorted by file name).

    Files ending in ``.dcm``, ``.dcm.gz``, ``.ima``, ``.dicom`` or without suffix but with the DICOM preamble
    are read; others are ignored.

    Raises:
        UnreadableFileError: the folder does not exist, holds no DICOM file, or a DICOM file is corrupt.
        DicomTagError: a file lacks SeriesInstanceUID.
    """
    files = dicom_files(folder, recursive)
    if not files:
        raise UnreadableFileError(f"DICOM folder {str(folder)!r} holds no DICOM files.")
    series: dict[str, list[Dataset]] = defaultdict(list)
    for path in files:
        ds = read_dicom_file(path)
        series[str(require_tag(ds, "SeriesInstanceUID"))].append(ds)
    return dict(series)


def _check_same(slices: Sequence[DicomSlice], what: str, get, tol: float | None) -> None:
    ref = get(slices[0])
    for s in slices[1:]:
        val = get(s)
        same = np.allclose(val, ref, atol=tol, rtol=0) if tol is not None else val == ref
        if not same:
            raise SeriesConsistencyError(
                f"series has two different {what}: {np.asarray(ref).tolist()} in {slices[0].path!r} and "
                f"{np.asarray(val).tolist()} in {s.path!r}."
            )


def _geometry(frame: list[DicomSlice], label: str) -> tuple[list[DicomSlice], np.ndarray]:
    """Sort the slices of one frame along the normal and build the RAS affine."""
    normal = frame[0].normal
    dist = np.array([float(s.position @ normal) for s in frame])
    order = np.argsort(dist, kind="stable")
    frame = [frame[i] for i in order]
    dist = dist[order]
    gaps = np.diff(dist)
    for g, a, b in zip(gaps, frame[:-1], frame[1:], strict=False):
        if g < POSITION_TOL:
            raise SeriesConsistencyError(
                f"{label}: duplicate slices at the same position {a.position.tolist()} in {a.path!r} and {b.path!r} "
                "(and no b-value or temporal tag tells them apart)."
            )
    if len(frame) > 1:
        step = float(np.mean(gaps))
        if np.max(np.abs(gaps - step)) > max(SPACING_RTOL * step, POSITION_TOL):
            raise SeriesConsistencyError(
                f"{label}: non-uniform slice spacing; gaps between consecutive slices (mm) are "
                f"{np.round(gaps, 4).tolist()} (files {frame[0].path!r} ... {frame[-1].path!r})."
            )
        off = frame[-1].position - frame[0].position
        in_plane = off - (off @ normal) * normal
        if np.linalg.norm(in_plane) > max(1e-2 * abs(off @ normal), 10 * POSITION_TOL):
            raise SeriesConsistencyError(
                f"{label}: slices are not stacked along the slice normal (tilted/sheared stack): in-plane offset "
                f"{np.round(in_plane, 4).tolist()} mm between {frame[0].path!r} and {frame[-1].path!r}."
            )
    else:
        hdr = frame[0].header
        step = get_float(hdr, "SpacingBetweenSlices") or get_float(hdr, "SliceThickness") or 1.0
    dr, dc = frame[0].spacing
    lps = np.eye(4)
    lps[:3, 0] = frame[0].row_cos * dc
    lps[:3, 1] = frame[0].col_cos * dr
    lps[:3, 2] = normal * step
    lps[:3, 3] = frame[0].position
    return frame, LPS_TO_RAS @ lps


def _position_key(s: DicomSlice, normal: np.ndarray) -> int:
    """The slice position along ``normal`` in units of ``POSITION_KEY`` (equal keys: the same position)."""
    return round(float(s.position @ normal) / POSITION_KEY)


def _frame_tags(slices: list[DicomSlice]) -> tuple[list, list, list]:
    """b-value, TemporalPositionIdentifier and TriggerTime (s) of each slice, each ``None`` where missing."""
    per_file: dict[int, tuple] = {}  # mosaic tiles share their file's header: read its tags once
    for s in slices:
        if id(s.header) not in per_file:
            h = s.header
            per_file[id(h)] = (get_bvalue(h), get_float(h, "TemporalPositionIdentifier"), get_trigger_time_s(h))
    bvals = [per_file[id(s.header)][0] for s in slices]
    tpis = [per_file[id(s.header)][1] for s in slices]
    triggers = [per_file[id(s.header)][2] for s in slices]
    return bvals, tpis, triggers


def _n_distinct(keys: list[float | None]) -> int:
    return len({k for k in keys if k is not None})


def _group_by(
    keys: list[float | None], slices: list[DicomSlice], tag: str, label: str
) -> tuple[list[float], list[list[DicomSlice]]]:
    """Frames of the slices that share a key, in increasing key order; every slice must have a key."""
    for k, s in zip(keys, slices, strict=True):
        if k is None:
            raise DicomTagError(
                f"{label}: DICOM file {s.path!r} lacks {tag}, which other files of its series use to split frames."
            )
    groups: dict[float, list[DicomSlice]] = defaultdict(list)
    for k, s in zip(keys, slices, strict=True):
        groups[float(k)].append(s)
    values = sorted(groups)
    return values, [groups[v] for v in values]


def _group_by_acquisition_rank(
    slices: list[DicomSlice], pos_key: list[int], label: str
) -> tuple[list[float], list[list[DicomSlice]]]:
    """Frames by rank of AcquisitionTime among the slices at the same position (keys: the ranks)."""
    at_pos: dict[int, list[DicomSlice]] = defaultdict(list)
    for k, s in zip(pos_key, slices, strict=True):
        at_pos[k].append(s)
    rank: dict[int, int] = {}
    for group_slices in at_pos.values():
        group_slices.sort(key=lambda s: get_acquisition_time_s(s.header))
        for r, s in enumerate(group_slices):
            rank[id(s)] = r
        times = [get_acquisition_time_s(s.header) for s in group_slices]
        for a, b, ta, tb in zip(group_slices, group_slices[1:], times, times[1:], strict=False):
            if tb == ta:
                raise SeriesConsistencyError(
                    f"{label}: duplicate timepoint: {a.path!r} and {b.path!r} have the same position and "
                    f"AcquisitionTime (0008,0032)."
                )
    n = max(rank.values()) + 1
    frames = [[s for s in slices if rank[id(s)] == r] for r in range(n)]
    return [float(r) for r in range(n)], frames


def _choose_split(
    slices: list[DicomSlice], pos_key: list[int], label: str
) -> tuple[str, list[float], list[list[DicomSlice]]] | None:
    """Frames by b-value, else TemporalPositionIdentifier, else (repeated positions only) TriggerTime, else the
    rank of AcquisitionTime; ``None`` when nothing splits the series."""
    repeated = len(set(pos_key)) < len(slices)
    bvals, tpis, triggers = _frame_tags(slices)
    if _n_distinct(bvals) > 1:
        return FrameAxis.BVALUE, *_group_by(bvals, slices, "a diffusion b-value (0018,9087 or vendor field)", label)
    if _n_distinct(tpis) > 1:
        return FrameAxis.TIME, *_group_by(tpis, slices, "TemporalPositionIdentifier (0020,0100)", label)
    if repeated and _n_distinct(triggers) > 1:
        return FrameAxis.TIME, *_group_by(triggers, slices, "TriggerTime (0018,1060)", label)
    if repeated and all(get_acquisition_time_s(s.header) is not None for s in slices):
        return FrameAxis.TIME, *_group_by_acquisition_rank(slices, pos_key, label)
    return None


def _check_positions_once(axis: str, key: float, frame: list[DicomSlice], normal: np.ndarray, label: str) -> None:
    """A frame must hold each slice position once (else a duplicate b-value/timepoint)."""
    seen: dict[int, DicomSlice] = {}
    for s in frame:
        k = _position_key(s, normal)
        if k in seen:
            what = "b-value" if axis == FrameAxis.BVALUE else "timepoint"
            hint = (
                " (several diffusion directions per b-value are read as one frame per direction only when every "
                "slice position has the same number of them)"
                if axis == FrameAxis.BVALUE
                else ""
            )
            raise SeriesConsistencyError(
                f"{label}: duplicate {what} {key:g} at slice position {s.position.tolist()}: "
                f"{seen[k].path!r} and {s.path!r}{hint}."
            )
        seen[k] = s


def _acquisition_order(s: DicomSlice) -> tuple:
    acquired = get_acquisition_time_s(s.header)
    number = get_float(s.header, "InstanceNumber")
    return (acquired if acquired is not None else 0.0, number if number is not None else 0.0, s.path)


def _split_directions(frame: list[DicomSlice], normal: np.ndarray) -> list[list[DicomSlice]]:
    """The frames of one b-value acquired in several diffusion directions: one frame per direction, in acquisition
    order, when every slice position holds the same number of images (grouped by DiffusionGradientOrientation
    where every file carries it, else by acquisition order at each position); else the frame unchanged (refused
    by the caller with the duplicate named)."""
    at_pos: dict[int, list[DicomSlice]] = defaultdict(list)
    for s in frame:
        at_pos[_position_key(s, normal)].append(s)
    counts = {len(v) for v in at_pos.values()}
    if len(counts) != 1 or counts == {1}:
        return [frame]
    by_direction = all(get_diffusion_direction(s.header) is not None for s in frame)
    for group in at_pos.values():
        group.sort(key=(lambda s: get_diffusion_direction(s.header)) if by_direction else _acquisition_order)
    if by_direction and len({tuple(get_diffusion_direction(s.header) for s in g) for g in at_pos.values()}) > 1:
        return [frame]  # positions disagree on which directions they hold
    parts = [[group[r] for group in at_pos.values()] for r in range(counts.pop())]
    return sorted(parts, key=lambda part: min(_acquisition_order(s) for s in part))


def _split_frames(slices: list[DicomSlice], label: str) -> tuple[str | None, list[float], list[list[DicomSlice]]]:
    """Split the slices of a series into frames: ``(frame_axis, raw frame keys, frames)``."""
    normal = slices[0].normal
    split = _choose_split(slices, [_position_key(s, normal) for s in slices], label)
    if split is None:
        return None, [], [slices]
    axis, keys, frames = split
    if axis == FrameAxis.BVALUE:  # a multi-direction DWI: one frame per direction, its b-value repeated
        split_keys, split_frames = [], []
        for key, frame in zip(keys, frames, strict=True):
            parts = _split_directions(frame, normal)
            split_keys += [key] * len(parts)
            split_frames += parts
        keys, frames = split_keys, split_frames
    for key, frame in zip(keys, frames, strict=True):
        _check_positions_once(axis, key, frame, normal, label)
    counts = [len(f) for f in frames]
    if len(set(counts)) > 1:
        desc = ", ".join(f"{axis} {k:g}: {c}" for k, c in zip(keys, counts, strict=True))
        raise SeriesConsistencyError(f"{label}: the frames of this 4D series have different slice counts ({desc}).")
    return axis, keys, frames


def _frame_times(frames: list[list[DicomSlice]], label: str) -> list[float]:
    """Seconds after the first frame, from TriggerTime, else AcquisitionTime, else TemporalResolution."""
    triggers = [[get_trigger_time_s(s.header) for s in f] for f in frames]
    if all(t is not None for f in triggers for t in f) and len({min(f) for f in triggers}) == len(frames):
        starts = [min(f) for f in triggers]
    else:
        acq = [[get_acquisition_time_s(s.header) for s in f] for f in frames]
        if all(t is not None for f in acq for t in f) and len({min(f) for f in acq}) == len(frames):
            starts = [min(f) for f in acq]
            starts = [t + 86400.0 if t < starts[0] - 43200 else t for t in starts]  # acquisition over midnight
        else:
            res = get_float(frames[0][0].header, "TemporalResolution")
            if not res:
                raise DicomTagError(
                    f"{label}: cannot time the {len(frames)} temporal positions: TriggerTime (0018,1060) and "
                    f"AcquisitionTime (0008,0032) do not differ between frames and TemporalResolution (0020,0110) "
                    f"is missing (first file {frames[0][0].path!r})."
                )
            starts = [i * res / 1000.0 for i in range(len(frames))]
    return [t - starts[0] for t in starts]


def _pixels(frames: list[list[DicomSlice]]) -> np.ndarray:
    """Array ``(X, Y, Z, T)`` (float32, rescaled per slice) of sorted frames of slices."""
    cache: dict[str, np.ndarray] = {}
    n_t, n_z = len(frames), len(frames[0])
    rows, cols = frames[0][0].shape
    out = np.empty((cols, rows, n_z, n_t), dtype=np.float32)
    for t, frame in enumerate(frames):
        for z, s in enumerate(frame):
            if s.path not in cache:
                ds = read_dicom_file(s.path, stop_before_pixels=False)
                try:
                    arr = np.asarray(ds.pixel_array)
                except Exception as err:
                    raise UnreadableFileError(f"cannot decode the pixel data of DICOM file {s.path!r}: {err}") from err
                cache.clear()  # keep one file in memory (mosaics and multi-frame files hold many slices)
                cache[s.path] = arr
            arr = cache[s.path]
            if s.frame_index is not None:
                arr = arr[s.frame_index]
            if s.mosaic_index is not None:
                m = arr.shape[1] // s.shape[1]
                r, c = divmod(s.mosaic_index, m)
                arr = arr[r * s.shape[0] : (r + 1) * s.shape[0], c * s.shape[1] : (c + 1) * s.shape[1]]
            if arr.shape != (rows, cols):
                raise SeriesConsistencyError(
                    f"DICOM file {s.path!r}: pixel data of shape {arr.shape} != (Rows, Columns) {(rows, cols)}."
                )
            slope = get_float(s.header, "RescaleSlope") or 1.0
            intercept = get_float(s.header, "RescaleIntercept") or 0.0
            out[:, :, z, t] = arr.T.astype(np.float32) * slope + intercept
    return out


def _series_meta(ds: Dataset) -> dict:
    meta: dict = {}
    for key in (
        "SeriesInstanceUID",
        "SeriesDescription",
        "ProtocolName",
        "Modality",
        "Manufacturer",
        "PatientID",
        "StudyInstanceUID",
        "SeriesNumber",
    ):
        value = ds.get(key, None)
        if value not in (None, ""):
            meta[key] = str(value)
    return meta


def _series_groups(source: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[dict[str, list[Dataset]], str]:
    """Headers grouped by SeriesInstanceUID of a folder or a list of files, and the source's name for messages."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        return scan_dicom_folder(source), str(source)
    files = [str(f) for f in ensure_tuple(source)]
    groups: dict[str, list[Dataset]] = defaultdict(list)
    for f in files:
        ds = read_dicom_file(f)
        groups[str(require_tag(ds, "SeriesInstanceUID"))].append(ds)
    return groups, files[0]


def _chosen_uids(
    groups: dict[str, list[Dataset]], series_uid: str | Sequence[str] | None, origin: str, from_files: bool = False
) -> list[str]:
    """The series UIDs to read: ``series_uid`` (one or several), the only series there is, or every series of a
    list of files (``from_files``)."""
    if series_uid is None and from_files:
        return list(groups)  # the files given are one series, e.g. a DCE of one series per timepoint
    if series_uid is None:
        if len(groups) > 1:
            desc = {uid: str(h[0].get("SeriesDescription", "")) for uid, h in groups.items()}
            raise ValueError(f"{origin!r} holds {len(groups)} series {desc}; pass series_uid= to choose one.")
        series_uid = next(iter(groups))
    uids = [series_uid] if isinstance(series_uid, str) else list(series_uid)
    for uid in uids:
        if uid not in groups:
            raise ValueError(f"{origin!r} has no series {uid!r}; found {sorted(groups)}.")
    return uids


def _series_slices(headers: list[Dataset]) -> list[DicomSlice]:
    """The 2D slices of MR headers (mosaics and multi-frame files expanded), checked for one common geometry."""
    for ds in headers:
        modality = str(ds.get("Modality", "MR"))
        if modality != "MR":
            raise DicomTagError(f"DICOM file {file_label(ds)!r}: Modality (0008,0060) is {modality!r}, expected 'MR'.")
    slices = [s for ds in headers for s in _slices_of(ds)]
    _check_same(
        slices, "orientations (ImageOrientationPatient)", lambda s: np.r_[s.row_cos, s.col_cos], ORIENTATION_TOL
    )
    _check_same(slices, "pixel spacings (PixelSpacing)", lambda s: np.asarray(s.spacing), 1e-4)
    _check_same(slices, "image sizes (Rows, Columns)", lambda s: s.shape, None)
    return slices


def _frames_geometry(
    axis: str | None, keys: list[float], frames: list[list[DicomSlice]], label: str
) -> tuple[list[list[DicomSlice]], np.ndarray]:
    """Each frame's slices sorted along the normal, and the RAS affine, which all frames must share."""
    sorted_frames, affines = [], []
    for key, frame in zip(keys or [None], frames, strict=True):
        flabel = label if axis is None else f"{label}, frame {axis} {key:g}"
        f_sorted, aff = _geometry(frame, flabel)
        sorted_frames.append(f_sorted)
        affines.append(aff)
    for key, aff in zip(keys[1:], affines[1:], strict=False):
        if not np.allclose(aff, affines[0], atol=1e-3):
            raise SeriesConsistencyError(
                f"{label}: frame {axis} {key:g} covers other positions than the first frame "
                f"(affine {np.round(aff, 4).tolist()} vs {np.round(affines[0], 4).tolist()})."
            )
    return sorted_frames, affines[0]


def _frame_values(axis: str, keys: list[float], sorted_frames: list[list[DicomSlice]], label: str) -> list[float]:
    """Seconds after the first frame (time, increasing) or the b-values (bvalue) of the frames."""
    if axis != FrameAxis.TIME:
        return [float(k) for k in keys]
    values = _frame_times(sorted_frames, label) if len(sorted_frames) > 1 else [0.0]
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise FrameValuesError(f"{label}: frame times {values} do not increase with the temporal position.")
    return values


@dataclass
class DicomSeriesPlan:
    """What a DICOM series holds, from its headers alone (no pixel data read).

    Attributes:
        label: names the series in messages (UID, description and source).
        headers: the series' datasets.
        frame_axis: ``"time"``, ``"bvalue"`` or ``None`` (3D).
        frame_values: seconds after the first frame or b-values, one per frame (``[]`` for 3D).
        frames: each frame's slices, sorted along the slice normal.
        affine: RAS affine of the voxel grid.
        sequence: canonical protocol name from the tags, or ``None``.
        split_by: the tag the frames were told apart by (``None`` for 3D).
        problem: why the series cannot be read as its sequence (a DWI without b-values), with ``lenient=True``.
    """

    label: str
    headers: list[Dataset] = field(repr=False)
    frame_axis: str | None
    frame_values: list[float]
    frames: list[list[DicomSlice]] = field(repr=False)
    affine: np.ndarray
    sequence: str | None
    split_by: str | None = None
    problem: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """``(X, Y, Z)`` or ``(X, Y, Z, T)`` of the array :func:`read_dicom_series` gives."""
        rows, cols = self.frames[0][0].shape
        spatial = (cols, rows, len(self.frames[0]))
        return spatial if self.frame_axis is None else (*spatial, len(self.frames))


def _series_name(headers: list[Dataset]) -> str:
    ds = headers[0]
    desc = str(ds.get("SeriesDescription", "") or ds.get("ProtocolName", "") or "")
    number = ds.get("SeriesNumber", None)
    return f"series {number} {desc!r}" if number not in (None, "") else f"series {desc!r}"


def _diffusion_frames(
    plan: DicomSeriesPlan, protocol: str | Protocol, bvalues: Sequence[float] | None
) -> tuple[str | None, list[float]]:
    """Frame axis and values of a series the tags identify as a b-value sequence (DWI).

    A DWI whose files carry no b-value is refused (its frames, told apart by time, are not b-values) unless
    ``bvalues`` gives them; ``bvalues`` that contradict the b-value tags are refused too.
    """
    proto = get_protocol(protocol)
    seq = plan.sequence
    if seq is None or proto[seq].frame_axis != FrameAxis.BVALUE or (plan.frame_axis is None and bvalues is None):
        return plan.frame_axis, plan.frame_values
    given = None if bvalues is None else [float(b) for b in ensure_tuple(bvalues)]
    n = len(plan.frames)
    if plan.frame_axis == FrameAxis.BVALUE:
        if given is not None and sorted(given) != sorted(plan.frame_values):
            raise FrameValuesError(
                f"{plan.label}: the b-value tags give {plan.frame_values} but bvalues={given} was passed; "
                "leave bvalues out for series that carry b-value tags, or fix the tags."
            )
        return plan.frame_axis, plan.frame_values
    if given is None:
        raise FrameValuesError(
            f"{plan.label} is identified as {seq} (diffusion) but its files carry no b-value (DiffusionBValue "
            f"(0018,9087) or a vendor field); its {n} frames are told apart by {plan.split_by} only, which are not "
            f"b-values. Pass the b-values of the frames in acquisition order: bvalues=[...] (DicomSeriesReader, "
            f'read_dicom_series) or the bundle config id, e.g. `seq2seq synthesize ... --bvalues "[0,150,800,1500]"`.'
        )
    if len(given) != n:
        raise FrameValuesError(f"{plan.label}: bvalues={given} gives {len(given)} b-values for {n} frame(s).")
    return FrameAxis.BVALUE, given


def plan_dicom_series(
    headers: Sequence[Dataset],
    protocol: str | Protocol = BREAST,
    bvalues: Sequence[float] | None = None,
    label: str | None = None,
    lenient: bool = False,
) -> DicomSeriesPlan:
    """Split one series' headers into frames, check its geometry and identify it, without reading pixels.

    Args:
        headers: the datasets of one series (or of several series read as one).
        protocol: names the sequence (``plan.sequence``).
        bvalues: b-values of a DWI whose files carry none, one per frame in acquisition order.
        label: names the series in messages (default: its UID, number and description).
        lenient: a DWI without b-values (and without ``bvalues``) gets ``plan.problem`` instead of raising.

    Raises:
        DicomTagError, SeriesConsistencyError, FrameValuesError: as :func:`read_dicom_series`.
    """
    headers = list(headers)
    if label is None:
        uid = str(headers[0].get("SeriesInstanceUID", "?"))
        label = f"DICOM {_series_name(headers)} ({uid}) in {str(Path(file_label(headers[0])).parent)!r}"
    slices = _series_slices(headers)
    axis, keys, frames = _split_frames(slices, label)
    sorted_frames, affine = _frames_geometry(axis, keys, frames, label)
    values = _frame_values(axis, keys, sorted_frames, label) if axis is not None else []
    seq = identify_sequence(headers, protocol, frame_axis=axis, n_frames=len(frames))
    split_by = None if axis is None else _split_tag(slices, axis)
    plan = DicomSeriesPlan(label, headers, axis, values, sorted_frames, affine, seq, split_by)
    try:
        plan.frame_axis, plan.frame_values = _diffusion_frames(plan, protocol, bvalues)
    except FrameValuesError as err:
        if not lenient:
            raise
        plan.problem = str(err)
    return plan


def _split_tag(slices: list[DicomSlice], axis: str) -> str:
    """The tag that told the frames apart (for messages)."""
    if axis == FrameAxis.BVALUE:
        return "b-value"
    _, tpis, triggers = _frame_tags(slices)
    if _n_distinct(tpis) > 1:
        return "TemporalPositionIdentifier (0020,0100)"
    if _n_distinct(triggers) > 1:
        return "TriggerTime (0018,1060)"
    return "AcquisitionTime (0008,0032)"


def read_dicom_series(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    series_uid: str | Sequence[str] | None = None,
    protocol: str | Protocol = BREAST,
    bvalues: Sequence[float] | None = None,
) -> tuple[np.ndarray, dict]:
    """Read one DICOM series.

    Args:
        source: a folder (searched recursively) or a list of DICOM files.
        series_uid: which series to read when a folder holds several; required then (a list of files is read as
            one series, whatever its UIDs). A list of UIDs reads them as one series (e.g. a DCE acquired as one
            series per timepoint, as some Siemens protocols do):
            their frames are then told apart by TemporalPositionIdentifier, TriggerTime or AcquisitionTime.
        protocol: protocol whose canonical names ``meta["sequence"]`` uses.
        bvalues: the b-values of a DWI series whose files carry no b-value tag, one per frame in acquisition
            order. Without it such a series (frames told apart by time only) is refused, never read as a time
            series; ignored for series the tags do not identify as a b-value sequence.

    Returns:
        ``(array, meta)``: array ``(X, Y, Z)`` for 3D or ``(X, Y, Z, T)`` for 4D (float32, rescaled), meta with
        ``affine``/``original_affine`` (RAS), ``spatial_shape``, ``space`` ``"RAS"``, ``original_channel_dim``
        (``nan`` or ``-1``), ``filename_or_obj``, ``frame_axis``/``frame_values`` (4D), ``sequence`` (when
        identified) and a few series tags (``SeriesInstanceUID``, ``SeriesDescription``...).

    Raises:
        UnreadableFileError: a file cannot be read (named).
        DicomTagError: a required tag is missing or malformed (tag and file named).
        SeriesConsistencyError: orientations, pixel sizes, spacings or frames contradict each other.
        FrameValuesError: a DWI without b-value tags and without ``bvalues``, or ``bvalues`` that do not fit.
        ValueError: several series and no (or an unknown) ``series_uid``.
    """
    groups, origin = _series_groups(source)
    from_files = not (isinstance(source, (str, os.PathLike)) and Path(source).is_dir())
    uids = _chosen_uids(groups, series_uid, origin, from_files)
    headers = [ds for uid in uids for ds in groups[uid]]
    label = f"DICOM {_series_name(headers)} ({uids[0] if len(uids) == 1 else uids}) in {origin!r}"
    plan = plan_dicom_series(headers, protocol, bvalues, label)
    data = _pixels(plan.frames)
    meta = _series_meta(headers[0])
    affine = plan.affine
    meta.update(
        affine=affine.copy(),
        original_affine=affine.copy(),
        spatial_shape=np.asarray(data.shape[:3]),
        space="RAS",
        filename_or_obj=origin,
    )
    if plan.frame_axis is None:
        data = data[..., 0]
        meta["original_channel_dim"] = float("nan")
    else:
        meta["original_channel_dim"] = -1
        meta["frame_axis"] = plan.frame_axis
        meta["frame_values"] = list(plan.frame_values)
    if plan.sequence is not None:
        meta["sequence"] = plan.sequence
    return data, meta


class DicomSeriesReader(ImageReader):
    """MONAI ``ImageReader`` for one DICOM MR series in a folder (3D, or 4D DCE/DWI split into frames).

    Usage: ``LoadImaged("DCE", reader=DicomSeriesReader(), ensure_channel_first=True)`` with the folder
    as the file name gives ``(T, X, Y, Z)`` with ``frame_axis``/``frame_values`` in the meta.

    Args:
        series_uid: which series to read from folders holding several (a list: read them as one 4D series).
        protocol: protocol whose canonical names ``meta["sequence"]`` uses.
        bvalues: b-values of DWI series whose files carry none (see :func:`read_dicom_series`).
    """

    def __init__(
        self,
        series_uid: str | Sequence[str] | None = None,
        protocol: str | Protocol = BREAST,
        bvalues: Sequence[float] | None = None,
    ):
        super().__init__()
        self.series_uid = series_uid
        self.protocol = protocol
        self.bvalues = bvalues

    def verify_suffix(self, filename) -> bool:
        """True for folders and ``.dcm`` files."""
        names = ensure_tuple(filename)
        return bool(names) and all(Path(n).is_dir() or str(n).lower().endswith((".dcm", ".dcm.gz")) for n in names)

    def read(self, data, **kwargs):
        """Returns the source (folder or list of files); the work happens in :meth:`get_data`."""
        names = [str(n) for n in ensure_tuple(data)]
        for n in names:
            if not os.path.exists(n):
                raise UnreadableFileError(f"DICOM path {n!r} does not exist.")
        if len(names) == 1:
            return names[0]
        if any(Path(n).is_dir() for n in names):
            raise ValueError(f"DicomSeriesReader reads one folder or a list of files, got {names}.")
        return names

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        """Array ``(X, Y, Z)`` or ``(X, Y, Z, T)`` and meta, see :func:`read_dicom_series`."""
        return read_dicom_series(img, series_uid=self.series_uid, protocol=self.protocol, bvalues=self.bvalues)
