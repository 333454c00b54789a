"""Data-side helpers of training: one 2.5D slice stack per sequence at one shared position, and a collate
that keeps an availability mask.

Sample in (CONTRACTS.md): one channel-first ``(T, X, Y, Z)`` image per available sequence plus ``"available"``.
Sample out of :class:`Slices25Dd`: one ``(T, C, H, W)`` tensor per available sequence (C = ``num_slices``
adjacent slices along ``axis``), the same slice position and in-plane crop for every sequence of the subject.
Batch out of :func:`availability_collate`: ``(B, T, C, H, W)`` per sequence present in at least one sample
(zeros where a sample lacks it, flagged 0 in the mask), ``"available_mask"`` bool ``(B, S)`` in protocol
order, and ``"subject"`` (list of ids).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

__all__ = ["Slices25Dd", "RandSilenced", "availability_collate", "AvailabilityCollate", "MASK_KEY"]

MASK_KEY = "available_mask"


def _present(data: Mapping, keys: Sequence[Hashable]) -> list[Hashable]:
    available = data.get("available")
    out = [k for k in keys if k in data and data[k] is not None]
    if available is not None:
        out = [k for k in out if k in available]
    return out


class Slices25Dd(Randomizable, MapTransform):
    """Cut ``num_slices`` adjacent slices at one position, identical for all sequences, into network layout.

    Args:
        keys: sequence keys (missing ones are skipped).
        num_slices: adjacent slices stacked as channels (3 in the paper's 2.5D mode).
        axis: spatial axis to slice along (0, 1 or 2 of X, Y, Z; -1 = Z, the axial slices of our layouts).
        roi_size: in-plane crop size ``(H, W)``; images smaller than it are padded with their minimum.
            ``None``: the full plane.
        random: random slice position (uniform inside ``margin``) and random crop; ``False``: central ones.
        margin: fraction of the slices at each end never drawn (empty edges of the volume).
        allow_missing_keys: no error for absent keys (they are skipped anyway).

    Shapes:
        in: ``(T, X, Y, Z)`` per key. out: ``(T, num_slices, H, W)`` float32 tensors.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_slices: int = 3,
        axis: int = -1,
        roi_size: Sequence[int] | None = None,
        random: bool = True,
        margin: float = 0.15,
        allow_missing_keys: bool = True,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if num_slices < 1 or num_slices % 2 == 0:
            raise ValueError(f"num_slices must be odd and >= 1, got {num_slices}.")
        if not 0 <= margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {margin}.")
        self.num_slices = int(num_slices)
        self.axis = int(axis) % 3
        self.roi_size = None if roi_size is None else tuple(int(s) for s in roi_size)
        self.random = bool(random)
        self.margin = float(margin)

    def randomize(self, data: Any = None) -> None:  # positions drawn in __call__ from self.R
        pass

    def _position(self, size: int, roi: int) -> int:
        """Start of a crop of ``roi`` in ``size`` (0 when padding)."""
        if size <= roi:
            return 0
        return int(self.R.randint(0, size - roi + 1)) if self.random else (size - roi) // 2

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        keys = _present(d, self.key_iterator(d))
        if not keys:
            return d
        shape = tuple(d[keys[0]].shape[1:])
        if len(shape) != 3:
            raise ValueError(f"{keys[0]}: expected a channel-first (T, X, Y, Z) image, got {tuple(d[keys[0]].shape)}.")
        for key in keys:
            if tuple(d[key].shape[1:]) != shape:
                raise ValueError(f"sequences must share one grid: {keys[0]} {shape}, {key} {tuple(d[key].shape[1:])}.")
        half = self.num_slices // 2
        depth = shape[self.axis]
        low = max(half, int(np.floor(self.margin * depth)))
        high = min(depth - 1 - half, int(np.ceil((1 - self.margin) * depth)) - 1)
        if high < low:
            low = high = depth // 2
        centre = int(self.R.randint(low, high + 1)) if self.random else (low + high) // 2
        index = np.clip(np.arange(centre - half, centre + half + 1), 0, depth - 1)
        plane = [s for a, s in enumerate(shape) if a != self.axis]
        roi = tuple(plane) if self.roi_size is None else self.roi_size
        starts = [self._position(plane[0], roi[0]), self._position(plane[1], roi[1])]
        for key in keys:
            img = torch.as_tensor(d[key]).float()
            if hasattr(img, "as_tensor"):
                img = img.as_tensor()
            stack = img.movedim(1 + self.axis, 1)[:, torch.as_tensor(index)]  # (T, C, P0, P1)
            stack = stack[:, :, starts[0]: starts[0] + roi[0], starts[1]: starts[1] + roi[1]]
            pad = [0, max(0, roi[1] - stack.shape[3]), 0, max(0, roi[0] - stack.shape[2])]
            if any(pad):
                stack = torch.nn.functional.pad(stack, pad, value=float(stack.min()))
            d[key] = stack.contiguous()
        return d


class RandSilenced(Randomizable, MapTransform):
    """Randomly make sequences unavailable (paper: silence one to three sequences per subject).

    With probability ``prob`` draws ``n`` in ``[min_silence, max_silence]`` (capped so that ``min_keep`` stay)
    and removes that many available sequences: their keys are deleted and ``"available"`` is updated.
    """

    def __init__(self, keys: KeysCollection, prob: float = 0.0, min_silence: int = 1, max_silence: int = 3,
                 min_keep: int = 1) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys=True)
        self.prob = float(prob)
        self.min_silence = int(min_silence)
        self.max_silence = int(max_silence)
        self.min_keep = int(min_keep)

    def randomize(self, data: Any = None) -> None:
        pass

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        present = _present(d, self.key_iterator(d))
        if self.R.rand() >= self.prob:
            return d
        most = min(self.max_silence, len(present) - self.min_keep)
        if most < self.min_silence:
            return d
        n = int(self.R.randint(self.min_silence, most + 1))
        drop = set(self.R.choice(len(present), size=n, replace=False).tolist())
        for k in (present[i] for i in drop):
            d.pop(k)
        d["available"] = [k for k in d.get("available", present) if k not in {present[i] for i in drop}]
        return d


def availability_collate(batch: Sequence[Mapping], sequence_keys: Sequence[str], mask_key: str = MASK_KEY) -> dict:
    """Collate sample dicts with missing sequences into ``(B, T, C, *spatial)`` tensors and a ``(B, S)`` mask.

    Args:
        batch: samples after :class:`Slices25Dd` (all sequences of all samples on one grid).
        sequence_keys: the protocol's sequence names in code order (S of them).
        mask_key: key of the availability mask.

    Returns:
        dict: every sequence present in at least one sample (zeros for samples that lack it; only the mask says
        which are real), ``mask_key``: bool (B, S), ``"subject"``: list of ids.
    """
    out: dict[str, Any] = {}
    mask = torch.zeros(len(batch), len(sequence_keys), dtype=torch.bool)
    for s, key in enumerate(sequence_keys):
        items = [_present(sample, [key]) for sample in batch]
        if not any(items):
            continue
        ref = next(torch.as_tensor(sample[key]) for sample, it in zip(batch, items, strict=True) if it)
        tensors = []
        for b, (sample, it) in enumerate(zip(batch, items, strict=True)):
            if it:
                mask[b, s] = True
                t = torch.as_tensor(sample[key]).float()
                tensors.append(t.as_tensor() if hasattr(t, "as_tensor") else t)
            else:
                tensors.append(torch.zeros(ref.shape, dtype=torch.float32))
        out[key] = torch.stack(tensors)
    out[mask_key] = mask
    out["subject"] = [sample.get("subject", str(b)) for b, sample in enumerate(batch)]
    return out


class AvailabilityCollate:
    """Picklable ``collate_fn`` of :func:`availability_collate` (for ``DataLoader(num_workers > 0)``)."""

    def __init__(self, sequence_keys: Sequence[str], mask_key: str = MASK_KEY) -> None:
        self.sequence_keys = list(sequence_keys)
        self.mask_key = mask_key

    def __call__(self, batch: Sequence[Mapping]) -> dict:
        return availability_collate(batch, self.sequence_keys, self.mask_key)
