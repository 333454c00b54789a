"""Frame values of 4D images from sidecar files: BIDS JSON (``VolumeTiming``, ``BValues``) and FSL ``.bval``.

Layout (docs/CONTRACTS.md): next to ``<sid>_DCE.nii.gz`` a BIDS sidecar ``<sid>_DCE.json`` holds
``"VolumeTiming"`` (seconds, one per frame); next to ``<sid>_DWI.nii.gz`` an FSL ``<sid>_DWI.bval``
holds the b-values (s/mm^2, whitespace separated, one per frame; repeated b-values are the diffusion directions of
a multi-direction acquisition and are kept as they are); the JSON key ``"BValues"`` is accepted too.

In memory, DCE frame values are seconds *after the first frame* (``VolumeTiming`` is shifted so that the
first frame is at 0), DWI frame values are the b-values as written.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_seq2seq.core.errors import FrameValuesError, UnreadableFileError
from monai_seq2seq.core.files import atomic_write_text
from monai_seq2seq.core.protocols import FrameAxis

__all__ = [
    "image_stem",
    "sidecar_paths",
    "read_frame_info",
    "validate_frame_values",
    "relative_times",
    "write_frame_info",
    "write_sidecar_json",
]

_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd", ".mgz")


def image_stem(path: str | os.PathLike) -> Path:
    """``path`` without its image suffix: ``a/s1_DCE.nii.gz`` -> ``a/s1_DCE``."""
    p = Path(path)
    name = p.name
    for suffix in _IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return p.with_name(name[: -len(suffix)])
    return p.with_name(p.stem)


def sidecar_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The BIDS JSON and FSL ``.bval`` paths that belong to an image: ``(<stem>.json, <stem>.bval)``."""
    stem = image_stem(path)
    return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".bval")


def relative_times(values: Sequence[float]) -> list[float]:
    """Times relative to the first frame (the first becomes 0.0)."""
    vals = [float(v) for v in values]
    return [v - vals[0] for v in vals] if vals else []


def validate_frame_values(
    frame_axis: str,
    values: Sequence[float],
    n_frames: int | None = None,
    source: str = "frame values",
    allow_duplicates: bool | None = None,
) -> list[float]:
    """Check frame values and return them as a list of floats.

    Args:
        frame_axis: ``"time"`` or ``"bvalue"``.
        values: one value per frame.
        n_frames: number of frames of the image, if known; must equal ``len(values)``.
        source: what the values came from (a file name), used in error messages.
        allow_duplicates: accept repeated values. ``None`` (default): b-values may repeat (the diffusion
            directions of an FSL ``.bval``, e.g. ``0`` once and ``1000`` 64 times; the DWI transforms average them
            with ``duplicates="average"``), times may not.

    Raises:
        FrameValuesError: unknown axis, count mismatch, non-finite, duplicate values (where not allowed), times
            not increasing or negative b-values.
    """
    if frame_axis not in FrameAxis.ALL:
        raise FrameValuesError(f"{source}: frame_axis must be one of {FrameAxis.ALL}, got {frame_axis!r}.")
    try:
        vals = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise FrameValuesError(f"{source}: frame values must be numbers, got {values!r}.") from err
    if n_frames is not None and len(vals) != int(n_frames):
        raise FrameValuesError(
            f"{source}: {len(vals)} {frame_axis} value(s) {vals} for an image with {n_frames} frame(s)."
        )
    if not all(math.isfinite(v) for v in vals):
        raise FrameValuesError(f"{source}: non-finite {frame_axis} values {vals}.")
    if allow_duplicates is None:
        allow_duplicates = frame_axis == FrameAxis.BVALUE
    dup = sorted({v for v in vals if vals.count(v) > 1})
    if dup and not allow_duplicates:
        raise FrameValuesError(f"{source}: duplicate {frame_axis} value(s) {dup} in {vals}.")
    if frame_axis == FrameAxis.TIME and any(b <= a for a, b in zip(vals, vals[1:], strict=False)):
        raise FrameValuesError(f"{source}: frame times must increase from frame to frame, got {vals}.")
    if frame_axis == FrameAxis.BVALUE and any(v < 0 for v in vals):
        raise FrameValuesError(f"{source}: negative b-value(s) in {vals}.")
    return vals


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnreadableFileError(f"cannot read sidecar JSON {str(path)!r}: {err}") from err
    if not isinstance(data, dict):
        raise UnreadableFileError(f"sidecar JSON {str(path)!r} must hold an object at the top level.")
    return data


def _read_bval(path: Path) -> list[float]:
    try:
        tokens = path.read_text().split()
        return [float(t) for t in tokens]
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UnreadableFileError(f"cannot read b-values from {str(path)!r}: {err}") from err


def read_frame_info(path: str | os.PathLike, n_frames: int | None = None) -> tuple[str, list[float]] | None:
    """Frame axis and values of the image at ``path`` from its sidecar files, or ``None`` when there are none.

    ``<stem>.json`` with ``VolumeTiming`` gives ``("time", seconds after the first frame)``; with ``BValues``
    gives ``("bvalue", b-values)``; ``<stem>.bval`` gives ``("bvalue", b-values)``. A JSON without either
    key is ignored (BIDS sidecars hold many other fields).

    Args:
        path: the image file (``.nii``/``.nii.gz``).
        n_frames: frames of the image; checked against the number of values.

    Raises:
        UnreadableFileError: a sidecar exists but cannot be parsed.
        FrameValuesError: the values do not fit (count, duplicates, order), or the sidecars contradict
            each other (times and b-values for one image, or JSON ``BValues`` != ``.bval``).
    """
    json_path, bval_path = sidecar_paths(path)
    found: list[tuple[str, list[float], str]] = []
    if json_path.is_file():
        data = _read_json(json_path)
        if "VolumeTiming" in data:
            vals = data["VolumeTiming"]
            vals = vals if isinstance(vals, list) else [vals]
            found.append((FrameAxis.TIME, vals, f"{json_path} (VolumeTiming)"))
        if "BValues" in data:
            vals = data["BValues"]
            vals = vals if isinstance(vals, list) else [vals]
            found.append((FrameAxis.BVALUE, vals, f"{json_path} (BValues)"))
    if bval_path.is_file():
        found.append((FrameAxis.BVALUE, _read_bval(bval_path), str(bval_path)))
    if not found:
        return None
    checked = [(axis, validate_frame_values(axis, vals, n_frames, src), src) for axis, vals, src in found]
    axis0, vals0, src0 = checked[0]
    for axis, vals, src in checked[1:]:
        if axis != axis0 or vals != vals0:
            raise FrameValuesError(
                f"image {str(path)!r}: sidecars contradict each other: {src0} gives {axis0} {vals0}, "
                f"{src} gives {axis} {vals}."
            )
    if axis0 == FrameAxis.TIME:
        vals0 = relative_times(vals0)
    return axis0, vals0


def write_sidecar_json(path: str | os.PathLike, fields: Mapping[str, Any]) -> Path:
    """Write the BIDS-style sidecar ``<stem>.json`` of the image at ``path`` holding ``fields``.

    Values JSON cannot hold (a ``numpy.float32``, a ``Path``) are written as their ``str``.

    Args:
        path: the image file the sidecar belongs to (need not exist yet).
        fields: the JSON object to write.

    Returns:
        The path of the written ``.json``.
    """
    json_path, _ = sidecar_paths(path)
    return atomic_write_text(json_path, json.dumps(dict(fields), indent=2, default=str) + "\n")


def write_frame_info(
    path: str | os.PathLike, frame_axis: str, frame_values: Sequence[float], extra: Mapping[str, Any] | None = None
) -> Path:
    """Write the sidecar of a 4D image: ``<stem>.json`` with ``VolumeTiming`` (time) or ``<stem>.bval`` (bvalue).

    Args:
        path: the image file the sidecar belongs to (need not exist yet).
        frame_axis: ``"time"`` (seconds) or ``"bvalue"`` (s/mm^2).
        frame_values: one value per frame.
        extra: more JSON fields, e.g. ``{"ContrastBolusIngredient": "GADOLINIUM"}``: written with ``VolumeTiming``
            (time), or as a ``<stem>.json`` next to the ``.bval`` (bvalue; no JSON when ``extra`` is ``None``).

    Returns:
        The path of the written ``.json`` (time) or ``.bval`` (bvalue).

    Raises:
        FrameValuesError: see :func:`validate_frame_values`; nothing is written then.
    """
    vals = validate_frame_values(frame_axis, frame_values, source=f"sidecar of {path}")
    if frame_axis == FrameAxis.TIME:
        return write_sidecar_json(path, {**(extra or {}), "VolumeTiming": vals})
    if extra is not None:
        write_sidecar_json(path, extra)
    _, bval_path = sidecar_paths(path)
    return atomic_write_text(bval_path, " ".join(f"{v:g}" for v in vals) + "\n")
