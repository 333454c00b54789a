"""Frames of 4D series: sort by frame value, resample in time, check the count a protocol expects.

A 4D sequence is channel-first ``(T, X, Y, Z)`` with ``meta["frame_values"]`` (DCE: seconds after the
pre-contrast frame; DWI: b-values in s/mm^2) and ``meta["frame_axis"]``; see :mod:`.utils`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_tensor, ensure_tuple

from monai_seq2seq.core.errors import FrameValuesError

from .base import PerKeyd
from .utils import check_distinct, describe, get_frame_values, like, set_frame_meta

__all__ = [
    "SortFrames",
    "SortFramesd",
    "ResampleFrames",
    "ResampleFramesd",
    "CheckFrameCount",
    "CheckFrameCountd",
    "SortFramesD",
    "SortFramesDict",
    "ResampleFramesD",
    "ResampleFramesDict",
    "CheckFrameCountD",
    "CheckFrameCountDict",
]


def _with_frames(
    img: NdarrayOrTensor,
    frames: torch.Tensor,
    axis: str | None,
    values: Sequence[float],
    dtype: torch.dtype | None = None,
):
    return set_frame_meta(like(frames, img, dtype=img.dtype if dtype is None else dtype), axis, values)


class SortFrames(Transform):
    """Order the frames of a 4D series by increasing frame value (acquisition time or b-value).

    Args:
        expected_axis: ``"time"`` or ``"bvalue"``; a meta naming the other axis raises.
        frame_values: explicit values (for plain arrays without meta).

    Shapes:
        ``(T, X, Y, Z)`` -> ``(T, X, Y, Z)``; the meta's ``frame_values`` are permuted with the data.

    Raises:
        FrameValuesError: missing values, a count that differs from ``T``, duplicate values.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, expected_axis: str | None = None, frame_values: Sequence[float] | None = None) -> None:
        self.expected_axis = expected_axis
        self.frame_values = frame_values

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        values = get_frame_values(img, self.frame_values, self.expected_axis, name)
        check_distinct(values, "frame values", describe(img, name))
        order = np.argsort(values, kind="stable")
        axis = (getattr(img, "meta", None) or {}).get("frame_axis", self.expected_axis)
        if np.all(order == np.arange(len(values))):
            return set_frame_meta(img, axis, values)
        frames = convert_to_tensor(img, track_meta=False)[torch.as_tensor(order)]
        return _with_frames(img, frames, axis, [values[i] for i in order])


class ResampleFrames(Transform):
    """Linear interpolation along the frame axis to requested frame values (e.g. the protocol's DCE times).

    Acquired frames whose value equals a requested one are copied exactly; the others are interpolated between
    the two bracketing acquired frames.

    Args:
        target_values: requested frame values (seconds for DCE).
        expected_axis: the frame axis the input must have (``None``: any).
        extrapolate: hold the first/last frame for requests outside the acquired range instead of raising.
        frame_values: explicit acquired values, one per frame (for plain arrays without meta).

    Shapes:
        ``(T, X, Y, Z)`` -> ``(len(target_values), X, Y, Z)``, floating point (an integer input gives float32).

    Raises:
        FrameValuesError: missing or duplicate frame values, requests outside the acquired range (unless
            ``extrapolate``; a single acquired frame has a range of one value).
        ValueError: no or non-finite target values.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        target_values: Sequence[float],
        expected_axis: str | None = "time",
        extrapolate: bool = False,
        frame_values: Sequence[float] | None = None,
    ) -> None:
        self.target_values = [float(v) for v in np.asarray(target_values, dtype=np.float64).reshape(-1)]
        if not self.target_values:
            raise ValueError("ResampleFrames needs at least one target value.")
        if not all(np.isfinite(self.target_values)):
            raise ValueError(f"ResampleFrames target values must be finite, got {self.target_values}.")
        self.expected_axis = expected_axis
        self.extrapolate = bool(extrapolate)
        self.frame_values = frame_values

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        label = describe(img, name)
        values = get_frame_values(img, self.frame_values, self.expected_axis, name)
        check_distinct(values, "frame values", label)
        order = np.argsort(values, kind="stable")
        acquired = np.asarray(values)[order]
        targets = np.asarray(self.target_values)
        outside = targets[(targets < acquired[0]) | (targets > acquired[-1])]
        if outside.size and not self.extrapolate:
            if len(acquired) < 2:
                raise FrameValuesError(
                    f"{label}: requested frame values {outside.tolist()} lie outside the acquired range "
                    f"[{acquired[0]}, {acquired[-1]}]: a single frame cannot be interpolated; pass extrapolate=True "
                    "to hold it."
                )
            raise FrameValuesError(
                f"{label}: requested frame values {outside.tolist()} lie outside the acquired range "
                f"[{acquired[0]}, {acquired[-1]}] ({acquired.tolist()}); pass extrapolate=True to hold the end frames."
            )
        n = len(acquired)
        if n == 1:  # every request equals the one frame, or extrapolate holds it
            lower = upper = np.zeros(len(targets), dtype=np.int64)
            weight = np.zeros(len(targets))
        else:
            clamped = np.clip(targets, acquired[0], acquired[-1])
            upper = np.clip(np.searchsorted(acquired, clamped, side="left"), 1, n - 1)
            lower = upper - 1
            weight = (clamped - acquired[lower]) / (acquired[upper] - acquired[lower])
            lower = np.where(weight == 1.0, upper, lower)  # a requested value that was acquired: copy that frame
            weight = np.where(weight == 1.0, 0.0, weight)
        data = convert_to_tensor(img, track_meta=False)[torch.as_tensor(order)]
        data = data if data.is_floating_point() else data.float()
        low = data[torch.as_tensor(lower, device=data.device)]
        w = torch.as_tensor(weight, dtype=data.dtype, device=data.device).reshape(-1, *([1] * (data.ndim - 1)))
        frames = torch.where(w == 0, low, low + w * (data[torch.as_tensor(upper, device=data.device)] - low))
        axis = (getattr(img, "meta", None) or {}).get("frame_axis", self.expected_axis)
        return _with_frames(img, frames, axis, self.target_values, dtype=frames.dtype)


class CheckFrameCount(Transform):
    """Raise :class:`FrameValuesError` when a series does not have the expected number of frames.

    Args:
        expected: the protocol's number of frames ``T``.
        name: label of the image in error messages (a ``name`` given to the call takes precedence).

    Shapes:
        ``(T, X, Y, Z)`` -> the same object.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, expected: int, name: str | None = None) -> None:
        self.expected = int(expected)
        self.name = name

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        if img.shape[0] != self.expected:
            raise FrameValuesError(
                f"{describe(img, name or self.name)} has {img.shape[0]} frames; expected {self.expected} by the "
                "protocol (resample with ResampleFrames / SelectBValues first)."
            )
        return img


class SortFramesd(PerKeyd):
    """Dictionary twin of :class:`SortFrames`.

    Args:
        keys: 4D series keys. expected_axis: see :class:`SortFrames`.
        allow_missing_keys: skip absent keys (a subject without DWI) instead of raising ``KeyError``.
    """

    backend = SortFrames.backend

    def __init__(
        self, keys: KeysCollection, expected_axis: str | None = None, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, SortFrames(expected_axis), allow_missing_keys, named=True)


class ResampleFramesd(PerKeyd):
    """Dictionary twin of :class:`ResampleFrames`.

    Args:
        keys: 4D series keys. target_values, expected_axis, extrapolate: see :class:`ResampleFrames`.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
    """

    backend = ResampleFrames.backend

    def __init__(
        self,
        keys: KeysCollection,
        target_values: Sequence[float],
        expected_axis: str | None = "time",
        extrapolate: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys, ResampleFrames(target_values, expected_axis, extrapolate), allow_missing_keys, named=True
        )


class CheckFrameCountd(PerKeyd):
    """Dictionary twin of :class:`CheckFrameCount`: one expected count per key (or one for all).

    Args:
        keys: 4D series keys. expected: one count for all keys, or one per key in key order.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
    """

    backend = CheckFrameCount.backend

    def __init__(self, keys: KeysCollection, expected: int | Sequence[int], allow_missing_keys: bool = False) -> None:
        keys = ensure_tuple(keys)
        if isinstance(expected, (int, np.integer)):
            counts = [int(expected)] * len(keys)
        else:
            counts = [int(e) for e in expected]
        if len(counts) != len(keys):
            raise ValueError(f"{len(counts)} expected counts for {len(keys)} keys.")
        super().__init__(keys, CheckFrameCount(counts[0]), allow_missing_keys, named=True)
        self.checkers = dict(zip(self.keys, (CheckFrameCount(c) for c in counts), strict=True))

    def transform_for(self, key: Hashable) -> CheckFrameCount:
        return self.checkers[key]


SortFramesD = SortFramesDict = SortFramesd
ResampleFramesD = ResampleFramesDict = ResampleFramesd
CheckFrameCountD = CheckFrameCountDict = CheckFrameCountd
