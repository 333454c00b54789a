"""Rigid or affine co-registration of a subject's sequences to a reference sequence with ITK's elastix.

Sequences of one subject that are not aligned (another session, motion between series, a header that disagrees)
cannot be paired voxel by voxel. :class:`RegisterToReference` finds the transform that maps the reference's world
coordinates onto the image's by maximising Mattes mutual information (the contrasts differ) over a smoothing
pyramid (multi-resolution), then resamples every frame of the image onto the reference grid with MONAI's
``SpatialResample``. The optimiser draws its samples with a fixed seed, so a run is repeatable. The transform found
is written into the image's meta under :data:`REGISTRATION_KEY`.

elastix comes from the ``itk-elastix`` wheels (ITK's Python packaging of elastix); it is imported at the first
registration, so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, SpatialResample, Transform
from monai.utils import TransformBackends, optional_import

from .slices import present_keys
from .utils import FRAME_AXIS_KEY, FRAME_VALUES_KEY, describe, key_label

__all__ = [
    "REGISTRATION_KEY",
    "TRANSFORMS",
    "elastix_parameter_map",
    "load_itk_elastix",
    "RegisterToReference",
    "RegisterToReferenced",
    "RegisterToReferenceD",
    "RegisterToReferenceDict",
]

REGISTRATION_KEY = "registration"
"""Meta key of a registered image: the transform found (parameters, matrix, translation in mm, rotation in degrees)."""
TRANSFORMS = {"rigid": "EulerTransform", "affine": "AffineTransform"}
"""Registration models: 6 (rigid: 3 rotations, 3 translations) or 12 (affine) parameters."""
_RAS_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def load_itk_elastix():
    """The ``itk`` module with elastix loaded (its first use takes seconds: ITK loads its wrapped libraries)."""
    itk, found = optional_import("itk")
    if not found or not hasattr(itk, "ElastixRegistrationMethod"):
        raise ImportError(
            "registration needs ITK's elastix: `pip install itk-elastix` (a dependency of monai-seq2seq; "
            "reinstall the package)."
        )
    return itk


def elastix_parameter_map(
    transform: str = "rigid", resolutions: int = 3, iterations: int = 256, samples: int = 4096, seed: int = 0
) -> dict[str, list[str]]:
    """The elastix parameters of :class:`RegisterToReference` (a plain dict; elastix's defaults for the rest).

    Mattes mutual information (32 histogram bins), ``resolutions`` levels of a smoothing pyramid, adaptive
    stochastic gradient descent with ``iterations`` per level on ``samples`` voxels drawn at random coordinates
    from seed ``seed`` (repeatable), automatic parameter scales, no result image (MONAI resamples).
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {sorted(TRANSFORMS)}, got {transform!r}.")
    for name, value in (("resolutions", resolutions), ("iterations", iterations), ("samples", samples)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    return {
        "Registration": ["MultiResolutionRegistration"],
        "Transform": [TRANSFORMS[transform]],
        "Metric": ["AdvancedMattesMutualInformation"],
        "NumberOfHistogramBins": ["32"],
        "NumberOfResolutions": [str(int(resolutions))],
        "FixedImagePyramid": ["FixedSmoothingImagePyramid"],
        "MovingImagePyramid": ["MovingSmoothingImagePyramid"],
        "Optimizer": ["AdaptiveStochasticGradientDescent"],
        "AutomaticParameterEstimation": ["true"],
        "AutomaticScalesEstimation": ["true"],
        "AutomaticTransformInitialization": ["false"],  # start from the headers' alignment
        "MaximumNumberOfIterations": [str(int(iterations))],
        "ImageSampler": ["RandomCoordinate"],
        "NumberOfSpatialSamples": [str(int(samples))],
        "NewSamplesEveryIteration": ["true"],
        "RandomSeed": [str(int(seed))],
        "Interpolator": ["LinearInterpolator"],
        "ResampleInterpolator": ["FinalLinearInterpolator"],
        "Resampler": ["DefaultResampler"],
        "DefaultPixelValue": ["0"],
        "WriteResultImage": ["false"],
        "HowToCombineTransforms": ["Compose"],
    }


def _mean_frame(img: MetaTensor):
    """The frame mean of a (T, X, Y, Z) MetaTensor as an ITK image in its world position (LPS, as ITK has it)."""
    from monai.data.itk_torch_bridge import metatensor_to_itk_image

    mean = MetaTensor(img.as_tensor().float().mean(0).detach().cpu(), affine=img.affine.detach().cpu())
    return metatensor_to_itk_image(mean, channel_dim=None, dtype=np.float32)


def _matrix_ras(itk_transform) -> np.ndarray:
    """The 4x4 matrix (RAS world, mm) of an ITK transform of LPS points, read off by mapping four points."""
    points = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mapped = np.array([list(itk_transform.TransformPoint([float(v) for v in p])) for p in points])
    lps = np.eye(4)
    lps[:3, 3] = mapped[0]
    lps[:3, :3] = (mapped[1:] - mapped[0]).T
    return _RAS_LPS @ lps @ _RAS_LPS


def _rotation_deg(matrix: np.ndarray) -> float:
    """Angle of the rotation in a 3x3 matrix (the orthogonal factor of its polar decomposition for an affine)."""
    u, _, vt = np.linalg.svd(matrix)
    rotation = u @ vt
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))


class RegisterToReference(Transform):
    """Co-register an image to a reference image (elastix, mutual information) and resample it onto its grid.

    The transform ``T`` maps a point of the reference's world (RAS, mm) to the matching point of the image's world:
    the image's voxel ``v`` is taken to lie at ``T^-1(A v)`` (``A`` its affine), and every frame is resampled there
    onto the reference grid. 4D images and references are registered by their frame means; all frames of the image
    move together. Deterministic: the random sampler has a fixed seed (same inputs, same threads, same result).

    Args:
        transform: ``"rigid"`` (3 rotations, 3 translations) or ``"affine"`` (12 parameters).
        resolutions: levels of the smoothing pyramid (coarse to fine).
        iterations: optimiser iterations per level.
        samples: voxels sampled per iteration (random coordinates).
        seed: seed of the sampler.
        interp: interpolation of the resampling (``"bilinear"`` for images, ``"nearest"`` for labels).
        padding_mode: value outside the image's FOV (``"zeros"``: background).

    Shapes:
        ``img`` ``(T, X, Y, Z)``, ``reference`` ``(T', X', Y', Z')`` MetaTensors -> ``(T, X', Y', Z')``.

    The output's ``meta["registration"]``: ``transform``, ``reference``, ``metric``, ``resolutions``,
    ``parameters`` (elastix's ``TransformParameters``), ``center_of_rotation_lps_mm``, ``matrix_ras`` (4x4,
    reference world -> image world), ``translation_mm`` (how far the reference's FOV centre maps, RAS),
    ``translation_norm_mm`` and ``rotation_deg``.

    Raises:
        TypeError: an input without an affine (not a MetaTensor).
        ValueError: not channel-first 4D, an unknown transform.
        ImportError: ``itk-elastix`` is not installed.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        transform: str = "rigid",
        resolutions: int = 3,
        iterations: int = 256,
        samples: int = 4096,
        seed: int = 0,
        interp: str = "bilinear",
        padding_mode: str = "zeros",
    ) -> None:
        self.parameters = elastix_parameter_map(transform, resolutions, iterations, samples, seed)
        self.transform = transform
        self.resolutions = int(resolutions)
        self.resampler = SpatialResample(mode=interp, padding_mode=padding_mode)

    def _check(self, img: NdarrayOrTensor, label: str) -> None:
        if not isinstance(img, MetaTensor):
            raise TypeError(f"{label}: registration needs a MetaTensor with its affine, got {type(img).__name__}.")
        if img.ndim != 4:
            raise ValueError(f"{label}: expected a channel-first (T, X, Y, Z) image, got shape {tuple(img.shape)}.")

    def register(self, img: MetaTensor, reference: MetaTensor) -> tuple[np.ndarray, dict[str, list[float]]]:
        """The 4x4 RAS matrix of the transform from the reference's world to the image's, and elastix's numbers."""
        itk = load_itk_elastix()
        parameter_object = itk.ParameterObject.New()
        parameter_object.AddParameterMap(dict(self.parameters))
        method = itk.ElastixRegistrationMethod.New(
            _mean_frame(reference), _mean_frame(img), parameter_object=parameter_object, log_to_console=False
        )
        method.UpdateLargestPossibleRegion()
        found = method.GetTransformParameterObject().GetParameterMap(0)
        numbers = {
            "parameters": [float(v) for v in found["TransformParameters"]],
            "center_of_rotation_lps_mm": [float(v) for v in found.get("CenterOfRotationPoint", ())],
        }
        return _matrix_ras(method.GetCombinationTransform()), numbers

    def __call__(
        self,
        img: NdarrayOrTensor,
        reference: NdarrayOrTensor,
        name: str | None = None,
        reference_name: str | None = None,
    ) -> MetaTensor:
        label, ref_label = describe(img, name), describe(reference, reference_name)
        self._check(img, label)
        self._check(reference, ref_label)
        matrix, numbers = self.register(img, reference)
        centre = reference.affine.double().cpu().numpy() @ np.append((np.asarray(reference.shape[1:]) - 1) / 2, 1.0)
        translation = (matrix @ centre - centre)[:3]
        moved = img.clone()
        moved.affine = torch.as_tensor(np.linalg.inv(matrix), dtype=torch.float64) @ img.affine.double().cpu()
        out = self.resampler(moved, dst_affine=reference.affine, spatial_size=tuple(reference.shape[1:]))
        out.meta.update({k: img.meta[k] for k in (FRAME_AXIS_KEY, FRAME_VALUES_KEY) if k in img.meta})
        out.meta[REGISTRATION_KEY] = {
            "transform": self.transform,
            "reference": ref_label,
            "metric": "AdvancedMattesMutualInformation",
            "resolutions": self.resolutions,
            **numbers,
            "matrix_ras": matrix.tolist(),
            "translation_mm": [float(v) for v in translation],
            "translation_norm_mm": float(np.linalg.norm(translation)),
            "rotation_deg": _rotation_deg(matrix[:3, :3]),
        }
        return out


class RegisterToReferenced(MapTransform):
    """Dictionary twin of :class:`RegisterToReference`: every present sequence onto ``reference_key``'s grid.

    Args:
        keys: sequence keys to register (absent ones: see ``allow_missing_keys``; sequences left out of
            ``data["available"]`` are always skipped).
        reference_key: the sequence the others are registered to; ``None``: the first present key of ``keys``
            (protocol order in the bundles, as :class:`~monai_seq2seq.transforms.MatchGridd`).
        transform, resolutions, iterations, samples, seed: see :class:`RegisterToReference`.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.

    The reference itself is left as it is; labels are not moved (they belong to the reference grid in the
    layouts the datalists read; match them with ``MatchGridd`` afterwards).
    """

    backend = RegisterToReference.backend

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str | None = None,
        transform: str = "rigid",
        resolutions: int = 3,
        iterations: int = 256,
        samples: int = 4096,
        seed: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference_key = reference_key
        self.registration = RegisterToReference(transform, resolutions, iterations, samples, seed)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = present_keys(d, list(self.key_iterator(d)))
        ref_key = self.reference_key if self.reference_key is not None else (keys[0] if keys else None)
        if ref_key is None:
            return d
        if ref_key not in d:
            raise KeyError(f"reference sequence {ref_key!r} is missing from subject {d.get('subject', '?')!r}.")
        ref_label = key_label(ref_key, d[ref_key])
        for key in keys:
            if key != ref_key:
                d[key] = self.registration(d[key], d[ref_key], name=key_label(key, d[key]), reference_name=ref_label)
        return d


RegisterToReferenceD = RegisterToReferenceDict = RegisterToReferenced
