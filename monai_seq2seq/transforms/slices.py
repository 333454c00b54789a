"""2.5D transforms: adjacent slices as channels, and the exact reassembly of a volume from slice predictions.

Layouts (CONTRACTS.md): a sequence is channel-first ``(T, X, Y, Z)``. Along a chosen spatial ``axis`` of depth
``D``, :class:`VolumeToSlices` gives every slice with ``num_slices // 2`` neighbours on each side as channels,
``(D, T, num_slices, H, W)`` (edges replicate), the layout the network takes as a batch; :class:`SlicesToVolume`
takes per-slice predictions ``(D, T', C, H, W)`` (or ``(D, T', H, W)``) back to ``(T', X, Y, Z)``, exactly:
``SlicesToVolume()(VolumeToSlices()(v)) == v``. :class:`Slices25D` draws one training stack ``(T, C, H, W)``
at a random position, the same position and crop for every sequence in :class:`Slices25Dd`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import InvertibleTransform, MapTransform, Randomizable, Transform
from monai.utils import TransformBackends
from monai.utils.enums import TraceKeys

from .base import InvertiblePerKeyd, PerKeyd
from .slabs import slabs_to_volume, volume_to_slabs
from .utils import like, pop_own_trace

__all__ = [
    "VolumeToSlices",
    "VolumeToSlicesd",
    "SlicesToVolume",
    "SlicesToVolumed",
    "Slices25D",
    "Slices25Dd",
    "VolumeToSlicesD",
    "VolumeToSlicesDict",
    "SlicesToVolumeD",
    "SlicesToVolumeDict",
    "Slices25DD",
    "Slices25DDict",
    "present_keys",
]


def present_keys(data: Mapping, keys: Sequence[Hashable]) -> list[Hashable]:
    """Keys of ``keys`` that hold an image and are listed in ``data["available"]`` when that exists."""
    available = data.get("available")
    out = [k for k in keys if k in data and data[k] is not None]
    if available is not None:
        out = [k for k in out if k in available]
    return out


def _check_odd(num_slices: int) -> int:
    if num_slices < 1 or num_slices % 2 == 0:
        raise ValueError(f"num_slices must be odd and >= 1 (a centre slice and its neighbours), got {num_slices}.")
    return int(num_slices)


def _spatial_axis(axis: int) -> int:
    if axis not in (-3, -2, -1, 0, 1, 2):
        raise ValueError(f"axis must be a spatial axis 0, 1, 2 (or -3..-1) of (T, X, Y, Z), got {axis}.")
    return int(axis) % 3


def _plain(img: Any) -> torch.Tensor:
    t = torch.as_tensor(img)
    return t.as_tensor() if isinstance(t, MetaTensor) else t


class VolumeToSlices(InvertibleTransform):
    """Every slice along ``axis`` with its neighbours as channels.

    Args:
        axis: spatial axis of ``(X, Y, Z)`` to slice along (-1: Z, axial slices of our layouts).
        num_slices: odd number of adjacent slices per stack (3 in the paper's 2.5D mode).

    Shapes:
        ``(T, X, Y, Z)`` -> ``(D, T, num_slices, H, W)``, ``D`` the size of ``axis``, ``(H, W)`` the other two
        axes in order. A MetaTensor output keeps the volume's meta; ``inverse`` returns the volume.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, axis: int = -1, num_slices: int = 3) -> None:
        self.axis = _spatial_axis(axis)
        self.num_slices = _check_odd(num_slices)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4:
            raise ValueError(f"VolumeToSlices expects a channel-first (T, X, Y, Z) image, got {tuple(img.shape)}.")
        volume = _plain(img).movedim(1 + self.axis, -1)
        slabs = volume_to_slabs(volume, self.num_slices // 2).contiguous()
        if not isinstance(img, MetaTensor):
            return slabs
        out = like(slabs, img)
        self.push_transform(out, extra_info={"axis": self.axis})
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        axis = self.axis
        if isinstance(data, MetaTensor) and data.applied_operations:
            axis = pop_own_trace(self, data)[TraceKeys.EXTRA_INFO]["axis"]
        return SlicesToVolume(axis=axis)(data)


class SlicesToVolume(Transform):
    """Reassemble a volume from per-slice 2.5D predictions.

    Args:
        axis: the spatial axis the slices were taken along (as in :class:`VolumeToSlices`).
        mode: ``"middle"``: each stack's centre channel (exact inverse of :class:`VolumeToSlices`); ``"mean"``:
            average every prediction of a slice from the overlapping stacks.

    Shapes:
        ``(D, T, C, H, W)`` (C odd) or ``(D, T, H, W)`` (one channel per slice) -> ``(T, X, Y, Z)``.
        A MetaTensor input keeps its meta (the volume's, from :class:`VolumeToSlices`).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, axis: int = -1, mode: str = "middle") -> None:
        if mode not in ("middle", "mean"):
            raise ValueError(f"mode must be 'middle' or 'mean', got {mode!r}.")
        self.axis = _spatial_axis(axis)
        self.mode = mode

    def __call__(self, slices: torch.Tensor) -> torch.Tensor:
        data = _plain(slices)
        if data.ndim == 4:
            data = data.unsqueeze(2)
        if data.ndim != 5 or data.shape[2] % 2 == 0:
            raise ValueError(
                f"SlicesToVolume expects (D, T, C, H, W) with odd C or (D, T, H, W), got {tuple(slices.shape)}."
            )
        volume = slabs_to_volume(data, self.mode).movedim(-1, 1 + self.axis).contiguous()
        return like(volume, slices) if isinstance(slices, MetaTensor) else volume


class VolumeToSlicesd(InvertiblePerKeyd):
    """Dictionary twin of :class:`VolumeToSlices` (``allow_missing_keys``: skip absent keys)."""

    backend = VolumeToSlices.backend

    def __init__(
        self, keys: KeysCollection, axis: int = -1, num_slices: int = 3, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, VolumeToSlices(axis, num_slices), allow_missing_keys)


class SlicesToVolumed(PerKeyd):
    """Dictionary twin of :class:`SlicesToVolume` (``allow_missing_keys``: skip absent keys)."""

    backend = SlicesToVolume.backend

    def __init__(
        self, keys: KeysCollection, axis: int = -1, mode: str = "middle", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, SlicesToVolume(axis, mode), allow_missing_keys)


class Slices25D(Randomizable, Transform):
    """One 2.5D training stack: ``num_slices`` adjacent slices at one position and an in-plane crop.

    Args:
        num_slices: odd number of adjacent slices stacked as channels (paper: 3).
        axis: spatial axis to slice along (-1: Z).
        roi_size: in-plane crop ``(H, W)``; planes smaller than it are padded with the image minimum. ``None``:
            the whole plane.
        random: random slice position (uniform inside ``margin``) and crop; ``False``: central ones.
        margin: fraction of slices at each end never drawn (the empty ends of a head or breast volume).

    Shapes:
        ``(T, X, Y, Z)`` -> ``(T, num_slices, H, W)`` float32.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        num_slices: int = 3,
        axis: int = -1,
        roi_size: Sequence[int] | None = None,
        random: bool = True,
        margin: float = 0.15,
    ) -> None:
        if not 0 <= margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {margin}.")
        self.num_slices = _check_odd(num_slices)
        self.axis = _spatial_axis(axis)
        self.roi_size = None if roi_size is None else tuple(int(s) for s in roi_size)
        self.random = bool(random)
        self.margin = float(margin)
        self._index: np.ndarray | None = None
        self._starts: list[int] = [0, 0]
        self._roi: tuple[int, int] = (0, 0)

    def _start(self, size: int, roi: int) -> int:
        if size <= roi:
            return 0
        return int(self.R.randint(0, size - roi + 1)) if self.random else (size - roi) // 2

    def randomize(self, spatial_shape: Sequence[int], focus: Sequence[int] | None = None) -> None:
        """Draw the slice position and crop for a ``(X, Y, Z)`` grid (shared by every image cut next).

        Args:
            spatial_shape: ``(X, Y, Z)``.
            focus: optional voxel ``(x, y, z)``: the stack and crop are centred on it (clipped to the grid)
                instead of drawn; see :class:`Slices25Dd`'s ``focus_prob``.
        """
        half = self.num_slices // 2
        depth = spatial_shape[self.axis]
        low = max(half, int(np.floor(self.margin * depth)))
        high = min(depth - 1 - half, int(np.ceil((1 - self.margin) * depth)) - 1)
        if high < low:
            low = high = depth // 2
        plane = [s for a, s in enumerate(spatial_shape) if a != self.axis]
        self._roi = tuple(plane) if self.roi_size is None else self.roi_size
        if focus is not None:
            centre = int(np.clip(focus[self.axis], half, max(half, depth - 1 - half)))
            inplane = [int(v) for a, v in enumerate(focus) if a != self.axis]
            self._starts = [
                int(np.clip(c - r // 2, 0, max(0, n - r))) for c, r, n in zip(inplane, self._roi, plane, strict=True)
            ]
        else:
            centre = int(self.R.randint(low, high + 1)) if self.random else (low + high) // 2
            self._starts = [self._start(plane[0], self._roi[0]), self._start(plane[1], self._roi[1])]
        self._index = np.clip(np.arange(centre - half, centre + half + 1), 0, depth - 1)

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if img.ndim != 4:
            raise ValueError(f"Slices25D expects a channel-first (T, X, Y, Z) image, got {tuple(img.shape)}.")
        if randomize or self._index is None:
            self.randomize(img.shape[1:])
        (r0, r1), (s0, s1) = self._roi, self._starts
        stack = _plain(img).float().movedim(1 + self.axis, 1)[:, torch.as_tensor(self._index)]
        stack = stack[:, :, s0 : s0 + r0, s1 : s1 + r1]
        pad = [0, max(0, r1 - stack.shape[3]), 0, max(0, r0 - stack.shape[2])]
        if any(pad):
            stack = torch.nn.functional.pad(stack, pad, value=float(stack.min()))
        return stack.contiguous()


class Slices25Dd(Randomizable, MapTransform):
    """Dictionary twin of :class:`Slices25D`: one position and crop for every sequence of the subject.

    Sequences left out of ``data["available"]`` are skipped; present ones must share one grid. Args as
    :class:`Slices25D`, plus ``keys`` and ``allow_missing_keys`` (skip absent keys instead of raising ``KeyError``;
    pass ``True`` after :class:`~monai_seq2seq.transforms.RandSilenceSequencesd`, which deletes keys), and:

    Args:
        focus_key: a label map on the same grid (e.g. ``"label"``); with ``focus_prob`` it steers stacks to
            labelled voxels, as MONAI's ``RandCropByPosNegLabeld`` does crops: small regions (an enhancing
            tumour, a haemorrhage) are otherwise in few random stacks. A sample without the key is cut as usual.
        focus_prob: probability that a stack is centred on a random voxel of ``focus_labels`` (0: never, the
            default: then the random stream is the same as without focusing).
        focus_labels: label values to centre on; ``None``: any non-zero value.
    """

    backend = Slices25D.backend

    def __init__(
        self,
        keys: KeysCollection,
        num_slices: int = 3,
        axis: int = -1,
        roi_size: Sequence[int] | None = None,
        random: bool = True,
        margin: float = 0.15,
        allow_missing_keys: bool = False,
        focus_key: str | None = None,
        focus_prob: float = 0.0,
        focus_labels: Sequence[int] | None = None,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not 0.0 <= float(focus_prob) <= 1.0:
            raise ValueError(f"focus_prob must be in [0, 1], got {focus_prob}.")
        self.cutter = Slices25D(num_slices, axis, roi_size, random, margin)
        self.focus_key = focus_key
        self.focus_prob = float(focus_prob)
        self.focus_labels = None if focus_labels is None else [int(v) for v in focus_labels]

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Slices25Dd:
        super().set_random_state(seed, state)
        self.cutter.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        self.cutter.randomize(data)

    def _focus(self, d: Mapping, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """A random labelled voxel to centre the stack on, or ``None`` (drawn only when focusing is on)."""
        if self.focus_prob <= 0.0 or not self.cutter.random or d.get(self.focus_key) is None:
            return None
        if self.R.rand() >= self.focus_prob:
            return None
        label = torch.as_tensor(_plain(d[self.focus_key]))
        label = label.reshape(-1, *label.shape[-3:])[0]
        if tuple(label.shape) != shape:
            raise ValueError(
                f"{self.focus_key}: label grid {tuple(label.shape)} differs from the sequences' {shape}; "
                "resample it with them or leave focus_prob at 0."
            )
        hits = label != 0 if self.focus_labels is None else torch.isin(label, torch.tensor(self.focus_labels))
        voxels = torch.nonzero(hits)
        if voxels.shape[0] == 0:
            return None
        return tuple(int(v) for v in voxels[int(self.R.randint(voxels.shape[0]))])

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        keys = present_keys(d, list(self.key_iterator(d)))
        if not keys:
            return d
        shape = tuple(d[keys[0]].shape[1:])
        if len(shape) != 3:
            raise ValueError(f"{keys[0]}: expected a channel-first (T, X, Y, Z) image, got {tuple(d[keys[0]].shape)}.")
        for key in keys[1:]:
            if tuple(d[key].shape[1:]) != shape:
                raise ValueError(
                    f"sequences must share one grid: {keys[0]} {shape}, {key} {tuple(d[key].shape[1:])}; "
                    "resample them first (monai_seq2seq.transforms.MatchGridd)."
                )
        self.cutter.R = self.R
        self.cutter.randomize(shape, self._focus(d, shape))
        for key in keys:
            d[key] = self.cutter(d[key], randomize=False)
        return d


VolumeToSlicesD = VolumeToSlicesDict = VolumeToSlicesd
SlicesToVolumeD = SlicesToVolumeDict = SlicesToVolumed
Slices25DD = Slices25DDict = Slices25Dd
