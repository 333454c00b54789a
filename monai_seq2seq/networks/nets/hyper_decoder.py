"""HyperDecoder: feature representation + target code -> image of the target sequence."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.layers.utils import get_act_layer

from ..blocks.conditional import ConditionalConvNormAct, Conditioning
from ..blocks.residual import HyperResBlock
from ..blocks.upsample import check_upsample_mode, get_upsample_layer

__all__ = ["HyperDecoder"]


class HyperDecoder(nn.Module):
    """Code-conditioned decoder: hyper-residual blocks, then (upsample x2, conditioned conv) per level, then a
    conditioned k7 convolution to the output channels and ``tanh``.

    The code first passes ``Linear(code_dim, code_dim)`` + LeakyReLU; every conditioned layer then maps it
    to its own kernel (HyperConv), filter (dynamic) or norm scale/shift (AdaIN).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the representation (the encoder's last width).
        out_channels: image channels to produce.
        code_dim: length of the sequence code.
        num_res_blocks: hyper-residual blocks at ``in_channels``.
        up_channels: channels after each x2 upsampling (paper: (128, 64)).
        conditioning: ``"hyper"`` (Seq2Seq-C), ``"dynamic"`` (Seq2Seq-B) or ``"adain"`` (Seq2Seq-A).
        bank_dim: HyperConv weight-bank size ``c_w``.
        norm: norm type and args.
        act: activation type and args.
        upsample_mode: ``"linear"`` (bilinear in 2D, trilinear in 3D, ``align_corners=False``: the authors' decoder)
            or ``"nearest"``; see :func:`~monai_seq2seq.networks.blocks.upsample.check_upsample_mode`. Weights trained
            with one mode give other images with the other (no parameter changes, so nothing refuses to load).

    Shapes:
        ``x``: (N, in_channels, *spatial); ``code``: (N, code_dim) or (1, code_dim) shared.
        Output: (N, out_channels, *spatial * 2 ** len(up_channels)), values in (-1, 1).

    Raises:
        ValueError: an unknown ``conditioning`` or ``upsample_mode``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int = 256,
        out_channels: int = 3,
        code_dim: int = 64,
        num_res_blocks: int = 6,
        up_channels: Sequence[int] = (128, 64),
        conditioning: str = Conditioning.HYPER,
        bank_dim: int = 16,
        norm: tuple | str = "instance",
        act: tuple | str = ("leakyrelu", {"negative_slope": 0.2}),
        upsample_mode: str = "linear",
    ) -> None:
        super().__init__()
        conditioning = Conditioning.check(conditioning)
        self.code_dim = code_dim
        self.code_embed = nn.Sequential(nn.Linear(code_dim, code_dim), get_act_layer(act))
        self.res_blocks = nn.ModuleList(
            [
                HyperResBlock(spatial_dims, in_channels, code_dim, conditioning, bank_dim, 3, norm, act)
                for _ in range(num_res_blocks)
            ]
        )
        self.upsample_mode = check_upsample_mode(upsample_mode, spatial_dims)
        self.upsample = get_upsample_layer(spatial_dims, self.upsample_mode)
        widths = [in_channels, *up_channels]
        self.up_convs = nn.ModuleList(
            [
                ConditionalConvNormAct(
                    spatial_dims, widths[i], widths[i + 1], 3, code_dim, conditioning, bank_dim, norm, act
                )
                for i in range(len(up_channels))
            ]
        )
        self.head = ConditionalConvNormAct(
            spatial_dims, widths[-1], out_channels, 7, code_dim, conditioning, bank_dim, norm=None, act="tanh"
        )

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        code = self.code_embed(code)
        for block in self.res_blocks:
            x = block(x, code)
        for conv in self.up_convs:
            x = conv(self.upsample(x), code)
        return self.head(x, code)

    @torch.no_grad()
    def fold(self, code: torch.Tensor) -> nn.Sequential:
        """Plain modules equal to ``self(x, code)`` for one code ((code_dim,) or (1, code_dim)).

        Returns:
            ``nn.Sequential`` mapping (N, in_channels, *spatial) to the decoded image.
        """
        code = self.code_embed(code.reshape(1, -1).to(self.code_embed[0].weight))
        layers: list[nn.Module] = [block.fold(code) for block in self.res_blocks]
        for conv in self.up_convs:
            layers += [self.upsample, conv.fold(code)]
        layers.append(self.head.fold(code))
        return nn.Sequential(*layers)
