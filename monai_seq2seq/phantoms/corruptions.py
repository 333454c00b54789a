"""Simple acquisition corruptions of a normalised volume, to test that quality checks notice them.

Each takes a frames-first ``(T, X, Y, Z)`` volume in [0, 1] and returns a corrupted copy in [0, 1]:

- :func:`add_noise`: Rician-like noise (magnitude of the volume plus Gaussian noise);
- :func:`bias_field`: a smooth multiplicative field, linear in each axis in the log domain (coil shading);
- :func:`misalign`: a rigid shift by whole voxels, background shifted in (patient motion between series).
"""

from __future__ import annotations

import torch

__all__ = ["CORRUPTIONS", "add_noise", "bias_field", "corrupt", "misalign"]


def add_noise(volume: torch.Tensor, sigma: float = 0.08, seed: int = 0) -> torch.Tensor:
    """``|v + n|`` with ``n ~ N(0, sigma^2)``, clipped to [0, 1].

    Shapes:
        volume: (T, X, Y, Z).
    """
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(volume.shape, generator=g) * sigma
    return (volume.float() + noise).abs().clamp(0, 1)


def bias_field(volume: torch.Tensor, strength: float = 0.4) -> torch.Tensor:
    """Multiply by ``exp(strength * (x + y + z) / 3)`` with x, y, z in [-1, 1] (about x0.67 to x1.5 corner to
    corner for 0.4), clipped to [0, 1].

    Shapes:
        volume: (T, X, Y, Z).
    """
    axes = [torch.linspace(-1, 1, n) for n in volume.shape[1:]]
    grid = torch.meshgrid(*axes, indexing="ij")
    field = torch.exp(strength * (grid[0] + grid[1] + grid[2]) / 3)
    return (volume.float() * field).clamp(0, 1)


def misalign(volume: torch.Tensor, shift: tuple[int, int, int] = (4, 3, 0)) -> torch.Tensor:
    """Shift by whole voxels along X, Y, Z (zeros shifted in).

    Shapes:
        volume: (T, X, Y, Z).
    """
    out = torch.zeros_like(volume, dtype=torch.float32)
    src, dst = [slice(None)], [slice(None)]
    for s, n in zip(shift, volume.shape[1:], strict=True):
        src.append(slice(max(0, -s), n - max(0, s)))
        dst.append(slice(max(0, s), n - max(0, -s)))
    out[tuple(dst)] = volume.float()[tuple(src)]
    return out


CORRUPTIONS = {"noise": add_noise, "bias": bias_field, "misalign": misalign}


def corrupt(volume: torch.Tensor, kind: str) -> torch.Tensor:
    """Apply the corruption named ``kind`` (``noise``, ``bias`` or ``misalign``) with its default strength.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose one of {sorted(CORRUPTIONS)}.")
    return CORRUPTIONS[kind](volume)
