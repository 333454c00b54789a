"""What a bundle's weights were trained on, compared with every subject before it costs anything.

A bundle's ``configs/metadata.json`` holds a ``trained_on`` block (written by
``python -m monai_seq2seq.cli.inspect trained-on <bundle> --write True`` from the training phantom of its
``train.json``)::

    {"protocol": "brain", "spacing_mm": [2, 2, 2], "orientation": "RAS", "field_of_view_mm": [...],
     "skull_stripped": true, "intensity": {"T1": {"percentiles": {...}, "normalised_median": [lo, hi]}, ...},
     "frame_values": {"DCE": [...]}, ...}

:class:`CheckTrainedOnd` compares each sequence of a sample with it and records one line per mismatch, e.g.
``"FLAIR spacing 1x1x5 mm, trained on 2 mm isotropic"``, in ``sample["trained_on_warnings"]`` (and in the
sequence's ``meta["trained_on_warnings"]``); it logs them as warnings, and raises
:class:`TrainedOnMismatchError` with all of them under ``strict=True``. The writers copy the list into their
JSON sidecars. The checks:

- **spacing**: any axis differs from the trained spacing by more than ``spacing_rtol`` (relative).
- **orientation**: the axis codes (nibabel ``aff2axcodes``) differ: a permutation changes which anatomical
  axis the 2.5D slices cut (said first), a flip only mirrors the slices.
- **field of view**: any axis of ``shape * spacing`` outside ``[1 / (1 + fov_rtol), 1 + fov_rtol]`` of the trained one.
- **frames**: a 4D sequence's frame values differ from the trained ones (DCE times, DWI b-values).
- **skull stripping** (when the bundle was trained on skull-stripped brains): the share of foreground voxels
  outside a brain mask (:func:`brain_mask`) exceeds ``outside_brain_max``.
- **intensity histogram**: the median of the sequence, as a fraction of its normalisation range (the
  percentiles the bundle normalises with), lies more than ``median_margin`` outside the trained range. The
  raw percentiles are in arbitrary scanner units and are recorded, not compared.

The brain-mask heuristic (:func:`brain_mask`) assumes the brain is the largest piece of foreground in the
middle of the image once thin bridges are cut: foreground is every voxel above ``floor`` times the 99.5th
percentile; a morphological opening of ``opening_mm`` cuts the scalp from the brain where a dark skull lies
between them; the piece holding most of the central box of the foreground is dilated back and its holes
filled. Its limits: a scalp that touches the brain over more than the opening (thin skull, low resolution,
heavy partial volume) stays attached and is missed; a skull-stripped image with large separate pieces (eyes
or a neck left in, a cerebellum cut off by a thick slab) counts them as outside. It is a warning, not a
segmentation.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends

from .base import PerKeyd

__all__ = [
    "TRAINED_ON_KEY",
    "TrainedOnMismatchError",
    "load_trained_on",
    "format_spacing",
    "geometry_findings",
    "brain_mask",
    "outside_brain_fraction",
    "intensity_profile",
    "intensity_findings",
    "CheckTrainedOn",
    "CheckTrainedOnd",
    "CheckTrainedOnD",
    "CheckTrainedOnDict",
]

TRAINED_ON_KEY = "trained_on_warnings"
"""Sample key (and sequence meta key) of the list of trained-on mismatch lines."""

logger = logging.getLogger("monai_seq2seq.trained_on")


class TrainedOnMismatchError(ValueError):
    """A subject differs from what the bundle was trained on and ``strict`` is set."""


def load_trained_on(source: Mapping[str, Any] | str | os.PathLike | None) -> dict[str, Any]:
    """The ``trained_on`` block from a mapping (the block or a whole metadata dict), a ``metadata.json`` or a bundle.

    Args:
        source: the block, a metadata dict holding it, a path to ``metadata.json``, or a bundle folder
            (``<bundle>/configs/metadata.json``). ``None`` gives ``{}`` (nothing is compared).

    Raises:
        ValueError: the file does not exist or holds no ``trained_on`` block.
    """
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source.get("trained_on", source))
    path = Path(source)
    if path.is_dir():
        path = path / "configs" / "metadata.json"
    if not path.is_file():
        raise ValueError(f"trained-on source {str(source)!r}: {str(path)!r} does not exist (give a bundle folder).")
    meta = json.loads(path.read_text())
    if "trained_on" not in meta:
        raise ValueError(
            f"{str(path)!r} has no 'trained_on' block: run "
            f"`python -m monai_seq2seq.cli.inspect trained-on <bundle> --write True` to add it."
        )
    return dict(meta["trained_on"])


def format_spacing(spacing: Sequence[float]) -> str:
    """``"1x1x5 mm"``, or ``"2 mm isotropic"`` when all axes agree."""
    vals = [float(v) for v in spacing]
    if vals and np.allclose(vals, vals[0], rtol=1e-3):
        return f"{vals[0]:.3g} mm isotropic"
    return "x".join(f"{v:.3g}" for v in vals) + " mm"


def _orientation_finding(name: str, axcodes: str, trained: str) -> str | None:
    if not trained or axcodes == trained:
        return None
    pairs = {"L": "LR", "R": "LR", "A": "AP", "P": "AP", "S": "SI", "I": "SI"}
    if [pairs[c] for c in axcodes] != [pairs[c] for c in trained]:
        return (
            f"{name} orientation {axcodes}, trained on {trained}: the slice axis is {pairs[axcodes[-1]][0]}-"
            f"{pairs[axcodes[-1]][1]}, not {pairs[trained[-1]][0]}-{pairs[trained[-1]][1]}, so the 2.5D slices cut "
            f"another plane (reorient the files to {trained}, e.g. with MONAI Orientationd)"
        )
    return f"{name} orientation {axcodes}, trained on {trained}: slices are mirrored (reorient the files to {trained})"


def _frames_finding(name: str, frame_values: Sequence[float] | None, trained: Sequence[float] | None) -> str | None:
    if not trained or frame_values is None:
        return None
    vals = [float(v) for v in frame_values]
    if len(vals) == len(trained) and np.allclose(vals, trained, rtol=0.05, atol=1e-3):
        return None
    return f"{name} frame values {[round(v, 3) for v in vals]}, trained on {[float(v) for v in trained]}"


def geometry_findings(
    name: str,
    spacing: Sequence[float],
    axcodes: str,
    shape: Sequence[int],
    trained_on: Mapping[str, Any],
    frame_values: Sequence[float] | None = None,
    spacing_rtol: float = 0.2,
    fov_rtol: float = 0.5,
) -> list[str]:
    """One line per difference between a sequence's grid (from its header) and the trained one.

    Args:
        name: the sequence's canonical name (starts each line).
        spacing: voxel size in mm, 3 values.
        axcodes: nibabel axis codes, e.g. ``"RAS"``.
        shape: spatial shape, 3 values.
        trained_on: the bundle's ``trained_on`` block (missing fields are not compared).
        frame_values: the frame values of a 4D sequence (``None``: not compared).
        spacing_rtol: relative tolerance of each spacing axis.
        fov_rtol: relative tolerance of each field-of-view axis.

    Returns:
        The lines, e.g. ``["FLAIR spacing 1x1x5 mm, trained on 2 mm isotropic"]``; empty when all match.
    """
    out = []
    trained_sp = trained_on.get("spacing_mm")
    sp = np.asarray([float(v) for v in spacing])
    if trained_sp is not None:
        tsp = np.broadcast_to(np.asarray(trained_sp, dtype=float), (3,))
        if np.any(np.abs(sp - tsp) > spacing_rtol * tsp):
            out.append(f"{name} spacing {format_spacing(sp)}, trained on {format_spacing(tsp)}")
    finding = _orientation_finding(name, str(axcodes), str(trained_on.get("orientation") or ""))
    if finding:
        out.append(finding)
    trained_fov = trained_on.get("field_of_view_mm")
    if trained_fov is not None:
        fov = sp * np.asarray([int(s) for s in shape][:3], dtype=float)
        ratio = fov / np.asarray(trained_fov, dtype=float)
        if np.any(ratio > 1 + fov_rtol) or np.any(ratio < 1 / (1 + fov_rtol)):
            out.append(
                f"{name} field of view {'x'.join(f'{v:.0f}' for v in fov)} mm, trained on "
                f"{'x'.join(f'{float(v):.0f}' for v in trained_fov)} mm"
            )
    finding = _frames_finding(name, frame_values, (trained_on.get("frame_values") or {}).get(name))
    if finding:
        out.append(finding)
    return out


def _ball(radius_vox: Sequence[float]) -> np.ndarray:
    r = [max(1, int(round(v))) for v in radius_vox]
    grid = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((g / k) ** 2 for g, k in zip(grid, r, strict=True)) <= 1.0


def brain_mask(
    volume: np.ndarray, spacing: Sequence[float], floor: float = 0.05, opening_mm: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """A rough brain mask and the foreground of a 3D volume (see the module docstring for the heuristic).

    Args:
        volume: ``(X, Y, Z)`` intensities.
        spacing: voxel size in mm.
        floor: foreground is above ``floor`` times the 99.5th percentile of the non-zero voxels.
        opening_mm: radius of the opening that cuts scalp from brain.

    Returns:
        ``(mask, foreground)``, boolean ``(X, Y, Z)`` arrays; both empty for an all-zero volume.
    """
    from scipy import ndimage

    vol = np.asarray(volume, dtype=np.float32)
    nonzero = vol[vol > 0]
    if nonzero.size == 0:
        empty = np.zeros(vol.shape, dtype=bool)
        return empty, empty
    foreground = vol > floor * float(np.percentile(nonzero, 99.5))
    ball = _ball([opening_mm / float(s) for s in spacing])
    core = ndimage.binary_erosion(foreground, structure=ball)
    labels, n = ndimage.label(core)
    if n == 0:
        return foreground.copy(), foreground
    idx = np.argwhere(foreground)
    lo, hi = idx.min(0), idx.max(0) + 1
    quarter = (hi - lo) // 4
    centre = labels[tuple(slice(a + q, b - q) for a, b, q in zip(lo, hi, quarter, strict=True))]
    counts = np.bincount(centre[centre > 0].ravel(), minlength=n + 1)
    pick = int(counts.argmax()) if counts.max() > 0 else int(np.bincount(labels[labels > 0].ravel()).argmax())
    mask = ndimage.binary_dilation(labels == pick, structure=ball) & foreground
    return ndimage.binary_fill_holes(mask), foreground


def outside_brain_fraction(volume: np.ndarray, spacing: Sequence[float], **kwargs: Any) -> float:
    """Share of the foreground voxels of a 3D volume outside :func:`brain_mask` (0 for an empty volume).

    Large volumes are subsampled to about 2 mm first (the heuristic needs no more).
    """
    sp = np.asarray([float(s) for s in spacing])
    step = np.maximum(1, np.floor(2.0 / sp)).astype(int)
    vol = np.asarray(volume)[:: step[0], :: step[1], :: step[2]]
    mask, foreground = brain_mask(vol, sp * step, **kwargs)
    total = int(foreground.sum())
    return 0.0 if total == 0 else float((foreground & ~mask).sum()) / total


def intensity_profile(
    volume: np.ndarray, lower: float = 0.5, upper: float = 99.5, nonzero: bool = False
) -> dict[str, Any]:
    """Percentiles of a sequence (all frames) and its median as a fraction of the ``lower``..``upper`` range.

    Args:
        volume: intensities, any shape (all frames of a 4D sequence together, as the normalisation does).
        lower, upper, nonzero: the bundle's percentile normalisation (over non-zero voxels when ``nonzero``).

    Returns:
        ``{"percentiles": {"0.5": p, "50": p, "99.5": p}, "normalised_median": m}``.
    """
    vals = np.asarray(volume, dtype=np.float64).ravel()
    if nonzero:
        vals = vals[vals != 0]
    if vals.size == 0:
        return {"percentiles": {}, "normalised_median": None}
    lo, med, hi = (float(v) for v in np.percentile(vals, [lower, 50.0, upper]))
    norm = (med - lo) / (hi - lo) if hi > lo else None
    return {"percentiles": {f"{lower:g}": lo, "50": med, f"{upper:g}": hi}, "normalised_median": norm}


def intensity_findings(
    name: str, profile: Mapping[str, Any], trained: Mapping[str, Any] | None, margin: float
) -> list[str]:
    """A line when the normalised median of ``profile`` is over ``margin`` outside the trained ``[lo, hi]``."""
    if not trained or trained.get("normalised_median") is None or profile.get("normalised_median") is None:
        return []
    lo, hi = (float(v) for v in trained["normalised_median"])
    value = float(profile["normalised_median"])
    if lo - margin <= value <= hi + margin:
        return []
    return [
        f"{name} intensity histogram differs from training: its median lies at {value:.2f} of the normalisation "
        f"range, trained {lo:.2f}-{hi:.2f} (another sequence under this name, or other preprocessing?)"
    ]


def _spatial_info(img: NdarrayOrTensor) -> tuple[list[float], str]:
    import nibabel as nib
    from monai.data.utils import affine_to_spacing

    affine = getattr(img, "affine", None)
    if affine is None:
        return [1.0, 1.0, 1.0], "RAS"
    affine = np.asarray(torch.as_tensor(affine).detach().cpu(), dtype=np.float64)
    return [float(v) for v in affine_to_spacing(affine, r=3)], "".join(nib.aff2axcodes(affine))


class CheckTrainedOn(Transform):
    """Compare one sequence with what the bundle was trained on; the image passes unchanged.

    The lines found (see the module docstring) go into ``img.meta["trained_on_warnings"]`` (a ``MetaTensor``)
    and :attr:`last_findings`; they are logged as warnings unless ``log=False``.

    Args:
        trained_on: the ``trained_on`` block, a metadata dict, a ``metadata.json`` path or a bundle folder
            (:func:`load_trained_on`).
        sequence: the sequence's canonical name (``None``: the ``name`` given at call time).
        strict: raise :class:`TrainedOnMismatchError` instead of warning.
        spacing_rtol, fov_rtol: tolerances of :func:`geometry_findings`.
        outside_brain_max: skull-strip warning above this share of foreground voxels outside the brain mask.
        median_margin: tolerance of the intensity-histogram check (fraction of the normalisation range).
        log: log the lines (``logging.getLogger("monai_seq2seq.trained_on")``).

    Shapes:
        ``img`` ``(T, X, Y, Z)`` -> the same.

    Raises:
        TrainedOnMismatchError: under ``strict``, with every line found.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        trained_on: Mapping[str, Any] | str | os.PathLike | None,
        sequence: str | None = None,
        strict: bool = False,
        spacing_rtol: float = 0.2,
        fov_rtol: float = 0.5,
        outside_brain_max: float = 0.1,
        median_margin: float = 0.15,
        log: bool = True,
    ) -> None:
        self.trained_on = load_trained_on(trained_on)
        self.sequence = sequence
        self.strict = bool(strict)
        self.spacing_rtol = float(spacing_rtol)
        self.fov_rtol = float(fov_rtol)
        self.outside_brain_max = float(outside_brain_max)
        self.median_margin = float(median_margin)
        self.log = bool(log)
        self.last_findings: list[str] = []

    def findings(self, img: NdarrayOrTensor, name: str) -> list[str]:
        """The mismatch lines of one sequence ``(T, X, Y, Z)`` named ``name``."""
        t = self.trained_on
        if not t:
            return []
        spacing, axcodes = _spatial_info(img)
        meta = getattr(img, "meta", {}) or {}
        frame_values = meta.get("frame_values") if int(img.shape[0]) > 1 else None
        out = geometry_findings(
            name, spacing, axcodes, img.shape[1:], t, frame_values, self.spacing_rtol, self.fov_rtol
        )
        data = np.asarray(torch.as_tensor(img).detach().cpu().float())
        if t.get("skull_stripped"):
            fraction = outside_brain_fraction(data.mean(0), spacing)
            if fraction > self.outside_brain_max:
                out.append(
                    f"{name} is not skull-stripped: {100 * fraction:.0f}% of its foreground voxels lie outside a brain "
                    f"mask (trained on skull-stripped brains; strip the skull, e.g. with HD-BET or SynthStrip)"
                )
        intensity = t.get("intensity") or {}
        norm = intensity.get("normalisation") or {}
        profile = intensity_profile(
            data, float(norm.get("lower", 0.5)), float(norm.get("upper", 99.5)), bool(norm.get("nonzero", False))
        )
        out += intensity_findings(name, profile, intensity.get(name), self.median_margin)
        return out

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        label = self.sequence or (name.split(" ")[0] if name else "image")
        found = self.findings(img, label)
        self.last_findings = found
        if hasattr(img, "meta"):
            img.meta[TRAINED_ON_KEY] = list(found)
        if found and self.strict:
            raise TrainedOnMismatchError(_strict_message(found))
        if self.log:
            for line in found:
                logger.warning(line)
        return img


def _strict_message(found: Sequence[str]) -> str:
    return (
        "the input differs from what the bundle was trained on (strict=True): "
        + "; ".join(found)
        + ". Fix the input, or run with --strict False to go on with warnings."
    )


class CheckTrainedOnd(PerKeyd):
    """Dictionary twin of :class:`CheckTrainedOn`: every present sequence, then all lines at once.

    The subject's lines (prefixed by nothing; each names its sequence) go into ``d["trained_on_warnings"]``;
    they are logged with the subject id. Under ``strict`` the subject's lines are raised together.

    Args:
        keys: the sequence keys (canonical names).
        trained_on, strict, spacing_rtol, fov_rtol, outside_brain_max, median_margin: as :class:`CheckTrainedOn`.
        allow_missing_keys: skip absent sequences instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        trained_on: Mapping[str, Any] | str | os.PathLike | None,
        strict: bool = False,
        spacing_rtol: float = 0.2,
        fov_rtol: float = 0.5,
        outside_brain_max: float = 0.1,
        median_margin: float = 0.15,
        allow_missing_keys: bool = False,
    ) -> None:
        block = load_trained_on(trained_on)
        args = (False, spacing_rtol, fov_rtol, outside_brain_max, median_margin, False)
        super().__init__(keys, CheckTrainedOn(block, None, *args), allow_missing_keys)
        self.strict = bool(strict)
        self._per_key = {key: CheckTrainedOn(block, str(key), *args) for key in self.keys}

    def transform_for(self, key: Hashable) -> Transform:
        return self._per_key[key]

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        found: list[str] = []
        for key in self.key_iterator(d):
            transform = self._per_key[key]
            d[key] = transform(d[key])
            found += transform.last_findings
        d[TRAINED_ON_KEY] = found
        subject = d.get("subject", "?")
        if found and self.strict:
            raise TrainedOnMismatchError(f"subject {subject!r}: " + _strict_message(found))
        for line in found:
            logger.warning("subject %s: %s", subject, line)
        return d


CheckTrainedOnD = CheckTrainedOnDict = CheckTrainedOnd
