"""Inference: whole-volume synthesis (2.5D slab batching, 3D sliding window), all pairs, multi-source fusion."""

from .slabs import pad_to_multiple, slabs_to_volume, volume_to_slabs
from .synthesis import Seq2SeqSynthesizer

__all__ = ["Seq2SeqSynthesizer", "pad_to_multiple", "slabs_to_volume", "volume_to_slabs"]
