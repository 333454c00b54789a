"""Acquisition advice over a loader of subjects as a MONAI (ignite) evaluator, and the handler that writes it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.engines import Evaluator

from monai_seq2seq.core.files import atomic_write_text, ensure_writable_dir

from ..inference.engine import subject_volumes
from .advice import Advice, CohortAdjacency, advise_subject

__all__ = ["AdviceEvaluator", "AdviceWriter"]


class AdviceEvaluator(Evaluator):
    """Advise every subject of a loader (:func:`~monai_seq2seq.analysis.advice.advise_subject`).

    ``engine.state.output`` is the iteration's list of :class:`~monai_seq2seq.analysis.advice.Advice`;
    ``engine.state.advice`` collects all of them.

    Args:
        device: torch device.
        val_data_loader: yields lists of subject dicts (:func:`~monai_seq2seq.inference.subject_collate`) with
            normalised [0, 1] sequences and an optional ``"label"``.
        synthesizer: a 2.5D :class:`~monai_seq2seq.inference.Seq2SeqSynthesizer`.
        cohort: the bundle's cohort adjacency (a dict as in :meth:`CohortAdjacency.from_dict`, or the object).
        regions: region name -> label values (e.g. ``{"tumour": [1, 2, 4]}``): ranked inside each region of a
            subject that has a ``"label"``.
        subject_weight: weight of the subject's own uncertainty against the cohort term.
        droppable: also name the acquired sequence most predictable from the others.
        val_handlers: e.g. :class:`AdviceWriter`.
    """

    def __init__(
        self,
        device: torch.device | str,
        val_data_loader,
        synthesizer,
        cohort: Mapping[str, Any] | CohortAdjacency,
        regions: Mapping[str, Sequence[int]] | None = None,
        subject_weight: float = 1.0,
        droppable: bool = True,
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
        self.protocol = synthesizer.protocol
        self.cohort = cohort if isinstance(cohort, CohortAdjacency) else CohortAdjacency.from_dict(cohort)
        self.regions = {str(k): [int(v) for v in values] for k, values in (regions or {}).items()}
        self.subject_weight = float(subject_weight)
        self.droppable = bool(droppable)
        self.state.advice = []

    def _regions(self, subject: dict) -> dict[str, torch.Tensor]:
        label = subject.get("label")
        if label is None or isinstance(label, (str, Path)) or not self.regions:
            return {}
        label = torch.as_tensor(label)
        label = label.reshape(-1, *label.shape[-3:])[0]
        return {
            name: torch.isin(label, torch.tensor(values, dtype=label.dtype)) for name, values in self.regions.items()
        }

    def _iteration(self, engine: Any, batchdata: list[dict]) -> list[Advice]:
        outputs = []
        for subject in batchdata:
            subject_id = str(subject.get("subject", f"subject_{engine.state.iteration}"))
            advice = advise_subject(
                self.synthesizer,
                subject_volumes(subject, self.protocol),
                self.cohort,
                subject_id,
                self._regions(subject),
                self.subject_weight,
                self.droppable,
            )
            outputs.append(advice)
            engine.state.advice.append(advice)
        return outputs


class AdviceWriter:
    """Print each subject's advice; at the end write ``advice.json`` and ``advice.md`` into ``output_dir``."""

    def __init__(self, output_dir: str | Path, verbose: bool = True) -> None:
        self.output_dir = Path(output_dir)
        self.verbose = verbose

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, lambda _: ensure_writable_dir(self.output_dir))
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.print_subjects)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def print_subjects(self, engine) -> None:
        if self.verbose:
            for advice in engine.state.output:
                print("\n".join(["[advice] " + line for line in advice.lines()]), flush=True)

    def write(self, engine) -> None:
        advice = engine.state.advice
        cohort = getattr(engine, "cohort", None)
        payload = {
            "subjects": [a.to_dict() for a in advice],
            "cohort": None if cohort is None else cohort.source,
        }
        atomic_write_text(self.output_dir / "advice.json", json.dumps(payload, indent=2))
        atomic_write_text(self.output_dir / "advice.md", markdown(advice))


def markdown(advice: Sequence[Advice]) -> str:
    """A table: per subject, what was acquired, the order to acquire the rest, and the droppable sequence."""
    lines = [
        "| subject | acquired | acquire next (first = most unrecoverable) | inside regions | most predictable |",
        "|---|---|---|---|---|",
    ]
    for a in advice:
        order = ", ".join(
            m["sequence"] + (f" (from {m['computed_from']})" if m.get("computed_from") else "") for m in a.missing
        )
        regions = "; ".join(f"{r}: {', '.join(m['sequence'] for m in ranked)}" for r, ranked in a.regions.items())
        drop = f"{a.droppable['sequence']} ({a.droppable['psnr']:.1f} dB)" if a.droppable else "n/a"
        lines.append(f"| {a.subject} | {', '.join(a.acquired)} | {order or '-'} | {regions or '-'} | {drop} |")
    return "\n".join(lines) + "\n"
