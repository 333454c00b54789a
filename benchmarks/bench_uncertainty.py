"""Cost of the per-voxel uncertainty: synthesis of T1Gd with and without it, side by side in one run.

Without: ``Seq2SeqSynthesizer.synthesize`` (every source encoded once, the fused representation decoded once).
With: :func:`~monai_seq2seq.inference.synthesize_with_uncertainty` (the same encodings, plus one decode per
source for the single-source members); ``--flips`` adds the mirrored member (every source encoded again).
The runs alternate (``--repeats`` rounds) and the medians are compared, so a busy machine slows both alike.

    python benchmarks/bench_uncertainty.py                          # shipped brain weights, one 2 mm subject
    python benchmarks/bench_uncertainty.py --slices 16 --repeats 3  # quicker on a CPU
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from monai_seq2seq.core.machine import describe_machine
from monai_seq2seq.inference import Seq2SeqSynthesizer, synthesize_with_uncertainty
from monai_seq2seq.networks import build_seq2seq

BRAIN_BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "seq2seq_brain"
SOURCES = ("T1", "T2", "FLAIR")


def brain_network(config: str, weights: bool) -> torch.nn.Module:
    """The brain bundle's network (``small``, variant C) with its sha256-checked weights, or random ``config``."""
    from monai_seq2seq.core.integrity import load_weights

    if not weights:
        torch.manual_seed(0)
        return build_seq2seq(config, protocol="brain").eval()
    net = build_seq2seq("small", variant="C", protocol="brain")
    net.load_state_dict(load_weights(BRAIN_BUNDLE / "models" / "model.pt", bundle_dir=BRAIN_BUNDLE))
    return net.eval()


def phantom_sources(spacing: float, slices: int | None, seed: int = 3000) -> dict[str, torch.Tensor]:
    """T1, T2, FLAIR of one held-out brain phantom subject, normalised as the bundle does (central ``slices``)."""
    from monai_seq2seq.phantoms import BrainPhantomCohort
    from monai_seq2seq.transforms import PercentileScaleIntensityd

    sample = PercentileScaleIntensityd(list(SOURCES), nonzero=True)(
        BrainPhantomCohort(1, seed=seed, spacing=spacing)[0]
    )
    volumes = {}
    for name in SOURCES:
        vol = torch.as_tensor(sample[name]).as_subclass(torch.Tensor).float()
        if slices:
            start = max(0, vol.shape[-1] // 2 - slices // 2)
            vol = vol[..., start : start + slices]
        volumes[name] = vol
    return volumes


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small", help="network size when --no-weights")
    parser.add_argument("--weights", action=argparse.BooleanOptionalAction, default=True, help="shipped brain weights")
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--slices", type=int, default=None, help="central slices (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=lambda v: v if v == "auto" else int(v), default=16)
    parser.add_argument("--flips", action="store_true", help="also time the mirrored member")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="default: on for CUDA")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    amp = device.type == "cuda" if args.amp is None else args.amp
    net = brain_network(args.config, args.weights)
    synth = Seq2SeqSynthesizer(net, "brain", batch_size=args.batch_size, device=device, amp=amp, progress=False)
    volumes = phantom_sources(args.spacing, args.slices)
    runs = {
        "without": lambda: synth.synthesize(volumes, "T1Gd"),
        "with": lambda: synthesize_with_uncertainty(synth, volumes, "T1Gd", flips=False),
    }
    if args.flips:
        runs["with + flips"] = lambda: synthesize_with_uncertainty(synth, volumes, "T1Gd", flips=True)
    for run in runs.values():  # warm-up (folded decoders, allocator)
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    shape = "x".join(str(s) for s in next(iter(volumes.values())).shape[1:])
    print(
        f"T1Gd from {'+'.join(SOURCES)} of a {shape} brain phantom ({args.spacing} mm), "
        f"{'shipped brain weights' if args.weights else 'random ' + args.config}, batch {args.batch_size}, "
        f"amp {amp}, {args.repeats} alternating rounds (median)"
    )
    print(f"machine: {describe_machine(device)}")
    for name, value in medians.items():
        ratio = value / medians["without"]
        print(f"{name:<14}: {value:8.3f} s   ratio {ratio:5.2f}x")
    return {"seconds": medians, "ratio": {k: v / medians["without"] for k, v in medians.items()}}


if __name__ == "__main__":
    main()
