"""Calibration of a per-voxel uncertainty against the error it should predict: Spearman rho and top-error AUROC."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["TOP_ERROR_FRACTION", "uncertainty_calibration"]

TOP_ERROR_FRACTION = 0.1
_MAX_VOXELS = 400_000  # Spearman's rank sort on a strided subsample beyond this (a whole 1 mm brain is ~2 M voxels)


def uncertainty_calibration(
    uncertainty: torch.Tensor,
    error: torch.Tensor,
    mask: torch.Tensor | None = None,
    top_fraction: float = TOP_ERROR_FRACTION,
) -> dict[str, float]:
    """How well an uncertainty map ranks the voxels by their absolute error.

    Args:
        uncertainty: per-voxel uncertainty, any shape (e.g. (T, X, Y, Z)).
        error: per-voxel absolute error ``|synthetic - real|``, same shape.
        mask: optional region (broadcastable, e.g. the (X, Y, Z) foreground) the voxels are taken from.
        top_fraction: the voxels with the largest errors (default the top 10%) are the positives of the AUROC.

    Returns:
        ``{"spearman": rho, "auroc_top_error": auc, "voxels": n, "top_fraction": f}``; NaN where undefined
        (constant inputs, no positives).

    Raises:
        ValueError: shapes differ, or ``top_fraction`` is not in (0, 1).
    """
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    if uncertainty.shape != error.shape:
        raise ValueError(f"uncertainty {tuple(uncertainty.shape)} and error {tuple(error.shape)} differ in shape.")
    if not 0.0 < top_fraction < 1.0:
        raise ValueError(f"top_fraction must be in (0, 1), got {top_fraction}.")
    keep = torch.ones_like(error, dtype=torch.bool) if mask is None else mask.bool().expand_as(error)
    u = uncertainty.float()[keep].cpu().numpy()
    e = error.float()[keep].cpu().numpy()
    if u.size > _MAX_VOXELS:
        step = int(np.ceil(u.size / _MAX_VOXELS))
        u, e = u[::step], e[::step]
    out = {
        "spearman": float("nan"),
        "auroc_top_error": float("nan"),
        "voxels": int(u.size),
        "top_fraction": top_fraction,
    }
    if u.size < 2 or np.ptp(u) == 0 or np.ptp(e) == 0:
        return out
    out["spearman"] = float(spearmanr(u, e)[0])
    positives = e >= np.quantile(e, 1.0 - top_fraction)
    if positives.all() or not positives.any():
        return out
    out["auroc_top_error"] = float(roc_auc_score(positives, u))
    return out
