"""DWI: select or synthesise b-values from a diffusion model fit, ADC and IVIM maps.

Models (``S`` signal, ``b`` in s/mm^2, diffusivities in mm^2/s)::

    mono-exponential   S(b) = S0 exp(-b ADC)
    IVIM               S(b) = S0 [(1 - f) exp(-b D) + f exp(-b D*)]

The mono-exponential fit is a log-linear least-squares line through the frames, vectorised over voxels in
float64. The IVIM fit is segmented, as is usual for clinical b-value sets such as the paper's 0/150/800/1500:

1. D and the intercept ``S0 (1 - f)`` from a mono-exponential fit on the frames with ``b >= threshold``, where
   the perfusion term has decayed;
2. ``f = 1 - intercept / S(0)``, clipped to ``[0, 1)``;
3. D* from the low b-values in ``(0, threshold)``: the perfusion residual ``S(b)/S(0) - (1 - f) exp(-b D)`` equals
   ``f exp(-b D*)``; one low b-value gives D* in closed form, several a least-squares line through the origin of
   ``log(residual / f)`` against ``b``. D* is clipped to :data:`DSTAR_RANGE`.

Signals are clamped at a small positive floor before any logarithm, so air and blank voxels give finite maps.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_tensor

from monai_seq2seq.core.errors import FrameValuesError

from .base import PerKeyd
from .utils import (
    FRAME_AXIS_KEY,
    FRAME_VALUES_KEY,
    check_finite,
    describe,
    get_frame_values,
    key_label,
    like,
    set_frame_meta,
)

__all__ = [
    "DSTAR_RANGE",
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
    "SelectBValuesD",
    "SelectBValuesDict",
    "ADCMapD",
    "ADCMapDict",
    "IVIMMapsD",
    "IVIMMapsDict",
]

_SIGNAL_FLOOR = 1e-6
"""Signals are clamped at this floor before a logarithm (air, blank or negative voxels)."""

DSTAR_RANGE = (3e-3, 0.5)
"""Clip range of D* in mm^2/s (pseudo-diffusion is roughly 10 to 100 times tissue diffusion)."""


def _bvalue_tensor(bvalues: Sequence[float], label: str) -> torch.Tensor:
    """b-values as a float64 vector; negative or non-finite ones raise."""
    b = np.asarray(bvalues, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(b)) or np.any(b < 0):
        raise FrameValuesError(f"{label}: b-values must be finite and >= 0 s/mm^2, got {b.tolist()}.")
    return torch.as_tensor(b)


def _as_signal(signal: NdarrayOrTensor, b: torch.Tensor, label: str) -> torch.Tensor:
    """``(T, *S)`` signal as float64 torch, one frame per b-value."""
    data = convert_to_tensor(signal, track_meta=False).double()
    if data.ndim < 1 or data.shape[0] != b.numel():
        raise FrameValuesError(
            f"{label}: signal of shape {tuple(data.shape)} has {data.shape[0] if data.ndim else 0} "
            f"frames but {b.numel()} b-values {b.tolist()}."
        )
    return data


def _need_distinct(b: torch.Tensor, count: int, what: str, label: str) -> None:
    distinct = sorted({float(v) for v in b.tolist()})
    if len(distinct) < count:
        words = {1: "one", 2: "two"}.get(count, str(count))
        raise FrameValuesError(f"{label}: {what} needs at least {words} distinct b-values, got {distinct}.")


def _log_line(signal: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares line ``log S = c - b * slope`` per voxel over dim 0; returns ``(exp(c), slope)``, float64."""
    logs = torch.log(signal.clamp_min(_SIGNAL_FLOOR))
    db = (b - b.mean()).reshape((-1,) + (1,) * (logs.ndim - 1))
    log_mean = logs.mean(0)
    slope = -(db * (logs - log_mean)).sum(0) / (db**2).sum()
    return torch.exp(log_mean + slope * b.mean()), slope


def fit_monoexponential(
    signal: NdarrayOrTensor, bvalues: Sequence[float], label: str = "DWI"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``S(b) = S0 exp(-b ADC)`` per voxel by log-linear least squares over all frames.

    Args:
        signal: ``(T, *S)``, one frame per b-value (numpy or torch).
        bvalues: ``T`` b-values in s/mm^2, any order, repeats allowed.
        label: names the image in errors.

    Returns:
        ``(s0, adc)``, float64 torch tensors of shape ``S``; ADC in mm^2/s.

    Raises:
        FrameValuesError: fewer than two distinct b-values, not one b-value per frame, negative b-values.
    """
    b = _bvalue_tensor(bvalues, label)
    data = _as_signal(signal, b, label)
    _need_distinct(b, 2, "ADC/mono-exponential fit", label)
    return _log_line(data, b)


def fit_ivim(
    signal: NdarrayOrTensor, bvalues: Sequence[float], threshold: float = 200.0, label: str = "DWI"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Segmented IVIM fit per voxel (steps in the module docstring).

    Args:
        signal: ``(T, *S)``, one frame per b-value (numpy or torch).
        bvalues: ``T`` b-values in s/mm^2.
        threshold: b-value (s/mm^2) from which the perfusion term is taken as decayed.
        label: names the image in errors.

    Returns:
        ``(s0, d, f, dstar)``, float64 torch tensors of shape ``S``: S(0) (mean of the b = 0 frames), tissue
        diffusion D (mm^2/s), perfusion fraction f in ``[0, 1)``, pseudo-diffusion D* (mm^2/s, clipped to
        :data:`DSTAR_RANGE`).

    Raises:
        FrameValuesError: fewer than two distinct b-values >= ``threshold``, no b = 0 frame, no b-value in
            ``(0, threshold)``, or not one b-value per frame.
    """
    threshold = float(threshold)
    if threshold <= 0:
        raise ValueError(f"{label}: the IVIM threshold must be > 0 s/mm^2, got {threshold}.")
    b = _bvalue_tensor(bvalues, label)
    data = _as_signal(signal, b, label)
    high, zero, low = b >= threshold, b == 0, (b > 0) & (b < threshold)
    _need_distinct(b[high], 2, f"IVIM fit (D from b >= {threshold:g}, b-values {b.tolist()})", label)
    if not bool(zero.any()):
        raise FrameValuesError(f"{label}: IVIM fit needs a b = 0 frame for f, got b-values {b.tolist()}.")
    if not bool(low.any()):
        raise FrameValuesError(
            f"{label}: IVIM fit needs at least one b-value in (0, {threshold:g}) for D*, got b-values {b.tolist()}."
        )
    intercept, d = _log_line(data[high], b[high])
    s0 = data[zero].mean(0)
    s0_safe = s0.clamp_min(_SIGNAL_FLOOR)
    f = (1.0 - intercept / s0_safe).clamp(0.0, 1.0 - 1e-6)
    b_low = b[low].reshape((-1,) + (1,) * (data.ndim - 1))
    residual = (data[low] / s0_safe - (1.0 - f) * torch.exp(-b_low * d)).clamp_min(_SIGNAL_FLOOR)
    # log(residual / f) = -b D*: closed form for one b, least squares through the origin for several
    y = torch.log(residual / f.clamp_min(_SIGNAL_FLOOR))
    dstar = -(y * b_low).sum(0) / (b_low**2).sum(0)
    dstar = torch.nan_to_num(dstar, nan=DSTAR_RANGE[0]).clamp(*DSTAR_RANGE)
    return s0, d, f, dstar


def diffusion_signal(s0: NdarrayOrTensor, adc: NdarrayOrTensor, bvalues: Sequence[float]) -> torch.Tensor:
    """Mono-exponential model ``S0 exp(-b ADC)``.

    Args:
        s0: shape ``S`` (or broadcastable with ``adc``). adc: shape ``S``, mm^2/s. bvalues: ``B`` b-values.

    Returns:
        torch tensor of shape ``(B, *S)``, float64 unless both inputs are lower precision.
    """
    adc_t, s0_t = torch.as_tensor(adc), torch.as_tensor(s0)
    b = _bvalue_tensor(bvalues, "diffusion_signal").to(adc_t.dtype if adc_t.is_floating_point() else torch.float64)
    b = b.reshape((-1,) + (1,) * adc_t.ndim)
    return s0_t * torch.exp(-b * adc_t)


def ivim_signal(
    s0: NdarrayOrTensor, d: NdarrayOrTensor, f: NdarrayOrTensor, dstar: NdarrayOrTensor, bvalues: Sequence[float]
) -> torch.Tensor:
    """IVIM model ``S0 [(1 - f) exp(-b D) + f exp(-b D*)]``, the one of the code base (the breast phantom's too).

    Args:
        s0, d, f, dstar: maps of shape ``S`` (D and D* in mm^2/s), numpy or torch. bvalues: ``B`` b-values.

    Returns:
        torch tensor of shape ``(B, *S)``, in the dtype torch promotes the inputs to (a Python float becomes a
        float32 tensor: pass float64 arrays for a float64 result).

    Raises:
        FrameValuesError: negative or non-finite b-values.
    """
    d_t = torch.as_tensor(d)
    b = _bvalue_tensor(bvalues, "ivim_signal").to(d_t.dtype if d_t.is_floating_point() else torch.float64)
    b = b.reshape((-1,) + (1,) * d_t.ndim)
    f_t, dstar_t = torch.as_tensor(f), torch.as_tensor(dstar)
    return torch.as_tensor(s0) * ((1.0 - f_t) * torch.exp(-b * d_t) + f_t * torch.exp(-b * dstar_t))


def _dwi_input(
    img: NdarrayOrTensor, frame_values: Sequence[float] | None, label: str, duplicates: str
) -> tuple[torch.Tensor, list[float]]:
    """Frames sorted by b-value and their b-values; repeated b-values raise or are averaged.

    Frames of a b-value acquired once are returned bit-exactly (floating input keeps its dtype, integer input
    becomes float32, which holds 16-bit DICOM values exactly).
    """
    values = get_frame_values(img, frame_values, "bvalue", label)
    _bvalue_tensor(values, label)
    check_finite(img, label)
    data = convert_to_tensor(img, track_meta=False)
    data = data if data.is_floating_point() else data.float()
    unique = sorted(set(values))
    if len(unique) != len(values):
        if duplicates != "average":
            dupes = sorted({v for v in values if values.count(v) > 1})
            raise FrameValuesError(
                f"{label} has duplicate b-values {dupes} (frame values {values}); pass "
                "duplicates='average' to average repeated b-values (e.g. several diffusion "
                "directions of a trace DWI)."
            )
        frames = []
        for u in unique:
            idx = [i for i, v in enumerate(values) if v == u]
            frames.append(data[idx[0]] if len(idx) == 1 else data[idx].mean(0))
        return torch.stack(frames), unique
    order = np.argsort(values, kind="stable")
    return data[torch.as_tensor(order)], [values[i] for i in order]


def _map_output(maps: torch.Tensor, img: NdarrayOrTensor, **meta) -> NdarrayOrTensor:
    """``maps`` as float32 of ``img``'s type; a MetaTensor keeps the affine, loses the frame meta, gains ``meta``."""
    out = like(maps, img, dtype=torch.float32)
    if isinstance(out, MetaTensor):
        out.meta = {k: v for k, v in out.meta.items() if k not in (FRAME_AXIS_KEY, FRAME_VALUES_KEY)}
        out.meta.update(meta)
    return out


def _check_choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
    return value


class SelectBValues(Transform):
    """Frames at requested b-values: acquired ones copied exactly, the others synthesised from a model fit.

    Args:
        bvalues: requested b-values in s/mm^2, in output order (e.g. the protocol's 0/150/800/1500).
        model: ``"monoexp"`` (needs two distinct b-values) or ``"ivim"`` (segmented fit: needs b = 0, one b-value
            in ``(0, threshold)`` and two distinct ones ``>= threshold``). All acquired frames enter the fit.
        synthesise: synthesise the b-values that were not acquired; ``False`` raises instead.
        tol: an acquired b-value within ``tol`` s/mm^2 of a requested one is that one (the nearest is taken).
        duplicates: ``"raise"`` or ``"average"`` frames with the same acquired b-value (exact equality).
        threshold: IVIM threshold in s/mm^2 (see :func:`fit_ivim`).
        frame_values: explicit acquired b-values, for plain arrays without frame meta (overrides the meta).

    Shapes:
        ``(T, X, Y, Z)`` -> ``(len(bvalues), X, Y, Z)``, same type as the input (float32 for integer input).
        A MetaTensor keeps affine and meta; ``frame_axis`` becomes ``"bvalue"``, ``frame_values`` the requested
        b-values and ``synthesised_bvalues`` lists the synthesised ones.

    Raises:
        FrameValuesError: no b-values, duplicates (unless averaged), missing b-values with ``synthesise=False``,
            too few b-values for the model. ValueError: NaN/Inf in the image.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        bvalues: Sequence[float],
        model: str = "monoexp",
        synthesise: bool = True,
        tol: float = 1.0,
        duplicates: str = "raise",
        threshold: float = 200.0,
        frame_values: Sequence[float] | None = None,
    ) -> None:
        self.model = _check_choice(model, "model", ("monoexp", "ivim"))
        self.duplicates = _check_choice(duplicates, "duplicates", ("raise", "average"))
        self.bvalues = [float(b) for b in np.asarray(bvalues, dtype=np.float64).reshape(-1)]
        if not self.bvalues:
            raise ValueError("SelectBValues needs at least one requested b-value.")
        if len(set(self.bvalues)) != len(self.bvalues):
            raise ValueError(f"requested b-values repeat: {self.bvalues}.")
        _bvalue_tensor(self.bvalues, "requested")
        if tol < 0:
            raise ValueError(f"tol must be >= 0, got {tol}.")
        self.synthesise, self.tol, self.threshold = bool(synthesise), float(tol), float(threshold)
        self.frame_values = frame_values

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        """Select/synthesise the requested b-values of ``img`` (``(T, X, Y, Z)``); ``name`` labels errors."""
        label = describe(img, name)
        frames, acquired = _dwi_input(img, self.frame_values, label, self.duplicates)
        acq = np.asarray(acquired)
        match: list[int | None] = []
        for b in self.bvalues:
            dist = np.abs(acq - b)
            match.append(int(np.argmin(dist)) if dist.min() <= self.tol else None)
        missing = [b for b, m in zip(self.bvalues, match, strict=True) if m is None]
        if missing and not self.synthesise:
            raise FrameValuesError(
                f"{label} lacks b-values {missing} (acquired {acquired}, tol {self.tol:g}) and synthesise=False."
            )
        out: list[torch.Tensor | None] = [None if m is None else frames[m] for m in match]
        if missing:
            if self.model == "ivim":
                model = ivim_signal(*fit_ivim(frames, acquired, self.threshold, label), missing)
            else:
                model = diffusion_signal(*fit_monoexponential(frames, acquired, label), missing)
            synth = iter(model.to(frames.dtype))
            out = [next(synth) if o is None else o for o in out]
        result = like(torch.stack(out), img, dtype=frames.dtype)  # type: ignore[arg-type]
        if isinstance(result, MetaTensor):
            set_frame_meta(result, "bvalue", self.bvalues)
            result.meta["synthesised_bvalues"] = missing
        return result


class ADCMap(Transform):
    """Apparent diffusion coefficient map from a DWI series (mono-exponential fit).

    Args:
        bvalue_range: use only frames with ``low <= b <= high`` (e.g. ``(50, 1000)``); ``None``: all frames.
        scale: multiply the ADC (mm^2/s) by this (``1e3`` gives the usual 10^-3 mm^2/s units).
        duplicates: ``"raise"`` or ``"average"`` repeated b-values.
        frame_values: explicit b-values, for plain arrays without frame meta.

    Shapes:
        ``(T, X, Y, Z)`` -> ``(1, X, Y, Z)`` float32, same type as the input. A MetaTensor keeps its affine,
        loses the frame meta and gains ``derived_from``, ``units`` and ``bvalues_used``.

    Raises:
        FrameValuesError: fewer than two distinct b-values in range; duplicates (unless averaged).
        ValueError: NaN/Inf in the image.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        bvalue_range: tuple[float, float] | None = None,
        scale: float = 1.0,
        duplicates: str = "raise",
        frame_values: Sequence[float] | None = None,
    ) -> None:
        if bvalue_range is not None:
            low, high = float(bvalue_range[0]), float(bvalue_range[1])
            if low > high:
                raise ValueError(f"bvalue_range must be (low, high) with low <= high, got {bvalue_range}.")
            bvalue_range = (low, high)
        self.bvalue_range = bvalue_range
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be finite and > 0, got {scale}.")
        self.scale = float(scale)
        self.duplicates = _check_choice(duplicates, "duplicates", ("raise", "average"))
        self.frame_values = frame_values

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        """ADC map of ``img`` (``(T, X, Y, Z)``); ``name`` labels errors."""
        label = describe(img, name)
        frames, acquired = _dwi_input(img, self.frame_values, label, self.duplicates)
        rng = self.bvalue_range
        keep = [i for i, b in enumerate(acquired) if rng is None or rng[0] <= b <= rng[1]]
        used = [acquired[i] for i in keep]
        where = label if rng is None else f"{label} (b-values in [{rng[0]:g}, {rng[1]:g}] of {acquired})"
        _, adc = fit_monoexponential(frames[keep], used, where)
        units = "mm^2/s" if self.scale == 1.0 else f"{1.0 / self.scale:g} mm^2/s"
        return _map_output((adc * self.scale).unsqueeze(0), img, derived_from=label, units=units, bvalues_used=used)


class IVIMMaps(Transform):
    """IVIM parameter maps from a DWI series (segmented fit, :func:`fit_ivim`).

    Args:
        threshold: b-value (s/mm^2) from which the perfusion term is taken as decayed.
        duplicates: ``"raise"`` or ``"average"`` repeated b-values.
        frame_values: explicit b-values, for plain arrays without frame meta.

    Shapes:
        ``(T, X, Y, Z)`` -> ``(3, X, Y, Z)`` float32: channel 0 D (mm^2/s), 1 f (fraction), 2 D* (mm^2/s).
        A MetaTensor keeps its affine, loses the frame meta and gains ``channels``, ``units``, ``bvalues_used``.

    Raises:
        FrameValuesError: b-values too few for the segmented fit (see :func:`fit_ivim`). ValueError: NaN/Inf.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, threshold: float = 200.0, duplicates: str = "raise", frame_values: Sequence[float] | None = None
    ) -> None:
        self.threshold = float(threshold)
        self.duplicates = _check_choice(duplicates, "duplicates", ("raise", "average"))
        self.frame_values = frame_values

    def __call__(self, img: NdarrayOrTensor, name: str | None = None) -> NdarrayOrTensor:
        """D, f and D* maps of ``img`` (``(T, X, Y, Z)``); ``name`` labels errors."""
        label = describe(img, name)
        frames, acquired = _dwi_input(img, self.frame_values, label, self.duplicates)
        _, d, f, dstar = fit_ivim(frames, acquired, self.threshold, label)
        return _map_output(
            torch.stack([d, f, dstar]),
            img,
            derived_from=label,
            channels=["D", "f", "Dstar"],
            units=["mm^2/s", "1", "mm^2/s"],
            bvalues_used=acquired,
        )


def _refuse_overwrite(d: Mapping, keys: Sequence[str], overwrite: bool, transform: str) -> None:
    existing = [k for k in keys if d.get(k) is not None]
    if existing and not overwrite:
        raise ValueError(
            f"subject {d.get('subject', '?')!r} already has {existing}; {transform} would overwrite "
            "them (pass overwrite=True to recompute from the DWI series)."
        )


class SelectBValuesd(PerKeyd):
    """Dictionary twin of :class:`SelectBValues`: each key's ``(T, X, Y, Z)`` -> ``(len(bvalues), X, Y, Z)``.

    Args:
        keys: DWI keys. bvalues, model, synthesise, tol, duplicates, threshold: see :class:`SelectBValues`.
        allow_missing_keys: skip absent keys instead of raising ``KeyError``.
    """

    backend = SelectBValues.backend

    def __init__(
        self,
        keys: KeysCollection,
        bvalues: Sequence[float],
        model: str = "monoexp",
        synthesise: bool = True,
        tol: float = 1.0,
        duplicates: str = "raise",
        threshold: float = 200.0,
        allow_missing_keys: bool = False,
    ) -> None:
        selector = SelectBValues(bvalues, model, synthesise, tol, duplicates, threshold)
        super().__init__(keys, selector, allow_missing_keys, named=True)


class ADCMapd(MapTransform):
    """Dictionary twin of :class:`ADCMap`: one DWI key -> a new key ``output_key`` of shape ``(1, X, Y, Z)``.

    Args:
        keys: the DWI key (one).
        output_key: where the map goes; an existing one is an error unless ``overwrite`` (it may be an acquired ADC).
        bvalue_range, scale, duplicates: see :class:`ADCMap`.
        overwrite: replace an existing ``output_key``.
        allow_missing_keys: skip an absent DWI key instead of raising ``KeyError``.
    """

    backend = ADCMap.backend

    def __init__(
        self,
        keys: KeysCollection,
        output_key: str = "ADC",
        bvalue_range: tuple[float, float] | None = None,
        scale: float = 1.0,
        duplicates: str = "raise",
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"ADCMapd takes one DWI key, got {self.keys}.")
        self.output_key, self.overwrite = output_key, bool(overwrite)
        self.mapper = ADCMap(bvalue_range, scale, duplicates)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            _refuse_overwrite(d, [self.output_key], self.overwrite, "ADCMapd")
            d[self.output_key] = self.mapper(d[key], name=key_label(key, d[key]))
        return d


class IVIMMapsd(MapTransform):
    """Dictionary twin of :class:`IVIMMaps`: one DWI key -> three new keys (D, f, D*), ``(1, X, Y, Z)`` each.

    Args:
        keys: the DWI key (one).
        output_keys: keys of D, f and D*.
        threshold, duplicates: see :class:`IVIMMaps`.
        overwrite: replace existing output keys; otherwise an existing one is an error.
        allow_missing_keys: skip an absent DWI key instead of raising ``KeyError``.
    """

    backend = IVIMMaps.backend

    def __init__(
        self,
        keys: KeysCollection,
        output_keys: Sequence[str] = ("D", "f", "Dstar"),
        threshold: float = 200.0,
        duplicates: str = "raise",
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1 or len(output_keys) != 3 or len(set(output_keys)) != 3:
            raise ValueError(
                f"IVIMMapsd takes one DWI key and three distinct output keys, got {self.keys}, {list(output_keys)}."
            )
        self.output_keys, self.overwrite = list(output_keys), bool(overwrite)
        self.mapper = IVIMMaps(threshold, duplicates)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            _refuse_overwrite(d, self.output_keys, self.overwrite, "IVIMMapsd")
            maps = self.mapper(d[key], name=key_label(key, d[key]))
            for i, out_key in enumerate(self.output_keys):
                one = maps[i : i + 1]
                if isinstance(one, MetaTensor):
                    one.meta = dict(one.meta)
                    one.meta.update(channels=[maps.meta["channels"][i]], units=maps.meta["units"][i])
                d[out_key] = one
        return d


SelectBValuesD = SelectBValuesDict = SelectBValuesd
ADCMapD = ADCMapDict = ADCMapd
IVIMMapsD = IVIMMapsDict = IVIMMapsd
