"""Adaptive instance normalisation conditioned on the target-sequence code (paper's Seq2Seq-A)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Norm

from .norm import float32_norm

__all__ = ["AdaptiveInstanceNorm"]


class AdaptiveInstanceNorm(nn.Module):
    """Instance norm whose scale and shift are predicted from the code: ``IN(x) * (1 + gamma) + beta``.

    Args:
        spatial_dims: number of spatial dimensions.
        channels: feature channels.
        code_dim: length of the (embedded) sequence code.
        eps: instance-norm epsilon.

    Shapes:
        ``x``: (B, channels, *spatial); ``code``: (B, code_dim) or (1, code_dim). Output: like ``x``.
    """

    def __init__(self, spatial_dims: int, channels: int, code_dim: int = 64, eps: float = 1e-5) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.eps = eps
        self.norm = float32_norm(Norm[Norm.INSTANCE, spatial_dims](channels, affine=False, eps=eps))
        self.style = nn.Linear(code_dim, 2 * channels)
        nn.init.zeros_(self.style.weight)
        nn.init.zeros_(self.style.bias)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.style(code).chunk(2, dim=1)
        shape = [gamma.shape[0], self.channels] + [1] * self.spatial_dims
        return self.norm(x) * (1 + gamma.reshape(shape)) + beta.reshape(shape)

    @torch.no_grad()
    def fold(self, code: torch.Tensor) -> nn.Module:
        """An affine instance norm equal to ``self(x, code)`` for this one code ((code_dim,) or (1, code_dim))."""
        gamma, beta = self.style(code.reshape(1, -1).to(self.style.weight)).chunk(2, dim=1)
        norm = float32_norm(Norm[Norm.INSTANCE, self.spatial_dims](self.channels, affine=True, eps=self.eps))
        norm = norm.to(self.style.weight)
        norm.weight.copy_(1 + gamma[0])
        norm.bias.copy_(beta[0])
        return norm
