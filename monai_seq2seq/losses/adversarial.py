"""Least-squares GAN objective (paper eq. 2) on patch logits, built on MONAI's ``PatchAdversarialLoss``."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.losses import PatchAdversarialLoss

__all__ = ["LSGANLoss"]


class LSGANLoss(nn.Module):
    """LSGAN: the discriminator pushes real patches to 1 and fakes to 0; the generator pushes fakes to 1.

    ``generator_loss(fake_logits) = mean((D(fake) - 1)^2)``;
    ``discriminator_loss(real, fake) = 0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2))``.

    Shapes:
        logits: (B, 1, *patch_grid) or a list of such tensors (multi-scale discriminators). Output: scalar.
    """

    def __init__(self) -> None:
        super().__init__()
        self.criterion = PatchAdversarialLoss(criterion="least_squares", reduction="mean", no_activation_leastsq=True)

    def _loss(self, logits, real: bool) -> torch.Tensor:
        items = logits if isinstance(logits, (list, tuple)) else [logits]
        losses = [self.criterion(x.float(), target_is_real=real, for_discriminator=True) for x in items]
        return torch.stack([torch.as_tensor(v).reshape(()) for v in losses]).mean()

    def generator_loss(self, fake_logits) -> torch.Tensor:
        return self._loss(fake_logits, real=True)

    def discriminator_loss(self, real_logits, fake_logits) -> torch.Tensor:
        return 0.5 * (self._loss(real_logits, real=True) + self._loss(fake_logits, real=False))

    def forward(self, logits, target_is_real: bool) -> torch.Tensor:
        return self._loss(logits, real=target_is_real)
