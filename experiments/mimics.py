"""The decisive check and why it comes out as it does: planted regions against bright-but-predictable mimics.

For each held-out phantom subject and each check of :data:`monai_seq2seq.analysis.mimics.MIMIC_CHECKS` (brain:
ET against blood products on T1Gd; breast: the lesion against a haematoma on DCE and against a shine-through
cyst on DWI) it reports the AUCs of the trained map, the raw intensity and the untrained network's map, and,
to find out why, what each source predicts inside the planted region and inside the mimic: if the sources that
show the mimic (T1 for blood products) reproduce it, its map is low there; if every source, the sequence's own
reconstruction included, falls short of a small bright structure, the map is high on both and the check fails.

Writes ``mimics_<bundle>.md``, ``mimics_<bundle>.json`` and ``mimics_<bundle>.png`` (errors per source)::

    python -m experiments.mimics --bundle seq2seq_brain --subjects 3 --seed 1000 --out docs/results
    python -m experiments.mimics --bundle seq2seq_breast --subjects 2 --seed 1000 --out docs/results
    python -m experiments.mimics --tiny --out /tmp/mimics   # untrained tiny network, 4 mm: seconds
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import BUNDLES, command_line, provenance, provenance_lines, pyplot, save_figure, write_json
from monai_seq2seq.analysis.maps import differentiation_map
from monai_seq2seq.analysis.mimics import BASELINE_LIMIT, MAP_GOAL, MIMIC_CHECKS, evaluator_mimic_aucs, region_auc
from monai_seq2seq.core.files import atomic_write_text
from monai_seq2seq.inference.engine import subject_volumes

__all__ = ["VARIANTS", "source_diagnosis", "map_variants", "run", "main"]

VARIANTS = {
    "mean_others": "mean over the other sources (eq. 5 without the self-reconstruction)",
    "min_others": "min over the other sources (high only where no single source predicts the voxel)",
    "fused_others": "error of the fused prediction from all other sources together",
}
"""Map variants scored beside the paper's map (eq. 5 with the self-reconstruction, the ``trained`` column)."""


def _first_channel(label) -> np.ndarray:
    lab = torch.as_tensor(label)
    return lab.reshape(-1, *lab.shape[-3:])[0].numpy()


def source_diagnosis(predictions: dict, volumes: dict, label, check) -> list[dict[str, Any]]:
    """Mean real value, prediction and absolute error of each source inside the planted region and the mimic.

    Args:
        predictions: source -> the trained network's prediction of ``check.sequence`` (``all_pairs``).
        volumes: available sequence -> (T, X, Y, Z) in [0, 1].
        label: the phantom's label map (..., X, Y, Z).
        check: a :class:`~monai_seq2seq.analysis.mimics.MimicCheck`.

    Returns:
        One row per source: ``source``, ``real_region``, ``real_mimic``, ``pred_region``, ``pred_mimic``,
        ``err_region``, ``err_mimic`` (frames averaged).
    """
    lab = _first_channel(label)
    region, mimic = lab == check.region, lab == check.mimic
    real = volumes[check.sequence].float()
    rows = []
    for source, pred in predictions.items():
        err = (pred.float() - real).abs().mean(0).numpy()
        p = pred.float().mean(0).numpy()
        r = real.mean(0).numpy()
        rows.append(
            {
                "source": source,
                "real_region": float(r[region].mean()),
                "real_mimic": float(r[mimic].mean()),
                "pred_region": float(p[region].mean()),
                "pred_mimic": float(p[mimic].mean()),
                "err_region": float(err[region].mean()),
                "err_mimic": float(err[mimic].mean()),
            }
        )
    return rows


def map_variants(synthesizer, predictions: dict, volumes: dict, label, check) -> dict[str, float]:
    """AUC (planted region vs mimic) of each map of :data:`VARIANTS`.

    Args:
        synthesizer: the trained synthesizer (for the fused prediction from the other sources).
        predictions: source -> prediction of ``check.sequence``, as in :func:`source_diagnosis`.
        volumes, label, check: as in :func:`source_diagnosis`.
    """
    target = check.sequence
    real = volumes[target]
    others = [s for s in predictions if s != target]
    fused = synthesizer.synthesize(volumes, target, sources=others)
    maps = {
        "mean_others": differentiation_map(real, predictions, target, include_self=False)[0],
        "min_others": differentiation_map(real, predictions, target, include_self=False, reduction="min")[0],
        "fused_others": (fused.float() - real.float()).abs(),
    }
    return {name: region_auc(m, label, check.region, check.mimic) for name, m in maps.items()}


def run(bundle: str, subjects: int, seed: int, overrides: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Run the bundle's differentiation config and measure the checks; returns the JSON payload's results."""
    from monai_seq2seq.cli.bundle import bundle_workflow, untrained_synthesizer

    root = BUNDLES / bundle
    with bundle_workflow(
        root,
        "differentiation",
        output_dir=str(output_dir),
        num_subjects=subjects,
        phantom_seed=seed,
        **overrides,
    ) as workflow:
        baseline = untrained_synthesizer(workflow, seed)
        workflow.run()
        evaluator = workflow.parser.get_parsed_content("evaluator")
        rows = evaluator_mimic_aucs(evaluator, baseline)
        checks = {c.sequence: c for c in MIMIC_CHECKS[evaluator.protocol.name]}
        diagnosis, variants = [], {}
        for analysis in evaluator.state.analyses:
            volumes = subject_volumes(analysis.reference, evaluator.protocol)
            label = analysis.reference["label"]
            for sequence, check in checks.items():
                if sequence not in volumes:
                    continue
                synth = evaluator.synthesizer
                predictions = synth.all_pairs(volumes, targets=[sequence], sources=list(volumes))[sequence]
                for row in source_diagnosis(predictions, volumes, label, check):
                    diagnosis.append({"subject": analysis.subject, "sequence": sequence, **row})
                scores = map_variants(synth, predictions, volumes, label, check)
                if baseline is not None:  # the same variants of the untrained network: their own baseline
                    untrained = baseline.all_pairs(volumes, targets=[sequence], sources=list(volumes))[sequence]
                    base = map_variants(baseline, untrained, volumes, label, check)
                    scores.update({f"untrained_{k}": v for k, v in base.items()})
                variants[(analysis.subject, sequence)] = scores
        for row in rows:
            row.update(variants.get((row["subject"], row["sequence"]), {}))
    return {"aucs": rows, "diagnosis": diagnosis}


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _markdown(payload: dict[str, Any], mode: str) -> str:
    aucs, diagnosis = payload["aucs"], payload["diagnosis"]
    lines = [f"# Planted regions against bright mimics: {payload['bundle']}", ""]
    lines += provenance_lines(payload["provenance"], mode)
    lines += [
        f"- subjects: {payload['subjects']} held-out phantom subjects, seed {payload['seed']}; weights: "
        f"{payload['weights']}",
        "",
        f"AUC of each score separating the planted region (positive) from its mimic. Goal: trained >= {MAP_GOAL}, "
        f"intensity and untrained <= {BASELINE_LIMIT}.",
        "",
        "| subject | sequence | pair | trained | intensity | untrained | goal met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in aucs:
        cells = [r["subject"], r["sequence"], r["pair"], r["trained"], r["intensity"], r["untrained"]]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + f" | {'yes' if r['goal_met'] else 'no'} |")
    lines += [
        "",
        f"Goal met on {sum(r['goal_met'] for r in aucs)} of {len(aucs)}.",
        "",
        "## Variants of the map (same network, same subjects)",
        "",
        "The trained column above is the paper's map (eq. 5: mean error over every source, the self-reconstruction",
        "included). It is high wherever the sources fail on average, so also on a mimic that one source shows and",
        "the others cannot (in the brain, blood products: T1 shows them, T2 and FLAIR cannot). The variants:",
        "",
        *[f"- `{k}`: {v}" for k, v in VARIANTS.items()],
        "",
        "Each cell: trained / untrained (the same variant of the network as initialised, its own baseline).",
        "",
        "| subject | sequence | pair | " + " | ".join(VARIANTS) + " |",
        "|---|---|---|" + "---|" * len(VARIANTS),
        *[
            "| "
            + " | ".join(_fmt(r[k]) for k in ("subject", "sequence", "pair"))
            + "".join(f" | {_fmt(r[k])} / {_fmt(r.get('untrained_' + k, float('nan')))}" for k in VARIANTS)
            + " |"
            for r in aucs
            if all(k in r for k in VARIANTS)
        ],
        "",
        "## Why: what each source predicts inside the planted region and inside the mimic",
        "",
        "Mean over the region's voxels of the real (normalised) target, of each source's prediction of it and of",
        "the absolute error (the differentiation map is the mean of these errors over the sources).",
        "",
        "| subject | sequence | source | real region | real mimic | pred region | pred mimic | error region "
        "| error mimic |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in diagnosis:
        keys = ["subject", "sequence", "source", "real_region", "real_mimic", "pred_region", "pred_mimic"]
        lines.append("| " + " | ".join(_fmt(d[k]) for k in [*keys, "err_region", "err_mimic"]) + " |")
    lines += ["", f"![errors per source]({payload['figure']})", ""]
    return "\n".join(lines)


def _figure(diagnosis: list[dict[str, Any]], path: Path) -> Path:
    plt = pyplot()
    keys = sorted({(d["sequence"], d["source"]) for d in diagnosis})
    err_r = [np.mean([d["err_region"] for d in diagnosis if (d["sequence"], d["source"]) == k]) for k in keys]
    err_m = [np.mean([d["err_mimic"] for d in diagnosis if (d["sequence"], d["source"]) == k]) for k in keys]
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(keys) + 2), 3.5))
    ax.bar(x - 0.2, err_r, 0.4, label="planted region")
    ax.bar(x + 0.2, err_m, 0.4, label="mimic")
    ax.set_xticks(x, [f"{s}->{t}" for t, s in keys], rotation=45, ha="right")
    ax.set_ylabel("mean |prediction - real|")
    ax.set_title("A map separates them only where the mimic's error is lower")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="seq2seq_brain", choices=["seq2seq_brain", "seq2seq_breast"])
    p.add_argument("--subjects", type=int, default=3)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--weights", default=None, help="other weights than the shipped ones (with --weights_sha256)")
    p.add_argument("--weights_sha256", default=None)
    p.add_argument("--tiny", action="store_true", help="untrained tiny network on a 4 mm brain: a quick check")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--run_dir", default=None, help="keep the bundle's own outputs (metrics.md, ranking.json) here")
    args = p.parse_args(argv)
    out = Path(args.out)
    overrides: dict[str, Any] = {}
    weights = "shipped (models/model.pt, sha256-checked)"
    if args.tiny:
        overrides = {"network_def#name": "tiny", "load_weights": False, "phantom_spacing": 4.0}
        args.subjects, weights = 1, "none (tiny untrained network)"
    elif args.weights:
        overrides = {"weights": args.weights, "weights_sha256": args.weights_sha256}
        weights = f"{args.weights} (sha256 {args.weights_sha256})"
    with tempfile.TemporaryDirectory() as scratch:  # the bundle's own outputs are kept only with --run_dir
        run_dir = Path(args.run_dir) if args.run_dir else Path(scratch)
        results = run(args.bundle, args.subjects, args.seed, overrides, run_dir)
    stem = f"mimics_{args.bundle}"
    payload = {
        "bundle": args.bundle,
        "subjects": args.subjects,
        "seed": args.seed,
        "weights": weights,
        "provenance": provenance(command_line("mimics", argv)),
        "figure": f"{stem}.png",
        **results,
    }
    _figure(results["diagnosis"], out / f"{stem}.png")
    write_json(out / f"{stem}.json", payload)
    atomic_write_text(out / f"{stem}.md", _markdown(payload, "tiny" if args.tiny else "default"))
    print((out / f"{stem}.md").read_text())
    return payload


if __name__ == "__main__":
    main()
