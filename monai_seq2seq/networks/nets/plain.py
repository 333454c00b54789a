"""An unconditioned encoder-decoder for one fixed source->target pair (the per-pair baseline of Table 1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from ..blocks import ConvNormAct, ResBlock
from ..blocks.upsample import check_upsample_mode, get_upsample_layer
from .encoder import Encoder
from .factory import SEQ2SEQ_CONFIGS

__all__ = ["PlainEncoderDecoder"]

_LEAKY = ("leakyrelu", {"negative_slope": 0.2})


class PlainEncoderDecoder(nn.Module):
    """Unconditioned 2D/3D encoder-decoder for one fixed source->target pair (the per-pair baseline).

    The Seq2Seq skeleton without ConvLSTMs and without any conditioning: the package's :class:`Encoder` (conv k7,
    stride-2 convs, residual blocks), then plain residual blocks, (upsample x2, conv k3) per level and a conv k7
    with ``tanh``, i.e. the HyperDecoder with every conditioned layer replaced by a plain one. One such model per
    ordered pair is the paper's Pix2Pix-style baseline; it takes no target code.

    Args:
        spatial_dims: 2 (2.5D slices) or 3.
        in_channels: channels per frame (3 adjacent slices in 2.5D).
        out_channels: output channels (default ``in_channels``).
        channels: encoder widths; the decoder mirrors them.
        num_res_blocks: encoder residual blocks.
        num_dec_res_blocks: decoder residual blocks.
        norm: norm type and args.
        act: activation type and args.
        upsample_mode: the decoder's x2 upsampling, ``"linear"`` (bilinear in 2D, trilinear in 3D, align_corners
            False) or ``"nearest"``.

    Shapes:
        - framed input ``(B, T, in_channels, *spatial)`` -> ``(B, T, out_channels, *spatial)`` (each frame
          translated on its own);
        - plain input ``(B, in_channels, *spatial)`` -> ``(B, out_channels, *spatial)``;
        - every spatial size must be a multiple of :attr:`downsample_factor`; values in (-1, 1).

    Raises:
        ValueError: an unknown ``upsample_mode``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int | None = None,
        channels: Sequence[int] = (64, 128, 256),
        num_res_blocks: int = 6,
        num_dec_res_blocks: int = 6,
        norm: tuple | str = "instance",
        act: tuple | str = _LEAKY,
        upsample_mode: str = "linear",
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.upsample_mode = check_upsample_mode(upsample_mode, spatial_dims)
        self.encoder = Encoder(spatial_dims, in_channels, channels, num_res_blocks, norm, act)
        self.downsample_factor = self.encoder.downsample_factor
        widths = [int(channels[-1]), *(int(c) for c in reversed(channels[:-1]))]
        layers: list[nn.Module] = [ResBlock(spatial_dims, widths[0], 3, norm, act) for _ in range(num_dec_res_blocks)]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers.append(get_upsample_layer(spatial_dims, self.upsample_mode))
            layers.append(ConvNormAct(spatial_dims, c_in, c_out, 3, 1, norm, act))
        layers.append(ConvNormAct(spatial_dims, widths[-1], out_channels, 7, 1, norm=None, act="tanh"))
        self.decoder = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, name: str = "small", **overrides: Any) -> PlainEncoderDecoder:
        """The baseline with the widths and depths of a named Seq2Seq size (``SEQ2SEQ_CONFIGS[name]``).

        Args:
            name: ``tiny``, ``small``, ``paper`` or ``released``.
            overrides: constructor arguments replacing the size's (``spatial_dims``, ``in_channels``...).

        Raises:
            ValueError: unknown size name.
        """
        if name not in SEQ2SEQ_CONFIGS:
            raise ValueError(f"unknown network size {name!r}; choose from {sorted(SEQ2SEQ_CONFIGS)}.")
        cfg = SEQ2SEQ_CONFIGS[name]
        kwargs = {
            "channels": cfg["channels"],
            "num_res_blocks": cfg["num_res_blocks"],
            "num_dec_res_blocks": cfg["num_hyper_res_blocks"],
            "upsample_mode": cfg["upsample_mode"],
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (see the class docstring for shapes)."""
        framed = x.dim() == self.spatial_dims + 3
        lead = x.shape[:2]
        if framed:
            x = x.flatten(0, 1)
        y = self.decoder(self.encoder(x))
        return y.reshape(*lead, *y.shape[1:]) if framed else y
