"""What the experiment commands share: the brain data (phantom or a real datalist) and the machine line."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["BRAIN_SEQUENCES", "machine", "datalist_split", "brain_loader", "brain_normalise"]

BRAIN_SEQUENCES = ("T1", "T1Gd", "T2", "FLAIR")


def machine(device: torch.device | str | None = None) -> str:
    """One line naming the OS, CPU, torch and the device a result was measured on."""
    device = torch.device(device) if device is not None else None
    cpu = platform.processor() or platform.machine()
    if device is None:
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
        where = gpu
    else:
        where = f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'no GPU used'})"
    return (
        f"{platform.system()} {platform.release()} {cpu}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__}, {where}"
    )


def datalist_split(path: str | os.PathLike, keys: Sequence[str], purpose: str = "this experiment") -> tuple[list, str]:
    """The first non-empty list among ``keys`` of a brain datalist, with absolute, checked paths.

    Args:
        path: a datalist JSON (``monai_seq2seq.data.load_datalist`` format).
        keys: split names to try in order, e.g. ``("testing", "validation")``.
        purpose: named in the error when the datalist is for another protocol.

    Returns:
        ``(entries, key)``.

    Raises:
        DatalistError: missing JSON, no non-empty list among ``keys``, a listed file that does not exist.
        ValueError: the datalist is for a protocol other than ``brain``.
    """
    from monai_seq2seq.data import DatalistError, load_datalist

    raw = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
    protocol = raw.get("protocol", "brain")
    if protocol != "brain":
        raise ValueError(f"datalist {str(path)!r} is for protocol {protocol!r}; {purpose} runs on the brain protocol.")
    for key in keys:
        if raw.get(key):
            return load_datalist(path, key), key
    if not raw:
        load_datalist(path, keys[0])  # raises DatalistError naming the missing file
    raise DatalistError(f"datalist {str(path)!r} has no non-empty {' / '.join(keys)} list.")


def brain_loader(keys: Sequence[str] = BRAIN_SEQUENCES):
    """``LoadImaged`` of datalist entries (channel first, our NIfTI reader); missing keys are allowed."""
    from monai.transforms import LoadImaged

    from monai_seq2seq.io import Seq2SeqNiftiReader

    return LoadImaged(
        list(keys), reader=Seq2SeqNiftiReader(), ensure_channel_first=True, image_only=True, allow_missing_keys=True
    )


def brain_normalise(keys: Sequence[str] = BRAIN_SEQUENCES):
    """The brain bundles' normalisation: percentiles 0.5/99.5 of the non-zero voxels to [0, 1]."""
    from monai.transforms import Compose

    from monai_seq2seq.transforms import PercentileScaleIntensityd

    return Compose(
        [PercentileScaleIntensityd(list(keys), lower=0.5, upper=99.5, nonzero=True, allow_missing_keys=True)]
    )
