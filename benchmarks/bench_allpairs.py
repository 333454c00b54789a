"""All-pairs synthesis of one brain-phantom subject: the authors' loop, the per-slice loop and the fast path.

Authors' loop (the baseline, their test scripts' calling pattern written with this package's network): for every
ordered pair (source, target), self pairs included, one call ``net(every slab of the subject, one-hot code)``: the
source is re-encoded for every target and the HyperConv kernels are recomputed in every call.
Per-slice loop: for every source, target and slice, one float32 ``net(slab, target)`` call.
Fast path (:class:`~monai_seq2seq.inference.Seq2SeqSynthesizer`): slabs batched, every source encoded once per
batch and its representation reused for all targets, one folded decoder per target (kernels computed once),
channels-last on CUDA, bf16 autocast (default on CUDA; ``--amp`` on a CPU), optional ``torch.compile`` (with weight
freezing).

Prints the times, the ratios to the authors' loop, the multiply-accumulate bound of that ratio (the work the fast
path leaves out: re-encoding and recomputed kernels), the agreement of the three paths on every pair and slice, and
on CUDA the achieved TFLOP/s against the device's dense bf16 peak. All paths run on the same slabs (edge slices
replicated, as the synthesiser does; the authors' script drops the two edge slabs instead). The per-slice loop can
be limited to a subset (``--loop-slices``, 0 skips it) because on a CPU it takes minutes; its time is then scaled
per slice (printed as such).

    python benchmarks/bench_allpairs.py --config paper            # GPU: whole subject
    python benchmarks/bench_allpairs.py --config small --spacing 1.5 --slices 16 --size 128 --batch-size 16
    python benchmarks/bench_allpairs.py --config paper --spacing 2.0 --slices 8 --batch-size 8 --compile --amp
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# torch.compile's pool of compile workers otherwise lingers beside the measured work (on 2 cores it slowed the
# loop, timed in the same process, from 25 s to 37 s); set before torch is imported
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

import torch  # noqa: E402

from monai_seq2seq.core import BRAIN
from monai_seq2seq.core.machine import describe_machine, device_name
from monai_seq2seq.inference import Seq2SeqSynthesizer, volume_to_slabs
from monai_seq2seq.networks import build_seq2seq, count_macs
from monai_seq2seq.transforms.slabs import pad_to_multiple

BF16_DENSE_PEAK_TFLOPS = {"H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H200": 989.0, "A100": 312.0}


def peak_tflops(name: str) -> float | None:
    for key, value in BF16_DENSE_PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


def count_flops(config: str, grid: tuple[int, int], sources: int, pairs: int, depth: int) -> tuple[float, float]:
    """FLOPs of the straightforward loop and of the fast path (encode + ConvLSTM per source, decoder per pair)."""
    with torch.device("meta"):
        net = build_seq2seq(config, protocol="brain")
        x = torch.randn(1, 1, 3, *[s + (-s) % 4 for s in grid])
        code = torch.eye(net.code_dim)[:1]
        with torch.no_grad():  # the inputs of the pieces (count_macs counts without autograd)
            z = net.encode(x)
            h = net.expand_frames(z, 1)
        whole = 2 * count_macs(net, x, code)
        encode = 2 * count_macs(net.encode, x)
        frames = 2 * count_macs(net.expand_frames, z, 1)
        decoder = 2 * count_macs(net.decoder, h[:, 0], code)
    loop = whole * pairs * depth
    fast = ((encode + frames) * sources + decoder * pairs) * depth
    return float(loop), float(fast)


def phantom_volumes(spacing: float, slices: int | None, size: int | None = None) -> dict[str, torch.Tensor]:
    """The brain phantom's four sequences in [0, 1]; ``slices``: the central ones; ``size``: the central
    ``size x size`` of each slice (zero-padded where the phantom is smaller)."""
    from monai.transforms import CenterSpatialCrop, SpatialPad

    from monai_seq2seq.phantoms import BrainPhantomCohort

    sample = BrainPhantomCohort(num_subjects=1, seed=0, spacing=spacing)[0]
    volumes = {}
    for name in BRAIN.names:
        vol = torch.as_tensor(sample[name]).as_subclass(torch.Tensor).float()  # plain: no MetaTensor overhead
        lo, hi = torch.quantile(vol[vol > 0], torch.tensor([0.005, 0.995])) if (vol > 0).any() else (0, 1)
        vol = ((vol - lo) / (hi - lo)).clamp(0, 1)
        if slices:
            mid = vol.shape[-1] // 2
            vol = vol[..., mid - slices // 2 : mid - slices // 2 + slices]
        if size:
            roi = (size, size, vol.shape[-1])
            vol = SpatialPad(roi)(CenterSpatialCrop(roi)(vol)).as_subclass(torch.Tensor)
        volumes[name] = vol
    return volumes


def authors_loop(net, slabs: dict[str, torch.Tensor], grid: tuple[int, int], device, sync) -> tuple[dict, float]:
    """The authors' calling pattern: per ordered pair, all slabs of the subject in one call with a one-hot code.

    Returns:
        ``{(target, source): (Z, X, Y) middle channels in [-1, 1]}`` and the seconds the 16 calls took.
    """
    out = {}
    with torch.inference_mode():
        code = torch.zeros(1, net.code_dim, device=device)
        code[0, 0] = 1
        net(slabs["T1"][:1].to(device), code, 1)  # warm-up
        sync()
        start = time.perf_counter()
        for source in BRAIN.names:
            x = slabs[source].to(device)  # (Z, 1, 3, X, Y): every slab of the subject
            for index, target in enumerate(BRAIN.names):
                code = torch.zeros(1, net.code_dim, device=device)
                code[0, index] = 1
                out[target, source] = net(x, code, 1)[:, 0, 1, : grid[0], : grid[1]]
        sync()
    return out, time.perf_counter() - start


def slice_loop(net, slabs: dict[str, torch.Tensor], grid, device, sync, slices: int) -> tuple[dict, float]:
    """For every source, target and slice, one ``net(slab, target)`` call (the first ``slices`` slices)."""
    out = {}
    with torch.inference_mode():
        net(slabs["T1"][:1].to(device), 0)  # warm-up
        sync()
        start = time.perf_counter()
        for source in BRAIN.names:
            for target in range(len(BRAIN)):
                out[BRAIN.names[target], source] = torch.stack(
                    [
                        net(slabs[source][z : z + 1].to(device), target)[0, 0, 1, : grid[0], : grid[1]]
                        for z in range(slices)
                    ]
                )
        sync()
    return out, time.perf_counter() - start


def max_difference(reference: dict, other: dict, fast: bool = False) -> float:
    """Largest difference over every pair and slice, in [0, 1]; ``fast``: ``other`` holds synthesiser volumes."""
    err = 0.0
    for (target, source), ref in reference.items():
        ref = ((ref.float().cpu() + 1) / 2).clamp(0, 1)
        got = other[target][source][0].permute(2, 0, 1) if fast else ((other[target, source].float().cpu() + 1) / 2)
        got = got.clamp(0, 1)
        err = max(err, float((got - ref[: got.shape[0]]).abs().max()))
    return err


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="paper")
    parser.add_argument("--spacing", type=float, default=1.0, help="phantom voxel size in mm (1.0: 197x233x189)")
    parser.add_argument("--slices", type=int, default=None, help="central slices to use (default: all)")
    parser.add_argument("--size", type=int, default=None, help="central in-plane size x size (default: the phantom's)")
    parser.add_argument(
        "--loop-slices", type=int, default=None, help="slices the per-slice loop runs (default all; 0: skip it)"
    )
    parser.add_argument(
        "--batch-size",
        type=lambda v: v if v == "auto" else int(v),
        default=32,
        help="slabs per call, or 'auto' (planned from measured CUDA memory)",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="time the authors' loop and the fast path this often, keep the fastest"
    )
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast on the fast path (default: on for CUDA, off for CPU)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the three paths; print and return times (s), ratios to the authors' loop, MAC bound and differences."""
    args = parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    net = build_seq2seq(args.config, protocol="brain").to(device).eval()
    volumes = phantom_volumes(args.spacing, args.slices, args.size)
    depth = next(iter(volumes.values())).shape[-1]
    grid = tuple(next(iter(volumes.values())).shape[1:3])
    pairs = len(BRAIN) * len(BRAIN)
    amp = cuda if args.amp is None else args.amp
    synth = Seq2SeqSynthesizer(
        net, "brain", batch_size=args.batch_size, device=device, amp=amp, progress=False, compile=args.compile
    )
    slabs = {n: pad_to_multiple(volume_to_slabs(v * 2 - 1), net.downsample_factor)[0] for n, v in volumes.items()}

    # the loops first: after torch.compile, inductor's worker processes linger and would slow them down
    runs = [authors_loop(net, slabs, grid, device, sync) for _ in range(max(1, args.repeats))]
    authors, t_authors = runs[0][0], min(t for _, t in runs)
    loop_slices = min(depth, depth if args.loop_slices is None else args.loop_slices)
    per_slice, t_slice_run = slice_loop(net, slabs, grid, device, sync, loop_slices) if loop_slices else ({}, 0.0)
    t_slice = t_slice_run * depth / loop_slices if loop_slices else float("nan")

    # warm-up; with --compile on every batch shape of the timed run (a new shape would recompile inside it)
    synth.all_pairs(volumes if args.compile else {k: v[..., :2] for k, v in volumes.items()})
    t_fast = float("inf")
    for _ in range(max(1, args.repeats)):
        sync()
        start = time.perf_counter()
        fast = synth.all_pairs(volumes)
        sync()
        t_fast = min(t_fast, time.perf_counter() - start)

    err_fast = max_difference(authors, fast, fast=True)
    err_slice = max_difference(authors, per_slice) if loop_slices else float("nan")
    loop_flops, fast_flops = count_flops(args.config, grid, len(BRAIN), pairs, depth)
    results = {
        "authors_s": t_authors,
        "slice_loop_s": t_slice,
        "fast_s": t_fast,
        "ratio_fast": t_authors / t_fast,
        "ratio_slice_loop": t_authors / t_slice if loop_slices else float("nan"),
        "mac_bound": loop_flops / fast_flops,
        "max_diff_fast": err_fast,
        "max_diff_slice_loop": err_slice,
    }
    params = sum(p.numel() for p in net.parameters()) / 1e6
    print(f"machine              : {describe_machine(device)}")
    command = " ".join(argv if argv is not None else sys.argv[1:])
    print(f"command              : python benchmarks/bench_allpairs.py {command}")
    print(
        f"all {pairs} pairs of {depth} slabs of 3x{grid[0]}x{grid[1]} (brain phantom, {args.spacing} mm), "
        f"config={args.config} ({params:.2f} M params), upsample={net.upsample_mode}"
    )
    best = f", fastest of {args.repeats}" if args.repeats > 1 else ""
    print(f"authors' loop        : {t_authors:9.2f} s  (one call per ordered pair, all {depth} slabs, fp32{best})")
    if loop_slices:
        scaled = (
            f"  (measured on {loop_slices} of {depth} slices: {t_slice_run:.2f} s, scaled)"
            if loop_slices < depth
            else ""
        )
        print(f"per-slice loop       : {t_slice:9.2f} s  ({results['ratio_slice_loop']:.2f}x){scaled}")
    print(f"fast path            : {t_fast:9.2f} s  ({synth.describe()}{best})")
    print(
        f"ratio to the authors : {results['ratio_fast']:9.2f}x  "
        f"(multiply-accumulate bound {results['mac_bound']:.2f}x: "
        f"{loop_flops / 2e12:.3f} TMAC authors' loop, {fast_flops / 2e12:.3f} TMAC fast path)"
    )
    print(
        f"throughput           : {pairs * depth / t_fast:9.1f} slice-translations/s (fast), "
        f"{pairs * depth / t_authors:.1f} (authors' loop)"
    )
    print(
        f"agreement            : max |fast - authors'| = {err_fast:.2e}, max |per-slice - authors'| = {err_slice:.2e} "
        "(in [0, 1])"
    )
    if cuda:
        achieved = fast_flops / t_fast / 1e12
        peak = peak_tflops(device_name(device))
        share = f" = {100 * achieved / peak:.1f}% of the {peak:.0f} TFLOP/s dense bf16 peak" if peak else ""
        print(f"achieved             : {achieved:9.1f} TFLOP/s{share}")
    return results


if __name__ == "__main__":
    main()
