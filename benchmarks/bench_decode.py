"""Decoding every target of one source, three ways, measured side by side in one run.

(a) batched:  one call ``net(x, [t0, t1, ...])``: the source is encoded once, all targets decode together with
              per-sample HyperConv kernels (grouped convolution).
(b) loop:     the straightforward way, one ``net(x, t)`` call per target (each call encodes the source again).
(c) folded:   the source encoded once, then one folded (plain-convolution) decoder per target, kernels
              computed once ahead of time.

Prints median wall times and the ratios. Target (issue 2): (a) at least 1.5x faster than (b) on CPU for the
``small`` configuration. ``python benchmarks/bench_decode.py [--config small --size 192 --slices 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from monai_seq2seq.networks import build_seq2seq


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small")
    parser.add_argument("--protocol", default="brain")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = build_seq2seq(args.config, protocol=args.protocol).to(device).eval()
    targets = list(range(net.num_sequences))
    x = torch.randn(1, 1, 3, args.size, args.size, device=device)
    folded = [net.fold(t) for t in targets]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    @torch.inference_mode()
    def batched():
        out = net(x, targets)
        sync()
        return out

    @torch.inference_mode()
    def loop():
        out = torch.cat([net(x, t) for t in targets])
        sync()
        return out

    @torch.inference_mode()
    def folded_decoders():
        z = folded[0].encode(x)
        out = torch.cat([f.decode(z) for f in folded])
        sync()
        return out

    ref = loop()
    for name, fn in (("batched", batched), ("folded", folded_decoders)):
        err = (fn() - ref).abs().max().item()
        assert err < 1e-4, f"{name} differs from the loop by {err}"
    t_a, t_b, t_c = (median_time(f, args.repeats) for f in (batched, loop, folded_decoders))
    params = sum(p.numel() for p in net.parameters()) / 1e6
    print(
        f"decode all {len(targets)} targets of one 3x{args.size}x{args.size} slice; config={args.config} "
        f"({params:.1f} M params), device={device}, threads={torch.get_num_threads()}, median of {args.repeats}"
    )
    print(f"(a) batched per-sample targets : {t_a * 1e3:8.1f} ms")
    print(f"(b) loop of single-target calls: {t_b * 1e3:8.1f} ms")
    print(f"(c) folded decoders, one encode: {t_c * 1e3:8.1f} ms")
    print(f"ratio (b)/(a) = {t_b / t_a:.2f}x   (target >= 1.5x on CPU)")
    print(f"ratio (b)/(c) = {t_b / t_c:.2f}x")
    print("outputs of (a) and (c) equal (b) to 1e-4")


if __name__ == "__main__":
    main()
