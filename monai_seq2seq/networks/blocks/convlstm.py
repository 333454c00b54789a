"""Convolutional LSTM over the frame axis of 4D sequences (DCE timepoints, DWI b-values)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

__all__ = ["ConvLSTMCell", "ConvLSTM"]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM cell: the four gates from one convolution of ``[x_t, h_{t-1}]``.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        in_channels: input channels.
        hidden_channels: hidden/cell state channels.
        kernel_size: odd kernel size (zero "same" padding).

    Shapes:
        ``x``: (B, in_channels, *spatial); ``h``, ``c``: (B, hidden_channels, *spatial).
        Returns the new ``(h, c)``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.conv = Conv[Conv.CONV, spatial_dims](
            in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2
        )

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gates = self.conv(torch.cat([x, h], dim=1))
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """Multi-layer ConvLSTM applied along the frame axis.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        in_channels: input channels of the first layer.
        hidden_channels: hidden channels of every layer.
        num_layers: number of stacked layers (>= 1).
        kernel_size: odd kernel size.

    Shapes:
        (B, T, in_channels, *spatial) -> (B, T, hidden_channels, *spatial): the last layer's hidden state at
        every frame. States start at zero.
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, hidden_channels: int, num_layers: int = 1, kernel_size: int = 3
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"ConvLSTM supports spatial_dims 2 or 3, got {spatial_dims}.")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        self.spatial_dims = spatial_dims
        self.hidden_channels = hidden_channels
        self.cells = nn.ModuleList(
            [
                ConvLSTMCell(spatial_dims, in_channels if i == 0 else hidden_channels, hidden_channels, kernel_size)
                for i in range(num_layers)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.spatial_dims + 3:
            raise ValueError(
                "ConvLSTM expects (B, T, C, *spatial) with "
                + str(self.spatial_dims)
                + " spatial dims, got shape "
                + str(list(x.shape))
                + "."
            )
        frames = x.shape[1]
        state_shape = [x.shape[0], self.hidden_channels] + list(x.shape[3:])
        layer_input = [x[:, t] for t in range(frames)]
        for cell in self.cells:
            h = x.new_zeros(state_shape)
            c = x.new_zeros(state_shape)
            outputs: list[torch.Tensor] = []
            for t in range(frames):
                h, c = cell(layer_input[t], h, c)
                outputs.append(h)
            layer_input = outputs
        return torch.stack(layer_input, dim=1)
