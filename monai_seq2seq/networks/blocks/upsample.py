"""The decoders' x2 upsampling: MONAI's non-trainable ``UpSample`` in nearest or (bi/tri)linear mode."""

from __future__ import annotations

import torch.nn as nn
from monai.networks.blocks import UpSample

__all__ = ["UPSAMPLE_MODES", "check_upsample_mode", "get_upsample_layer"]

# accepted names -> the spatial dims they are valid for (None: any); MONAI's InterpolateMode spelling
UPSAMPLE_MODES: dict[str, int | None] = {"nearest": None, "linear": None, "bilinear": 2, "trilinear": 3}


def check_upsample_mode(mode: str, spatial_dims: int) -> str:
    """The canonical name of ``mode``: ``"nearest"`` or ``"linear"`` (bilinear in 2D, trilinear in 3D).

    Args:
        mode: ``"nearest"``, ``"linear"``, or the explicit ``"bilinear"`` (2D) / ``"trilinear"`` (3D).
        spatial_dims: the network's spatial dimensions.

    Raises:
        ValueError: an unknown mode, or an explicit linear mode for the other dimension (names the fix).
    """
    name = str(mode).lower()
    if name not in UPSAMPLE_MODES:
        raise ValueError(
            f"upsample_mode={mode!r} is not supported; use 'nearest' or 'linear' (bilinear in 2D, trilinear in 3D)."
        )
    dims = UPSAMPLE_MODES[name]
    if dims is not None and dims != spatial_dims:
        raise ValueError(
            f"upsample_mode={mode!r} is for {dims}D networks, this one has spatial_dims={spatial_dims}; "
            "use 'linear', which picks bilinear in 2D and trilinear in 3D."
        )
    return "nearest" if name == "nearest" else "linear"


def get_upsample_layer(spatial_dims: int, mode: str = "nearest") -> nn.Module:
    """A parameter-free x2 upsampling (MONAI ``UpSample``, ``"nontrainable"``), ``align_corners=False`` when linear.

    Args:
        spatial_dims: number of spatial dimensions.
        mode: see :func:`check_upsample_mode`.

    Shapes:
        (B, C, *spatial) -> (B, C, *spatial * 2).

    Raises:
        ValueError: an unsupported ``mode``.
    """
    mode = check_upsample_mode(mode, spatial_dims)
    return UpSample(
        spatial_dims,
        scale_factor=2,
        mode="nontrainable",
        pre_conv=None,
        interp_mode=mode,
        align_corners=None if mode == "nearest" else False,
    )
