"""Per-sequence PatchGAN discriminators (LSGAN objective), built on MONAI's ``PatchDiscriminator``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.nets import PatchDiscriminator

__all__ = ["SequenceDiscriminators"]


class SequenceDiscriminators(nn.Module):
    """One PatchGAN per target sequence; a 4D sequence's frames are stacked on the channel axis.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels per frame (3 in 2.5D, 1 in 3D).
        num_sequences: number of sequences of the protocol.
        target_frames: frames per sequence in code order; defaults to 1 each.
        channels: width of the first discriminator layer.
        num_layers_d: strided layers per discriminator.
        norm: norm type and args.

    Shapes:
        ``x``: (B, T, C, *spatial) or (B, C, *spatial); ``sequence``: code index of the sequence ``x`` claims to be.
        Output: patch logits (B, 1, *patch_grid).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        num_sequences: int = 4,
        target_frames: Sequence[int] | None = None,
        channels: int = 64,
        num_layers_d: int = 3,
        norm: str | tuple = "instance",
    ) -> None:
        super().__init__()
        frames = [1] * num_sequences if target_frames is None else list(target_frames)
        if len(frames) != num_sequences:
            raise ValueError(f"target_frames needs {num_sequences} entries, got {frames}.")
        self.spatial_dims = spatial_dims
        self.discriminators = nn.ModuleList(
            [
                PatchDiscriminator(
                    spatial_dims=spatial_dims,
                    channels=channels,
                    in_channels=in_channels * f,
                    out_channels=1,
                    num_layers_d=num_layers_d,
                    norm=norm,
                    bias=True,
                )
                for f in frames
            ]
        )

    def forward(self, x: torch.Tensor, sequence: int) -> torch.Tensor:
        if not 0 <= int(sequence) < len(self.discriminators):
            raise ValueError(f"no discriminator for sequence index {sequence} (0..{len(self.discriminators) - 1}).")
        if x.dim() == self.spatial_dims + 3:
            x = x.flatten(1, 2)
        return self.discriminators[int(sequence)](x)[-1]
