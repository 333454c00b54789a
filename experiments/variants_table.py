"""Table 1 analogue: Seq2Seq-A/B/C against one plain encoder-decoder per ordered pair (paper section 4.2).

Trains the three Seq2Seq conditioning variants (A: AdaIN, B: dynamic filters, C: HyperConv) with the repo's
:class:`~monai_seq2seq.engines.Seq2SeqTrainer` on the brain phantom (2.5D stacks of 3 adjacent axial slices,
per-sequence 0.5/99.5 percentile normalisation over non-zero voxels, then [-1, 1], as the ``seq2seq_brain``
bundle's ``train.json``), and a per-pair baseline like the paper's Pix2Pix row: one plain, unconditioned
encoder-decoder per ordered source->target pair (12 models for 4 sequences), trained by the same trainer on its
fixed pair. All methods are evaluated on whole volumes of held-out phantom subjects (a different cohort seed):
PSNR and 3D SSIM per translation (:func:`monai_seq2seq.analysis.metrics.synthesis_scores`), LPIPS when the ``lpips``
package and local AlexNet weights are there, parameters, multiply-accumulates per 2.5D slice and model count.

Usage::

    python -m experiments.variants_table --mode quick --out docs/results            # CPU, about 8 min on 2 cores
    python -m experiments.variants_table --mode full --device cuda --out docs/results
    python -m experiments.variants_table --mode full --device cuda --datalist /data/BraTS2021/datalist.json

Writes ``table1_variants.md``, ``table1_variants.json`` and ``table1_variants.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from experiments.common import (
    brain_cohorts,
    brain_loader,
    brain_normalise,
    check_device,
    command_line,
    machine_info,
    provenance,
    pyplot,
    save_figure,
    write_json,
)
from monai_seq2seq.engines import FixedPairTrainer, Seq2SeqTrainer
from monai_seq2seq.inference import PairInferer, pair_volume
from monai_seq2seq.networks import PlainEncoderDecoder, count_macs, profile_seq2seq

__all__ = [
    "SEQUENCES",
    "TRANSLATIONS",
    "METHODS",
    "VARIANTS",
    "PAIR_METHOD",
    "MODES",
    "PAIR_BUDGETS",
    "PAPER_TABLE1",
    "build_method_networks",
    "pair_iterations",
    "paper_size_profile",
    "run_experiment",
    "main",
]

SEQUENCES = ("T1", "T1Gd", "T2", "FLAIR")
"""The brain protocol's sequences in code order."""
TRANSLATIONS = tuple((s, t) for s in SEQUENCES for t in SEQUENCES if s != t)
"""The 12 ordered source->target translations that are evaluated (self-reconstructions are not)."""
VARIANTS = {"Seq2Seq-A": "A", "Seq2Seq-B": "B", "Seq2Seq-C": "C"}
"""Seq2Seq methods and their ``build_seq2seq`` variant letter."""
PAIR_METHOD = "Per-pair"
"""The per-pair baseline (the paper's Pix2Pix row): one plain encoder-decoder per ordered pair."""
METHODS = (*VARIANTS, PAIR_METHOD)

MODES: dict[str, dict[str, Any]] = {
    # tests: untrained-ish tiny networks on a coarse phantom, seconds on a CPU
    "tiny": {
        "network": "tiny",
        "spacing": 8.0,
        "n_train": 1,
        "n_test": 1,
        "iterations": 3,
        "roi": (24, 24),
        "batch_size": 1,
        "disc_channels": 8,
        "disc_layers": 2,
        "eval_batch": 32,
    },
    # CPU-feasible: "small" network, 4 mm phantom, 1000 iterations per Seq2Seq model (400 took 3 min for all four
    # methods on a 2-core AMD EPYC, 2026-12-01)
    "quick": {
        "network": "small",
        "spacing": 4.0,
        "n_train": 6,
        "n_test": 3,
        "iterations": 1000,
        "roi": (48, 48),
        "batch_size": 1,
        "disc_channels": 16,
        "disc_layers": 3,
        "eval_batch": 16,
    },
    # meant for a GPU: "small" network, 2 mm phantom, thousands of iterations per method
    "full": {
        "network": "small",
        "spacing": 2.0,
        "n_train": 20,
        "n_test": 5,
        "iterations": 6000,
        "roi": (96, 96),
        "batch_size": 1,
        "disc_channels": 32,
        "disc_layers": 3,
        "eval_batch": 32,
    },
}
"""Settings per mode. ``iterations``: training iterations of each Seq2Seq model (one (source, target) pair per
iteration); the per-pair models' iterations follow from ``pair_budget`` (see :func:`pair_iterations`)."""

PAIR_BUDGETS = {
    "split": "the Seq2Seq budget is split over the 12 per-pair models: each gets ceil(iterations / 12), so the "
    "baseline as a whole trains about as many iterations as ONE Seq2Seq model",
    "same": "each of the 12 per-pair models gets the full Seq2Seq budget (12x the iterations of one Seq2Seq model)",
}

PAPER_TABLE1: dict[str, dict[str, Any]] = {
    # BraTS2021 columns of the paper's Table 1 (mean +- std; LPIPS as printed, i.e. x100); rows that correspond
    "Seq2Seq-A": {
        "psnr": (20.8, 1.7),
        "ssim": (0.465, 0.077),
        "lpips_x100": (18.5, 4.1),
        "mpa": 43.7,
        "gmacs": 105.5,
        "models": 1,
        "paper_row": "Seq2Seq-A",
    },
    "Seq2Seq-B": {
        "psnr": (27.0, 3.0),
        "ssim": (0.846, 0.061),
        "lpips_x100": (12.9, 4.1),
        "mpa": 520.6,
        "gmacs": 83.8,
        "models": 1,
        "paper_row": "Seq2Seq-B",
    },
    "Seq2Seq-C": {
        "psnr": (27.8, 3.3),
        "ssim": (0.872, 0.062),
        "lpips_x100": (10.9, 4.1),
        "mpa": 35.8,
        "gmacs": 83.4,
        "models": 1,
        "paper_row": "Seq2Seq-C",
    },
    PAIR_METHOD: {
        "psnr": (26.4, 3.2),
        "ssim": (0.849, 0.067),
        "lpips_x100": (13.8, 4.5),
        "mpa": 136.5,
        "gmacs": 31.6,
        "models": 12,
        "paper_row": "Pix2Pix [37]",
    },
}
"""The paper's Table 1 (BraTS2021), transcribed for the rows that correspond to ours (MM-GAN and ResViT have no
counterpart here)."""


def build_method_networks(method: str, network: str = "small") -> list[nn.Module]:
    """The generator(s) of one method, freshly initialised (current torch RNG).

    Args:
        method: one of :data:`METHODS`.
        network: named size (``SEQ2SEQ_CONFIGS``): ``tiny``, ``small``, ``paper``, ``released``.

    Returns:
        ``[Seq2Seq]`` for ``Seq2Seq-A/B/C``; 12 :class:`PlainEncoderDecoder` in :data:`TRANSLATIONS` order for the
        per-pair baseline.

    Raises:
        ValueError: unknown method or size.
    """
    from monai_seq2seq.networks import build_seq2seq

    if method in VARIANTS:
        return [build_seq2seq(network, variant=VARIANTS[method], protocol="brain", spatial_dims=2, in_channels=3)]
    if method == PAIR_METHOD:
        return [PlainEncoderDecoder.from_config(network, spatial_dims=2, in_channels=3) for _ in TRANSLATIONS]
    raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}.")


def pair_iterations(iterations: int, pair_budget: str = "split") -> int:
    """Iterations of each per-pair model for a Seq2Seq budget of ``iterations`` (see :data:`PAIR_BUDGETS`).

    Raises:
        ValueError: unknown ``pair_budget``.
    """
    if pair_budget not in PAIR_BUDGETS:
        raise ValueError(f"unknown pair_budget {pair_budget!r}; choose from {sorted(PAIR_BUDGETS)}.")
    return int(iterations) if pair_budget == "same" else max(1, math.ceil(int(iterations) / len(TRANSLATIONS)))


# ---------------------------------------------------------------------------------------------------------------
# profiling
def paper_size_profile(size: int = 192) -> dict[str, Any]:
    """Parameters (M) and GMACs of every method at the ``paper`` size on one 3 x size x size 2.5D slice.

    Seq2Seq-A/B/C by :func:`monai_seq2seq.networks.profile_seq2seq` (meta device, no compute); the per-pair
    baseline the same way (:func:`monai_seq2seq.networks.count_macs` on the meta device), parameters summed over
    its 12 models and MACs of one translation (one model), as the paper's Pix2Pix row.
    """
    out: dict[str, Any] = {"size": [3, size, size], "config": "paper", "source": "monai_seq2seq.networks.profiling"}
    for method, variant in VARIANTS.items():
        p = profile_seq2seq("paper", variant, size)
        out[method] = {"params_M": p["params_M"], "gmacs": p["gmacs"]}
    with torch.device("meta"):
        model = PlainEncoderDecoder.from_config("paper", spatial_dims=2, in_channels=3)
        macs = count_macs(model, torch.zeros(1, 3, size, size))
    params = sum(p.numel() for p in model.parameters())
    out[PAIR_METHOD] = {
        "params_M": params * len(TRANSLATIONS) / 1e6,
        "params_per_model_M": params / 1e6,
        "gmacs": macs / 1e9,
    }
    return out


# ---------------------------------------------------------------------------------------------------------------
# data
def _volumes(sample: dict) -> dict[str, torch.Tensor]:
    """Available sequences of a normalised sample as plain float (T, X, Y, Z) tensors in [0, 1]."""
    names = sample.get("available", [s for s in SEQUENCES if s in sample])
    out = {}
    for name in SEQUENCES:
        if name in sample and name in names:
            img = sample[name]
            out[name] = (img.as_tensor() if hasattr(img, "as_tensor") else torch.as_tensor(img)).float()
    return out


def _load_subjects(items, desc: str, from_files: bool) -> list[dict]:
    """Load (datalist entries) and normalise each subject once: ``{"subject", "volumes", "available"}``."""
    load = brain_loader(SEQUENCES) if from_files else None
    norm = brain_normalise(SEQUENCES)
    subjects = []
    for i in tqdm(range(len(items)), desc=desc, leave=False):
        item = dict(items[i])
        if load is not None:
            item = load(item)
        item = norm(item)
        vols = _volumes(item)
        subjects.append({"subject": str(item.get("subject", i)), "volumes": vols, "available": list(vols)})
    return subjects


def _data(cfg: dict, seed: int, datalist: str | None) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """Training and held-out subjects (normalised volumes) and a description of the data."""
    train, test, info = brain_cohorts(
        _load_subjects, cfg["n_train"], cfg["n_test"], cfg["spacing"], seed, datalist, "Table 1"
    )
    info["grid"] = list(next(iter(test[0]["volumes"].values())).shape[1:]) if test else None
    return train, test, info


def _train_samples(subjects: list[dict]) -> list[dict]:
    """Training dicts for the slice transforms: one [0, 1] tensor per available sequence plus ``available``."""
    return [{**s["volumes"], "available": list(s["available"]), "subject": s["subject"]} for s in subjects]


def _train_loader(samples: list[dict], cfg: dict, seed: int, silence_prob: float):
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose

    from monai_seq2seq.engines import AvailabilityCollate
    from monai_seq2seq.transforms import RandSilenceSequencesd, Slices25Dd, ToSymmetricRanged

    steps = [ToSymmetricRanged(list(SEQUENCES), allow_missing_keys=True)]
    if silence_prob > 0:
        steps.append(RandSilenceSequencesd(list(SEQUENCES), prob=silence_prob, min_silence=1, max_silence=3))
    # allow_missing_keys: the silence above deletes sequences
    steps.append(
        Slices25Dd(list(SEQUENCES), num_slices=3, axis=-1, roi_size=cfg["roi"], random=True, allow_missing_keys=True)
    )
    transform = Compose(steps).set_random_state(seed)
    return DataLoader(
        Dataset(samples, transform),
        batch_size=cfg["batch_size"],
        shuffle=True,
        num_workers=0,
        collate_fn=AvailabilityCollate(list(SEQUENCES)),
    )


# ---------------------------------------------------------------------------------------------------------------
# training
def _perceptual(device: torch.device) -> tuple[nn.Module | None, str]:
    """The VGG19 perceptual term if its weights are in the local torch hub cache (never a download)."""
    from monai_seq2seq.losses import build_perceptual_loss, default_vgg19_path

    path = default_vgg19_path()
    if not path.is_file():
        return None, f"off (VGG19 weights not found at {path})"
    return build_perceptual_loss("hub", device=device, spatial_dims=2), f"on (VGG19 from {path})"


def _train(
    generator: nn.Module,
    loader,
    iterations: int,
    cfg: dict,
    device: torch.device,
    perceptual,
    desc: str,
    pair: tuple[int, int] | None = None,
) -> tuple[float, int]:
    """Train ``generator`` with the repo's trainer for ``iterations`` iterations; returns (seconds, iterations run)."""
    from ignite.engine import Events

    from monai_seq2seq.losses import PAPER_WEIGHTS, Seq2SeqLoss
    from monai_seq2seq.networks import SequenceDiscriminators

    discriminator = SequenceDiscriminators(
        2, 3, len(SEQUENCES), channels=cfg["disc_channels"], num_layers_d=cfg["disc_layers"]
    ).to(device)
    weights = dict(PAPER_WEIGHTS)
    if pair is not None:
        weights["lambda_cyc"] = 0.0  # no reverse generator (Pix2Pix objective: L1 + adversarial)
    loss = Seq2SeqLoss(perceptual=perceptual, **weights)
    g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    kwargs: dict[str, Any] = {
        "device": device,
        "max_epochs": 1,
        "epoch_length": int(iterations),
        "train_data_loader": loader,
        "generator": generator,
        "discriminator": discriminator,
        "g_optimizer": g_opt,
        "d_optimizer": d_opt,
        "loss_function": loss,
        "sequence_keys": list(SEQUENCES),
        "amp": device.type == "cuda",
    }
    if pair is None:
        trainer = Seq2SeqTrainer(**kwargs)
    else:
        trainer = FixedPairTrainer(**kwargs, pair=pair, inferer=PairInferer(pair[1]))
    bar = tqdm(total=int(iterations), desc=desc, leave=False)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: bar.update(1))
    start = time.perf_counter()
    trainer.run()
    bar.close()
    generator.eval()
    return time.perf_counter() - start, int(trainer.state.iteration)


# ---------------------------------------------------------------------------------------------------------------
# evaluation
def _predictions(
    method: str, models: list[nn.Module], vols: dict[str, torch.Tensor], device: torch.device, batch: int
) -> dict[tuple[str, str], torch.Tensor]:
    """(source, target) -> synthetic (T, X, Y, Z) in [0, 1] for every translation the subject allows."""
    names = [s for s in SEQUENCES if s in vols]
    if method in VARIANTS:
        from monai_seq2seq.inference import Seq2SeqSynthesizer

        synth = Seq2SeqSynthesizer(
            models[0], "brain", batch_size=batch, device=device, progress=False, amp=device.type == "cuda"
        )
        preds = synth.all_pairs(vols, targets=names, sources=names)
        return {(s, t): preds[t][s] for s in names for t in names if s != t}
    out = {}
    for (s, t), model in zip(TRANSLATIONS, models, strict=True):
        if s in vols and t in vols:
            out[(s, t)] = pair_volume(model, vols[s], device, batch)
    return out


def _evaluate(
    method: str, models: list[nn.Module], test: list[dict], device: torch.device, batch: int, lpips_model
) -> dict[str, Any]:
    from monai_seq2seq.analysis.metrics import synthesis_scores

    records = []
    for subject in tqdm(test, desc=f"evaluate {method}", leave=False):
        vols = subject["volumes"]
        foreground = torch.stack([v.sum(0) for v in vols.values()]).sum(0) > 0
        for (s, t), pred in _predictions(method, models, vols, device, batch).items():
            scores = synthesis_scores(pred, vols[t], lpips_model, foreground)
            records.append({"subject": subject["subject"], "source": s, "target": t, **scores})
    return {"per_subject": records}


def _stats(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def _summarise(records: list[dict], metric_names: Sequence[str]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Per-translation and overall (all subjects x translations) mean/std of each metric."""
    per = {}
    for s, t in TRANSLATIONS:
        rows = [r for r in records if r["source"] == s and r["target"] == t]
        if rows:
            per[f"{s}->{t}"] = {m: _stats([r.get(m) for r in rows]) for m in metric_names}
    overall = {m: _stats([r.get(m) for r in records]) for m in metric_names}
    return per, overall


# ---------------------------------------------------------------------------------------------------------------
# outputs
def _short_lpips_reason(reason: str) -> str:
    """A table-cell version of :class:`~monai_seq2seq.analysis.perceptual.LPIPSStatus` ``reason``."""
    if "not found" in reason:
        return "no local AlexNet weights; never downloaded"
    if "extra" in reason:
        return "lpips package missing"
    return reason.rstrip(".")


def _fmt(stat: dict | None, digits: int, scale: float = 1.0) -> str:
    if not stat or not np.isfinite(stat.get("mean", float("nan"))):
        return "n/a"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def _paper_fmt(pair: tuple[float, float], digits: int) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def _markdown(payload: dict[str, Any]) -> str:
    cfg = payload["config"]
    data = payload["data"]
    lp = payload["lpips"]
    budget = payload["budget"]
    lines = [
        "# Table 1 analogue: Seq2Seq-A/B/C vs a per-pair baseline",
        "",
        f"- date (UTC): {payload['date_utc']}",
        f"- machine: {payload['machine']}; {payload['machine_info']['torch_threads']} torch threads",
        f"- mode: `{payload['mode']}` (network size `{cfg['network']}`, 2.5D crops {cfg['roi'][0]}x{cfg['roi'][1]}, "
        f"batch {cfg['batch_size']}, seed {payload['seed']})",
        f"- command: `{payload['command'] or '(run_experiment called from Python)'}`",
        "- data: "
        + (
            f"brain phantom, {data['spacing_mm']} mm; training subjects: {data['n_train']} (seed "
            f"{data['train_seed']}); held-out subjects: {data['n_test']} (seed {data['test_seed']}); grid "
            f"{data['grid']}"
            if data["source"] == "brain phantom"
            else f"datalist {data['datalist']}: {data['n_train']} subjects ({data['train_split']}) for training, "
            f"{data['n_test']} ({data['test_split']}) held out"
        ),
        f"- budget: Seq2Seq-A/B/C: {budget['seq2seq_iterations']} iterations each (one (source, target) pair per "
        f"iteration, drawn uniformly from the 16 ordered pairs incl. the 4 self-reconstructions: about "
        f"{budget['seq2seq_iterations'] / 16:.1f} iterations per pair). Per-pair: 12 models x "
        f"{budget['pair_iterations']} iteration(s) = {budget['pair_total_iterations']} in all "
        f"(`{budget['pair_budget']}`: {PAIR_BUDGETS[budget['pair_budget']]}).",
        "",
        "| Method | models | iterations / model | PSNR (dB) | SSIM | LPIPS x100 | params (M) | "
        f"GMACs / slice 3x{payload['slice'][1]}x{payload['slice'][2]} | paper-size params (M) / GMACs @3x192x192 | "
        "paper row | paper PSNR | paper SSIM | paper LPIPS | paper MPa | paper GMACs |",
        "|---" * 15 + "|",
    ]
    ref = payload["paper_size_profile"]
    for name, r in payload["methods"].items():
        paper = PAPER_TABLE1[name]
        lpips_cell = _fmt(r["mean"].get("lpips"), 1, 100.0) if lp["available"] else f"n/a ({lp['short']})"
        size = ref.get(name, {})
        ours = [
            str(r["n_models"]),
            str(r["iterations_per_model"]),
            _fmt(r["mean"]["psnr"], 2),
            _fmt(r["mean"]["ssim"], 3),
            lpips_cell,
            f"{r['params'] / 1e6:.3f}",
            f"{r['macs_per_slice'] / 1e9:.4f}",
            f"{size.get('params_M', float('nan')):.1f} / {size.get('gmacs', float('nan')):.1f}",
        ]
        theirs = [
            paper["paper_row"],
            _paper_fmt(paper["psnr"], 1),
            _paper_fmt(paper["ssim"], 3),
            _paper_fmt(paper["lpips_x100"], 1),
            str(paper["mpa"]),
            str(paper["gmacs"]),
        ]
        lines.append(f"| {name} | " + " | ".join(ours + theirs) + " |")
    lines += [
        "",
        "PSNR/SSIM: mean ± std over every held-out subject x translation (12 ordered pairs, self-reconstructions "
        "excluded), whole volumes in the normalised [0, 1] space (PSNR with peak 1, 3D Gaussian SSIM, "
        "`monai_seq2seq.analysis.metrics.synthesis_scores`). params: all generator parameters (per-pair: the sum of "
        "its 12 models; discriminators not counted, as in the paper). GMACs: one translation of one 2.5D slice at the "
        "evaluated (padded) size, counted with `torch.utils.flop_counter` (`monai_seq2seq.networks.count_macs`) "
        "(per-pair: one model). The paper-size column profiles the `paper` configuration (Seq2Seq-A/B/C: "
        f"`{ref['source']}`; per-pair: the same skeleton, 12 models) for comparison with the paper's MPa/GMACs.",
        "",
        f"LPIPS: {lp['reason']}",
        f"Perceptual loss term: {payload['perceptual']}.",
        "",
        "The paper's numbers are the BraTS2021 columns of its Table 1 (real data, 1,000,000 steps, paper-size "
        "networks; Pix2Pix for the per-pair row, whose generator and conditional discriminator differ from our "
        "baseline): a reference for the shape of the result, not a target for the phantom.",
        "",
        "## Per translation (PSNR dB / SSIM)",
        "",
        "| translation | " + " | ".join(payload["methods"]) + " |",
        "|---" * (len(payload["methods"]) + 1) + "|",
    ]
    for s, t in TRANSLATIONS:
        key = f"{s}->{t}"
        cells = []
        for r in payload["methods"].values():
            tr = r["per_translation"].get(key)
            cells.append(f"{tr['psnr']['mean']:.2f} / {tr['ssim']['mean']:.3f}" if tr else "n/a")
        lines.append(f"| {s} → {t} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Training time (s): " + ", ".join(f"{n}: {r['seconds_train']:.1f}" for n, r in payload["methods"].items()),
        "",
    ]
    return "\n".join(lines)


def _figure(payload: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    names = list(payload["methods"])
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (metric, label) in zip(axes, (("psnr", "PSNR (dB)"), ("ssim", "SSIM")), strict=True):
        means = [payload["methods"][n]["mean"][metric]["mean"] for n in names]
        stds = [payload["methods"][n]["mean"][metric]["std"] for n in names]
        ax.bar(x, means, 0.6, yerr=stds, capsize=3, color=["C0", "C1", "C2", "C3"][: len(names)], label="ours")
        paper = [PAPER_TABLE1[n][metric][0] for n in names]
        ax.scatter(x, paper, marker="x", color="k", zorder=3, label="paper (BraTS2021)")
        ax.set_xticks(x, names, rotation=20)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(f"Table 1 analogue ({payload['data']['source']}, mode {payload['mode']}): mean over translations")
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------------------------------
# entry points
def run_experiment(
    out: str | Path = "docs/results",
    mode: str = "quick",
    device: str = "cpu",
    seed: int = 0,
    command: str = "",
    datalist: str | None = None,
    pair_budget: str = "split",
    silence_prob: float = 0.0,
    methods: Sequence[str] = METHODS,
) -> dict[str, Any]:
    """Train and evaluate every method and write ``table1_variants.{md,json,png}`` into ``out``.

    Args:
        out: output folder.
        mode: one of :data:`MODES` (``tiny`` for tests, ``quick`` for a CPU, ``full`` for a GPU).
        device: ``cpu`` or ``cuda``.
        seed: training seed (phantom training cohort seed; the held-out cohort uses ``seed + 1000``).
        command: the command line, recorded in the outputs.
        datalist: a brain datalist JSON (``monai_seq2seq.data.load_datalist`` format) of real data: ``training``
            for training, ``testing`` (else ``validation``) held out; replaces the phantom.
        pair_budget: how the per-pair baseline's iterations follow from the Seq2Seq budget (:data:`PAIR_BUDGETS`).
        silence_prob: probability of the paper's random silence of 1-3 sequences per Seq2Seq training sample
            (the per-pair models train on complete pairs).
        methods: subset of :data:`METHODS` to run.

    Returns:
        The payload written to ``table1_variants.json``.

    Raises:
        ValueError: unknown mode, method, pair budget or device.
    """
    from monai.utils import set_determinism

    from monai_seq2seq.analysis.perceptual import load_lpips
    from monai_seq2seq.core.files import atomic_write_text, ensure_writable_dir

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {sorted(MODES)}.")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown methods {unknown or list(methods)}; choose from {list(METHODS)}.")
    dev = check_device(device)
    cfg = dict(MODES[mode])
    iterations = int(cfg["iterations"])
    per_pair = pair_iterations(iterations, pair_budget)
    out = ensure_writable_dir(Path(out))
    set_determinism(seed)

    train, test, data_info = _data(cfg, seed, datalist)
    if not train or not test:
        raise ValueError(f"need training and held-out subjects, got {len(train)} and {len(test)}.")
    samples = _train_samples(train)
    perceptual, perceptual_info = _perceptual(dev)
    lpips_model, lpips_status = load_lpips()
    if lpips_model is not None:
        lpips_model = lpips_model.to(dev)
    metric_names = ("psnr", "ssim", "lpips") if lpips_model is not None else ("psnr", "ssim")
    grid = next(iter(test[0]["volumes"].values())).shape[1:3]

    results: dict[str, dict[str, Any]] = {}
    for method in tqdm(list(methods), desc="methods"):
        torch.manual_seed(seed)
        models = [m.to(dev) for m in build_method_networks(method, cfg["network"])]
        factor = models[0].downsample_factor
        slice_size = [3, *(int(math.ceil(s / factor) * factor) for s in grid)]
        probe = torch.zeros(1, 1, *slice_size, device=dev)
        macs = count_macs(models[0], probe, 1) if method in VARIANTS else count_macs(models[0], probe)
        if method in VARIANTS:
            set_determinism(seed)
            seconds, run = _train(
                models[0], _train_loader(samples, cfg, seed, silence_prob), iterations, cfg, dev, perceptual, method
            )
            runs = [run]
            its = iterations
        else:
            seconds, runs = 0.0, []
            for k, ((s, t), model) in enumerate(zip(TRANSLATIONS, models, strict=True)):
                pair_samples = [x for x in samples if s in x["available"] and t in x["available"]]
                if not pair_samples:
                    raise ValueError(f"no training subject has both {s} and {t} for the per-pair baseline.")
                set_determinism(seed + k)
                took, run = _train(
                    model,
                    _train_loader(pair_samples, cfg, seed + k, 0.0),
                    per_pair,
                    cfg,
                    dev,
                    perceptual,
                    f"{s}->{t}",
                    pair=(SEQUENCES.index(s), SEQUENCES.index(t)),
                )
                seconds += took
                runs.append(run)
            its = per_pair
        start = time.perf_counter()
        evaluation = _evaluate(method, models, test, dev, cfg["eval_batch"], lpips_model)
        per_translation, overall = _summarise(evaluation["per_subject"], metric_names)
        param_counts = [sum(p.numel() for p in m.parameters()) for m in models]
        results[method] = {
            "n_models": len(models),
            "params": int(sum(param_counts)),
            "params_per_model": param_counts[0],
            "macs_per_slice": macs,
            "slice_size": slice_size,
            "iterations_per_model": its,
            "total_iterations": its * len(models),
            "iterations_run": runs,
            "seconds_train": seconds,
            "seconds_eval": time.perf_counter() - start,
            "translations_evaluated": len(per_translation),
            "per_translation": per_translation,
            "mean": overall,
            "per_subject": evaluation["per_subject"],
            "paper": PAPER_TABLE1[method],
        }
        del models

    first = next(iter(results.values()))
    payload = {
        **provenance(command, dev),
        "machine_info": machine_info(dev),
        "mode": mode,
        "seed": seed,
        "config": cfg,
        "data": data_info,
        "budget": {
            "seq2seq_iterations": iterations,
            "pair_budget": pair_budget,
            "pair_iterations": per_pair,
            "pair_total_iterations": per_pair * len(TRANSLATIONS),
            "description": PAIR_BUDGETS[pair_budget],
        },
        "silence_prob": silence_prob,
        "perceptual": perceptual_info,
        "lpips": {
            "available": lpips_model is not None,
            "reason": lpips_status.reason,
            "short": _short_lpips_reason(lpips_status.reason) if lpips_model is None else "available",
        },
        "slice": first["slice_size"],
        "paper_size_profile": paper_size_profile(),
        "methods": results,
    }
    atomic_write_text(out / "table1_variants.md", _markdown(payload))
    write_json(out / "table1_variants.json", payload)
    _figure(payload, out / "table1_variants.png")
    return payload


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point (``python -m experiments.variants_table``); returns the payload."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", default="quick", choices=sorted(MODES), help="tiny (tests), quick (CPU), full (GPU)")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--datalist", default=None, help="brain datalist JSON of real data (training + testing lists)")
    p.add_argument("--pair-budget", default="split", choices=sorted(PAIR_BUDGETS), help="per-pair iterations")
    p.add_argument("--silence-prob", type=float, default=0.0, help="random silence for Seq2Seq training")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    a = p.parse_args(argv)
    command = command_line("variants_table", argv)
    return run_experiment(
        a.out, a.mode, a.device, a.seed, command, a.datalist, a.pair_budget, a.silence_prob, a.methods
    )


if __name__ == "__main__":
    main()
