"""Validation of a Seq2Seq generator over all available source->target pairs, with per-target PSNR/SSIM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce
from monai.engines import Evaluator
from monai.inferers import Inferer, SimpleInferer
from monai.metrics import PSNRMetric, SSIMMetric

from monai_seq2seq.core.precision import resolve_autocast

from .batching import MASK_KEY

__all__ = ["Seq2SeqEvaluator", "PairMetric", "pair_metrics", "DATA_RANGE"]

DATA_RANGE = 2.0
"""Peak-to-peak range of the network's [-1, 1] intensity space: PSNR/SSIM use it (same values as [0, 1] with 1)."""


class PairMetric(Metric):
    """Mean PSNR or SSIM over the (source, target) pairs of a :class:`Seq2SeqEvaluator`, optionally of one target.

    Every pair sample contributes one value per frame (4D targets: frames are separate images).

    Args:
        kind: ``"psnr"`` or ``"ssim"``.
        target: code index of the target sequence to keep (``None``: all targets).
        include_self: count self-reconstructions ``i == i`` too.
        spatial_dims: image dims of one frame (2 for 2.5D slices, 3 for volumes).
        data_range: intensity range, :data:`DATA_RANGE` for the network space.
    """

    required_output_keys = ("pairs",)
    _required_output_keys = required_output_keys

    def __init__(
        self,
        kind: str = "psnr",
        target: int | None = None,
        include_self: bool = False,
        spatial_dims: int = 2,
        data_range: float = DATA_RANGE,
        device: str | torch.device = "cpu",
    ) -> None:
        if kind not in ("psnr", "ssim"):
            raise ValueError(f"kind must be 'psnr' or 'ssim', got {kind!r}.")
        self.kind = kind
        self.target = target
        self.include_self = include_self
        self.spatial_dims = spatial_dims
        self.fn = (
            PSNRMetric(max_val=data_range, reduction="none")
            if kind == "psnr"
            else SSIMMetric(spatial_dims=spatial_dims, data_range=data_range, reduction="none")
        )
        super().__init__(output_transform=lambda x: x, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum = torch.zeros((), dtype=torch.float64, device=self._device)
        self._num = torch.zeros((), dtype=torch.float64, device=self._device)

    @reinit__is_reduced
    def update(self, output: Any) -> None:
        pairs = output["pairs"] if isinstance(output, dict) else output[0]
        for i, j, pred, real in pairs:
            if (self.target is not None and j != self.target) or (i == j and not self.include_self):
                continue
            p = pred.float().reshape(-1, *pred.shape[-(self.spatial_dims + 1) :])
            r = real.float().reshape(-1, *real.shape[-(self.spatial_dims + 1) :])
            values = self.fn(p, r).reshape(-1).double().to(self._device)
            self._sum += values.sum()
            self._num += values.numel()

    @sync_all_reduce("_sum", "_num")
    def compute(self) -> float:
        if float(self._num) == 0:
            return float("nan")
        return float(self._sum / self._num)


def pair_metrics(
    sequence_keys: Sequence[str], spatial_dims: int = 2, include_self: bool = False, per_target: bool = True
) -> tuple[dict[str, PairMetric], dict[str, PairMetric]]:
    """``(key_val_metric, additional_metrics)``: ``val_psnr`` (key), ``val_ssim`` and, per target sequence
    ``<name>``, ``val_psnr_<name>`` and ``val_ssim_<name>``."""
    key = {"val_psnr": PairMetric("psnr", None, include_self, spatial_dims)}
    extra: dict[str, PairMetric] = {"val_ssim": PairMetric("ssim", None, include_self, spatial_dims)}
    if per_target:
        for j, name in enumerate(sequence_keys):
            extra[f"val_psnr_{name}"] = PairMetric("psnr", j, include_self, spatial_dims)
            extra[f"val_ssim_{name}"] = PairMetric("ssim", j, include_self, spatial_dims)
    return key, extra


class Seq2SeqEvaluator(Evaluator):
    """Synthesise every available target from every available source of each validation batch.

    Args:
        device: evaluation device.
        val_data_loader: batches of :func:`~.batching.availability_collate` (deterministic slices).
        network: the generator.
        sequence_keys: sequence names in code order.
        include_self: also run self-reconstructions ``i -> i``.
        key_val_metric, additional_metrics: e.g. from :func:`pair_metrics`.
        val_handlers: handlers (``CheckpointSaver`` of the best generator, stats...).
        amp: bfloat16 autocast (CUDA or CPU).
        mask_key: availability-mask key.
        inferer: runs the network, ``inferer(x, network, target)`` (default ``SimpleInferer``).

    Output of an iteration: ``{"pairs": [(i, j, pred (N, T, C, *spatial), real), ...]}``, ``N`` the samples of
    the batch that have both ``i`` and ``j``.
    """

    def __init__(
        self,
        device: str | torch.device,
        val_data_loader,
        network: nn.Module,
        sequence_keys: Sequence[str],
        include_self: bool = False,
        key_val_metric: dict | None = None,
        additional_metrics: dict | None = None,
        val_handlers: Sequence | None = None,
        amp: bool = False,
        mask_key: str = MASK_KEY,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        inferer: Inferer | None = None,
    ) -> None:
        super().__init__(
            device=device,
            val_data_loader=val_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            key_val_metric=key_val_metric,
            additional_metrics=additional_metrics,
            val_handlers=val_handlers,
            amp=False,
            decollate=False,
        )
        self.network = network
        self.inferer = SimpleInferer() if inferer is None else inferer
        self.sequence_keys = list(sequence_keys)
        self.include_self = include_self
        self.mask_key = mask_key
        self.use_amp = resolve_autocast(self.state.device, amp, torch.bfloat16)

    def _iteration(self, engine: Seq2SeqEvaluator, batchdata: dict[str, Any]) -> dict:
        mask = torch.as_tensor(batchdata[self.mask_key]).to(torch.bool)
        pairs = []
        engine.network.eval()
        autocast = torch.autocast(engine.state.device.type, dtype=torch.bfloat16, enabled=engine.use_amp)
        with torch.no_grad(), autocast:
            for i, src in enumerate(engine.sequence_keys):
                for j, tgt in enumerate(engine.sequence_keys):
                    if i == j and not engine.include_self:
                        continue
                    rows = torch.nonzero(mask[:, i] & mask[:, j]).flatten()
                    if rows.numel() == 0:
                        continue
                    x = torch.as_tensor(batchdata[src])[rows].to(engine.state.device)
                    y = torch.as_tensor(batchdata[tgt])[rows].to(engine.state.device)
                    pairs.append((i, j, engine.inferer(x, engine.network, j).float(), y.float()))
        return {"pairs": pairs}
