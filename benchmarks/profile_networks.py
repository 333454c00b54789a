"""Parameters and multiply-accumulates of the Seq2Seq-A/B/C variants on one 3x192x192 2.5D slice.

Prints our counts for the ``paper`` and ``released`` sizes next to the paper's Table 1 profile. Counting
runs on the meta device (no memory, no compute): ``python benchmarks/profile_networks.py``.

Columns:
  params / GMACs          everything the network holds and computes (torch.utils.flop_counter).
  w/o bank                parameters without the HyperConv weight banks, and MACs without the convolutions
                          HyperConv runs through torch.nn.functional: what a module-hook profiler (thop-like)
                          sees, since it counts nn.Conv/nn.Linear modules only. The MACs also leave out the
                          dynamic filters' (B) functional convolutions; B keeps its bank in the parameters,
                          as it is exactly the weight of a Linear(code_dim, numel(kernel)), which such a
                          profiler counts.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from monai_seq2seq.networks import DynamicConv, HyperConv, build_seq2seq

PAPER_TABLE1 = {"A": (43.7, 105.5), "B": (520.6, 83.8), "C": (35.8, 83.4)}  # MPa, GMACs (BraTS2021, 2.5D)


def profile(config: str, variant: str, size: int = 192, num_sequences: int = 4) -> dict[str, float]:
    with torch.device("meta"):
        net = build_seq2seq(config, variant, num_sequences=num_sequences)
        x = torch.randn(1, 3, size, size)
        code = torch.eye(net.code_dim)[1:2]
        with FlopCounterMode(display=False) as counter:
            net(x, code)
    functional = {name for name, m in net.named_modules() if isinstance(m, (HyperConv, DynamicConv))}
    per_module = counter.get_flop_counts()
    hyper_flops = sum(
        count
        for name in functional
        for op, count in per_module.get(f"Seq2Seq.{name}", {}).items()
        if "convolution" in str(op)
    )
    bank_params = sum(
        m.weight_bank.numel() + (m.bias_bank.numel() if m.bias_bank is not None else 0)
        for m in net.modules()
        if type(m) is HyperConv
    )
    params = sum(p.numel() for p in net.parameters())
    return {
        "params_M": params / 1e6,
        "params_wo_bank_M": (params - bank_params) / 1e6,
        "gmacs": counter.get_total_flops() / 2e9,
        "gmacs_wo_hyperconv": (counter.get_total_flops() - hyper_flops) / 2e9,
        "encoder_M": sum(p.numel() for p in net.encoder.parameters()) / 1e6,
        "decoder_M": sum(p.numel() for p in net.decoder.parameters()) / 1e6,
        "lstm_M": sum(p.numel() for p in net.temporal_encoder.parameters()) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=192)
    args = parser.parse_args()
    header = (
        f"{'config':9s} {'var':3s} {'params M':>9s} {'w/o bank':>9s} {'GMACs':>8s} {'w/o F.conv':>13s}"
        f" {'paper MPa':>9s} {'paper GMACs':>11s}   encoder / decoder / one ConvLSTM (M)"
    )
    print(f"Seq2Seq profile on one 3x{args.size}x{args.size} 2.5D slice (meta device)\n")
    print(header)
    print("-" * len(header))
    for config in ("paper", "released"):
        for variant in "ABC":
            p = profile(config, variant, args.size)
            mpa, gmac = PAPER_TABLE1[variant]
            print(
                f"{config:9s} {variant:3s} {p['params_M']:9.1f} {p['params_wo_bank_M']:9.1f} {p['gmacs']:8.1f}"
                f" {p['gmacs_wo_hyperconv']:13.1f} {mpa:9.1f} {gmac:11.1f}"
                f"   {p['encoder_M']:.1f} / {p['decoder_M']:.1f} / {p['lstm_M']:.1f}"
            )
    print("\npaper = the paper's Table 1 (BraTS2021, 2.5D 192x192). 'w/o bank' / 'w/o F.conv' = what a module-hook")
    print("profiler sees (HyperConv banks are raw parameters; HyperConv/dynamic convolutions are functional calls).")


if __name__ == "__main__":
    main()
