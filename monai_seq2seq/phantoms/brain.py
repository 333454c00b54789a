"""Brain phantom subjects (T1, T1Gd, T2, FLAIR) on MNI ICBM152 2009a anatomy with a glioma-like tumour.

One subject is a deterministic function of ``(seed, index, config)``: a smooth random deformation and global
scaling of the template, a tumour in deep white matter (necrosis, non-enhancing and enhancing tumour,
oedema; BraTS labels 1/2/4), partial-volume spin-echo/inversion-recovery signals, a bias field per
acquisition (T1 and T1Gd share one, see ``BIAS_GROUPS``), a per-sequence global scale, Rician noise and
skull stripping (background exactly 0).

The enhancing tumour (ET) is a random irregular part of the tumour whose pre-contrast relaxation equals the
non-enhancing tumour; only gadolinium (``1/T1post = 1/T1 + r1 C``) distinguishes it, so it is information only
T1Gd carries: the planted ``unique-T1Gd`` region.

Mimics (label 5): a few blobs of subacute blood products in the parenchyma away from the tumour, as bright on
T1Gd as the subject's ET but equally bright on T1 (their T1 is short before contrast) and dark on T2 and FLAIR.
Brightness alone cannot separate ET from them; a map of what the other sequences cannot predict can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from monai_seq2seq.core.protocols import BRAIN
from monai_seq2seq.phantoms import anatomy
from monai_seq2seq.phantoms.signal import gadolinium_t1, partial_volume, sequence_signal
from monai_seq2seq.phantoms.subject import PhantomSubject
from monai_seq2seq.phantoms.tissues import (
    BIAS_GROUPS,
    BRAIN_LABELS,
    BRAIN_MIMIC,
    BRAIN_SEQUENCES,
    BRAIN_TISSUES,
    GADOLINIUM_CONCENTRATION_MM,
    GADOLINIUM_R1,
    INTENSITY_SCALE,
)

__all__ = ["BrainPhantomConfig", "generate_brain_subject", "brain_subject_id"]

_BRAIN_STREAM = 0xB5A1


@dataclass(frozen=True)
class BrainPhantomConfig:
    """Settings of the brain phantom.

    Args:
        spacing: output voxel size in mm (scalar or 3 values); 1.0 is the template grid (197 x 233 x 189).
        shape: output grid shape; overrides ``spacing`` (the template's field of view is split into it).
        snr: signal-to-noise ratio (mean brain signal / noise sigma) of the Rician noise; ``None`` = no noise.
        bias_strength: standard deviation of the bias-field polynomial coefficients (0 = none).
        intensity_jitter: per-sequence global scale drawn log-uniformly in ``[1/(1+j), 1+j]`` (0 = none).
        deformation_mm: standard deviation of the smooth random displacement in mm (0 = none).
        control_spacing_mm: B-spline control point distance of the deformation in mm.
        scale_range: range of the global subject size factor.
        tumour: whether to add a tumour.
        tumour_radius_mm: range of the tumour (NCR + ET) radius.
        necrosis_ratio: range of the necrosis radius as a fraction of the tumour radius.
        oedema_margin_mm: range of the oedema thickness around the tumour.
        enhancing_fraction: range of the fraction of the tumour shell that enhances (random patches of it).
        irregularity: relative amplitude of the random boundary modulation.
        mimics: range (inclusive) of the number of blood-product blobs, the bright-but-predictable mimics of
            ET; ``(0, 0)`` = none. They need a tumour (their brightness is matched to its enhancement).
        mimic_radius_mm: range of a mimic blob's radius.
        keep_fractions: also return the tissue fraction maps (memory: 7 maps).
        id_prefix: subject id prefix; ids are ``f"{id_prefix}{index:05d}"``.
    """

    spacing: float | Sequence[float] = 1.0
    shape: Sequence[int] | None = None
    snr: float | None = 30.0
    bias_strength: float = 0.12
    intensity_jitter: float = 0.2
    deformation_mm: float = 2.5
    control_spacing_mm: float = 24.0
    scale_range: tuple[float, float] = (0.93, 1.07)
    tumour: bool = True
    tumour_radius_mm: tuple[float, float] = (12.0, 22.0)
    necrosis_ratio: tuple[float, float] = (0.3, 0.6)
    oedema_margin_mm: tuple[float, float] = (6.0, 16.0)
    enhancing_fraction: tuple[float, float] = (0.35, 0.7)
    irregularity: float = 0.25
    mimics: tuple[int, int] = (2, 4)
    mimic_radius_mm: tuple[float, float] = (4.0, 8.0)
    keep_fractions: bool = False
    id_prefix: str = "BraTS2021_"


def brain_subject_id(index: int, config: BrainPhantomConfig | None = None) -> str:
    """Subject id of cohort member ``index`` (BraTS style ``BraTS2021_00042``)."""
    return f"{(config or BrainPhantomConfig()).id_prefix}{int(index):05d}"


def _grid(config: BrainPhantomConfig) -> tuple[tuple[float, float, float], tuple[int, int, int]]:
    """Output spacing (mm) and shape."""
    base = anatomy.load_mni_template()
    extent = np.asarray(base.shape) * np.asarray(base.spacing)
    if config.shape is not None:
        shape = tuple(int(s) for s in config.shape)
        if len(shape) != 3 or min(shape) < 4:
            raise ValueError(f"shape must be 3 sizes >= 4, got {config.shape}.")
        spacing = tuple(float(v) for v in extent / np.asarray(shape))
        return spacing, shape
    sp = np.broadcast_to(np.asarray(config.spacing, dtype=np.float64), (3,))
    if np.any(sp <= 0):
        raise ValueError(f"spacing must be positive, got {config.spacing}.")
    shape = tuple(int(max(4, np.floor(e / s + 1e-6))) for e, s in zip(extent, sp, strict=True))
    return tuple(float(v) for v in sp), shape


@lru_cache(maxsize=1)
def _template_box() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounding box (lo, hi) and centre of mass of the template brain, in template voxels."""
    t = anatomy.load_mni_template()
    brain = (t.gm + t.wm + t.csf) > 0.01
    idx = np.nonzero(brain)
    lo = np.array([i.min() for i in idx], dtype=np.float64)
    hi = np.array([i.max() for i in idx], dtype=np.float64)
    return lo, hi, np.array([i.mean() for i in idx], dtype=np.float64)


def _crop(shape, factor, centre, scale, margin) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output-grid crop whose (undeformed) template coordinates can reach the brain."""
    lo, hi, _ = _template_box()
    start, stop = [], []
    for ax in range(3):
        g = (np.arange(shape[ax]) + 0.5) * factor[ax] - 0.5
        u = centre[ax] + (g - centre[ax]) / scale
        ok = np.nonzero((u >= lo[ax] - margin - 1) & (u <= hi[ax] + margin + 1))[0]
        start.append(int(ok.min()) if ok.size else 0)
        stop.append(int(ok.max()) + 1 if ok.size else shape[ax])
    return tuple(start), tuple(stop)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def _tumour(fr: dict[str, np.ndarray], spacing, config: BrainPhantomConfig, rng: np.random.Generator) -> dict:
    """Carve a tumour into the crop's fraction maps (in place); return lesion fractions/box/concentration."""
    sp = np.asarray(spacing, dtype=np.float64)
    width = float(np.mean(sp))  # partial-volume transition of one voxel, in mm
    candidates = np.flatnonzero(fr["WM"] > 0.95)
    if candidates.size == 0:
        candidates = np.flatnonzero(fr["WM"] > 0.5)
    if candidates.size == 0:
        return {}
    centre = np.array(np.unravel_index(int(rng.choice(candidates)), fr["WM"].shape))
    r_t = _uniform(rng, config.tumour_radius_mm)
    r_n = r_t * _uniform(rng, config.necrosis_ratio)
    r_e = r_t + _uniform(rng, config.oedema_margin_mm)
    et_fraction = _uniform(rng, config.enhancing_fraction)
    conc = _uniform(rng, GADOLINIUM_CONCENTRATION_MM)
    reach = (r_e * (1.0 + 3.0 * config.irregularity) + 2.0 * width) / sp
    lo = np.maximum(centre - np.ceil(reach).astype(int), 0)
    hi = np.minimum(centre + np.ceil(reach).astype(int) + 1, fr["WM"].shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    bshape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
    axes = [(np.arange(lo[i], hi[i]) - centre[i]) * sp[i] for i in range(3)]
    dist = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
    sigma = 6.0 / sp  # 6 mm correlation length of the irregularities
    n_shape = anatomy.smooth_random_field(bshape, sigma, rng)
    n_oedema = anatomy.smooth_random_field(bshape, sigma * 1.5, rng)
    n_et = anatomy.smooth_random_field(bshape, 4.0 / sp, rng)
    n_gd = anatomy.smooth_random_field(bshape, sigma, rng)
    irr = config.irregularity
    sd_t = dist - r_t * (1.0 + irr * n_shape)
    sig_n = anatomy.ramp(dist - r_n * (1.0 + irr * n_shape), width)
    sig_t = np.maximum(anatomy.ramp(sd_t, width), sig_n)
    sig_e = np.maximum(anatomy.ramp(dist - r_e * (1.0 + 1.2 * irr * n_oedema), width), sig_t)
    # enhancing part: random patches of the tumour shell, independent of the shell's geometry, so that no
    # pre-contrast sequence tells where they are (a rim-weighted choice would be predictable from T2/FLAIR)
    shell = (sig_t - sig_n) > 0.5
    thr = float(np.quantile(n_et[shell], 1.0 - et_fraction)) if shell.any() else np.inf
    m_et = anatomy.ramp(thr - n_et, 0.3)
    gm, wm, csf = fr["GM"][box], fr["WM"][box], fr["CSF"][box]
    brain = gm + wm + csf
    f_nec = sig_n * brain
    f_tum = (sig_t - sig_n) * brain
    f_et = f_tum * m_et
    f_net = f_tum - f_et
    keep = 1.0 - sig_t
    gm *= keep
    wm *= keep
    csf *= keep
    oedema_share = np.clip((sig_e - sig_t) / np.maximum(keep, 1e-6), 0.0, 1.0)
    f_oed = oedema_share * (gm + wm)
    gm *= 1.0 - oedema_share
    wm *= 1.0 - oedema_share
    concentration = (conc * np.clip(1.0 + 0.2 * n_gd, 0.5, 1.5)).astype(np.float32)
    return {
        "box": box,
        "fractions": {"necrosis": f_nec, "tumour": f_net, "enhancing": f_et, "oedema": f_oed},
        "concentration": concentration,
        "info": {
            "tumour_centre_voxel": centre.tolist(),  # in the crop; shifted to the grid by the caller
            "tumour_radius_mm": r_t,
            "necrosis_radius_mm": r_n,
            "oedema_radius_mm": r_e,
            "enhancing_fraction": et_fraction,
            "gd_concentration_mM": conc,
        },
    }


def _mimics(fr: dict[str, np.ndarray], spacing, config: BrainPhantomConfig, rng: np.random.Generator, tum: dict):
    """Carve blood-product blobs into the parenchyma away from the tumour (in place); return their boxes,
    fractions, per-voxel T1 and info. Empty without a tumour (their brightness is matched to its enhancement)."""
    lo_n, hi_n = config.mimics
    if not tum or hi_n <= 0:
        return []
    sp = np.asarray(spacing, dtype=np.float64)
    width = float(np.mean(sp))
    count = int(rng.integers(max(lo_n, 0), hi_n + 1))
    centre_t = np.asarray(tum["info"]["tumour_centre_voxel"], dtype=np.float64)
    keep_out = tum["info"]["oedema_radius_mm"] * (1.0 + 3.0 * config.irregularity)
    parenchyma = fr["GM"] + fr["WM"]
    blobs = []
    for _ in range(count):
        radius = _uniform(rng, config.mimic_radius_mm)
        reach = np.ceil((radius * (1.0 + 3.0 * 0.2) + 2.0 * width) / sp).astype(int)
        ok = parenchyma > 0.95
        for b in blobs:  # no overlap with earlier blobs
            ok[b["box"]] = False
        idx = np.flatnonzero(ok)
        if idx.size:
            pos = np.stack(np.unravel_index(idx, ok.shape), axis=1).astype(np.float64)
            far = np.sqrt((((pos - centre_t) * sp) ** 2).sum(1)) > keep_out + radius + 4.0
            inside = np.all((pos >= reach) & (pos < np.asarray(ok.shape) - reach), axis=1)
            idx = idx[far & inside]
        if idx.size == 0:
            break
        centre = np.array(np.unravel_index(int(rng.choice(idx)), ok.shape))
        lo, hi = centre - reach, centre + reach + 1
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        axes = [(np.arange(lo[i], hi[i]) - centre[i]) * sp[i] for i in range(3)]
        dist = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
        bshape = dist.shape
        n_shape = anatomy.smooth_random_field(bshape, 3.0 / sp, rng)
        alpha = anatomy.ramp(dist - radius * (1.0 + 0.2 * n_shape), width)
        gm, wm = fr["GM"][box], fr["WM"][box]
        f_mim = alpha * (gm + wm)
        gm *= 1.0 - alpha
        wm *= 1.0 - alpha
        n_c = anatomy.smooth_random_field(bshape, 6.0 / sp, rng)
        blobs.append(
            {
                "box": box,
                "fraction": f_mim.astype(np.float32),
                "variation": np.clip(1.0 + 0.2 * n_c, 0.5, 1.5).astype(np.float32),
                "info": {"centre_voxel": centre.tolist(), "radius_mm": radius},
            }
        )
    return blobs


def _mimic_t1(blob: dict, concentration: float) -> np.ndarray:
    return gadolinium_t1(BRAIN_TISSUES[BRAIN_MIMIC].t1, concentration * blob["variation"], GADOLINIUM_R1)


def _calibrate_mimics(mimics: list, t1gd: np.ndarray, bias: np.ndarray, et: np.ndarray, brain: np.ndarray) -> None:
    """Solve each blob's equivalent concentration so that its mean T1Gd signal times ``bias`` over its label
    voxels equals that of ET (``t1gd``: the clean T1Gd signal without mimics); sets ``blob["t1"]`` in place."""
    if not et.any():
        target = None
    else:
        target = float((t1gd * bias)[et].mean())
    timing = BRAIN_SEQUENCES["T1Gd"]
    for m in mimics:
        box, frac = m["box"], m["fraction"]
        voxels = (frac >= 0.5) & brain[box]
        if target is None or not voxels.any():
            conc = 0.0
        else:
            base, b, f = t1gd[box][voxels], bias[box][voxels], frac[voxels]

            def mean_signal(c, m=m, voxels=voxels, base=base, b=b, f=f):
                sig = _tissue_signal(BRAIN_MIMIC, timing, t1_override=_mimic_t1(m, c)[voxels])
                return float(((base + f * sig) * b).mean())

            lo, hi = 0.0, 20.0
            for _ in range(40):  # the signal grows monotonically with the concentration
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if mean_signal(mid) < target else (lo, mid)
            conc = 0.5 * (lo + hi)
        m["t1"] = _mimic_t1(m, conc).astype(np.float32)
        m["info"]["equivalent_concentration_mM"] = conc


def _labels(cshape, fr: dict, tum: dict, mimics: list, brain_mask: np.ndarray) -> np.ndarray:
    """Majority class of each brain voxel in the crop (0, 1 NCR, 2 ED, 4 ET, 5 mimic)."""
    lab = np.zeros(cshape, dtype=np.uint8)
    if tum:
        lf = tum["fractions"]
        box = tum["box"]
        normal = fr["GM"][box] + fr["WM"][box] + fr["CSF"][box]
        stack = np.stack([normal, lf["necrosis"] + lf["tumour"], lf["oedema"], lf["enhancing"]])
        codes = np.array([0, BRAIN_LABELS["NCR"], BRAIN_LABELS["ED"], BRAIN_LABELS["ET"]], dtype=np.uint8)
        lab[box] = codes[np.argmax(stack, axis=0)] * brain_mask[box]
    for m in mimics:
        sub = lab[m["box"]]
        sub[(m["fraction"] >= 0.5) & brain_mask[m["box"]]] = BRAIN_LABELS["HEM"]
    return lab


def _clean_signal(name: str, fr: dict, tum: dict) -> np.ndarray:
    """Noise-free, bias-free signal of sequence ``name`` in the crop, without the mimics."""
    timing = BRAIN_SEQUENCES[name]
    img = partial_volume(fr, {k: _tissue_signal(k, timing) for k in fr})
    if tum:
        lf = tum["fractions"]
        sig = {k: _tissue_signal(k, timing) for k in ("necrosis", "tumour", "oedema")}
        if name == "T1Gd":
            t1_post = gadolinium_t1(BRAIN_TISSUES["tumour"].t1, tum["concentration"], GADOLINIUM_R1)
            sig["enhancing"] = _tissue_signal("tumour", timing, t1_override=t1_post)
        else:
            sig["enhancing"] = sig["tumour"]
        img[tum["box"]] += partial_volume(lf, sig)
    return img


def _full_fractions(shape, crop, cshape, fr: dict, tum: dict, mimics: list) -> dict[str, np.ndarray]:
    """Every tissue's fraction map on the full grid (``keep_fractions``)."""
    fractions = {}
    for k in ["GM", "WM", "CSF"] + (list(tum["fractions"]) if tum else []):
        full = np.zeros(shape, dtype=np.float32)
        if k in fr:
            full[crop] = fr[k]
        else:
            sub = np.zeros(cshape, dtype=np.float32)
            sub[tum["box"]] = tum["fractions"][k]
            full[crop] = sub
        fractions[k] = full
    sub = np.zeros(cshape, dtype=np.float32)
    for m in mimics:
        sub[m["box"]] += m["fraction"]
    fractions[BRAIN_MIMIC] = np.zeros(shape, dtype=np.float32)
    fractions[BRAIN_MIMIC][crop] = sub
    return fractions


def _tissue_signal(name: str, timing, t1_override=None):
    t = BRAIN_TISSUES[name]
    return sequence_signal(t.pd, t.t1 if t1_override is None else t1_override, t.t2, timing)


def generate_brain_subject(seed: int = 0, index: int = 0, config: BrainPhantomConfig | None = None) -> PhantomSubject:
    """Generate brain phantom subject ``index`` of the cohort ``seed``, deterministically.

    Args:
        seed: cohort seed.
        index: subject index (>= 0).
        config: phantom settings (defaults: 1 mm template grid, SNR 30).

    Returns:
        :class:`PhantomSubject` with images ``T1, T1Gd, T2, FLAIR`` (float32 ``(X, Y, Z)``), the label map
        (0, BraTS 1 NCR, 2 ED, 4 ET, and 5 blood products, the mimics), ``unique["T1Gd"]`` (ET mask) and the
        grid's affine.
    """
    cfg = config or BrainPhantomConfig()
    if index < 0:
        raise ValueError(f"subject index must be >= 0, got {index}.")
    spacing, shape = _grid(cfg)
    template, factor = anatomy.template_on_grid(spacing)
    affine = anatomy.grid_affine(template.affine, factor)
    streams = np.random.SeedSequence([int(seed), int(index), _BRAIN_STREAM]).spawn(5)
    rng_anat, rng_tumour, rng_seq, rng_noise, rng_mimic = (np.random.default_rng(s) for s in streams)

    # --- anatomy: scaled, deformed template on the output grid (computed on the brain's crop only)
    _, _, com = _template_box()
    scale = _uniform(rng_anat, cfg.scale_range)
    amp_vox = cfg.deformation_mm / float(np.mean(template.spacing))
    start, stop = _crop(shape, factor, com, scale, margin=4.0 * amp_vox)
    cshape = tuple(b - a for a, b in zip(start, stop, strict=True))
    ctrl = cfg.control_spacing_mm / float(np.mean(spacing))
    disp = anatomy.random_displacement(cshape, amp_vox, rng_anat, ctrl) if amp_vox > 0 else None
    coords = anatomy.deformed_coordinates(cshape, factor, com, scale, disp, start=start)
    del disp
    fr = {
        "GM": anatomy.resample(template.gm, coords),
        "WM": anatomy.resample(template.wm, coords),
        "CSF": anatomy.resample(template.csf, coords),
    }
    del coords
    brain_mask = (fr["GM"] + fr["WM"] + fr["CSF"]) > 0.5

    # --- tumour
    tum = _tumour(fr, spacing, cfg, rng_tumour) if cfg.tumour else {}
    mimics = _mimics(fr, spacing, cfg, rng_mimic, tum)

    # --- signals
    crop = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    images: dict[str, np.ndarray] = {}
    info = {"scale": scale, "spacing": list(spacing), "shape": list(shape), "seed": int(seed), "index": int(index)}
    info.update(tum.get("info", {}))
    if tum:
        info["tumour_centre_voxel"] = [int(c + a) for c, a in zip(info["tumour_centre_voxel"], start, strict=True)]
    info["mimics"] = [
        {**m["info"], "centre_voxel": [int(c + a) for c, a in zip(m["info"]["centre_voxel"], start, strict=True)]}
        for m in mimics
    ]
    jitter = np.log1p(max(cfg.intensity_jitter, 0.0))
    gains: dict[str, float] = {}
    biases: dict[str, np.ndarray] = {}
    for name in BRAIN.names:  # acquisition settings first: the mimics are calibrated under T1Gd's bias field
        gains[name] = (
            INTENSITY_SCALE * float(np.exp(rng_seq.uniform(-jitter, jitter))) if jitter > 0 else INTENSITY_SCALE
        )
        group = BIAS_GROUPS.get(name, name)
        if group not in biases:
            biases[group] = anatomy.bias_field(cshape, rng_seq, cfg.bias_strength)
    lab = _labels(cshape, fr, tum, [], brain_mask)
    clean = {name: _clean_signal(name, fr, tum) for name in BRAIN.names}
    bias_t1gd = biases[BIAS_GROUPS.get("T1Gd", "T1Gd")]
    _calibrate_mimics(mimics, clean["T1Gd"], bias_t1gd, lab == BRAIN_LABELS["ET"], brain_mask)
    for m, record in zip(mimics, info["mimics"], strict=True):
        record["equivalent_concentration_mM"] = m["info"]["equivalent_concentration_mM"]
    for name in BRAIN.names:
        timing = BRAIN_SEQUENCES[name]
        img = clean.pop(name)
        for m in mimics:  # no enhancement: the same short T1 before and after contrast
            img[m["box"]] += m["fraction"] * _tissue_signal(BRAIN_MIMIC, timing, t1_override=m["t1"]).astype(np.float32)
        img *= biases[BIAS_GROUPS.get(name, name)] * np.float32(gains[name])
        if cfg.snr:
            sigma = float(img[brain_mask].mean()) / float(cfg.snr) if brain_mask.any() else 0.0
            img = anatomy.add_rician_noise(img, sigma, np.random.default_rng(rng_noise.integers(2**63)))
        img *= brain_mask
        out = np.zeros(shape, dtype=np.float32)
        out[crop] = img
        images[name] = out
        info[f"gain_{name}"] = gains[name]

    # --- labels: the majority class of each brain voxel
    label = np.zeros(shape, dtype=np.uint8)
    lab = _labels(cshape, fr, tum, mimics, brain_mask)
    label[crop] = lab
    unique = {"T1Gd": (label == BRAIN_LABELS["ET"]).astype(np.uint8)}

    fractions = _full_fractions(shape, crop, cshape, fr, tum, mimics) if cfg.keep_fractions else None
    return PhantomSubject(
        subject=brain_subject_id(index, cfg),
        images=images,
        label=label,
        unique=unique,
        affine=affine,
        info=info,
        fractions=fractions,
    )
