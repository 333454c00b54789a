"""Calibration of the per-voxel uncertainty and the per-case quality model, on held-out phantom subjects.

For every subject and every target sequence (brain: each of the four, synthesised from the other three; breast
(``--bundle seq2seq_breast``): ``--targets``, each from every other sequence of the protocol except the maps
computed from it; the shipped, sha256-checked weights of the bundle): the uncertainty
(:func:`~monai_seq2seq.inference.synthesize_with_uncertainty`), the absolute error against the real sequence, and
over the foreground (any acquired sequence above 0.02):

- calibration: Spearman rho of uncertainty vs absolute error, AUROC of the uncertainty for the 10% of voxels
  with the largest errors (:func:`~monai_seq2seq.analysis.calibration.uncertainty_calibration`);
- quality: the features of :mod:`monai_seq2seq.inference.quality` and the true PSNR (whole volume, [0, 1]).

Each subject and target is also run once with one source corrupted (noise, bias field or misalignment, in turn,
:mod:`monai_seq2seq.phantoms.corruptions`), PSNR still against the clean real target. The quality model (a linear
regression of PSNR on the features, per target) is fitted on all cases and checked by leave-one-subject-out:
Pearson r and mean absolute error of predicted vs true PSNR, interval coverage, flags on clean vs corrupted cases.
``--write-model`` stores the fit as JSON data in the bundle (``configs/quality.json``), naming the bundle and
the targets it was fitted on.

Breast: the phantom at the breast bundle's grid (``--shape``, 160x96x64 at 2 mm), normalised as the bundle's
``configs/inference.json`` does (:func:`~experiments.common.breast_normalise`: percentiles 0.5/99.5, one scale for
all frames of DCE/DWI, fixed windows for WashIn/WashOut); ``--slices`` keeps that many slices around the lesion
(brain: the central slices); PSNR over the whole (4D) volume. The default targets are the sequences a breast
examination most often lacks: DCE and FatSatDCE (contrast-free or abbreviated protocols), DWI (often left out
of abbreviated protocols) and T2. WashIn and WashOut get no regression: the bundle computes them from DCE
(``derive_missing``), so their quality follows DCE's. The wash maps are sources whenever DCE is one (as after
``derive_missing``), recomputed from the corrupted DCE when DCE is the corrupted source, and ignored by the
features (``ignore_sources``: WashOut's window lifts its background above the foreground threshold).

Usage::

    python -m experiments.uncertainty_quality --subjects 5 --seed 3000
    python -m experiments.uncertainty_quality --subjects 5 --seed 3000 --write-model
    python -m experiments.uncertainty_quality --bundle seq2seq_breast --subjects 3 --seed 3000 --slices 16 \
        --targets DCE,DWI,T2 --out /tmp/uq_breast.json --write-model /tmp/quality_breast.json
    python -m experiments.uncertainty_quality --records /tmp/uq_breast.json --write-model /tmp/quality_breast.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import (
    BUNDLES,
    brain_normalise,
    breast_normalise,
    command_line,
    provenance,
    psnr_db,
    write_json,
)

__all__ = [
    "BUNDLE_TARGETS",
    "CORRUPTION_ORDER",
    "add_input_features",
    "case_record",
    "cases",
    "cross_validate",
    "fit_header",
    "fit_quality",
    "ignored_sources",
    "main",
    "measure",
    "source_names",
]

NAMES = ("T1", "T1Gd", "T2", "FLAIR")
CORRUPTION_ORDER = ("noise", "bias", "misalign")
PROTOCOLS = {"seq2seq_brain": "brain", "seq2seq_breast": "breast"}
BUNDLE_TARGETS = {"seq2seq_brain": NAMES, "seq2seq_breast": ("DCE", "FatSatDCE", "DWI", "T2")}
"""Default targets per bundle (breast: the sequences most often lacking, see the module docstring)."""
BREAST_SHAPE = (160, 96, 64)
LESION_LABEL = 3
INTERVAL = 0.9
Z_90 = 1.645


def _synthesizer(device: str, config: str | None = None, bundle: str = "seq2seq_brain"):
    """The bundle's network with its checked weights (``config``: a random network of that size, tests)."""
    from monai_seq2seq.core.integrity import load_weights
    from monai_seq2seq.inference import Seq2SeqSynthesizer
    from monai_seq2seq.networks import build_seq2seq

    protocol, root = PROTOCOLS[bundle], BUNDLES / bundle
    if config:
        torch.manual_seed(0)
        net = build_seq2seq(config, protocol=protocol)
    else:
        net = build_seq2seq("small", variant="C", protocol=protocol)
        net.load_state_dict(load_weights(root / "models" / "model.pt", bundle_dir=root))
    return Seq2SeqSynthesizer(net.eval(), protocol, device=device, progress=False)


def ignored_sources(bundle: str = "seq2seq_brain") -> list[str]:
    """Sources the quality features ignore: the protocol's derived maps (none for the brain)."""
    from monai_seq2seq.core import get_protocol

    return [s.name for s in get_protocol(PROTOCOLS[bundle]).sequences if s.derived_from is not None]


def case_record(
    synth, volumes: dict[str, torch.Tensor], real: torch.Tensor, target: str, foreground, ignore=()
) -> dict:
    """One synthesis of ``target`` from ``volumes``: calibration, quality features and true PSNR (``ignore``:
    sources the features leave out, as :class:`~monai_seq2seq.inference.QualityModel` does)."""
    from monai_seq2seq.analysis.calibration import uncertainty_calibration
    from monai_seq2seq.inference import synthesize_with_uncertainty
    from monai_seq2seq.inference.quality import feature_sources, quality_features

    result = synthesize_with_uncertainty(synth, volumes, target)
    error = (result.image - real).abs()
    return {
        "target": target,
        "sources": list(volumes),
        "psnr": psnr_db(result.image, real),
        **uncertainty_calibration(result.uncertainty, error, foreground),
        "features": quality_features(result.uncertainty, feature_sources(volumes, ignore)),
    }


def source_names(protocol, target: str) -> list[str]:
    """The sources of ``target``: every other sequence of the protocol except the maps computed from it and, for a
    computed map, the sequence it is computed from and the maps computed with it (brain: the other three)."""
    parent = protocol[target].derived_from

    def related(spec) -> bool:
        computed_with = parent is not None and parent in (spec.name, spec.derived_from)
        return spec.name == target or spec.derived_from == target or computed_with

    return [spec.name for spec in protocol.sequences if not related(spec)]


def _tensors(sample, names) -> dict[str, torch.Tensor]:
    return {n: torch.as_tensor(sample[n]).as_subclass(torch.Tensor).float() for n in names}


def _brain_subjects(subjects: int, seed: int, spacing: float, slices: int | None, shape=None):
    """Yield ``(subject, volumes, foreground)``: normalised brain phantom subjects, the central ``slices``."""
    from monai_seq2seq.phantoms import BrainPhantomCohort

    cohort = BrainPhantomCohort(subjects, seed=seed, spacing=spacing)
    normalise = brain_normalise()
    for i in range(subjects):
        sample = normalise(cohort[i])
        vols = _tensors(sample, NAMES)
        if slices:
            start = max(0, vols["T1"].shape[-1] // 2 - slices // 2)
            vols = {n: v[..., start : start + slices] for n, v in vols.items()}
        foreground = torch.stack([v.amax(0) for v in vols.values()]).amax(0) > 0.02
        yield str(sample.get("subject", i)), vols, foreground


def _lesion_slices(label: torch.Tensor, slices: int) -> slice:
    """``slices`` slices centred on the lesion (else on any labelled tissue, else the middle)."""
    label = label.reshape(-1, *label.shape[-3:])[0]
    depth = label.shape[-1]
    centre = depth // 2
    for mask in (label == LESION_LABEL, label > 0):
        if bool(mask.any()):
            centre = int(mask.nonzero()[:, -1].float().mean().round())
            break
    start = min(max(0, centre - slices // 2), max(0, depth - slices))
    return slice(start, start + slices)


def _breast_subjects(subjects: int, seed: int, spacing: float, slices: int | None, shape=None):
    """Yield ``(subject, volumes, foreground)``: normalised breast phantom subjects, ``slices`` around the lesion;
    the foreground from the acquired sequences (not the wash maps, whose windowed background exceeds 0.02)."""
    from monai_seq2seq.core import get_protocol
    from monai_seq2seq.phantoms import BreastPhantomCohort

    protocol = get_protocol("breast")
    cohort = BreastPhantomCohort(subjects, seed=seed, spacing=spacing, shape=tuple(shape or BREAST_SHAPE))
    normalise = breast_normalise()
    derived = set(ignored_sources("seq2seq_breast"))
    for i in range(subjects):
        sample = normalise(cohort[i])
        vols = _tensors(sample, protocol.names)
        if slices:
            cut = _lesion_slices(torch.as_tensor(sample["label"]).as_subclass(torch.Tensor), slices)
            vols = {n: v[..., cut] for n, v in vols.items()}
        foreground = torch.stack([v.amax(0) for n, v in vols.items() if n not in derived]).amax(0) > 0.02
        yield str(sample.get("subject", i)), vols, foreground


def _rederived(protocol, given: dict[str, torch.Tensor], hit: str) -> dict[str, torch.Tensor]:
    """The maps among ``given`` computed from ``hit`` (wash-in/out of DCE), recomputed from the corrupted ``hit`` and
    windowed as the bundle normalises them (what ``derive_missing`` would give from that series)."""
    from monai_seq2seq.transforms.dce import wash_in_out
    from monai_seq2seq.transforms.intensity import PercentileScaleIntensity

    maps = [spec for spec in protocol.sequences if spec.derived_from == hit and spec.name in given]
    if not maps:
        return {}
    raw = dict(zip([spec.name for spec in maps], wash_in_out(given[hit]), strict=False))
    return {
        spec.name: PercentileScaleIntensity(fixed_range=spec.intensity_window)(raw[spec.name][None]).float()
        for spec in maps
    }


def cases(
    subjects: int,
    seed: int,
    spacing: float,
    slices: int | None = None,
    bundle: str = "seq2seq_brain",
    targets=None,
    shape=None,
):
    """Yield ``(subject, target, corruption, corrupted source, sources, real target, foreground)`` of every case.

    The corrupted source and the corruption rotate with subject and target; a computed map is never corrupted
    itself but follows its corrupted source.
    """
    from monai_seq2seq.core import get_protocol
    from monai_seq2seq.phantoms.corruptions import corrupt

    protocol = get_protocol(PROTOCOLS[bundle])
    targets = list(targets or BUNDLE_TARGETS[bundle])
    derived = set(ignored_sources(bundle))
    load = _breast_subjects if bundle == "seq2seq_breast" else _brain_subjects
    for i, (subject, vols, foreground) in enumerate(load(subjects, seed, spacing, slices, shape)):
        for j, target in enumerate(targets):
            sources = {n: vols[n] for n in source_names(protocol, target)}
            hits = [n for n in sources if n not in derived]
            for kind in (None, CORRUPTION_ORDER[(i + j) % len(CORRUPTION_ORDER)]):
                given, hit = dict(sources), None
                if kind:
                    hit = hits[(i + j) % len(hits)]
                    given[hit] = corrupt(sources[hit], kind)
                    given.update(_rederived(protocol, given, hit))
                yield subject, target, kind, hit, given, vols[target], foreground


def measure(
    subjects: int,
    seed: int,
    spacing: float,
    device: str,
    slices: int | None = None,
    config: str | None = None,
    bundle: str = "seq2seq_brain",
    targets=None,
    shape=None,
) -> list[dict[str, Any]]:
    """Clean and corrupted cases of every subject and target (see the module's docstring)."""
    synth = _synthesizer(device, config, bundle)
    ignore = ignored_sources(bundle)
    records = []
    for subject, target, kind, hit, given, real, foreground in cases(
        subjects, seed, spacing, slices, bundle, targets, shape
    ):
        record = case_record(synth, given, real, target, foreground, ignore)
        record.update(subject=subject, corruption=kind, corrupted_source=hit)
        records.append(record)
        print(
            f"{subject} {target:<5} {kind or 'clean':<8} PSNR {record['psnr']:6.2f} dB  "
            f"rho {record['spearman']:.3f}  AUROC {record['auroc_top_error']:.3f}",
            flush=True,
        )
    return records


def add_input_features(
    records: list[dict],
    subjects: int,
    seed: int,
    spacing: float,
    slices: int | None,
    bundle: str = "seq2seq_brain",
    targets=None,
    shape=None,
) -> None:
    """Add the input-check features to records of an earlier run (the same cases rebuilt, no synthesis)."""
    from monai_seq2seq.inference.quality import feature_sources, input_features

    ignore = ignored_sources(bundle)
    index = {(r["subject"], r["target"], r["corruption"]): r for r in records}
    for subject, target, kind, _, given, _, _ in cases(subjects, seed, spacing, slices, bundle, targets, shape):
        index[(subject, target, kind)]["features"].update(input_features(feature_sources(given, ignore)))


def _design(records: list[dict]) -> np.ndarray:
    from monai_seq2seq.inference.quality import FEATURES

    return np.array([[1.0, *(r["features"][f] for f in FEATURES)] for r in records])


def fit_quality(records: list[dict[str, Any]], bundle: str | None = None) -> dict[str, Any]:
    """Least squares PSNR ~ intercept(target) + features . coef (slopes shared by the targets, intercepts per target),
    the residual std per target, the features' range and the flag threshold; with ``bundle``, also what the fit is
    for (:func:`fit_header`).

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
    fitted = {"features": list(FEATURES), "interval": INTERVAL, "targets": targets}
    return {**fitted, **fit_header(bundle, names)} if bundle else fitted


def fit_header(bundle: str, fitted_targets) -> dict[str, Any]:
    """What a quality model is for: bundle, protocol, fitted targets, the sources its features ignore and why each
    other sequence of the protocol has no regression (read by :meth:`QualityModel.unmodelled_reason`)."""
    from monai_seq2seq.core import get_protocol

    protocol = get_protocol(PROTOCOLS[bundle])
    not_modelled = {}
    for spec in protocol.sequences:
        if spec.name in fitted_targets:
            continue
        not_modelled[spec.name] = "not among the targets of the fit (--targets)"
        if spec.derived_from:
            not_modelled[spec.name] += (
                f"; computed from {spec.derived_from} when {spec.derived_from} is given, synthesised when it is not"
            )
    return {
        "bundle": bundle,
        "protocol": protocol.name,
        "fitted_targets": sorted(fitted_targets),
        "ignore_sources": ignored_sources(bundle),
        "not_modelled": not_modelled,
    }


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
    for target in dict.fromkeys(r["target"] for r in records):
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", choices=sorted(PROTOCOLS), default=None, help="default: seq2seq_brain")
    parser.add_argument("--targets", default=None, help="comma-separated (default: BUNDLE_TARGETS of the bundle)")
    parser.add_argument("--subjects", type=int, default=5)
    parser.add_argument("--seed", type=int, default=3000, help="held-out phantom seed (training used 0 and 500)")
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--shape", type=int, nargs=3, default=None, help="breast phantom grid (default 160 96 64)")
    parser.add_argument("--slices", type=int, default=None, help="central (brain) / lesion (breast) slices only")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", default=None, help="a random network of this size instead of the weights")
    parser.add_argument("--out", default=None, help="default: docs/results/uncertainty_quality[_breast].json")
    parser.add_argument("--write-model", default=None, nargs="?", const="bundle", help="default: the bundle's")
    parser.add_argument("--records", default=None, help="refit from the records of an earlier run's --out JSON")
    return parser


def _resolve(args: argparse.Namespace, saved: dict[str, Any]) -> None:
    """Fill the bundle, targets, shape and paths left open (``saved``: the ``args`` of a ``--records`` run)."""
    from monai_seq2seq.core import get_protocol

    bundle = saved.get("bundle") or "seq2seq_brain"
    if args.bundle and args.bundle != bundle and args.records:
        raise SystemExit(f"--bundle {args.bundle} but the records of {args.records} are of {bundle}; drop --bundle.")
    args.bundle = args.bundle or bundle
    protocol = get_protocol(PROTOCOLS[args.bundle])
    targets = args.targets or saved.get("targets")
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    unknown = [t for t in targets or () if t not in protocol]
    if unknown:
        raise SystemExit(f"--targets {unknown} are not sequences of {args.bundle}; choose from {protocol.names}.")
    args.targets = [protocol.canonical(t) for t in targets] if targets else list(BUNDLE_TARGETS[args.bundle])
    args.shape = args.shape or saved.get("shape")
    if args.out is None:
        suffix = "" if args.bundle == "seq2seq_brain" else "_" + PROTOCOLS[args.bundle]
        args.out = f"docs/results/uncertainty_quality{suffix}.json"
    if args.write_model == "bundle":
        args.write_model = str(BUNDLES / args.bundle / "configs" / "quality.json")


def _summary(validation: dict[str, Any]) -> str:
    def num(key: str, fmt: str = ".2f") -> str:
        value = validation[key]
        return "n/a" if value is None or value != value else format(value, fmt)

    return (
        f"quality model, leave-one-subject-out on {validation['cases']} cases: Pearson r "
        f"{num('pearson_r', '.3f')}, MAE {num('mae_db')} dB, {INTERVAL:.0%} interval coverage "
        f"{num('interval_coverage')}; flagged: clean {num('flag_rate_clean')}, corrupted "
        f"{num('flag_rate_corrupted')}; mean predicted PSNR clean {num('mean_predicted_clean')} "
        f"dB, corrupted {num('mean_predicted_corrupted')} dB; corrupted predicted below its own clean "
        f"case: {num('corrupted_lower_than_own_clean')}"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    saved = json.loads(Path(args.records).read_text()) if args.records else {}
    _resolve(args, saved.get("args") or {})
    if args.records:
        records = saved["records"]
        if any("foreground_disagreement" not in r["features"] for r in records):
            add_input_features(
                records, args.subjects, args.seed, args.spacing, args.slices, args.bundle, args.targets, args.shape
            )
    else:
        records = measure(
            args.subjects,
            args.seed,
            args.spacing,
            args.device,
            args.slices,
            args.config,
            args.bundle,
            args.targets,
            args.shape,
        )
    model = fit_quality(records, args.bundle)
    validation = cross_validate(records)
    print(calibration_table(records))
    print(_summary(validation))
    info = provenance(command_line("uncertainty_quality", argv), args.device)
    payload = {**info, "args": vars(args), "records": records, "model": model, "validation": validation}
    if args.out:
        write_json(args.out, payload)
    if args.write_model:
        write_json(args.write_model, _model_file(model, validation, info, args))
        print(f"quality model written to {Path(args.write_model)}")
    return payload


def _model_file(model: dict, validation: dict, info: dict, args: argparse.Namespace) -> dict[str, Any]:
    """The ``quality.json`` content: the fit, a description, provenance and the cross-validation summary."""
    region = f", {args.slices} slices" if args.slices else ""
    if args.bundle == "seq2seq_breast":
        region = f", {'x'.join(map(str, args.shape or BREAST_SHAPE))} grid" + (
            f", {args.slices} slices around the lesion" if args.slices else ""
        )
    kind = PROTOCOLS[args.bundle]
    return {
        **model,
        "description": (
            f"Predicted PSNR (dB, whole volume, [0, 1] space) of a synthetic {kind} sequence from its uncertainty, "
            f"linear per target ({', '.join(model['fitted_targets'])}), fitted on {args.subjects} held-out {kind} "
            f"phantom subjects (seed {args.seed}, {args.spacing} mm{region}), clean and with one corrupted source; "
            f"{INTERVAL:.0%} interval = z * residual std."
        ),
        "fitted": info,
        "validation": {k: v for k, v in validation.items() if k != "rows"},
    }


if __name__ == "__main__":
    main()
