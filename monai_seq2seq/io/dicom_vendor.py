"""Per-file DICOM tag helpers: required tags, b-values (standard and vendor), times, Siemens mosaic.

b-value sources, in order: the standard Diffusion B-Value (0018,9087), the Siemens CSA image header
(``B_value``, via :mod:`nibabel.nicom.csareader`), Philips (2001,1003), GE (0043,1039) (first value; GE
adds 1e9 to it in some software versions, which is removed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from monai_seq2seq.core.errors import DicomTagError

__all__ = [
    "TAG_DIFFUSION_BVALUE",
    "TAG_PHILIPS_BVALUE",
    "TAG_GE_BVALUE",
    "file_label",
    "require_tag",
    "get_float",
    "get_floats",
    "get_bvalue",
    "get_diffusion_direction",
    "dicom_time_to_seconds",
    "get_trigger_time_s",
    "get_acquisition_time_s",
    "siemens_csa_image_header",
    "siemens_mosaic_count",
]

TAG_DIFFUSION_BVALUE = Tag(0x0018, 0x9087)
TAG_PHILIPS_BVALUE = Tag(0x2001, 0x1003)
TAG_GE_BVALUE = Tag(0x0043, 0x1039)


def file_label(ds: Dataset) -> str:
    """The file a dataset was read from (``ds.filename``), for error messages."""
    name = getattr(ds, "filename", None)
    return str(name) if name else "<in-memory dataset>"


def _tag_name(keyword_or_tag: str | int | tuple) -> str:
    if isinstance(keyword_or_tag, str):
        tag = Tag(keyword_or_tag)
        return f"{keyword_or_tag} ({tag.group:04X},{tag.element:04X})"
    tag = Tag(keyword_or_tag)
    kw = pydicom.datadict.keyword_for_tag(tag) or "private tag"
    return f"{kw} ({tag.group:04X},{tag.element:04X})"


def require_tag(ds: Dataset, keyword: str) -> Any:
    """Value of a required tag.

    Raises:
        DicomTagError: the tag is missing or empty; the message names the tag and the file.
    """
    value = ds.get(keyword, None)
    if value is None or (isinstance(value, (str, bytes, list, tuple)) and len(value) == 0) or value == "":
        raise DicomTagError(f"DICOM file {file_label(ds)!r} lacks the required tag {_tag_name(keyword)}.")
    return value


def get_floats(ds: Dataset, keyword: str, count: int | None = None, required: bool = True) -> list[float] | None:
    """A multi-valued numeric tag as floats (``None`` if absent and not required).

    Raises:
        DicomTagError: missing (when required), not numeric, or not ``count`` values; names the tag and file.
    """
    if not required and ds.get(keyword, None) in (None, "", []):
        return None
    value = require_tag(ds, keyword)
    seq = (
        list(value)
        if isinstance(value, (Sequence, pydicom.multival.MultiValue)) and not isinstance(value, (str, bytes))
        else [value]
    )
    try:
        out = [float(v) for v in seq]
    except (TypeError, ValueError) as err:
        raise DicomTagError(
            f"DICOM file {file_label(ds)!r}: tag {_tag_name(keyword)} is not numeric: {value!r}."
        ) from err
    if count is not None and len(out) != count:
        raise DicomTagError(
            f"DICOM file {file_label(ds)!r}: tag {_tag_name(keyword)} needs {count} values, got {len(out)} ({value!r})."
        )
    if not all(math.isfinite(v) for v in out):
        raise DicomTagError(f"DICOM file {file_label(ds)!r}: tag {_tag_name(keyword)} has non-finite values {out}.")
    return out


def get_float(ds: Dataset, keyword: str, required: bool = False) -> float | None:
    """A single numeric tag as float, ``None`` when absent/empty and not required."""
    vals = get_floats(ds, keyword, count=None, required=required)
    return None if not vals else vals[0]


def _private_number(ds: Dataset, tag: Tag) -> float | None:
    if tag not in ds:
        return None
    value = ds[tag].value
    if isinstance(value, bytes):
        text = value.decode("ascii", errors="ignore").strip("\x00 ")
        parts = [p for p in text.replace("\\", " ").split() if p]
        if not parts:
            return None
        try:
            return float(parts[0])
        except ValueError:
            try:  # binary float (Philips FL stored as UN)
                return float(np.frombuffer(value[:4], dtype="<f4")[0])
            except ValueError:
                return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0] if len(value) else None
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def siemens_csa_image_header(ds: Dataset) -> dict | None:
    """The Siemens CSA image header of ``ds`` (``None`` for other vendors or when absent)."""
    if "SIEMENS" not in str(ds.get("Manufacturer", "")).upper():
        return None
    from nibabel.nicom import csareader

    try:
        return csareader.get_csa_header(ds, "image")
    except Exception:  # a malformed CSA header is treated as absent
        return None


def siemens_mosaic_count(ds: Dataset) -> int:
    """Number of slices tiled in a Siemens mosaic image (1 when ``ds`` is not a mosaic)."""
    image_type = [str(t).upper() for t in ds.get("ImageType", [])]
    if "MOSAIC" not in image_type:
        return 1
    csa = siemens_csa_image_header(ds)
    if csa is None:
        raise DicomTagError(
            f"DICOM file {file_label(ds)!r} is a Siemens MOSAIC without a readable CSA image header (0029,1010)."
        )
    from nibabel.nicom import csareader

    n = csareader.get_n_mosaic(csa)
    if not n:
        raise DicomTagError(f"DICOM file {file_label(ds)!r}: MOSAIC without NumberOfImagesInMosaic in its CSA header.")
    return int(n)


def _standard_bvalue(ds: Dataset) -> float | None:
    """Diffusion b-value from (0018,9087) of the file, or of its MRDiffusionSequence item (enhanced MR)."""
    if TAG_DIFFUSION_BVALUE in ds and ds[TAG_DIFFUSION_BVALUE].value not in (None, "", b""):
        value = _private_number(ds, TAG_DIFFUSION_BVALUE)
        if value is not None:
            return value
    for item in ds.get("MRDiffusionSequence", []) or []:  # enhanced MR puts it in a sequence
        if TAG_DIFFUSION_BVALUE in item:
            return float(item[TAG_DIFFUSION_BVALUE].value)
    return None


def _siemens_bvalue(ds: Dataset) -> float | None:
    """Diffusion b-value from the Siemens CSA image header (``B_value``), ``None`` if it has none."""
    csa = siemens_csa_image_header(ds)
    if csa is None:
        return None
    from nibabel.nicom import csareader

    try:
        b = csareader.get_b_value(csa)
    except (KeyError, csareader.CSAReadError):
        return None
    return None if b is None else float(b)


def _ge_bvalue(ds: Dataset) -> float | None:
    """Diffusion b-value from GE's (0043,1039); values of 1e9 and more carry a flag in the high digits."""
    b = _private_number(ds, TAG_GE_BVALUE)
    if b is None:
        return None
    return float(b % 1e9) if b >= 1e9 else b


def get_bvalue(ds: Dataset) -> float | None:
    """Diffusion b-value (s/mm^2) of one file from the standard tag or vendor fields; ``None`` if there is none."""
    value = _standard_bvalue(ds)
    manufacturer = str(ds.get("Manufacturer", "")).upper()
    if value is None and "SIEMENS" in manufacturer:
        value = _siemens_bvalue(ds)
    if value is None and ("PHILIPS" in manufacturer or TAG_PHILIPS_BVALUE in ds):
        value = _private_number(ds, TAG_PHILIPS_BVALUE)
    if value is None and ("GE" in manufacturer.split() or "GE MEDICAL" in manufacturer or TAG_GE_BVALUE in ds):
        value = _ge_bvalue(ds)
    return value


def get_diffusion_direction(ds: Dataset) -> tuple[float, float, float] | None:
    """Diffusion gradient direction of one file from DiffusionGradientOrientation (0018,9089), top level or in
    its MRDiffusionSequence / DiffusionGradientDirectionSequence items (enhanced MR), rounded to 1e-3; ``None``
    if it has none (vendors that keep it in private fields only)."""
    holders = [ds]
    for item in ds.get("MRDiffusionSequence", []) or []:
        holders += [item, *(item.get("DiffusionGradientDirectionSequence", []) or [])]
    for holder in holders:
        value = holder.get("DiffusionGradientOrientation", None)
        if value is not None and len(value) == 3:
            try:
                return tuple(round(float(v), 3) for v in value)
            except (TypeError, ValueError):
                return None
    return None


def dicom_time_to_seconds(value: Any) -> float | None:
    """DICOM TM (``HHMMSS.FFFFFF``, also ``HH:MM:SS``) as seconds after midnight; ``None`` if empty."""
    if value is None:
        return None
    text = str(value).strip().replace(":", "")
    if not text:
        return None
    main, _, frac = text.partition(".")
    if not main.isdigit() or len(main) not in (2, 4, 6) or (frac and not frac.isdigit()):
        raise ValueError(f"not a DICOM time: {value!r}")
    hh = int(main[0:2])
    mm = int(main[2:4]) if len(main) >= 4 else 0
    ss = int(main[4:6]) if len(main) >= 6 else 0
    return hh * 3600.0 + mm * 60.0 + ss + (float("0." + frac) if frac else 0.0)


def get_trigger_time_s(ds: Dataset) -> float | None:
    """Trigger Time (0018,1060) in seconds (the tag holds ms), ``None`` if absent."""
    ms = get_float(ds, "TriggerTime")
    return None if ms is None else ms / 1000.0


def get_acquisition_time_s(ds: Dataset) -> float | None:
    """Acquisition Time (0008,0032) in seconds after midnight, ``None`` if absent.

    Raises:
        DicomTagError: the tag is present but malformed.
    """
    value = ds.get("AcquisitionTime", None)
    try:
        return dicom_time_to_seconds(value)
    except ValueError as err:
        raise DicomTagError(f"DICOM file {file_label(ds)!r}: malformed AcquisitionTime (0008,0032) {value!r}.") from err
