"""The combined Seq2Seq objective (paper eq. 1-3) with the paper's weights."""

from __future__ import annotations

import logging

import torch
import torch.nn as nn

from .adversarial import LSGANLoss
from .reconstruction import CycleConsistencyLoss, ReconstructionL1Loss

__all__ = ["PAPER_WEIGHTS", "Seq2SeqLoss"]

logger = logging.getLogger(__name__)

PAPER_WEIGHTS = {"lambda_r": 10.0, "lambda_p": 0.01, "lambda_adv": 1.0, "lambda_cyc": 10.0}
"""lambda_r, lambda_p (paper section 3.4), adversarial weight 1 and lambda_c = 10 (architecture spec)."""


class Seq2SeqLoss(nn.Module):
    """``lambda_r L1 + lambda_p perceptual + lambda_adv LSGAN_G + lambda_cyc cycle`` for one source->target pair.

    Args:
        lambda_r: L1 reconstruction weight (paper 10).
        lambda_p: perceptual weight (paper 0.01); ignored when ``perceptual`` is ``None``.
        lambda_adv: adversarial weight (1).
        lambda_cyc: cycle-consistency weight (10).
        perceptual: a perceptual loss module (e.g. :class:`~.perceptual.VGG19PerceptualLoss`) or ``None`` (off).

    The adversarial and cycle terms apply only to translations (source != target); the trainer passes
    ``None`` for them on self-reconstructions.
    """

    def __init__(
        self,
        lambda_r: float = PAPER_WEIGHTS["lambda_r"],
        lambda_p: float = PAPER_WEIGHTS["lambda_p"],
        lambda_adv: float = PAPER_WEIGHTS["lambda_adv"],
        lambda_cyc: float = PAPER_WEIGHTS["lambda_cyc"],
        perceptual: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.lambda_r = float(lambda_r)
        self.lambda_p = float(lambda_p)
        self.lambda_adv = float(lambda_adv)
        self.lambda_cyc = float(lambda_cyc)
        self.l1 = ReconstructionL1Loss()
        self.cycle = CycleConsistencyLoss()
        self.adversarial = LSGANLoss()
        self.perceptual = perceptual
        logger.info(
            "Seq2Seq objective: lambda_r=%g lambda_p=%g (perceptual %s) lambda_adv=%g lambda_cyc=%g",
            self.lambda_r,
            self.lambda_p,
            "on" if perceptual is not None else "OFF",
            self.lambda_adv,
            self.lambda_cyc,
        )

    @property
    def uses_perceptual(self) -> bool:
        return self.perceptual is not None and self.lambda_p != 0

    def generator_terms(
        self,
        fake: torch.Tensor,
        real: torch.Tensor,
        fake_logits: torch.Tensor | None = None,
        cycled: torch.Tensor | None = None,
        source: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted terms and the weighted total ``"g_loss"``.

        Args:
            fake: ``G(x_i | j)``, (B, T, C, *spatial). real: ``x_j``, same shape.
            fake_logits: ``D_j(fake)`` for the adversarial term, or ``None``.
            cycled: ``G(fake | i)`` and ``source``: ``x_i`` for the cycle term, or ``None``.

        Returns:
            dict with ``"rec_l1"``, ``"perceptual"``, ``"adversarial"``, ``"cycle"`` (zero when not used)
            and ``"g_loss"``.
        """
        zero = fake.new_zeros((), dtype=torch.float32)
        rec = self.l1(fake, real)
        perc = self.perceptual(fake, real) if self.uses_perceptual else zero
        adv = self.adversarial.generator_loss(fake_logits) if fake_logits is not None else zero
        cyc = self.cycle(cycled, source) if cycled is not None else zero
        total = self.lambda_r * rec + self.lambda_p * perc + self.lambda_adv * adv + self.lambda_cyc * cyc
        return {"rec_l1": rec, "perceptual": perc, "adversarial": adv, "cycle": cyc, "g_loss": total}

    def discriminator_terms(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """LSGAN discriminator loss ``"d_loss"`` plus the mean real/fake logits (``"d_real"``, ``"d_fake"``)."""
        loss = self.adversarial.discriminator_loss(real_logits, fake_logits)
        return {
            "d_loss": loss,
            "d_real": real_logits.detach().float().mean(),
            "d_fake": fake_logits.detach().float().mean(),
        }

    def forward(self, fake, real, fake_logits=None, cycled=None, source=None) -> torch.Tensor:
        return self.generator_terms(fake, real, fake_logits, cycled, source)["g_loss"]
