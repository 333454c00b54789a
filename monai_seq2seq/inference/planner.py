"""Batch-size planning: the largest batch whose measured peak memory stays within a budget."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["cuda_memory_budget", "cuda_peak_bytes", "plan_batch_size"]


def plan_batch_size(peak_bytes: Callable[[int], int], budget_bytes: float, limit: int) -> int:
    """The largest batch size ``<= limit`` whose ``peak_bytes(batch)`` is within ``budget_bytes``.

    The peak is measured at batch 1 and 2, extrapolated linearly (a fixed part plus a per-sample part), and the
    extrapolated batch is measured too: while it does not fit (over budget, or out of memory) it shrinks by 10%.

    Args:
        peak_bytes: runs the workload at a batch size and returns its peak memory in bytes; may raise
            ``torch.OutOfMemoryError``.
        budget_bytes: memory the workload may use.
        limit: the largest batch worth running (e.g. the number of slabs of a volume).

    Raises:
        RuntimeError: when a batch of one does not fit.
    """

    def fits(batch: int) -> int | None:
        try:
            peak = int(peak_bytes(batch))
        except torch.OutOfMemoryError:
            return None
        return peak if peak <= budget_bytes else None

    one = fits(1)
    if one is None:
        raise RuntimeError(f"one sample does not fit in the memory budget of {budget_bytes / 2**20:.0f} MiB.")
    if limit <= 1:
        return 1
    two = fits(2)
    if two is None:
        return 1
    per_sample = max(two - one, 1)
    batch = int(min(limit, max(2, (budget_bytes - (one - per_sample)) // per_sample)))
    while batch > 2 and fits(batch) is None:
        batch = min(batch - 1, int(batch * 0.9))
    return batch


def cuda_memory_budget(device: torch.device, fraction: float) -> float:
    """``fraction`` of the device memory free now, counting blocks PyTorch's allocator holds but does not use."""
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return fraction * (free + cached)


def cuda_peak_bytes(run: Callable[[], object], device: torch.device) -> int:
    """Peak CUDA memory ``run()`` allocates above what is allocated before it (its results are freed)."""
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    result = run()
    torch.cuda.synchronize(device)
    del result
    return torch.cuda.max_memory_allocated(device) - base
