"""NIfTI writer: 3D and 4D images with sform/qform from the affine, written atomically, frame values as sidecars.

:func:`save_nifti` writes an array as it lies on disk (``(X, Y, Z)`` or ``(X, Y, Z, T)``); :func:`save_volume`
writes a frames-first tensor ``(T, X, Y, Z)`` (a network output, a differentiation map) as float32 with a header
description and its BIDS-style sidecars (:mod:`monai_seq2seq.io.sidecar`). Both set sform and qform from the
affine (code 1, scanner) and write through a temporary file in the target folder, so that a failure leaves no
partial file behind.

Example::

    save_volume(prediction, affine_of(reference), "out/s1_T1Gd_synthetic.nii.gz", "SYNTHETIC T1Gd from T1+T2",
                sidecar={"Synthetic": True})
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from monai_seq2seq.core.files import atomic_write
from monai_seq2seq.core.protocols import FrameAxis

from .sidecar import validate_frame_values, write_frame_info, write_sidecar_json

__all__ = ["affine_of", "save_nifti", "save_volume"]


def affine_of(image: Any) -> np.ndarray:
    """The 4x4 affine of a MetaTensor (``.affine``) or of a dict/obj with ``meta['affine']``; identity otherwise.

    Raises:
        ValueError: the affine found is not 4x4.
    """
    affine = getattr(image, "affine", None)
    if affine is None and isinstance(getattr(image, "meta", None), Mapping):
        affine = image.meta.get("affine")
    if affine is None:
        return np.eye(4)
    affine = np.asarray(torch.as_tensor(affine).detach().cpu(), dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"expected a 4x4 affine, got shape {affine.shape}.")
    return affine


def save_nifti(
    array: np.ndarray,
    affine: np.ndarray,
    path: str | os.PathLike,
    overwrite: bool = False,
    frame_step: float | None = None,
    description: str | None = None,
    time_unit: str | None = "sec",
) -> Path:
    """Save a 3D ``(X, Y, Z)`` or 4D ``(X, Y, Z, T)`` array as NIfTI atomically (the folder is created).

    Args:
        array: the data (dtype kept: float32 images, uint8 masks).
        affine: 4x4 voxel-to-RAS affine; written as both sform and qform (code 1, scanner).
        path: target ``.nii`` or ``.nii.gz``.
        overwrite: replace an existing file; otherwise an existing file raises ``FileExistsError``.
        frame_step: ``pixdim[4]`` of a 4D image (e.g. seconds between DCE frames).
        description: the header's ``descrip`` (cut to 79 bytes); ``None`` leaves it empty.
        time_unit: the header's time unit (``"sec"``, ``"msec"``, ``None`` for unknown); the space unit is mm.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: the folder of ``path`` cannot be created or written to.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it.")
    image = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    if description is not None:
        image.header["descrip"] = description.encode()[:79]
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    image.header.set_xyzt_units("mm", time_unit)
    if array.ndim == 4 and frame_step is not None:
        zooms = list(image.header.get_zooms())
        zooms[3] = float(frame_step)
        image.header.set_zooms(zooms)
    return atomic_write(path, lambda tmp: nib.save(image, str(tmp)))


def save_volume(
    volume: torch.Tensor,
    affine: np.ndarray,
    path: str | os.PathLike,
    description: str,
    sidecar: Mapping[str, Any] | None = None,
    frame_axis: str | None = None,
    frame_values: list[float] | None = None,
) -> Path:
    """Save a frames-first volume (T, X, Y, Z) as float32 NIfTI (3D if T = 1, else x, y, z, t) with ``affine``.

    The header's ``descrip`` carries ``description`` (at most 79 bytes), qform and sform are set from the
    affine (code 1, scanner), units mm (and s for DCE frames); ``sidecar`` goes to a BIDS-style ``.json`` next to
    it (with ``VolumeTiming`` for DCE frames, and a ``.bval`` beside it for DWI frames). An existing file is
    replaced (callers check ``overwrite``). Files are written atomically.

    Shapes:
        volume: ``(T, X, Y, Z)``.

    Raises:
        ValueError: ``volume`` is not 4D.
        FrameValuesError: ``frame_values`` do not fit ``frame_axis`` (duplicates, times not increasing, negative
            b-values); nothing is written then.
    """
    path = Path(path)
    data = torch.as_tensor(volume).detach().float().cpu().numpy()
    if data.ndim != 4:
        raise ValueError(f"save_volume expects (T, X, Y, Z), got shape {data.shape}.")
    with_frames = frame_axis in FrameAxis.ALL and bool(frame_values)
    if with_frames:
        validate_frame_values(frame_axis, frame_values, source=f"frame values of {str(path)!r}")
    array = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
    time_unit = "sec" if frame_axis == FrameAxis.TIME else None
    save_nifti(array.astype(np.float32), affine, path, overwrite=True, description=description, time_unit=time_unit)
    meta = dict(sidecar or {})
    if with_frames:
        write_frame_info(path, frame_axis, frame_values, extra=meta)
    else:
        write_sidecar_json(path, meta)
    return path
