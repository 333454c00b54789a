"""Residual blocks: plain (encoder) and code-conditioned (HyperDecoder)."""

from __future__ import annotations

import torch
import torch.nn as nn

from .conditional import ConditionalConvNormAct, Conditioning
from .conv import ConvNormAct

__all__ = ["ResBlock", "HyperResBlock"]

_LEAKY = ("leakyrelu", {"negative_slope": 0.2})


class ResBlock(nn.Module):
    """``x + norm(conv(act(norm(conv(x)))))`` with reflect padding (CycleGAN/paper style).

    Args:
        spatial_dims: number of spatial dimensions.
        channels: feature channels (in = out).
        kernel_size: odd kernel size.
        norm: norm type and args. Defaults to instance norm.
        act: activation type and args. Defaults to LeakyReLU(0.2).

    Shapes:
        (B, channels, *spatial) -> (B, channels, *spatial).
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        kernel_size: int = 3,
        norm: tuple | str = "instance",
        act: tuple | str = _LEAKY,
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(spatial_dims, channels, channels, kernel_size, norm=norm, act=act)
        self.conv2 = ConvNormAct(spatial_dims, channels, channels, kernel_size, norm=norm, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class HyperResBlock(nn.Module):
    """Residual block whose convolutions (or norms, for AdaIN) are conditioned on the target code.

    Args:
        spatial_dims: number of spatial dimensions.
        channels: feature channels (in = out).
        code_dim: embedded code length.
        conditioning: ``"hyper"`` (HyperConv), ``"dynamic"`` or ``"adain"``.
        bank_dim: HyperConv bank size.
        kernel_size: odd kernel size.
        norm: norm type and args (ignored for ``"adain"``, which uses AdaIN).
        act: activation type and args.

    Shapes:
        ``x``: (B, channels, *spatial); ``code``: (B or 1, code_dim). Output: like ``x``.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        code_dim: int = 64,
        conditioning: str = Conditioning.HYPER,
        bank_dim: int = 16,
        kernel_size: int = 3,
        norm: tuple | str = "instance",
        act: tuple | str = _LEAKY,
    ) -> None:
        super().__init__()
        common = {
            "spatial_dims": spatial_dims,
            "in_channels": channels,
            "out_channels": channels,
            "kernel_size": kernel_size,
            "code_dim": code_dim,
            "conditioning": conditioning,
            "bank_dim": bank_dim,
            "norm": norm,
        }
        self.conv1 = ConditionalConvNormAct(act=act, **common)
        self.conv2 = ConditionalConvNormAct(act=None, **common)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x, code), code)

    def fold(self, code: torch.Tensor) -> nn.Module:
        """A plain :class:`_FoldedResBlock` equal to ``self(x, code)`` for this one code."""
        return _FoldedResBlock(nn.Sequential(self.conv1.fold(code), self.conv2.fold(code)))


class _FoldedResBlock(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
