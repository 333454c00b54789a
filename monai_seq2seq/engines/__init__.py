"""Engines: the Seq2Seq GAN trainer and validation evaluator on MONAI/ignite, checkpoint handlers, batching."""

from .batching import MASK_KEY, AvailabilityCollate, availability_collate
from .evaluator import DATA_RANGE, PairMetric, Seq2SeqEvaluator, pair_metrics
from .fixed_pair import FixedPairTrainer
from .handlers import VerifiedCheckpointLoader
from .state import GeneratorSaver, RNGState, TrainingCheckpointLoader, TrainingCheckpointSaver, start_handlers
from .trainer import Seq2SeqTrainer, scalar_output, unwrap

__all__ = [
    "AvailabilityCollate",
    "DATA_RANGE",
    "FixedPairTrainer",
    "GeneratorSaver",
    "MASK_KEY",
    "PairMetric",
    "RNGState",
    "Seq2SeqEvaluator",
    "Seq2SeqTrainer",
    "TrainingCheckpointLoader",
    "TrainingCheckpointSaver",
    "VerifiedCheckpointLoader",
    "availability_collate",
    "pair_metrics",
    "scalar_output",
    "start_handlers",
    "unwrap",
]
