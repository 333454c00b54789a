"""Pixel-wise terms: L1 reconstruction ``|X'_{i->j} - X_j|_1`` and cycle consistency ``|X''_{i->j->i} - X_i|_1``."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["ReconstructionL1Loss", "CycleConsistencyLoss"]


class ReconstructionL1Loss(nn.Module):
    """Mean absolute error between a synthesised and a real sequence (paper eq. 1, first term).

    Shapes:
        ``pred``, ``target``: the same shape, e.g. (B, T, C, *spatial) in the network's [-1, 1] space.
        Output: scalar.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape.")
        return (pred.float() - target.float()).abs().mean()


class CycleConsistencyLoss(ReconstructionL1Loss):
    """Cycle consistency (paper eq. 3): L1 between ``G(G(x_i | j) | i)`` and ``x_i``.

    Shapes:
        ``cycled``, ``source``: the same shape (B, T, C, *spatial). Output: scalar.
    """
