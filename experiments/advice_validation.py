"""Validation of ``seq2seq advise`` on held-out phantom subjects with the shipped weights.

Brain: for every subject and every acquired set without T1Gd that leaves at least one other sequence missing
({T1}, {T2}, {FLAIR}, {T1, T2}, {T1, FLAIR}, {T2, FLAIR}), is T1Gd (the sequence the phantom plants unique
information in) advised first? Goal: in at least 90% of subjects (every set counted too). Also inside the tumour
(BraTS labels 1, 2, 4).

Breast (``--breast-subjects``): with DCE missing, are the wash-in and wash-out maps (computed from DCE) ever
advised before DCE? Goal: never.

The cohort adjacency is the bundle's ``configs/advise.json``; the subject term's reference uncertainties come
from the bundle's ``configs/quality.json`` when it exists (``--reference``). ``--slices N``: N slices centred on
the tumour (brain) or the middle (breast), to make a CPU run shorter.

Usage::

    python -m experiments.advice_validation --subjects 10 --seed 4000 --slices 32
    python -m experiments.advice_validation --subjects 0 --breast-subjects 2 --slices 16
"""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

import torch

from experiments.common import BUNDLES, brain_normalise, command_line, provenance, write_json

__all__ = ["BRAIN_SETS", "main", "reference_uncertainty"]

BRAIN_SETS = [s for k in (1, 2) for s in itertools.combinations(("T1", "T2", "FLAIR"), k)]
BREAST_SETS = [("T1", "T2"), ("T1", "FatSatT1", "T2", "DWI"), ("T2", "DWI"), ("FatSatT1", "T2")]


def reference_uncertainty(bundle: str) -> dict[str, float]:
    """Target -> typical mean foreground uncertainty of a clean case (``reference_mean_uncertainty`` of the bundle's
    ``configs/quality.json``, fitted on other held-out subjects); empty without a quality model."""
    path = BUNDLES / bundle / "configs" / "quality.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {
        t: e["reference_mean_uncertainty"] for t, e in data["targets"].items() if e.get("reference_mean_uncertainty")
    }


def _synthesizer(bundle: str, protocol: str, config: str | None, device: str):
    from monai_seq2seq.core.integrity import load_weights
    from monai_seq2seq.inference import Seq2SeqSynthesizer
    from monai_seq2seq.networks import build_seq2seq

    if config:
        torch.manual_seed(0)
        net = build_seq2seq(config, protocol=protocol)
    else:
        net = build_seq2seq("small", variant="C", protocol=protocol)
        root = BUNDLES / bundle
        net.load_state_dict(load_weights(root / "models" / "model.pt", bundle_dir=root))
    return Seq2SeqSynthesizer(net.eval(), protocol, device=device, progress=False)


def _cohort(bundle: str, reference: bool):
    from monai_seq2seq.analysis import CohortAdjacency

    data = json.loads((BUNDLES / bundle / "configs" / "advise.json").read_text())["advise_cohort"]
    if reference and not data.get("reference_uncertainty"):
        data = {**data, "reference_uncertainty": reference_uncertainty(bundle)}
    if not reference:
        data = {**data, "reference_uncertainty": {}}
    return CohortAdjacency.from_dict(data, f"{bundle}/configs/advise.json")


def _crop(vols: dict[str, torch.Tensor], label: torch.Tensor | None, slices: int | None):
    if not slices:
        return vols, label
    depth = next(iter(vols.values())).shape[-1]
    centre = depth // 2
    if label is not None and bool((label > 0).any()):
        centre = int((label > 0).nonzero()[:, -1].float().mean())
    start = min(max(0, centre - slices // 2), max(0, depth - slices))
    cut = slice(start, start + slices)
    return {n: v[..., cut] for n, v in vols.items()}, (None if label is None else label[..., cut])


def brain(args, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from monai_seq2seq.analysis import advise_subject
    from monai_seq2seq.phantoms import BrainPhantomCohort

    synth = _synthesizer("seq2seq_brain", "brain", args.config, args.device)
    cohort = _cohort("seq2seq_brain", args.reference)
    data = BrainPhantomCohort(args.subjects, seed=args.seed, spacing=args.spacing)
    normalise = brain_normalise()
    for i in range(args.subjects):
        sample = normalise(data[i])
        vols = {n: torch.as_tensor(sample[n]).as_subclass(torch.Tensor).float() for n in ("T1", "T2", "FLAIR")}
        label = torch.as_tensor(sample["label"]).as_subclass(torch.Tensor).reshape(-1, *vols["T1"].shape[-3:])[0]
        vols, label = _crop(vols, label, args.slices)
        for acquired in BRAIN_SETS:
            advice = advise_subject(
                synth,
                {n: vols[n] for n in acquired},
                cohort,
                str(sample["subject"]),
                {"tumour": label > 0},
                args.subject_weight,
                droppable=False,
            )
            row = {
                "subject": advice.subject,
                "acquired": list(acquired),
                "order": [m["sequence"] for m in advice.missing],
                "order_tumour": [m["sequence"] for m in advice.regions.get("tumour", [])],
                "scores": {m["sequence"]: m["score"] for m in advice.missing},
            }
            rows.append(row)
            print(
                f"brain {row['subject']} acquired {'+'.join(acquired):<9} -> {row['order']} "
                f"(tumour {row['order_tumour']})",
                flush=True,
            )
    first = [r["order"][0] == "T1Gd" for r in rows]
    first_tumour = [bool(r["order_tumour"]) and r["order_tumour"][0] == "T1Gd" for r in rows]
    per_subject = {}
    for r in rows:
        per_subject.setdefault(r["subject"], []).append(r["order"][0] == "T1Gd")
    return {
        "cases": len(rows),
        "t1gd_first_cases": sum(first) / len(first),
        "t1gd_first_in_tumour_cases": sum(first_tumour) / len(first_tumour),
        "subjects_all_sets_t1gd_first": sum(all(v) for v in per_subject.values()) / len(per_subject),
        "goal": "T1Gd advised first in >= 90% of held-out subjects",
    }


def breast(args, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from monai_seq2seq.analysis import advise_subject
    from monai_seq2seq.phantoms import BreastPhantomCohort
    from monai_seq2seq.transforms import PercentileScaleIntensityd

    synth = _synthesizer("seq2seq_breast", "breast", args.config, args.device)
    cohort = _cohort("seq2seq_breast", args.reference)
    names = synth.protocol.names
    data = BreastPhantomCohort(args.breast_subjects, seed=args.seed, spacing=args.spacing, shape=(160, 96, 64))
    normalise = PercentileScaleIntensityd(
        names, fixed_ranges=synth.protocol.intensity_windows(), allow_missing_keys=True
    )
    for i in range(args.breast_subjects):
        sample = normalise(data[i])
        vols = {n: torch.as_tensor(sample[n]).as_subclass(torch.Tensor).float() for n in names}
        vols, _ = _crop(vols, None, args.slices)
        for acquired in BREAST_SETS:
            advice = advise_subject(
                synth, {n: vols[n] for n in acquired}, cohort, str(sample["subject"]), droppable=False
            )
            order = [m["sequence"] for m in advice.missing]
            rows.append({"subject": advice.subject, "acquired": list(acquired), "order": order})
            print(f"breast {advice.subject} acquired {'+'.join(acquired)} -> {order}", flush=True)
    before = [r for r in rows if any(r["order"].index(w) < r["order"].index("DCE") for w in ("WashIn", "WashOut"))]
    return {"cases": len(rows), "wash_map_before_dce": len(before), "goal": "never"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--breast-subjects", type=int, default=0)
    parser.add_argument("--seed", type=int, default=4000)
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--slices", type=int, default=None)
    parser.add_argument("--subject-weight", type=float, default=1.0)
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--config", default=None, help="a random network of this size (tests)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="docs/results/advice_validation.json")
    args = parser.parse_args(argv)
    brain_rows: list[dict] = []
    breast_rows: list[dict] = []
    result = {**provenance(command_line("advice_validation", argv), args.device), "args": vars(args)}
    if args.subjects:
        result["brain"] = brain(args, brain_rows)
        print(f"brain: {json.dumps(result['brain'])}")
    if args.breast_subjects:
        result["breast"] = breast(args, breast_rows)
        print(f"breast: {json.dumps(result['breast'])}")
    result["rows"] = {"brain": brain_rows, "breast": breast_rows}
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
