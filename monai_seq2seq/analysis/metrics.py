"""Per-subject, per-pair similarity of a synthetic sequence to the real one: PSNR, SSIM, LPIPS."""

from __future__ import annotations

import torch
from monai.metrics import PSNRMetric

__all__ = ["synthesis_scores", "masked_ssim", "ssim_map"]

SSIM_KERNEL = 11
SSIM_SIGMA = 1.5


def _as_volume(x: torch.Tensor) -> torch.Tensor:
    """(T, X, Y, Z) or (X, Y, Z) -> (T, 1, X, Y, Z) float."""
    if x.dim() == 3:
        x = x[None]
    return x.float()[:, None]


def _gaussian_1d(size: int, sigma: float, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _banded(length: int, kernel: torch.Tensor) -> torch.Tensor:
    """(length, length - k + 1) matrix M with ``(v @ M)[j] = sum_i kernel[i] v[j + i]``: a 'valid' 1D filter."""
    size = kernel.numel()
    out = length - size + 1
    matrix = kernel.new_zeros(length, out)
    cols = torch.arange(out, device=kernel.device)
    for i in range(size):
        matrix[cols + i, cols] = kernel[i]
    return matrix


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter of (N, 1, X, Y, Z), one banded matrix product per axis.

    A GEMM per axis is about 20x faster on a CPU than one-channel 3D (or 1D) convolutions of the same filter.
    """
    for dim in (2, 3, 4):
        moved = x.movedim(dim, -1)
        x = (moved @ _banded(moved.shape[-1], kernel)).movedim(-1, dim)
    return x


def ssim_map(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    kernel_size: int = SSIM_KERNEL,
    sigma: float = SSIM_SIGMA,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Local SSIM of two volumes with a Gaussian window (same definition and defaults as MONAI's ``SSIMMetric``).

    Args:
        pred, target: (T, X, Y, Z) or (X, Y, Z).

    Returns:
        (T, X - k + 1, Y - k + 1, Z - k + 1): the map over the "valid" window positions.
    """
    x, y = _as_volume(pred), _as_volume(target)
    if min(x.shape[2:]) < kernel_size:
        raise ValueError(f"3D SSIM needs every size >= {kernel_size}, got {tuple(x.shape[2:])}.")
    kernel = _gaussian_1d(kernel_size, sigma, x.device, x.dtype)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    stacked = _blur(torch.cat([x, y, x * x, y * y, x * y]), kernel)
    mu_x, mu_y, xx, yy, xy = stacked.split(x.shape[0])
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim[:, 0]


def _crop_mask(mask: torch.Tensor, kernel_size: int = SSIM_KERNEL) -> torch.Tensor:
    half = kernel_size // 2
    return mask.bool()[half:-half, half:-half, half:-half]


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, data_range: float = 1.0) -> float:
    """Mean of the local SSIM map inside ``mask`` (BraSyn-style SSIM inside/outside the tumour).

    Args:
        pred, target: (T, X, Y, Z) or (X, Y, Z) in [0, data_range].
        mask: (X, Y, Z) boolean region.
    """
    return _region_mean(ssim_map(pred, target, data_range), mask)


def _region_mean(local: torch.Tensor, mask: torch.Tensor) -> float:
    region = _crop_mask(mask).expand_as(local)
    return float(local[region].mean()) if region.any() else float("nan")


def synthesis_scores(
    pred: torch.Tensor,
    target: torch.Tensor,
    lpips_model: torch.nn.Module | None = None,
    foreground: torch.Tensor | None = None,
    tumour: torch.Tensor | None = None,
) -> dict[str, float]:
    """PSNR, SSIM (3D, data range 1), optionally LPIPS (axial slices) and SSIM inside/outside a tumour mask.

    Args:
        pred: synthetic sequence, (T, X, Y, Z) or (X, Y, Z), in [0, 1].
        target: real sequence, same shape, in [0, 1].
        lpips_model: an LPIPS module from :func:`load_lpips`, or ``None`` to leave LPIPS out.
        foreground: optional (X, Y, Z) mask; LPIPS then uses only axial slices that contain foreground, and the
            "outside the tumour" SSIM is taken inside the foreground.
        tumour: optional (X, Y, Z) mask: adds ``ssim_tumour`` and ``ssim_outside`` (one SSIM map serves all three).

    Returns:
        ``{"psnr", "ssim"[, "lpips"][, "ssim_tumour", "ssim_outside"]}`` (frames averaged for 4D sequences).
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape.")
    p, t = _as_volume(pred).clamp(0, 1), _as_volume(target).clamp(0, 1)
    local = ssim_map(p[:, 0], t[:, 0])
    out = {"psnr": float(PSNRMetric(max_val=1.0, reduction="mean")(p, t).mean()), "ssim": float(local.mean())}
    if tumour is not None and tumour.any():
        tumour = tumour.bool()
        outside = ~tumour if foreground is None else (foreground.bool() & ~tumour)
        out["ssim_tumour"] = _region_mean(local, tumour)
        out["ssim_outside"] = _region_mean(local, outside)
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
