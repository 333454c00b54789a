"""DWI: select or synthesise b-values from a diffusion model fit, ADC and IVIM maps.

Models (``S`` signal, ``b`` in s/mm^2, diffusivities in mm^2/s)::

    mono-exponential   S(b) = S0 exp(-b ADC)
    IVIM               S(b) = S0 [(1 - f) exp(-b D) + f exp(-b D*)]

The mono-exponential fit is a log-linear least-squares line through all frames (vectorised over voxels). The
IVIM fit is segmented, as is usual for clinical b-value sets: D and the intercept from the frames with
``b >= threshold`` (where the perfusion term has decayed), f from that intercept and S(0), then D* from the low
non-zero b-values in closed form.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from ..io.errors import FrameValuesError
from .utils import FRAME_AXIS_KEY, FRAME_VALUES_KEY, check_finite, describe, get_frame_values, set_frame_meta

__all__ = [
    "fit_monoexponential",
    "fit_ivim",
    "diffusion_signal",
    "ivim_signal",
    "SelectBValues",
    "SelectBValuesd",
    "ADCMap",
    "ADCMapd",
    "IVIMMaps",
    "IVIMMapsd",
]

_SIGNAL_FLOOR = 1e-6
DSTAR_RANGE = (3e-3, 0.5)
"""Clip range of D* in mm^2/s (pseudo-diffusion is 10 to 100 times tissue diffusion)."""


def _bvalues(bvalues: Sequence[float]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(bvalues, dtype=np.float64).reshape(-1))


def _log_line(signal: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares line ``log S = c - b * slope`` per voxel: returns ``(exp(c), slope)``, float64."""
    logs = torch.log(signal.double().clamp_min(_SIGNAL_FLOOR))
    shape = (-1,) + (1,) * (logs.ndim - 1)
    b_mean = b.mean()
    db = (b - b_mean).reshape(shape)
    slope = -(db * (logs - logs.mean(0))).sum(0) / (db**2).sum()
    intercept = logs.mean(0) + slope * b_mean
    return torch.exp(intercept), slope


def _need_distinct(b: Sequence[float], count: int, what: str, label: str = "DWI") -> None:
    distinct = sorted(set(float(v) for v in b))
    if len(distinct) < count:
        raise FrameValuesError(f"{label}: {what} needs at least {count} distinct b-values, got {distinct}.")


def fit_monoexponential(signal: torch.Tensor, bvalues: Sequence[float],
                        label: str = "DWI") -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``S(b) = S0 exp(-b ADC)`` per voxel.

    Args:
        signal: ``(T, *S)`` one frame per b-value.
        bvalues: ``T`` b-values in s/mm^2.
        label: names the image in errors.

    Returns:
        ``(s0, adc)``, each float64 of shape ``S`` (ADC in mm^2/s).

    Raises:
        FrameValuesError: fewer than two distinct b-values, or not one per frame.
    """
    b = _bvalues(bvalues)
    if b.numel() != signal.shape[0]:
        raise FrameValuesError(f"{label}: {signal.shape[0]} frames but {b.numel()} b-values.")
    _need_distinct(b.tolist(), 2, "an ADC/mono-exponential fit", label)
    return _log_line(torch.as_tensor(signal), b)


def fit_ivim(signal: torch.Tensor, bvalues: Sequence[float], threshold: float = 200.0,
             label: str = "DWI") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Segmented IVIM fit per voxel (see the module docstring).

    Args:
        signal: ``(T, *S)``; bvalues: ``T`` b-values; threshold: b above which perfusion is negligible.

    Returns:
        ``(s0, d, f, dstar)``, float64 of shape ``S``: S(0), tissue diffusion, perfusion fraction in [0, 1),
        pseudo-diffusion (clipped to :data:`DSTAR_RANGE`).

    Raises:
        FrameValuesError: fewer than two distinct b-values >= threshold, no b = 0, or no b in (0, threshold).
    """
    signal = torch.as_tensor(signal).double()
    b = _bvalues(bvalues)
    if b.numel() != signal.shape[0]:
        raise FrameValuesError(f"{label}: {signal.shape[0]} frames but {b.numel()} b-values.")
    high = b >= threshold
    _need_distinct(b[high].tolist(), 2, f"the IVIM fit (diffusion part, b >= {threshold})", label)
    zero, low = b == 0, (b > 0) & (b < threshold)
    if not bool(zero.any()):
        raise FrameValuesError(f"{label}: the IVIM fit needs a b = 0 frame, got b-values {b.tolist()}.")
    if not bool(low.any()):
        raise FrameValuesError(f"{label}: the IVIM fit needs a b-value in (0, {threshold}) for D*, got {b.tolist()}.")
    intercept, d = _log_line(signal[high], b[high])
    s0 = signal[zero].mean(0).clamp_min(_SIGNAL_FLOOR)
    f = (1.0 - intercept / s0).clamp(0.0, 1.0 - 1e-6)
    # perfusion part at each low b: f exp(-b D*) = S(b)/S0 - (1 - f) exp(-b D); least squares of log over low b
    b_low = b[low].reshape((-1,) + (1,) * (signal.ndim - 1))
    residual = (signal[low] / s0 - (1 - f) * torch.exp(-b_low * d)).clamp_min(_SIGNAL_FLOOR)
    dstar = -(torch.log(residual / f.clamp_min(_SIGNAL_FLOOR)) * b_low).sum(0) / (b_low**2).sum(0)
    dstar = torch.nan_to_num(dstar, nan=DSTAR_RANGE[0]).clamp(*DSTAR_RANGE)
    return s0, d, f, dstar


def diffusion_signal(s0: torch.Tensor, adc: torch.Tensor, bvalues: Sequence[float]) -> torch.Tensor:
    """Mono-exponential model at ``bvalues``: ``(len(bvalues), *S)``."""
    b = _bvalues(bvalues).reshape((-1,) + (1,) * adc.ndim)
    return s0 * torch.exp(-b * adc)


def ivim_signal(s0: torch.Tensor, d: torch.Tensor, f: torch.Tensor, dstar: torch.Tensor,
                bvalues: Sequence[float]) -> torch.Tensor:
    """IVIM model at ``bvalues``: ``(len(bvalues), *S)``."""
    b = _bvalues(bvalues).reshape((-1,) + (1,) * d.ndim)
    return s0 * ((1 - f) * torch.exp(-b * d) + f * torch.exp(-b * dstar))


def _dwi_input(img: NdarrayOrTensor, label: str, duplicates: str) -> tuple[torch.Tensor, list[float]]:
    """Frames and b-values, sorted, duplicates raised or averaged."""
    values = get_frame_values(img, None, "bvalue", label)
    check_finite(img, label)
    data = convert_to_tensor(img, track_meta=False)
    data = data if data.is_floating_point() else data.float()
    unique = sorted(set(values))
    if len(unique) != len(values):
        if duplicates != "average":
            dupes = sorted({v for v in values if values.count(v) > 1})
            raise FrameValuesError(f"{label} has duplicate b-values {dupes} ({values}); pass duplicates='average' "
                                   "to average repeated b-values (e.g. several diffusion directions).")
        frames = torch.stack([data[[i for i, v in enumerate(values) if v == u]].mean(0) for u in unique])
        return frames, unique
    order = np.argsort(values, kind="stable")
    return data[torch.as_tensor(order)], [values[i] for i in order]


def _strip_frames(out: NdarrayOrTensor) -> NdarrayOrTensor:
    if isinstance(out, MetaTensor):
        out.meta = {k: v for k, v in out.meta.items() if k not in (FRAME_AXIS_KEY, FRAME_VALUES_KEY)}
    return out


class SelectBValues(Transform):
    """Frames at requested b-values: acquired ones copied, the others synthesised from a model fit.

    Args:
        bvalues: requested b-values in s/mm^2, in output order (e.g. the protocol's 0/150/800/1500).
        model: ``"monoexp"`` or ``"ivim"`` (segmented fit, needs b = 0, a low and two high b-values).
        synthesise: synthesise missing b-values; ``False`` raises instead.
        tol: an acquired b-value within ``tol`` of a requested one counts as that one.
        duplicates: ``"raise"`` or ``"average"`` repeated acquired b-values.
        threshold: IVIM high-b threshold.

    Shapes:
        ``(T, X, Y, Z)`` -> ``(len(bvalues), X, Y, Z)``; meta ``frame_values`` = ``bvalues`` and
        ``synthesised_bvalues`` lists the synthesised ones.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, bvalues: Sequence[float], model: str = "monoexp", synthesise: bool = True, tol: float = 1.0,
                 duplicates: str = "raise", threshold: float = 200.0) -> None:
        if model not in ("monoexp", "ivim"):
            raise ValueError(f"model must be 'monoexp' or 'ivim', got {model!r}.")
        if duplicates not in ("raise", "average"):
            raise ValueError(f"duplicates must be 'raise' or 'average', got {duplicates!r}.")
        self.bvalues = [float(b) for b in bvalues]
        if len(set(self.bvalues)) != len(self.bvalues):
            raise ValueError(f"requested b-values repeat: {self.bvalues}.")
        self.model, self.synthesise, self.tol = model, bool(synthesise), float(tol)
        self.duplicates, self.threshold = duplicates, float(threshold)

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        label = describe(img, name)
        frames, acquired = _dwi_input(img, label, self.duplicates)
        acq = np.asarray(acquired)
        match = [int(np.argmin(np.abs(acq - b))) if np.abs(acq - b).min() <= self.tol else None for b in self.bvalues]
        missing = [b for b, m in zip(self.bvalues, match, strict=True) if m is None]
        if missing and not self.synthesise:
            raise FrameValuesError(f"{label} lacks b-values {missing} (acquired {acquired}) and synthesise=False.")
        out = [None if m is None else frames[m] for m in match]
        if missing:
            if self.model == "ivim":
                model = ivim_signal(*fit_ivim(frames, acquired, self.threshold, label), missing)
            else:
                model = diffusion_signal(*fit_monoexponential(frames, acquired, label), missing)
            synth = iter(model.to(frames.dtype))
            out = [next(synth) if o is None else o for o in out]
        result, *_ = convert_to_dst_type(torch.stack(out), img)
        set_frame_meta(result, "bvalue", self.bvalues)
        if isinstance(result, MetaTensor):
            result.meta["synthesised_bvalues"] = missing
        return result


class ADCMap(Transform):
    """Apparent diffusion coefficient map from a DWI series (mono-exponential fit).

    Args:
        bvalue_range: use only frames with b in ``[low, high]`` (e.g. ``(50, 1000)``); ``None``: all frames.
        scale: multiply the ADC (mm^2/s) by this (``1e3`` gives the usual 10^-3 mm^2/s units).
        duplicates: ``"raise"`` or ``"average"`` repeated b-values.

    Shapes:
        ``(T, X, Y, Z)`` -> ``(1, X, Y, Z)`` float32; meta ``units``, ``bvalues_used``, ``derived_from``.

    Raises:
        FrameValuesError: fewer than two distinct b-values in range; duplicates (unless averaged).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, bvalue_range: tuple[float, float] | None = None, scale: float = 1.0,
                 duplicates: str = "raise") -> None:
        self.bvalue_range = None if bvalue_range is None else (float(bvalue_range[0]), float(bvalue_range[1]))
        self.scale = float(scale)
        self.duplicates = duplicates

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        label = describe(img, name)
        frames, acquired = _dwi_input(img, label, self.duplicates)
        keep = [i for i, b in enumerate(acquired)
                if self.bvalue_range is None or self.bvalue_range[0] <= b <= self.bvalue_range[1]]
        used = [acquired[i] for i in keep]
        _, adc = fit_monoexponential(frames[keep], used, label)
        out, *_ = convert_to_dst_type((adc * self.scale).unsqueeze(0), img, dtype=torch.float32)
        out = _strip_frames(out)
        if isinstance(out, MetaTensor):
            out.meta.update(derived_from=label, bvalues_used=used,
                            units="mm^2/s" if self.scale == 1.0 else f"{1 / self.scale:g} mm^2/s")
        return out


class IVIMMaps(Transform):
    """IVIM parameter maps from a DWI series (segmented fit).

    Shapes:
        ``(T, X, Y, Z)`` -> ``(3, X, Y, Z)``: D (mm^2/s), f (fraction), D* (mm^2/s), float32.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, threshold: float = 200.0, duplicates: str = "raise") -> None:
        self.threshold = float(threshold)
        self.duplicates = duplicates

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        label = describe(img, name)
        frames, acquired = _dwi_input(img, label, self.duplicates)
        _, d, f, dstar = fit_ivim(frames, acquired, self.threshold, label)
        out, *_ = convert_to_dst_type(torch.stack([d, f, dstar]), img, dtype=torch.float32)
        out = _strip_frames(out)
        if isinstance(out, MetaTensor):
            out.meta.update(derived_from=label, channels=["D", "f", "Dstar"], bvalues_used=acquired)
        return out


def _label(key: Hashable, img: NdarrayOrTensor) -> str:
    meta = getattr(img, "meta", None) or {}
    return f"{key} ({meta['filename_or_obj']})" if meta.get("filename_or_obj") else str(key)


def _refuse_overwrite(d: Mapping, keys: Sequence[str], overwrite: bool) -> None:
    existing = [k for k in keys if d.get(k) is not None]
    if existing and not overwrite:
        raise ValueError(f"subject {d.get('subject', '?')!r} already has {existing}; pass overwrite=True to replace.")


class SelectBValuesd(MapTransform):
    """Dictionary twin of :class:`SelectBValues`."""

    backend = SelectBValues.backend

    def __init__(self, keys: KeysCollection, bvalues: Sequence[float], model: str = "monoexp",
                 synthesise: bool = True, tol: float = 1.0, duplicates: str = "raise", threshold: float = 200.0,
                 allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)
        self.selector = SelectBValues(bvalues, model, synthesise, tol, duplicates, threshold)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.selector(d[key], name=_label(key, d[key]))
        return d


class ADCMapd(MapTransform):
    """Dictionary twin of :class:`ADCMap`: writes the map to ``output_key`` (refuses to overwrite by default)."""

    backend = ADCMap.backend

    def __init__(self, keys: KeysCollection, output_key: str = "ADC", bvalue_range: tuple[float, float] | None = None,
                 scale: float = 1.0, duplicates: str = "raise", overwrite: bool = False,
                 allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"ADCMapd takes one DWI key, got {self.keys}.")
        self.output_key, self.overwrite = output_key, bool(overwrite)
        self.mapper = ADCMap(bvalue_range, scale, duplicates)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            _refuse_overwrite(d, [self.output_key], self.overwrite)
            d[self.output_key] = self.mapper(d[key], name=_label(key, d[key]))
        return d


class IVIMMapsd(MapTransform):
    """Dictionary twin of :class:`IVIMMaps`: one ``(1, X, Y, Z)`` map per output key (D, f, D*)."""

    backend = IVIMMaps.backend

    def __init__(self, keys: KeysCollection, output_keys: Sequence[str] = ("D", "f", "Dstar"),
                 threshold: float = 200.0, duplicates: str = "raise", overwrite: bool = False,
                 allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1 or len(output_keys) != 3:
            raise ValueError(f"IVIMMapsd takes one DWI key and three output keys, got {self.keys}, {output_keys}.")
        self.output_keys, self.overwrite = list(output_keys), bool(overwrite)
        self.mapper = IVIMMaps(threshold, duplicates)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            _refuse_overwrite(d, self.output_keys, self.overwrite)
            maps = self.mapper(d[key], name=_label(key, d[key]))
            for i, out_key in enumerate(self.output_keys):
                d[out_key] = maps[i: i + 1]
        return d
