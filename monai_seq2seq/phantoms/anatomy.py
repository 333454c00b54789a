"""Anatomy and subject variability: the MNI ICBM152 2009a template, smooth random fields and deformations,
bias fields and Rician noise.

The template comes from the installed ``nilearn`` wheel (``nilearn/datasets/data``), read with
:mod:`importlib.resources`; nothing is downloaded. See ``NOTICE.md`` for its copyright.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = [
    "MNI_TEMPLATE_FILES",
    "MniTemplate",
    "load_mni_template",
    "template_on_grid",
    "grid_affine",
    "smooth_random_field",
    "random_displacement",
    "deformed_coordinates",
    "resample",
    "bias_field",
    "add_rician_noise",
    "ramp",
]

MNI_TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
"""Template files inside the ``nilearn.datasets`` package's ``data`` folder."""

_LOCK = threading.Lock()


@dataclass(frozen=True)
class MniTemplate:
    """Tissue fraction maps of the template on some grid.

    Attributes:
        gm, wm, csf: float32 fractions in [0, 1] of shape ``(X, Y, Z)``; ``gm + wm + csf`` is the brain
            (skull-stripped) and at most 1.
        affine: 4x4 voxel-to-RAS (mm) affine of the grid.
        spacing: voxel size in mm, ``(3,)``.
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.gm.shape)


def _template_path(key: str):
    return resources.files("nilearn.datasets").joinpath("data", MNI_TEMPLATE_FILES[key])


@lru_cache(maxsize=1)
def load_mni_template() -> MniTemplate:
    """The 1 mm MNI ICBM152 2009a symmetric template (197 x 233 x 189) as GM/WM/CSF fractions.

    CSF is the brain mask minus GM minus WM, where the brain mask is the skull-stripped T1 template's support
    (``t1 > 0``, holes filled) united with ``gm + wm > 0``.

    Raises:
        FileNotFoundError: the installed ``nilearn`` has no template files.
    """
    with _LOCK:
        arrays, affine = {}, None
        for key in MNI_TEMPLATE_FILES:
            ref = _template_path(key)
            if not ref.is_file():
                raise FileNotFoundError(f"MNI template file {MNI_TEMPLATE_FILES[key]!r} not found in nilearn.")
            with resources.as_file(ref) as path:
                img = nib.load(str(path))
                arrays[key] = np.asarray(img.dataobj, dtype=np.float32)
                affine = img.affine.astype(np.float64) if affine is None else affine
        gm = arrays["gm"] / 255.0
        wm = arrays["wm"] / 255.0
        total = gm + wm
        over = total > 1.0
        gm[over] /= total[over]
        wm[over] /= total[over]
        brain = ndimage.binary_fill_holes((arrays["t1"] > 0) | (total > 0.02))
        csf = np.where(brain, np.clip(1.0 - gm - wm, 0.0, 1.0), 0.0).astype(np.float32)
        zooms = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
        for arr in (gm, wm, csf):
            arr.setflags(write=False)
        return MniTemplate(gm=gm, wm=wm, csf=csf, affine=affine, spacing=zooms)


def grid_affine(affine: np.ndarray, factor: Sequence[float]) -> np.ndarray:
    """Affine of a grid whose voxel ``i`` covers template voxels ``i*f .. (i+1)*f`` (centre ``(i + 0.5) f - 0.5``).

    Args:
        affine: 4x4 affine of the fine grid.
        factor: voxel size ratio (coarse/fine) per axis, ``(3,)``.
    """
    f = np.asarray(factor, dtype=np.float64)
    step = np.eye(4)
    step[:3, :3] = np.diag(f)
    step[:3, 3] = (f - 1.0) / 2.0
    return np.asarray(affine, dtype=np.float64) @ step


@lru_cache(maxsize=4)
def template_on_grid(spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[MniTemplate, np.ndarray]:
    """The template pre-filtered for a grid of voxel size ``spacing`` (mm) and the sampling factor.

    For spacings above the template's 1 mm the fraction maps are low-pass filtered (Gaussian,
    sigma = 0.4 x factor) so that sampling them on the coarse grid approximates partial volume.

    Returns:
        ``(template, factor)``: the filtered maps still on the 1 mm grid and the coarse/fine ratio ``(3,)``.
    """
    base = load_mni_template()
    factor = np.asarray(spacing, dtype=np.float64) / np.asarray(base.spacing)
    if np.all(factor <= 1.0):
        return base, factor
    sigma = tuple(float(0.4 * f) if f > 1.0 else 0.0 for f in factor)
    maps = {k: ndimage.gaussian_filter(getattr(base, k), sigma, truncate=3.0) for k in ("gm", "wm", "csf")}
    return MniTemplate(affine=base.affine, spacing=base.spacing, **maps), factor


def smooth_random_field(shape: Sequence[int], sigma: float | Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise of zero mean and unit standard deviation.

    Args:
        shape: output shape.
        sigma: Gaussian sigma in voxels (correlation length).
        rng: random generator.

    Returns:
        float32 array of ``shape``.
    """
    noise = rng.standard_normal(tuple(int(s) for s in shape), dtype=np.float32)
    field = ndimage.gaussian_filter(noise, sigma, mode="wrap")
    std = float(field.std())
    return (field - field.mean()) / (std if std > 0 else 1.0)


def _bspline_weights(n: int, step: float) -> np.ndarray:
    """Cubic B-spline weights ``(C, n)`` of ``C`` control points every ``step`` voxels (first at ``-step``)."""
    count = int(np.ceil((n - 1) / step)) + 4
    t = np.arange(n, dtype=np.float64)[None, :] / step - (np.arange(count, dtype=np.float64)[:, None] - 1.0)
    a = np.abs(t)
    w = np.where(a < 1.0, 2.0 / 3.0 - a**2 + a**3 / 2.0, np.where(a < 2.0, (2.0 - a) ** 3 / 6.0, 0.0))
    return w.astype(np.float32)


def random_displacement(
    shape: Sequence[int], amplitude: float, rng: np.random.Generator, control_spacing: float = 12.0
) -> np.ndarray:
    """A smooth random displacement field (cubic B-spline free-form deformation).

    Independent Gaussian control-point displacements every ``control_spacing`` voxels are interpolated with
    cubic B-splines (a separable tensor product, so the cost is a few matrix products).

    Args:
        shape: grid shape ``(X, Y, Z)``.
        amplitude: approximate standard deviation of each displacement component, in voxels of the grid.
        rng: random generator.
        control_spacing: distance between control points in voxels.

    Returns:
        float32 ``(3, X, Y, Z)``.
    """
    shape = tuple(int(s) for s in shape)
    wx, wy, wz = (_bspline_weights(n, control_spacing) for n in shape)
    # a 1D cubic B-spline average of unit-variance coefficients has variance ~0.48, 0.48**3 in 3D
    gain = np.float32(amplitude / 0.48**1.5)
    out = np.empty((3, *shape), dtype=np.float32)
    for axis in range(3):
        ctrl = rng.standard_normal((wx.shape[0], wy.shape[0], wz.shape[0])).astype(np.float32) * gain
        tmp = np.tensordot(ctrl, wz, axes=([2], [0]))  # (Cx, Cy, Z)
        tmp = np.tensordot(wy, tmp, axes=([0], [1]))  # (Y, Cx, Z)
        out[axis] = np.tensordot(wx, tmp, axes=([0], [1]))  # (X, Y, Z)
    return out


def deformed_coordinates(
    shape: Sequence[int],
    factor: Sequence[float],
    centre: Sequence[float],
    scale: float,
    displacement: np.ndarray | None,
    start: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """Template voxel coordinates sampled by every voxel of an output grid.

    Output voxel ``i`` sits at template coordinate ``g = (i + 0.5) f - 0.5``; a subject scaled by ``scale``
    about ``centre`` and deformed by ``displacement`` samples the template at ``centre + (g - centre) / scale
    + displacement``.

    Args:
        shape: output grid shape ``(X, Y, Z)``.
        factor: output/template voxel-size ratio ``(3,)``.
        centre: template voxel coordinate of the scaling centre ``(3,)``.
        scale: global size factor of the subject (> 1 is bigger).
        displacement: ``(3, X, Y, Z)`` in template voxels, or ``None``.
        start: index of the first voxel of ``shape`` in the output grid (to work on a crop).

    Returns:
        float32 ``(3, X, Y, Z)``.
    """
    coords = np.empty((3, *shape), dtype=np.float32)
    for axis in range(3):
        g = (np.arange(start[axis], start[axis] + shape[axis], dtype=np.float64) + 0.5) * factor[axis] - 0.5
        line = (centre[axis] + (g - centre[axis]) / scale).astype(np.float32)
        view = [1, 1, 1]
        view[axis] = -1
        coords[axis] = line.reshape(view)
        if displacement is not None:
            coords[axis] += displacement[axis]
    return coords


def resample(volume: np.ndarray, coords: np.ndarray, order: int = 1) -> np.ndarray:
    """Sample ``volume`` at voxel ``coords`` ``(3, *S)`` (linear by default, 0 outside). Returns float32 ``S``."""
    return ndimage.map_coordinates(
        volume, coords, order=order, mode="constant", cval=0.0, prefilter=False, output=np.float32
    )


def _legendre(n: int, degree: int) -> np.ndarray:
    x = np.linspace(-1.0, 1.0, n)
    return np.stack([np.polynomial.legendre.Legendre.basis(d)(x) for d in range(degree + 1)])


def bias_field(shape: Sequence[int], rng: np.random.Generator, strength: float = 0.15, degree: int = 3) -> np.ndarray:
    """A smooth multiplicative bias field ``exp(sum_ijk c_ijk P_i(x) P_j(y) P_k(z))`` (Legendre, i+j+k <= degree).

    Args:
        shape: grid shape ``(X, Y, Z)``.
        rng: random generator.
        strength: standard deviation of the coefficients (0 gives a field of ones).
        degree: maximal total polynomial degree.

    Returns:
        float32 ``(X, Y, Z)``.
    """
    shape = tuple(int(s) for s in shape)
    if strength <= 0:
        return np.ones(shape, dtype=np.float32)
    px, py, pz = (_legendre(n, degree) for n in shape)
    log_field = np.zeros(shape, dtype=np.float32)
    for i in range(degree + 1):
        for j in range(degree + 1 - i):
            # sum over k in one go: a (Z,) profile for this (i, j)
            ks = np.arange(degree + 1 - i - j)
            coef = rng.normal(0.0, strength, size=len(ks)) / (1.0 + i + j + ks)
            if i + j == 0:
                coef[0] = 0.0  # no global offset: the global scale is separate
            zprof = (coef[:, None] * pz[ks]).sum(axis=0).astype(np.float32)
            xy = np.outer(px[i], py[j]).astype(np.float32)
            log_field += xy[:, :, None] * zprof[None, None, :]
    return np.exp(log_field)


def add_rician_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise: ``sqrt((S + n1)^2 + n2^2)``, n ~ N(0, sigma^2).

    Returns:
        float32 array of the image's shape (a new array).
    """
    if sigma <= 0:
        return np.array(image, dtype=np.float32)
    real = rng.standard_normal(image.shape, dtype=np.float32)
    real *= np.float32(sigma)
    real += image
    imag = rng.standard_normal(image.shape, dtype=np.float32)
    imag *= np.float32(sigma)
    return np.hypot(real, imag)


def ramp(signed_distance: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Partial-volume fraction of the inside of a surface: ``clip(0.5 - d / width, 0, 1)``.

    Args:
        signed_distance: signed distance to the surface (negative inside), any unit.
        width: transition width (one voxel in the distance's unit); fractions are exactly 0 or 1 beyond it.
    """
    out = np.asarray(signed_distance, dtype=np.float32) * np.float32(-1.0 / width) + np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)
