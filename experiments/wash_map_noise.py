"""How much of the breast wash-in/wash-out maps is noise, and what the dark-voxel threshold and the window remove.

Wash-in ``(S1 - S0) / S0`` and wash-out ``(S5 - S1) / S1`` divide by the pre-contrast (or first post-contrast)
signal, so where that signal is low (muscle, skin, partial volume at the body outline) they are ratios of noise.
The maps are therefore 0 where the denominator is below a tenth of its frame's 99th percentile
(:func:`monai_seq2seq.transforms.wash_in_out`, ``min_signal_fraction``). This command measures, on breast phantom
subjects:

- the spread of the unthresholded wash-in per band of pre-contrast signal S0 (noise where S0 is low) and the share
  of each band the threshold zeroes,
- how much of the normalised wash map survives a 3x3x3 box filter (correlation of the map with its smoothed self)
  and the PSNR of that smoothed map as a prediction of the map (the ceiling of a predictor that cannot guess
  noise), for three ways of making it: no threshold with percentile normalisation (bundles before v0.3.0), the
  threshold with percentiles, and the threshold with the protocol's fixed window (``intensity_window``: wash-in
  0..2, wash-out -0.5..1; the percentiles of a map that is mostly noise are set by that noise, clip the lesion's
  enhancement and stretch the noise over the whole [0, 1] range),
- with a bundle's weights: the PSNR of each source's prediction and how alike the predictions from different
  sources are (a network that can only predict the smooth part gives about the same image from every source).

Usage::

    python -m experiments.wash_map_noise --subjects 1 --out docs/results
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import BUNDLES, bundle_network, command_line, provenance, provenance_lines, psnr_db, write_json

__all__ = ["S0_BANDS", "STAGES", "measure", "main"]

S0_BANDS = ((0, 20), (20, 50), (50, 100), (100, 200), (200, 400), (400, float("inf")))
BUNDLE = BUNDLES / "seq2seq_breast"
SOURCES = ("DCE", "FatSatDCE", "T2", "T1", "DWI")
STAGES = ("no threshold, percentiles (before v0.3.0)", "threshold, percentiles", "threshold, fixed window (now)")


def _corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def measure(
    seed: int = 1000, subjects: int = 1, slices: int = 7, with_network: bool = True, bundle: Path = BUNDLE
) -> dict[str, Any]:
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

    from monai_seq2seq.core import BREAST
    from monai_seq2seq.phantoms import BreastPhantomCohort
    from monai_seq2seq.transforms import PercentileScaleIntensityd

    names = ("T1", "FatSatT1", "T2", "DCE", "FatSatDCE", "WashIn", "WashOut", "DWI")
    synth = None
    if with_network:
        from monai_seq2seq.inference import Seq2SeqSynthesizer

        synth = Seq2SeqSynthesizer(bundle_network(bundle), "breast", batch_size=8, progress=False)
    geometry = {"spacing": 2.0, "shape": [160, 96, 64]}
    cohort = BreastPhantomCohort(subjects, seed=seed, **geometry)
    unthresholded = BreastPhantomCohort(subjects, seed=seed, wash_min_signal_fraction=0.0, **geometry)
    by_percentile = PercentileScaleIntensityd(list(names), 0.5, 99.5)
    by_window = PercentileScaleIntensityd(list(names), 0.5, 99.5, fixed_ranges=BREAST.intensity_windows())
    out = []
    for i in range(subjects):
        raw, plain = dict(cohort[i]), dict(unthresholded[i])
        s0, wash_in = np.asarray(plain["DCE"])[0], np.asarray(plain["WashIn"])[0]
        kept = np.asarray(raw["WashIn"])[0] != 0
        lesion = np.asarray(raw["label"])[0] == 3
        body = wash_in != 0
        bands = []
        for lo, hi in S0_BANDS:
            m = body & (s0 >= lo) & (s0 < hi) & ~lesion
            bands.append(
                {
                    "s0": [lo, hi],
                    "voxels": int(m.sum()),
                    "wash_in_sd": float(wash_in[m].std()) if m.any() else None,
                    "thresholded_fraction": float(1.0 - kept[m].mean()) if m.any() else None,
                }
            )
        norm = by_window(raw)
        stages = {STAGES[0]: by_percentile(plain), STAGES[1]: by_percentile(raw), STAGES[2]: norm}
        flat = np.sort(s0.ravel())  # the transform's threshold: 0.1 x the 99th percentile (k-th value)
        threshold = 0.1 * float(flat[int(np.ceil(0.99 * flat.size)) - 1])
        lesion_in, lesion_out = wash_in[lesion], np.asarray(plain["WashOut"])[0][lesion]
        rec: dict[str, Any] = {
            "subject": str(raw.get("subject", i)),
            "body_voxels": int(body.sum()),
            "lesion": {
                "min_s0_over_threshold": float(s0[lesion].min() / threshold),
                "wash_in_median": float(np.median(lesion_in)),
                "wash_in_p95": float(np.percentile(lesion_in, 95)),
                "wash_out_median": float(np.median(lesion_out)),
            }
            if lesion.any()
            else None,
            "thresholded_voxels": int((body & ~kept).sum()),
            "lesion_wash_in_mean": float(wash_in[lesion].mean()) if lesion.any() else None,
            "wash_in_sd_by_s0": bands,
            "maps": {},
        }
        for name in ("WashIn", "WashOut"):
            rec["maps"][name] = {"by_stage": {}}
            for stage, source in stages.items():
                img = np.asarray(source[name])[0]
                smooth = uniform_filter(img, 3)
                rec["maps"][name]["by_stage"][stage] = {
                    "range": [float(v) for v in source[name].meta["intensity_range"]],
                    "corr_with_3x3x3_smoothed": _corr(img[body], smooth[body]),
                    "psnr_of_smoothed": psnr_db(torch.from_numpy(smooth), torch.from_numpy(img)),
                    "lesion_mean": float(img[lesion].mean()) if lesion.any() else None,
                }
        if synth is not None:
            z0 = s0.shape[-1] // 2
            window = slice(z0 - slices // 2, z0 - slices // 2 + slices)
            vols = {k: torch.as_tensor(norm[k]).float()[..., window] for k in names}
            pred = synth.all_pairs(vols, targets=["WashIn", "WashOut"], sources=[*SOURCES, "WashIn", "WashOut"])
            for name in ("WashIn", "WashOut"):
                target = vols[name][0][..., 1:-1]
                p = {src: pred[name][src][0][..., 1:-1] for src in pred[name]}
                rec["maps"][name]["psnr_by_source"] = {src: psnr_db(v, target) for src, v in p.items()}
                rec["maps"][name]["corr_with_target_by_source"] = {src: _corr(v, target) for src, v in p.items()}
                rec["maps"][name]["corr_DCE_vs_T2_prediction"] = _corr(p["DCE"], p["T2"])
        out.append(rec)
    return {"subjects": out}


def _markdown(result: dict, header: str) -> str:
    lines = [header, ""]
    for rec in result["subjects"]:
        lines += [
            f"## {rec['subject']} ({rec['body_voxels']} body voxels, {rec['thresholded_voxels']} of them "
            f"thresholded; lesion wash-in {rec['lesion_wash_in_mean']:.2f})",
            "",
        ]
        if rec["lesion"]:
            les = rec["lesion"]
            lines += [
                f"Lesion: lowest S0 {les['min_s0_over_threshold']:.2f} x the threshold; wash-in median "
                f"{les['wash_in_median']:.2f} (95th percentile {les['wash_in_p95']:.2f}), wash-out median "
                f"{les['wash_out_median']:+.2f}.",
                "",
            ]
        lines += [
            "| pre-contrast signal S0 | voxels (body, no lesion) | sd of unthresholded wash-in | thresholded |",
            "|---|---|---|---|",
        ]
        for b in rec["wash_in_sd_by_s0"]:
            sd = "-" if b["wash_in_sd"] is None else f"{b['wash_in_sd']:.3f}"
            share = "-" if b["thresholded_fraction"] is None else f"{100 * b['thresholded_fraction']:.0f}%"
            lines.append(f"| [{b['s0'][0]}, {b['s0'][1]}) | {b['voxels']} | {sd} | {share} |")
        lines += [
            "",
            "| map | made by | range mapped to [0, 1] | corr. with its 3x3x3 smoothed self "
            "| PSNR of the smoothed map (dB) | lesion mean |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in rec["maps"].items():
            for stage, f in m["by_stage"].items():
                lesion = "-" if f["lesion_mean"] is None else f"{f['lesion_mean']:.2f}"
                lines.append(
                    f"| {name} | {stage} | [{f['range'][0]:.2f}, {f['range'][1]:.2f}] | "
                    f"{f['corr_with_3x3x3_smoothed']:.2f} | "
                    f"{f['psnr_of_smoothed']:.1f} | {lesion} |"
                )
        lines += [
            "",
            "Network (maps made the current way):",
            "",
            "| map | PSNR by source (dB) | corr. with target by source | corr. of DCE vs T2 predictions |",
            "|---|---|---|---|",
        ]
        for name, m in rec["maps"].items():
            psnr = ", ".join(f"{k} {v:.1f}" for k, v in m.get("psnr_by_source", {}).items()) or "-"
            corr = ", ".join(f"{k} {v:.2f}" for k, v in m.get("corr_with_target_by_source", {}).items()) or "-"
            alike = f"{m['corr_DCE_vs_T2_prediction']:.3f}" if "corr_DCE_vs_T2_prediction" in m else "-"
            lines.append(f"| {name} | {psnr} | {corr} | {alike} |")
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
    prov = provenance(command_line("wash_map_noise", argv), "cpu")
    header = "\n".join(
        [
            "# Breast wash maps: how much is noise, and what the dark-voxel threshold and the fixed window remove",
            "",
            *provenance_lines(prov),
            f"- phantom seed {a.seed}, bundle geometry (2 mm, 160x96x64); "
            "network: the shipped seq2seq_breast weights, central slices",
        ]
    )
    text = _markdown(result, header)
    print(text)
    if a.out:
        from monai_seq2seq.core.files import atomic_write_text

        atomic_write_text(Path(a.out) / "wash_map_noise.md", text)
        write_json(Path(a.out) / "wash_map_noise.json", {**prov, **result})
    return result


if __name__ == "__main__":
    main()
