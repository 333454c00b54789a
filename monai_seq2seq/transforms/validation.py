"""Input checks that fail early with a specific message: grids, finiteness, frame counts, protocol fit.

Every check names the sequence (and its file, when the meta knows it) and says what to do about it.

Grids: :func:`compare_grids` is the library's one comparison of two grids by shape and affine, and
:func:`same_grid` its one test of "same grid within tolerance" (bundle preprocessing, synthesiser, analysis).
:class:`MatchGrid` refuses another grid (``mode="raise"``), or resamples a sequence on another grid of the same
frame of reference to the reference sequence (``mode="resample"``) and refuses one that is not aligned, naming both
sequences, the FOV offset (mm) and the rotation (degrees); such a pair is co-registered by
:class:`~monai_seq2seq.transforms.registration.RegisterToReference` when the user asks (``--register rigid``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, ResampleToMatch, Transform
from monai.utils import TransformBackends

from monai_seq2seq.core.errors import FrameValuesError
from monai_seq2seq.core.protocols import Protocol, SequenceSpec, get_protocol

from .slices import present_keys
from .utils import FRAME_AXIS_KEY, FRAME_VALUES_KEY, check_finite, describe, key_label

__all__ = [
    "GRID_ATOL_MM",
    "MAX_OFFSET_MM",
    "MAX_ROTATION_DEG",
    "RESAMPLED_KEY",
    "GridComparison",
    "compare_grids",
    "same_grid",
    "grid_difference",
    "check_same_grid",
    "GridMismatchError",
    "MatchGrid",
    "MatchGridd",
    "CheckSequence",
    "CheckSequenced",
    "MatchGridD",
    "MatchGridDict",
    "CheckSequenceD",
    "CheckSequenceDict",
]


RESAMPLED_KEY = "resampled_to_reference"
"""Meta key that :class:`MatchGrid` writes when it resamples an image: from which grid, to which sequence."""
GRID_ATOL_MM = 0.01
"""Default tolerance of :func:`same_grid`: voxel centres of one index at most this far apart (mm)."""
MAX_OFFSET_MM = 5.0
"""Default :func:`compare_grids` limit on the FOV offset that a difference in coverage does not explain (mm)."""
MAX_ROTATION_DEG = 3.0
"""Default :func:`compare_grids` limit on the rotation between two grids once axis order and flips are taken out."""
NESTED_MARGIN_MM = 0.5
"""How far a FOV may stick out of another and still count as inside it along an axis (mm)."""

_FIX = (
    "Co-register them (`--register rigid` on the bundle commands, or RegisterToReferenced), or, if the headers "
    "are right and the subject did not move, raise the limit (MatchGridd(max_offset_mm=..., max_rotation_deg=...), "
    "bundle id `match_grid#max_offset_mm`)."
)


class GridMismatchError(ValueError):
    """Two sequences of one subject are not on the same voxel grid (shape or affine), or are not aligned."""


def _affine(img: NdarrayOrTensor) -> np.ndarray | None:
    affine = getattr(img, "affine", None)
    return None if affine is None else np.asarray(torch.as_tensor(affine).detach().cpu(), dtype=np.float64)


@dataclass(frozen=True)
class GridComparison:
    """How the grid of an image relates to a reference grid (see :func:`compare_grids` for the rule).

    Attributes:
        shape, reference_shape: spatial shapes.
        spacing, reference_spacing: voxel sizes (mm), ``None`` without an affine.
        max_displacement_mm: same shapes: the largest distance between the world positions of one voxel index in
            the two grids (``None`` for different shapes or without affines).
        max_affine_difference: largest absolute difference of the 4x4 affines' entries (``None`` without affines).
        centre_offset_mm: world (RAS) vector from the reference FOV centre to the image's (zeros without affines).
        unexplained_offset_mm: length of the offset along the reference axes where neither FOV contains the other.
        rotation_deg: rotation between the grids' axes after axis permutations and flips are taken out.
        nested: whether one FOV contains the other along every axis (a slab, a zoom, an angulated sub-volume).
        same: same grid within the tolerance: nothing to do.
        aligned: same, or on another grid of one frame of reference: resampling to the reference is safe.
    """

    shape: tuple[int, ...]
    reference_shape: tuple[int, ...]
    spacing: tuple[float, ...] | None
    reference_spacing: tuple[float, ...] | None
    max_displacement_mm: float | None
    max_affine_difference: float | None
    centre_offset_mm: tuple[float, ...]
    unexplained_offset_mm: float
    rotation_deg: float
    nested: bool
    same: bool
    aligned: bool

    @property
    def centre_distance_mm(self) -> float:
        """Distance between the two FOV centres (mm)."""
        return float(np.linalg.norm(self.centre_offset_mm))

    def describe(self) -> str:
        """One line: what differs (shape, spacing, affine), the FOV offset (mm) and the rotation (degrees)."""
        if self.same:
            return "same grid"
        parts = []
        if self.shape != self.reference_shape:
            parts.append(f"spatial shape {self.shape} vs {self.reference_shape}")
        if self.spacing is None or self.reference_spacing is None:
            return "; ".join(parts + ["no affine to compare or resample by"])
        if not np.allclose(self.spacing, self.reference_spacing, atol=1e-3):
            parts.append(f"spacing {_mm(self.spacing)} vs {_mm(self.reference_spacing)} mm")
        if self.max_affine_difference is not None and self.max_affine_difference > 0:
            parts.append(f"affine differs by up to {self.max_affine_difference:.4g} (mm or direction cosine)")
        offset = ", ".join(f"{v:+.1f}" for v in self.centre_offset_mm)
        parts.append(
            f"FOV centres {self.centre_distance_mm:.1f} mm apart (RAS {offset} mm; {self.unexplained_offset_mm:.1f} "
            f"mm not explained by a different coverage), rotated {self.rotation_deg:.1f} degrees"
        )
        return "; ".join(parts)


def _mm(values: Sequence[float]) -> str:
    return "x".join(f"{v:.3g}" for v in values)


def _directions(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel sizes and unit axis directions (columns) of a 4x4 affine."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    return spacing, affine[:3, :3] / np.where(spacing > 0, spacing, 1.0)


def _axis_match(directions: np.ndarray, reference_directions: np.ndarray) -> tuple[np.ndarray, float]:
    """For each reference axis the image axis along it, and the residual rotation (degrees) after that relabelling.

    The relabelling is the signed permutation nearest to the image's axes written in the reference's axes, so an
    axial and a sagittal acquisition of one head differ by no rotation; what remains is an angle of rotation.
    """
    q = reference_directions.T @ directions  # column j: image axis j in reference axes
    rows = np.abs(q).argmax(axis=0)
    if len(set(rows.tolist())) != 3:  # no clear axis correspondence (about 45 degrees): measure the whole rotation
        rows = np.arange(3)
    perm = np.zeros((3, 3))
    perm[rows, np.arange(3)] = np.sign(q[rows, np.arange(3)]) + (q[rows, np.arange(3)] == 0)
    residual = q @ perm.T
    cos = np.clip((np.trace(residual) - 1.0) / 2.0, -1.0, 1.0)
    axis_of = np.empty(3, dtype=int)
    axis_of[rows] = np.arange(3)
    return axis_of, float(np.degrees(np.arccos(cos)))


def _box(affine: np.ndarray, shape: Sequence[int], into: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box of a grid's FOV (voxel edges) in the voxel coordinates of the grid whose affine is ``into``."""
    corners = np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in shape], indexing="ij")).reshape(3, -1)
    world = affine[:3, :3] @ corners + affine[:3, 3:]
    local = np.linalg.solve(into[:3, :3], world - into[:3, 3:])
    return local.min(axis=1), local.max(axis=1)


def _nested_axes(a: np.ndarray, shape_a, b: np.ndarray, shape_b, axis_of: np.ndarray) -> np.ndarray:
    """Per axis of grid ``b``: whether one FOV contains the other along it (within :data:`NESTED_MARGIN_MM`)."""
    spacing_a, spacing_b = _directions(a)[0], _directions(b)[0]
    lo, hi = _box(a, shape_a, into=b)  # a's FOV in b's voxel coordinates
    a_in_b = ((lo + 0.5) * spacing_b >= -NESTED_MARGIN_MM) & (
        (np.asarray(shape_b) - 0.5 - hi) * spacing_b >= -NESTED_MARGIN_MM
    )
    lo, hi = _box(b, shape_b, into=a)
    b_in_a = ((lo + 0.5) * spacing_a >= -NESTED_MARGIN_MM) & (
        (np.asarray(shape_a) - 0.5 - hi) * spacing_a >= -NESTED_MARGIN_MM
    )
    return a_in_b | b_in_a[axis_of]


def _centre(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    return affine[:3, :3] @ ((np.asarray(shape, dtype=np.float64) - 1) / 2) + affine[:3, 3]


def _max_displacement(a: np.ndarray, b: np.ndarray, shape: Sequence[int]) -> float:
    """Largest distance between the world positions of one voxel index in two grids of one shape (at a corner)."""
    corners = np.array(np.meshgrid(*[(0.0, n - 1.0) for n in shape], indexing="ij")).reshape(3, -1)
    diff = (a[:3, :3] - b[:3, :3]) @ corners + (a[:3, 3:] - b[:3, 3:])
    return float(np.linalg.norm(diff, axis=0).max())


def compare_grids(
    img: NdarrayOrTensor,
    reference: NdarrayOrTensor,
    atol: float = GRID_ATOL_MM,
    max_offset_mm: float = MAX_OFFSET_MM,
    max_rotation_deg: float = MAX_ROTATION_DEG,
) -> GridComparison:
    """Compare the grids (shape and affine) of two channel-first images: same, aligned or not aligned.

    The rule, from the headers alone:

    - **same**: equal spatial shapes, and every voxel index lies at most ``atol`` mm apart in the two grids
      (without affines: equal shapes).
    - **aligned** (one frame of reference, another grid: resample): the axes are matched first (an axial and a
      sagittal series differ by axis order and flips, not by a rotation). Then either one FOV contains the other
      along every axis (a slab, a zoom, an angulated sub-volume: any offset and angle), or both the FOV offset
      along the axes where neither FOV contains the other is at most ``max_offset_mm`` and the remaining rotation
      is at most ``max_rotation_deg``.
    - **not aligned** otherwise (e.g. the same FOV shifted by 10 mm or turned by 5 degrees): resampling by the
      headers would pair voxels of different anatomy, or the headers are wrong; refuse or co-register.

    Headers cannot show motion between series that share one FOV: when the subject may have moved, co-register.

    Args:
        img: ``(T, X, Y, Z)`` image (a MetaTensor for its affine).
        reference: ``(T', X', Y', Z')`` image.
        atol: tolerance of "same grid" (mm).
        max_offset_mm: limit of the unexplained FOV offset (mm).
        max_rotation_deg: limit of the rotation (degrees).
    """
    shape, ref_shape = tuple(int(n) for n in img.shape[1:]), tuple(int(n) for n in reference.shape[1:])
    a, b = _affine(img), _affine(reference)
    if a is None or b is None or len(shape) != 3 or len(ref_shape) != 3:
        same = shape == ref_shape
        return GridComparison(shape, ref_shape, None, None, None, None, (0.0,) * len(shape), 0.0, 0.0, same, same, same)
    displacement = _max_displacement(a, b, shape) if shape == ref_shape else None
    same = displacement is not None and displacement <= atol
    axis_of, rotation = _axis_match(_directions(a)[1], _directions(b)[1])
    nested_axes = _nested_axes(a, shape, b, ref_shape, axis_of)
    offset = _centre(a, shape) - _centre(b, ref_shape)
    along_reference_axes = _directions(b)[1].T @ offset
    unexplained = float(np.linalg.norm(np.where(nested_axes, 0.0, along_reference_axes)))
    nested = bool(nested_axes.all())
    aligned = same or nested or (unexplained <= max_offset_mm and rotation <= max_rotation_deg)
    return GridComparison(
        shape,
        ref_shape,
        tuple(float(v) for v in _directions(a)[0]),
        tuple(float(v) for v in _directions(b)[0]),
        displacement,
        float(np.abs(a - b).max()),
        tuple(float(v) for v in offset),
        unexplained,
        rotation,
        nested,
        same,
        aligned,
    )


def same_grid(img: NdarrayOrTensor, reference: NdarrayOrTensor, atol: float = GRID_ATOL_MM) -> bool:
    """Whether two channel-first images share one grid: equal shapes, voxel positions within ``atol`` mm.

    The one test of "same grid" of the library (bundle preprocessing, synthesiser, analysis); see
    :func:`compare_grids`.
    """
    return compare_grids(img, reference, atol).same


def grid_difference(img: NdarrayOrTensor, reference: NdarrayOrTensor, atol: float = GRID_ATOL_MM) -> str | None:
    """What differs between the grids of two channel-first images (``None`` when they are the same grid)."""
    comparison = compare_grids(img, reference, atol)
    return None if comparison.same else comparison.describe()


def check_same_grid(
    images: Mapping[Hashable, NdarrayOrTensor], subject: str | None = None, atol: float = GRID_ATOL_MM
) -> None:
    """Raise :class:`GridMismatchError` unless every image shares the first one's grid (:func:`same_grid`).

    Args:
        images: name -> channel-first image (MetaTensors: shapes and affines compared; plain arrays: shapes).
        subject: subject id for the message.
        atol: see :func:`same_grid`.

    Raises:
        GridMismatchError: naming the two sequences, what differs and the fix.
    """
    items = list(images.items())
    for name, img in items[1:]:
        ref_name, ref = items[0]
        comparison = compare_grids(img, ref, atol)
        if not comparison.same:
            where = f"subject {subject!r}: " if subject else ""
            raise GridMismatchError(
                f"{where}{key_label(name, img)} is not on the grid of {key_label(ref_name, ref)}: "
                f"{comparison.describe()}. Put the sequences on one grid first: MatchGridd(..., mode='resample') "
                "(the bundles' `match_grid` step), or co-register them (`--register rigid`)."
            )


class MatchGrid(Transform):
    """Check that an image is on a reference image's grid, or resample it there when that is safe.

    Args:
        mode: ``"raise"``: :class:`GridMismatchError` on any difference; ``"resample"``: resample an image that
            is :func:`aligned <compare_grids>` with the reference to the reference grid (MONAI
            ``ResampleToMatch``) and refuse one that is not, with a message naming both images, the FOV offset (mm)
            and the rotation (degrees).
        interp: interpolation when resampling (``"bilinear"`` for images, ``"nearest"`` for labels).
        atol: tolerance of "same grid" (mm; see :func:`same_grid`).
        max_offset_mm, max_rotation_deg: limits of "aligned" (see :func:`compare_grids`).

    Shapes:
        ``img`` ``(T, X, Y, Z)``, ``reference`` ``(T', X', Y', Z')`` -> ``(T, X', Y', Z')``.

    Raises:
        GridMismatchError: another grid (``"raise"``), not aligned or no affine to resample by (``"resample"``).
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        mode: str = "raise",
        interp: str = "bilinear",
        atol: float = GRID_ATOL_MM,
        max_offset_mm: float = MAX_OFFSET_MM,
        max_rotation_deg: float = MAX_ROTATION_DEG,
    ) -> None:
        if mode not in ("raise", "resample"):
            raise ValueError(f"mode must be 'raise' or 'resample', got {mode!r}.")
        self.mode = mode
        self.interp = interp
        self.atol = float(atol)
        self.max_offset_mm = float(max_offset_mm)
        self.max_rotation_deg = float(max_rotation_deg)
        self.resampler = ResampleToMatch(mode=interp, padding_mode="zeros")

    def __call__(
        self,
        img: NdarrayOrTensor,
        reference: NdarrayOrTensor,
        name: str | None = None,
        reference_name: str | None = None,
    ) -> NdarrayOrTensor:
        comparison = compare_grids(img, reference, self.atol, self.max_offset_mm, self.max_rotation_deg)
        if comparison.same:
            return img
        label, ref_label = describe(img, name), describe(reference, reference_name)
        if self.mode == "raise":
            raise GridMismatchError(
                f"{label} is not on the grid of {ref_label}: {comparison.describe()}. "
                "Register/resample the sequences first, or resample to the reference with MatchGridd(..., "
                "mode='resample')."
            )
        if not isinstance(img, MetaTensor) or not isinstance(reference, MetaTensor):
            raise GridMismatchError(
                f"{label}: resampling to the grid of {ref_label} needs MetaTensors with affines "
                f"({comparison.describe()})."
            )
        if not comparison.aligned:
            raise GridMismatchError(
                f"{label} is not aligned with {ref_label}: {comparison.describe()} (limits: "
                f"{self.max_offset_mm:g} mm, {self.max_rotation_deg:g} degrees). {_FIX}"
            )
        frame_meta = {k: img.meta[k] for k in (FRAME_AXIS_KEY, FRAME_VALUES_KEY) if k in img.meta}
        out = self.resampler(img, reference)
        out.meta.update(frame_meta)
        out.meta[RESAMPLED_KEY] = {
            "to": ref_label,
            "from_shape": list(comparison.shape),
            "from_spacing_mm": list(comparison.spacing or ()),
            "centre_offset_mm": list(comparison.centre_offset_mm),
            "rotation_deg": comparison.rotation_deg,
        }
        return out


class MatchGridd(MapTransform):
    """Dictionary twin of :class:`MatchGrid`: every present sequence (and label) against ``reference_key``.

    Args:
        keys: sequence keys (and labels: give them in ``label_keys`` to resample them with nearest neighbours).
        reference_key: the sequence whose grid the others must share; ``None``: the first present sequence of
            ``keys`` (protocol order in the bundles).
        mode, atol, max_offset_mm, max_rotation_deg: see :class:`MatchGrid`.
        label_keys: keys resampled with nearest-neighbour interpolation (checked even when ``data["available"]``
            does not list them).
        allow_missing_keys: skip absent keys instead of raising ``KeyError`` (sequences left out of
            ``data["available"]`` are always skipped).
    """

    backend = MatchGrid.backend

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str | None = None,
        mode: str = "raise",
        atol: float = GRID_ATOL_MM,
        label_keys: KeysCollection = ("label",),
        allow_missing_keys: bool = False,
        max_offset_mm: float = MAX_OFFSET_MM,
        max_rotation_deg: float = MAX_ROTATION_DEG,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference_key = reference_key
        self.label_keys = {label_keys} if isinstance(label_keys, str) else set(label_keys)
        self.images = MatchGrid(mode, "bilinear", atol, max_offset_mm, max_rotation_deg)
        self.labels = MatchGrid(mode, "nearest", atol, max_offset_mm, max_rotation_deg)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        present = list(self.key_iterator(d))
        sequences = present_keys(d, [k for k in present if k not in self.label_keys])
        labels = [k for k in present if k in self.label_keys and d.get(k) is not None]
        ref_key = self.reference_key if self.reference_key is not None else (sequences[0] if sequences else None)
        if ref_key is None:
            return d
        if ref_key not in d:
            raise KeyError(f"reference sequence {ref_key!r} is missing from subject {d.get('subject', '?')!r}.")
        ref_label = key_label(ref_key, d[ref_key])
        for key in sequences + labels:
            if key == ref_key:
                continue
            matcher = self.labels if key in self.label_keys else self.images
            try:
                d[key] = matcher(d[key], d[ref_key], name=key_label(key, d[key]), reference_name=ref_label)
            except GridMismatchError as error:
                raise GridMismatchError(f"subject {d.get('subject', '?')!r}: {error}") from None
        return d


class CheckSequence(Transform):
    """Check one sequence against its protocol entry: finite, not constant, the frame count and axis it expects.

    Args:
        spec: the sequence's :class:`~monai_seq2seq.core.protocols.SequenceSpec` (from ``protocol[name]``).
        check_constant: refuse images whose voxels all have one value.

    Shapes:
        ``(T, X, Y, Z)`` -> the same object (checks only).

    Raises:
        ValueError: not 4D channel-first, NaN/Inf, constant.
        FrameValuesError: ``T`` differs from ``spec.frames``; the frame axis in the meta contradicts the spec.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, spec: SequenceSpec, check_constant: bool = True) -> None:
        self.spec = spec
        self.check_constant = bool(check_constant)

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        label = describe(img, name or self.spec.name)
        if img.ndim != 4:
            raise ValueError(f"{label}: expected a channel-first (T, X, Y, Z) image, got shape {tuple(img.shape)}.")
        check_finite(img, label)
        t = torch.as_tensor(img)
        if self.check_constant and t.numel() and bool((t == t.reshape(-1)[0]).all()):
            raise ValueError(f"{label} is constant ({float(t.reshape(-1)[0])} everywhere): an empty or blank series.")
        if img.shape[0] != self.spec.frames:
            hint = " Resample its frames (ResampleFrames / SelectBValues) first." if self.spec.is_4d else ""
            raise FrameValuesError(
                f"{label} has {img.shape[0]} frames; sequence {self.spec.name!r} of the protocol expects "
                f"{self.spec.frames}{f' {self.spec.frame_axis} values' if self.spec.is_4d else ''}.{hint}"
            )
        axis = (getattr(img, "meta", None) or {}).get(FRAME_AXIS_KEY)
        if self.spec.is_4d and axis is not None and axis != self.spec.frame_axis:
            raise FrameValuesError(
                f"{label}: frame axis {axis!r} in its meta, the protocol says {self.spec.frame_axis!r}."
            )
        return img


class CheckSequenced(MapTransform):
    """Dictionary twin of :class:`CheckSequence`: every present sequence of a subject, plus a minimum count.

    Args:
        protocol: registered name, :class:`Protocol` or file; gives each key's expected frames.
        keys: keys to check (``None``: the protocol's names).
        min_available: raise when the subject has fewer sequences (2: a translation needs a source and a target).
        check_constant: see :class:`CheckSequence`.

    Absent keys are skipped always (no ``allow_missing_keys``): which of the protocol's sequences a subject has is
    what this transform checks, against ``min_available``.
    """

    backend = CheckSequence.backend

    def __init__(
        self,
        protocol: str | Protocol = "brain",
        keys: KeysCollection | None = None,
        min_available: int = 1,
        check_constant: bool = True,
    ) -> None:
        self.protocol = get_protocol(protocol)
        super().__init__(self.protocol.names if keys is None else keys, allow_missing_keys=True)
        self.min_available = int(min_available)
        self.check_constant = check_constant

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = present_keys(d, list(self.key_iterator(d)))
        if len(keys) < self.min_available:
            raise ValueError(
                f"subject {d.get('subject', '?')!r} has {len(keys)} sequence(s) {keys} of {self.protocol.names}; "
                f"at least {self.min_available} are needed."
            )
        for key in keys:
            CheckSequence(self.protocol[str(key)], self.check_constant)(d[key], name=key_label(key, d[key]))
        return d


MatchGridD = MatchGridDict = MatchGridd
CheckSequenceD = CheckSequenceDict = CheckSequenced
