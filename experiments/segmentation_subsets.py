"""Table 3 analogue: brain tumour segmentation with sequence subsets (paper section 4.3).

Trains one MONAI SegResNet per sequence subset ({T1Gd}, {FLAIR}, {T1, T2}, {T1Gd, FLAIR}, all four) on the
same training subjects, evaluates Dice and the average symmetric surface distance (ASSD, mm) of the enhancing
tumour (ET), tumour core (TC) and whole tumour (WT) on the same held-out subjects, and compares each subset with
all four sequences by a one-sided paired t-test, as the paper does (its Table 3 used nnU-Net on BraTS 2021).

On the brain phantom the enhancement is planted so that only T1Gd shows ET; the expected pattern is the paper's:
subsets without T1Gd lose ET, {T1Gd, FLAIR} is about as good as all four.

Usage::

    python -m experiments.segmentation_subsets --quick --out docs/results            # phantom, 2 CPU cores
    python -m experiments.segmentation_subsets --device cuda                        # full mode (GPU)
    python -m experiments.segmentation_subsets --device cuda --datalist /data/BraTS2021/datalist.json --roi 128

A datalist (``monai_seq2seq.data.build_brats_datalist``) trains on its ``training`` list and tests on
``testing`` (else ``validation``); every subject must have the four sequences and a label.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from experiments.common import (
    BRAIN_SEQUENCES,
    brain_cohorts,
    brain_loader,
    brain_normalise,
    command_line,
    json_safe,
    provenance,
    provenance_lines,
    pyplot,
    save_figure,
    supervised_trainer,
    write_json,
)

__all__ = [
    "SUBSETS",
    "REGIONS",
    "MODES",
    "PAPER_TABLE3",
    "prepare_subject",
    "paired_test",
    "run_experiment",
    "replot",
    "main",
]

SEQUENCES = BRAIN_SEQUENCES
SUBSETS = {
    "T1Gd": ("T1Gd",),
    "FLAIR": ("FLAIR",),
    "T1+T2": ("T1", "T2"),
    "T1Gd+FLAIR": ("T1Gd", "FLAIR"),
    "all four": ("T1", "T1Gd", "T2", "FLAIR"),
}
REGIONS = ("ET", "TC", "WT")
# MONAI's ConvertToMultiChannelBasedOnBratsClasses stacks (TC, WT, ET); this picks them in REGIONS order
_REGION_CHANNELS = (2, 0, 1)
MODES = {
    "tiny": {"spacing": 8.0, "n_train": 2, "n_test": 2, "iterations": 3, "filters": 8, "batch_size": 1},
    "quick": {"spacing": 4.0, "n_train": 12, "n_test": 8, "iterations": 800, "filters": 8, "batch_size": 2, "roi": 32},
    "full": {
        "spacing": 2.0,
        "n_train": 40,
        "n_test": 20,
        "iterations": 4000,
        "filters": 16,
        "batch_size": 2,
        "roi": 64,
    },
}
# paper Table 3 (nnU-Net, BraTS 2021): mean, std and whether it differs from all four at p < 0.05
PAPER_TABLE3 = {
    "T1Gd": {
        "dice": [(0.848, 0.201, 0), (0.818, 0.290, 1), (0.802, 0.169, 1)],
        "assd": [(1.499, 5.279, 0), (3.285, 9.163, 1), (3.156, 5.462, 1)],
    },
    "FLAIR": {
        "dice": [(0.518, 0.256, 1), (0.711, 0.260, 1), (0.910, 0.118, 1)],
        "assd": [(4.395, 8.754, 1), (4.428, 8.403, 1), (1.612, 4.287, 0)],
    },
    "T1+T2": {
        "dice": [(0.563, 0.253, 1), (0.705, 0.270, 1), (0.884, 0.112, 1)],
        "assd": [(3.700, 7.082, 1), (3.963, 6.974, 1), (1.837, 3.954, 1)],
    },
    "T1Gd+FLAIR": {
        "dice": [(0.843, 0.213, 0), (0.844, 0.248, 0), (0.917, 0.102, 1)],
        "assd": [(1.925, 7.376, 0), (2.341, 6.919, 0), (1.330, 3.862, 0)],
    },
    "all four": {
        "dice": [(0.837, 0.210, 0), (0.838, 0.254, 0), (0.923, 0.088, 0)],
        "assd": [(1.785, 5.957, 0), (2.405, 6.103, 0), (1.242, 3.152, 0)],
    },
}


# ---- data ------------------------------------------------------------------------------------------------------
def _spacing(image, fallback: float | None) -> list[float]:
    affine = getattr(image, "affine", None)
    if affine is not None:
        return [float(v) for v in np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)]
    if fallback is None:
        raise ValueError("image has no affine, so its voxel spacing (for ASSD in mm) is unknown.")
    return [float(fallback)] * 3


def prepare_subject(item: dict, load=None, normalise=None, fallback_spacing: float | None = None) -> dict[str, Any]:
    """One subject as a (4, X, Y, Z) image in [0, 1] and a (3, X, Y, Z) ET/TC/WT label, padded to multiples of 8.

    Args:
        item: a phantom sample or a datalist entry (then ``load`` reads its files).
        load: a loader transform for datalist entries, ``None`` for in-memory samples.
        normalise: the intensity normalisation (default: the brain bundles', over non-zero voxels).
        fallback_spacing: voxel size (mm) when the image carries no affine.

    Returns:
        ``{"subject", "image", "label", "spacing"}``.

    Raises:
        ValueError: a sequence or the label is missing, grids differ, or an image holds NaN/Inf.
    """
    from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses, DivisiblePad

    sid = str(item.get("subject", "?"))
    missing = [k for k in (*SEQUENCES, "label") if item.get(k) is None]
    if missing:
        raise ValueError(
            f"subject {sid!r}: Table 3 needs complete subjects (four sequences and a label); missing {missing}."
        )
    d = load(dict(item)) if load is not None else dict(item)
    shapes = {k: tuple(d[k].shape[1:]) for k in (*SEQUENCES, "label")}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"subject {sid!r}: sequences and label are on different grids: {shapes}.")
    for k in SEQUENCES:
        if not torch.isfinite(torch.as_tensor(d[k])).all():
            raise ValueError(f"subject {sid!r}: {k} holds NaN or Inf values.")
    spacing = _spacing(d["T1"], fallback_spacing)
    d = (normalise or brain_normalise())(d)
    image = torch.cat([torch.as_tensor(d[k]).float() for k in SEQUENCES])
    label = torch.as_tensor(ConvertToMultiChannelBasedOnBratsClasses()(torch.as_tensor(d["label"])))
    label = label[list(_REGION_CHANNELS)].float()
    pad = DivisiblePad(k=8)
    return {
        "subject": sid,
        "image": torch.as_tensor(pad(image)),
        "label": torch.as_tensor(pad(label)),
        "spacing": spacing,
    }


def _load(items, desc: str, from_files: bool, fallback_spacing: float | None) -> list[dict]:
    load = brain_loader([*SEQUENCES, "label"]) if from_files else None
    norm = brain_normalise()
    return [
        prepare_subject(items[i], load, norm, fallback_spacing) for i in tqdm(range(len(items)), desc=desc, leave=False)
    ]


def _data(cfg: dict, seed: int, datalist: str | None) -> tuple[list[dict], list[dict], dict[str, Any]]:
    def prepare(items, desc: str, from_files: bool) -> list[dict]:
        return _load(items, desc, from_files, None if from_files else cfg["spacing"])

    train, test, info = brain_cohorts(prepare, cfg["n_train"], cfg["n_test"], cfg["spacing"], seed, datalist, "Table 3")
    info["grid"] = list(test[0]["image"].shape[1:]) if test else None
    return train, test, info


# ---- training and evaluation ---------------------------------------------------------------------------------------
def _batch(train: list[dict], idx: list[int], cfg: dict, rng: np.random.Generator, cropper) -> tuple[torch.Tensor, ...]:
    xs, ys = [], []
    for i in rng.integers(len(train), size=cfg["batch_size"]):
        s = {"image": train[i]["image"][idx], "label": train[i]["label"]}
        if cropper is not None:
            s = cropper(s)[0]
        xs.append(torch.as_tensor(s["image"]))
        ys.append(torch.as_tensor(s["label"]))
    return torch.stack(xs), torch.stack(ys)


def _train_eval(train, test, channels, cfg, device, seed) -> dict[str, Any]:
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceLoss
    from monai.metrics import DiceMetric, SurfaceDistanceMetric
    from monai.networks.nets import SegResNet
    from monai.transforms import RandCropByPosNegLabeld

    torch.manual_seed(seed)
    idx = [SEQUENCES.index(s) for s in channels]
    net = SegResNet(spatial_dims=3, in_channels=len(idx), out_channels=len(REGIONS), init_filters=cfg["filters"]).to(
        device
    )
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = DiceLoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5)
    rng = np.random.default_rng(seed)
    roi = cfg.get("roi")
    cropper = None
    if roi:
        cropper = RandCropByPosNegLabeld(
            ["image", "label"], "label", spatial_size=roi, pos=1, neg=1, num_samples=1, allow_smaller=True
        )
        cropper.set_random_state(seed)
    batches = (_batch(train, idx, cfg, rng, cropper) for _ in range(cfg["iterations"]))  # drawn as training goes
    trainer, losses = supervised_trainer(
        net, opt, loss_fn, batches, device, epoch_length=cfg["iterations"], desc="+".join(channels)
    )
    trainer.run()
    net.eval()
    dice_m = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    assd_m = SurfaceDistanceMetric(include_background=True, symmetric=True, reduction="none")
    res: dict[str, Any] = {"subjects": [], "dice": [], "assd": [], "loss_first": losses[0], "loss_last": losses[-1]}
    with torch.no_grad():
        for s in test:
            x = s["image"][idx][None].to(device)
            logits = sliding_window_inference(x, roi, 1, net, overlap=0.25) if roi else net(x)
            pred = (torch.sigmoid(logits) > 0.5).float().cpu()
            y = s["label"][None]
            res["subjects"].append(s["subject"])
            res["dice"].append(dice_m(pred, y)[0].tolist())
            res["assd"].append(assd_m(pred, y, spacing=s["spacing"])[0].tolist())
    return res


def paired_test(subset, reference, alternative: str) -> tuple[float, str]:
    """One-sided paired t-test of ``subset`` against ``reference`` over the pairs finite in both.

    Returns:
        ``(p, reason)``; ``p`` is NaN with the reason when the test is undefined.
    """
    a, b = np.asarray(subset, float), np.asarray(reference, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return float("nan"), "fewer than 2 paired finite values"
    if np.allclose(a[ok] - b[ok], 0):
        return float("nan"), "identical values"
    return float(stats.ttest_rel(a[ok], b[ok], alternative=alternative).pvalue), ""


def _summaries(results: dict[str, dict]) -> dict[str, dict]:
    ref = results["all four"]
    out = {}
    for name, r in results.items():
        if r["subjects"] != ref["subjects"]:
            raise ValueError("the paired test needs every subset evaluated on the same subjects.")
        out[name] = {}
        for metric, alt in (("dice", "less"), ("assd", "greater")):
            vals, refv = np.asarray(r[metric], float), np.asarray(ref[metric], float)
            for k, reg in enumerate(REGIONS):
                p, why = (float("nan"), "reference") if name == "all four" else paired_test(vals[:, k], refv[:, k], alt)
                fin = vals[:, k][np.isfinite(vals[:, k])]
                out[name][f"{metric}_{reg}"] = {
                    "mean": float(fin.mean()) if fin.size else float("nan"),
                    "std": float(fin.std()) if fin.size else float("nan"),
                    "n_finite": int(fin.size),
                    "n": int(vals.shape[0]),
                    "p": p,
                    "p_reason": why,
                }
    return out


# ---- outputs ---------------------------------------------------------------------------------------------------
def _paper_table() -> str:
    cols = [f"{m} {r}" for m in ("Dice", "ASSD") for r in REGIONS]
    lines = ["| Subset | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, rows in PAPER_TABLE3.items():
        cells = [f"{'*' if sig else ''}{m:.3f} ± {s:.3f}" for metric in ("dice", "assd") for m, s, sig in rows[metric]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(v: dict) -> str:
    if not math.isfinite(v["mean"]):
        return f"n/a (0/{v['n']} finite)"
    star = "*" if math.isfinite(v["p"]) and v["p"] < 0.05 else ""
    note = f" ({v['n_finite']}/{v['n']})" if v["n_finite"] < v["n"] else ""
    return f"{star}{v['mean']:.3f} ± {v['std']:.3f}{note}"


def _table(summ: dict, header: str) -> str:
    cols = [f"{m} {r}" for m in ("Dice", "ASSD") for r in REGIONS]
    lines = [header, "", "| Subset | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, s in summ.items():
        lines.append(
            f"| {name} | " + " | ".join(_cell(s[f"{m}_{r}"]) for m in ("dice", "assd") for r in REGIONS) + " |"
        )
    lines += [
        "",
        "Mean ± std over the test subjects. `*`: one-sided paired t-test against all four sequences, p < 0.05 "
        "(Dice: the subset is lower; ASSD: it is higher). ASSD in mm, over the subjects where both the prediction "
        "and the ground truth have the region; `(k/N)` says how many of the N subjects that was (an empty "
        "prediction has no surface).",
        "",
        "Paper (Table 3: nnU-Net on BraTS 2021, 830 training / 328 test subjects, complete sequences):",
        "",
        _paper_table(),
        "",
    ]
    return "\n".join(lines)


def _figure(summ: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    w = 0.8 / len(summ)
    x = np.arange(len(REGIONS))
    for ax, metric, label in ((axes[0], "dice", "Dice"), (axes[1], "assd", "ASSD (mm)")):
        for j, (name, s) in enumerate(summ.items()):
            m = [s[f"{metric}_{r}"]["mean"] for r in REGIONS]
            e = [s[f"{metric}_{r}"]["std"] for r in REGIONS]
            ax.bar(x + j * w, m, w, yerr=e, label=name, capsize=2)
            paper = [v[0] for v in PAPER_TABLE3[name][metric]]
            ax.scatter(
                x + j * w,
                paper,
                marker="_",
                s=120,
                color="black",
                zorder=3,
                label="paper (nnU-Net, BraTS)" if j == 0 else None,
            )
        ax.set_xticks(x + 0.4 - w / 2, REGIONS)
        ax.set_ylabel(label)
        ax.set_ylim(0, 1 if metric == "dice" else None)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Tumour segmentation with sequence subsets (bars: this run; black ticks: paper)")
    fig.tight_layout()
    save_figure(fig, path)


def run_experiment(
    out="docs/results",
    mode: str = "quick",
    device: str = "cpu",
    seed: int = 0,
    command: str = "",
    datalist: str | None = None,
    iterations: int | None = None,
    roi: int | None = None,
) -> dict[str, Any]:
    """Run the experiment and write ``table3_segmentation.{md,json,png}`` into ``out``.

    Args:
        out: output folder.
        mode: ``tiny`` (tests), ``quick`` (2 CPU cores, minutes) or ``full`` (GPU).
        device: torch device.
        seed: phantom seed of the training subjects (test subjects: ``seed + 1000``) and training seed.
        command: the command line, recorded in the outputs.
        datalist: a BraTS datalist of real data instead of the phantom.
        iterations: training iterations per subset (default: the mode's).
        roi: train on random ``roi``^3 crops (half of them centred on tumour) and infer by sliding window
            (default: the mode's; 0: whole volumes).

    Returns:
        dict with per-subject results, summaries and the run's description (JSON-safe: NaN/Inf as ``None``).
    """
    from monai.utils import set_determinism

    from monai_seq2seq.core.files import atomic_write_text

    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}.")
    cfg = dict(MODES[mode])
    if iterations is not None:
        cfg["iterations"] = int(iterations)
    if roi is not None:
        cfg["roi"] = roi
    cfg["roi"] = [int(cfg["roi"])] * 3 if cfg.get("roi") else None
    set_determinism(seed)
    t0 = time.perf_counter()
    train, test, data = _data(cfg, seed, datalist)
    if not train or not test:
        raise ValueError("Table 3 needs at least one training and one test subject.")
    results = {
        name: _train_eval(train, test, ch, cfg, torch.device(device), seed)
        for name, ch in tqdm(SUBSETS.items(), desc="subsets")
    }
    summ = _summaries(results)
    elapsed = time.perf_counter() - t0
    prov = provenance(command, device)
    if data["source"] == "datalist":
        data_line = (
            f"datalist {data['datalist']}: {data['n_train']} subjects ({data['train_split']}) for training, "
            f"{data['n_test']} ({data['test_split']}) for testing"
        )
    else:
        data_line = (
            f"brain phantom at {cfg['spacing']} mm: {data['n_train']} training subjects (seed "
            f"{data['train_seed']}), {data['n_test']} test subjects (seed {data['test_seed']})"
        )
    header = "\n".join(
        [
            "# Table 3 analogue: tumour segmentation with sequence subsets",
            "",
            *provenance_lines(prov),
            f"- time: {elapsed / 60:.1f} min",
            f"- mode: {mode}; data: {data_line}; grid {data['grid']}",
            f"- model: MONAI SegResNet (init_filters {cfg['filters']}) per subset, Dice loss on sigmoid outputs, Adam "
            f"1e-3, {cfg['iterations']} iterations of batch {cfg['batch_size']}"
            + (
                f" ({cfg['roi'][0]}^3 crops, half of them centred on tumour; sliding-window inference)"
                if cfg["roi"]
                else " (whole volumes)"
            ),
        ]
    )
    out = Path(out)
    atomic_write_text(out / "table3_segmentation.md", _table(summ, header))
    payload = json_safe(
        {
            "mode": mode,
            **prov,
            "device": str(device),
            "elapsed_s": elapsed,
            "config": cfg,
            "data": data,
            "per_subject": results,
            "summary": summ,
            "paper": PAPER_TABLE3,
        }
    )
    write_json(out / "table3_segmentation.json", payload)
    _figure(summ, out / "table3_segmentation.png")
    return payload


def replot(out="docs/results") -> Path:
    """Redraw ``table3_segmentation.png`` from ``table3_segmentation.json`` (no training)."""
    out = Path(out)
    payload = json.loads((out / "table3_segmentation.json").read_text())
    summ = {
        name: {key: {k: (float("nan") if v is None else v) for k, v in stat.items()} for key, stat in s.items()}
        for name, s in payload["summary"].items()
    }
    _figure(summ, out / "table3_segmentation.png")
    return out / "table3_segmentation.png"


def main(argv=None):
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="phantom at 4 mm, minutes on 2 CPU cores")
    g.add_argument("--tiny", action="store_true", help="seconds; for tests")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=None, help="training iterations per subset")
    p.add_argument(
        "--roi",
        type=int,
        default=None,
        help="train on roi^3 crops (half on tumour), infer by sliding window; 0: whole volumes",
    )
    p.add_argument("--datalist", default=None, help="BraTS datalist JSON of real data (training + testing lists)")
    p.add_argument("--replot", action="store_true", help="only redraw the figure from the JSON in --out")
    a = p.parse_args(argv)
    if a.replot:
        return replot(a.out)
    mode = "tiny" if a.tiny else "quick" if a.quick else "full"
    command = command_line("segmentation_subsets", argv)
    return run_experiment(a.out, mode, a.device, a.seed, command, a.datalist, a.iterations, a.roi)


if __name__ == "__main__":
    main()
