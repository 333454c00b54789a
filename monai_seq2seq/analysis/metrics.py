"""Per-subject, per-pair similarity of a synthetic sequence to the real one: PSNR, SSIM, LPIPS."""

from __future__ import annotations

import torch
from monai.metrics import PSNRMetric, SSIMMetric
from monai.metrics.regression import compute_ssim_and_cs

__all__ = ["pair_metrics", "masked_ssim"]


def _as_volume(x: torch.Tensor) -> torch.Tensor:
    """(T, X, Y, Z) or (X, Y, Z) -> (T, 1, X, Y, Z) float."""
    if x.dim() == 3:
        x = x[None]
    return x.float()[:, None]


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, data_range: float = 1.0) -> float:
    """Mean of the local SSIM map inside ``mask`` (BraSyn-style SSIM inside/outside the tumour).

    Args:
        pred, target: (T, X, Y, Z) or (X, Y, Z) in [0, data_range].
        mask: (X, Y, Z) boolean region.
    """
    kernel = 11
    ssim_map, _ = compute_ssim_and_cs(
        _as_volume(pred), _as_volume(target), spatial_dims=3, kernel_size=[kernel] * 3, kernel_sigma=[1.5] * 3,
        data_range=data_range,
    )
    half = kernel // 2  # the SSIM map is a "valid" convolution: crop the mask to match
    crop = mask.bool()[half:-half, half:-half, half:-half]
    region = crop.expand_as(ssim_map[:, 0])
    if region.sum() == 0:
        return float("nan")
    return float(ssim_map[:, 0][region].mean())


def pair_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    lpips_model: torch.nn.Module | None = None,
    foreground: torch.Tensor | None = None,
) -> dict[str, float]:
    """PSNR, SSIM (3D, data range 1) and, with a model, LPIPS (axial slices) of one synthetic sequence.

    Args:
        pred: synthetic sequence, (T, X, Y, Z) or (X, Y, Z), in [0, 1].
        target: real sequence, same shape, in [0, 1].
        lpips_model: an LPIPS module from :func:`load_lpips`, or ``None`` to leave LPIPS out.
        foreground: optional (X, Y, Z) mask; LPIPS then uses only axial slices that contain foreground.

    Returns:
        ``{"psnr", "ssim"[, "lpips"]}`` (frames averaged for 4D sequences).
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape.")
    p, t = _as_volume(pred).clamp(0, 1), _as_volume(target).clamp(0, 1)
    out = {
        "psnr": float(PSNRMetric(max_val=1.0, reduction="mean")(p, t).mean()),
        "ssim": float(SSIMMetric(spatial_dims=3, data_range=1.0, reduction="mean")(p, t).mean()),
    }
    if lpips_model is not None:
        slices = range(p.shape[-1])
        if foreground is not None:
            slices = [z for z in slices if bool(foreground[..., z].any())] or list(slices)
        ps = p[:, 0][..., list(slices)].permute(0, 3, 1, 2).reshape(-1, 1, *p.shape[2:4])
        ts = t[:, 0][..., list(slices)].permute(0, 3, 1, 2).reshape(-1, 1, *t.shape[2:4])
        device = next(lpips_model.parameters()).device
        with torch.no_grad():
            values = lpips_model(
                (ps * 2 - 1).expand(-1, 3, -1, -1).to(device), (ts * 2 - 1).expand(-1, 3, -1, -1).to(device)
            )
        out["lpips"] = float(values.mean())
    return out
