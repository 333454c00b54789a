"""Whole volumes <-> batches of 2.5D slabs (adjacent slices as channels), vectorised for inference."""

from __future__ import annotations

import torch
from monai.transforms import DivisiblePad
from monai.transforms.croppad.functional import pad_nd

__all__ = ["volume_to_slabs", "slabs_to_volume", "pad_to_multiple", "constant_samples"]


def volume_to_slabs(volume: torch.Tensor, context: int = 1) -> torch.Tensor:
    """Every slice of the last axis with its neighbours as channels.

    Args:
        volume: (T, X, Y, Z) frames-first series.
        context: neighbours on each side (1 gives the paper's 3-slice 2.5D input); edges replicate.

    Returns:
        (Z, T, 2 * context + 1, X, Y).
    """
    if volume.dim() != 4:
        raise ValueError(f"volume_to_slabs expects (T, X, Y, Z), got shape {tuple(volume.shape)}.")
    if context:
        first, last = volume[..., :1], volume[..., -1:]
        lead = volume.shape[:-1]
        padded = torch.cat([first.expand(*lead, context), volume, last.expand(*lead, context)], -1)
    else:
        padded = volume
    width = 2 * context + 1
    slabs = padded.unfold(-1, width, 1)  # (T, X, Y, Z, width)
    return slabs.permute(3, 0, 4, 1, 2)


def slabs_to_volume(slabs: torch.Tensor, mode: str = "middle") -> torch.Tensor:
    """Reassemble a volume from per-slice 2.5D predictions.

    Args:
        slabs: (Z, T, C, X, Y) predictions, C = 2 * context + 1 channels for slices z - context .. z + context.
        mode: ``"middle"`` takes each slab's centre channel; ``"mean"`` averages every prediction of a slice
            (up to C overlapping slabs; fewer at the edges).

    Returns:
        (T, X, Y, Z).
    """
    if slabs.dim() != 5:
        raise ValueError(f"slabs_to_volume expects (Z, T, C, X, Y), got shape {tuple(slabs.shape)}.")
    depth, channels = slabs.shape[0], slabs.shape[2]
    context = channels // 2
    if mode == "middle":
        return slabs[:, :, context].permute(1, 2, 3, 0)
    if mode != "mean":
        raise ValueError(f"mode must be 'middle' or 'mean', got {mode!r}.")
    total = slabs.new_zeros((slabs.shape[1], *slabs.shape[3:], depth))
    count = slabs.new_zeros(depth)
    for c in range(channels):
        offset = c - context  # channel c of slab z shows slice z + offset
        lo, hi = max(0, -offset), min(depth, depth - offset)
        total[..., lo + offset : hi + offset] += slabs[lo:hi, :, c].permute(1, 2, 3, 0)
        count[lo + offset : hi + offset] += 1
    return total / count


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dims of ``x`` at their ends up to multiples of ``multiple`` (MONAI's ``DivisiblePad``).

    Args:
        x: ``(..., X, Y)``, e.g. the ``(Z, T, C, X, Y)`` slabs of :func:`volume_to_slabs`.
        multiple: the network's downsampling factor.
        mode: padding mode (``torch.nn.functional.pad``); it becomes ``"replicate"`` when a pad is not smaller than
            the plane, where torch cannot reflect (MONAI's ``pad_nd`` would fall back to numpy's repeated reflection).

    Returns:
        ``(padded, (X, Y))``: the padded tensor and the original plane size, to crop the prediction back with
        ``[..., :X, :Y]``.
    """
    size = (x.shape[-2], x.shape[-1])
    to_pad = DivisiblePad(k=multiple, method="end").compute_pad_width(size)  # ((0, 0), (0, pad_x), (0, pad_y))
    largest = max(after for _, after in to_pad)
    if not largest:
        return x, size
    if min(size) <= largest:
        mode = "replicate"
    flat = pad_nd(x.reshape(-1, *size), list(to_pad), mode=mode)  # channel-first (N, X, Y) for MONAI
    return flat.reshape(*x.shape[:-2], *flat.shape[-2:]), size


def constant_samples(x: torch.Tensor) -> torch.Tensor:
    """(B,) bool: which samples of a batch ``(B, ...)`` are constant (an all-background crop, slab or window).

    Through InstanceNorm a constant input gives the same features whatever its value, and its gradients are
    amplified by ``1/sqrt(eps)`` per layer: the trainer leaves such samples out and the synthesiser writes
    background for them.
    """
    flat = x.detach().reshape(x.shape[0], -1)
    return flat.amax(1) == flat.amin(1)
