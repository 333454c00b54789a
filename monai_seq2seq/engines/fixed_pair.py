"""The Seq2Seq trainer on one fixed (source, target) pair: trains a per-pair baseline with the same objective."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .trainer import Seq2SeqTrainer

__all__ = ["FixedPairTrainer"]


class FixedPairTrainer(Seq2SeqTrainer):
    """:class:`Seq2SeqTrainer` on one fixed ``(source, target)`` pair (per-pair baseline training).

    Same batching, generator/discriminator steps and loss as :class:`Seq2SeqTrainer`; only the pair sampling is
    fixed, so no random draw is made for it. Every batch must contain both sequences (filter the training subjects
    accordingly). An unconditioned generator is run through ``inferer``, e.g.
    ``monai_seq2seq.inference.PairInferer(target)``, with the cycle term's weight set to 0.

    Args:
        args: as :class:`Seq2SeqTrainer`.
        pair: ``(source, target)`` code indices.
        kwargs: as :class:`Seq2SeqTrainer`.

    Shapes:
        as :class:`Seq2SeqTrainer`: each sequence key of a batch ``(B, T, C, H, W)`` (2.5D) plus the availability
        mask ``(B, num_sequences)``.

    Raises:
        RuntimeError: (during a run) a batch lacks the source or the target sequence.
    """

    def __init__(self, *args: Any, pair: tuple[int, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pair = (int(pair[0]), int(pair[1]))

    def sample_pair(self, available: Sequence[int]) -> tuple[int, int]:
        """Always ``self.pair``.

        Raises:
            RuntimeError: the batch lacks the source or the target.
        """
        if self.pair[0] not in available or self.pair[1] not in available:
            raise RuntimeError(
                f"batch lacks pair {self.pair} (available: {list(available)}); train the per-pair "
                "model only on subjects that have both sequences."
            )
        return self.pair
