"""A cohort sharded over torchrun ranks: 1 vs N processes on one machine, subjects per second and parallel efficiency.

Each count launches ``torchrun --standalone --nproc_per_node=P -m monai.bundle run`` on the bundle's
``multi_gpu_<config>.json`` (the phantom cohort, nothing read from disk) and is timed twice: end to end (process
start, imports, network build, every subject, the gather and rank 0's cohort outputs) and the subjects alone (the
slowest rank's evaluator run, from ignite's "Engine run finished" log line). Parallel efficiency is
``(t_1 / t_P) / P``. On a CPU every count gets the same threads in all (``--threads`` split over the processes),
so the figure is what sharding gains over threads; ``--device cuda`` gives each process its own GPU.

    python benchmarks/bench_cohort.py                                   # CPU, 1 vs 2 processes
    python benchmarks/bench_cohort.py --processes 1 2 4 --subjects 16 --network small
    python benchmarks/bench_cohort.py --device cuda --processes 1 2     # one GPU per process
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from monai_seq2seq.core.machine import describe_machine
from monai_seq2seq.zoo.configs import config_files

ROOT = Path(__file__).resolve().parents[1]
ENGINE_TIME = re.compile(r"Engine run finished\. Time taken: (\d+):(\d+):([\d.]+)")


def engine_seconds(log: str) -> float | None:
    """The longest evaluator run of the ranks in a torchrun log (``None``: no rank logged one)."""
    times = [int(h) * 3600 + int(m) * 60 + float(s) for h, m, s in ENGINE_TIME.findall(log)]
    return max(times) if times else None


def run_cohort(args: argparse.Namespace, processes: int, out: Path) -> dict:
    """One torchrun launch of ``processes`` ranks; its timings."""
    bundle = ROOT / "bundles" / args.bundle
    overrides = {
        "output_dir": str(out),
        "bundle_root": str(bundle),
        "num_subjects": args.subjects,
        "phantom_spacing": args.spacing,
        "load_weights": args.network == "small",
        "network_def#name": args.network,
        "evaluator#use_lpips": False,
    }
    if args.config == "inference":
        overrides.pop("evaluator#use_lpips")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", str(config_files(bundle, f"multi_gpu_{args.config}"))]
    for key, value in overrides.items():
        cmd += [
            f"--{key}",
            value if isinstance(value, str) else repr(value) if isinstance(value, bool) else json.dumps(value),
        ]
    threads = args.threads_per_process or max(1, args.threads // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=bundle, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{processes} process(es) failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    engine = engine_seconds(result.stdout + result.stderr)
    return {"processes": processes, "wall_s": wall, "engine_s": engine, "subjects": args.subjects}


def summarise(results: list[dict]) -> list[str]:
    """Lines of the side-by-side table: subjects/s and parallel efficiency, end to end and subjects alone."""
    base = results[0]
    lines = [
        "| processes | wall s | subjects/s | efficiency | subjects-only s | subjects/s | efficiency |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = []
        for key in ("wall_s", "engine_s"):
            t, t1 = r[key], base[key]
            if t is None or t1 is None:
                cells += ["n/a", "n/a", "n/a"]
                continue
            efficiency = (t1 / t) / (r["processes"] / base["processes"])
            cells += [f"{t:.1f}", f"{r['subjects'] / t:.3f}", f"{efficiency:.0%}"]
        lines.append(f"| {r['processes']} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="seq2seq_brain")
    parser.add_argument("--config", default="differentiation", choices=["differentiation", "evaluate", "inference"])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--spacing", type=float, default=4.0, help="phantom voxel size in mm")
    parser.add_argument("--network", default="tiny", choices=["tiny", "small"], help="small: the bundle's weights")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads over all processes")
    parser.add_argument(
        "--threads-per-process", type=int, default=None, help="instead of --threads: the same threads in every process"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per count, interleaved; the fastest is kept")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        runs = [run_cohort(args, p, out / f"p{p}_{r}") for r in range(args.repeats) for p in args.processes]
    results = [min((r for r in runs if r["processes"] == p), key=lambda r: r["wall_s"]) for p in args.processes]
    print(
        f"bench_cohort: {args.config} of {args.subjects} {args.bundle} phantom subjects ({args.spacing:g} mm), "
        f"network {args.network}, "
        + (
            f"{args.threads_per_process} thread(s) per process"
            if args.threads_per_process
            else f"{args.threads} threads in all"
        )
        + f", fastest of {args.repeats}, on {describe_machine(args.device)}; load average {os.getloadavg()[0]:.1f}"
    )
    print("command: python " + " ".join(["benchmarks/bench_cohort.py", *(argv if argv is not None else sys.argv[1:])]))
    for line in summarise(results):
        print(line)
    return results


if __name__ == "__main__":
    main()
