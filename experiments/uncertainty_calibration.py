"""Post-hoc calibration of the per-voxel uncertainty: an error model fitted on one held-out phantom cohort, checked
on another.

The raw uncertainty U (:func:`~monai_seq2seq.inference.synthesize_with_uncertainty`, the spread of the single-source
predictions around the fused one) ranks the voxels of a synthetic brain sequence by their error poorly (mean
Spearman rho 0.17, docs/UNCERTAINTY.md): most of the error is shared by every source (intensity offsets, edges).
Here a linear model per target, ``log(|error| + eps) ~ features`` (log U, the fused prediction's intensity, its
local gradient and variance, ...; :mod:`monai_seq2seq.inference.error_model`), is fitted on the foreground voxels
of ``--fit-seed`` subjects and evaluated on ``--eval-seed`` subjects with the same metric
(:func:`~monai_seq2seq.analysis.calibration.uncertainty_calibration`), raw U and calibrated map side by side.

Subjects: brain phantom (2 mm), normalised as the bundle does (percentiles 0.5/99.5 to [0, 1]); ``--slices``
slices centred on the tumour; each sequence synthesised from the other three with the shipped, sha256-checked brain
weights; foreground: any sequence above 0.02 (as ``experiments/uncertainty_quality.py``).

Usage::

    python -m experiments.uncertainty_calibration --fit-seed 3500 --eval-seed 3000 --subjects 3 --slices 24 \\
        --write-model /tmp/uncertainty_calibration.json
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import brain_normalise, command_line, provenance, provenance_lines, psnr_db, write_json

__all__ = ["calibration_rows", "load_cases", "main", "model_case", "summary_table"]

NAMES = ("T1", "T1Gd", "T2", "FLAIR")
FOREGROUND = 0.02


def _crop(sample: dict, slices: int | None) -> tuple[dict[str, torch.Tensor], int]:
    """The four sequences as plain tensors, ``slices`` slices centred on the tumour (else the volume's centre)."""
    vols = {n: torch.as_tensor(sample[n]).as_subclass(torch.Tensor).float() for n in NAMES}
    depth = vols["T1"].shape[-1]
    if not slices or slices >= depth:
        return vols, 0
    label = sample.get("label")
    centre = depth // 2
    if label is not None:
        z = torch.nonzero(torch.as_tensor(label).as_subclass(torch.Tensor).reshape(-1, depth).amax(0) > 0)
        if z.numel():
            centre = int(z.float().mean().round())
    start = min(max(0, centre - slices // 2), depth - slices)
    return {n: v[..., start : start + slices] for n, v in vols.items()}, start


def _synthesise_subject(synth, sample: dict, index: int, slices: int | None) -> list[dict[str, Any]]:
    from monai_seq2seq.inference import synthesize_with_uncertainty

    vols, start = _crop(sample, slices)
    foreground = torch.stack([v.amax(0) for v in vols.values()]).amax(0) > FOREGROUND
    out = []
    for target in NAMES:
        sources = {n: vols[n] for n in NAMES if n != target}
        result = synthesize_with_uncertainty(synth, sources, target)
        out.append(
            {
                "subject": str(sample.get("subject", index)),
                "target": target,
                "sources": list(sources),
                "first_slice": start,
                "image": result.image.numpy(),
                "uncertainty": result.uncertainty.numpy(),
                "real": vols[target].numpy(),
                "inputs": np.stack([v.numpy() for v in sources.values()]),
                "foreground": foreground.numpy(),
            }
        )
    return out


def _cache_file(cache: str | None, seed: int, subjects: int, slices: int | None, spacing: float) -> Path | None:
    if not cache:
        return None
    return Path(cache) / f"brain_seed{seed}_n{subjects}_slices{slices or 'all'}_{spacing:g}mm.npz"


def load_cases(
    subjects: int, seed: int, spacing: float, slices: int | None, device: str, cache: str | None = None
) -> list[dict[str, Any]]:
    """Synthesis, uncertainty, real target, inputs and foreground of every subject and target (cached as ``.npz``)."""
    path = _cache_file(cache, seed, subjects, slices, spacing)
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as data:
            meta = [line.split("\t") for line in str(data["meta"]).splitlines()]
            keys = ("image", "uncertainty", "real", "inputs", "foreground")
            return [
                {
                    "subject": s,
                    "target": t,
                    "sources": src.split("+"),
                    "first_slice": int(first),
                    **{k: data[f"{k}_{i}"] for k in keys},
                }
                for i, (s, t, src, first) in enumerate(meta)
            ]
    from experiments.uncertainty_quality import _synthesizer
    from monai_seq2seq.phantoms import BrainPhantomCohort

    synth = _synthesizer(device)
    cohort = BrainPhantomCohort(subjects, seed=seed, spacing=spacing)
    normalise = brain_normalise()
    records = []
    for i in range(subjects):
        records += _synthesise_subject(synth, normalise(cohort[i]), i, slices)
        print(f"seed {seed}: subject {i + 1}/{subjects} synthesised", flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"{k}_{i}": r[k] for i, r in enumerate(records) for k in ("image", "uncertainty", "real", "inputs")}
        arrays.update({f"foreground_{i}": r["foreground"] for i, r in enumerate(records)})
        meta = "\n".join(
            f"{r['subject']}\t{r['target']}\t{'+'.join(r['sources'])}\t{r['first_slice']}" for r in records
        )
        np.savez(path, meta=np.array(meta), **arrays)
    return records


def model_case(case: dict[str, Any]) -> dict[str, Any]:
    """A case as :func:`~monai_seq2seq.inference.error_model.fit_error_model` takes it (tensors, sources by name)."""
    inputs = torch.from_numpy(case["inputs"])
    return {
        "target": case["target"],
        "image": torch.from_numpy(case["image"]),
        "uncertainty": torch.from_numpy(case["uncertainty"]),
        "real": torch.from_numpy(case["real"]),
        "sources": {name: inputs[k][None] for k, name in enumerate(case["sources"])},
        "foreground": torch.from_numpy(case["foreground"]),
    }


def calibration_rows(cases: list[dict[str, Any]], model=None) -> list[dict[str, Any]]:
    """Per case: PSNR, and rho/AUROC of the raw uncertainty and (with ``model``) of the calibrated map."""
    from monai_seq2seq.analysis.calibration import uncertainty_calibration

    rows = []
    for c in cases:
        image, real = torch.from_numpy(c["image"]), torch.from_numpy(c["real"])
        error = (image - real).abs()
        mask = torch.from_numpy(c["foreground"])
        row = {
            "subject": c["subject"],
            "target": c["target"],
            "sources": c["sources"],
            "psnr": psnr_db(image, real),
            "raw": uncertainty_calibration(torch.from_numpy(c["uncertainty"]), error, mask),
        }
        if model is not None:
            given = model_case(c)
            calibrated = model.expected_error(image, given["uncertainty"], c["target"], given["sources"])
            row["calibrated"] = uncertainty_calibration(calibrated, error, mask)
            fg = mask.expand_as(error)
            row["mean_expected_error"] = float(calibrated[fg].mean())
            row["mean_abs_error"] = float(error[fg].mean())
        rows.append(row)
    return rows


def _means(rows: list[dict], key: str, metric: str) -> float:
    values = [r[key][metric] for r in rows if key in r and r[key][metric] is not None]
    return statistics.fmean(values) if values else float("nan")


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per case and per target (then all), raw vs calibrated rho and AUROC."""
    lines = [
        "| subject | translation | PSNR (dB) | rho raw | rho calibrated | AUROC raw | AUROC calibrated | "
        "mean expected / true error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cal = r.get("calibrated", {"spearman": float("nan"), "auroc_top_error": float("nan")})
        ratio = f"{r['mean_expected_error']:.4f} / {r['mean_abs_error']:.4f}" if "calibrated" in r else "-"
        lines.append(
            f"| {r['subject']} | {'+'.join(r['sources'])} -> {r['target']} | {r['psnr']:.2f} | "
            f"{r['raw']['spearman']:.3f} | {cal['spearman']:.3f} | {r['raw']['auroc_top_error']:.3f} | "
            f"{cal['auroc_top_error']:.3f} | {ratio} |"
        )
    lines += [
        "",
        "| target | mean rho raw | mean rho calibrated | mean AUROC raw | mean AUROC calibrated |",
        "|---|---|---|---|---|",
    ]
    for target in (*NAMES, "all"):
        mine = [r for r in rows if target in ("all", r["target"])]
        if mine:
            lines.append(
                f"| {target} | {_means(mine, 'raw', 'spearman'):.3f} | {_means(mine, 'calibrated', 'spearman'):.3f} | "
                f"{_means(mine, 'raw', 'auroc_top_error'):.3f} | {_means(mine, 'calibrated', 'auroc_top_error'):.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit-seed", type=int, default=3500, help="calibration cohort (training used 0 and 500)")
    parser.add_argument("--eval-seed", type=int, default=3000, help="held-out cohort the results are reported on")
    parser.add_argument("--subjects", type=int, default=3, help="subjects of each cohort")
    parser.add_argument("--slices", type=int, default=24, help="slices centred on the tumour (0: whole volume)")
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cache", default=None, help="folder for the syntheses (.npz), reused when present")
    parser.add_argument("--out", default="docs/results/uncertainty_calibration.json", help="and the .md beside it")
    parser.add_argument("--write-model", default=None, help="write the fitted error model (JSON) here")
    args = parser.parse_args(argv)
    from monai_seq2seq.inference.error_model import ErrorModel, fit_error_model

    fit_cases = load_cases(args.subjects, args.fit_seed, args.spacing, args.slices or None, args.device, args.cache)
    eval_cases = load_cases(args.subjects, args.eval_seed, args.spacing, args.slices or None, args.device, args.cache)
    info = provenance(command_line("uncertainty_calibration", argv), args.device)
    fitted = fit_error_model([model_case(c) for c in fit_cases])
    fitted["description"] = (
        f"Expected absolute error ([0, 1] intensity units) of a synthetic brain sequence per voxel, "
        f"log-linear per target, fitted on {args.subjects} brain phantom subjects (seed {args.fit_seed}, "
        f"{args.spacing:g} mm, {args.slices or 'all'} slices around the tumour), each sequence from the other three."
    )
    fitted["fitted"] = info
    model = ErrorModel(fitted, "fit")
    rows = calibration_rows(eval_cases, model)
    fit_rows = calibration_rows(fit_cases, model)
    table = summary_table(rows)
    print(f"held-out subjects (seed {args.eval_seed}):\n{table}", flush=True)
    payload = {**info, "args": vars(args), "model": fitted, "eval": rows, "fit": fit_rows}
    if args.write_model:
        model.save(args.write_model, validation={"eval_seed": args.eval_seed, "summary": _summary(rows)})
        print(f"error model written to {args.write_model}")
    if args.out:
        out = Path(args.out)
        write_json(out, payload)
        md = [
            "# Post-hoc calibration of the per-voxel uncertainty",
            "",
            *provenance_lines(info),
            "",
            f"Held-out subjects (seed {args.eval_seed}; model fitted on seed {args.fit_seed}):",
            "",
            table,
            "",
            f"Fitting subjects (seed {args.fit_seed}, in-sample):",
            "",
            summary_table(fit_rows),
            "",
        ]
        out.with_suffix(".md").write_text("\n".join(md))
    return payload


def _summary(rows: list[dict]) -> dict[str, Any]:
    out = {}
    for target in (*NAMES, "all"):
        mine = [r for r in rows if target in ("all", r["target"])]
        out[target] = {
            f"{metric}_{key}": _means(mine, key, metric)
            for key in ("raw", "calibrated")
            for metric in ("spearman", "auroc_top_error")
        }
    return out


if __name__ == "__main__":
    main()
