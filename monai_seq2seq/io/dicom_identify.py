"""Identify the MRI sequence of a DICOM series from its tags, as a protocol's canonical name.

Evidence, strongest first:

- a SeriesDescription/ProtocolName that is a canonical name or alias of the protocol (what
  :func:`~monai_seq2seq.io.dicom_writer.write_dicom_study` writes);
- diffusion (b-values, ``DIFFUSION`` image type, DWI keywords) -> ``DWI``;
- wash-in/wash-out keywords -> ``WashIn``/``WashOut``;
- several temporal positions or DCE keywords -> ``DCE`` (``FatSatDCE`` with fat saturation);
- FLAIR keywords -> ``FLAIR``; T2 keywords -> ``T2``;
- contrast agent (ContrastBolusAgent, post-contrast keywords) -> ``T1Gd``;
- T1 keywords -> ``T1`` (``FatSatT1`` with fat saturation);
- no keywords at all: TR/TE decide between T1 and T2.

Fat saturation: ScanOptions ``FS``/``SFS``/``FSA``... or keywords (``fs``, ``fatsat``, ``spair``, ``spir``).
Only names the protocol has are returned; ``None`` when nothing fits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydicom.dataset import Dataset

from monai_seq2seq.core.protocols import BREAST, FrameAxis, Protocol, get_protocol

__all__ = ["series_text", "has_fat_saturation", "has_contrast_agent", "identify_sequence"]

_KW = {
    "dwi": r"\b(dwi|diff\w*|ep2d_diff|resolve|adc|trace|b\d{3,4})\b",
    "washin": r"\b(wash[\s_-]?in)\b",
    "washout": r"\b(wash[\s_-]?out)\b",
    "dce": r"\b(dce|dyn\w*|vibrant|twist|perf\w*|multiphase)\b",
    "flair": r"\b(flair|tirm|dark[\s_-]?fluid|t2f)\b",
    "t2": r"\b(t2\w*|tse|haste|space_t2|stir)\b",
    "postcontrast": r"(\+c\b|\bgd\b|\bgad\w*|\bpost\w*|\bce\b|\bt1ce\b|\bt1gd\b|\bcontrast\b|\bkm\b)",
    "t1": r"\b(t1\w*|mprage|mp_rage|spgr|flash|vibe|thrive|fl3d|bravo)\b",
    "fatsat": r"\b(fs|fatsat|fat[\s_-]sat\w*|spair|spir|fat[\s_-]?supp\w*|chess)\b",
}


def series_text(ds: Dataset) -> str:
    """SeriesDescription, ProtocolName and SequenceName of ``ds``, lower-case, ``_``/``-`` kept."""
    parts = [str(ds.get(k, "") or "") for k in ("SeriesDescription", "ProtocolName", "SequenceName")]
    return " ".join(p for p in parts if p).lower()


def _has(text: str, key: str) -> bool:
    return re.search(_KW[key], text.replace("_", " ")) is not None or re.search(_KW[key], text) is not None


def has_fat_saturation(ds: Dataset) -> bool:
    """Fat saturation from ScanOptions (``FS``, ``SFS``, ``FSA``, ``FSP``, ``FSS``, ``FSI``) or keywords."""
    options = ds.get("ScanOptions", [])
    options = [options] if isinstance(options, str) else list(options or [])
    if any(str(o).upper().strip() in {"FS", "SFS", "FSA", "FSP", "FSS", "FSI", "FC_FS"} for o in options):
        return True
    return _has(series_text(ds), "fatsat")


def has_contrast_agent(ds: Dataset) -> bool:
    """Contrast agent from ContrastBolusAgent (0018,0010) / ContrastBolusIngredient or post-contrast keywords."""
    for key in ("ContrastBolusAgent", "ContrastBolusIngredient"):
        value = str(ds.get(key, "") or "").strip().lower()
        if value and value not in {"none", "no", "n/a", "0"}:
            return True
    return _has(series_text(ds), "postcontrast")


def _pick(proto: Protocol, *names: str) -> str | None:
    """The canonical name of the first of ``names`` the protocol has, or ``None``."""
    for name in names:
        if name in proto:
            return proto.canonical(name)
    return None


def _named_in_protocol(ds: Dataset, proto: Protocol) -> str | None:
    """A SeriesDescription/ProtocolName that is a name of the protocol itself (as our writer puts it)."""
    for key in ("SeriesDescription", "ProtocolName"):
        value = str(ds.get(key, "") or "").strip()
        if value and value in proto:
            return proto.canonical(value)
    return None


def _rule_names(
    text: str, image_type: set[str], frame_axis: str | None, n_frames: int, fatsat: bool
) -> tuple[str, ...] | None:
    """Candidate names of the first diffusion/wash/DCE/FLAIR/T2 rule that fits, or ``None`` when none fits."""
    if frame_axis == FrameAxis.BVALUE or "DIFFUSION" in image_type or _has(text, "dwi"):
        return ("DWI",)
    if _has(text, "washin"):
        return ("WashIn",)
    if _has(text, "washout"):
        return ("WashOut",)
    if (frame_axis == FrameAxis.TIME and n_frames > 1) or _has(text, "dce"):
        return ("FatSatDCE", "DCE") if fatsat else ("DCE",)
    if _has(text, "flair"):
        return ("FLAIR",)
    if _has(text, "t2"):
        return ("T2",)
    return None


def _weighting_from_timing(ds: Dataset) -> str | None:
    """``"T2"`` (TR >= 1500 ms and TE >= 60 ms), ``"T1"`` (TR < 1000 ms and TE < 30 ms) or ``None``."""
    try:
        tr, te = float(ds.get("RepetitionTime", None)), float(ds.get("EchoTime", None))
    except (TypeError, ValueError):
        return None
    if tr >= 1500 and te >= 60:
        return "T2"
    if tr < 1000 and te < 30:
        return "T1"
    return None


def _pick_t1(proto: Protocol, ds: Dataset, fatsat: bool) -> str | None:
    """``T1Gd`` with a contrast agent (if the protocol has it), else ``FatSatT1``/``T1``."""
    if has_contrast_agent(ds):
        found = _pick(proto, "T1Gd")
        if found is not None:
            return found
    return _pick(proto, "FatSatT1", "T1") if fatsat else _pick(proto, "T1")


def identify_sequence(
    headers: Sequence[Dataset] | Dataset,
    protocol: str | Protocol = BREAST,
    frame_axis: str | None = None,
    n_frames: int = 1,
) -> str | None:
    """Canonical sequence name of a series from its tags, or ``None``.

    Args:
        headers: the series' datasets (the first is used for text tags; all for image types).
        protocol: the protocol whose names are returned (name or :class:`Protocol`).
        frame_axis: ``"time"``/``"bvalue"`` when the series was split into frames, else ``None``.
        n_frames: number of frames found.
    """
    proto = get_protocol(protocol)
    headers = [headers] if isinstance(headers, Dataset) else list(headers)
    if not headers:
        return None
    ds = headers[0]
    text = series_text(ds)
    image_type = {str(t).upper() for h in headers[:1] for t in (h.get("ImageType", []) or [])}
    fatsat = has_fat_saturation(ds)
    named = _named_in_protocol(ds, proto)
    if named is not None:
        return named
    names = _rule_names(text, image_type, frame_axis, n_frames, fatsat)
    if names is not None:
        return _pick(proto, *names)
    weighting = "T1" if _has(text, "t1") else None
    if weighting is None and not text.strip():
        weighting = _weighting_from_timing(ds)
    if weighting == "T2":
        return _pick(proto, "T2")
    if weighting == "T1" or has_contrast_agent(ds):
        return _pick_t1(proto, ds, fatsat)
    return None
