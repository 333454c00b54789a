"""Time co-registration per subject: a brain phantom's T1Gd, T2 and FLAIR, each moved rigidly, registered to its T1.

Usage::

    python benchmarks/bench_register.py [--spacing 1.0] [--subjects 1] [--models rigid affine] [--threads 2]

Each moving sequence gets its own known rigid motion (rotations up to ``--max-angle`` degrees about each axis,
shifts up to ``--max-shift`` mm, drawn from ``--seed``; resampled with MONAI) and is registered back with
``RegisterToReference`` (elastix, Mattes mutual information, 3 resolutions, fixed sampler seed). Prints seconds per
subject (the three registrations and the resampling of each onto the T1 grid; ITK's one-off import is timed
apart) and the residual error: the largest distance, over a 5x5x5 grid of points inside the FOV, between where the
found transform and the true one map a point, in mm and in voxels.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

SEQUENCES = ("T1Gd", "T2", "FLAIR")


def rigid(angles_deg, shift_mm, centre) -> np.ndarray:
    """4x4 RAS rotation about ``centre`` (x, then y, then z) followed by a shift."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rz @ ry @ rx
    out[:3, 3] = centre - out[:3, :3] @ centre + np.asarray(shift_mm)
    return out


def move(img, motion: np.ndarray):
    """``img`` after the subject moved by ``motion`` (the point ``x`` of the result shows what ``motion @ x`` did)."""
    import torch
    from monai.transforms import SpatialResample

    placed = img.clone()
    placed.affine = torch.as_tensor(np.linalg.inv(motion)) @ img.affine.double()
    return SpatialResample(mode="bilinear", padding_mode="zeros")(
        placed, dst_affine=img.affine, spatial_size=tuple(img.shape[1:])
    )


def residual_mm(matrix: np.ndarray, motion: np.ndarray, reference) -> float:
    """Largest distance between the found and the true (``motion^-1``) maps of a 5x5x5 grid of points (mm)."""
    truth = np.linalg.inv(motion)
    affine = reference.affine.double().numpy()
    grid = np.meshgrid(*[np.linspace(0.2, 0.8, 5) * (n - 1) for n in reference.shape[1:]], indexing="ij")
    points = affine[:3, :3] @ np.stack(grid).reshape(3, -1) + affine[:3, 3:]
    error = (matrix[:3, :3] - truth[:3, :3]) @ points + (matrix[:3, 3:] - truth[:3, 3:])
    return float(np.linalg.norm(error, axis=0).max())


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", type=float, default=1.0, help="phantom voxel size in mm (default 1.0)")
    parser.add_argument("--subjects", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=["rigid", "affine"], choices=["rigid", "affine"])
    parser.add_argument("--sequences", nargs="+", default=list(SEQUENCES), choices=list(SEQUENCES))
    parser.add_argument("--max-angle", type=float, default=4.0, help="largest rotation about each axis (degrees)")
    parser.add_argument("--max-shift", type=float, default=5.0, help="largest shift along each axis (mm)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="ITK/torch threads (default: all)")
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)

    from monai_seq2seq.core.machine import describe_machine
    from monai_seq2seq.phantoms import BrainPhantomCohort
    from monai_seq2seq.transforms import REGISTRATION_KEY, RegisterToReference
    from monai_seq2seq.transforms.registration import load_itk_elastix

    print(f"machine: {describe_machine()}")
    t = time.perf_counter()
    load_itk_elastix().ParameterObject.New()
    print(f"import ITK elastix (once per process): {time.perf_counter() - t:.1f} s")
    rng = np.random.default_rng(args.seed)
    cohort = BrainPhantomCohort(args.subjects, seed=args.seed, spacing=args.spacing)
    results = []
    for index in range(args.subjects):
        subject = cohort[index]
        t1 = subject["T1"]
        voxel = float(np.linalg.norm(t1.affine.double().numpy()[:3, :3], axis=0).min())
        centre = (t1.affine.double().numpy() @ np.append((np.asarray(t1.shape[1:]) - 1) / 2, 1.0))[:3]
        motions = {
            name: rigid(rng.uniform(-1, 1, 3) * args.max_angle, rng.uniform(-1, 1, 3) * args.max_shift, centre)
            for name in args.sequences
        }
        moved = {name: move(subject[name], motions[name]) for name in args.sequences}
        for model in args.models:
            registration = RegisterToReference(model)
            errors, start = {}, time.perf_counter()
            for name in args.sequences:
                found = registration(moved[name], t1, name=name, reference_name="T1").meta[REGISTRATION_KEY]
                errors[name] = residual_mm(np.asarray(found["matrix_ras"]), motions[name], t1)
            seconds = time.perf_counter() - start
            result = {
                "subject": subject["subject"],
                "shape": list(t1.shape[1:]),
                "spacing_mm": args.spacing,
                "model": model,
                "seconds": seconds,
                "residual_mm": errors,
                "residual_voxels": {k: v / voxel for k, v in errors.items()},
            }
            results.append(result)
            worst = max(errors.values())
            detail = ", ".join(f"{k} {v:.2f} mm" for k, v in errors.items())
            print(
                f"{subject['subject']} {tuple(t1.shape[1:])} at {args.spacing:g} mm, {model}: {seconds:.1f} s per "
                f"subject ({', '.join(args.sequences)} to T1); residual {detail} (worst {worst / voxel:.2f} voxel)"
            )
    return results


if __name__ == "__main__":
    main()
