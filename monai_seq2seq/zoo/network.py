"""The bundles' network as the model zoo calls it: a :class:`Seq2Seq` whose target sequence has a default.

The model zoo's CI (``verify_net_in_out`` in ``ci/verify_bundle.py``) builds ``network_def`` of
``configs/inference.json`` and calls it with the input alone, ``network(x)``; a Seq2Seq needs the target sequence
too. :class:`ZooSeq2Seq` is the same network (the same modules, state dict and weights, TorchScript export) whose
``forward`` uses ``default_target`` when no target is given; every other caller passes the target as before.
"""

from __future__ import annotations

from typing import Any

import torch

from monai_seq2seq.networks.nets.factory import seq2seq_config
from monai_seq2seq.networks.nets.seq2seq import Seq2Seq

__all__ = ["ZooSeq2Seq", "build_zoo_seq2seq"]


class ZooSeq2Seq(Seq2Seq):
    """A :class:`Seq2Seq` with a default target: ``forward(x)`` synthesises sequence ``default_target``.

    Args:
        default_target: code index of the target used when ``forward`` gets none.
        config: the arguments of :class:`Seq2Seq`.

    Shapes:
        As :meth:`Seq2Seq.forward`: ``x`` (B, T, C, *spatial) or (B, C, *spatial); output (B, T_out, C, *spatial),
        or (B, C, *spatial) for an input without a frame axis and a one-frame target.

    Raises:
        ValueError: ``default_target`` is not a code index of the network.
    """

    def __init__(self, default_target: int = 0, **config: Any) -> None:
        super().__init__(**config)
        if not 0 <= int(default_target) < self.num_sequences:
            raise ValueError(
                f"default_target {default_target} is not a code index of this network (0..{self.num_sequences - 1})."
            )
        self.default_target = int(default_target)

    def forward(
        self, x: torch.Tensor, target: torch.Tensor | int | list[int] | None = None, out_frames: int | None = None
    ) -> torch.Tensor:
        """Synthesise ``target`` (default: ``default_target``) from the source ``x``."""
        chosen: torch.Tensor | int | list[int] = self.default_target if target is None else target
        x, no_frames = self._as_frames(x)
        code, indices = self.condition_code(chosen)
        frames = self.frames_of(indices, out_frames)
        y = self.decode(self.encode(x), code, frames, indices)
        if no_frames and frames == 1:
            y = y.squeeze(1)
        return y


def build_zoo_seq2seq(
    name: str = "small", variant: str = "C", protocol: Any = None, default_target: int | str = 0, **overrides: Any
) -> ZooSeq2Seq:
    """A :class:`ZooSeq2Seq` of a named size, like :func:`~monai_seq2seq.networks.build_seq2seq`.

    Args:
        name: network size (``"tiny"``, ``"small"``...).
        variant: conditioning variant (``"A"``, ``"B"``, ``"C"``).
        protocol: the protocol (sequences, frames); needed for a target given by name.
        default_target: the target of ``network(x)``: a code index, or a sequence name of ``protocol`` (``"T2"``).
        overrides: other :class:`Seq2Seq` arguments.

    Raises:
        ValueError: a sequence name without a protocol, or one the protocol does not have.
    """
    if isinstance(default_target, str):
        if protocol is None:
            raise ValueError(f"default_target {default_target!r} is a sequence name: give the protocol too.")
        from monai_seq2seq.core.protocols import get_protocol

        default_target = get_protocol(protocol).index(default_target)
    return ZooSeq2Seq(default_target=int(default_target), **seq2seq_config(name, variant, protocol, **overrides))
