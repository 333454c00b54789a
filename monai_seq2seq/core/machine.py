"""The machine a result was measured on: one line for reports, a dict for JSON records.

The single owner of the machine description used by ``make demo``, the benchmarks and the experiments.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

__all__ = ["describe_machine", "machine_info", "device_name", "cpu_model"]


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The CPU model name (``model name`` of ``/proc/cpuinfo`` on Linux), or ``None`` where it cannot be read."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return None


def device_name(device: torch.device | str | None = None) -> str:
    """``"cpu"`` for a CPU device, else the CUDA device's name (``torch.cuda.get_device_name``).

    Args:
        device: a torch device; ``None`` means the current CUDA device when CUDA is available, else ``"cpu"``.
    """
    if device is None:
        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def machine_info(device: torch.device | str | None = None) -> dict[str, Any]:
    """What a benchmark or experiment record should say about the machine.

    Args:
        device: the device the work ran on (named in ``device``); ``None``: the first GPU if there is one.

    Returns:
        ``{"system", "release", "machine", "processor", "cpu_model", "cpu_count", "torch", "torch_threads",
        "cuda", "device", "device_name"}``; ``processor`` is ``platform.processor()`` or, where that is empty, the
        architecture (as in :func:`describe_machine`); ``cpu_model`` may be ``None``.
    """
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    return {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": device_name(device),
    }


def describe_machine(device: torch.device | str | None = None) -> str:
    """One line naming the OS, architecture, CPUs and torch, e.g. ``Linux x86_64 (x86_64), 2 logical CPUs, torch
    2.5.1``; with ``device``, followed by ``, device cuda:0 (NVIDIA H200)`` or ``, device cpu``.

    Args:
        device: the device a result was measured on, or ``None`` to leave it out (the ``make demo`` line).
    """
    cpu = platform.processor() or platform.machine()
    line = f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} logical CPUs, torch {torch.__version__}"
    if device is None:
        return line
    device = torch.device(device)
    where = f"device {device}" + (f" ({device_name(device)})" if device.type == "cuda" else "")
    return f"{line}, {where}"
