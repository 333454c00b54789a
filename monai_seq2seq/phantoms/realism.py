"""Clinical acquisition effects on a generated phantom subject, with the true parameters recorded.

A phantom subject is clean: every sequence is aligned on one isotropic grid, the bias field is mild and the
noise is set by one SNR. :func:`apply_realism` turns it into what a user brings: each effect below works on its
own and all of them together form ``"clinical"``. Everything happens on the subject's physical intensities
(numpy), per sequence, frame by frame for 4D sequences (frames first), in this order:

1. ``"misalign"``: the subject moves rigidly between acquisitions. Every sequence but the reference (``T1``)
   gets its own rotation (uniform in ``+-max_rotation_deg`` about each axis, about the grid centre) and
   translation (uniform in ``+-max_translation_mm``) and is resampled (trilinear) onto the common grid. Derived
   sequences (wash-in/out) move with their source. The recorded ``matrix_world`` ``M`` (4x4, world mm) maps a
   point of the reference frame to where it lies in the moved sequence: ``moved(y) = clean(M^-1 y)``.
2. ``"bias"``: a smooth multiplicative field ``exp(sum c_ijk P_i(u) P_j(v) P_k(w))`` (Legendre polynomials,
   ``i + j + k <= bias_degree``, no constant term, ``u, v, w`` = voxel index mapped linearly onto ``[-1, 1]``),
   one per coil set-up: sequences of one ``BIAS_GROUPS`` group share it. The coefficients are recorded.
3. ``"thickness"``: a thick-slice acquisition along ``slice_axis``: slices of the given thickness at a spacing
   equal to it (random stack offset, recorded), each the average of the volume under the slice profile (``box``
   or ``gaussian`` with FWHM = thickness), then linear interpolation back onto the common grid (as BraTS-style
   preprocessing resamples every sequence to 1 mm). Mean intensity is preserved (every weight row sums to 1).
4. ``"noise"``: Rician noise of ``sigma = mean signal in the foreground / snr`` (frame 0 for 4D sequences; the
   foreground is the brain for skull-stripped data, else voxels above 10% of the 99th percentile), added on the
   common grid: the SNR is what one measures on the output.
5. ``"fov"``: every sequence but the reference covers a smaller box: ``fov_fraction`` of the reference
   foreground's extent along ``fov_axis`` (random fraction and position), zero outside; the half-open box on the
   common grid is recorded in voxels and mm.

The label map and the ``unique`` masks stay in the reference frame (the reference sequence is never moved,
cropped or resampled in-plane), as in BraTS where every sequence is registered to one and the segmentation is
drawn there. For skull-stripped data (the brain), each sequence keeps its own (moved) support: a voxel that was
0 stays 0 unless the geometry moved it. Derived maps (``WashIn``/``WashOut``) are recomputed from the corrupted
``DCE`` inside their moved support.

Randomness: one ``numpy.random.SeedSequence((seed, index, 0x5EA1))``, one child stream per effect, so enabling
an effect changes no other effect's draws and the phantom's own streams are untouched (a clean subject stays bit
for bit what it was).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre
from scipy import ndimage

from monai_seq2seq.core.protocols import Protocol
from monai_seq2seq.phantoms.anatomy import add_rician_noise
from monai_seq2seq.phantoms.signal import wash_in_out
from monai_seq2seq.phantoms.subject import PhantomSubject
from monai_seq2seq.phantoms.tissues import BIAS_GROUPS

__all__ = [
    "EFFECTS",
    "PRESETS",
    "DEFAULT_THICKNESS_MM",
    "RealismConfig",
    "parse_effects",
    "resolve_realism",
    "apply_realism",
    "bias_field_from_coefficients",
    "rigid_matrix",
    "resample_rigid",
    "slice_kernel",
]

EFFECTS = ("misalign", "bias", "thickness", "noise", "fov")
"""The effects, in the order they are applied."""

PRESETS = {"clinical": EFFECTS}
"""Named sets of effects."""

DEFAULT_THICKNESS_MM = {
    "brain": {"FLAIR": 5.0, "T2": 3.0},  # 2D FLAIR 1x1x5 mm, 2D T2 1x1x3 mm; T1/T1Gd 3D at the grid's resolution
    "breast": {"T2": 4.0, "DWI": 5.0},  # 2D T2 and EPI DWI thicker than the 3D DCE
}
"""Through-plane slice thickness (mm) per protocol and sequence; sequences not named keep the grid's resolution."""

_REALISM_STREAM = 0x5EA1
_WASH_MAPS = {"WashIn": 0, "WashOut": 1}
_PROFILES = ("box", "gaussian")


@dataclass(frozen=True)
class RealismConfig:
    """Which effects and at what level.

    Args:
        effects: effect names (see :data:`EFFECTS`), applied in :data:`EFFECTS` order.
        bias_strength: standard deviation of the bias log-field coefficients (divided by ``1 + i + j + k``);
            0.3 gives fields of about +-25 % (the phantom's built-in default is 0.12).
        bias_degree: maximal total degree of the bias polynomial.
        snr: Rician noise level, mean foreground signal / sigma (e.g. 40, 20, 10, 5).
        thickness_mm: sequence -> slice thickness in mm (``None``: :data:`DEFAULT_THICKNESS_MM` of the protocol);
            a thickness at or below the grid spacing leaves the sequence as it is.
        slice_profile: ``"gaussian"`` (FWHM = thickness) or ``"box"``.
        slice_axis: through-plane axis of the grid (2: z, axial slices).
        max_rotation_deg: largest rotation about each axis.
        max_translation_mm: largest translation along each axis.
        reference: the sequence that does not move and keeps the full field of view (``None``: the protocol's
            first sequence, ``T1``).
        fov_fraction: range of the kept fraction of the reference foreground's extent along ``fov_axis``.
        fov_axis: the axis the field of view is reduced along (2: fewer slices in z).
        skull_stripped: keep each sequence's zero background at 0 (``None``: for the brain protocol only).
    """

    effects: tuple[str, ...] = EFFECTS
    bias_strength: float = 0.3
    bias_degree: int = 3
    snr: float = 20.0
    thickness_mm: Mapping[str, float] | None = None
    slice_profile: str = "gaussian"
    slice_axis: int = 2
    max_rotation_deg: float = 3.0
    max_translation_mm: float = 3.0
    reference: str | None = None
    fov_fraction: tuple[float, float] = (0.7, 0.9)
    fov_axis: int = 2
    skull_stripped: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "effects", parse_effects(self.effects))
        if self.slice_profile not in _PROFILES:
            raise ValueError(f"slice_profile must be one of {_PROFILES}, got {self.slice_profile!r}.")
        if self.snr is None or float(self.snr) <= 0:
            raise ValueError(f"snr must be > 0, got {self.snr}; leave 'noise' out of the effects for no noise.")
        lo, hi = (float(v) for v in self.fov_fraction)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"fov_fraction must be (low, high) with 0 < low <= high <= 1, got {self.fov_fraction}.")
        for name in ("slice_axis", "fov_axis"):
            if int(getattr(self, name)) not in (0, 1, 2):
                raise ValueError(f"{name} must be 0, 1 or 2, got {getattr(self, name)}.")

    def as_dict(self) -> dict:
        """JSON-ready settings."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        out["effects"] = list(self.effects)
        out["fov_fraction"] = [float(v) for v in self.fov_fraction]
        out["thickness_mm"] = None if self.thickness_mm is None else {k: float(v) for k, v in self.thickness_mm.items()}
        return out


def parse_effects(effects: str | Sequence[str] | None) -> tuple[str, ...]:
    """Effect names from ``"clinical"``, ``"bias,noise"``, ``["bias", "noise"]`` (or ``None``/``"none"``: none).

    Returns:
        The effects in application order (:data:`EFFECTS`), without duplicates.

    Raises:
        ValueError: an unknown effect name (the message lists the valid ones).
    """
    if effects is None:
        return ()
    items = effects.split(",") if isinstance(effects, str) else list(effects)
    names: set[str] = set()
    for item in items:
        key = str(item).strip().lower()
        if key in ("", "none", "clean"):
            continue
        if key in PRESETS:
            names.update(PRESETS[key])
        elif key in EFFECTS:
            names.add(key)
        else:
            raise ValueError(
                f"unknown realism effect {item!r}; valid: {', '.join(EFFECTS)} or a preset ({', '.join(PRESETS)}), "
                "alone or as a comma list such as 'bias,noise'."
            )
    return tuple(e for e in EFFECTS if e in names)


def resolve_realism(realism, **levels) -> RealismConfig | None:
    """A cohort's ``realism`` argument as a :class:`RealismConfig` (``None`` when no effect is asked for).

    Args:
        realism: ``None``, effect names (see :func:`parse_effects`) or a :class:`RealismConfig`.
        levels: :class:`RealismConfig` fields to override (e.g. ``snr=10``).

    Raises:
        ValueError: unknown effects or level names.
    """
    if isinstance(realism, RealismConfig):
        config = _with_levels(realism, levels)
    else:
        config = _with_levels(RealismConfig(effects=parse_effects(realism)), levels)
    return config if config.effects else None


def _with_levels(config: RealismConfig, levels: Mapping) -> RealismConfig:
    valid = [f.name for f in dataclasses.fields(RealismConfig) if not f.name.startswith("_")]
    unknown = sorted(set(levels) - set(valid))
    if unknown:
        raise ValueError(f"unknown realism level(s) {unknown}; valid: {valid}.")
    return dataclasses.replace(config, **levels) if levels else config


# ------------------------------------------------------------------------------------------------ geometry
def rigid_matrix(
    angles_deg: Sequence[float], translation_mm: Sequence[float], centre_mm: Sequence[float]
) -> np.ndarray:
    """4x4 world matrix: rotation ``Rz Ry Rx`` (degrees) about ``centre_mm``, then a translation (mm)."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rot = rz @ ry @ rx
    c = np.asarray(centre_mm, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = c - rot @ c + np.asarray(translation_mm, dtype=np.float64)
    return out


def resample_rigid(volume: np.ndarray, matrix_world: np.ndarray, affine: np.ndarray, order: int = 1) -> np.ndarray:
    """``out(y) = volume(M^-1 y)`` on the same grid: the content moved by the world matrix ``M`` (zeros outside).

    Args:
        volume: ``(X, Y, Z)`` or frames-first ``(T, X, Y, Z)``.
        matrix_world: 4x4 ``M`` in world mm; pass ``inv(M)`` to undo a recorded misalignment.
        affine: the grid's 4x4 voxel-to-world affine.
        order: spline order (1: trilinear).

    Returns:
        float32 array of ``volume``'s shape.
    """
    vox = np.linalg.inv(affine) @ np.linalg.inv(matrix_world) @ affine  # output voxel -> input voxel
    frames = volume if volume.ndim == 4 else volume[None]
    out = np.stack(
        [
            ndimage.affine_transform(np.asarray(f, np.float32), vox[:3, :3], vox[:3, 3], order=order, mode="constant")
            for f in frames
        ]
    )
    return out if volume.ndim == 4 else out[0]


def bias_field_from_coefficients(shape: Sequence[int], coefficients: Sequence[Sequence[float]]) -> np.ndarray:
    """The multiplicative field ``exp(sum c P_i(u) P_j(v) P_k(w))`` of recorded ``[i, j, k, c]`` rows.

    ``u, v, w`` run linearly from -1 (first voxel) to 1 (last voxel) along each axis.

    Returns:
        float32 ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    axes = [np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1) for n in shape]
    log_field = np.zeros(shape, dtype=np.float64)
    for i, j, k, c in coefficients:
        p = [legendre.legval(a, np.eye(int(d) + 1)[int(d)]) for a, d in zip(axes, (i, j, k), strict=True)]
        log_field += float(c) * p[0][:, None, None] * p[1][None, :, None] * p[2][None, None, :]
    return np.exp(log_field).astype(np.float32)


def _profile(offsets: np.ndarray, width: float, profile: str) -> np.ndarray:
    if profile == "box":
        return (np.abs(offsets) <= width / 2.0 + 1e-9).astype(np.float64)
    sigma = width / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    return np.exp(-0.5 * (offsets / sigma) ** 2)


def _linear_weights(positions: np.ndarray, n: int) -> np.ndarray:
    """``(len(positions), n)`` linear-interpolation weights (edge values beyond the ends)."""
    p = np.clip(positions, 0.0, n - 1.0)
    lo = np.clip(np.floor(p).astype(int), 0, max(n - 2, 0))
    frac = p - lo if n > 1 else np.zeros_like(p)
    w = np.zeros((len(p), n))
    rows = np.arange(len(p))
    np.add.at(w, (rows, lo), 1.0 - frac)
    np.add.at(w, (rows, np.minimum(lo + 1, n - 1)), frac)
    return w


def slice_kernel(n: int, step: float, profile: str = "gaussian", offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The ``(n, n)`` operator of a thick-slice acquisition along one axis and its resampling back.

    Args:
        n: grid size along the axis.
        step: slice thickness (= slice spacing) in grid voxels, > 1.
        profile: ``"gaussian"`` (FWHM = ``step``) or ``"box"``.
        offset: position of the slice stack, in voxels, in ``[0, step)``.

    Returns:
        ``(kernel, centres)``: ``kernel[i]`` weights the grid voxels that make output voxel ``i`` (every row sums
        to 1); ``centres`` are the slice centres in voxel units.
    """
    centres = np.arange(-step + offset, n - 1 + 2.0 * step, step)
    reach = step / 2.0 if profile == "box" else 1.5 * step
    offsets = np.linspace(-reach, reach, int(np.ceil(2 * reach / 0.1)) | 1)
    weights = _profile(offsets, step, profile)
    weights /= weights.sum()
    acquire = np.zeros((len(centres), n))
    for w, u in zip(weights, offsets, strict=True):
        acquire += w * _linear_weights(centres + u, n)
    # back onto the grid: linear interpolation between slice centres
    back = np.zeros((n, len(centres)))
    k = np.clip(np.searchsorted(centres, np.arange(n), side="right") - 1, 0, len(centres) - 2)
    frac = (np.arange(n) - centres[k]) / step
    back[np.arange(n), k] = 1.0 - frac
    back[np.arange(n), k + 1] = frac
    return back @ acquire, centres


def _along(volume: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Apply ``kernel`` (n, n) along spatial ``axis`` of ``(T, X, Y, Z)``."""
    moved = np.moveaxis(volume, axis + 1, -1)
    return np.moveaxis(moved @ kernel.T.astype(np.float32), -1, axis + 1)


# ------------------------------------------------------------------------------------------------ planning
def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)


def _grid_centre(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    return (np.asarray(affine) @ np.append((np.asarray(shape, dtype=np.float64) - 1) / 2.0, 1.0))[:3]


def _group(name: str, protocol: Protocol) -> str:
    """Motion group: a derived map moves with its source; every other sequence is its own acquisition."""
    spec = protocol[name]
    return spec.derived_from or spec.name


def _plan_misalign(names, protocol, reference, cfg, rng, affine, shape) -> dict[str, dict]:
    centre = _grid_centre(affine, shape)
    plan: dict[str, dict] = {}
    for name in protocol.names:  # draws in protocol order, whatever the subject has
        group = _group(name, protocol)
        if group in plan or group == reference:
            continue
        angles = rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg, 3)
        shift = rng.uniform(-cfg.max_translation_mm, cfg.max_translation_mm, 3)
        m = rigid_matrix(angles, shift, centre)
        plan[group] = {
            "rotation_deg_xyz": angles.tolist(),
            "rotation_order": "R = Rz @ Ry @ Rx, about centre_mm",
            "translation_mm": shift.tolist(),
            "centre_mm": centre.tolist(),
            "matrix_world": m.tolist(),
            "inverse_matrix_world": np.linalg.inv(m).tolist(),
            "convention": "moved(y) = clean(M^-1 y), M: reference world mm -> this sequence's world mm",
            "interpolation": "trilinear, zeros outside",
        }
    return {n: plan[_group(n, protocol)] for n in names if _group(n, protocol) in plan}


def _plan_bias(names, protocol, cfg, rng) -> dict[str, dict]:
    fields: dict[str, dict] = {}
    for name in protocol.names:
        group = BIAS_GROUPS.get(name, name)
        if group in fields:
            continue
        rows = []
        for i in range(cfg.bias_degree + 1):
            for j in range(cfg.bias_degree + 1 - i):
                for k in range(cfg.bias_degree + 1 - i - j):
                    c = float(rng.normal(0.0, cfg.bias_strength)) / (1.0 + i + j + k)
                    if i + j + k > 0:
                        rows.append([i, j, k, c])
        fields[group] = {"group": group, "strength": float(cfg.bias_strength), "degree": int(cfg.bias_degree)}
        fields[group]["coefficients_ijkc"] = rows
    out = {}
    for name in names:
        spec = protocol[name]
        if spec.derived_from is None:
            out[name] = fields[BIAS_GROUPS.get(name, name)]
    return out


def _plan_thickness(names, protocol, cfg, rng, affine) -> dict[str, dict]:
    table = cfg.thickness_mm if cfg.thickness_mm is not None else DEFAULT_THICKNESS_MM.get(protocol.name, {})
    unknown = sorted(set(table) - set(protocol.names))
    if unknown:
        raise ValueError(f"thickness_mm names {unknown}, not sequences of {protocol.name!r}: {protocol.names}.")
    axis = int(cfg.slice_axis)
    spacing = float(_spacing(affine)[axis])
    plan = {}
    for name in protocol.names:
        phase = float(rng.uniform(0.0, 1.0))
        thick = float(table.get(_group(name, protocol), spacing))
        if name not in names:
            continue
        native = thick <= spacing * (1.0 + 1e-6)
        plan[name] = {
            "thickness_mm": max(thick, spacing),
            "grid_spacing_mm": spacing,
            "axis": axis,
            "profile": cfg.slice_profile,
            "native": native,
            "stack_offset_voxels": 0.0 if native else phase * thick / spacing,
            "resampling": "slab average under the profile, then linear interpolation onto the grid",
        }
    return plan


def _plan_noise(names, protocol, cfg, rng) -> dict[str, dict]:
    plan = {}
    for name in protocol.names:
        child = int(rng.integers(2**63))
        if name in names and protocol[name].derived_from is None:
            plan[name] = {"snr": float(cfg.snr), "noise_seed": child, "kind": "Rician (magnitude of complex Gaussian)"}
    return plan


def _foreground(frame0: np.ndarray, skull_stripped: bool) -> np.ndarray:
    if skull_stripped:
        return frame0 > 0
    positive = frame0[frame0 > 0]
    if positive.size == 0:
        return np.zeros(frame0.shape, dtype=bool)
    return frame0 > 0.1 * float(np.percentile(positive, 99))


def _plan_fov(names, protocol, reference, cfg, rng, ref_image, skull_stripped) -> dict[str, dict]:
    axis = int(cfg.fov_axis)
    frame0 = ref_image[0] if ref_image.ndim == 4 else ref_image
    fg = _foreground(frame0, skull_stripped)
    n = frame0.shape[axis]
    along = np.nonzero(fg.any(axis=tuple(a for a in range(3) if a != axis)))[0]
    lo, hi = (int(along.min()), int(along.max()) + 1) if along.size else (0, n)
    plan: dict[str, dict] = {}
    for name in protocol.names:
        group = _group(name, protocol)
        if group in plan or group == reference:
            continue
        fraction = float(rng.uniform(*cfg.fov_fraction))
        length = max(1, int(round(fraction * (hi - lo))))
        start = lo + int(rng.integers(0, hi - lo - length + 1))
        box = [[0, int(s)] for s in frame0.shape]
        box[axis] = [start, start + length]
        plan[group] = {"fraction": fraction, "axis": axis, "box_voxels": box, "reference_extent_voxels": [lo, hi]}
    return {n: plan[_group(n, protocol)] for n in names if _group(n, protocol) in plan}


def _box_mm(box: list[list[int]], affine: np.ndarray) -> list[list[float]]:
    corners = np.array([[b[0] if bit == 0 else b[1] - 1 for b, bit in zip(box, bits, strict=True)]
                        for bits in np.ndindex(2, 2, 2)], dtype=np.float64)  # fmt: skip
    world = (np.asarray(affine) @ np.c_[corners, np.ones(len(corners))].T)[:3].T
    return [world.min(0).tolist(), world.max(0).tolist()]


# ------------------------------------------------------------------------------------------------ applying
def _apply_geometry(frames, support, rec, affine):
    """Misalignment then (later) the field of view: the geometric part, shared by derived maps."""
    if "misalign" in rec:
        m = np.asarray(rec["misalign"]["matrix_world"])
        frames = resample_rigid(frames, m, affine)
        if support is not None:
            support = resample_rigid(support.astype(np.float32), m, affine) > 0.5
    return frames, support


def _apply_fov(frames, support, rec):
    if "fov" not in rec:
        return frames, support
    box = tuple(slice(a, b) for a, b in rec["fov"]["box_voxels"])
    keep = np.zeros(frames.shape[1:], dtype=bool)
    keep[box] = True
    frames = frames * keep
    return frames, (keep if support is None else support & keep)


def _corrupt(image, rec, affine, skull_stripped):
    """One acquired (non-derived) sequence through the recorded effects."""
    frames = np.array(image if image.ndim == 4 else image[None], dtype=np.float32)
    support = (frames != 0).any(0) if skull_stripped else None
    frames, support = _apply_geometry(frames, support, rec, affine)
    if "bias" in rec:
        frames *= bias_field_from_coefficients(frames.shape[1:], rec["bias"]["coefficients_ijkc"])
    if "thickness" in rec and not rec["thickness"]["native"]:
        t = rec["thickness"]
        step = t["thickness_mm"] / t["grid_spacing_mm"]
        kernel, centres = slice_kernel(frames.shape[t["axis"] + 1], step, t["profile"], t["stack_offset_voxels"])
        frames = _along(frames, kernel, t["axis"])
        t["slice_centres_voxels"] = centres.tolist()
    if support is not None:
        frames *= support
    if "noise" in rec:
        fg = support if support is not None else _foreground(frames[0], False)
        mean = float(frames[0][fg].mean()) if fg.any() else 0.0
        sigma = mean / rec["noise"]["snr"]
        rec["noise"].update(sigma=sigma, mean_foreground_signal=mean, foreground_voxels=int(fg.sum()))
        frames = add_rician_noise(frames, sigma, np.random.default_rng(rec["noise"]["noise_seed"]))
        if support is not None:
            frames *= support
    frames, support = _apply_fov(frames, support, rec)
    return frames if image.ndim == 4 else frames[0]


def _derived(name, clean, images, rec, protocol, affine):
    """A derived map: recomputed from its corrupted source (wash-in/out), else moved like its source."""
    source = protocol[name].derived_from
    support = clean != 0
    frames, support = _apply_geometry(np.asarray(clean, np.float32)[None], support, rec, affine)
    if name in _WASH_MAPS and source in images and images[source].ndim == 4:
        recomputed = wash_in_out(images[source])[_WASH_MAPS[name]]
        frames = (recomputed * support)[None]
        rec["recomputed_from"] = source
    frames, _ = _apply_fov(frames, support, rec)
    return frames[0].astype(np.float32)


def _plans(subject, protocol, cfg, seed, index, skull_stripped, reference) -> dict[str, dict[str, dict]]:
    streams = np.random.SeedSequence([int(seed), int(index), _REALISM_STREAM]).spawn(len(EFFECTS))
    rngs = {e: np.random.default_rng(s) for e, s in zip(EFFECTS, streams, strict=True)}
    names = [n for n in protocol.names if n in subject.images]
    plans: dict[str, dict[str, dict]] = {}
    for effect in cfg.effects:
        rng = rngs[effect]
        if effect == "misalign":
            plans[effect] = _plan_misalign(names, protocol, reference, cfg, rng, subject.affine, subject.label.shape)
        elif effect == "bias":
            plans[effect] = _plan_bias(names, protocol, cfg, rng)
        elif effect == "thickness":
            plans[effect] = _plan_thickness(names, protocol, cfg, rng, subject.affine)
        elif effect == "noise":
            plans[effect] = _plan_noise(names, protocol, cfg, rng)
        else:
            ref = subject.images[reference]
            plans[effect] = _plan_fov(names, protocol, reference, cfg, rng, ref, skull_stripped)
            for rec in plans[effect].values():
                rec["box_mm"] = _box_mm(rec["box_voxels"], subject.affine)
    return plans


def apply_realism(
    subject: PhantomSubject,
    protocol: Protocol,
    effects: str | Sequence[str] | RealismConfig = "clinical",
    seed: int = 0,
    index: int = 0,
    config: RealismConfig | None = None,
    **levels,
) -> PhantomSubject:
    """The subject as a clinical acquisition would give it: a new subject with the truth in ``info["realism"]``.

    Args:
        subject: a generated subject (physical intensities; not changed).
        protocol: its protocol (``BRAIN`` or ``BREAST``).
        effects: ``"clinical"`` (all of :data:`EFFECTS`), one effect, a comma list or a sequence of names, or a
            :class:`RealismConfig` (then ``config`` is ignored).
        seed, index: the cohort seed and subject index; with ``effects`` and the levels they fix the result bit
            for bit.
        config: levels of the effects (default :class:`RealismConfig`); ``effects`` replaces its effect list.
        levels: :class:`RealismConfig` fields to override, e.g. ``snr=10`` or ``thickness_mm={"FLAIR": 6.0}``.

    Returns:
        A :class:`PhantomSubject` with the same label, unique masks, affine and frame values, corrupted images
        (float32, same shapes) and ``info["realism"]``: effects, settings, seed, and per sequence the true
        parameters of each effect (bias coefficients, noise sigma, slice thickness/profile/centres, the 4x4
        misalignment matrix in world mm, the field-of-view box in voxels and mm).

    Raises:
        ValueError: unknown effects or levels, a reference sequence the subject lacks, or a thickness for a
            sequence the protocol does not have.
    """
    if isinstance(effects, RealismConfig):
        cfg = _with_levels(effects, levels)
    else:
        cfg = _with_levels(dataclasses.replace(config or RealismConfig(), effects=parse_effects(effects)), levels)
    reference = protocol.canonical(cfg.reference) if cfg.reference else protocol.names[0]
    if reference not in subject.images:
        raise ValueError(f"reference sequence {reference!r} is not among the subject's {list(subject.images)}.")
    skull_stripped = (protocol.name == "brain") if cfg.skull_stripped is None else bool(cfg.skull_stripped)
    plans = _plans(subject, protocol, cfg, seed, index, skull_stripped, reference)
    records: dict[str, dict] = {name: {} for name in subject.images}
    for effect, plan in plans.items():
        for name, rec in plan.items():
            records[name][effect] = copy.deepcopy(rec)
    images: dict[str, np.ndarray] = {}
    order = [n for n in subject.images if protocol[n].derived_from is None]
    order += [n for n in subject.images if protocol[n].derived_from is not None]
    for name in order:
        if protocol[name].derived_from is None:
            images[name] = _corrupt(subject.images[name], records[name], subject.affine, skull_stripped)
        else:
            images[name] = _derived(name, subject.images[name], images, records[name], protocol, subject.affine)
    info = copy.deepcopy(subject.info)
    info["realism"] = {
        "effects": list(cfg.effects),
        "seed": int(seed),
        "index": int(index),
        "stream": _REALISM_STREAM,
        "settings": cfg.as_dict(),
        "reference": reference,
        "skull_stripped": skull_stripped,
        "labels_frame": f"reference ({reference}): label and unique masks are not moved, cropped or resampled",
        "grid": {"shape": list(subject.label.shape), "affine": np.asarray(subject.affine).tolist()},
        "sequences": records,
    }
    return PhantomSubject(
        subject=subject.subject,
        images={n: images[n] for n in subject.images},
        label=subject.label,
        unique=subject.unique,
        affine=subject.affine,
        frame_values=copy.deepcopy(subject.frame_values),
        info=info,
        fractions=subject.fractions,
    )
