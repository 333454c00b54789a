"""Inference with a per-pair model: one unconditioned generator for one fixed (source, target) translation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer

from monai_seq2seq.transforms.slabs import pad_to_multiple, slabs_to_volume, volume_to_slabs

__all__ = ["PairInferer", "pair_volume"]


class PairInferer(Inferer):
    """Runs a per-pair model where a Seq2Seq trainer calls ``inferer(x, network, target)``.

    A per-pair model (e.g. :class:`~monai_seq2seq.networks.nets.PlainEncoderDecoder`) translates one fixed source
    into one fixed target and takes no target code. A call for the model's own target (or with no target)
    translates ``x``. Any other target is the trainer's cycle pass ``G(G(x_i | j) | i)``, which needs a reverse
    generator the per-pair baseline does not have (Pix2Pix has no cycle term); it returns ``x`` detached, so the
    objective should weight that term 0 (``lambda_cyc=0``).

    Args:
        target: code index of the model's target sequence.

    Shapes:
        ``inputs`` of whatever shape the network takes, e.g. ``(B, T, C, H, W)``; the output has the network's
        output shape for the own target, the shape of ``inputs`` otherwise.
    """

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = int(target)

    def __call__(
        self, inputs: torch.Tensor, network: Callable, target: Any = None, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """``network(inputs)`` for the model's own target (or ``target=None``), else ``inputs`` detached."""
        if target is None or int(target) == self.target:
            return network(inputs)
        return inputs.detach()


@torch.no_grad()
def pair_volume(
    model: torch.nn.Module, volume: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = 16
) -> torch.Tensor:
    """Whole-volume 2.5D synthesis with a per-pair model, as :class:`Seq2SeqSynthesizer` does (``"middle"``
    reassembly): 3-slice slabs along the last axis, padded in-plane to ``model.downsample_factor``, in batches.

    Args:
        model: a per-pair 2.5D model (e.g. ``PlainEncoderDecoder(spatial_dims=2, in_channels=3)``) with a
            ``downsample_factor`` attribute, output in [-1, 1].
        volume: the source, ``(T, X, Y, Z)`` in [0, 1].
        device: where the model runs (bfloat16 autocast on CUDA).
        batch_size: slabs per forward call.

    Returns:
        The synthetic target, ``(T, X, Y, Z)`` in [0, 1], on the CPU.

    Shapes:
        ``(T, X, Y, Z)`` -> ``(T, X, Y, Z)``; the model sees ``(batch_size, T, 3, X', Y')`` with ``X', Y'`` the
        padded plane.
    """
    device = torch.device(device)
    slabs, (height, width) = pad_to_multiple(volume_to_slabs(volume * 2 - 1, 1), model.downsample_factor)
    pieces = []
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for start in range(0, slabs.shape[0], batch_size):
            pieces.append(model(slabs[start : start + batch_size].to(device)).float().cpu())
    out = torch.cat(pieces)[..., :height, :width]
    return ((slabs_to_volume(out, "middle") + 1) / 2).clamp(0, 1)
