"""One subject's analysis (all translations, maps, per-pair metrics) and their aggregation over a cohort."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .centrality import SequenceRanking, rank_sequences
from .maps import differentiation_map
from .metrics import synthesis_scores

__all__ = ["SubjectAnalysis", "analyse_subject", "cohort_ranking", "identity_prediction"]


def identity_prediction(source: torch.Tensor, frames: int) -> torch.Tensor:
    """The identity baseline "target := source": (T_s, X, Y, Z) -> (frames, X, Y, Z)."""
    if source.shape[0] == frames:
        return source
    return source.float().mean(0, keepdim=True).expand(frames, *source.shape[1:])


@dataclass
class SubjectAnalysis:
    """Result of :func:`analyse_subject`.

    Attributes:
        subject: subject id.
        available: sequences the subject has (canonical names).
        maps: sequence -> differentiation map (T, X, Y, Z) in [0, 1] intensity units.
        map_info: sequence -> what each map averaged (sources, choices).
        metrics: (source, target) -> {"psnr", "ssim"[, "lpips"][, "ssim_tumour", "ssim_outside"]}.
        predictions: target -> source -> synthetic (T, X, Y, Z) in [0, 1] (kept only if asked).
    """

    subject: str
    available: list[str]
    maps: dict[str, torch.Tensor]
    map_info: dict[str, dict[str, Any]]
    metrics: dict[tuple[str, str], dict[str, float]]
    predictions: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def analyse_subject(
    synthesizer,
    volumes: Mapping[str, torch.Tensor],
    subject: str = "subject",
    lpips_model: torch.nn.Module | None = None,
    include_self: bool = True,
    foreground: torch.Tensor | None = None,
    tumour: torch.Tensor | None = None,
    keep_predictions: bool = False,
    identity_baseline: bool = False,
) -> SubjectAnalysis:
    """All translations among a subject's available sequences, each source encoded once.

    Args:
        synthesizer: a :class:`~monai_seq2seq.inference.Seq2SeqSynthesizer`.
        volumes: available sequence -> (T, X, Y, Z) in [0, 1].
        subject: subject id for the record.
        lpips_model: LPIPS module (see :func:`~monai_seq2seq.analysis.perceptual.load_lpips`) or ``None``.
        include_self: differentiation maps average the self-reconstruction too (paper eq. 5, default).
        foreground: optional (X, Y, Z) mask; maps are zero outside it.
        tumour: optional (X, Y, Z) mask: adds BraSyn-style SSIM inside/outside it to the metrics.
        keep_predictions: keep every synthetic volume in the result (memory: S x S volumes).
        identity_baseline: add ``psnr_identity``/``ssim_identity``: the scores of "target := source" (the source's
            frame mean repeated when the frame counts differ), the floor a translation must beat.

    Raises:
        ValueError: fewer than two available sequences (nothing to translate between).
    """
    names = [synthesizer.protocol.canonical(n) for n in volumes]
    if len(names) < 2:
        raise ValueError(
            f"subject {subject!r} has only {names}: differentiation maps and rankings need at least two sequences."
        )
    volumes = {synthesizer.protocol.canonical(k): v for k, v in volumes.items()}
    predictions = synthesizer.all_pairs(volumes, targets=names, sources=names)
    maps, info, metrics = {}, {}, {}
    for target in names:
        maps[target], info[target] = differentiation_map(
            volumes[target], predictions[target], target, include_self=include_self, mask=foreground
        )
        info[target]["available_sources_only"] = len(names) < len(synthesizer.protocol)
        for source in names:
            pred = predictions[target][source]
            metrics[(source, target)] = synthesis_scores(pred, volumes[target], lpips_model, foreground, tumour)
            if identity_baseline and source != target:
                plain = identity_prediction(volumes[source], volumes[target].shape[0])
                base = synthesis_scores(plain, volumes[target], None, foreground)
                metrics[(source, target)].update(psnr_identity=base["psnr"], ssim_identity=base["ssim"])
    return SubjectAnalysis(subject, names, maps, info, metrics, predictions if keep_predictions else {})


def cohort_ranking(
    analyses: Sequence[SubjectAnalysis],
    names: Sequence[str],
    metrics: Sequence[str] = ("psnr", "ssim", "lpips"),
    include_diagonal: bool = True,
) -> SequenceRanking:
    """Adjacency matrix and degree centralities over a cohort of analysed subjects.

    Metrics absent from every subject (e.g. LPIPS without local weights) are left out and the choice recorded.
    Pairs a subject lacks (missing sequences) enter as NaN and are skipped.
    """
    index = {n: i for i, n in enumerate(names)}
    used = [m for m in metrics if any(m in s for a in analyses for s in a.metrics.values())]
    if not used:
        raise ValueError(f"none of the metrics {list(metrics)} was computed for any subject.")
    arrays = {m: np.full((len(analyses), len(names), len(names)), np.nan) for m in used}
    for n, analysis in enumerate(analyses):
        for (source, target), scores in analysis.metrics.items():
            for m in used:
                if m in scores:
                    arrays[m][n, index[source], index[target]] = scores[m]
    ranking = rank_sequences(arrays, names, include_diagonal=include_diagonal)
    ranking.choices["metrics_left_out"] = [m for m in metrics if m not in used]
    ranking.choices["subjects"] = len(analyses)
    return ranking
