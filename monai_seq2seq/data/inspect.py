"""What a cohort folder or datalist holds, read from the image headers only (fast on a 1 mm cohort).

:func:`inspect_root` gives, per subject, each sequence's file, grid (shape), spacing, orientation (nibabel axis
codes), frames and frame values, the protocol's sequences it lacks, and every problem in one line (grids that
differ between sequences, 4D files without or with contradicting frame values, duplicate b-values, unreadable
files); files under the folder that look like images but belong to no entry are listed, never dropped.
Voxel data are not read: NIfTI through ``nibabel`` proxies (header only), DICOM with ``stop_before_pixels``.

What a bundle would do with each subject (synthesise, analyse, refuse) and how the subject compares with what
its weights were trained on is added by :mod:`monai_seq2seq.cli.inspect` (``seq2seq inspect``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monai_seq2seq.core.protocols import Protocol, get_protocol
from monai_seq2seq.transforms.trained_on import format_spacing

from .datalists import SPLIT_KEYS, DatalistError, load_datalist

__all__ = [
    "IMAGE_SUFFIXES",
    "SequenceInfo",
    "SubjectReport",
    "InspectionReport",
    "read_sequence_header",
    "grid_offset_mm",
    "inspect_entry",
    "inspect_root",
    "image_files",
]

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".mgz", ".dcm", ".ima", ".img", ".hdr")
"""File endings that look like images (files without suffix are not listed: DICOM exports often have none)."""


@dataclass
class SequenceInfo:
    """One sequence of a subject as its header describes it.

    Attributes:
        name: canonical sequence name.
        file: the file (or DICOM folder).
        shape: spatial grid ``[X, Y, Z]``.
        spacing: voxel size in mm.
        axcodes: orientation, nibabel axis codes (``"RAS"``, ``"LPS"``...).
        frames: number of frames (1 for 3D).
        frame_axis: ``"time"``/``"bvalue"`` for 4D with frame values, else ``None``.
        frame_values: seconds after the first frame (DCE) or b-values (DWI), as the reader gives them.
        affine: the 4 x 4 voxel-to-world (RAS) matrix.
        problems: one line per problem of this sequence alone.
    """

    name: str
    file: str
    shape: list[int] = field(default_factory=list)
    spacing: list[float] = field(default_factory=list)
    axcodes: str = ""
    frames: int = 1
    frame_axis: str | None = None
    frame_values: list[float] | None = None
    affine: list[list[float]] | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class SubjectReport:
    """A subject: its sequences, what the protocol has that it lacks, files nobody recognised, problems.

    Attributes:
        subject: subject id.
        sequences: canonical name -> :class:`SequenceInfo`, protocol order.
        missing: protocol sequences the subject lacks.
        extra: other entry keys (``label``, ``unique-<Sequence>``) -> file.
        unrecognised: image-like files of the subject's folder that match no sequence.
        errors: problems that stop a run on this subject (unreadable files, grids that do not line up...).
        warnings: problems a run goes through with.
    """

    subject: str
    sequences: dict[str, SequenceInfo] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    unrecognised: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class InspectionReport:
    """What :func:`inspect_root` found. ``to_dict()`` is JSON-ready.

    Attributes:
        root: the folder or datalist inspected.
        protocol: the protocol's name.
        subjects: one :class:`SubjectReport` per entry.
        unrecognised: image-like files under the folder that belong to no subject entry.
        problems: problems of the cohort as a whole (folders without sequences, unreadable datalist...).
    """

    root: str
    protocol: str
    subjects: list[SubjectReport] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES) and not path.name.startswith(".")


def image_files(root: str | os.PathLike) -> list[Path]:
    """Every file under ``root`` (any depth) whose name ends like an image (:data:`IMAGE_SUFFIXES`), sorted."""
    return sorted(p for p in Path(root).rglob("*") if _is_image(p))


def _raw_bvalues(path: str) -> list[float] | None:
    from monai_seq2seq.io.sidecar import sidecar_paths

    json_path, bval_path = sidecar_paths(path)
    try:
        if bval_path.is_file():
            return [float(t) for t in bval_path.read_text().split()]
        if json_path.is_file():
            values = json.loads(json_path.read_text()).get("BValues")
            return None if values is None else [float(v) for v in np.atleast_1d(values)]
    except (OSError, ValueError, AttributeError):
        return None
    return None


def _frame_problems(info: SequenceInfo, spec) -> None:
    """Frames against the protocol: 4D given for 3D, frame count, duplicate b-values (FSL multi-direction)."""
    if not spec.is_4d and info.frames > 1:
        info.problems.append(f"{info.name}: a 4D file with {info.frames} frames; the protocol's {info.name} is 3D")
    if spec.is_4d and info.frames != spec.frames:
        info.problems.append(f"{info.name}: {info.frames} frame(s), the protocol's {info.name} has {spec.frames}")


def _nifti_header(info: SequenceInfo, spec) -> None:
    import nibabel as nib

    from monai_seq2seq.io.sidecar import read_frame_info

    img = nib.load(info.file)  # a proxy: the header only
    shape = tuple(int(s) for s in img.shape)
    affine = np.asarray(img.affine, dtype=np.float64)
    info.shape = list(shape[:3])
    info.spacing = [float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(0))]
    info.axcodes = "".join(nib.aff2axcodes(affine))
    info.affine = affine.tolist()
    info.frames = int(shape[3]) if len(shape) == 4 else 1
    if len(shape) > 4 or len(shape) < 3:
        info.problems.append(f"{info.name}: {len(shape)} dimensions {shape}; expected 3 or 4")
    if spec.frame_axis == "bvalue":
        raw = _raw_bvalues(info.file)
        if raw is not None and len(set(raw)) < len(raw):
            dup = sorted({v for v in raw if raw.count(v) > 1})
            info.problems.append(
                f"{info.name}: duplicate b-values {[f'{v:g}' for v in dup]} ({len(raw)} frames, "
                f"{len(set(raw))} distinct b-values: directions, to be averaged by b-value)"
            )
            info.frame_axis, info.frame_values = "bvalue", raw
            return
    try:
        frame_info = read_frame_info(info.file, n_frames=info.frames if len(shape) == 4 else None)
    except ValueError as err:
        info.problems.append(f"{info.name}: {err}")
        return
    if frame_info is not None:
        info.frame_axis, info.frame_values = frame_info[0], [float(v) for v in frame_info[1]]
    elif spec.is_4d and info.frames > 1:
        what = "VolumeTiming in a .json sidecar" if spec.frame_axis == "time" else "a .bval file or BValues"
        info.problems.append(f"{info.name}: {info.frames} frames without frame values (no {what})")


def _dicom_header(info: SequenceInfo, protocol: Protocol) -> None:
    import nibabel as nib

    from monai_seq2seq.io import dicom_series as ds  # header-level steps of read_dicom_series, no pixel data

    groups, origin = ds._series_groups(info.file)
    uids = ds._chosen_uids(groups, None, origin)
    headers = [h for uid in uids for h in groups[uid]]
    label = f"DICOM series in {origin!r}"
    axis, keys, frames = ds._split_frames(ds._series_slices(headers), label)
    sorted_frames, affine = ds._frames_geometry(axis, keys, frames, label)
    affine = np.asarray(affine, dtype=np.float64)
    info.shape = _dicom_shape(sorted_frames)
    info.spacing = [float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(0))]
    info.axcodes = "".join(nib.aff2axcodes(affine))
    info.affine = affine.tolist()
    info.frames = len(sorted_frames)
    if axis is not None:
        info.frame_axis = axis
        info.frame_values = [float(v) for v in ds._frame_values(axis, keys, sorted_frames, label)]


def _dicom_shape(sorted_frames) -> list[int]:
    first = sorted_frames[0]
    rows, cols = first[0].shape
    return [int(cols), int(rows), len(first)]


def read_sequence_header(path: str | os.PathLike, name: str, protocol: str | Protocol) -> SequenceInfo:
    """:class:`SequenceInfo` of one sequence from its header (NIfTI file or DICOM folder); problems, not errors.

    Args:
        path: the NIfTI file or DICOM folder.
        name: the sequence's canonical name.
        protocol: the protocol (frames and frame axis of the sequence).
    """
    proto = get_protocol(protocol)
    spec = proto[name]
    info = SequenceInfo(name=spec.name, file=str(path))
    if not Path(path).exists():
        info.problems.append(f"{spec.name}: file {str(path)!r} does not exist")
        return info
    try:
        if Path(path).is_dir():
            _dicom_header(info, proto)
        else:
            _nifti_header(info, spec)
    except Exception as err:  # noqa: BLE001 - any reader failure is one line of the report
        info.problems.append(f"{spec.name}: cannot read the header of {str(path)!r}: {err}")
        return info
    _frame_problems(info, spec)
    return info


def _box(info: SequenceInfo) -> np.ndarray:
    """World (RAS, mm) positions of the 8 outer corners of a grid's field of view (voxel faces, not centres)."""
    ext = [(-0.5, n - 0.5) for n in info.shape]
    corners = np.array([[i, j, k, 1.0] for i in ext[0] for j in ext[1] for k in ext[2]])
    return (corners @ np.asarray(info.affine).T)[:, :3]


def grid_offset_mm(a: SequenceInfo, b: SequenceInfo) -> float:
    """Largest distance (mm) between corresponding corners of two grids' fields of view (0 for one grid)."""
    return float(np.linalg.norm(_box(a) - _box(b), axis=1).max())


def _compare_grids(report: SubjectReport, atol_mm: float) -> None:
    """Each sequence's grid against the first one's: same box on another grid is a warning, another box an error."""
    readable = [s for s in report.sequences.values() if s.affine is not None]
    if len(readable) < 2:
        return
    ref = readable[0]
    for info in readable[1:]:
        offset = grid_offset_mm(info, ref)
        same_grid = info.shape == ref.shape and np.allclose(info.affine, ref.affine, atol=1e-3)
        if same_grid or offset <= atol_mm:
            continue
        if offset <= atol_mm + max(max(info.spacing), max(ref.spacing)) and info.shape != ref.shape:
            report.warnings.append(
                f"{info.name}: grid {'x'.join(map(str, info.shape))} at {format_spacing(info.spacing)} differs from "
                f"{ref.name}'s {'x'.join(map(str, ref.shape))} at {format_spacing(ref.spacing)} over the same field "
                f"of view: it needs resampling to {ref.name}'s grid"
            )
        else:
            report.errors.append(
                f"{info.name}: affine differs from {ref.name} by {offset:.1f} mm (not aligned: register the "
                f"sequences, e.g. --register rigid, or fix the files)"
            )


def inspect_entry(entry: dict[str, Any], protocol: str | Protocol, atol_mm: float = 0.1) -> SubjectReport:
    """:class:`SubjectReport` of one datalist entry (absolute paths), from headers only.

    Args:
        entry: ``{"subject", "<Sequence>": path, ..., "label"?, ...}``.
        protocol: the protocol naming the sequences.
        atol_mm: grids of one subject whose corners differ by more than this (mm) are reported.
    """
    proto = get_protocol(protocol)
    report = SubjectReport(subject=str(entry.get("subject", "?")))
    for name in proto.names:
        value = entry.get(name)
        if isinstance(value, list) and value:  # phase files stacked as frames (MAMA-MIA without timing)
            info = read_sequence_header(value[0], name, proto)
            info.file, info.frames, info.frame_axis, info.frame_values = str(value), len(value), None, None
            info.problems = [p for p in info.problems if "frame" not in p]
            info.problems.append(f"{name}: {len(value)} phase files without frame times (give the DCE timing)")
            _frame_problems(info, proto[name])
            report.sequences[name] = info
            report.warnings.extend(info.problems)
        elif isinstance(value, str):
            info = read_sequence_header(value, name, proto)
            report.sequences[name] = info
            target = report.errors if info.affine is None else report.warnings
            target.extend(info.problems)
        else:
            report.missing.append(name)
    for key, value in entry.items():
        if key not in proto.names and key not in ("subject", "available") and isinstance(value, str):
            report.extra[key] = value
    for info in report.sequences.values():
        # a 3D file given as 4D, or frames the protocol does not have, stop the network; the rest are warnings
        for line in [p for p in info.problems if "frame(s), the protocol" in p or "the protocol's" in p]:
            report.warnings.remove(line)
            report.errors.append(line)
    _compare_grids(report, atol_mm)
    if not report.sequences:
        report.errors.append(f"no {proto.name} sequence recognised")
    return report


def _datalist_of_folder(root: Path, protocol: Protocol | None) -> tuple[dict, Protocol]:
    """The datalist of a folder: :func:`~monai_seq2seq.data.layouts.build_datalist` (layout detected; the
    protocol that names the most sequences when none is given)."""
    from .layouts import build_datalist

    datalist = build_datalist(root, protocol=protocol)
    return datalist, get_protocol(datalist.get("protocol", protocol or "brain"))


def _referenced(entry: dict) -> list[Path]:
    paths = []
    for key, value in entry.items():
        if key not in ("subject", "available"):
            paths += [Path(v).resolve() for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    return paths


def inspect_root(
    root: str | os.PathLike, protocol: str | Protocol | None = None, atol_mm: float = 0.1
) -> InspectionReport:
    """Inspect a cohort folder (its layout detected) or a datalist JSON, from headers only.

    Args:
        root: a folder of subjects or a datalist ``.json`` (all of its splits).
        protocol: the protocol; ``None``: the datalist's, or for a folder the one that recognises more files.
        atol_mm: tolerance of the grid comparison between the sequences of a subject.

    Returns:
        An :class:`InspectionReport`.

    Raises:
        DatalistError: ``root`` does not exist, or a folder holds no subject with a recognised sequence.
    """
    path = Path(root)
    if path.is_file():
        raw = json.loads(path.read_text())
        proto = get_protocol(protocol or raw.get("protocol", "brain"))
        entries = [e for key in SPLIT_KEYS if key in raw for e in load_datalist(path, key, check_files=False)]
        report = InspectionReport(root=str(path), protocol=proto.name)
        base = path.resolve().parent
        entries = [
            {
                k: (str(base / v) if k not in ("subject", "available") and isinstance(v, str) else v)
                for k, v in e.items()
            }
            for e in entries
        ]
    elif path.is_dir():
        datalist, proto = _datalist_of_folder(path, None if protocol is None else get_protocol(protocol))
        entries = [e for key in SPLIT_KEYS for e in datalist.get(key, [])]
        report = InspectionReport(root=str(path), protocol=proto.name)
    else:
        raise DatalistError(f"inspect: {str(root)!r} is neither a folder nor a datalist JSON.")
    entries = sorted(entries, key=lambda e: str(e.get("subject", "")))
    report.subjects = [inspect_entry(e, proto, atol_mm) for e in entries]
    if path.is_dir():
        reasons = {str((path / u["path"]).resolve()): u.get("reason", "") for u in datalist.get("unused", [])}
        _unrecognised(path, entries, report, reasons)
    return report


def _unrecognised(root: Path, entries: list[dict], report: InspectionReport, reasons: dict[str, str]) -> None:
    """List image-like files under ``root`` that no entry names (inside a named DICOM folder counts as named)."""
    named = {p for e in entries for p in _referenced(e)}
    folders = [p for p in named if p.is_dir()]
    by_subject = {s.subject: s for s in report.subjects}
    for file in image_files(root):
        resolved = file.resolve()
        if resolved in named or any(f in resolved.parents for f in folders):
            continue
        rel = str(file.relative_to(root))
        # a DICOM series is not used as a whole: its reason is keyed by the series folder
        folder_reason = next((reasons[str(p)] for p in resolved.parents if str(p) in reasons), None)
        reason = reasons.get(str(resolved)) or folder_reason or f"matches no {report.protocol} sequence"
        report.unrecognised.append(f"{rel} ({reason})")
        owner = next((sid for sid in by_subject if sid in file.relative_to(root).parts), None)
        if owner is None:
            owner = next((sid for sid in by_subject if file.name.startswith(f"{sid}_")), None)
        if owner is not None:
            by_subject[owner].unrecognised.append(rel)
            by_subject[owner].warnings.append(f"{rel}: looks like an image but is not used ({reason})")
