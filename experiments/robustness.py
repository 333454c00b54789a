"""Robustness table: how the shipped brain weights' translations and the C_d ranking degrade on clinical input.

Held-out brain phantom subjects (seed 2000, the bundle's 2 mm grid) are corrupted by the clinical acquisition
effects of :mod:`monai_seq2seq.phantoms.realism`, one at a time and all together (bias field, Rician noise at SNR
20/10/5, thick slices, rigid misalignment, reduced fields of view, ``clinical``), each from ``(seed, index)``.
For every condition the corrupted subject is normalised as the bundle does (percentiles 0.5/99.5 of the non-zero
voxels), all 16 source -> target translations are synthesised (each source encoded once,
:meth:`Seq2SeqSynthesizer.all_pairs`) and scored against the CLEAN subject's target (PSNR and SSIM, whole
volume, [0, 1] space, :func:`monai_seq2seq.analysis.synthesis_scores`); the C_d ranking is
:func:`monai_seq2seq.analysis.cohort_ranking` of those scores (PSNR + SSIM z-scored, diagonal included). The
"input" column is the PSNR of the corrupted, normalised sequence itself against its clean version: how much the
corruption alone costs before any network.

The phantom's own mild bias field and SNR-30 noise are part of "clean"; the effects come on top. Labels stay in
the reference (T1) frame, so a misaligned or cropped source is scored against the unmoved clean target.

Usage::

    python -m experiments.robustness --out docs/results              # 2 subjects, shipped weights
    python -m experiments.robustness --subjects 1 --out /tmp/rob
    python -m experiments.robustness --tiny --out /tmp/rob           # untrained tiny network, 8 mm (tests)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import (
    BRAIN_SEQUENCES,
    BUNDLES,
    brain_normalise,
    bundle_network,
    command_line,
    provenance,
    provenance_lines,
    psnr_db,
    pyplot,
    save_figure,
    write_json,
)

__all__ = ["CONDITIONS", "MODES", "PAIRS", "bundle_spacing", "measure", "run_experiment", "main"]

BRAIN_BUNDLE = BUNDLES / "seq2seq_brain"
CONDITIONS: dict[str, dict[str, Any] | None] = {
    "clean": None,
    "bias": {"effects": "bias"},
    "noise SNR 20": {"effects": "noise", "snr": 20.0},
    "noise SNR 10": {"effects": "noise", "snr": 10.0},
    "noise SNR 5": {"effects": "noise", "snr": 5.0},
    "thickness": {"effects": "thickness"},
    "misalign": {"effects": "misalign"},
    "fov": {"effects": "fov"},
    "clinical": {"effects": "clinical"},
    "misalign, registered": {"effects": "misalign", "register": "rigid"},
    "clinical, registered": {"effects": "clinical", "register": "rigid"},
}
"""Condition -> ``apply_realism`` effects and levels (defaults of ``RealismConfig`` otherwise; clinical: SNR 20);
``register``: the bundles' ``--register rigid`` step (:class:`~monai_seq2seq.transforms.RegisterToReferenced`, every
sequence onto T1) runs before normalisation."""
PAIRS = [(s, t) for s in BRAIN_SEQUENCES for t in BRAIN_SEQUENCES if s != t]
"""The 12 ordered translations of the table (self-reconstructions enter the ranking only)."""
MODES = {
    "default": {"subjects": 2, "spacing": None, "network": "bundle"},  # None: the bundle's phantom grid
    "tiny": {"subjects": 1, "spacing": 8.0, "network": "tiny"},  # untrained tiny network (tests)
}


def bundle_spacing() -> float:
    """The brain bundle's phantom voxel size (``configs/inference.json``, ``phantom_spacing``)."""
    return float(json.loads((BRAIN_BUNDLE / "configs" / "inference.json").read_text())["phantom_spacing"])


def _network(kind: str, device: str) -> torch.nn.Module:
    if kind == "bundle":
        return bundle_network(BRAIN_BUNDLE, device)
    from monai_seq2seq.core.protocols import BRAIN
    from monai_seq2seq.zoo import build_zoo_seq2seq

    torch.manual_seed(0)
    return build_zoo_seq2seq("tiny", "C", protocol=BRAIN, default_target="T2", upsample_mode="nearest").to(device)


def _volumes(subject, register: str | None = None) -> dict[str, torch.Tensor]:
    """The bundle-normalised ``(1, X, Y, Z)`` float tensors of a phantom subject (``register``: rigid first)."""
    from monai_seq2seq.core.protocols import BRAIN
    from monai_seq2seq.phantoms import subject_to_sample
    from monai_seq2seq.transforms import RegisterToReferenced

    sample = subject_to_sample(subject, BRAIN)
    if register:
        sample = RegisterToReferenced(list(BRAIN_SEQUENCES), transform=register)(sample)
    sample = brain_normalise()(sample)
    return {n: torch.as_tensor(sample[n]).float() for n in BRAIN_SEQUENCES}


def _condition(synthesizer, clean, index: int, seed: int, spec: dict | None, clean_vol):
    """One subject under one condition: per-pair scores against the clean targets and input PSNRs."""
    from monai_seq2seq.analysis import SubjectAnalysis, synthesis_scores
    from monai_seq2seq.core.protocols import BRAIN
    from monai_seq2seq.phantoms.realism import apply_realism

    subject = clean
    if spec is not None:
        levels = {k: v for k, v in spec.items() if k not in ("effects", "register")}
        subject = apply_realism(clean, BRAIN, spec["effects"], seed=seed, index=index, **levels)
    vol = _volumes(subject, (spec or {}).get("register"))
    names = list(BRAIN_SEQUENCES)
    pred = synthesizer.all_pairs(vol, targets=names, sources=names)
    metrics = {(s, t): synthesis_scores(pred[t][s], clean_vol[t]) for s in names for t in names}
    inputs = {n: psnr_db(vol[n], clean_vol[n]) if spec is not None else float("inf") for n in names}
    return SubjectAnalysis(subject.subject, names, {}, {}, metrics), inputs


def measure(
    subjects: int = 2, seed: int = 2000, spacing: float | None = None, mode: str = "default", device: str = "cpu"
) -> dict[str, Any]:
    """Scores of every condition of :data:`CONDITIONS` on ``subjects`` held-out brain phantom subjects.

    Returns:
        ``{"conditions": {name: {"pairs": {"S->T": mean PSNR}, "ssim_pairs", "per_subject", "input_psnr",
        "ranking" (SequenceRanking.to_dict()), "seconds"}}, "subjects": [...], "spacing_mm", ...}``.
    """
    from monai_seq2seq.analysis import cohort_ranking
    from monai_seq2seq.inference import Seq2SeqSynthesizer
    from monai_seq2seq.phantoms import BrainPhantomCohort

    spacing = bundle_spacing() if spacing is None else float(spacing)
    network = _network(MODES[mode]["network"], device)
    synthesizer = Seq2SeqSynthesizer(network.eval(), protocol="brain", device=device, progress=False)
    cohort = BrainPhantomCohort(subjects, seed=seed, spacing=spacing)
    analyses: dict[str, list] = {c: [] for c in CONDITIONS}
    inputs: dict[str, list] = {c: [] for c in CONDITIONS}
    seconds = dict.fromkeys(CONDITIONS, 0.0)
    ids = []
    for i in range(subjects):
        clean = cohort.generate(i)
        ids.append(clean.subject)
        clean_vol = _volumes(clean)
        for name, spec in CONDITIONS.items():
            start = time.perf_counter()
            analysis, psnr_in = _condition(synthesizer, clean, i, seed, spec, clean_vol)
            analyses[name].append(analysis)
            inputs[name].append(psnr_in)
            seconds[name] += time.perf_counter() - start
    out = {}
    for name in CONDITIONS:
        per_subject = [{f"{s}->{t}": a.metrics[(s, t)]["psnr"] for s, t in PAIRS} for a in analyses[name]]
        ssim = [{f"{s}->{t}": a.metrics[(s, t)]["ssim"] for s, t in PAIRS} for a in analyses[name]]
        ranking = cohort_ranking(analyses[name], list(BRAIN_SEQUENCES), metrics=("psnr", "ssim"))
        out[name] = {
            "realism": CONDITIONS[name],
            "pairs": {k: float(np.mean([r[k] for r in per_subject])) for k in per_subject[0]},
            "ssim_pairs": {k: float(np.mean([r[k] for r in ssim])) for k in ssim[0]},
            "per_subject": per_subject,
            "input_psnr": {n: float(np.mean([r[n] for r in inputs[name]])) for n in BRAIN_SEQUENCES},
            "ranking": ranking.to_dict(),
            "seconds": seconds[name],
        }
    return {"conditions": out, "subjects": ids, "seed": seed, "spacing_mm": spacing, "mode": mode}


def _summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    clean = result["conditions"]["clean"]
    base = float(np.mean(list(clean["pairs"].values())))
    rows = []
    for name, res in result["conditions"].items():
        mean = float(np.mean(list(res["pairs"].values())))
        table = sorted(res["ranking"]["table"], key=lambda r: r["rank_C_d"])
        finite = [v for v in res["input_psnr"].values() if np.isfinite(v)]
        rows.append(
            {
                "condition": name,
                "mean_psnr": mean,
                "drop_db": mean - base,
                "worst_pair": min(res["pairs"], key=lambda k: res["pairs"][k] - clean["pairs"][k]),
                "worst_drop_db": min(v - clean["pairs"][k] for k, v in res["pairs"].items()),
                "input_psnr": float(np.mean(finite)) if finite else float("inf"),
                "order_c_d": [r["sequence"] for r in table],
                "rank_t1gd": next(r["rank_C_d"] for r in table if r["sequence"] == "T1Gd"),
            }
        )
    return rows


def _markdown(result: dict[str, Any], rows: list[dict], prov: dict[str, str]) -> str:
    conds = list(result["conditions"])
    lines = [
        "# Robustness of the shipped brain weights to clinical acquisition effects",
        "",
        *provenance_lines(prov, mode=result["mode"]),
        f"- subjects: {', '.join(result['subjects'])} (phantom seed {result['seed']}, {result['spacing_mm']} mm)",
        "",
        "PSNR (dB, whole volume, [0, 1] space) of the synthesis from the corrupted subject against the CLEAN target;"
        " drop = mean over the 12 translations minus the clean condition's. Input: PSNR of the corrupted sequences"
        " themselves against the clean ones (mean over the corrupted sequences). C_d order: ranking of "
        "`cohort_ranking` (PSNR + SSIM against the clean targets, diagonal included), first = hardest to generate.",
        "",
        "| condition | mean PSNR | drop | worst pair (drop) | input PSNR | C_d order | T1Gd rank |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        inp = "-" if not np.isfinite(r["input_psnr"]) else f"{r['input_psnr']:.2f}"
        lines.append(
            f"| {r['condition']} | {r['mean_psnr']:.2f} | {r['drop_db']:+.2f} | {r['worst_pair']} "
            f"({r['worst_drop_db']:+.2f}) | {inp} | {' > '.join(r['order_c_d'])} | {r['rank_t1gd']} |"
        )
    lines += ["", "## PSNR of each translation (dB)", "", "| source -> target | " + " | ".join(conds) + " |"]
    lines.append("|---" * (len(conds) + 1) + "|")
    for s, t in PAIRS:
        key = f"{s}->{t}"
        lines.append(f"| {key} | " + " | ".join(f"{result['conditions'][c]['pairs'][key]:.2f}" for c in conds) + " |")
    lines += ["", "## C_d per sequence (rank)", "", "| sequence | " + " | ".join(conds) + " |"]
    lines.append("|---" * (len(conds) + 1) + "|")
    for n in BRAIN_SEQUENCES:
        cells = []
        for c in conds:
            row = next(x for x in result["conditions"][c]["ranking"]["table"] if x["sequence"] == n)
            cells.append(f"{row['C_d']:.3f} ({row['rank_C_d']})")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Seconds per condition: " + ", ".join(f"{c} {v['seconds']:.0f}" for c, v in result["conditions"].items()),
    ]
    return "\n".join(lines) + "\n"


def _figure(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    conds = [c for c in result["conditions"] if c != "clean"]
    clean = result["conditions"]["clean"]["pairs"]
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(conds))
    width = 0.2
    for k, target in enumerate(BRAIN_SEQUENCES):
        drops = [
            np.mean(
                [
                    result["conditions"][c]["pairs"][f"{s}->{target}"] - clean[f"{s}->{target}"]
                    for s in BRAIN_SEQUENCES
                    if s != target
                ]
            )
            for c in conds
        ]
        ax.bar(x + (k - 1.5) * width, drops, width, label=f"target {target}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x, conds, rotation=30, ha="right")
    ax.set_ylabel("PSNR change vs clean (dB)")
    ax.set_title("Synthesis from corrupted inputs vs the clean target (mean over sources)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def run_experiment(
    out: str | Path = "docs/results",
    subjects: int | None = None,
    seed: int = 2000,
    mode: str = "default",
    device: str = "cpu",
    command: str = "",
) -> dict[str, Any]:
    """Measure every condition and write ``robustness.{md,json,png}`` into ``out``.

    Args:
        out: output folder.
        subjects: held-out subjects (``None``: the mode's, 2 by default).
        seed: phantom seed of the held-out cohort (the shipped weights saw seeds 0 and 500).
        mode: ``default`` (shipped weights, the bundle's grid) or ``tiny`` (untrained tiny network, 8 mm; tests).
        device: ``cpu`` or ``cuda``.
        command: the command line, recorded in the outputs.

    Raises:
        ValueError: an unknown mode.
    """
    from monai_seq2seq.core.files import atomic_write_text, ensure_writable_dir

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {sorted(MODES)}.")
    cfg = MODES[mode]
    result = measure(subjects or cfg["subjects"], seed, cfg["spacing"], mode, device)
    prov = provenance(command, device)
    rows = _summary(result)
    out = ensure_writable_dir(Path(out))
    atomic_write_text(out / "robustness.md", _markdown(result, rows, prov))
    payload = {**prov, **result, "summary": rows}
    write_json(out / "robustness.json", payload)
    _figure(result, out / "robustness.png")
    return payload


def main(argv=None) -> dict[str, Any]:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/results")
    p.add_argument("--subjects", type=int, default=None, help="held-out subjects (default 2)")
    p.add_argument("--seed", type=int, default=2000, help="phantom seed of the held-out subjects")
    p.add_argument("--tiny", action="store_true", help="untrained tiny network on an 8 mm phantom (tests)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    return run_experiment(
        a.out, a.subjects, a.seed, "tiny" if a.tiny else "default", a.device, command_line("robustness", argv)
    )


if __name__ == "__main__":
    main()
