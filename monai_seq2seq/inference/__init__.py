"""Inference: whole-volume synthesis (2.5D slab batching, 3D sliding window), all pairs, multi-source fusion."""

from monai_seq2seq.io.nifti_writer import affine_of, save_volume

from ..transforms.slabs import pad_to_multiple, slabs_to_volume, volume_to_slabs
from .dicom_output import (
    OUTPUT_FORMATS,
    UNCERTAINTY_SERIES_BASE,
    SyntheticDicomWriter,
    uncertainty_series_description,
    writes_format,
)
from .engine import SynthesisEvaluator, SyntheticImageWriter, subject_collate
from .error_model import ErrorModel
from .pair import PairInferer, pair_volume
from .quality import QualityModel
from .synthesis import Seq2SeqSynthesizer
from .uncertainty import SynthesisUncertainty, UncertaintyEstimator, synthesize_with_uncertainty

__all__ = [
    "OUTPUT_FORMATS",
    "ErrorModel",
    "PairInferer",
    "QualityModel",
    "Seq2SeqSynthesizer",
    "SynthesisEvaluator",
    "SyntheticDicomWriter",
    "UNCERTAINTY_SERIES_BASE",
    "uncertainty_series_description",
    "SyntheticImageWriter",
    "SynthesisUncertainty",
    "UncertaintyEstimator",
    "affine_of",
    "pad_to_multiple",
    "pair_volume",
    "save_volume",
    "slabs_to_volume",
    "subject_collate",
    "synthesize_with_uncertainty",
    "volume_to_slabs",
    "writes_format",
]
