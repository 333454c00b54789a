"""All-pairs synthesis of one brain-phantom subject: the fast path vs the straightforward loop, in one run.

Straightforward loop: for every source, target and slice, one float32 ``net(slab, target)`` call (the source is
re-encoded for every target and HyperConv kernels are recomputed in every call).
Fast path (:class:`~monai_seq2seq.inference.Seq2SeqSynthesizer`): slabs batched, every source encoded once per
batch and its representation reused for all targets, one folded decoder per target (kernels computed once),
channels-last on CUDA, bf16 autocast (default on CUDA; ``--amp`` on a CPU), optional ``torch.compile`` (with weight
freezing).

Prints the ratio, slices/s and, on CUDA, achieved TFLOP/s against the device's dense bf16 peak. Both paths run
on the same slices; the loop can be limited to a subset (``--loop-slices``) because on a CPU it takes minutes,
and its time is then scaled per slice (printed as such).

    python benchmarks/bench_allpairs.py --config paper            # GPU: whole subject
    python benchmarks/bench_allpairs.py --config paper --slices 8 # CPU: 8 slices
    python benchmarks/bench_allpairs.py --config paper --spacing 2.0 --slices 8 --batch-size 8 --compile
    python benchmarks/bench_allpairs.py --config paper --spacing 2.0 --slices 8 --batch-size 8 --compile --amp
"""

from __future__ import annotations

import argparse
import os
import time

# torch.compile's pool of compile workers otherwise lingers beside the measured work (on 2 cores it slowed the
# loop, timed in the same process, from 25 s to 37 s); set before torch is imported
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

import torch  # noqa: E402

from monai_seq2seq.core import BRAIN
from monai_seq2seq.core.machine import device_name
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


def phantom_volumes(spacing: float, slices: int | None) -> dict[str, torch.Tensor]:
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
        volumes[name] = vol
    return volumes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="paper")
    parser.add_argument("--spacing", type=float, default=1.0, help="phantom voxel size in mm (1.0: 197x233x189)")
    parser.add_argument("--slices", type=int, default=None, help="central slices to use (default: all)")
    parser.add_argument("--loop-slices", type=int, default=None, help="slices the straightforward loop runs")
    parser.add_argument(
        "--batch-size",
        type=lambda v: v if v == "auto" else int(v),
        default=32,
        help="slabs per call, or 'auto' (planned from measured CUDA memory)",
    )
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast on the fast path (default: on for CUDA, off for CPU)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    net = build_seq2seq(args.config, protocol="brain").to(device).eval()
    volumes = phantom_volumes(args.spacing, args.slices)
    depth = next(iter(volumes.values())).shape[-1]
    grid = tuple(next(iter(volumes.values())).shape[1:3])
    pairs = len(BRAIN) * len(BRAIN)
    amp = cuda if args.amp is None else args.amp
    synth = Seq2SeqSynthesizer(
        net, "brain", batch_size=args.batch_size, device=device, amp=amp, progress=False, compile=args.compile
    )

    # the loop first: after torch.compile, inductor's worker processes linger and would slow it down
    loop_slices = min(depth, args.loop_slices or depth)
    slabs = {n: pad_to_multiple(volume_to_slabs(v * 2 - 1), net.downsample_factor)[0] for n, v in volumes.items()}
    with torch.inference_mode():
        net(slabs["T1"][:1].to(device), 0)  # warm-up
        sync()
        loop_out = {}  # (target, source) -> the loop's slices, kept to check the fast path on every pair
        start = time.perf_counter()
        for source in BRAIN.names:
            for target in range(len(BRAIN)):
                loop_out[BRAIN.names[target], source] = [
                    net(slabs[source][z : z + 1].to(device), target)[0, 0, 1, : grid[0], : grid[1]]
                    for z in range(loop_slices)
                ]
        sync()
    t_loop_run = time.perf_counter() - start
    t_loop = t_loop_run * depth / loop_slices

    # warm-up; with --compile on every batch shape of the timed run (a new shape would recompile inside it)
    synth.all_pairs(volumes if args.compile else {k: v[..., :2] for k, v in volumes.items()})
    sync()
    start = time.perf_counter()
    fast = synth.all_pairs(volumes)
    sync()
    t_fast = time.perf_counter() - start

    # agreement of the two paths on every pair and every slice the loop ran, in [0, 1] (bf16: looser tolerance)
    err = max(
        (fast[target][source][0, ..., z] - ((pred.float().cpu() + 1) / 2).clamp(0, 1)).abs().max().item()
        for (target, source), preds in loop_out.items()
        for z, pred in enumerate(preds)
    )

    loop_flops, fast_flops = count_flops(args.config, grid, len(BRAIN), pairs, depth)

    params = sum(p.numel() for p in net.parameters()) / 1e6
    print(
        f"all {pairs} pairs of a {grid[0]}x{grid[1]}x{depth} brain phantom ({args.spacing} mm), "
        f"config={args.config} ({params:.1f} M params), device={device_name(device)}"
    )
    print(
        f"straightforward loop : {t_loop:9.2f} s"
        + (
            f"  (measured on {loop_slices} of {depth} slices: {t_loop_run:.2f} s, scaled per slice)"
            if loop_slices < depth
            else ""
        )
    )
    print(f"fast path            : {t_fast:9.2f} s  ({synth.describe()})")
    print(f"ratio                : {t_loop / t_fast:9.1f}x   (targets: >= 10x on GPU, >= 3x on CPU)")
    print(
        f"throughput           : {pairs * depth / t_fast:9.1f} slice-translations/s (fast), "
        f"{pairs * depth / t_loop:.1f} (loop)"
    )
    print(
        f"work                 : {fast_flops / 2e12:9.2f} TMAC fast path, {loop_flops / 2e12:.2f} TMAC loop; "
        f"max |fast - loop| = {err:.2e}"
    )
    if cuda:
        achieved = fast_flops / t_fast / 1e12
        peak = peak_tflops(device_name(device))
        share = f" = {100 * achieved / peak:.1f}% of the {peak:.0f} TFLOP/s dense bf16 peak" if peak else ""
        print(f"achieved             : {achieved:9.1f} TFLOP/s{share}")


if __name__ == "__main__":
    main()
