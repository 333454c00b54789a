"""Why T1 -> T1Gd is hard to beat by copying: the percentile normalisation of T1Gd depends on the enhancement.

The brain bundles scale each sequence so that its 99.5th percentile (over brain voxels) becomes 1. When the
enhancing tumour (ET) covers more than 0.5% of the brain, that percentile falls inside the enhancement, about twice
the white-matter level, and the whole normalised T1Gd is scaled down against T1; below 0.5% it sits on white
matter, and the normalised T1Gd is nearly a copy of T1. Which case a subject is in cannot be seen on T1 (ET's
pre-contrast relaxation equals the non-enhancing tumour's), so the identity baseline "T1Gd := T1" is either
nearly perfect or far off, while a network has to guess the scale. This command prints both, per subject.

It also prints what copying would score if T1Gd were brought to T1's scale (the least-squares factor over the
brain outside ET, an oracle: it looks at T1Gd), which is what a normalisation that ignores the enhancement would
give; and with ``--network``, the shipped brain weights' T1 -> T1Gd as synthesised, with the same oracle factor
applied to the synthesis, and their T1 -> T1 self-reconstruction (the network's fidelity ceiling on this
phantom). PSNR over the whole volume in the [0, 1] normalised space, as ``configs/evaluate.json``.

Usage::

    python -m experiments.normalisation_scale --subjects 4 --seed 1000
    python -m experiments.normalisation_scale --subjects 4 --seed 1000 --network
"""

from __future__ import annotations

import argparse

import torch

from experiments.common import BUNDLES, brain_normalise, bundle_network, psnr_db

__all__ = ["BRAIN_BUNDLE", "psnr_db", "outside_et_scale", "measure", "main"]

BRAIN_BUNDLE = BUNDLES / "seq2seq_brain"


def outside_et_scale(source: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Least-squares factor ``a`` of ``target ~ a * source`` over ``mask``."""
    s, t = source[mask].double(), target[mask].double()
    return float((s * t).sum() / (s * s).sum())


def _synthesizer(weights: str | None, sha256: str | None, device: str):
    """The brain bundle's network (its checked weights, or ``weights`` checked against ``sha256``)."""
    from monai_seq2seq.core.integrity import load_weights
    from monai_seq2seq.inference import Seq2SeqSynthesizer

    network = bundle_network(BRAIN_BUNDLE)
    if weights:
        bundle = None if sha256 else BRAIN_BUNDLE
        network.load_state_dict(load_weights(weights, sha256=sha256, bundle_dir=bundle))
    return Seq2SeqSynthesizer(network.eval(), protocol="brain", device=device, progress=False)


def measure(
    subjects: int = 4,
    seed: int = 1000,
    spacing: float = 2.0,
    network: bool = False,
    weights: str | None = None,
    weights_sha256: str | None = None,
    device: str = "cpu",
) -> list[dict]:
    """Per subject: ET fraction of the brain, 99.5th percentile / median of T1 and T1Gd, identity PSNR (dB) as is
    and with T1Gd at T1's scale; with ``network``: the synthesis' PSNR as is and at the oracle scale, and T1 -> T1.
    """
    from monai_seq2seq.phantoms import BrainPhantomCohort

    normalise = brain_normalise(["T1", "T1Gd"])  # the brain bundles' normalisation
    synthesizer = _synthesizer(weights, weights_sha256, device) if network else None
    rows = []
    for i, sample in enumerate(BrainPhantomCohort(subjects, seed=seed, spacing=spacing)):
        sample = dict(sample)
        brain = torch.as_tensor(sample["T1"]) > 0
        label = torch.as_tensor(sample["label"])
        ratio = {}
        for name in ("T1", "T1Gd"):
            values = torch.as_tensor(sample[name])[brain].double()
            ratio[name] = float(torch.quantile(values, 0.995) / values.median())
        norm = normalise(sample)
        t1, t1gd = (torch.as_tensor(norm[k]).float() for k in ("T1", "T1Gd"))
        outside = (brain & (label != 4)).reshape(t1.shape)
        scale = outside_et_scale(t1, t1gd, outside)
        row = {
            "subject": str(sample.get("subject", i)),
            "et_percent": 100 * float((label == 4).sum() / brain.sum()),
            "p995_over_median_T1": ratio["T1"],
            "p995_over_median_T1Gd": ratio["T1Gd"],
            "t1gd_over_t1_outside_et": scale,
            "identity_psnr_db": psnr_db(t1, t1gd),
            "identity_at_t1_scale_psnr_db": psnr_db(t1, (t1gd / scale).clamp(0, 1)),
        }
        if synthesizer is not None:
            pred = synthesizer.all_pairs({"T1": t1}, targets=["T1Gd", "T1"])
            synth = pred["T1Gd"]["T1"]
            oracle = outside_et_scale(synth, t1gd, outside)
            row.update(
                network_psnr_db=psnr_db(synth, t1gd),
                network_oracle_scale_psnr_db=psnr_db((synth * oracle).clamp(0, 1), t1gd),
                network_self_psnr_db=psnr_db(pred["T1"]["T1"], t1),
            )
        rows.append(row)
    return rows


def main(argv=None) -> list[dict]:
    """Command-line entry point: prints a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subjects", type=int, default=4)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--spacing", type=float, default=2.0)
    p.add_argument("--network", action="store_true", help="also the shipped brain weights (or --weights)")
    p.add_argument("--weights", default=None, help="a generator state dict (default: the brain bundle's)")
    p.add_argument("--weights_sha256", default=None, help="its sha256 (required for a file outside the bundle)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    rows = measure(
        a.subjects, a.seed, a.spacing, a.network or a.weights is not None, a.weights, a.weights_sha256, a.device
    )
    head = (
        "| subject | ET (% of brain) | T1 p99.5 / median | T1Gd p99.5 / median | T1Gd / T1 outside ET | "
        "identity T1 -> T1Gd PSNR (dB) | identity, T1Gd at T1's scale (oracle) |"
    )
    cols = [
        "et_percent",
        "p995_over_median_T1",
        "p995_over_median_T1Gd",
        "t1gd_over_t1_outside_et",
        "identity_psnr_db",
        "identity_at_t1_scale_psnr_db",
    ]
    if "network_psnr_db" in rows[0]:
        head += " network T1 -> T1Gd | network, oracle scale | network T1 -> T1 |"
        cols += ["network_psnr_db", "network_oracle_scale_psnr_db", "network_self_psnr_db"]
    print(head)
    print("|---" * (len(cols) + 1) + "|")
    for r in rows:
        print(f"| {r['subject']} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |")
    return rows


if __name__ == "__main__":
    main()
