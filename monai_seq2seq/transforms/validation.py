"""Input checks that fail early with a specific message: grids, finiteness, frame counts, protocol fit.

Every check names the sequence (and its file, when the meta knows it) and says what to do about it. The grid
check can resample to a reference sequence instead of failing, when asked.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, ResampleToMatch, Transform
from monai.utils import TransformBackends

from monai_seq2seq.core.errors import FrameValuesError
from monai_seq2seq.core.protocols import Protocol, SequenceSpec, get_protocol

from .slices import present_keys
from .utils import FRAME_AXIS_KEY, FRAME_VALUES_KEY, check_finite, describe, key_label

__all__ = [
    "GridMismatchError",
    "MatchGrid",
    "MatchGridd",
    "CheckSequence",
    "CheckSequenced",
    "MatchGridD",
    "MatchGridDict",
    "CheckSequenceD",
    "CheckSequenceDict",
]


class GridMismatchError(ValueError):
    """Two sequences of one subject are not on the same voxel grid (shape or affine)."""


def _affine(img: NdarrayOrTensor) -> np.ndarray | None:
    affine = getattr(img, "affine", None)
    return None if affine is None else np.asarray(torch.as_tensor(affine).detach().cpu(), dtype=np.float64)


def grid_difference(img: NdarrayOrTensor, reference: NdarrayOrTensor, atol: float = 1e-3) -> str | None:
    """What differs between the grids of two channel-first images (``None`` when they match)."""
    if tuple(img.shape[1:]) != tuple(reference.shape[1:]):
        return f"spatial shape {tuple(img.shape[1:])} vs {tuple(reference.shape[1:])}"
    a, b = _affine(img), _affine(reference)
    if a is not None and b is not None and not np.allclose(a, b, atol=atol):
        worst = float(np.abs(a - b).max())
        return f"affine differs by up to {worst:.4g} (mm or direction cosine):\n{np.round(a, 4)}\nvs\n{np.round(b, 4)}"
    return None


class MatchGrid(Transform):
    """Check that an image is on a reference image's grid, or resample it there.

    Args:
        mode: ``"raise"``: :class:`GridMismatchError` on any difference; ``"resample"``: resample the image to
            the reference grid (MONAI ``ResampleToMatch``) with ``interp``.
        interp: interpolation when resampling (``"bilinear"`` for images, ``"nearest"`` for labels).
        atol: tolerance on affine entries (mm and direction cosines).

    Shapes:
        ``img`` ``(T, X, Y, Z)``, ``reference`` ``(T', X', Y', Z')`` -> ``(T, X', Y', Z')``.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, mode: str = "raise", interp: str = "bilinear", atol: float = 1e-3) -> None:
        if mode not in ("raise", "resample"):
            raise ValueError(f"mode must be 'raise' or 'resample', got {mode!r}.")
        self.mode = mode
        self.interp = interp
        self.atol = float(atol)
        self.resampler = ResampleToMatch(mode=interp, padding_mode="border")

    def __call__(
        self,
        img: NdarrayOrTensor,
        reference: NdarrayOrTensor,
        name: str | None = None,
        reference_name: str | None = None,
    ) -> NdarrayOrTensor:
        difference = grid_difference(img, reference, self.atol)
        if difference is None:
            return img
        if self.mode == "raise":
            raise GridMismatchError(
                f"{describe(img, name)} is not on the grid of {describe(reference, reference_name)}: {difference}. "
                "Register/resample the sequences first, or resample to the reference with MatchGridd(..., "
                "mode='resample')."
            )
        if not isinstance(img, MetaTensor) or not isinstance(reference, MetaTensor):
            raise GridMismatchError(
                f"{describe(img, name)}: resampling to a reference grid needs MetaTensors with affines ({difference})."
            )
        frame_meta = {k: img.meta[k] for k in (FRAME_AXIS_KEY, FRAME_VALUES_KEY) if k in img.meta}
        out = self.resampler(img, reference)
        out.meta.update(frame_meta)
        return out


class MatchGridd(MapTransform):
    """Dictionary twin of :class:`MatchGrid`: every present key against ``reference_key``.

    Args:
        keys: sequence keys (and labels: give them in ``label_keys`` to resample them with nearest neighbours).
        reference_key: the sequence whose grid the others must share; ``None``: the first present key.
        mode, atol: see :class:`MatchGrid`.
        label_keys: keys resampled with nearest-neighbour interpolation.
        allow_missing_keys: skip absent keys instead of raising ``KeyError`` (keys left out of
            ``data["available"]`` are always skipped).
    """

    backend = MatchGrid.backend

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str | None = None,
        mode: str = "raise",
        atol: float = 1e-3,
        label_keys: KeysCollection = ("label",),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference_key = reference_key
        self.label_keys = {label_keys} if isinstance(label_keys, str) else set(label_keys)
        self.images = MatchGrid(mode, "bilinear", atol)
        self.labels = MatchGrid(mode, "nearest", atol)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = present_keys(d, list(self.key_iterator(d)))
        ref_key = self.reference_key if self.reference_key is not None else (keys[0] if keys else None)
        if ref_key is None:
            return d
        if ref_key not in d:
            raise KeyError(f"reference sequence {ref_key!r} is missing from subject {d.get('subject', '?')!r}.")
        for key in keys:
            if key != ref_key:
                matcher = self.labels if key in self.label_keys else self.images
                d[key] = matcher(d[key], d[ref_key], name=str(key), reference_name=str(ref_key))
        return d


class CheckSequence(Transform):
    """Check one sequence against its protocol entry: finite, not constant, the frame count and axis it expects.

    Args:
        spec: the sequence's :class:`~monai_seq2seq.core.protocols.SequenceSpec` (from ``protocol[name]``).
        check_constant: refuse images whose voxels all have one value.

    Shapes:
        ``(T, X, Y, Z)`` -> the same object (checks only).

    Raises:
        ValueError: not 4D channel-first, NaN/Inf, constant.
        FrameValuesError: ``T`` differs from ``spec.frames``; the frame axis in the meta contradicts the spec.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, spec: SequenceSpec, check_constant: bool = True) -> None:
        self.spec = spec
        self.check_constant = bool(check_constant)

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        label = describe(img, name or self.spec.name)
        if img.ndim != 4:
            raise ValueError(f"{label}: expected a channel-first (T, X, Y, Z) image, got shape {tuple(img.shape)}.")
        check_finite(img, label)
        t = torch.as_tensor(img)
        if self.check_constant and t.numel() and bool((t == t.reshape(-1)[0]).all()):
            raise ValueError(f"{label} is constant ({float(t.reshape(-1)[0])} everywhere): an empty or blank series.")
        if img.shape[0] != self.spec.frames:
            hint = " Resample its frames (ResampleFrames / SelectBValues) first." if self.spec.is_4d else ""
            raise FrameValuesError(
                f"{label} has {img.shape[0]} frames; sequence {self.spec.name!r} of the protocol expects "
                f"{self.spec.frames}{f' {self.spec.frame_axis} values' if self.spec.is_4d else ''}.{hint}"
            )
        axis = (getattr(img, "meta", None) or {}).get(FRAME_AXIS_KEY)
        if self.spec.is_4d and axis is not None and axis != self.spec.frame_axis:
            raise FrameValuesError(
                f"{label}: frame axis {axis!r} in its meta, the protocol says {self.spec.frame_axis!r}."
            )
        return img


class CheckSequenced(MapTransform):
    """Dictionary twin of :class:`CheckSequence`: every present sequence of a subject, plus a minimum count.

    Args:
        protocol: registered name, :class:`Protocol` or file; gives each key's expected frames.
        keys: keys to check (``None``: the protocol's names).
        min_available: raise when the subject has fewer sequences (2: a translation needs a source and a target).
        check_constant: see :class:`CheckSequence`.

    Absent keys are skipped always (no ``allow_missing_keys``): which of the protocol's sequences a subject has is
    what this transform checks, against ``min_available``.
    """

    backend = CheckSequence.backend

    def __init__(
        self,
        protocol: str | Protocol = "brain",
        keys: KeysCollection | None = None,
        min_available: int = 1,
        check_constant: bool = True,
    ) -> None:
        self.protocol = get_protocol(protocol)
        super().__init__(self.protocol.names if keys is None else keys, allow_missing_keys=True)
        self.min_available = int(min_available)
        self.check_constant = check_constant

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = present_keys(d, list(self.key_iterator(d)))
        if len(keys) < self.min_available:
            raise ValueError(
                f"subject {d.get('subject', '?')!r} has {len(keys)} sequence(s) {keys} of {self.protocol.names}; "
                f"at least {self.min_available} are needed."
            )
        for key in keys:
            CheckSequence(self.protocol[str(key)], self.check_constant)(d[key], name=key_label(key, d[key]))
        return d


MatchGridD = MatchGridDict = MatchGridd
CheckSequenceD = CheckSequenceDict = CheckSequenced
