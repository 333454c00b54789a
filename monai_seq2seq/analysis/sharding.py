"""The differentiation / evaluation cohort over torchrun ranks: per-subject analyses as records, cohort on rank 0.

Each rank analyses its share of the subjects (:class:`~monai_seq2seq.engines.distributed.SubjectShard`), writes
their maps and overlays (the per-subject part of :class:`~.engine.DifferentiationWriter`) and a record per subject
with what the cohort outputs need: its sequences, every pair's metrics and its trained-on warnings
(:func:`analysis_record`). Rank 0 gathers the records, rebuilds the analyses in the data's order
(:func:`analysis_from_record`) and runs the cohort part of the writers (ranking, adjacency and rank figures,
metrics table) exactly as a single process does at the end of its run: same numbers, same order.

Used by ``multi_gpu_differentiation.json`` and ``multi_gpu_evaluate.json``; the records also let a rerun with
``skip_existing`` analyse only the subjects without one and still rank the whole cohort.
"""

from __future__ import annotations

import math
from typing import Any

from monai_seq2seq.core.files import ensure_writable_dir

from ..engines.distributed import ShardedRun
from ..inference.engine import trained_on_sidecar
from ..transforms.trained_on import TRAINED_ON_KEY
from .engine import DifferentiationWriter, MetricsTableWriter
from .subject import SubjectAnalysis

__all__ = ["analysis_record", "analysis_from_record", "SubjectFiles", "ShardedCohort"]


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def analysis_record(analysis: SubjectAnalysis) -> dict[str, Any]:
    """What the cohort outputs need of one subject's analysis, JSON-ready (NaN as ``null``; floats exact).

    Returns:
        ``{"available": [...], "metrics": [[source, target, {metric: value}], ...],
        "trained_on_warnings": [...] | None}``.
    """
    reference = getattr(analysis, "reference", None) or {}
    return {
        "available": list(analysis.available),
        "metrics": [
            [source, target, {k: _number(v) for k, v in scores.items()}]
            for (source, target), scores in analysis.metrics.items()
        ],
        "trained_on_warnings": trained_on_sidecar(reference).get("TrainedOnWarnings"),
    }


def analysis_from_record(record: dict[str, Any]) -> SubjectAnalysis:
    """The :class:`SubjectAnalysis` the cohort writers need (no maps) from :func:`analysis_record`'s output.

    Raises:
        KeyError: ``record`` lacks ``subject``, ``available`` or ``metrics`` (not a record of an analysis).
    """
    metrics = {
        (source, target): {k: math.nan if v is None else float(v) for k, v in scores.items()}
        for source, target, scores in record["metrics"]
    }
    analysis = SubjectAnalysis(str(record["subject"]), list(record["available"]), {}, {}, metrics)
    lines = record.get("trained_on_warnings")
    analysis.reference = {} if lines is None else {TRAINED_ON_KEY: list(lines)}
    return analysis


class SubjectFiles:
    """The per-subject part of a :class:`DifferentiationWriter` (maps and overlays), without its cohort outputs.

    Args:
        writer: the writer of the config.
    """

    def __init__(self, writer: DifferentiationWriter) -> None:
        self.writer = writer

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, lambda _: ensure_writable_dir(self.writer.output_dir))
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.writer.write_subjects)


class ShardedCohort(ShardedRun):
    """A sharded differentiation or evaluation run: per-subject files on every rank, cohort outputs on rank 0.

    Attach :meth:`per_subject_handlers` as the evaluator's handlers and call :meth:`finish` on every rank after
    ``evaluator.run()``. Analyses are not kept in memory once recorded (the cohort is rebuilt from the records).

    Args:
        shard: this rank's :class:`~monai_seq2seq.engines.distributed.SubjectShard`.
        handlers: the config's handlers (:class:`DifferentiationWriter`, :class:`MetricsTableWriter`, progress bar).
    """

    def subject_handler(self, handler):
        if isinstance(handler, DifferentiationWriter):
            return SubjectFiles(handler)
        if isinstance(handler, MetricsTableWriter):
            return None  # cohort only: rank 0 runs it in write_cohort
        return handler

    def record(self, output: SubjectAnalysis) -> dict[str, Any]:
        return analysis_record(output)

    def _completed(self, engine) -> None:
        super()._completed(engine)
        analyses = getattr(engine.state, "analyses", None)
        if isinstance(analyses, list):
            analyses.clear()

    def write_cohort(self, engine, records: list[dict[str, Any]]) -> None:
        """Rank 0: the cohort outputs of the config's writers, in their order, from every subject's record."""
        engine.state.analyses = [analysis_from_record(r) for r in records]
        for handler in self.handlers:
            if isinstance(handler, DifferentiationWriter):
                ensure_writable_dir(handler.output_dir)
                handler.write_cohort(engine)
            elif isinstance(handler, MetricsTableWriter):
                ensure_writable_dir(handler.output_dir)
                handler(engine)
