"""Why the breast wash-in/wash-out maps do not come out "easy to generate": how much of them is noise.

Wash-in ``(S1 - S0) / S0`` and wash-out ``(S5 - S1) / S1`` divide by the pre-contrast (or first post-contrast)
signal, so where that signal is low (muscle, skin, partial volume at the body outline) they are ratios of noise.
This command measures, on breast phantom subjects:

- the spread of the raw wash-in per band of pre-contrast signal S0 (noise where S0 is low),
- how much of the normalised wash map survives a 3x3x3 box filter (correlation of the map with its smoothed self),
- with a bundle's weights: the PSNR of each source's prediction and how alike the predictions from different
  sources are (a network that can only predict the smooth part gives about the same image from every source).

Usage::

    python -m experiments.wash_map_noise --subjects 1 --out docs/results
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import machine

__all__ = ["S0_BANDS", "measure", "main"]

S0_BANDS = ((0, 20), (20, 50), (50, 100), (100, 200), (200, 400), (400, float("inf")))
BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "seq2seq_breast"
SOURCES = ("DCE", "FatSatDCE", "T2", "T1", "DWI")


def _corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def measure(seed: int = 1000, subjects: int = 1, slices: int = 7, with_network: bool = True,
            bundle: Path = BUNDLE) -> dict[str, Any]:
    """Noise figures of the wash maps of ``subjects`` breast phantom subjects (bundle geometry: 2 mm, 160x96x64).

    Args:
        seed: phantom seed.
        subjects: number of subjects.
        slices: central axial slices the network predicts (its figures use the inner ``slices - 2``).
        with_network: also run the bundle's shipped weights.
        bundle: the breast bundle folder.

    Returns:
        ``{"subjects": [per-subject dicts]}``.
    """
    from scipy.ndimage import uniform_filter

    from monai_seq2seq.data.phantoms import BreastPhantomCohort
    from monai_seq2seq.transforms import PercentileScaleIntensityd

    names = ("T1", "FatSatT1", "T2", "DCE", "FatSatDCE", "WashIn", "WashOut", "DWI")
    synth = None
    if with_network:
        from monai_seq2seq.inference import Seq2SeqSynthesizer
        from monai_seq2seq.networks import build_seq2seq
        from monai_seq2seq.zoo import load_weights

        net = build_seq2seq("small", variant="C", protocol="breast")
        net.load_state_dict(load_weights(bundle / "models" / "model.pt", bundle_dir=bundle))
        synth = Seq2SeqSynthesizer(net.eval(), "breast", batch_size=8, progress=False)
    cohort = BreastPhantomCohort(subjects, seed=seed, spacing=2.0, shape=[160, 96, 64])
    out = []
    for i in range(subjects):
        raw = dict(cohort[i])
        s0, wash_in = np.asarray(raw["DCE"])[0], np.asarray(raw["WashIn"])[0]
        lesion = np.asarray(raw["label"])[0] == 3
        body = wash_in != 0
        bands = []
        for lo, hi in S0_BANDS:
            m = body & (s0 >= lo) & (s0 < hi) & ~lesion
            bands.append({"s0": [lo, hi], "voxels": int(m.sum()),
                          "wash_in_sd": float(wash_in[m].std()) if m.any() else None})
        norm = PercentileScaleIntensityd(list(names), 0.5, 99.5)(raw)
        rec: dict[str, Any] = {"subject": str(raw.get("subject", i)), "body_voxels": int(body.sum()),
                               "lesion_wash_in_mean": float(wash_in[lesion].mean()) if lesion.any() else None,
                               "wash_in_sd_by_s0": bands, "maps": {}}
        for name in ("WashIn", "WashOut"):
            img = np.asarray(norm[name])[0]
            rec["maps"][name] = {"corr_with_3x3x3_smoothed": _corr(img[body], uniform_filter(img, 3)[body])}
        if synth is not None:
            z0 = s0.shape[-1] // 2
            window = slice(z0 - slices // 2, z0 - slices // 2 + slices)
            vols = {k: torch.as_tensor(norm[k]).float()[..., window] for k in names}
            pred = synth.all_pairs(vols, targets=["WashIn", "WashOut"], sources=[*SOURCES, "WashIn", "WashOut"])
            for name in ("WashIn", "WashOut"):
                target = vols[name][0][..., 1:-1]
                p = {src: pred[name][src][0][..., 1:-1] for src in pred[name]}
                rec["maps"][name]["psnr_by_source"] = {
                    src: float(-10 * torch.log10(((v - target) ** 2).mean())) for src, v in p.items()}
                rec["maps"][name]["corr_with_target_by_source"] = {src: _corr(v, target) for src, v in p.items()}
                rec["maps"][name]["corr_DCE_vs_T2_prediction"] = _corr(p["DCE"], p["T2"])
        out.append(rec)
    return {"subjects": out}


def _markdown(result: dict, header: str) -> str:
    lines = [header, ""]
    for rec in result["subjects"]:
        lines += [f"## {rec['subject']} ({rec['body_voxels']} body voxels; lesion wash-in "
                  f"{rec['lesion_wash_in_mean']:.2f})", "",
                  "| pre-contrast signal S0 | voxels (body, no lesion) | sd of raw wash-in |", "|---|---|---|"]
        for b in rec["wash_in_sd_by_s0"]:
            sd = "-" if b["wash_in_sd"] is None else f"{b['wash_in_sd']:.3f}"
            lines.append(f"| [{b['s0'][0]}, {b['s0'][1]}) | {b['voxels']} | {sd} |")
        lines += ["", "| map | corr. with its 3x3x3 smoothed self | PSNR by source (dB) | corr. with target by source "
                  "| corr. of DCE vs T2 predictions |", "|---|---|---|---|---|"]
        for name, m in rec["maps"].items():
            psnr = ", ".join(f"{k} {v:.1f}" for k, v in m.get("psnr_by_source", {}).items()) or "-"
            corr = ", ".join(f"{k} {v:.2f}" for k, v in m.get("corr_with_target_by_source", {}).items()) or "-"
            alike = f"{m['corr_DCE_vs_T2_prediction']:.3f}" if "corr_DCE_vs_T2_prediction" in m else "-"
            lines.append(f"| {name} | {m['corr_with_3x3x3_smoothed']:.2f} | {psnr} | {corr} | {alike} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> dict:
    """Command-line entry point: prints the Markdown and, with ``--out``, writes wash_map_noise.{md,json}."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--subjects", type=int, default=1)
    p.add_argument("--no-network", action="store_true", help="phantom figures only")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    torch.manual_seed(0)
    result = measure(a.seed, a.subjects, with_network=not a.no_network)
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    command = "python -m experiments.wash_map_noise " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"# Breast wash maps: how much is noise\n\n- date (UTC): {date}; machine: {machine('cpu')}\n"
              f"- command: `{command.strip()}`\n- phantom seed {a.seed}, bundle geometry (2 mm, 160x96x64); "
              "network: the shipped seq2seq_breast weights, central slices")
    text = _markdown(result, header)
    print(text)
    if a.out:
        from monai_seq2seq.utils import atomic_write_text

        atomic_write_text(Path(a.out) / "wash_map_noise.md", text)
        atomic_write_text(Path(a.out) / "wash_map_noise.json", json.dumps({"date_utc": date, **result}, indent=1))
    return result


if __name__ == "__main__":
    main()
