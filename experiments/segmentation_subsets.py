"""Table 3 analogue: brain tumour segmentation with sequence subsets (paper section 4.3).

Trains a MONAI SegResNet per sequence subset on the brain phantom, evaluates Dice and ASSD
for ET/TC/WT on the same held-out subjects, and runs a one-sided paired t-test vs all four.

Usage::

    python -m experiments.segmentation_subsets --quick --out docs/results
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

__all__ = ["SUBSETS", "REGIONS", "run_experiment", "paired_test", "main"]

SUBSETS = {
    "T1Gd": ("T1Gd",),
    "FLAIR": ("FLAIR",),
    "T1+T2": ("T1", "T2"),
    "T1Gd+FLAIR": ("T1Gd", "FLAIR"),
    "all four": ("T1", "T1Gd", "T2", "FLAIR"),
}
REGIONS = ("ET", "TC", "WT")
SEQUENCES = ("T1", "T1Gd", "T2", "FLAIR")
MODES = {
    "tiny": {"spacing": 8.0, "n_train": 2, "n_test": 2, "iterations": 3, "filters": 8},
    "quick": {"spacing": 4.0, "n_train": 8, "n_test": 4, "iterations": 60, "filters": 8},
    "full": {"spacing": 2.0, "n_train": 40, "n_test": 20, "iterations": 2000, "filters": 16},
}


def _transforms():
    from monai.transforms import (
        Compose,
        ConcatItemsd,
        ConvertToMultiChannelBasedOnBratsClassesd,
        DivisiblePadd,
        ScaleIntensityRangePercentilesd,
    )

    return Compose(
        [
            ScaleIntensityRangePercentilesd(SEQUENCES, 0.5, 99.5, 0.0, 1.0, clip=True),
            ConvertToMultiChannelBasedOnBratsClassesd("label"),
            ConcatItemsd(SEQUENCES, "image"),
            DivisiblePadd(["image", "label"], k=8),
        ]
    )


def _load(cohort, indices, desc):
    tr = _transforms()
    out = []
    for i in tqdm(indices, desc=desc):
        d = tr(dict(cohort[i]))
        out.append((torch.as_tensor(d["image"]).float(), torch.as_tensor(d["label"]).float(), str(d["subject"])))
    return out


def _train_eval(train, test, channels, cfg, device, seed, spacing):
    from monai.losses import DiceLoss
    from monai.metrics import DiceMetric, SurfaceDistanceMetric
    from monai.networks.nets import SegResNet

    torch.manual_seed(seed)
    idx = [SEQUENCES.index(s) for s in channels]
    net = SegResNet(spatial_dims=3, in_channels=len(idx), out_channels=3, init_filters=cfg["filters"]).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = DiceLoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5)
    rng = np.random.default_rng(seed)
    net.train()
    for _ in tqdm(range(cfg["iterations"]), desc="+".join(channels), leave=False):
        img, lab, _ = train[rng.integers(len(train))]
        x, y = img[idx][None].to(device), lab[None].to(device)
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    net.eval()
    dice_m = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    assd_m = SurfaceDistanceMetric(include_background=True, symmetric=True, reduction="none")
    res = {"subjects": [], "dice": [], "assd": []}
    with torch.no_grad():
        for img, lab, sid in test:
            pred = (torch.sigmoid(net(img[idx][None].to(device))) > 0.5).float().cpu()
            y = lab[None]
            res["subjects"].append(sid)
            res["dice"].append(dice_m(pred, y)[0].tolist())
            res["assd"].append(assd_m(pred, y, spacing=spacing)[0].tolist())
    return res


def paired_test(subset, reference, alternative):
    """One-sided paired t-test; returns (p, reason) with p NaN when undefined."""
    a, b = np.asarray(subset, float), np.asarray(reference, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return float("nan"), "fewer than 2 paired finite values"
    if np.allclose(a[ok] - b[ok], 0):
        return float("nan"), "identical values"
    return float(stats.ttest_rel(a[ok], b[ok], alternative=alternative).pvalue), ""


def _summaries(results):
    ref = results["all four"]
    out = {}
    for name, r in results.items():
        assert r["subjects"] == ref["subjects"], "paired test requires the same subjects"
        out[name] = {}
        for metric, alt in (("dice", "less"), ("assd", "greater")):
            vals, refv = np.asarray(r[metric], float), np.asarray(ref[metric], float)
            for k, reg in enumerate(REGIONS):
                p, why = (float("nan"), "reference") if name == "all four" else paired_test(vals[:, k], refv[:, k], alt)
                fin = vals[:, k][np.isfinite(vals[:, k])]
                out[name][f"{metric}_{reg}"] = {
                    "mean": float(fin.mean()) if fin.size else float("nan"),
                    "std": float(fin.std()) if fin.size else float("nan"),
                    "p": p,
                    "p_reason": why,
                }
    return out


PAPER = """| Subset | Dice ET | Dice TC | Dice WT | ASSD ET | ASSD TC | ASSD WT |
|---|---|---|---|---|---|---|
| (see /work/shared/paper/seq2seq-paper.txt, Table 3) | | | | | | |
"""


def _table(summ, header):
    cols = [f"{m} {r}" for m in ("Dice", "ASSD") for r in REGIONS]
    lines = [header, "", "| Subset | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, s in summ.items():
        cells = []
        for m in ("dice", "assd"):
            for r in REGIONS:
                v = s[f"{m}_{r}"]
                star = "*" if np.isfinite(v["p"]) and v["p"] < 0.05 else ""
                cells.append(f"{v['mean']:.3f} ± {v['std']:.3f}{star}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "`*`: one-sided paired t-test vs all four, p < 0.05 (Dice: less; ASSD: greater). ASSD in mm.", ""]
    lines += ["Paper's numbers for reference:", "", PAPER]
    return "\n".join(lines)


def _figure(summ, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from monai_seq2seq.utils import atomic_write

    fig, ax = plt.subplots(figsize=(8, 4))
    w = 0.8 / len(summ)
    for j, (name, s) in enumerate(summ.items()):
        m = [s[f"dice_{r}"]["mean"] for r in REGIONS]
        e = [s[f"dice_{r}"]["std"] for r in REGIONS]
        ax.bar(np.arange(3) + j * w, m, w, yerr=e, label=name, capsize=2)
    ax.set_xticks(np.arange(3) + 0.4 - w / 2, REGIONS)
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Segmentation with sequence subsets (brain phantom)")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def run_experiment(out="docs/results", mode="quick", device="cpu", seed=0, command=""):
    """Run the experiment and write table3_segmentation.{md,json,png} into ``out``.

    Returns:
        dict with per-subject results and summaries.
    """
    from monai.utils import set_determinism

    from monai_seq2seq.data.phantoms import BrainPhantomCohort
    from monai_seq2seq.utils import atomic_write_text

    cfg = MODES[mode]
    set_determinism(seed)
    cohort = BrainPhantomCohort(cfg["n_train"] + cfg["n_test"], seed=seed, spacing=cfg["spacing"])
    train = _load(cohort, range(cfg["n_train"]), "train subjects")
    test = _load(cohort, range(cfg["n_train"], cfg["n_train"] + cfg["n_test"]), "test subjects")
    sp = [cfg["spacing"]] * 3
    results = {n: _train_eval(train, test, ch, cfg, device, seed, sp) for n, ch in SUBSETS.items()}
    summ = _summaries(results)
    out = Path(out)
    header = (
        f"# Table 3 analogue: segmentation with sequence subsets\n\n"
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}; device: {device}; "
        f"mode: {mode}; subjects: {cfg['n_train']} train / {cfg['n_test']} test; spacing {cfg['spacing']} mm; "
        f"iterations per subset: {cfg['iterations']}; command: `{command}`"
    )
    atomic_write_text(out / "table3_segmentation.md", _table(summ, header))
    payload = {"mode": mode, "device": device, "config": cfg, "per_subject": results, "summary": summ}
    atomic_write_text(out / "table3_segmentation.json", json.dumps(payload, indent=1, default=str))
    _figure(summ, out / "table3_segmentation.png")
    return payload


def main(argv=None):
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--datalist", default=None, help="real BraTS data (not implemented yet)")
    a = p.parse_args(argv)
    if a.datalist:
        raise NotImplementedError("--datalist (real BraTS data) is not implemented yet")
    mode = "tiny" if a.tiny else "quick" if a.quick else "full"
    command = "python -m experiments.segmentation_subsets " + " ".join(sys.argv[1:])
    run_experiment(a.out, mode, a.device, a.seed, command)


if __name__ == "__main__":
    main()
