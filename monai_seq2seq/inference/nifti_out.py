"""Write synthetic volumes and maps as NIfTI on the source grid, atomically, never over an input."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from monai_seq2seq.core.files import atomic_write, atomic_write_text

__all__ = ["affine_of", "save_volume"]


def affine_of(image: Any) -> np.ndarray:
    """The 4x4 affine of a MetaTensor (``.affine``) or of a dict/obj with ``meta['affine']``; identity otherwise."""
    affine = getattr(image, "affine", None)
    if affine is None and isinstance(getattr(image, "meta", None), Mapping):
        affine = image.meta.get("affine")
    if affine is None:
        return np.eye(4)
    affine = np.asarray(torch.as_tensor(affine).detach().cpu(), dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"expected a 4x4 affine, got shape {affine.shape}.")
    return affine


def save_volume(
    volume: torch.Tensor,
    affine: np.ndarray,
    path: str | Path,
    description: str,
    sidecar: Mapping[str, Any] | None = None,
    frame_axis: str | None = None,
    frame_values: list[float] | None = None,
) -> Path:
    """Save a frames-first volume (T, X, Y, Z) as NIfTI (3D if T = 1, else x, y, z, t) with ``affine``.

    The header's ``descrip`` carries ``description`` (at most 79 characters), qform and sform are set from the
    affine (code 1, scanner), units mm (and s for DCE frames); ``sidecar`` goes to a BIDS-style ``.json`` next to
    it (with ``VolumeTiming`` for DCE frames and a ``.bval`` for DWI frames). Files are written atomically.
    """
    path = Path(path)
    data = torch.as_tensor(volume).detach().float().cpu().numpy()
    if data.ndim != 4:
        raise ValueError(f"save_volume expects (T, X, Y, Z), got shape {data.shape}.")
    array = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
    image = nib.Nifti1Image(array.astype(np.float32), affine)
    image.header["descrip"] = description.encode()[:79]
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec" if frame_axis == "time" else None)
    atomic_write(path, lambda tmp: nib.save(image, str(tmp)))
    stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
    meta = dict(sidecar or {})
    if frame_axis == "time" and frame_values:
        meta["VolumeTiming"] = [float(v) for v in frame_values]
    atomic_write_text(path.with_name(stem + ".json"), json.dumps(meta, indent=2, default=str))
    if frame_axis == "bvalue" and frame_values:
        atomic_write_text(path.with_name(stem + ".bval"), " ".join(f"{v:g}" for v in frame_values) + "\n")
    return path
