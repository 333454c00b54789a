"""Conv -> norm -> act units conditioned on the target-sequence code, in the paper's three flavours."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer

from .adain import AdaptiveInstanceNorm
from .hyperconv import DynamicConv, HyperConv
from .norm import get_float32_norm_layer

__all__ = ["Conditioning", "ConditionalConv", "ConditionalNorm", "ConditionalConvNormAct"]


class Conditioning:
    """How a decoder layer sees the target code (paper Table 1 ablation)."""

    HYPER = "hyper"  # Seq2Seq-C: HyperConv kernels from a weight bank
    DYNAMIC = "dynamic"  # Seq2Seq-B: dynamic filters, kernels = Linear(code)
    ADAIN = "adain"  # Seq2Seq-A: plain convolutions, AdaIN normalisation

    ALL = (HYPER, DYNAMIC, ADAIN)

    @staticmethod
    def check(name: str) -> str:
        name = str(name).lower()
        aliases = {"c": Conditioning.HYPER, "b": Conditioning.DYNAMIC, "a": Conditioning.ADAIN}
        name = aliases.get(name, name)
        if name not in Conditioning.ALL:
            raise ValueError(f"conditioning must be one of {Conditioning.ALL} (or 'A'/'B'/'C'), got {name!r}.")
        return name


class _PlainConv(nn.Module):
    """A plain convolution with the conditional ``forward(x, code)`` signature (code ignored)."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor, code: torch.Tensor, add_bias: bool = True) -> torch.Tensor:
        if add_bias:
            return self.conv(x)
        return self.conv._conv_forward(x, self.conv.weight, None)  # nn.ConvNd's own call, padding mode included

    @torch.no_grad()
    def fold(self, code: torch.Tensor, add_bias: bool = True) -> nn.Module:
        if add_bias or self.conv.bias is None:
            return self.conv
        conv = copy.deepcopy(self.conv)
        conv.bias = None
        return conv


class ConditionalConv(nn.Module):
    """A convolution of the chosen conditioning flavour with signature ``forward(x, code)``.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: kernel size (padding keeps the size, reflect mode).
        code_dim: embedded code length.
        conditioning: ``"hyper"``, ``"dynamic"`` or ``"adain"`` (plain conv for the latter).
        bank_dim: HyperConv weight-bank size.
        bias: whether the convolution has a bias.

    Shapes:
        ``x``: (B, in_channels, *spatial); ``code``: (B or 1, code_dim). Output: (B, out_channels, *spatial).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        code_dim: int = 64,
        conditioning: str = Conditioning.HYPER,
        bank_dim: int = 16,
        bias: bool = True,
    ) -> None:
        super().__init__()
        conditioning = Conditioning.check(conditioning)
        self.layer: nn.Module
        if conditioning == Conditioning.HYPER:
            self.layer = HyperConv(spatial_dims, in_channels, out_channels, kernel_size, code_dim, bank_dim, bias=bias)
        elif conditioning == Conditioning.DYNAMIC:
            self.layer = DynamicConv(spatial_dims, in_channels, out_channels, kernel_size, code_dim, bias=bias)
        else:
            conv = Conv[Conv.CONV, spatial_dims](
                in_channels, out_channels, kernel_size, padding=kernel_size // 2, padding_mode="reflect", bias=bias
            )
            self.layer = _PlainConv(conv)

    def forward(self, x: torch.Tensor, code: torch.Tensor, add_bias: bool = True) -> torch.Tensor:
        """``add_bias=False`` leaves the bias out (the caller's instance norm would cancel it)."""
        return self.layer(x, code, add_bias)

    def fold(self, code: torch.Tensor, add_bias: bool = True) -> nn.Module:
        return self.layer.fold(code, add_bias)


class _PlainNorm(nn.Module):
    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.norm(x)

    def fold(self, code: torch.Tensor) -> nn.Module:
        return self.norm


class ConditionalNorm(nn.Module):
    """The configured norm, or AdaIN under ``"adain"`` conditioning, with signature ``forward(x, code)``.

    ``cancels_bias``: whether the norm subtracts each sample's per-channel mean (instance norm without running
    statistics, AdaIN), so that a per-channel bias added before it has no effect on its output.
    """

    def __init__(self, spatial_dims: int, channels: int, norm: tuple | str, code_dim: int, conditioning: str) -> None:
        super().__init__()
        self.layer: nn.Module
        if Conditioning.check(conditioning) == Conditioning.ADAIN:
            self.layer = AdaptiveInstanceNorm(spatial_dims, channels, code_dim)
            self.cancels_bias = True
        else:
            layer = get_float32_norm_layer(norm, spatial_dims, channels)
            self.layer = _PlainNorm(layer)
            instance = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
            self.cancels_bias = isinstance(layer, instance) and not layer.track_running_stats

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.layer(x, code)

    def fold(self, code: torch.Tensor) -> nn.Module:
        return self.layer.fold(code)


class ConditionalConvNormAct(nn.Module):
    """``act(norm(conv(x, code), code))``; norm and act are optional.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: kernel size.
        code_dim: embedded code length.
        conditioning: ``"hyper"``, ``"dynamic"`` or ``"adain"``.
        bank_dim: HyperConv bank size.
        norm: norm type and args (MONAI factory), or ``None`` for none.
        act: activation type and args (MONAI factory), or ``None`` for none.

    Shapes:
        ``x``: (B, in_channels, *spatial); ``code``: (B or 1, code_dim). Output: (B, out_channels, *spatial).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        code_dim: int = 64,
        conditioning: str = Conditioning.HYPER,
        bank_dim: int = 16,
        norm: tuple | str | None = "instance",
        act: tuple | str | None = ("leakyrelu", {"negative_slope": 0.2}),
    ) -> None:
        super().__init__()
        self.conv = ConditionalConv(
            spatial_dims, in_channels, out_channels, kernel_size, code_dim, conditioning, bank_dim
        )
        self.norm = (
            ConditionalNorm(spatial_dims, out_channels, norm, code_dim, conditioning) if norm is not None else None
        )
        self.act = get_act_layer(act) if act is not None else nn.Identity()
        # An instance norm subtracts the per-channel mean, so the conv bias cancels exactly. It is left out: its
        # gradient is rounding noise, which Adam scales up to full steps, so a trained bias drifts; in bf16 it would
        # be rounded with the output before the norm subtracts it, and the rounding error scaled up by mean/std
        # (shipped brain weights: a bias near 24 against a std near 0.5 put bf16 outputs up to 0.17 off in [0, 1]).
        self.bias_cancels = self.norm is not None and self.norm.cancels_bias

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, code, not self.bias_cancels)
        if self.norm is not None:
            x = self.norm(x, code)
        return self.act(x)

    def fold(self, code: torch.Tensor) -> nn.Sequential:
        layers = [self.conv.fold(code, not self.bias_cancels)]
        if self.norm is not None:
            layers.append(self.norm.fold(code))
        layers.append(self.act)
        return nn.Sequential(*layers)
