"""Breast phantom subjects: T1, FatSatT1, T2, DCE (6 frames), FatSatDCE (6), WashIn, WashOut, DWI (4 b-values).

Geometry (mm, RAS: x right, y anterior, z superior, centred on the field of view): a torso (elliptic cylinder)
with skin, subcutaneous fat, pectoral muscle and a dark thorax; two breasts (half-ellipsoids of random size on
the chest wall) of fat with fibroglandular tissue (FGT) as smooth random blobs, optional cysts and one
irregular lesion whose kinetic type is persistent, plateau or washout. Tissues combine by partial volume.

- DCE: ``S(t) = S0 (1 + A (1 - exp(-a t)) exp(-b t))`` per tissue, ``S0`` = the T1 signal, so frame 0 is the
  pre-contrast T1 image; fat saturation multiplies fat by ``FAT_SATURATION_FACTOR``.
- A bias field per acquisition (DCE shares the T1's, FatSatDCE the FatSatT1's: ``BIAS_GROUPS``) and a global
  scale per sequence; Rician noise per frame.
- WashIn/WashOut: derived from the (noisy) DCE series by :func:`~.signal.wash_in_out`, inside the body (0 in air)
  and where the pre-contrast signal is not too dark to measure a relative change (0 there too).
- DWI: ``S(b) = S0 (f exp(-b D*) + (1 - f) exp(-b ADC))``, fat suppressed.

Planted regions: the lesion's enhancement (``unique-DCE``) and its restricted diffusion (``unique-DWI``).

Mimics of the planted regions (labels 4 and 5, ``BREAST_MIMICS``): a haematoma elsewhere in the breast, as bright
as the lesion on the DCE series (mean over frames) but bright before contrast and non-enhancing, so T1/FatSatT1
predict it; and a cyst beside the lesion whose long T2 makes it as bright as the lesion on DWI (mean over
b-values) without restricted diffusion, so T2 predicts it. Their T1 (haematoma) and T2 (cyst) are solved per
subject from the lesion's own parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from monai_seq2seq.core.protocols import DCE_TIMES_S, DWI_BVALUES
from monai_seq2seq.phantoms import anatomy
from monai_seq2seq.phantoms.signal import enhancement, ivim_attenuation, partial_volume, sequence_signal, wash_in_out
from monai_seq2seq.phantoms.subject import PhantomSubject
from monai_seq2seq.phantoms.tissues import (
    BIAS_GROUPS,
    BREAST_KINETICS,
    BREAST_LABELS,
    BREAST_MIMICS,
    BREAST_SEQUENCES,
    BREAST_TISSUES,
    FAT_SATURATION_FACTOR,
    INTENSITY_SCALE,
    KINETIC_TYPES,
    LESION_KINETIC_RANGES,
    Kinetics,
    Tissue,
)

__all__ = ["BreastPhantomConfig", "generate_breast_subject", "breast_subject_id", "lesion_kinetics"]

_BREAST_STREAM = 0xB4EA


@dataclass(frozen=True)
class BreastPhantomConfig:
    """Settings of the breast phantom.

    Args:
        shape: grid shape ``(X, Y, Z)`` (x left-right, y posterior-anterior, z inferior-superior).
        spacing: voxel size in mm (scalar or 3 values); the field of view is ``shape * spacing`` about 0.
        snr: signal-to-noise ratio (mean body signal / noise sigma) of the Rician noise; ``None`` = no noise.
        bias_strength: standard deviation of the bias-field polynomial coefficients (0 = none).
        intensity_jitter: per-sequence global scale drawn log-uniformly in ``[1/(1+j), 1+j]`` (0 = none).
        max_cysts: up to this many cysts (uniform 0..max).
        lesion_radius_mm: range of the lesion radius.
        mimics: add the lesion's mimics (a haematoma for the DCE series, a shine-through cyst for DWI).
        mimic_radius_mm: range of a mimic's radii.
        kinetic_type: force ``"persistent"``, ``"plateau"`` or ``"washout"``; ``None`` draws one.
        dce_times: DCE frame times in s (default: the protocol's).
        bvalues: DWI b-values in s/mm^2 (default: the protocol's).
        wash_eps: denominator floor of wash-in/wash-out.
        wash_min_signal_fraction: wash maps are 0 where the pre-contrast (wash-in) or first post-contrast
            (wash-out) signal is below this fraction of that frame's 99th percentile; ``None``: the transforms'
            default (:data:`~monai_seq2seq.transforms.dce.DEFAULT_MIN_SIGNAL_FRACTION`), 0: no threshold.
        keep_fractions: also return the tissue fraction maps.
        id_prefix: subject id prefix; ids are ``f"{id_prefix}{index:05d}"``.
    """

    shape: Sequence[int] = (160, 96, 64)
    spacing: float | Sequence[float] = 2.0
    snr: float | None = 40.0
    bias_strength: float = 0.12
    intensity_jitter: float = 0.2
    max_cysts: int = 3
    lesion_radius_mm: tuple[float, float] = (6.0, 12.0)
    mimics: bool = True
    mimic_radius_mm: tuple[float, float] = (5.0, 9.0)
    kinetic_type: str | None = None
    dce_times: Sequence[float] = DCE_TIMES_S
    bvalues: Sequence[float] = DWI_BVALUES
    wash_eps: float = 1e-6
    wash_min_signal_fraction: float | None = None
    keep_fractions: bool = False
    id_prefix: str = "BreastPhantom_"


def breast_subject_id(index: int, config: BreastPhantomConfig | None = None) -> str:
    """Subject id of cohort member ``index``."""
    return f"{(config or BreastPhantomConfig()).id_prefix}{int(index):05d}"


def lesion_kinetics(kinetic_type: str, rng: np.random.Generator) -> Kinetics:
    """Draw lesion kinetic parameters of the given type from ``LESION_KINETIC_RANGES``."""
    if kinetic_type not in LESION_KINETIC_RANGES:
        raise ValueError(f"unknown kinetic type {kinetic_type!r}; use one of {KINETIC_TYPES}.")
    (a0, a1), (u0, u1), (w0, w1) = LESION_KINETIC_RANGES[kinetic_type]
    return Kinetics(
        amplitude=float(rng.uniform(a0, a1)),
        uptake=float(rng.uniform(u0, u1)),
        washout=float(rng.uniform(w0, w1)) if w1 > w0 else float(w0),
    )


def _ellipsoid_sd(coords, centre, radii) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to an axis-aligned ellipsoid (``None`` radius = infinite)."""
    g2, h2 = 0.0, 0.0
    for c, x0, r in zip(coords, centre, radii, strict=True):
        if r is None:
            continue
        q = (c - x0) / r
        g2 = g2 + q * q
        h2 = h2 + (q / r) ** 2
    g = np.sqrt(g2)
    return ((g - 1.0) * g / np.sqrt(np.maximum(h2, 1e-12))).astype(np.float32)


class _Painter:
    """Layered partial-volume composition: each layer covers a fraction ``alpha`` of what lies below."""

    def __init__(self, shape):
        self.fractions: dict[str, np.ndarray] = {"air": np.ones(shape, dtype=np.float32)}

    def paint(self, name: str, alpha: np.ndarray) -> None:
        alpha = np.asarray(alpha, dtype=np.float32)
        keep = 1.0 - alpha
        for arr in self.fractions.values():
            arr *= keep
        if name in self.fractions:
            self.fractions[name] += alpha
        else:
            self.fractions[name] = alpha.copy()


def _grid(config: BreastPhantomConfig):
    shape = tuple(int(s) for s in config.shape)
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"shape must be 3 sizes >= 4, got {config.shape}.")
    sp = np.broadcast_to(np.asarray(config.spacing, dtype=np.float64), (3,)).copy()
    if np.any(sp <= 0):
        raise ValueError(f"spacing must be positive, got {config.spacing}.")
    affine = np.eye(4)
    affine[:3, :3] = np.diag(sp)
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2.0 * sp
    coords = [((np.arange(n) - (n - 1) / 2.0) * s).astype(np.float32) for n, s in zip(shape, sp, strict=True)]
    coords = [coords[0][:, None, None], coords[1][None, :, None], coords[2][None, None, :]]
    return shape, sp, affine, coords


def _geometry(shape, sp, coords, cfg: BreastPhantomConfig, rng: np.random.Generator, rng_mimic: np.random.Generator):
    """Tissue fraction maps and geometry parameters."""
    x, y, z = coords
    width = float(np.mean(sp))
    full = lambda a: np.broadcast_to(a, shape)  # noqa: E731
    wall = float(rng.uniform(-45.0, -30.0))  # anterior surface of the chest (mm)
    torso_r = (float(rng.uniform(150.0, 175.0)), float(rng.uniform(100.0, 120.0)))
    torso_c = (0.0, wall - torso_r[1], 0.0)
    skin, subcut, muscle = float(rng.uniform(1.5, 2.5)), float(rng.uniform(4.0, 10.0)), float(rng.uniform(8.0, 15.0))
    sd_torso = full(_ellipsoid_sd((x, y, z), torso_c, (torso_r[0], torso_r[1], None)))
    breasts, sd_breasts = [], []
    z0 = float(rng.uniform(-8.0, 8.0))
    for side in (-1.0, 1.0):
        radii = (float(rng.uniform(45.0, 62.0)), float(rng.uniform(45.0, 80.0)), float(rng.uniform(45.0, 58.0)))
        centre = (side * (radii[0] + float(rng.uniform(8.0, 16.0))), wall - 5.0, z0 + float(rng.uniform(-4.0, 4.0)))
        breasts.append({"centre": centre, "radii": radii})
        sd_breasts.append(_ellipsoid_sd((x, y, z), centre, radii))
    sd_breast = np.minimum(sd_breasts[0], sd_breasts[1])
    sd_body = np.minimum(sd_torso, sd_breast)
    paint = _Painter(shape)
    paint.paint("skin", anatomy.ramp(sd_body, width))
    paint.paint("fat", anatomy.ramp(sd_body + skin, width))
    paint.paint("muscle", anatomy.ramp(sd_torso + skin + subcut, width))
    paint.paint("thorax", anatomy.ramp(sd_torso + skin + subcut + muscle, width))
    # FGT: smooth random blobs in the breasts' interior, denser towards the nipple-chest axis
    margin = float(rng.uniform(6.0, 12.0))
    inner = anatomy.ramp(sd_breast + margin, width) * anatomy.ramp(wall + 4.0 - y, width)
    field = anatomy.smooth_random_field(shape, 8.0 / sp, rng)
    field += 0.5 * anatomy.smooth_random_field(shape, 2.5 / sp, rng)  # fine strands
    field += 1.5 * np.clip(-sd_breast / 30.0, 0.0, 1.0)
    density = float(rng.uniform(0.2, 0.6))
    inside = inner > 0.5
    thr = float(np.quantile(field[inside], 1.0 - density)) if inside.any() else np.inf
    fgt_alpha = inner * anatomy.ramp(thr - field, 0.5)
    paint.paint("FGT", fgt_alpha)
    # candidate centres deep inside the breasts
    deep = np.flatnonzero((sd_breast < -margin - 8.0) & np.broadcast_to(y > wall + 10.0, shape))
    if deep.size == 0:
        deep = np.flatnonzero(inner > 0.5)
    dist_axes = lambda c: np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)  # noqa: E731
    cysts = []
    n_cysts = int(rng.integers(0, cfg.max_cysts + 1)) if cfg.max_cysts > 0 and deep.size else 0
    for _ in range(n_cysts):
        c = [float(coords[i].ravel()[v]) for i, v in enumerate(np.unravel_index(int(rng.choice(deep)), shape))]
        radii = tuple(float(rng.uniform(3.0, 7.0)) for _ in range(3))
        cysts.append({"centre": c, "radii": radii})
        paint.paint("cyst", anatomy.ramp(_ellipsoid_sd((x, y, z), c, radii), width))
    # lesion: irregular mass (painted last, over its mimics)
    lesion, mimics = {}, {}
    if deep.size:
        c = [float(coords[i].ravel()[v]) for i, v in enumerate(np.unravel_index(int(rng.choice(deep)), shape))]
        radius = float(rng.uniform(*cfg.lesion_radius_mm))
        n_shape = anatomy.smooth_random_field(shape, 3.0 / sp, rng)
        alpha = anatomy.ramp(dist_axes(c) - radius * (1.0 + 0.3 * n_shape), width)
        lesion = {"centre_mm": c, "radius_mm": radius}
        if cfg.mimics:
            mimics = _paint_mimics(paint, (x, y, z), sd_breast, deep, lesion, cfg, rng_mimic, width)
        paint.paint("lesion", alpha)
    for name in ("cyst", "lesion", *BREAST_MIMICS.values()):
        paint.fractions.setdefault(name, np.zeros(shape, dtype=np.float32))
    info = {"chest_wall_mm": wall, "breasts": breasts, "cysts": cysts, "lesion": lesion, "fgt_density": density}
    info["mimics"] = mimics
    return paint.fractions, info


def _paint_mimics(paint: _Painter, xyz, sd_breast, deep, lesion: dict, cfg, rng: np.random.Generator, width: float):
    """Paint the haematoma (away from the lesion) and the shine-through cyst (beside it); return their geometry."""
    shape = sd_breast.shape
    lc, lr = np.asarray(lesion["centre_mm"]), float(lesion["radius_mm"])
    pos = np.stack([xyz[i].ravel()[np.unravel_index(deep, shape)[i]] for i in range(3)], axis=1)
    out = {}
    # the cyst: touching the lesion's outer boundary (irregularity up to +30 %) in a random direction
    r_c = tuple(float(rng.uniform(*cfg.mimic_radius_mm)) for _ in range(3))
    for _ in range(32):
        u = rng.standard_normal(3)
        centre = lc + u / np.linalg.norm(u) * (1.35 * lr + max(r_c) + 1.0)
        index = tuple(int(np.argmin(np.abs(xyz[i].ravel() - centre[i]))) for i in range(3))
        if sd_breast[index] < -max(r_c) - 2.0:
            paint.paint("shine_cyst", anatomy.ramp(_ellipsoid_sd(xyz, centre.tolist(), r_c), width))
            out["shine_cyst"] = {"centre_mm": centre.tolist(), "radii_mm": list(r_c)}
            break
    # the haematoma: anywhere deep in the breasts, clear of the lesion and the cyst
    r_h = tuple(float(rng.uniform(*cfg.mimic_radius_mm)) for _ in range(3))
    clear = np.linalg.norm(pos - lc, axis=1) > 1.4 * lr + max(r_h) + 4.0
    if "shine_cyst" in out:
        clear &= np.linalg.norm(pos - np.asarray(out["shine_cyst"]["centre_mm"]), axis=1) > max(r_c) + max(r_h) + 4.0
    if clear.any():
        centre = pos[int(rng.choice(np.flatnonzero(clear)))]
        paint.paint("haematoma", anatomy.ramp(_ellipsoid_sd(xyz, centre.tolist(), r_h), width))
        out["haematoma"] = {"centre_mm": centre.tolist(), "radii_mm": list(r_h)}
    return out


def _t1_for_signal(tissue: Tissue, signal: float, timing) -> float:
    """T1 (ms) giving the spin-echo ``signal`` at ``timing`` for the tissue's PD and T2."""
    recovery = np.clip(signal / (tissue.pd * np.exp(-timing.te / tissue.t2)), 1e-6, 1.0 - 1e-6)
    return float(-timing.tr / np.log1p(-recovery))


def _t2_for_signal(tissue: Tissue, signal: float, timing) -> float:
    """T2 (ms) giving the spin-echo ``signal`` at ``timing`` for the tissue's PD and T1."""
    decay = np.clip(signal / (tissue.pd * (1.0 - np.exp(-timing.tr / tissue.t1))), 1e-6, 1.0 - 1e-6)
    return float(-timing.te / np.log(decay))


NORMALISATION_PERCENTILES = (0.5, 99.5)
"""The bundles' intensity normalisation (paper: one scale for all frames of a sequence, clipped to [0, 1]); the
mimics are calibrated in this space because it is the one the decisive check scores."""


def _normalised_frame_mean(frames: np.ndarray, low: float, high: float) -> np.ndarray:
    """Mean over frames of ``frames`` (F, N) clipped to [low, high] and scaled to [0, 1]: shape (N,)."""
    return np.clip((frames - low) / max(high - low, 1e-12), 0.0, 1.0).mean(0)


def _solve_mimic_signal(others: np.ndarray, unit: np.ndarray, lesion: np.ndarray, voxels: np.ndarray) -> float:
    """Signal of a mimic whose normalised mean over frames has the lesion's median.

    Args:
        others: (F, X, Y, Z) the sequence's frames without the mimic (its signal set to 0), bias included.
        unit: (F, X, Y, Z) the mimic's contribution per unit of its signal (fraction x bias x frame weight).
        lesion, voxels: (X, Y, Z) masks of the lesion and of the mimic.

    Returns:
        The signal (bisection: the mimic's median grows monotonically with it). The normalisation's percentiles
        are taken over the whole sequence, first without the mimic and then with it at the first solution.
    """
    base, per_unit = others[:, voxels], unit[:, voxels]
    signal = 0.0
    for _ in range(2):
        low, high = np.percentile(others + unit * signal, NORMALISATION_PERCENTILES)
        target = float(np.median(_normalised_frame_mean(others[:, lesion], low, high)))
        lo, hi = 0.0, 50.0 * (high - low) / max(float(per_unit.max()), 1e-6)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            below = np.median(_normalised_frame_mean(base + per_unit * mid, low, high)) < target
            lo, hi = (mid, hi) if below else (lo, mid)
        signal = 0.5 * (lo + hi)
    return signal


def _calibrate_mimics(fr, enh: Mapping[str, np.ndarray], bvals, bias_dce, bias_dwi) -> dict[str, Tissue]:
    """The breast tissues with the mimics' free parameter solved for this subject.

    Each mimic's signal is solved so that its median over its label voxels of the sequence's normalised mean over
    frames (:data:`NORMALISATION_PERCENTILES`, clipping included; bias field and partial volume too) equals the
    lesion's: the haematoma's on DCE, the shine-through cyst's on DWI. Raw normalised intensity then separates
    lesion and mimic at chance. The haematoma's T1 and the cyst's T2 follow from those signals.
    """
    tissues = dict(BREAST_TISSUES)
    t1w, dwi = BREAST_SEQUENCES["T1"], BREAST_SEQUENCES["DWI"]
    lesion = fr["lesion"] >= 0.5
    for mimic, timing, bias in (("haematoma", t1w, bias_dce), ("shine_cyst", dwi, bias_dwi)):
        voxels = fr[mimic] >= 0.5
        if not (voxels.any() and lesion.any()):
            continue
        if mimic == "haematoma":  # DCE frames; the haematoma does not enhance
            base = _signals(t1w, fat_sat=False, tissues=tissues)
            weights = [{k: 1.0 + float(e[f]) for k, e in enh.items()} for f in range(len(next(iter(enh.values()))))]
            frame_signals = [{k: v * w.get(k, 1.0) for k, v in base.items()} for w in weights]
            unit_weights = [1.0] * len(weights)
        else:  # DWI frames; the cyst's diffusion is free
            base = _signals(dwi, fat_sat=True, tissues=tissues)
            att = {k: ivim_attenuation(bvals, t.adc, t.perfusion_fraction) for k, t in tissues.items()}
            frame_signals = [{k: v * float(att[k][i]) for k, v in base.items()} for i in range(len(bvals))]
            unit_weights = [float(a) for a in att[mimic]]
        others = np.stack([partial_volume(fr, {**s, mimic: 0.0}) * bias for s in frame_signals])
        unit = np.stack([fr[mimic] * bias * np.float32(w) for w in unit_weights])
        signal = _solve_mimic_signal(others, unit, lesion, voxels)
        solve = _t1_for_signal if mimic == "haematoma" else _t2_for_signal
        field = "t1" if mimic == "haematoma" else "t2"
        tissues[mimic] = replace(tissues[mimic], **{field: solve(tissues[mimic], signal, timing)})
    return tissues


def _signals(timing, fat_sat: bool, tissues: Mapping[str, Tissue] = BREAST_TISSUES) -> dict[str, float]:
    out = {}
    for name, t in tissues.items():
        s = float(sequence_signal(t.pd, t.t1, t.t2, timing))
        out[name] = s * FAT_SATURATION_FACTOR if (fat_sat and t.fat) else s
    return out


def generate_breast_subject(seed: int = 0, index: int = 0, config: BreastPhantomConfig | None = None) -> PhantomSubject:
    """Generate breast phantom subject ``index`` of the cohort ``seed``, deterministically.

    Args:
        seed: cohort seed.
        index: subject index (>= 0).
        config: phantom settings.

    Returns:
        :class:`~.subject.PhantomSubject` with 3D images ``T1, FatSatT1, T2, WashIn, WashOut`` (``(X, Y, Z)``) and
        4D ``DCE, FatSatDCE`` (``(6, X, Y, Z)``) and ``DWI`` (``(4, X, Y, Z)``), all float32; the label map
        (1 FGT, 2 cyst, 3 lesion, 4 haematoma, 5 shine-through cyst), ``unique["DCE"]`` and ``unique["DWI"]``
        (the lesion), the affine and frame values.
    """
    cfg = config or BreastPhantomConfig()
    if index < 0:
        raise ValueError(f"subject index must be >= 0, got {index}.")
    shape, sp, affine, coords = _grid(cfg)
    streams = np.random.SeedSequence([int(seed), int(index), _BREAST_STREAM]).spawn(5)
    rng_geo, rng_kin, rng_seq, rng_noise, rng_mimic = (np.random.default_rng(s) for s in streams)
    fr, info = _geometry(shape, sp, coords, cfg, rng_geo, rng_mimic)

    ktype = cfg.kinetic_type if cfg.kinetic_type is not None else str(rng_kin.choice(KINETIC_TYPES))
    kin = dict(BREAST_KINETICS)
    kin["lesion"] = lesion_kinetics(ktype, rng_kin)
    info.update(
        {
            "kinetic_type": ktype,
            "lesion_kinetics": vars(kin["lesion"]).copy(),
            "seed": int(seed),
            "index": int(index),
            "spacing": sp.tolist(),
            "shape": list(shape),
        }
    )
    times = [float(t) for t in cfg.dce_times]
    bvals = [float(b) for b in cfg.bvalues]
    body = (1.0 - fr["air"]) > 0.5
    names = ("T1", "FatSatT1", "T2", "DCE", "FatSatDCE", "DWI")
    jitter = np.log1p(max(cfg.intensity_jitter, 0.0))
    gains: dict[str, float] = {}
    biases: dict[str, np.ndarray] = {}
    for name in names:  # acquisition settings first: the mimics are calibrated under the bias fields
        gains[name] = (
            INTENSITY_SCALE * float(np.exp(rng_seq.uniform(-jitter, jitter))) if jitter > 0 else INTENSITY_SCALE
        )
        group = BIAS_GROUPS.get(name, name)
        if group not in biases:
            biases[group] = anatomy.bias_field(shape, rng_seq, cfg.bias_strength)
    enh = {name: enhancement(k, times) for name, k in kin.items()}
    tissues = _calibrate_mimics(fr, enh, bvals, biases[BIAS_GROUPS.get("DCE", "DCE")], biases["DWI"])
    info["mimic_tissues"] = {k: vars(tissues[k]).copy() for k in set(BREAST_MIMICS.values())}

    t1 = _signals(BREAST_SEQUENCES["T1"], fat_sat=False, tissues=tissues)
    t1fs = _signals(BREAST_SEQUENCES["T1"], fat_sat=True, tissues=tissues)
    clean: dict[str, np.ndarray] = {
        "T1": partial_volume(fr, t1),
        "FatSatT1": partial_volume(fr, t1fs),
        "T2": partial_volume(fr, _signals(BREAST_SEQUENCES["T2"], fat_sat=False, tissues=tissues)),
    }
    for name, base in (("DCE", t1), ("FatSatDCE", t1fs)):
        frames = []
        for f in range(len(times)):
            sig = {k: v * (1.0 + float(enh[k][f])) if k in enh else v for k, v in base.items()}
            frames.append(partial_volume(fr, sig))
        clean[name] = np.stack(frames)
    s0 = _signals(BREAST_SEQUENCES["DWI"], fat_sat=True, tissues=tissues)
    att = {k: ivim_attenuation(bvals, t.adc, t.perfusion_fraction) for k, t in tissues.items()}
    clean["DWI"] = np.stack([partial_volume(fr, {k: s0[k] * float(att[k][i]) for k in s0}) for i in range(len(bvals))])

    images: dict[str, np.ndarray] = {}
    for name in names:
        img = clean.pop(name)
        gain = gains[name]
        img *= biases[BIAS_GROUPS.get(name, name)] * np.float32(gain)
        if cfg.snr:
            ref = img[0] if img.ndim == 4 else img
            sigma = float(ref[body].mean()) / float(cfg.snr) if body.any() else 0.0
            nrng = np.random.default_rng(rng_noise.integers(2**63))
            img = anatomy.add_rician_noise(img, sigma, nrng)
        images[name] = img.astype(np.float32, copy=False)
        info[f"gain_{name}"] = gain
    # masked to the body and to tissue bright enough before contrast, as clinical parametric maps are: in air
    # and dark tissue they are ratios of noise, which no other sequence could (or should) predict
    wash_in, wash_out = wash_in_out(images["DCE"], cfg.wash_eps, cfg.wash_min_signal_fraction)
    images["WashIn"], images["WashOut"] = wash_in * body, wash_out * body

    label = np.zeros(shape, dtype=np.uint8)
    for name in ("FGT", "cyst", "haematoma", "shine_cyst", "lesion"):
        label[fr[name] >= 0.5] = BREAST_LABELS[name]
    lesion_mask = (fr["lesion"] >= 0.5).astype(np.uint8)
    restricted = BREAST_TISSUES["lesion"].adc < 0.75 * BREAST_TISSUES["FGT"].adc
    unique = {"DCE": lesion_mask.copy(), "DWI": lesion_mask.copy() if restricted else np.zeros_like(lesion_mask)}
    order = ("T1", "FatSatT1", "T2", "DCE", "FatSatDCE", "WashIn", "WashOut", "DWI")
    return PhantomSubject(
        subject=breast_subject_id(index, cfg),
        images={k: images[k] for k in order},
        label=label,
        unique=unique,
        affine=affine,
        frame_values={"DCE": times, "FatSatDCE": times, "DWI": bvals},
        info=info,
        fractions=fr if cfg.keep_fractions else None,
    )
