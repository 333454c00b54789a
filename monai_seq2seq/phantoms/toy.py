"""The paper's toy alphabet set (Fig. 3): two 2D "sequences" of the same object with different contrasts.

Each sample holds two 128 x 128 images ``X1`` and ``X2``: a disc and two letters at identical places in
both, drawn with different intensities per sequence (same tissue, different contrast). The letter in one
slot is the same in both images (shared information); the letter in the other slot differs (information only
one sequence carries). Labels: the differing letter of ``X1`` and of ``X2`` (26 classes each, 0 = "A").

Letters are rasterised from matplotlib's bundled DejaVu Sans (no font download) with
:class:`matplotlib.textpath.TextPath` and even-odd point-in-polygon tests, 2x supersampled for partial volume.
Samples are generated lazily and deterministically from ``(seed, split, index)``.
"""

from __future__ import annotations

import string
from functools import lru_cache

import numpy as np
import torch

__all__ = ["LETTERS", "TOY_SPLITS", "render_letter", "generate_toy_sample", "AlphabetToyDataset"]

LETTERS = string.ascii_uppercase
TOY_SPLITS = {"train": 9000, "val": 1000, "test": 10000}
"""Paper split sizes."""

_SPLIT_CODE = {"train": 1, "val": 2, "test": 3}
_SUPERSAMPLE = 2


@lru_cache(maxsize=64)
def _glyph_polygons(letter: str) -> tuple[np.ndarray, ...]:
    """Closed outlines of a bold DejaVu Sans glyph, normalised to height 1 and centred at 0 (y up)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    path = TextPath((0, 0), letter, size=100, prop=FontProperties(family="DejaVu Sans", weight="bold"))
    polys = [np.asarray(p, dtype=np.float64) for p in path.to_polygons(closed_only=True)]
    allv = np.concatenate(polys)
    lo, hi = allv.min(axis=0), allv.max(axis=0)
    centre, height = (lo + hi) / 2.0, float(hi[1] - lo[1])
    return tuple((p - centre) / height for p in polys)


def render_letter(
    letter: str, shape: tuple[int, int], centre: tuple[float, float], height: float, angle_deg: float = 0.0
) -> np.ndarray:
    """Coverage (0..1) of a letter in an image.

    Args:
        letter: one character ``A``-``Z``.
        shape: image shape ``(rows, cols)``.
        centre: letter centre ``(row, col)`` in pixels.
        height: letter height in pixels.
        angle_deg: rotation (counter-clockwise on screen).

    Returns:
        float32 ``shape`` with 0 outside, 1 inside and fractional coverage on the outline.
    """
    from matplotlib.path import Path

    rows, cols = shape
    ss = _SUPERSAMPLE
    r = np.arange(rows * ss) / ss + 0.5 / ss - 0.5
    c = np.arange(cols * ss) / ss + 0.5 / ss - 0.5
    rr, cc = np.meshgrid(r, c, indexing="ij")
    # pixel -> glyph frame: x to the right, y up, unit height, rotated back by the angle
    x = (cc - centre[1]) / height
    y = -(rr - centre[0]) / height
    t = np.deg2rad(angle_deg)
    gx = np.cos(t) * x + np.sin(t) * y
    gy = -np.sin(t) * x + np.cos(t) * y
    near = (np.abs(gx) < 0.8) & (np.abs(gy) < 0.6)
    pts = np.stack([gx[near], gy[near]], axis=1)
    inside = np.zeros(len(pts), dtype=bool)
    for poly in _glyph_polygons(letter):
        inside ^= Path(poly).contains_points(pts)
    fine = np.zeros(rr.shape, dtype=np.float32)
    fine[near] = inside
    return fine.reshape(rows, ss, cols, ss).mean(axis=(1, 3))


def _disc(shape, centre, radius) -> np.ndarray:
    ss = _SUPERSAMPLE
    r = np.arange(shape[0] * ss) / ss + 0.5 / ss - 0.5
    c = np.arange(shape[1] * ss) / ss + 0.5 / ss - 0.5
    d2 = (r[:, None] - centre[0]) ** 2 + (c[None, :] - centre[1]) ** 2
    fine = (d2 <= radius**2).astype(np.float32)
    return fine.reshape(shape[0], ss, shape[1], ss).mean(axis=(1, 3))


def generate_toy_sample(seed: int, split: str, index: int, size: int = 128, noise: float = 0.02) -> dict:
    """One toy sample (numpy), deterministic in ``(seed, split, index)``.

    Returns:
        dict with ``X1``, ``X2`` (float32 ``(size, size)`` in about [0, 1]), ``unique-X1``/``unique-X2``
        (float32 coverage of the differing letter), ``label_X1``, ``label_X2``, ``label_shared`` (ints 0..25),
        ``letters`` (the three characters) and ``slot_unique`` (0 left, 1 right).
    """
    if split not in _SPLIT_CODE:
        raise ValueError(f"unknown split {split!r}; use one of {list(_SPLIT_CODE)}.")
    rng = np.random.default_rng([int(seed), _SPLIT_CODE[split], int(index)])
    shape = (size, size)
    s = size / 128.0
    centre = (size / 2 + rng.uniform(-6, 6) * s, size / 2 + rng.uniform(-6, 6) * s)
    radius = rng.uniform(50, 58) * s
    disc = _disc(shape, centre, radius)
    height = rng.uniform(30, 38) * s
    offset = radius * 0.45
    slots = [
        (centre[0] + rng.uniform(-5, 5) * s, centre[1] - offset),
        (centre[0] + rng.uniform(-5, 5) * s, centre[1] + offset),
    ]
    angles = rng.uniform(-15, 15, size=2)
    shared = int(rng.integers(26))
    l1 = int(rng.integers(26))
    l2 = int((l1 + rng.integers(1, 26)) % 26)  # differs from l1
    slot_unique = int(rng.integers(2))
    slot_shared = 1 - slot_unique
    cov_shared = render_letter(LETTERS[shared], shape, slots[slot_shared], height, angles[slot_shared])
    cov = [
        render_letter(LETTERS[letter], shape, slots[slot_unique], height, angles[slot_unique]) for letter in (l1, l2)
    ]
    out: dict = {}
    for k, name in enumerate(("X1", "X2")):
        background = rng.uniform(0.0, 0.15)
        tissue = rng.uniform(0.35, 0.65)
        letter = tissue + rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.35)
        letters = np.clip(cov_shared + cov[k], 0.0, 1.0)
        img = background + disc * (tissue - background) + letters * (letter - tissue)
        if noise > 0:
            img = img + rng.normal(0.0, noise, size=shape)
        out[name] = img.astype(np.float32)
        out[f"unique-{name}"] = cov[k].astype(np.float32)
    out.update(
        {
            "label_X1": l1,
            "label_X2": l2,
            "label_shared": shared,
            "letters": LETTERS[l1] + LETTERS[l2] + LETTERS[shared],
            "slot_unique": slot_unique,
        }
    )
    return out


class AlphabetToyDataset(torch.utils.data.Dataset):
    """Lazy toy alphabet dataset (a list-like of sample dicts, usable by ``monai.data.Dataset``).

    Args:
        split: ``"train"`` (9,000), ``"val"`` (1,000) or ``"test"`` (10,000) as in the paper.
        num_samples: override the split size.
        seed: dataset seed.
        size: image side in pixels.
        noise: standard deviation of additive Gaussian noise.

    Items: ``X1``, ``X2`` (float32 tensors ``(1, size, size)``), ``label`` (LongTensor ``(2,)``: the differing
    letters of X1 and X2), ``label_X1``, ``label_X2``, ``label_shared`` (ints), ``unique-X1``, ``unique-X2``
    (``(1, size, size)``), ``available`` (``["X1", "X2"]``), ``subject``.
    """

    def __init__(
        self, split: str = "train", num_samples: int | None = None, seed: int = 0, size: int = 128, noise: float = 0.02
    ) -> None:
        if split not in TOY_SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {list(TOY_SPLITS)}.")
        self.split = split
        self.num_samples = TOY_SPLITS[split] if num_samples is None else int(num_samples)
        self.seed, self.size, self.noise = int(seed), int(size), float(noise)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.num_samples))]
        i = int(index)
        if i < 0:
            i += self.num_samples
        if not 0 <= i < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples.")
        raw = generate_toy_sample(self.seed, self.split, i, self.size, self.noise)
        item = {k: torch.from_numpy(raw[k])[None] for k in ("X1", "X2", "unique-X1", "unique-X2")}
        item["label"] = torch.tensor([raw["label_X1"], raw["label_X2"]], dtype=torch.long)
        item.update({k: raw[k] for k in ("label_X1", "label_X2", "label_shared", "letters")})
        item["available"] = ["X1", "X2"]
        item["subject"] = f"toy-{self.split}-{i:05d}"
        return item
