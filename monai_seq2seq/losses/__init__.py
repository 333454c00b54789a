"""Losses of the Seq2Seq objective (paper eq. 1-3): L1 reconstruction, VGG19 perceptual, LSGAN, cycle."""

from .adversarial import LSGANLoss
from .objective import PAPER_WEIGHTS, Seq2SeqLoss
from .perceptual import VGG19_FILE, VGG19PerceptualLoss, build_perceptual_loss, default_vgg19_path
from .reconstruction import CycleConsistencyLoss, ReconstructionL1Loss

__all__ = [
    "CycleConsistencyLoss",
    "LSGANLoss",
    "PAPER_WEIGHTS",
    "ReconstructionL1Loss",
    "Seq2SeqLoss",
    "VGG19PerceptualLoss",
    "VGG19_FILE",
    "build_perceptual_loss",
    "default_vgg19_path",
]
