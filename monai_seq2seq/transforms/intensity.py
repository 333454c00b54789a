"""Intensity transforms: per-series percentile scaling to [0, 1] and the network's [-1, 1] range, both invertible.

The paper clips each sequence at percentiles and scales it to [0, 1]; a 4D series (DCE, DWI) gets ONE scale for
all its frames, so contrast enhancement and diffusion decay survive normalisation. The numbers equal MONAI's
``ScaleIntensityRangePercentiles(lower, upper, 0, 1, clip=True, channel_wise=False)``; unlike it, these
transforms refuse NaN/Inf and constant images, and record the scale so that a synthetic image can be mapped
back to the intensities of the source scanner. Maps of physical ratios (wash-in/out) take a fixed window instead
(``fixed_range``; a protocol's ``intensity_window``): their percentiles are set by noise.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import InvertibleTransform
from monai.transforms.utils_pytorch_numpy_unification import clip, percentile
from monai.utils import TransformBackends
from monai.utils.enums import TraceKeys

from .base import InvertiblePerKeyd
from .utils import check_finite, describe, like, pop_own_trace

__all__ = [
    "INTENSITY_RANGE_KEY",
    "PercentileScaleIntensity",
    "PercentileScaleIntensityd",
    "ToSymmetricRange",
    "ToSymmetricRanged",
    "FromSymmetricRange",
    "FromSymmetricRanged",
    "PercentileScaleIntensityD",
    "PercentileScaleIntensityDict",
    "ToSymmetricRangeD",
    "ToSymmetricRangeDict",
    "FromSymmetricRangeD",
    "FromSymmetricRangeDict",
]

INTENSITY_RANGE_KEY = "intensity_range"
"""Meta key of the source intensities mapped to 0 and 1 by :class:`PercentileScaleIntensity`."""


class PercentileScaleIntensity(InvertibleTransform):
    """Clip a sequence at two percentiles and scale it linearly to [0, 1]; one scale for all frames.

    Args:
        lower: lower percentile in [0, 100) (paper: 0.5).
        upper: upper percentile in (lower, 100] (paper: 99.5).
        clip: clip the output to [0, 1].
        nonzero: compute the percentiles over non-zero voxels only (background-heavy volumes).
        name: label of the image in error messages (default: its file name from the meta).
        fixed_range: ``(low, high)`` to map to [0, 1] instead of the percentiles, for maps of physical ratios
            (wash-in/out: a protocol's ``intensity_window``), whose percentiles are set by noise.

    Shapes:
        ``(T, X, Y, Z)`` (or any channel-first shape) -> same shape, float32.

    Raises:
        ValueError: NaN/Inf voxels, or a constant image (no range to scale).

    ``inverse`` maps [0, 1] back to source intensities (clipped tails stay clipped); it needs a MetaTensor that
    went through this transform, or the ``(low, high)`` passed to :meth:`unscale`.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        lower: float = 0.5,
        upper: float = 99.5,
        clip: bool = True,
        nonzero: bool = False,
        name: str | None = None,
        fixed_range: tuple[float, float] | None = None,
    ) -> None:
        if not 0.0 <= lower < upper <= 100.0:
            raise ValueError(f"need 0 <= lower < upper <= 100, got lower={lower}, upper={upper}.")
        if fixed_range is not None:
            fixed_range = tuple(float(v) for v in fixed_range)
            if len(fixed_range) != 2 or not fixed_range[0] < fixed_range[1]:
                raise ValueError(f"fixed_range must be (low, high) with low < high, got {fixed_range}.")
        self.fixed_range = fixed_range
        self.lower = float(lower)
        self.upper = float(upper)
        self.clip = bool(clip)
        self.nonzero = bool(nonzero)
        self.name = name

    def intensity_range(self, img: NdarrayOrTensor, name: str | None = None) -> tuple[float, float]:
        """``(low, high)``: the source intensities at the two percentiles (or ``fixed_range``).

        Raises:
            ValueError: non-finite voxels, no non-zero voxel (``nonzero``), or ``low == high``.
        """
        name = name or self.name
        check_finite(img, name)
        if self.fixed_range is not None:
            return self.fixed_range
        values = img
        if self.nonzero:
            values = img[img != 0]
            if values.shape[0] == 0:
                raise ValueError(f"{describe(img, name)} has no non-zero voxel to take percentiles over.")
        low, high = (float(v) for v in percentile(values, [self.lower, self.upper]))
        if not high > low:
            raise ValueError(
                f"{describe(img, name)} is constant between its {self.lower} and {self.upper} percentiles "
                f"(both {low}); a constant image cannot be normalised (is it empty or a mask?)."
            )
        return low, high

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        low, high = self.intensity_range(img, name)
        out = (img - low) / (high - low)
        if self.clip:
            out = clip(out, 0.0, 1.0)
        out = like(out, img, dtype=torch.float32)
        if isinstance(out, MetaTensor):
            out.meta[INTENSITY_RANGE_KEY] = [low, high]
            self.push_transform(out, extra_info={"low": low, "high": high})
        return out

    @staticmethod
    def unscale(img: NdarrayOrTensor, low: float, high: float) -> NdarrayOrTensor:
        """[0, 1] -> source intensities: ``img * (high - low) + low``."""
        return img * (high - low) + low

    def inverse(self, data: NdarrayOrTensor) -> NdarrayOrTensor:
        if not isinstance(data, MetaTensor):
            raise ValueError(
                "PercentileScaleIntensity.inverse needs the MetaTensor it produced (its scale travels in the "
                "trace); for a plain tensor use PercentileScaleIntensity.unscale(img, low, high)."
            )
        info = pop_own_trace(self, data)[TraceKeys.EXTRA_INFO]
        out = self.unscale(data, info["low"], info["high"])
        out.meta.pop(INTENSITY_RANGE_KEY, None)
        return out


class _AffineRange(InvertibleTransform):
    """``y = scale * x + shift`` with its exact inverse."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]
    scale = 1.0
    shift = 0.0

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        out = img * self.scale + self.shift
        if isinstance(out, MetaTensor):
            self.push_transform(out)
        return out

    def inverse(self, data: NdarrayOrTensor) -> NdarrayOrTensor:
        if isinstance(data, MetaTensor) and data.applied_operations:
            pop_own_trace(self, data)
        return (data - self.shift) / self.scale


class ToSymmetricRange(_AffineRange):
    """[0, 1] -> [-1, 1], the range of the network's tanh output: ``y = 2 x - 1``. Shapes unchanged."""

    scale = 2.0
    shift = -1.0


class FromSymmetricRange(_AffineRange):
    """[-1, 1] -> [0, 1] for network outputs: ``y = (x + 1) / 2``. Shapes unchanged."""

    scale = 0.5
    shift = 0.5


class PercentileScaleIntensityd(InvertiblePerKeyd):
    """Dictionary twin of :class:`PercentileScaleIntensity`: each key gets its own scale (one per series).

    Args:
        keys, lower, upper, clip, nonzero: as :class:`PercentileScaleIntensity`.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
        fixed_ranges: ``{key: (low, high)}`` of keys mapped by a fixed window instead of their percentiles,
            e.g. ``get_protocol("breast").intensity_windows()`` for the wash-in/out ratios.
    """

    backend = PercentileScaleIntensity.backend

    def __init__(
        self,
        keys: KeysCollection,
        lower: float = 0.5,
        upper: float = 99.5,
        clip: bool = True,
        nonzero: bool = False,
        allow_missing_keys: bool = False,
        fixed_ranges: Mapping[Hashable, tuple[float, float]] | None = None,
    ) -> None:
        super().__init__(keys, PercentileScaleIntensity(lower, upper, clip, nonzero), allow_missing_keys, named=True)
        self.windowed = {
            key: PercentileScaleIntensity(lower, upper, clip, nonzero, fixed_range=window)
            for key, window in (fixed_ranges or {}).items()
        }

    def transform_for(self, key: Hashable) -> PercentileScaleIntensity:
        return self.windowed.get(key, self.transform)


class ToSymmetricRanged(InvertiblePerKeyd):
    """Dictionary twin of :class:`ToSymmetricRange` (``allow_missing_keys``: skip absent keys)."""

    backend = ToSymmetricRange.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, ToSymmetricRange(), allow_missing_keys)


class FromSymmetricRanged(InvertiblePerKeyd):
    """Dictionary twin of :class:`FromSymmetricRange` (``allow_missing_keys``: skip absent keys)."""

    backend = FromSymmetricRange.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, FromSymmetricRange(), allow_missing_keys)


PercentileScaleIntensityD = PercentileScaleIntensityDict = PercentileScaleIntensityd
ToSymmetricRangeD = ToSymmetricRangeDict = ToSymmetricRanged
FromSymmetricRangeD = FromSymmetricRangeDict = FromSymmetricRanged
