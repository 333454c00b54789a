"""Frame-consistent spatial augmentation: one random crop, flip and affine for every frame of every sequence.

A translation network learns voxel-to-voxel correspondences, so a subject's sequences (and a 4D series' frames)
must move together. Frames sit on the channel axis, so MONAI's spatial transforms already treat them alike; the
dictionary version draws the parameters once per subject and applies them to every sequence and label key,
with nearest-neighbour interpolation for labels. Both are invertible through MONAI's trace.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import (
    Compose,
    InvertibleTransform,
    MapTransform,
    RandAffined,
    RandFlipd,
    Randomizable,
    RandSpatialCropd,
)
from monai.utils import TransformBackends, ensure_tuple

from .slices import present_keys
from .validation import grid_difference

__all__ = [
    "RandFrameSpatialAugment",
    "RandSubjectSpatialAugmentd",
    "RandSubjectSpatialAugmentD",
    "RandSubjectSpatialAugmentDict",
]

_IMG = "img"


def _pipeline(
    keys: Sequence[Hashable],
    modes: Sequence[str],
    roi_size,
    flip_prob: float,
    flip_axes: Sequence[int],
    affine_prob: float,
    rotate_range,
    scale_range,
    translate_range,
) -> Compose:
    transforms: list = []
    if roi_size is not None:
        transforms.append(RandSpatialCropd(keys, roi_size=roi_size, random_size=False, allow_missing_keys=True))
    for axis in flip_axes:
        transforms.append(RandFlipd(keys, prob=flip_prob, spatial_axis=axis, allow_missing_keys=True))
    if affine_prob > 0:
        transforms.append(
            RandAffined(
                keys,
                prob=affine_prob,
                rotate_range=rotate_range,
                scale_range=scale_range,
                translate_range=translate_range,
                mode=list(modes),
                padding_mode="border",
                allow_missing_keys=True,
            )
        )
    return Compose(transforms)


class RandSubjectSpatialAugmentd(Randomizable, MapTransform, InvertibleTransform):
    """One random crop, flips and affine per subject, applied identically to all its sequences and labels.

    Args:
        keys: sequence keys (missing ones are skipped; present ones must share one grid).
        label_keys: keys resampled with nearest neighbours (segmentations).
        roi_size: random crop size ``(X, Y, Z)``; ``None``: no crop.
        flip_prob: probability of a flip along each of ``flip_axes``.
        flip_axes: spatial axes that may flip (left-right is axis 0 in RAS layouts).
        affine_prob: probability of a random affine (0: none).
        rotate_range, scale_range, translate_range: as MONAI's ``RandAffine`` (radians, fractions, voxels).

    Absent keys are always skipped (no ``allow_missing_keys``): a subject need not have every sequence, nor a label.

    Shapes:
        ``(T, X, Y, Z)`` per key -> ``(T, *roi_size)`` (or unchanged size without crop).

    Raises:
        GridMismatchError-like ``ValueError``: present sequences on different grids.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        keys: KeysCollection,
        label_keys: KeysCollection = ("label",),
        roi_size: Sequence[int] | None = None,
        flip_prob: float = 0.5,
        flip_axes: Sequence[int] = (0,),
        affine_prob: float = 0.0,
        rotate_range: Any = 0.1,
        scale_range: Any = 0.1,
        translate_range: Any = None,
    ) -> None:
        labels = [label_keys] if isinstance(label_keys, str) else list(label_keys)
        MapTransform.__init__(self, list(ensure_tuple(keys)) + labels, allow_missing_keys=True)
        self.label_keys = set(labels)
        self.options = dict(
            roi_size=roi_size,
            flip_prob=float(flip_prob),
            flip_axes=tuple(flip_axes),
            affine_prob=float(affine_prob),
            rotate_range=rotate_range,
            scale_range=scale_range,
            translate_range=translate_range,
        )
        self._pipelines: dict[tuple, Compose] = {}

    def _pipeline_for(self, keys: Sequence[Hashable]) -> Compose:
        signature = tuple(keys)
        if signature not in self._pipelines:
            modes = ["nearest" if k in self.label_keys else "bilinear" for k in keys]
            self._pipelines[signature] = _pipeline(keys, modes, **self.options)
        return self._pipelines[signature]

    def randomize(self, data: Any = None) -> None:  # drawn by the inner MONAI transforms from self.R
        pass

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        sequences = [k for k in self.keys if k not in self.label_keys]
        keys = present_keys(d, sequences) + [k for k in self.keys if k in self.label_keys and d.get(k) is not None]
        if not keys:
            return d
        for key in keys[1:]:
            difference = grid_difference(d[key], d[keys[0]])
            if difference is not None:
                raise ValueError(
                    f"frame-consistent augmentation needs one grid for the whole subject: {key} vs {keys[0]}: "
                    f"{difference}. Resample first (MatchGridd(..., mode='resample'))."
                )
        pipeline = self._pipeline_for(keys)
        pipeline.set_random_state(state=self.R)
        return pipeline(d)

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = [k for k in self.keys if k in d]
        return self._pipeline_for(keys).inverse(d)


class RandFrameSpatialAugment(Randomizable, InvertibleTransform):
    """Array version of :class:`RandSubjectSpatialAugmentd` for one 4D series: every frame moves alike.

    Args and shapes as :class:`RandSubjectSpatialAugmentd` (``interp`` replaces the label handling).
    """

    backend = RandSubjectSpatialAugmentd.backend

    def __init__(
        self,
        roi_size: Sequence[int] | None = None,
        flip_prob: float = 0.5,
        flip_axes: Sequence[int] = (0,),
        affine_prob: float = 0.0,
        rotate_range: Any = 0.1,
        scale_range: Any = 0.1,
        translate_range: Any = None,
        interp: str = "bilinear",
    ) -> None:
        self.pipeline = _pipeline(
            [_IMG],
            [interp],
            roi_size,
            float(flip_prob),
            tuple(flip_axes),
            float(affine_prob),
            rotate_range,
            scale_range,
            translate_range,
        )

    def randomize(self, data: Any = None) -> None:
        pass

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        self.pipeline.set_random_state(state=self.R)
        return self.pipeline({_IMG: img})[_IMG]

    def inverse(self, data: NdarrayOrTensor) -> NdarrayOrTensor:
        return self.pipeline.inverse({_IMG: data})[_IMG]


RandSubjectSpatialAugmentD = RandSubjectSpatialAugmentDict = RandSubjectSpatialAugmentd
