"""Inference: whole-volume synthesis (2.5D slab batching, 3D sliding window), all pairs, multi-source fusion."""

from monai_seq2seq.io.nifti_writer import affine_of, save_volume

from ..transforms.slabs import pad_to_multiple, slabs_to_volume, volume_to_slabs
from .engine import SynthesisEvaluator, SyntheticImageWriter, subject_collate
from .pair import PairInferer, pair_volume
from .synthesis import Seq2SeqSynthesizer

__all__ = [
    "PairInferer",
    "Seq2SeqSynthesizer",
    "SynthesisEvaluator",
    "SyntheticImageWriter",
    "affine_of",
    "pad_to_multiple",
    "pair_volume",
    "save_volume",
    "slabs_to_volume",
    "subject_collate",
    "volume_to_slabs",
]
