"""The decisive check: does a differentiation map separate a planted region from a mimic as bright as it?

On the phantoms a planted region (brain: enhancing tumour on T1Gd; breast: the lesion on DCE and DWI) is bright on
its sequence. So are its mimics (``monai_seq2seq.phantoms.tissues.BRAIN_MIMIC``, ``BREAST_MIMICS``), but the other
sequences predict them. Brightness alone therefore separates the planted region from its mimics at chance, and
only a map of what the other sequences cannot predict separates them well. Three scores are compared per subject:
the map of the trained network, the raw normalised intensity, and the map of an untrained network (whose error
tracks brightness).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from monai_seq2seq.phantoms.tissues import BRAIN_LABELS, BRAIN_MIMIC, BREAST_LABELS, BREAST_MIMICS

from ..inference.engine import subject_volumes
from .maps import differentiation_map

__all__ = [
    "MimicCheck",
    "MIMIC_CHECKS",
    "region_auc",
    "target_maps",
    "mimic_aucs",
    "evaluator_mimic_aucs",
    "MAP_GOAL",
    "BASELINE_LIMIT",
]

MAP_GOAL = 0.85
"""The trained map should separate planted region from mimics at least this well (issue 24)."""

BASELINE_LIMIT = 0.65
"""Raw intensity and the untrained map should stay at or below this (near chance)."""


@dataclass(frozen=True)
class MimicCheck:
    """One planted region and its mimic, as label values of the phantom's segmentation.

    Args:
        sequence: the sequence whose map is scored.
        region: label value of the planted region (positive class).
        mimic: label value of the mimic (negative class).
        description: the pair in words, for reports.
    """

    sequence: str
    region: int
    mimic: int
    description: str


MIMIC_CHECKS: Mapping[str, tuple[MimicCheck, ...]] = {
    "brain": (MimicCheck("T1Gd", BRAIN_LABELS["ET"], BRAIN_LABELS["HEM"], f"ET vs {BRAIN_MIMIC}"),),
    "breast": tuple(
        MimicCheck(seq, BREAST_LABELS["lesion"], BREAST_LABELS[tissue], f"lesion vs {tissue}")
        for seq, tissue in BREAST_MIMICS.items()
    ),
}
"""Protocol name -> the checks of its phantom."""


def _volume(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """(X, Y, Z) array: frames/channels of a (..., X, Y, Z) input averaged."""
    arr = np.asarray(torch.as_tensor(x).detach().float().cpu())
    return arr.reshape(-1, *arr.shape[-3:]).mean(0)


def region_auc(score, label, region: int, mimic: int) -> float:
    """ROC AUC of ``score`` separating voxels labelled ``region`` (positive) from voxels labelled ``mimic``.

    Shapes:
        score: (..., X, Y, Z): leading frames/channels are averaged (a 4D sequence's map over its frames).
        label: (..., X, Y, Z) integer labels; the first channel is used.

    Returns:
        The AUC (0.5 = chance, 1 = every region voxel scores above every mimic voxel), NaN where either class
        is empty.
    """
    from sklearn.metrics import roc_auc_score

    values = _volume(score)
    lab = np.asarray(torch.as_tensor(label).reshape(-1, *np.shape(label)[-3:])[0])
    positive, negative = lab == region, lab == mimic
    if not positive.any() or not negative.any():
        return float("nan")
    truth = np.r_[np.ones(int(positive.sum())), np.zeros(int(negative.sum()))]
    return float(roc_auc_score(truth, np.r_[values[positive], values[negative]]))


def target_maps(
    synthesizer,
    volumes: Mapping[str, torch.Tensor],
    targets: Sequence[str],
    include_self: bool = True,
    foreground: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Differentiation maps of ``targets`` only (each from every available source), e.g. for a baseline network.

    Args:
        synthesizer: a :class:`~monai_seq2seq.inference.Seq2SeqSynthesizer`.
        volumes: available sequence -> (T, X, Y, Z) in [0, 1].
        targets: the sequences to map.
        include_self: as :func:`~.maps.differentiation_map`.
        foreground: optional (X, Y, Z) mask; maps are zero outside it.

    Returns:
        target -> map, shaped like the target volume.
    """
    predictions = synthesizer.all_pairs(volumes, targets=list(targets), sources=list(volumes))
    return {
        t: differentiation_map(volumes[t], predictions[t], t, include_self=include_self, mask=foreground)[0]
        for t in targets
    }


def mimic_aucs(
    protocol: str,
    subject: str,
    label,
    volumes: Mapping[str, torch.Tensor],
    maps: Mapping[str, torch.Tensor],
    untrained_maps: Mapping[str, torch.Tensor] | None = None,
) -> list[dict]:
    """The decisive AUCs of one subject: one row per check of ``MIMIC_CHECKS[protocol]``.

    Args:
        protocol: ``"brain"`` or ``"breast"``.
        subject: subject id, copied into the rows.
        label: the phantom's label map (..., X, Y, Z).
        volumes: sequence -> normalised volume (the raw-intensity baseline).
        maps: sequence -> differentiation map of the trained network.
        untrained_maps: sequence -> map of an untrained network (the row's ``untrained`` is NaN without it).

    Returns:
        Rows ``{"subject", "sequence", "pair", "trained", "intensity", "untrained", "goal_met"}``; ``goal_met``:
        trained >= :data:`MAP_GOAL` and both baselines <= :data:`BASELINE_LIMIT` (NaN baselines not counted).

    Raises:
        KeyError: an unknown protocol.
    """
    if protocol not in MIMIC_CHECKS:
        raise KeyError(f"no mimic checks for protocol {protocol!r}; known: {sorted(MIMIC_CHECKS)}.")
    rows = []
    for check in MIMIC_CHECKS[protocol]:
        if check.sequence not in maps:
            continue
        row = {"subject": subject, "sequence": check.sequence, "pair": check.description}
        row["trained"] = region_auc(maps[check.sequence], label, check.region, check.mimic)
        row["intensity"] = region_auc(volumes[check.sequence], label, check.region, check.mimic)
        untrained = untrained_maps.get(check.sequence) if untrained_maps else None
        row["untrained"] = (
            float("nan") if untrained is None else region_auc(untrained, label, check.region, check.mimic)
        )
        baselines = [v for v in (row["intensity"], row["untrained"]) if not np.isnan(v)]
        row["goal_met"] = bool(row["trained"] >= MAP_GOAL and all(v <= BASELINE_LIMIT for v in baselines))
        rows.append(row)
    return rows


def evaluator_mimic_aucs(evaluator, baseline=None) -> list[dict]:
    """:func:`mimic_aucs` of every subject a :class:`~.engine.DifferentiationEvaluator` analysed.

    Args:
        evaluator: a finished differentiation evaluator (its ``state.analyses`` hold maps and subjects).
        baseline: optional untrained synthesizer (e.g. a copy of the bundle's taken before its weights were
            loaded); its maps of the checked sequences are computed on the same volumes and foreground.

    Returns:
        The rows of every subject with a label map, in the evaluator's order.
    """
    protocol = evaluator.protocol.name
    if protocol not in MIMIC_CHECKS:
        return []
    targets = [c.sequence for c in MIMIC_CHECKS[protocol]]
    rows = []
    for analysis in evaluator.state.analyses:
        subject = analysis.reference
        if subject.get("label") is None:
            continue
        volumes = subject_volumes(subject, evaluator.protocol)
        untrained = None
        if baseline is not None:
            foreground = evaluator._masks(subject)[0]  # noqa: SLF001 - the mask the trained maps used
            wanted = [t for t in targets if t in volumes]
            untrained = target_maps(baseline, volumes, wanted, evaluator.include_self, foreground)
        rows.extend(mimic_aucs(protocol, analysis.subject, subject["label"], volumes, analysis.maps, untrained))
    return rows
