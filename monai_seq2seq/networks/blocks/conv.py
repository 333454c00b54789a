"""Plain conv -> norm -> act unit with reflect padding, built from MONAI's layer factories."""

from __future__ import annotations

import torch.nn as nn
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer

from .norm import get_float32_norm_layer

__all__ = ["ConvNormAct"]


class ConvNormAct(nn.Sequential):
    """``act(norm(conv(x)))`` with reflect padding of ``kernel_size // 2`` (MONAI's ``Convolution`` pads with zeros).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size.
        stride: stride (2 halves each spatial size).
        norm: norm type and args, or ``None``.
        act: activation type and args, or ``None``.
        padding_mode: ``"reflect"`` (paper), ``"replicate"`` or ``"zeros"``.

    Shapes:
        (B, in_channels, *spatial) -> (B, out_channels, *spatial / stride).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        norm: tuple | str | None = "instance",
        act: tuple | str | None = ("leakyrelu", {"negative_slope": 0.2}),
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        self.add_module(
            "conv",
            Conv[Conv.CONV, spatial_dims](
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                padding_mode=padding_mode,
            ),
        )
        if norm is not None:
            self.add_module("norm", get_float32_norm_layer(norm, spatial_dims, out_channels))
        if act is not None:
            self.add_module("act", get_act_layer(act))
