"""Fig. 4 analogue: alphabet recognition with and without the imaging-differentiation map (paper section 4.4).

One Seq2Seq network learns to translate between the two "sequences" X1, X2 of the toy alphabet set (and to
reconstruct each of them) with an L1 loss. Its imaging-differentiation maps (paper eq. 5, self-reconstruction
included by default)

    M_d(X_i) = 1/S sum_j |X'_{j->i} - X_i|,   j over X1, X2,

computed in [0, 1], are fed beside the images to a ResNet-18 that recognises the differing letter of X1 and of
X2 (26 classes each). Two models per training-set size: Baseline (X1 + X2, 2 channels) and Baseline + M_d
(X1 + X2 + M_d(X1) + M_d(X2), 4 channels); accuracy of both labels on a held-out test split.

Modes: ``tiny`` (tests, seconds), ``quick`` (2 CPU cores, roughly 20-30 min: 64 x 64 images, the paper's
training-set sizes divided by 10), ``full`` (the paper's sizes 3,000-9,000 at 128 x 128, meant for a GPU).

Usage::

    python -m experiments.toy_alphabet --mode quick --out docs/results
    python -m experiments.toy_alphabet --mode full --device cuda --out docs/results
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from ignite.engine import Events
from tqdm import tqdm

from experiments.common import (
    check_device,
    command_line,
    provenance,
    pyplot,
    save_figure,
    supervised_trainer,
    write_json,
)
from monai_seq2seq.core.protocols import Protocol, SequenceSpec
from monai_seq2seq.phantoms.toy import TOY_SPLITS

__all__ = [
    "MODES",
    "PAPER_FIG4",
    "TOY_PROTOCOL",
    "load_split",
    "build_toy_seq2seq",
    "train_seq2seq",
    "differentiation_maps",
    "make_classifier",
    "train_classifier",
    "run_experiment",
    "main",
]

NUM_CLASSES = 26
SEQUENCES = ("X1", "X2")

TOY_PROTOCOL = Protocol(
    name="toy",
    description="The paper's toy alphabet set: two 2D sequences X1, X2 (one frame each).",
    sequences=(SequenceSpec("X1"), SequenceSpec("X2")),
    code_dim=64,
)
"""Two-sequence protocol of the toy set (code index 0: X1, 1: X2; code length 64 as in the paper)."""

PAPER_FIG4 = {
    "peak_improvement_X1": 0.262,
    "peak_improvement_X2": 0.369,
    "peak_at_train_size": 5000,
    "train_sizes": [3000, 5000, 7000, 9000],
    "image_size": 128,
    "source": "paper section 4.4, Fig. 4 (ResNet-18, batch 128; Seq2Seq trained 10 epochs)",
}
"""What the paper reports for Fig. 4 (only the peak improvement is given as numbers)."""

MODES: dict[str, dict[str, Any]] = {
    # unit tests: seconds on 2 CPU cores
    "tiny": {
        "image_size": 32,
        "train_sizes": [8, 16],
        "paper_sizes": None,
        "size_note": "test mode, not paper sizes",
        "n_val": 8,
        "n_test": 8,
        "noise": 0.02,
        "network": "tiny",
        "s2s_iterations": 2,
        "s2s_batch": 2,
        "s2s_lr": 2e-4,
        "md_batch": 8,
        "cls_epochs": 1,
        "cls_batch": 8,
        "cls_lr": 1e-3,
    },
    # 2 CPU cores, roughly 20-30 min
    "quick": {
        "image_size": 64,
        "train_sizes": [300, 500, 700, 900],
        "paper_sizes": [3000, 5000, 7000, 9000],
        "size_note": "the paper's training-set sizes divided by 10; images rendered at 64 x 64 instead of 128 x 128",
        "n_val": 100,
        "n_test": 1000,
        "noise": 0.02,
        "network": "small",
        "s2s_iterations": 1500,
        "s2s_batch": 2,
        "s2s_lr": 2e-4,
        "md_batch": 32,
        "cls_epochs": 15,
        "cls_batch": 32,
        "cls_lr": 1e-3,
    },
    # the paper's setting, meant for a GPU
    "full": {
        "image_size": 128,
        "train_sizes": [3000, 5000, 7000, 9000],
        "paper_sizes": [3000, 5000, 7000, 9000],
        "size_note": "the paper's training-set sizes and image size",
        "n_val": 1000,
        "n_test": 10000,
        "noise": 0.02,
        "network": "paper",
        "s2s_iterations": 11250,
        "s2s_batch": 8,
        "s2s_lr": 2e-4,
        "md_batch": 64,
        "cls_epochs": 50,
        "cls_batch": 128,
        "cls_lr": 1e-3,
    },
}
"""Settings per mode. ``s2s_iterations`` x ``s2s_batch`` samples, each giving all 4 ordered pairs (full: 10 epochs
of 9,000 samples, as the paper's 10 epochs)."""


def _check_mode(mode: str) -> dict[str, Any]:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {sorted(MODES)}.")
    return dict(MODES[mode])


# ---- data ---------------------------------------------------------------------------------------------------
def load_split(
    split: str, num_samples: int, size: int, seed: int = 0, noise: float = 0.02, progress: bool = True
) -> dict[str, torch.Tensor]:
    """Render ``num_samples`` toy samples of one split.

    Images are rendered directly at ``size`` by :func:`~monai_seq2seq.phantoms.generate_toy_sample` (its
    geometry scales with the size) and clipped to [0, 1] (the noise can step slightly outside).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint: the split is part of each sample's seed).
        num_samples: samples ``0..num_samples-1`` of the split.
        size: image side in pixels.
        seed: dataset seed.
        noise: Gaussian noise standard deviation.
        progress: show a tqdm bar.

    Returns:
        dict with ``images`` float32 (N, 2, size, size) (X1, X2) in [0, 1], ``labels`` long (N, 2) (the differing
        letter of X1 and of X2, 0 = "A") and ``unique`` bool (N, 2, size, size) (where the differing letter of
        each image covers at least half a pixel).
    """
    from monai_seq2seq.phantoms.toy import generate_toy_sample

    images = np.empty((num_samples, 2, size, size), dtype=np.float32)
    unique = np.empty((num_samples, 2, size, size), dtype=bool)
    labels = np.empty((num_samples, 2), dtype=np.int64)
    for i in tqdm(range(num_samples), desc=f"toy {split} ({size}x{size})", disable=not progress):
        s = generate_toy_sample(seed, split, i, size=size, noise=noise)
        for k, name in enumerate(SEQUENCES):
            images[i, k] = s[name]
            unique[i, k] = s[f"unique-{name}"] >= 0.5
        labels[i] = (s["label_X1"], s["label_X2"])
    return {
        "images": torch.from_numpy(images).clamp_(0.0, 1.0),
        "labels": torch.from_numpy(labels),
        "unique": torch.from_numpy(unique),
    }


# ---- Seq2Seq -------------------------------------------------------------------------------------------------
def build_toy_seq2seq(network: str = "small") -> nn.Module:
    """A 2D, one-channel Seq2Seq of a named size (:data:`~monai_seq2seq.networks.nets.factory.SEQ2SEQ_CONFIGS`)
    for :data:`TOY_PROTOCOL`."""
    from monai_seq2seq.networks import build_seq2seq

    return build_seq2seq(network, protocol=TOY_PROTOCOL, spatial_dims=2, in_channels=1)


def _all_pairs(x: torch.Tensor) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """(B, 2, H, W) in [0, 1] -> sources (4B, 1, 1, H, W) in [-1, 1], targets, truths (4B, 1, 1, H, W) in [0, 1].

    Order of the four blocks: X1->X1, X2->X1, X1->X2, X2->X2.
    """
    b = x.shape[0]
    x1, x2 = x[:, 0:1], x[:, 1:2]
    sources = torch.cat([x1, x2, x1, x2])[:, None] * 2.0 - 1.0
    targets = [0] * (2 * b) + [1] * (2 * b)
    truths = torch.cat([x1, x1, x2, x2])[:, None]
    return sources, targets, truths


def _prepare_all_pairs(batch: torch.Tensor, device: torch.device, non_blocking: bool = False, **kwargs: Any) -> tuple:
    """``SupervisedTrainer`` batch of (B, 2, H, W) samples: the 4B ordered pairs, ``net(sources, targets)`` against
    the truths in the network's [-1, 1] output space."""
    sources, targets, truths = _all_pairs(batch.to(device, non_blocking=non_blocking))
    return sources, truths * 2.0 - 1.0, (targets,), {}


def train_seq2seq(
    images: torch.Tensor,
    network: str,
    iterations: int,
    batch_size: int,
    lr: float,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a Seq2Seq on X1 <-> X2 translation and self-reconstruction with an L1 loss only.

    Each iteration draws ``batch_size`` samples (with replacement) and averages the L1 loss of all four ordered
    pairs (X1->X1, X2->X1, X1->X2, X2->X2) in the network's [-1, 1] output space; Adam with ``lr``.

    Args:
        images: (N, 2, H, W) in [0, 1].
        network: Seq2Seq size name (``"tiny"``, ``"small"``, ``"paper"``, ``"released"``).
        iterations: optimizer steps.
        batch_size: samples per step (4 x ``batch_size`` network inputs).
        lr: Adam learning rate.
        device: training device.
        seed: seed of the initialisation and of the sample draws.
        progress: show a tqdm bar.

    Returns:
        The trained network (eval mode) and a dict recording the setting and the loss curve.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    net = build_toy_seq2seq(network).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    draws = (images[torch.from_numpy(rng.integers(0, images.shape[0], size=batch_size))] for _ in range(iterations))
    trainer, losses = supervised_trainer(
        net,
        opt,
        nn.L1Loss(),
        draws,
        device,
        epoch_length=iterations,
        prepare_batch=_prepare_all_pairs,
        desc=f"Seq2Seq ({network}) L1",
        progress=progress,
    )
    if iterations > 0:
        trainer.run()
    net.eval()
    tail = max(1, len(losses) // 10)
    info = {
        "network": network,
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "loss": "L1 only (no adversarial, perceptual or cycle term), all 4 ordered pairs incl. self-reconstruction, "
        "in the [-1, 1] output space",
        "optimizer": f"Adam lr {lr:g} (default betas)",
        "iterations": iterations,
        "batch_size": batch_size,
        "train_samples": int(images.shape[0]),
        "epochs_equivalent": iterations * batch_size / max(1, images.shape[0]),
        "loss_first": losses[0] if losses else float("nan"),
        "loss_last_10pct": float(np.mean(losses[-tail:])) if losses else float("nan"),
        "loss_curve_every": max(1, len(losses) // 100),
        "loss_curve": losses[:: max(1, len(losses) // 100)],
    }
    return net, info


@torch.no_grad()
def differentiation_maps(
    net: nn.Module,
    images: torch.Tensor,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    include_self: bool = True,
    progress: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """``M_d(X1)``, ``M_d(X2)`` of every sample from the network's predictions, in [0, 1].

    Predictions are mapped back by ``(y + 1) / 2`` and clipped to [0, 1]; each map is
    :func:`monai_seq2seq.analysis.differentiation_map` of the real image and its predictions from X1 and X2
    (``include_self=False``: from the other sequence only).

    Args:
        net: a Seq2Seq for :data:`TOY_PROTOCOL` (1 channel, 2D).
        images: (N, 2, H, W) in [0, 1].
        device: where the network runs.
        batch_size: samples per forward call (4 x ``batch_size`` network inputs).
        include_self: average the self-reconstruction in (default, paper eq. 5 and the authors' script).
        progress: show a tqdm bar.

    Returns:
        Maps (N, 2, H, W) float32 on the CPU (channel 0: M_d(X1), 1: M_d(X2)) and a dict recording the choices
        and the mean absolute error in [0, 1] of every ordered pair over the samples.
    """
    from monai_seq2seq.analysis import differentiation_map

    device = torch.device(device)
    net.eval()
    maps = torch.empty_like(images, dtype=torch.float32)
    pair_names = ("X1->X1", "X2->X1", "X1->X2", "X2->X2")
    pair_sum = dict.fromkeys(pair_names, 0.0)
    map_info: dict[str, Any] = {}
    for start in tqdm(range(0, images.shape[0], batch_size), desc="M_d", disable=not progress, leave=False):
        x = images[start : start + batch_size].to(device)
        b = x.shape[0]
        sources, targets, _ = _all_pairs(x)
        pred = ((net(sources, targets) + 1.0) / 2.0).clamp(0.0, 1.0)[:, 0, 0]  # (4B, H, W)
        blocks = dict(zip(pair_names, pred.split(b), strict=True))
        for name, p in blocks.items():
            pair_sum[name] += float((p - x[:, SEQUENCES.index(name[-2:])]).abs().mean(dim=(1, 2)).sum())
        for k, target in enumerate(SEQUENCES):
            preds = {src: blocks[f"{src}->{target}"] for src in SEQUENCES}
            m, map_info[target] = differentiation_map(x[:, k], preds, target_name=target, include_self=include_self)
            maps[start : start + b, k] = m.cpu()
    n = max(1, images.shape[0])
    info = {
        "include_self": include_self,
        "sources": {t: i["sources"] for t, i in map_info.items()},
        "formula": "M_d(X_i) = mean over sources j of |X'_{j->i} - X_i| (monai_seq2seq.analysis.differentiation_map)",
        "intensity_space": "[0, 1]: toy images clipped to [0, 1]; predictions (tanh output + 1) / 2 clipped to [0, 1]",
        "pair_mae": {k: v / n for k, v in pair_sum.items()},
    }
    return maps, info


def _map_focus(maps: torch.Tensor, unique: torch.Tensor) -> dict[str, float]:
    """Mean M_d on the differing letter of each image vs. everywhere else."""
    out = {}
    for k, name in enumerate(SEQUENCES):
        m, u = maps[:, k], unique[:, k]
        on = float(m[u].mean()) if bool(u.any()) else float("nan")
        off = float(m[~u].mean()) if bool((~u).any()) else float("nan")
        out[f"{name}_on_differing_letter"] = on
        out[f"{name}_elsewhere"] = off
        out[f"{name}_ratio"] = on / off if off > 0 else float("nan")
    return out


@torch.no_grad()
def _formula_check(
    net: nn.Module, images: torch.Tensor, maps: torch.Tensor, device: torch.device, include_self: bool
) -> float:
    """Largest |batched map - per-sample formula| over a few samples (one network call per source and target)."""
    worst = 0.0
    for i in range(images.shape[0]):
        for t, target in enumerate(SEQUENCES):
            errs = []
            for s, source in enumerate(SEQUENCES):
                if not include_self and source == target:
                    continue
                y = net(images[i, s][None, None, None].to(device) * 2.0 - 1.0, t)
                p = ((y + 1.0) / 2.0).clamp(0.0, 1.0)[0, 0, 0].cpu()
                errs.append((p - images[i, t]).abs())
            worst = max(worst, float((torch.stack(errs).mean(0) - maps[i, t]).abs().max()))
    return worst


# ---- classifier ----------------------------------------------------------------------------------------------
def make_classifier(in_channels: int, num_classes: int = NUM_CLASSES, num_labels: int = 2) -> nn.Module:
    """torchvision ResNet-18 (random init, ``weights=None``: nothing is downloaded) with its first convolution
    taking ``in_channels`` and one ``num_labels * num_classes`` output (one 26-way head per label)."""
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_labels * num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def _heads(logits: torch.Tensor) -> list[torch.Tensor]:
    return list(logits.split(NUM_CLASSES, dim=1))


@torch.no_grad()
def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int) -> list[float]:
    net.eval()
    correct = torch.zeros(y.shape[1], dtype=torch.long)
    for start in range(0, x.shape[0], batch):
        logits = net(x[start : start + batch].to(device))
        for k, head in enumerate(_heads(logits)):
            correct[k] += int((head.argmax(1).cpu() == y[start : start + batch, k]).sum())
    return (correct.double() / max(1, x.shape[0])).tolist()


class _ShuffledBatches:
    """``(x, y)`` batches of a fresh permutation (drawn from ``generator``) every time it is iterated (every
    epoch); the last, smaller batch is kept."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator) -> None:
        self.x, self.y, self.batch_size, self.generator = x, y, batch_size, generator
        self.last_order = torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return math.ceil(self.x.shape[0] / self.batch_size)

    def __iter__(self):
        self.last_order = torch.randperm(self.x.shape[0], generator=self.generator)
        for idx in self.last_order.split(self.batch_size):
            yield self.x[idx], self.y[idx]


def _two_label_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum of the cross-entropies of the two 26-way heads."""
    return sum(F.cross_entropy(h, y[:, k]) for k, h in enumerate(_heads(logits)))


def train_classifier(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    device: str | torch.device = "cpu",
    seed: int = 0,
    desc: str = "ResNet-18",
    progress: bool = True,
) -> dict[str, Any]:
    """Train a ResNet-18 on both labels (sum of the two cross-entropies) and report test accuracies.

    The weights of the epoch with the best mean validation accuracy (first one on ties) are evaluated on the test
    split. No augmentation; inputs as given (images and maps in [0, 1]).

    Args:
        train_x, val_x, test_x: (N, C, H, W) inputs.
        train_y, val_y, test_y: (N, 2) labels (differing letter of X1, of X2).
        epochs: passes over the training set.
        batch_size: training batch size (the last, smaller batch is kept).
        lr: Adam learning rate.
        device: training device.
        seed: seed of the initialisation and of the shuffling.
        desc: tqdm label.
        progress: show a tqdm bar.

    Returns:
        dict with ``acc_X1``, ``acc_X2`` (test), ``best_epoch`` (1-based), ``val_history`` (per epoch [X1, X2])
        and ``train_loss`` per epoch.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    net = make_classifier(train_x.shape[1]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    data = _ShuffledBatches(train_x, train_y, batch_size, torch.Generator().manual_seed(seed))
    trainer, losses = supervised_trainer(
        net, opt, _two_label_loss, data, device, max_epochs=epochs, desc=desc, progress=progress
    )
    best = {"mean": -1.0, "state": None, "epoch": 0}
    val_history, train_loss = [], []

    def end_of_epoch(engine) -> None:
        sizes = [len(idx) for idx in data.last_order.split(batch_size)]
        epoch_losses = losses[-len(sizes) :]
        train_loss.append(sum(v * n for v, n in zip(epoch_losses, sizes, strict=True)) / max(1, train_x.shape[0]))
        val = _accuracy(net, val_x, val_y, device, max(batch_size, 64))
        val_history.append(val)
        if float(np.mean(val)) > best["mean"]:
            best.update(mean=float(np.mean(val)), epoch=engine.state.epoch)
            best["state"] = copy.deepcopy({k: v.detach().cpu() for k, v in net.state_dict().items()})

    trainer.add_event_handler(Events.EPOCH_COMPLETED, end_of_epoch)
    if epochs > 0 and train_x.shape[0] > 0:
        trainer.run()
    best_state, best_epoch = best["state"], best["epoch"]
    if best_state is not None:
        net.load_state_dict(best_state)
    acc = _accuracy(net, test_x, test_y, device, max(batch_size, 64))
    return {
        "acc_X1": acc[0],
        "acc_X2": acc[1],
        "best_epoch": best_epoch,
        "val_history": val_history,
        "train_loss": train_loss,
        "in_channels": int(train_x.shape[1]),
    }


# ---- outputs -------------------------------------------------------------------------------------------------
def _markdown(payload: dict[str, Any], header: str) -> str:
    cfg, s2s, md = payload["config"], payload["seq2seq"], payload["differentiation_map"]
    paper_sizes = cfg["paper_sizes"]
    lines = [header, ""]
    lines += [
        "## Setting",
        "",
        f"- Data: toy alphabet set (`monai_seq2seq.phantoms.toy`), images rendered at "
        f"{cfg['image_size']} x {cfg['image_size']} (paper: 128 x 128), noise sd {cfg['noise']}, clipped to [0, 1]; "
        f"training sizes {cfg['train_sizes']} ({cfg['size_note']}), nested (first N samples of the train split); "
        f"{cfg['n_val']} validation and {cfg['n_test']} test samples (disjoint splits; paper: 1,000 / 10,000); "
        f"seed {cfg['seed']} (data, initialisations, sample order; `monai.utils.set_determinism`).",
        f"- Seq2Seq: `{s2s['network']}` size ({s2s['parameters'] / 1e6:.2f} M parameters), protocol `toy` (X1, X2), "
        f"{s2s['loss']}; {s2s['optimizer']}; {s2s['iterations']} iterations x {s2s['batch_size']} samples "
        f"(~{s2s['epochs_equivalent']:.1f} epochs of the {s2s['train_samples']} training samples; paper: 10 epochs); "
        f"L1 first {s2s['loss_first']:.4f}, last 10% {s2s['loss_last_10pct']:.4f}.",
        f"- M_d: {md['formula']}; sources {md['sources']} (self-reconstruction "
        f"{'included' if md['include_self'] else 'excluded'}); intensity space {md['intensity_space']}. "
        "Test mean absolute error per pair: " + ", ".join(f"{k} {v:.4f}" for k, v in md["pair_mae"].items()) + ".",
        "- M_d focus on the test split (mean on the differing letter / elsewhere): "
        + ", ".join(
            f"{n} {md['focus'][f'{n}_on_differing_letter']:.4f} / {md['focus'][f'{n}_elsewhere']:.4f} "
            f"(x{md['focus'][f'{n}_ratio']:.2f})"
            for n in SEQUENCES
        )
        + f"; batched maps vs per-sample formula: max |diff| {md['formula_check_max_abs_diff']:.2e}.",
        f"- Classifier: torchvision ResNet-18, random init (weights=None), first conv adapted to 2 or 4 input "
        f"channels, one 52-way output split into two 26-way heads (sum of cross-entropies); Adam lr {cfg['cls_lr']:g}, "
        f"batch {cfg['cls_batch']} (paper: 128), {cfg['cls_epochs']} epochs, no augmentation; test accuracy of the "
        "epoch with the best mean validation accuracy.",
        "",
        "## Results (test accuracy, 26 classes per label)",
        "",
        "| training samples | paper size | Baseline acc X1 | Baseline acc X2 | +M_d acc X1 | +M_d acc X2 "
        "| improvement X1 | improvement X2 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, row in enumerate(payload["results"]):
        b, m = row["baseline"], row["with_md"]
        ps = str(paper_sizes[k]) if paper_sizes else "-"
        lines.append(
            f"| {row['train_size']} | {ps} | {b['acc_X1']:.3f} | {b['acc_X2']:.3f} | {m['acc_X1']:.3f} | "
            f"{m['acc_X2']:.3f} | {row['improvement_X1']:+.3f} | {row['improvement_X2']:+.3f} |"
        )
    peak = payload["peak"]
    lines += [
        "",
        f"Peak improvement here: X1 {peak['X1']['improvement']:+.3f} at {peak['X1']['train_size']} samples, "
        f"X2 {peak['X2']['improvement']:+.3f} at {peak['X2']['train_size']} samples.",
        "",
        f"Paper (Fig. 4, reference): peak improvement {PAPER_FIG4['peak_improvement_X1']} for X1 and "
        f"{PAPER_FIG4['peak_improvement_X2']} for X2 at {PAPER_FIG4['peak_at_train_size']} training samples "
        "(128 x 128, 3,000-9,000 training samples).",
        "",
    ]
    return "\n".join(lines)


def _figure(payload: dict[str, Any], example: dict[str, np.ndarray], path: Path) -> None:
    plt = pyplot()
    sizes = [r["train_size"] for r in payload["results"]]
    fig = plt.figure(figsize=(11, 4.2))
    grid = fig.add_gridspec(2, 4, width_ratios=[3.2, 3.2, 1, 1])
    ax = fig.add_subplot(grid[:, :2])
    for name, colour in zip(SEQUENCES, ("tab:blue", "tab:orange"), strict=True):
        ax.plot(
            sizes,
            [r["baseline"][f"acc_{name}"] for r in payload["results"]],
            ":o",
            color=colour,
            label=f"{name} Baseline",
        )
        ax.plot(
            sizes,
            [r["with_md"][f"acc_{name}"] for r in payload["results"]],
            "-o",
            color=colour,
            label=f"{name} Baseline+M_d",
        )
    ax.set_xlabel(
        "training samples"
        + ("" if payload["config"]["paper_sizes"] is None else f" ({payload['config']['size_note'].split(';')[0]})"),
        fontsize=8,
    )
    ax.set_ylabel("test accuracy (26 classes)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(sizes)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Fig. 4 analogue: toy alphabet recognition ({payload['mode']} mode)", fontsize=10)
    panels = [
        ("X1", example["X1"], "gray"),
        ("X2", example["X2"], "gray"),
        ("M_d(X1)", example["Md1"], "magma"),
        ("M_d(X2)", example["Md2"], "magma"),
    ]
    for k, (title, img, cmap) in enumerate(panels):
        a = fig.add_subplot(grid[k // 2, 2 + k % 2])
        a.imshow(img, cmap=cmap, vmin=0, vmax=1 if cmap == "gray" else max(1e-6, float(img.max())))
        a.set_title(title, fontsize=8)
        a.axis("off")
    fig.text(0.83, 0.01, f"test sample 0: {example['letters']}", ha="center", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def _peak(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in SEQUENCES:
        best = max(results, key=lambda r: r[f"improvement_{name}"])
        out[name] = {"improvement": best[f"improvement_{name}"], "train_size": best["train_size"]}
    return out


def run_experiment(
    out: str | Path = "docs/results",
    mode: str = "quick",
    device: str = "cpu",
    seed: int = 0,
    command: str = "",
    include_self: bool = True,
    network: str | None = None,
    progress: bool = True,
    train_sizes: list[int] | None = None,
    n_val: int | None = None,
) -> dict[str, Any]:
    """Run the experiment and write ``fig4_toy.{md,json,png}`` into ``out``.

    Args:
        out: output folder.
        mode: ``"tiny"``, ``"quick"`` or ``"full"`` (see :data:`MODES`).
        device: ``"cpu"`` or ``"cuda"``.
        seed: seed of the data set, of every initialisation and of the sample order.
        command: the command line, recorded in the outputs.
        include_self: average the self-reconstruction into M_d (default, paper eq. 5).
        network: Seq2Seq size overriding the mode's.
        progress: show tqdm bars.
        train_sizes: training-set sizes overriding the mode's (at most 9,000, the train split); the outputs then
            give no paper size beside them.
        n_val: validation samples overriding the mode's (at most 1,000).

    Returns:
        The JSON payload: config, Seq2Seq and M_d records, per-size results and peaks, the paper's reference.

    Raises:
        ValueError: unknown mode, an unusable device, or sizes outside the splits.
    """
    from monai.utils import set_determinism

    from monai_seq2seq.core.files import atomic_write_text, ensure_writable_dir

    cfg = _check_mode(mode)
    if network is not None:
        cfg["network"] = network
    if train_sizes is not None:
        sizes = sorted({int(n) for n in train_sizes})
        if not sizes or sizes[0] < 1 or sizes[-1] > TOY_SPLITS["train"]:
            raise ValueError(f"train_sizes must lie in 1..{TOY_SPLITS['train']}, got {list(train_sizes)}.")
        cfg.update(
            train_sizes=sizes, paper_sizes=None, size_note=f"set by train_sizes; mode {mode} has {cfg['train_sizes']}"
        )
    if n_val is not None:
        if not 1 <= int(n_val) <= TOY_SPLITS["val"]:
            raise ValueError(f"n_val must lie in 1..{TOY_SPLITS['val']}, got {n_val}.")
        cfg["n_val"] = int(n_val)
    cfg["include_self"] = include_self
    cfg["seed"] = seed
    dev = check_device(device)
    out = ensure_writable_dir(Path(out))
    set_determinism(seed)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    n_train = max(cfg["train_sizes"])
    size, noise = cfg["image_size"], cfg["noise"]
    data = {
        "train": load_split("train", n_train, size, seed, noise, progress),
        "val": load_split("val", cfg["n_val"], size, seed, noise, progress),
        "test": load_split("test", cfg["n_test"], size, seed, noise, progress),
    }
    timings["data_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    net, s2s_info = train_seq2seq(
        data["train"]["images"],
        cfg["network"],
        cfg["s2s_iterations"],
        cfg["s2s_batch"],
        cfg["s2s_lr"],
        dev,
        seed,
        progress,
    )
    timings["seq2seq_train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    maps, md_info = {}, {}
    for split, d in data.items():
        maps[split], info = differentiation_maps(net, d["images"], dev, cfg["md_batch"], include_self, progress)
        if split == "test":
            md_info = info
    md_info["focus"] = _map_focus(maps["test"], data["test"]["unique"])
    n_check = min(1 if mode == "tiny" else 4, cfg["n_test"])
    md_info["formula_check_max_abs_diff"] = _formula_check(
        net, data["test"]["images"][:n_check], maps["test"][:n_check], dev, include_self
    )
    md_info["formula_check_samples"] = n_check
    timings["maps_s"] = time.perf_counter() - t0
    del net

    t0 = time.perf_counter()
    inputs = {  # Baseline: X1 + X2; Baseline + M_d: X1 + X2 + M_d(X1) + M_d(X2)
        "baseline": {s: d["images"] for s, d in data.items()},
        "with_md": {s: torch.cat([d["images"], maps[s]], dim=1) for s, d in data.items()},
    }
    results = []
    for n in tqdm(cfg["train_sizes"], desc="training-set sizes", disable=not progress):
        row: dict[str, Any] = {"train_size": n}
        for model, x in inputs.items():
            row[model] = train_classifier(
                x["train"][:n],
                data["train"]["labels"][:n],
                x["val"],
                data["val"]["labels"],
                x["test"],
                data["test"]["labels"],
                cfg["cls_epochs"],
                cfg["cls_batch"],
                cfg["cls_lr"],
                dev,
                seed,
                f"ResNet-18 {model} n={n}",
                progress,
            )
        for name in SEQUENCES:
            row[f"improvement_{name}"] = row["with_md"][f"acc_{name}"] - row["baseline"][f"acc_{name}"]
        results.append(row)
    timings["classifiers_s"] = time.perf_counter() - t0

    prov = provenance(command, dev)
    payload: dict[str, Any] = {
        "experiment": "Fig. 4 analogue: alphabet recognition with the imaging-differentiation map",
        **prov,
        "mode": mode,
        "device": str(dev),
        "config": cfg,
        "seq2seq": s2s_info,
        "differentiation_map": md_info,
        "results": results,
        "peak": _peak(results),
        "paper": PAPER_FIG4,
        "timings_s": timings,
    }
    header = (
        "# Fig. 4 analogue: alphabet recognition with the imaging-differentiation map (toy set)\n\n"
        f"date (UTC): {prov['date_utc']}; machine: {prov['machine']}; mode: {mode}; command: `{command}`"
    )
    atomic_write_text(out / "fig4_toy.md", _markdown(payload, header))
    write_json(out / "fig4_toy.json", payload)
    t = data["test"]
    from monai_seq2seq.phantoms.toy import LETTERS

    example = {
        "X1": t["images"][0, 0].numpy(),
        "X2": t["images"][0, 1].numpy(),
        "Md1": maps["test"][0, 0].numpy(),
        "Md2": maps["test"][0, 1].numpy(),
        "letters": f"X1 '{LETTERS[int(t['labels'][0, 0])]}', X2 '{LETTERS[int(t['labels'][0, 1])]}'",
    }
    _figure(payload, example, out / "fig4_toy.png")
    return payload


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).

    Returns:
        The payload of :func:`run_experiment`.
    """
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--mode", choices=sorted(MODES), default=None, help="default: quick")
    group.add_argument("--tiny", action="store_true", help="same as --mode tiny (tests)")
    group.add_argument("--quick", action="store_true", help="same as --mode quick")
    group.add_argument("--full", action="store_true", help="same as --mode full (GPU)")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--network", default=None, help="Seq2Seq size overriding the mode's (tiny/small/paper/released)")
    p.add_argument("--train_sizes", type=int, nargs="+", default=None, help="training-set sizes overriding the mode's")
    p.add_argument("--n_val", type=int, default=None, help="validation samples overriding the mode's")
    p.add_argument(
        "--others_only",
        action="store_true",
        help="M_d from the other sequence only (default: self-reconstruction included)",
    )
    a = p.parse_args(argv)
    mode = a.mode or ("tiny" if a.tiny else "full" if a.full else "quick")
    return run_experiment(
        a.out,
        mode,
        a.device,
        a.seed,
        command_line("toy_alphabet", argv),
        not a.others_only,
        a.network,
        train_sizes=a.train_sizes,
        n_val=a.n_val,
    )


if __name__ == "__main__":
    main()
