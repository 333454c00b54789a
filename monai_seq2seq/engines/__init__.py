"""Engines: the Seq2Seq GAN trainer and validation evaluator on MONAI/ignite, checkpoint handlers, batching."""

from .batching import MASK_KEY, AvailabilityCollate, availability_collate
from .checkpoint import CheckpointError, find_latest_checkpoint, resolve_resume
from .evaluator import DATA_RANGE, PairMetric, Seq2SeqEvaluator, pair_metrics
from .fixed_pair import FixedPairTrainer
from .handlers import VerifiedCheckpointLoader
from .loader import ResumableDataLoader, ResumableSampler
from .state import (
    BestGeneratorSaver,
    GeneratorSaver,
    RNGState,
    TrainingCheckpointLoader,
    TrainingCheckpointSaver,
    start_handlers,
)
from .trainer import Seq2SeqTrainer, scalar_output, unwrap

__all__ = [
    "AvailabilityCollate",
    "BestGeneratorSaver",
    "CheckpointError",
    "DATA_RANGE",
    "FixedPairTrainer",
    "GeneratorSaver",
    "MASK_KEY",
    "PairMetric",
    "RNGState",
    "ResumableDataLoader",
    "ResumableSampler",
    "Seq2SeqEvaluator",
    "Seq2SeqTrainer",
    "TrainingCheckpointLoader",
    "TrainingCheckpointSaver",
    "VerifiedCheckpointLoader",
    "availability_collate",
    "find_latest_checkpoint",
    "pair_metrics",
    "resolve_resume",
    "scalar_output",
    "start_handlers",
    "unwrap",
]
