"""Calibration of the per-voxel uncertainty and the per-case quality model, on held-out brain phantom subjects.

For every subject and every brain sequence (the target, synthesised from the other three with the shipped,
sha256-checked brain weights): the uncertainty (:func:`~monai_seq2seq.inference.synthesize_with_uncertainty`),
the absolute error against the real sequence, and over the foreground (any sequence above 0.02):

- calibration: Spearman rho of uncertainty vs absolute error, AUROC of the uncertainty for the 10% of voxels
  with the largest errors (:func:`~monai_seq2seq.analysis.calibration.uncertainty_calibration`);
- quality: the features of :mod:`monai_seq2seq.inference.quality` and the true PSNR (whole volume, [0, 1]).

Each subject and target is also run once with one source corrupted (noise, bias field or misalignment, in turn,
:mod:`monai_seq2seq.phantoms.corruptions`), PSNR still against the clean real target. The quality model (a linear
regression of PSNR on the features, per target) is fitted on all cases and checked by leave-one-subject-out:
Pearson r and mean absolute error of predicted vs true PSNR, interval coverage, flags on clean vs corrupted cases.
``--write-model`` stores the fit as JSON data in the bundle (``configs/quality.json``).

Usage::

    python -m experiments.uncertainty_quality --subjects 5 --seed 3000
    python -m experiments.uncertainty_quality --subjects 5 --seed 3000 --write-model
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import BUNDLES, brain_normalise, command_line, provenance, psnr_db, write_json

__all__ = [
    "CORRUPTION_ORDER",
    "add_input_features",
    "case_record",
    "cases",
    "cross_validate",
    "fit_quality",
    "main",
    "measure",
]

BRAIN_BUNDLE = BUNDLES / "seq2seq_brain"
NAMES = ("T1", "T1Gd", "T2", "FLAIR")
CORRUPTION_ORDER = ("noise", "bias", "misalign")
INTERVAL = 0.9
Z_90 = 1.645


def _synthesizer(device: str, config: str | None = None):
    """The brain bundle's network with its checked weights (``config``: a random network of that size, tests)."""
    from monai_seq2seq.core.integrity import load_weights
    from monai_seq2seq.inference import Seq2SeqSynthesizer
    from monai_seq2seq.networks import build_seq2seq

    if config:
        torch.manual_seed(0)
        net = build_seq2seq(config, protocol="brain")
    else:
        net = build_seq2seq("small", variant="C", protocol="brain")
        net.load_state_dict(load_weights(BRAIN_BUNDLE / "models" / "model.pt", bundle_dir=BRAIN_BUNDLE))
    return Seq2SeqSynthesizer(net.eval(), "brain", device=device, progress=False)


def case_record(synth, volumes: dict[str, torch.Tensor], real: torch.Tensor, target: str, foreground) -> dict:
    """One synthesis of ``target`` from ``volumes``: calibration, quality features and true PSNR."""
    from monai_seq2seq.analysis.calibration import uncertainty_calibration
    from monai_seq2seq.inference import synthesize_with_uncertainty
    from monai_seq2seq.inference.quality import quality_features

    result = synthesize_with_uncertainty(synth, volumes, target)
    error = (result.image - real).abs()
    return {
        "target": target,
        "sources": list(volumes),
        "psnr": psnr_db(result.image, real),
        **uncertainty_calibration(result.uncertainty, error, foreground),
        "features": quality_features(result.uncertainty, volumes),
    }


def cases(subjects: int, seed: int, spacing: float, slices: int | None = None):
    """Yield ``(subject, target, corruption, corrupted source, sources, real target, foreground)`` of every case."""
    from monai_seq2seq.phantoms import BrainPhantomCohort
    from monai_seq2seq.phantoms.corruptions import corrupt

    cohort = BrainPhantomCohort(subjects, seed=seed, spacing=spacing)
    normalise = brain_normalise()
    for i in range(subjects):
        sample = normalise(cohort[i])
        vols = {n: torch.as_tensor(sample[n]).as_subclass(torch.Tensor).float() for n in NAMES}
        if slices:
            start = max(0, vols["T1"].shape[-1] // 2 - slices // 2)
            vols = {n: v[..., start : start + slices] for n, v in vols.items()}
        foreground = torch.stack([v.amax(0) for v in vols.values()]).amax(0) > 0.02
        for j, target in enumerate(NAMES):
            sources = {n: vols[n] for n in NAMES if n != target}
            for kind in (None, CORRUPTION_ORDER[(i + j) % len(CORRUPTION_ORDER)]):
                given, hit = dict(sources), None
                if kind:
                    hit = list(sources)[(i + j) % len(sources)]
                    given[hit] = corrupt(sources[hit], kind)
                yield str(sample.get("subject", i)), target, kind, hit, given, vols[target], foreground


def measure(
    subjects: int, seed: int, spacing: float, device: str, slices: int | None = None, config: str | None = None
) -> list[dict[str, Any]]:
    """Clean and corrupted cases of every subject and target (see the module's docstring)."""
    synth = _synthesizer(device, config)
    records = []
    for subject, target, kind, hit, given, real, foreground in cases(subjects, seed, spacing, slices):
        record = case_record(synth, given, real, target, foreground)
        record.update(subject=subject, corruption=kind, corrupted_source=hit)
        records.append(record)
        print(
            f"{subject} {target:<5} {kind or 'clean':<8} PSNR {record['psnr']:6.2f} dB  "
            f"rho {record['spearman']:.3f}  AUROC {record['auroc_top_error']:.3f}",
            flush=True,
        )
    return records


def add_input_features(records: list[dict], subjects: int, seed: int, spacing: float, slices: int | None) -> None:
    """Add the input-check features to records of an earlier run (the same cases rebuilt, no synthesis)."""
    from monai_seq2seq.inference.quality import input_features

    index = {(r["subject"], r["target"], r["corruption"]): r for r in records}
    for subject, target, kind, _, given, _, _ in cases(subjects, seed, spacing, slices):
        index[(subject, target, kind)]["features"].update(input_features(given))


def _design(records: list[dict]) -> np.ndarray:
    from monai_seq2seq.inference.quality import FEATURES

    return np.array([[1.0, *(r["features"][f] for f in FEATURES)] for r in records])


def fit_quality(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Least squares PSNR ~ intercept(target) + features . coef (slopes shared by the targets, intercepts per target),
    the residual std per target, the features' range and the flag threshold.

    Shared slopes: each corruption hits a target in a few subjects only, too few for slopes of its own. The flag
    threshold sits one interval half-width and 0.5 dB below the lowest clean PSNR of the target, so that a clean
    case is flagged only when its prediction falls below what any clean case scored.
    """
    from monai_seq2seq.inference.quality import FEATURES

    names = sorted({r["target"] for r in records})
    x = np.array([[float(r["target"] == t) for t in names] + list(_design([r])[0, 1:]) for r in records])
    y = np.array([r["psnr"] for r in records])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ coef
    slopes = [float(c) for c in coef[len(names) :]]
    targets = {}
    for k, target in enumerate(names):
        mine = np.array([r["target"] == target for r in records])
        dof = max(1, int(mine.sum()) - 1 - len(slopes) * int(mine.sum()) // len(records))
        sigma = float(np.sqrt((residual[mine] ** 2).sum() / dof))
        rows = [r for r in records if r["target"] == target]
        feats = _design(rows)[:, 1:]
        clean = [r["psnr"] for r in rows if r["corruption"] is None] or [r["psnr"] for r in rows]
        clean_log_u = [r["features"]["log_mean_uncertainty"] for r in rows if r["corruption"] is None]
        targets[target] = {
            "intercept": float(coef[k]),
            "coef": slopes,
            "residual_std": sigma,
            "z": Z_90,
            "feature_min": [float(v) for v in feats.min(0)],
            "feature_max": [float(v) for v in feats.max(0)],
            "flag_below_db": float(min(clean) - Z_90 * sigma - 0.5),
            "n": len(rows),
            # typical mean foreground uncertainty of a clean case: the subject term of `seq2seq advise` compares to it
            "reference_mean_uncertainty": float(np.exp(np.mean(clean_log_u))) if clean_log_u else None,
        }
    return {"features": list(FEATURES), "interval": INTERVAL, "targets": targets}


def cross_validate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Leave one subject out: fit on the others, predict the subject's cases."""
    from monai_seq2seq.inference.quality import QualityModel

    subjects = sorted({r["subject"] for r in records})
    rows = []
    for subject in subjects:
        model = QualityModel(fit_quality([r for r in records if r["subject"] != subject]), "cross-validation")
        for r in records:
            if r["subject"] != subject:
                continue
            entry = model.targets[r["target"]]
            values = _design([r])[0]
            predicted = float(entry["intercept"] + np.dot(entry["coef"], values[1:]))
            half = entry["z"] * entry["residual_std"]
            beyond = any(v > hi + 0.1 for v, hi in zip(values[1:], entry["feature_max"], strict=True))
            flagged = predicted - half < entry["flag_below_db"] or beyond
            rows.append({**r, "predicted": predicted, "half": half, "flag": bool(flagged)})
    true = np.array([r["psnr"] for r in rows])
    pred = np.array([r["predicted"] for r in rows])
    clean = [r for r in rows if r["corruption"] is None]
    bad = [r for r in rows if r["corruption"] is not None]
    return {
        "cases": len(rows),
        "pearson_r": float(np.corrcoef(true, pred)[0, 1]),
        "mae_db": float(np.abs(true - pred).mean()),
        "interval_coverage": float(np.mean([abs(r["psnr"] - r["predicted"]) <= r["half"] for r in rows])),
        "flag_rate_clean": float(np.mean([r["flag"] for r in clean])) if clean else None,
        "flag_rate_corrupted": float(np.mean([r["flag"] for r in bad])) if bad else None,
        "mean_predicted_clean": float(np.mean([r["predicted"] for r in clean])) if clean else None,
        "mean_predicted_corrupted": float(np.mean([r["predicted"] for r in bad])) if bad else None,
        "corrupted_lower_than_own_clean": _paired_drop(rows),
        "rows": [{k: r[k] for k in ("subject", "target", "corruption", "psnr", "predicted", "flag")} for r in rows],
    }


def _paired_drop(rows: list[dict]) -> float | None:
    """Share of corrupted cases predicted lower than the same subject's and target's clean case."""
    clean = {(r["subject"], r["target"]): r["predicted"] for r in rows if r["corruption"] is None}
    pairs = [r["predicted"] < clean[(r["subject"], r["target"])] for r in rows if r["corruption"] is not None]
    return float(np.mean(pairs)) if pairs else None


def calibration_table(records: list[dict[str, Any]]) -> str:
    """Markdown: per subject and translation (clean cases), rho and AUROC, then the means per target."""
    clean = [r for r in records if r["corruption"] is None]
    lines = ["| subject | translation | Spearman rho | AUROC top-10% error | PSNR (dB) |", "|---|---|---|---|---|"]
    for r in clean:
        lines.append(
            f"| {r['subject']} | {'+'.join(r['sources'])} -> {r['target']} | {r['spearman']:.3f} | "
            f"{r['auroc_top_error']:.3f} | {r['psnr']:.2f} |"
        )
    lines += ["", "| target | mean rho | mean AUROC | goal rho >= 0.5 | goal AUROC >= 0.8 |", "|---|---|---|---|---|"]
    for target in NAMES:
        rows = [r for r in clean if r["target"] == target]
        if not rows:
            continue
        rho = statistics.fmean(r["spearman"] for r in rows)
        auc = statistics.fmean(r["auroc_top_error"] for r in rows)
        lines.append(
            f"| {target} | {rho:.3f} | {auc:.3f} | {'met' if rho >= 0.5 else 'not met'} | "
            f"{'met' if auc >= 0.8 else 'not met'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=5)
    parser.add_argument("--seed", type=int, default=3000, help="held-out phantom seed (training used 0 and 500)")
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--slices", type=int, default=None, help="central slices only (quick runs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", default=None, help="a random network of this size instead of the weights")
    parser.add_argument("--out", default="docs/results/uncertainty_quality.json")
    parser.add_argument("--write-model", default=None, nargs="?", const=str(BRAIN_BUNDLE / "configs" / "quality.json"))
    parser.add_argument("--records", default=None, help="refit from the records of an earlier run's --out JSON")
    args = parser.parse_args(argv)
    if args.records:
        records = json.loads(Path(args.records).read_text())["records"]
        if any("foreground_disagreement" not in r["features"] for r in records):
            add_input_features(records, args.subjects, args.seed, args.spacing, args.slices)
    else:
        records = measure(args.subjects, args.seed, args.spacing, args.device, args.slices, args.config)
    model = fit_quality(records)
    validation = cross_validate(records)
    table = calibration_table(records)
    print(table)
    print(
        f"quality model, leave-one-subject-out on {validation['cases']} cases: Pearson r "
        f"{validation['pearson_r']:.3f}, MAE {validation['mae_db']:.2f} dB, {INTERVAL:.0%} interval coverage "
        f"{validation['interval_coverage']:.2f}; flagged: clean {validation['flag_rate_clean']:.2f}, corrupted "
        f"{validation['flag_rate_corrupted']:.2f}; mean predicted PSNR clean {validation['mean_predicted_clean']:.2f} "
        f"dB, corrupted {validation['mean_predicted_corrupted']:.2f} dB; corrupted predicted below its own clean "
        f"case: {validation['corrupted_lower_than_own_clean']:.2f}"
    )
    info = provenance(command_line("uncertainty_quality", argv), args.device)
    payload = {**info, "args": vars(args), "records": records, "model": model, "validation": validation}
    if args.out:
        write_json(args.out, payload)
    if args.write_model:
        fitted = {
            **model,
            "description": (
                "Predicted PSNR (dB, whole volume, [0, 1] space) of a synthetic brain sequence from its uncertainty, "
                f"linear per target, fitted on {args.subjects} held-out brain phantom subjects (seed {args.seed}, "
                f"{args.spacing} mm), clean and with one corrupted source; {INTERVAL:.0%} interval = z * residual std."
            ),
            "fitted": info,
            "validation": {k: v for k, v in validation.items() if k != "rows"},
        }
        write_json(args.write_model, fitted)
        print(f"quality model written to {Path(args.write_model)}")
    return payload


if __name__ == "__main__":
    main()
