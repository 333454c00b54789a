"""Differentiation maps, per-translation metrics and the cohort ranking as a MONAI (ignite) evaluator."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.engines import Evaluator

from monai_seq2seq.core.files import atomic_write_text, ensure_writable_dir
from monai_seq2seq.io.nifti_writer import affine_of, save_volume

from ..inference.engine import subject_volumes, trained_on_sidecar
from ..transforms.validation import check_same_grid
from .figures import plot_adjacency, plot_overlays, plot_ranks
from .perceptual import LPIPSStatus, load_lpips
from .subject import SubjectAnalysis, analyse_subject, cohort_ranking

__all__ = ["DifferentiationEvaluator", "DifferentiationWriter", "MetricsTableWriter"]


class DifferentiationEvaluator(Evaluator):
    """Analyse every subject of a loader: all translations, differentiation maps, per-pair metrics.

    ``engine.state.output`` is a list of :class:`SubjectAnalysis`; ``engine.state.analyses`` collects all of
    them for the cohort ranking at the end (see :class:`DifferentiationWriter`).

    Args:
        device: torch device.
        val_data_loader: yields lists of subject dicts (:func:`~monai_seq2seq.inference.subject_collate`) with
            normalised [0, 1] sequences, optional ``"label"`` (BraTS labels) and ``"foreground"`` masks.
        synthesizer: a :class:`~monai_seq2seq.inference.Seq2SeqSynthesizer`.
        include_self: differentiation maps average the self-reconstruction too (paper eq. 5, default).
        lpips_weights: AlexNet weights file for LPIPS; ``None``: the torch hub cache. Absent: LPIPS is left
            out and the outputs say so.
        use_lpips: set False to leave LPIPS out on purpose.
        tumour_labels: label values forming the tumour mask for SSIM inside/outside (BraTS: 1, 2, 4).
        identity_baseline: also score "target := source" per pair (``psnr_identity``, ``ssim_identity``).
        foreground_threshold: without a ``"foreground"`` key, the foreground is where any sequence exceeds this
            normalised intensity; maps are zero outside it. ``None``: no foreground mask.
        val_handlers: handlers (e.g. :class:`DifferentiationWriter`, :class:`MetricsTableWriter`, progress bar).
    """

    def __init__(
        self,
        device: torch.device | str,
        val_data_loader,
        synthesizer,
        include_self: bool = True,
        lpips_weights: str | None = None,
        use_lpips: bool = True,
        tumour_labels: Sequence[int] = (1, 2, 4),
        keep_predictions: bool = False,
        identity_baseline: bool = True,
        foreground_threshold: float | None = 0.02,
        val_handlers: Sequence | None = None,
        epoch_length: int | None = None,
    ) -> None:
        super().__init__(
            device=device,
            val_data_loader=val_data_loader,
            epoch_length=epoch_length,
            val_handlers=val_handlers,
            decollate=False,
        )
        self.synthesizer = synthesizer
        self.foreground_threshold = foreground_threshold
        self.identity_baseline = identity_baseline
        self.protocol = synthesizer.protocol
        self.include_self = include_self
        self.tumour_labels = tuple(tumour_labels)
        self.keep_predictions = keep_predictions
        if use_lpips:
            self.lpips_model, self.lpips_status = load_lpips(lpips_weights)
            if self.lpips_model is not None:
                self.lpips_model.to(synthesizer.device)
        else:
            self.lpips_model, self.lpips_status = None, LPIPSStatus(False, None, "LPIPS switched off by the config.")
        self.logger.info(self.lpips_status.reason)
        self.state.analyses = []

    def _masks(self, subject: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        foreground = subject.get("foreground")
        if foreground is not None:
            foreground = torch.as_tensor(foreground)
            foreground = foreground.reshape(-1, *foreground.shape[-3:])[0]
        elif self.foreground_threshold is not None:
            volumes = subject_volumes(subject, self.protocol).values()
            foreground = torch.stack([v.amax(0) for v in volumes]).amax(0) > self.foreground_threshold
        label = subject.get("label")
        tumour = None
        if label is not None:
            label = torch.as_tensor(label)
            label = label.reshape(-1, *label.shape[-3:])[0]
            tumour = torch.isin(label, torch.tensor(self.tumour_labels, dtype=label.dtype))
        return (None if foreground is None else foreground.bool()), tumour

    def _iteration(self, engine: Any, batchdata: list[dict]) -> list[SubjectAnalysis]:
        outputs = []
        for subject in batchdata:
            subject_id = str(subject.get("subject", f"subject_{engine.state.iteration}"))
            # one grid for the sequences and (channel-first) masks, or one clear line, not torch's "stack expects..."
            on_grid = [*self.protocol.names, "label", "foreground"]
            check_same_grid({k: subject[k] for k in on_grid if getattr(subject.get(k), "ndim", 0) == 4}, subject_id)
            foreground, tumour = self._masks(subject)
            analysis = analyse_subject(
                self.synthesizer,
                subject_volumes(subject, self.protocol),
                subject_id,
                self.lpips_model,
                self.include_self,
                foreground,
                tumour,
                self.keep_predictions,
                self.identity_baseline,
            )
            analysis.reference = subject  # for the writers: affines, labels, planted masks
            outputs.append(analysis)
            engine.state.analyses.append(analysis)
        return outputs


def _trained_on_warnings(analyses) -> dict[str, list[str]]:
    """Subject -> its lines of :class:`~monai_seq2seq.transforms.CheckTrainedOnd` (subjects without any left out)."""
    out = {}
    for analysis in analyses:
        lines = trained_on_sidecar(getattr(analysis, "reference", None) or {}).get("TrainedOnWarnings")
        if lines:
            out[analysis.subject] = lines
    return out


def _mean_frame(volume: torch.Tensor) -> np.ndarray:
    return torch.as_tensor(volume).float().mean(0).cpu().numpy()


class DifferentiationWriter:
    """Per subject: maps as NIfTI (source affine) and a PNG overlay; at the end: ranking CSV/JSON, heatmap, ranks.

    The cohort outputs rank only the sequences some subject has: one absent from every subject is left out of
    each of them, named in ``ranking.json`` (``choices.sequences_left_out``), under both figures and in the log.

    Args:
        output_dir: output folder (checked writable at start).
        protocol: the protocol.
        include_diagonal: cohort ranking with self-translations (default, as the authors' script).
        contour_keys: per sequence, a subject key of a mask to outline in the overlays (e.g. the planted
            ``"unique-T1Gd"`` ground truth of the phantoms).
    """

    def __init__(
        self,
        output_dir: str | Path,
        protocol,
        include_diagonal: bool = True,
        contour_keys: dict[str, str] | None = None,
        save_maps: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.protocol = protocol
        self.include_diagonal = include_diagonal
        self.contour_keys = contour_keys or {}
        self.save_maps = save_maps
        self.ranking = None

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, lambda _: ensure_writable_dir(self.output_dir))
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.write_subjects)
        engine.add_event_handler(Events.COMPLETED, self.write_cohort)

    def write_subjects(self, engine) -> None:
        for analysis in engine.state.output:
            subject = analysis.reference
            folder = self.output_dir / analysis.subject
            if self.save_maps:
                for name, volume in analysis.maps.items():
                    save_volume(
                        volume,
                        affine_of(subject[name]),
                        folder / f"{analysis.subject}_{name}_diffmap.nii.gz",
                        description=f"differentiation map of {name}",
                        sidecar={
                            "DifferentiationMap": True,
                            **analysis.map_info[name],
                            **trained_on_sidecar(subject),
                        },
                    )
            contours = {}
            for name, key in self.contour_keys.items():
                # a datalist entry's mask the bundle did not load is still a path: no contour, nothing to stack
                if key in subject and name in analysis.maps and not isinstance(subject[key], (str, Path)):
                    mask = torch.as_tensor(subject[key])
                    contours[name] = mask.reshape(-1, *mask.shape[-3:])[0].cpu().numpy() > 0
            plot_overlays(
                {n: _mean_frame(subject_volumes(subject, self.protocol)[n]) for n in analysis.maps},
                {n: _mean_frame(m) for n, m in analysis.maps.items()},
                folder / f"{analysis.subject}_diffmaps.png",
                contours=contours,
            )

    def write_cohort(self, engine) -> None:
        analyses = engine.state.analyses
        self.ranking = cohort_ranking(analyses, self.protocol.names, include_diagonal=self.include_diagonal)
        status = getattr(engine, "lpips_status", None)
        if status is not None:
            self.ranking.choices["lpips"] = status.reason
        warnings = _trained_on_warnings(analyses)
        if warnings:
            self.ranking.choices["trained_on_warnings"] = warnings
        left_out = self.ranking.choices["sequences_left_out"]
        if left_out:
            engine.logger.warning(
                f"left out of the ranking (no subject has them): {sorted(left_out)}; ranked: {self.ranking.names}."
            )
        self.ranking.save(self.output_dir)
        plot_adjacency(self.ranking, self.output_dir / "adjacency.png")
        plot_ranks(self.ranking, self.output_dir / "ranks.png")


class MetricsTableWriter:
    """At the end: per-translation metrics (mean and std over subjects) as CSV, JSON and a Markdown table."""

    def __init__(self, output_dir: str | Path, stem: str = "metrics") -> None:
        self.output_dir = Path(output_dir)
        self.stem = stem
        self.summary: dict[str, dict[str, Any]] = {}

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, lambda _: ensure_writable_dir(self.output_dir))
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine) -> None:
        pooled: dict[tuple[str, str], dict[str, list[float]]] = {}
        for analysis in engine.state.analyses:
            for pair, scores in analysis.metrics.items():
                for metric, value in scores.items():
                    pooled.setdefault(pair, {}).setdefault(metric, []).append(value)
        buf = io.StringIO()
        writer = csv.writer(buf)
        metrics = sorted({m for values in pooled.values() for m in values})
        writer.writerow(["source", "target", "n", *[f"{m}_{s}" for m in metrics for s in ("mean", "std")]])
        for (source, target), values in sorted(pooled.items()):
            row = [source, target, len(next(iter(values.values())))]
            entry = {}
            for m in metrics:
                arr = np.asarray(values.get(m, []), dtype=float)
                mean, std = (float(np.nanmean(arr)), float(np.nanstd(arr))) if arr.size else (np.nan, np.nan)
                row += [f"{mean:.5f}", f"{std:.5f}"]
                entry[m] = {"mean": mean, "std": std}
            writer.writerow(row)
            self.summary[f"{source}->{target}"] = entry
        status = getattr(engine, "lpips_status", None)
        atomic_write_text(self.output_dir / f"{self.stem}.md", self.markdown(len(engine.state.analyses)))
        atomic_write_text(self.output_dir / f"{self.stem}.csv", buf.getvalue())
        atomic_write_text(
            self.output_dir / f"{self.stem}.json",
            json.dumps(
                {
                    "pairs": self.summary,
                    "lpips": None if status is None else status.reason,
                    "intensity_space": "[0, 1] after per-sequence percentile normalisation",
                    "trained_on_warnings": _trained_on_warnings(engine.state.analyses),
                },
                indent=2,
            ),
        )

    def markdown(self, subjects: int) -> str:
        """Translations (source != target) with the model's PSNR/SSIM beside the identity baseline's."""

        def cell(entry: dict, metric: str) -> str:
            value = entry.get(metric)
            return (
                "n/a"
                if value is None
                else f"{value['mean']:.2f} ± {value['std']:.2f}"
                if "psnr" in metric
                else f"{value['mean']:.3f} ± {value['std']:.3f}"
            )

        lines = [
            f"Held-out subjects: {subjects}. Intensities normalised per sequence to [0, 1].",
            "",
            "| source -> target | PSNR | PSNR identity | SSIM | SSIM identity | beats identity (PSNR) |",
            "|---|---|---|---|---|---|",
        ]
        for pair, entry in self.summary.items():
            source, target = pair.split("->")
            if source == target:
                continue
            wins = entry.get("psnr_identity") and entry["psnr"]["mean"] > entry["psnr_identity"]["mean"]
            lines.append(
                f"| {source} -> {target} | {cell(entry, 'psnr')} | {cell(entry, 'psnr_identity')} | "
                f"{cell(entry, 'ssim')} | {cell(entry, 'ssim_identity')} | {'yes' if wins else 'no'} |"
            )
        return "\n".join(lines) + "\n"
