"""Parameters and multiply-accumulates of networks, counted with ``torch.utils.flop_counter`` (meta-device friendly).

The single owner of the profile that ``seq2seq profile``, ``benchmarks/profile_networks.py`` and the Table 1
experiment print. ``FlopCounterMode`` sees every convolution and matrix product, including the functional ones of
HyperConv and the dynamic filters (which a module-hook profiler misses); MACs = FLOPs / 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .blocks.hyperconv import DynamicConv, HyperConv
from .nets.factory import build_seq2seq

__all__ = ["count_macs", "profile_seq2seq"]


def _flop_counter(module: nn.Module | Callable, *inputs: Any) -> FlopCounterMode:
    """A finished ``FlopCounterMode`` of one ``module(*inputs)`` call without autograd (a module in eval mode)."""
    was_training = module.training if isinstance(module, nn.Module) else None
    if was_training is not None:
        module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*inputs)
    finally:
        if was_training is not None:
            module.train(was_training)
    return counter


def count_macs(module: nn.Module | Callable, *inputs: Any) -> int:
    """Multiply-accumulates of one ``module(*inputs)`` call, without autograd.

    A module runs in eval mode (its mode is restored after); any other callable (e.g. ``net.encode``) as it is.
    Build the module and its inputs under ``with torch.device("meta"):`` to count without memory or compute.

    Args:
        module: a network, or a callable such as one of its methods.
        inputs: its positional inputs.

    Returns:
        FLOPs / 2 as counted by ``torch.utils.flop_counter.FlopCounterMode``.
    """
    return int(_flop_counter(module, *inputs).get_total_flops() // 2)


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def profile_seq2seq(
    config: str, variant: str = "C", size: int = 192, num_sequences: int = 4, protocol: str | None = None
) -> dict[str, float]:
    """Parameters (millions) and GMACs of a named Seq2Seq size on one 3 x size x size 2.5D slice (meta device).

    Args:
        config: a named size of :func:`~monai_seq2seq.networks.build_seq2seq` (``"paper"``, ``"released"``...).
        variant: ``"A"`` (AdaIN), ``"B"`` (dynamic filters) or ``"C"`` (HyperConv).
        size: in-plane size of the slice.
        num_sequences: sequences the network is built for (ignored when ``protocol`` is given).
        protocol: a protocol name (e.g. ``"brain"``) setting the sequences, frames and code size.

    Returns:
        ``params_M`` and ``gmacs``: everything the network holds and computes; ``params_wo_bank_M``: without the
        HyperConv weight banks; ``gmacs_wo_hyperconv``: without the functional convolutions of HyperConv and the
        dynamic filters (``params_wo_bank_M`` and ``gmacs_wo_hyperconv`` are what a module-hook profiler sees);
        ``encoder_M``, ``decoder_M`` and ``lstm_M`` (the temporal ConvLSTM).

    Raises:
        ValueError: unknown ``config`` or ``variant``.
    """
    build = {"protocol": protocol} if protocol is not None else {"num_sequences": num_sequences}
    with torch.device("meta"):
        net = build_seq2seq(config, variant, **build)
        counter = _flop_counter(net, torch.randn(1, 3, size, size), torch.eye(net.code_dim)[:1])
    functional = {name for name, m in net.named_modules() if isinstance(m, (HyperConv, DynamicConv))}
    per_module = counter.get_flop_counts()
    root = type(net).__name__
    hyper_flops = sum(
        count
        for name in functional
        for op, count in per_module.get(f"{root}.{name}", {}).items()
        if "convolution" in str(op)
    )
    # a dynamic filter (B) keeps its bank: it is exactly the weight of a Linear(code_dim, numel(kernel)), which a
    # module-hook profiler counts
    bank_params = sum(
        m.weight_bank.numel() + (m.bias_bank.numel() if m.bias_bank is not None else 0)
        for m in net.modules()
        if type(m) is HyperConv
    )
    params = _numel(net)
    total = counter.get_total_flops()
    return {
        "params_M": params / 1e6,
        "params_wo_bank_M": (params - bank_params) / 1e6,
        "gmacs": total / 2e9,
        "gmacs_wo_hyperconv": (total - hyper_flops) / 2e9,
        "encoder_M": _numel(net.encoder) / 1e6,
        "decoder_M": _numel(net.decoder) / 1e6,
        "lstm_M": _numel(net.temporal_encoder) / 1e6,
    }
