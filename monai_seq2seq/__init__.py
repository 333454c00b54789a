"""monai-seq2seq: multi-sequence 3D/4D MRI synthesis, imaging-differentiation maps and sequence ranking on MONAI."""

__version__ = "0.1.0"

__all__ = ["__version__"]
