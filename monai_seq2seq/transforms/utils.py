"""Helpers shared by the transforms: frame meta of 4D series, type round trips, input checks, labels of keys.

A 4D sequence is a channel-first ``(T, X, Y, Z)`` image whose ``T`` frames are DCE timepoints or DWI b-values.
Its frame meta lives in ``meta["frame_axis"]`` (``"time"`` or ``"bvalue"``) and ``meta["frame_values"]``
(seconds after the pre-contrast frame, or s/mm^2), one value per frame in frame order, as the readers of
:mod:`monai_seq2seq.io` write them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.utils import convert_to_dst_type, convert_to_tensor

from monai_seq2seq.core.errors import FrameValuesError

__all__ = [
    "FRAME_AXIS_KEY",
    "FRAME_VALUES_KEY",
    "get_frame_values",
    "set_frame_meta",
    "check_distinct",
    "check_finite",
    "describe",
    "key_label",
    "like",
    "pop_own_trace",
]

FRAME_AXIS_KEY = "frame_axis"
FRAME_VALUES_KEY = "frame_values"


def describe(img: NdarrayOrTensor, name: str | None = None) -> str:
    """A short label for error messages: the given name, else the source file from the meta, else 'image'."""
    if name:
        return str(name)
    meta = getattr(img, "meta", None) or {}
    source = meta.get("filename_or_obj")
    return f"image {str(source)!r}" if source else "image"


def key_label(key: Hashable, img: NdarrayOrTensor) -> str:
    """Label of a dictionary entry for error messages: ``"key (file)"`` when the meta knows the file, else ``key``."""
    meta = getattr(img, "meta", None) or {}
    return f"{key!s} ({meta['filename_or_obj']})" if meta.get("filename_or_obj") else str(key)


def like(out: NdarrayOrTensor, img: NdarrayOrTensor, dtype: torch.dtype | np.dtype | None = None) -> NdarrayOrTensor:
    """``out`` as the type and device of ``img`` (numpy stays numpy); a MetaTensor ``img`` gives its meta and trace.

    One way for every transform: MONAI's ``convert_to_dst_type``, which copies the meta with
    ``MetaTensor.copy_meta_from`` (the meta dict and the trace list are shallow copies, so editing the output's meta
    leaves ``img`` alone). A MetaTensor ``out`` is stripped first, so the meta always comes from ``img``.

    Args:
        out: the computed result (numpy, tensor or MetaTensor).
        img: the transform's input, whose type, device and meta the result takes.
        dtype: the result's dtype; ``None`` keeps ``out``'s (``convert_to_dst_type`` alone would take ``img``'s).
    """
    src = convert_to_tensor(out, track_meta=False) if isinstance(out, MetaTensor) else out
    result, *_ = convert_to_dst_type(src, img, dtype=out.dtype if dtype is None else dtype)
    return result


def get_frame_values(
    img: NdarrayOrTensor,
    frame_values: Sequence[float] | None = None,
    expected_axis: str | None = None,
    name: str | None = None,
) -> list[float]:
    """Frame values of a channel-first 4D image: ``frame_values`` if given, else its meta.

    Args:
        img: ``(T, X, Y, Z)`` image (MetaTensor with frame meta, or any array when ``frame_values`` is given).
        frame_values: explicit values, one per frame (overrides the meta).
        expected_axis: ``"time"`` or ``"bvalue"``; a meta naming the other axis raises.
        name: label of the image in error messages.

    Raises:
        FrameValuesError: no values anywhere, a count that differs from ``T``, a contradicting frame axis.
    """
    label = describe(img, name)
    meta = getattr(img, "meta", None) or {}
    if frame_values is None:
        if FRAME_VALUES_KEY not in meta:
            raise FrameValuesError(
                f"{label} has no {FRAME_VALUES_KEY!r} in its meta; read it with monai_seq2seq.io (sidecar JSON, "
                ".bval or DICOM tags) or pass frame_values explicitly."
            )
        frame_values = meta[FRAME_VALUES_KEY]
        axis = meta.get(FRAME_AXIS_KEY)
        if expected_axis is not None and axis is not None and axis != expected_axis:
            raise FrameValuesError(f"{label}: expected frame axis {expected_axis!r}, its meta says {axis!r}.")
    values = [float(v) for v in np.asarray(frame_values, dtype=np.float64).reshape(-1)]
    if len(values) != img.shape[0]:
        raise FrameValuesError(f"{label} has {img.shape[0]} frames but {len(values)} frame values {values}.")
    if not all(np.isfinite(values)):
        raise FrameValuesError(f"{label}: frame values must be finite, got {values}.")
    return values


def check_distinct(values: Sequence[float], what: str, label: str) -> None:
    """Raise :class:`FrameValuesError` naming the duplicates when ``values`` repeat."""
    seen: set[float] = set()
    dupes = sorted({v for v in values if v in seen or seen.add(v)})
    if dupes:
        raise FrameValuesError(f"{label} has duplicate {what} {dupes} (frame values {list(values)}).")


def set_frame_meta(img: NdarrayOrTensor, axis: str | None, values: Sequence[float]) -> NdarrayOrTensor:
    """Write the frame meta into a MetaTensor (no-op for plain arrays); returns ``img``."""
    if isinstance(img, MetaTensor):
        if axis is not None:
            img.meta[FRAME_AXIS_KEY] = axis
        img.meta[FRAME_VALUES_KEY] = [float(v) for v in values]
    return img


def check_finite(img: NdarrayOrTensor, name: str | None = None) -> None:
    """Raise ``ValueError`` naming the image and counting the voxels when it holds NaN or Inf."""
    t = torch.as_tensor(img)
    if t.is_floating_point() or t.is_complex():
        bad = ~torch.isfinite(t)
        n_bad = int(bad.sum())
        if n_bad:
            n_nan = int(torch.isnan(t).sum())
            raise ValueError(
                f"{describe(img, name)} has {n_bad} non-finite voxels ({n_nan} NaN, {n_bad - n_nan} Inf) of "
                f"{t.numel()}; fix or mask them before normalising."
            )


def pop_own_trace(transform, data) -> dict:
    """Pop the last traced operation of ``data`` after checking it is one of ``transform``'s class.

    MONAI's own check compares instance ids; ours accepts any instance of the same class, so that a pipeline
    rebuilt from a config (or another worker) can invert what an earlier instance did.
    """
    from monai.utils.enums import TraceKeys

    ops = getattr(data, "applied_operations", None)
    name = type(transform).__name__
    if not ops:
        raise ValueError(f"{name}.inverse: the image carries no applied operations to invert.")
    last = ops[-1].get(TraceKeys.CLASS_NAME)
    if last != name:
        raise ValueError(f"{name}.inverse: the last operation applied to the image is {last}, not {name}.")
    return transform.pop_transform(data, check=False)
