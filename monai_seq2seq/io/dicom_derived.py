"""What the DICOM objects this toolkit derives from a source study share: the source series of a sequence, the
patient and study they belong to, references to the source images, recognition, and atomic series folders.

The synthetic MR series (:mod:`.dicom_synthetic`) and the differentiation maps (:mod:`.dicom_maps`) of a subject
read from DICOM join the study of the series it was read from (a sequence's MetaTensor meta carries
``filename_or_obj`` and ``SeriesInstanceUID``: :func:`find_source_series`). From the source series they copy
the attributes named in :data:`COPIED_KEYWORDS` and nothing else: the Patient, Clinical Trial Subject, General
Study, Patient Study and Clinical Trial Study modules, the Frame of Reference, and the patient position,
laterality and body part (the derived image shows the same anatomy). Nothing that identifies the patient is
added: the equipment is this toolkit (Manufacturer ``monai-seq2seq``), without institution, operator, station or
serial number; new Series and SOP Instance UIDs come from :func:`derived_uid`. A subject read from NIfTI has no
source study: :func:`new_study` then makes one (PatientID = the subject id, every other patient attribute
empty).

Recognition: :func:`derived_kind` says what an object of this toolkit (or any series whose ImageType starts
with ``DERIVED`` and whose descriptions say ``SYNTHETIC``) is, so that a study scan lists it as derived and never
as an acquired input.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from monai_seq2seq.core.errors import UnreadableFileError

from .dicom_series import scan_dicom_folder

__all__ = [
    "TOOL",
    "SOURCE_PURPOSE",
    "COPIED_KEYWORDS",
    "SourceSeries",
    "find_source_series",
    "copy_patient_study",
    "new_study",
    "derived_uid",
    "source_image_items",
    "referenced_series_items",
    "derived_kind",
    "write_series_folder",
]

TOOL = "monai-seq2seq"
"""Manufacturer of every derived object, and the end of its SeriesDescription: ``(monai-seq2seq)``."""

_PATIENT = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "TypeOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "QualityControlSubject",
    "OtherPatientIDsSequence",
    "PatientComments",
    "PatientSpeciesDescription",
    "PatientSpeciesCodeSequence",
    "PatientBreedDescription",
    "PatientBreedCodeSequence",
    "BreedRegistrationSequence",
    "StrainDescription",
    "ResponsiblePerson",
    "ResponsiblePersonRole",
    "ResponsibleOrganization",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
)
_CLINICAL_TRIAL = (
    "ClinicalTrialSponsorName",
    "ClinicalTrialProtocolID",
    "ClinicalTrialProtocolName",
    "ClinicalTrialSiteID",
    "ClinicalTrialSiteName",
    "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID",
    "ClinicalTrialTimePointID",
    "ClinicalTrialTimePointDescription",
)
_STUDY = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "StudyDescription",
    "ProcedureCodeSequence",
    "ReasonForPerformedProcedureCodeSequence",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
)
_CONTEXT = ("FrameOfReferenceUID", "PositionReferenceIndicator", "PatientPosition", "Laterality", "BodyPartExamined")

COPIED_KEYWORDS = ("SpecificCharacterSet", *_PATIENT, *_CLINICAL_TRIAL, *_STUDY, *_CONTEXT)
"""The attributes a derived object copies from its source series (where the source has them)."""

_TYPE2_EMPTY = (  # type 2 / 2C attributes of the modules copied: present, empty when the source lacks them
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "PositionReferenceIndicator",
    "PatientPosition",
    "Laterality",
)

SOURCE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")
"""Purpose of Reference (CID 7202) of every source image reference."""


def derived_uid(seed: str | None, *parts: object) -> str:
    """A new UID (pydicom's root): random, or with ``seed`` the same for the same seed and parts."""
    if seed is None:
        return generate_uid()
    return generate_uid(entropy_srcs=[str(seed), *(str(p) for p in parts)])


@dataclass
class SourceSeries:
    """An acquired series a derived object was made from: its headers (no pixel data), sorted by InstanceNumber.

    Attributes:
        name: the protocol sequence it was read as (``"DCE"``).
        headers: one dataset per file.
        location: the folder or file it was found through (for messages).
    """

    name: str
    headers: list[Dataset] = field(repr=False)
    location: str = ""
    _positions: np.ndarray | None = field(default=None, repr=False, compare=False)

    def tag(self, keyword: str) -> str:
        return str(self.headers[0].get(keyword, "") or "")

    @property
    def uid(self) -> str:
        return self.tag("SeriesInstanceUID")

    @property
    def study_uid(self) -> str:
        return self.tag("StudyInstanceUID")

    @property
    def label(self) -> str:
        """``<name> (series <number> '<description>')`` for descriptions and messages."""
        return f"{self.name} (series {self.tag('SeriesNumber') or '?'} {self.tag('SeriesDescription')!r})"

    @property
    def positions(self) -> np.ndarray:
        """ImagePositionPatient of each header, ``(n, 3)`` (``inf`` where a header has none), read once."""
        if self._positions is None:
            rows = []
            for ds in self.headers:
                ipp = ds.get("ImagePositionPatient")
                rows.append([np.inf] * 3 if ipp is None or len(ipp) != 3 else [float(v) for v in ipp])
            self._positions = np.asarray(rows, dtype=float).reshape(-1, 3)
        return self._positions

    def images_near(self, position: np.ndarray, normal: np.ndarray, reach: float) -> list[Dataset]:
        """The images (every frame) at the source slice position nearest to the plane through ``position`` with
        ``normal`` (LPS), if it is within ``reach`` mm; ``[]`` otherwise or for images without a position."""
        with np.errstate(invalid="ignore"):
            distances = np.abs((self.positions - position) @ normal)
        distances = np.where(np.isfinite(distances), distances, np.inf)
        if not len(distances) or distances.min() > reach:
            return []
        return [ds for ds, d in zip(self.headers, distances, strict=True) if d - distances.min() < 1e-3]


def _instance_number(ds: Dataset) -> int:
    try:
        return int(ds.get("InstanceNumber", 0) or 0)
    except (TypeError, ValueError):
        return 0


def find_source_series(meta: Mapping, name: str, cache: dict | None = None) -> SourceSeries | None:
    """The DICOM series a sequence was read from, by its MetaTensor meta (``filename_or_obj`` and
    ``SeriesInstanceUID``, as :class:`~monai_seq2seq.io.DicomSeriesReader` sets them); ``None`` for NIfTI or
    in-memory sequences.

    Args:
        meta: the sequence's meta dict.
        name: the sequence's protocol name.
        cache: folder -> its series, shared between calls of one subject (each folder is scanned once).

    Raises:
        UnreadableFileError: the folder or file is gone, or no longer holds the series (named, with the fix).
    """
    uid = str(meta.get("SeriesInstanceUID", "") or "")
    location = meta.get("filename_or_obj")
    if isinstance(location, (list, tuple)):
        location = location[0] if location else None
    if not uid or not location:
        return None
    path = Path(str(location))
    folder = path if path.is_dir() else path.parent
    cache = {} if cache is None else cache
    key = (str(folder), path.is_dir())
    if key not in cache:
        if not folder.is_dir():
            raise UnreadableFileError(
                f"the source of {name}, {str(path)!r}, no longer exists: the DICOM output needs the source series' "
                "headers; keep the input folder in place or write --output_format nifti."
            )
        cache[key] = scan_dicom_folder(folder, recursive=path.is_dir())
    headers = cache[key].get(uid)
    if not headers:
        raise UnreadableFileError(
            f"{str(folder)!r} no longer holds series {uid} ({name}); the DICOM output needs the source series' "
            "headers: keep the input folder as it was read or write --output_format nifti."
        )
    return SourceSeries(name, sorted(headers, key=_instance_number), str(path))


def copy_patient_study(source: Dataset, target: Dataset) -> Dataset:
    """Copy :data:`COPIED_KEYWORDS` from ``source`` into ``target`` (type 2 ones present, empty when missing)."""
    for keyword in COPIED_KEYWORDS:
        if keyword in source:
            target[keyword] = source[keyword]
    for keyword in _TYPE2_EMPTY:
        if keyword not in target:
            setattr(target, keyword, "")
    return target


def new_study(target: Dataset, subject_id: str, seed: str | None, created: dt.datetime | None = None) -> Dataset:
    """The patient and study of a subject without source study: PatientID = ``subject_id``, a new Study and
    Frame of Reference UID (from ``seed`` and the subject id when ``seed`` is given), Study Date and Time when it
    was ``created``, every other patient and study attribute empty."""
    target.SpecificCharacterSet = "ISO_IR 100"
    target.PatientID = str(subject_id)[:64]
    target.StudyInstanceUID = derived_uid(seed, subject_id, "study")
    target.FrameOfReferenceUID = derived_uid(seed, subject_id, "frame-of-reference")
    if created is not None:
        target.StudyDate, target.StudyTime = created.strftime("%Y%m%d"), created.strftime("%H%M%S")
    for keyword in _TYPE2_EMPTY:
        if keyword not in target:
            setattr(target, keyword, "")
    return target


def _reference(ds: Dataset, preserved: bool | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    if preserved is not None:
        item.SpatialLocationsPreserved = "YES" if preserved else "NO"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = SOURCE_PURPOSE
    item.PurposeOfReferenceCodeSequence = DicomSequence([code])
    return item


def _same_plane(ds: Dataset, position: np.ndarray, orientation: Sequence[float], shape, spacing) -> bool:
    """Whether ``ds`` covers the same pixels as a derived slice (position, orientation, size, spacing)."""
    try:
        same = np.allclose(np.asarray(ds.ImagePositionPatient, float), position, atol=1e-3)
        same = same and np.allclose(np.asarray(ds.ImageOrientationPatient, float), orientation, atol=1e-4)
        same = same and (int(ds.Rows), int(ds.Columns)) == tuple(shape)
        return bool(same and np.allclose(np.asarray(ds.PixelSpacing, float), spacing, atol=1e-4))
    except (AttributeError, TypeError, ValueError):
        return False


def source_image_items(
    sources: Sequence[SourceSeries], geometry: Mapping, k: int, shape: tuple[int, int]
) -> list[Dataset]:
    """Source Image Sequence items of derived slice ``k``: per source series, its images at the nearest slice
    position (within one slice spacing), with Spatial Locations Preserved ``YES`` where the pixels coincide.

    Args:
        sources: the source series (one study).
        geometry: :func:`~monai_seq2seq.io.affine_to_dicom_geometry` of the derived grid.
        k: the slice index.
        shape: ``(Rows, Columns)`` of the derived slices.
    """
    position = geometry["origin"] + k * geometry["slice_step"]
    items = []
    for source in sources:
        spacing = float(source.headers[0].get("SpacingBetweenSlices", 0) or source.headers[0].get("SliceThickness", 0))
        reach = max(float(geometry["slice_spacing"]), spacing or 0.0) / 2 + 1e-3
        for ds in source.images_near(position, geometry["normal"], reach):
            same = _same_plane(ds, position, geometry["orientation"], shape, geometry["pixel_spacing"])
            items.append(_reference(ds, same))
    return items


def referenced_series_items(items: Sequence[Dataset], sources: Sequence[SourceSeries]) -> list[Dataset]:
    """Referenced Series Sequence (Common Instance Reference module) of the instances ``items`` reference, one
    item per source series."""
    series_of = {ds.SOPInstanceUID: s.uid for s in sources for ds in s.headers}
    grouped: dict[str, list[Dataset]] = {}
    for item in items:
        uid = series_of.get(item.ReferencedSOPInstanceUID)
        if uid is not None:
            grouped.setdefault(uid, []).append(item)
    out = []
    for uid, refs in grouped.items():
        series = Dataset()
        series.SeriesInstanceUID = uid
        instances = []
        for ref in refs:
            inst = Dataset()
            inst.ReferencedSOPClassUID = ref.ReferencedSOPClassUID
            inst.ReferencedSOPInstanceUID = ref.ReferencedSOPInstanceUID
            instances.append(inst)
        series.ReferencedInstanceSequence = DicomSequence(instances)
        out.append(series)
    return out


def derived_kind(ds: Dataset) -> str | None:
    """What a derived object is, when it is one of this toolkit's outputs or another synthetic series:
    ``"synthetic T1Gd"``, ``"differentiation map of T1Gd"``, ``"differentiation map overlay of T1Gd"``,
    ``"uncertainty of T1Gd"``, ``"synthetic image"``; ``None`` for anything else (acquired series, other derived maps).

    The test: ImageType value 1 is ``DERIVED`` and the SeriesDescription ends with ``(monai-seq2seq)`` (this
    toolkit's objects), or the SeriesDescription or DerivationDescription says ``SYNTHETIC``.
    """
    image_type = [str(v).upper() for v in (ds.get("ImageType", []) or [])]
    if not image_type or image_type[0] != "DERIVED":
        return None
    description = str(ds.get("SeriesDescription", "") or "").strip()
    derivation = str(ds.get("DerivationDescription", "") or "")
    ours = description.endswith(f"({TOOL})")
    if ours:
        words = description[: -len(TOOL) - 2].split()
        what, name = (words[0].upper(), words[1]) if len(words) >= 2 else ("", "")
        if what == "SYNTHETIC":
            return f"synthetic {name}"
        if what == "DIFFMAP":
            return f"differentiation map {'overlay ' if 'overlay' in words else ''}of {name}"
        if what == "UNCERTAINTY":
            return f"uncertainty of {name}"
    if "SYNTHETIC" in description.upper() or "SYNTHETIC" in derivation.upper():
        return "synthetic image"
    return None


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # once at import: os.umask is process-wide


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.iterdir()):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def write_series_folder(folder: str | os.PathLike, files: Sequence[tuple[str, Dataset]], overwrite: bool) -> list[Path]:
    """Write the datasets of one series into ``folder`` atomically: all files go into a hidden folder beside it,
    which then replaces ``folder`` (a failure leaves no partial series and an existing one untouched).

    Args:
        folder: the series folder (its parent is created).
        files: ``(file name, dataset)`` pairs.
        overwrite: replace an existing ``folder``; otherwise an existing, non-empty one raises.

    Raises:
        FileExistsError: ``folder`` exists, is not empty and ``overwrite`` is False.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{str(folder)!r} exists and is not empty; pass overwrite=True (on the command line: --overwrite True) to "
            "replace it, or choose another output folder."
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    old = None
    try:
        for name, ds in files:
            pydicom.dcmwrite(tmp / name, ds, enforce_file_format=True)
        _fsync_tree(tmp)
        tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700 folders; give what mkdir would have given
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
            old.rmdir()
            folder.rename(old)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not folder.exists():
            old.rename(folder)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return [folder / name for name, _ in files]
