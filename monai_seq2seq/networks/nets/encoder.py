"""Encoder: one 2D/3D image (one frame of a sequence) -> a 4x-downsampled feature representation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..blocks.conv import ConvNormAct
from ..blocks.residual import ResBlock

__all__ = ["Encoder"]


class Encoder(nn.Sequential):
    """Conv k7 s1 -> ``channels[0]``, then conv k3 s2 per further entry of ``channels``, then residual blocks.

    Paper/released configuration: ``channels=(64, 128, 256)``, 6 residual blocks: 4x downsampling.

    Under bf16/fp16 autocast the stem still runs in float32: it sees the raw image, and in half precision a nearly
    constant input (a slab holding a few brain voxels) loses its variation to rounding before the stem's norm
    scales it up (measured: bf16 outputs up to 0.97 off in [0, 1] on such slabs, 0.07 with a float32 stem).

    Args:
        spatial_dims: number of spatial dimensions (2 for 2.5D slices, 3 for volumes).
        in_channels: input channels (3 adjacent slices in 2.5D, 1 in 3D).
        channels: output channels of the stem and of each stride-2 convolution.
        num_res_blocks: residual blocks at the last width.
        norm: norm type and args. Defaults to instance norm.
        act: activation type and args. Defaults to LeakyReLU(0.2).

    Shapes:
        (N, in_channels, *spatial) -> (N, channels[-1], *spatial / 2 ** (len(channels) - 1)).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int = 3,
        channels: Sequence[int] = (64, 128, 256),
        num_res_blocks: int = 6,
        norm: tuple | str = "instance",
        act: tuple | str = ("leakyrelu", {"negative_slope": 0.2}),
    ) -> None:
        super().__init__()
        if len(channels) < 1:
            raise ValueError("channels needs at least one entry.")
        self.out_channels = int(channels[-1])
        self.downsample_factor = 2 ** (len(channels) - 1)
        self.add_module("stem", ConvNormAct(spatial_dims, in_channels, channels[0], 7, 1, norm, act))
        for i in range(1, len(channels)):
            self.add_module(f"down{i}", ConvNormAct(spatial_dims, channels[i - 1], channels[i], 3, 2, norm, act))
        for i in range(num_res_blocks):
            self.add_module(f"res{i}", ResBlock(spatial_dims, channels[-1], 3, norm, act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem_in_float32 = False
        if not torch.jit.is_scripting():  # TorchScript has no per-device autocast query; this branch is not compiled
            stem_in_float32 = x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type)
        for i, module in enumerate(self):
            x = self._stem_in_float32(x) if i == 0 and stem_in_float32 else module(x)
        return x

    @torch.jit.unused
    def _stem_in_float32(self, x):  # unannotated: TorchScript types the stub's argument and result as Tensor
        with torch.autocast(x.device.type, enabled=False):
            return self.stem(x.float())
