"""The generated-subject record shared by the brain and breast simulators."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PhantomSubject"]


@dataclass
class PhantomSubject:
    """One generated subject.

    Attributes:
        subject: subject id.
        images: sequence name -> float32 image, 3D ``(X, Y, Z)`` or 4D frames-first ``(T, X, Y, Z)``.
        label: uint8 segmentation ``(X, Y, Z)``.
        unique: sequence name -> uint8 planted-region mask ``(X, Y, Z)``.
        affine: 4x4 voxel-to-RAS affine (mm).
        frame_values: 4D sequence name -> frame values (s or s/mm^2).
        info: generation parameters (tumour centre, radii, concentrations, kinetic type, ...).
        fractions: tissue fraction maps when requested.
    """

    subject: str
    images: dict[str, np.ndarray]
    label: np.ndarray
    unique: dict[str, np.ndarray]
    affine: np.ndarray
    frame_values: dict[str, list[float]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    fractions: dict[str, np.ndarray] | None = None
