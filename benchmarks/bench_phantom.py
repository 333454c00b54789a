"""Time phantom generation on the CPU: one 1 mm brain subject and one breast subject.

Usage::

    python benchmarks/bench_phantom.py [--threads 2] [--repeats 3]

Prints seconds per subject (template loading is timed separately: it happens once per process).
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for BLAS/torch (default 2)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    from monai_seq2seq.phantoms import anatomy
    from monai_seq2seq.phantoms.brain import BrainPhantomConfig, generate_brain_subject
    from monai_seq2seq.phantoms.breast import generate_breast_subject

    t = time.perf_counter()
    anatomy.load_mni_template()
    print(f"load MNI template (once per process): {time.perf_counter() - t:.2f} s")
    for label, fn in (
        ("brain 1 mm (197x233x189, 4 sequences)", lambda i: generate_brain_subject(0, i)),
        (
            "brain 2 mm (98x116x94, 4 sequences)",
            lambda i: generate_brain_subject(0, i, BrainPhantomConfig(spacing=2.0)),
        ),
        ("breast 2 mm (160x96x64, 8 sequences, 22 volumes)", lambda i: generate_breast_subject(0, i)),
    ):
        fn(99)  # warm-up (filtered template per spacing is cached)
        times = []
        for i in range(args.repeats):
            t = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t)
        print(f"{label}: {min(times):.2f} s best, {sum(times) / len(times):.2f} s mean of {args.repeats}")


if __name__ == "__main__":
    main()
