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

The counting is :func:`monai_seq2seq.networks.profile_seq2seq`; this script prints it beside the paper.
"""

from __future__ import annotations

import argparse

from monai_seq2seq.networks import profile_seq2seq

PAPER_TABLE1 = {"A": (43.7, 105.5), "B": (520.6, 83.8), "C": (35.8, 83.4)}  # MPa, GMACs (BraTS2021, 2.5D)

__all__ = ["PAPER_TABLE1", "profile", "main"]


def profile(config: str, variant: str, size: int = 192, num_sequences: int = 4) -> dict[str, float]:
    """:func:`monai_seq2seq.networks.profile_seq2seq` (the counting lives in the library)."""
    return profile_seq2seq(config, variant, size, num_sequences)


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
