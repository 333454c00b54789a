"""Batching of training samples with missing sequences: a collate that keeps an availability mask.

Sample in: one ``(T, C, H, W)`` 2.5D stack per available sequence (from
:class:`monai_seq2seq.transforms.Slices25Dd`) plus ``"available"``. Batch out of :func:`availability_collate`:
``(B, T, C, H, W)`` per sequence present in at least one sample (zeros where a sample lacks it, flagged 0 in the
mask), ``"available_mask"`` bool ``(B, S)`` in protocol order, and ``"subject"`` (list of ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..transforms.missing import MASK_KEY
from ..transforms.slices import present_keys

__all__ = ["availability_collate", "AvailabilityCollate", "MASK_KEY"]


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
        items = [present_keys(sample, [key]) for sample in batch]
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
