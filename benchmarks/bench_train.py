"""Training throughput of the Seq2Seq GAN step, float32 vs AMP, and peak memory of a breast 4D step.

One iteration is :class:`~monai_seq2seq.engines.Seq2SeqTrainer`'s whole step on a translation pair (generator with
L1 + LSGAN + cycle consistency, then the target's discriminator; perceptual term off, as in the shipped runs),
timed by ignite events after warm-up iterations, on random batches already on the device (the data pipeline is
not measured). On CUDA the batch sizes are 1 and the largest power of two that fits (found by doubling until
out of memory), and each runs in float32 and with AMP (bf16 autocast); the breast step reports its peak CUDA
memory. On a CPU both precisions run too (bf16 autocast, which pays on chips with AVX512-BF16 or AMX), at the
``--batch-sizes`` given; the AMP / float32 speed ratio of each batch size is printed.

    python benchmarks/bench_train.py                              # GPU: paper size, brain 192x192
    python benchmarks/bench_train.py --breast                     # + breast 4D: 6 frames of 352x352
    python benchmarks/bench_train.py --config small --size 96 --batch-sizes 1 4 --iterations 5   # CPU
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
from ignite.engine import Events

from monai_seq2seq.core import get_protocol
from monai_seq2seq.core.machine import device_name
from monai_seq2seq.engines import Seq2SeqTrainer
from monai_seq2seq.losses import Seq2SeqLoss
from monai_seq2seq.networks import SequenceDiscriminators, build_seq2seq
from monai_seq2seq.transforms.missing import MASK_KEY

__all__ = ["measure", "main"]


def _batch(protocol, batch_size: int, size: int, device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(0)
    batch = {
        spec.name: (torch.rand(batch_size, spec.frames, 3, size, size, generator=gen) * 2 - 1).to(device)
        for spec in protocol.sequences
    }
    batch[MASK_KEY] = torch.ones(batch_size, len(protocol), dtype=torch.bool)
    return batch


def measure(
    config: str,
    protocol: str,
    batch_size: int,
    size: int,
    device: torch.device,
    amp: bool,
    iterations: int,
    warmup: int,
    disc_channels: int,
) -> dict:
    """Iterations/s (and peak CUDA memory) of ``iterations`` timed training steps after ``warmup`` steps."""
    spec = get_protocol(protocol)
    torch.manual_seed(0)
    generator = build_seq2seq(config, protocol=protocol).to(device)
    discriminator = SequenceDiscriminators(2, 3, len(spec), target_frames=spec.frames, channels=disc_channels)
    discriminator = discriminator.to(device)
    batch = _batch(spec, batch_size, size, device)
    trainer = Seq2SeqTrainer(
        device,
        1,
        [batch] * (warmup + iterations),
        generator,
        discriminator,
        torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999)),
        torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999)),
        Seq2SeqLoss(),
        spec.names,
        self_recon_prob=0.0,
        amp=amp,
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    marks: dict[str, float] = {}

    def start(_):
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        marks["start"] = time.perf_counter()

    def stop(_):
        sync()
        marks["stop"] = time.perf_counter()

    if warmup:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(once=warmup), start)
    else:
        trainer.add_event_handler(Events.STARTED, start)
    trainer.add_event_handler(Events.COMPLETED, stop)
    trainer.run()
    result = {"batch": batch_size, "amp": trainer.use_amp, "it_s": iterations / (marks["stop"] - marks["start"])}
    if device.type == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def largest_fitting_batch(fits, limit: int) -> int:
    """The largest power of two <= ``limit`` for which ``fits(batch)`` is True (doubling from 1), 0 if none."""
    best, batch = 0, 1
    while batch <= limit and fits(batch):
        best, batch = batch, batch * 2
    return best


def _fits(args, device: torch.device, amp: bool):
    def fits(batch: int) -> bool:
        try:
            measure(args.config, "brain", batch, args.size, device, amp, 1, 1, args.disc_channels)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            torch.cuda.empty_cache()

    return fits


def _line(name: str, r: dict) -> str:
    memory = f", peak {r['peak_gib']:.1f} GiB" if "peak_gib" in r else ""
    return f"{name:<34} batch {r['batch']:>3}: {r['it_s']:7.2f} it/s = {r['it_s'] * r['batch']:7.1f} samples/s{memory}"


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="paper")
    parser.add_argument("--size", type=int, default=192, help="brain slice size (H = W)")
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=None,
        help="batch sizes (default: CUDA 1 and the largest that fits; CPU 1)",
    )
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--disc-channels", type=int, default=64, help="PatchGAN width (paper 64)")
    parser.add_argument("--breast", action="store_true", help="also a breast 4D step (6 frames, --breast-size)")
    parser.add_argument("--breast-size", type=int, default=352)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    print(f"training step of config={args.config}, device={device_name(device)}, torch {torch.__version__}")
    precisions = [False, True]
    results = []
    for amp in precisions:
        sizes = args.batch_sizes
        if sizes is None:
            sizes = [1]
            if cuda:
                largest = largest_fitting_batch(_fits(args, device, amp), args.max_batch)
                sizes += [largest] if largest > 1 else []
        for batch in sizes:
            r = measure(
                args.config, "brain", batch, args.size, device, amp, args.iterations, args.warmup, args.disc_channels
            )
            results.append({"protocol": "brain", "size": args.size, **r})
            print(_line(f"brain {args.size}x{args.size} {'AMP bf16' if r['amp'] else 'float32'}", r))
    _print_ratios(results, "brain")
    if not cuda:
        print("peak memory: CUDA only")
    if args.breast:
        for amp in precisions:
            r = measure(
                args.config,
                "breast",
                1,
                args.breast_size,
                device,
                amp,
                max(2, args.iterations // 4),
                1,
                args.disc_channels,
            )
            results.append({"protocol": "breast", "size": args.breast_size, **r})
            print(_line(f"breast 6x{args.breast_size}x{args.breast_size} {'AMP bf16' if r['amp'] else 'float32'}", r))
        _print_ratios(results, "breast")
    return results


def _print_ratios(results: list[dict], protocol: str) -> None:
    """The AMP / float32 speed ratio of each batch size measured in both precisions."""
    mine = [r for r in results if r["protocol"] == protocol]
    for batch in sorted({r["batch"] for r in mine}):
        fp32 = [r["it_s"] for r in mine if r["batch"] == batch and not r["amp"]]
        bf16 = [r["it_s"] for r in mine if r["batch"] == batch and r["amp"]]
        if fp32 and bf16:
            print(f"{protocol} batch {batch}: AMP bf16 / float32 = {bf16[0] / fp32[0]:.2f}x")


if __name__ == "__main__":
    main()
