"""HyperConv: a convolution whose kernel is mixed from a weight bank by the target-sequence code."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv
from monai.utils import ensure_tuple_rep

__all__ = ["HyperConv", "DynamicConv"]


class _AppendOne(nn.Module):
    """``code -> [code, 1]``: makes ``bank @ mix`` an affine map of the code (a Linear layer with bias)."""

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return torch.cat([code, torch.ones_like(code[:, :1])], dim=1)


class HyperConv(nn.Module):
    """Convolution with a kernel generated from a trainable weight bank and the target-sequence code.

    Paper Alg. 1: ``kernel = bank @ Linear(code_dim, bank_dim)(code)``, the bias the same way from its own
    bank. Each sample of a batch may ask for a different target: the per-sample kernels are applied in one
    grouped convolution. With a single code for the whole batch one ordinary convolution runs instead.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: convolution kernel size.
        code_dim: length of the (embedded) sequence code.
        bank_dim: size ``c_w`` of the weight bank (paper config: 16).
        stride: convolution stride.
        padding: padding; defaults to ``kernel_size // 2`` ("same" for odd kernels and stride 1).
        padding_mode: ``"reflect"`` (paper), ``"replicate"`` or ``"zeros"``.
        bias: whether a bias (from its own bank) is added.

    Shapes:
        ``x``: (B, in_channels, *spatial); ``code``: (B, code_dim) per-sample or (1, code_dim) shared.
        Output: (B, out_channels, *spatial_out).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int] | int = 3,
        code_dim: int = 64,
        bank_dim: int = 16,
        stride: Sequence[int] | int = 1,
        padding: Sequence[int] | int | None = None,
        padding_mode: str = "reflect",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        if padding_mode not in ("reflect", "replicate", "zeros"):
            raise ValueError(f"padding_mode must be 'reflect', 'replicate' or 'zeros', got {padding_mode!r}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = ensure_tuple_rep(kernel_size, spatial_dims)
        self.stride = ensure_tuple_rep(stride, spatial_dims)
        same = [k // 2 for k in self.kernel_size]
        self.padding = ensure_tuple_rep(same if padding is None else padding, spatial_dims)
        self.padding_mode = padding_mode
        self.code_dim = code_dim
        self.bank_dim = bank_dim
        self.has_bias = bias
        # F.pad wants the last dimension first, (left, right) per dimension.
        self._pad: list[int] = [p for p in reversed(self.padding) for _ in range(2)]
        bank_size = self._bank_size()
        self.weight_bank = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size, bank_size))
        self.weight_mix = self._make_mix()
        self.bias_bank = nn.Parameter(torch.empty(out_channels, bank_size)) if bias else None
        self.bias_mix = self._make_mix() if bias else None
        self.reset_parameters()

    def _bank_size(self) -> int:
        return self.bank_dim

    def _make_mix(self) -> nn.Module:
        return nn.Linear(self.code_dim, self.bank_dim)

    def reset_parameters(self) -> None:
        # Kaiming-uniform per bank slice, like nn.ConvNd; a mix of unit-variance-ish weights keeps that scale.
        fan_in = self.in_channels
        for k in self.kernel_size:
            fan_in *= k
        bound = 1.0 / fan_in**0.5
        nn.init.uniform_(self.weight_bank, -bound, bound)
        if self.bias_bank is not None:
            nn.init.uniform_(self.bias_bank, -bound, bound)

    def kernels(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Kernels and biases for each code.

        Args:
            code: (N, code_dim).

        Returns:
            weights (N, out_channels, in_channels, *kernel_size) and biases (N, out_channels) or ``None``.
        """
        mix = self.weight_mix(code)  # (N, bank)
        bank = self.weight_bank.reshape(-1, self.weight_bank.shape[-1])  # (numel, bank)
        weight = torch.matmul(mix, bank.t()).reshape([code.shape[0]] + list(self.weight_bank.shape[:-1]))
        bias: torch.Tensor | None = None
        if self.bias_bank is not None and self.bias_mix is not None:
            bias = torch.matmul(self.bias_mix(code), self.bias_bank.t())
        return weight, bias

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int) -> torch.Tensor:
        if self.padding_mode != "zeros":
            x = F.pad(x, self._pad, mode=self.padding_mode)
            padding = [0] * self.spatial_dims
        else:
            padding = list(self.padding)
        if self.spatial_dims == 1:
            return F.conv1d(x, weight, bias, list(self.stride), padding, [1], groups)
        if self.spatial_dims == 2:
            return F.conv2d(x, weight, bias, list(self.stride), padding, [1, 1], groups)
        return F.conv3d(x, weight, bias, list(self.stride), padding, [1, 1, 1], groups)

    def forward(self, x: torch.Tensor, code: torch.Tensor, add_bias: bool = True) -> torch.Tensor:
        """Apply the code-specific convolution.

        Args:
            x: (B, in_channels, *spatial).
            code: (B, code_dim), one code per sample, or (1, code_dim) shared by the batch.
            add_bias: ``False`` leaves the bias out (for a caller whose instance norm would cancel it).

        Returns:
            (B, out_channels, *spatial_out).
        """
        weight, bias = self.kernels(code)
        if not add_bias:
            bias = None
        if code.shape[0] == 1:
            return self._conv(x, weight[0], None if bias is None else bias[0], 1)
        batch = x.shape[0]
        if code.shape[0] != batch:
            raise ValueError(
                "HyperConv: code batch "
                + str(code.shape[0])
                + " must be 1 or equal the input batch "
                + str(batch)
                + "."
            )
        # Per-sample kernels: fold the batch into channels and run one grouped convolution.
        x = x.reshape([1, batch * self.in_channels] + list(x.shape[2:]))
        weight = weight.reshape([batch * self.out_channels, self.in_channels] + list(self.kernel_size))
        flat_bias = None if bias is None else bias.reshape(-1)
        y = self._conv(x, weight, flat_bias, batch)
        return y.reshape([batch, self.out_channels] + list(y.shape[2:]))

    @torch.no_grad()
    def fold(self, code: torch.Tensor, add_bias: bool = True) -> nn.Module:
        """A plain convolution module giving the same output as ``self(x, code, add_bias)`` for this one code.

        Args:
            code: (code_dim,) or (1, code_dim).
            add_bias: ``False`` folds a convolution without bias.
        """
        code = code.reshape(1, -1).to(self.weight_bank)
        weight, bias = self.kernels(code)
        if not add_bias:
            bias = None
        conv_type = Conv[Conv.CONV, self.spatial_dims]
        conv = conv_type(
            self.in_channels,
            self.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            padding_mode=self.padding_mode,
            bias=bias is not None,
        ).to(device=self.weight_bank.device, dtype=self.weight_bank.dtype)
        conv.weight.copy_(weight[0])
        if bias is not None:
            conv.bias.copy_(bias[0])
        return conv

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"code_dim={self.code_dim}, bank_dim={self.bank_dim}, padding_mode={self.padding_mode}"
        )


class DynamicConv(HyperConv):
    """Dynamic-filter convolution (paper's Seq2Seq-B): the kernel is a Linear map of the code.

    ``kernel = Linear(code_dim, numel(kernel))(code)``, i.e. a bank of size ``code_dim + 1`` mixed by
    ``[code, 1]``; this costs ``code_dim + 1`` kernels of parameters per layer. Shapes as :class:`HyperConv`.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int] | int = 3,
        code_dim: int = 64,
        stride: Sequence[int] | int = 1,
        padding: Sequence[int] | int | None = None,
        padding_mode: str = "reflect",
        bias: bool = True,
    ) -> None:
        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            kernel_size,
            code_dim,
            code_dim + 1,
            stride,
            padding,
            padding_mode,
            bias,
        )

    def _make_mix(self) -> nn.Module:
        return _AppendOne()

    def reset_parameters(self) -> None:
        # The bank holds code_dim + 1 slices summed with weights in [0, 1]: scale so a one-hot code plus the
        # constant slice gives a kernel of the usual Kaiming scale.
        super().reset_parameters()
        with torch.no_grad():
            self.weight_bank.mul_(0.5**0.5)
            if self.bias_bank is not None:
                self.bias_bank.mul_(0.5**0.5)
