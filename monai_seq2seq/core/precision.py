"""Mixed-precision helpers shared by training and inference: which autocast a device gets, and whether a CPU has
native bfloat16."""

from __future__ import annotations

import warnings

import torch

__all__ = ["cpu_has_native_bf16", "resolve_autocast", "warn_if_emulated_bf16"]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX); without them oneDNN emulates bf16."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch without the probes
        return False


def warn_if_emulated_bf16(device: torch.device, what: str) -> None:
    """Warn that bf16 autocast on this CPU is emulated (slower than float32, not faster)."""
    if device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn(
            f"{what}: bf16 autocast on a CPU without AVX512-BF16/AMX is emulated and usually slower than float32.",
            stacklevel=3,
        )


def resolve_autocast(device: torch.device | None, amp: bool, dtype: torch.dtype) -> bool:
    """Whether autocast is on for ``device``: CUDA takes bf16 or fp16, a CPU bf16 only.

    Raises:
        ValueError: float16 requested on a device other than CUDA (no gradient scaling there).
    """
    if not amp:
        return False
    kind = "cpu" if device is None else device.type
    if kind == "cuda":
        return True
    if kind != "cpu":
        raise ValueError(f"AMP is supported on CUDA and CPU devices, not {kind!r}.")
    if dtype != torch.bfloat16:
        raise ValueError(f"AMP with {dtype} needs CUDA; on a CPU use amp_dtype='bfloat16' (or amp=False).")
    return True
